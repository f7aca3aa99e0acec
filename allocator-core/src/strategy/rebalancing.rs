//! `rebalancing`: sticky assignments kept inside a weight band by the fewest moves, for the
//! central service (one process decides, so the result may depend on history).
//!
//! # What it guarantees
//! - **Sticky.** A target keeps its collector until that collector leaves or the band below is
//!   broken; then only as much weight moves as the band needs.
//! - **A weight band.** After every diff each collector holds at most `cap = ⌈(1+ε)·W/n⌉` and
//!   at least `floor = ⌊(1−ε)·W/n⌋` weight (W the weight of all targets, n the collectors, ε the
//!   `bounded` slack), whenever single targets allow it: a target heavier than the band (a
//!   kube-state-metrics giant on many small collectors) stays where it is, over the cap, and
//!   its collector gives away its other targets while others have room for them.
//!   The floor is what makes a new collector useful: with the cap alone, adding a 101st
//!   collector to 100 balanced ones moves nothing (every old collector is already under the
//!   new cap) and the new one idles — the complaint about `least-weighted` (Go allocator #2477).
//! - **Deterministic for the same diff history**: every choice is ordered by weight, then target
//!   key or collector name; never by slot, collector id or map order. The strategy's tables are
//!   a function of the assignment, so a snapshot restores them exactly (restore rebuilds them
//!   and refuses a stored assignment the rules would still change).
//!
//! # How it decides (after each diff, in `settle`)
//! 1. Targets without a collector (new ones, and those of removed collectors) go, heaviest
//!    first then by key, to the least-loaded collector (lowest name on ties): the
//!    longest-processing-time rule, which leaves every collector within one light target of the
//!    mean on a full allocation.
//! 2. While a collector is over the cap, the busiest one gives one target to the least-loaded
//!    collector: the lightest target that covers its excess alone and leaves it above the floor,
//!    else the heaviest one below the excess (and the loop goes on). While a collector is below
//!    the floor, it takes from the busiest collectors' surplus over the floor the same way.
//! 3. A move is made only if the receiver stays under the cap and the target weighs less than
//!    the gap between giver and receiver, so the sum of squared loads falls with every move and
//!    the loop ends. When no single move helps, the busiest and the idlest exchange a heavier
//!    target for a lighter one under the same conditions on their difference (two collectors
//!    with 3 × 1024 and 1024 + 4 × 108 are balanced only so). The loop ends when neither exists
//!    (then the state is a fixed point: settling it again moves nothing).
//!
//! # Zones (`Config::zone_skew`)
//! Targets and collectors are in the zone of their node (`Allocator::set_node_zones`). The band
//! widens from ε to the skew (whichever is wider); a target is placed on the least-loaded
//! collector of its zone while that one stays under the cap, else on the least-loaded of all;
//! after the band's repair, targets away from their zone go home (heaviest first, zones by
//! name, until a whole pass moves nothing) wherever the zone's least-loaded collector has room
//! and their collector stays at or over the floor. Going home never breaks the band, so the
//! repair has nothing left to do and the loop ends.
//!
//! # Cost
//! Per diff: `O(log)` B-tree work per changed target and per move, plus `O(n)` over the
//! collectors when the diff places targets or changes collectors; never a pass over all
//! targets. The busiest and idlest collectors come from an ordered set of `(load, name rank)`;
//! the target to move from a collector's ordered set of `(weight, key)` by one range query.
//! A target a band violation cannot be fixed around (the giant) is looked at again on the next
//! diff, one range query per stuck collector. With zones, finding a target to bring home looks
//! at a few of the heaviest away first and, when their holders sit at the floor, at worst one
//! range query per collector.
//!
//! # Sources
//! Greedy LPT scheduling (Graham 1969) for placement; the "move the least weight to restore the
//! bound" repair is the incremental load rebalancing of Aggarwal, Motwani and Zhu (SPAA 2003:
//! minimise the maximum load with a budget of moves), with the budget replaced by the band.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap};

use super::bounded::bound;
use super::ZoneView;
use crate::ids::NONE;
use crate::targets::Targets;

/// A target held by a collector, ordered by weight, then key (the slot never decides: keys are
/// unique).
type Held = (u32, u64, u32);

/// A target to place, heaviest first, then by key.
type Pending = (Reverse<u32>, u64, u32);

/// What the strategy last knew of a slot.
#[derive(Debug, Clone, Copy)]
struct Known {
    key: u64,
    weight: u32,
    /// Collector id, or NONE while unplaced.
    collector: u32,
    /// Zone of its node (NONE: none, or zones off).
    zone: u32,
    live: bool,
}

const UNKNOWN: Known = Known {
    key: 0,
    weight: 0,
    collector: NONE,
    zone: NONE,
    live: false,
};

/// How many of the heaviest targets away that fit at home `home_move` looks at before it
/// searches holder by holder.
const QUICK_LOOKS: usize = 32;

#[derive(Debug, Clone)]
pub(crate) struct Rebalancing {
    eps_ppm: u64,
    /// Member index (collector name order) → collector id.
    ids: Vec<u32>,
    /// Collector id → member index (NONE: not a member).
    rank: Vec<u32>,
    /// Collector id → weight it holds.
    load: Vec<u64>,
    /// Collector id → its targets.
    held: Vec<BTreeSet<Held>>,
    /// `(load, member index)` of every member: busiest last, idlest first.
    order: BTreeSet<(u64, u32)>,
    /// Targets with no collector, heaviest first, then key.
    unplaced: BTreeSet<Pending>,
    /// By slot.
    known: Vec<Known>,
    /// Weight of every live target.
    total: u64,
    dirty: Vec<u32>,
    collectors_changed: bool,
    /// Zone awareness (see [`Zoned`]); `None`: zones are ignored.
    zoned: Option<Zoned>,
}

/// What zone-aware rebalancing keeps besides the plain tables. Zones are ordered by name
/// wherever order decides (zone ids depend on interning history; names do not).
#[derive(Debug, Clone, Default)]
struct Zoned {
    /// The skew in millionths: the band widens to `⌊(1−s)·W/n⌋ … ⌈(1+s)·W/n⌉` so targets can
    /// stay in their zone.
    skew_ppm: u64,
    /// Collector id → zone (NONE: no zone, or not a member).
    of_collector: Vec<u32>,
    /// Zone id → `(load, member index)` of its members.
    order: Vec<BTreeSet<(u64, u32)>>,
    /// Zone id → its targets held by a collector outside it.
    away: Vec<BTreeSet<Held>>,
    /// Zone id → collector id → the zone's targets that collector holds (the same entries as
    /// `away`, by holder): what a collector can give back depends on its own load, so the
    /// search for a target to bring home goes holder by holder.
    away_by_holder: Vec<BTreeMap<u32, BTreeSet<Held>>>,
    /// Zone ids in name order.
    by_name: Vec<u32>,
    /// The node → zone table changed since the last settle.
    changed: bool,
}

impl Zoned {
    /// Whether a target of zone `zone` on collector `id` is away from home.
    #[inline]
    fn is_away(&self, zone: u32, id: u32) -> bool {
        zone != NONE && self.of_collector.get(id as usize).copied().unwrap_or(NONE) != zone
    }

    fn grow(&mut self, zones: usize) {
        if self.order.len() < zones {
            self.order.resize_with(zones, BTreeSet::new);
            self.away.resize_with(zones, BTreeSet::new);
            self.away_by_holder.resize_with(zones, BTreeMap::new);
        }
    }

    /// Note target `t` of zone `zone` as away, held by collector `id`.
    fn add_away(&mut self, zone: u32, id: u32, t: Held) {
        self.away[zone as usize].insert(t);
        self.away_by_holder[zone as usize]
            .entry(id)
            .or_default()
            .insert(t);
    }

    /// Target `t` of zone `zone`, held by collector `id`, is no longer away (or no longer held).
    fn remove_away(&mut self, zone: u32, id: u32, t: &Held) {
        self.away[zone as usize].remove(t);
        let by_holder = &mut self.away_by_holder[zone as usize];
        if let Some(held) = by_holder.get_mut(&id) {
            held.remove(t);
            if held.is_empty() {
                by_holder.remove(&id);
            }
        }
    }
}

/// The weight band of the current state (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Band {
    pub floor: u64,
    pub cap: u64,
}

impl Rebalancing {
    pub(crate) fn new(eps_ppm: u64, skew_ppm: Option<u64>) -> Rebalancing {
        Rebalancing {
            zoned: skew_ppm.map(|skew_ppm| Zoned {
                skew_ppm,
                ..Zoned::default()
            }),
            eps_ppm,
            ids: Vec::new(),
            rank: Vec::new(),
            load: Vec::new(),
            held: Vec::new(),
            order: BTreeSet::new(),
            unplaced: BTreeSet::new(),
            known: Vec::new(),
            total: 0,
            dirty: Vec::new(),
            collectors_changed: false,
        }
    }

    #[inline]
    pub(crate) fn touch(&mut self, slot: u32) {
        self.dirty.push(slot);
    }

    /// A new collector set; `ids[m]` is the collector id of member `m` (name order).
    pub(crate) fn commit(&mut self, ids: &[u32]) {
        self.ids = ids.to_vec();
        self.collectors_changed = true;
    }

    /// The node → zone table changed: collectors' zones are read again at the next settle
    /// (the allocator touches the targets on nodes whose zone changed, so those are read again too).
    pub(crate) fn zones_changed(&mut self) {
        if let Some(z) = &mut self.zoned {
            z.changed = true;
        }
    }

    /// The band for the current state (widened by the zone skew when zones are on).
    pub(crate) fn band(&self) -> Option<Band> {
        let n = self.ids.len() as u64;
        let slack = match &self.zoned {
            Some(z) => z.skew_ppm.max(self.eps_ppm),
            None => self.eps_ppm,
        };
        (n > 0).then(|| Band {
            floor: floor(self.total, n, slack),
            cap: bound(self.total, n, slack),
        })
    }

    /// The zone a collector is in, for `explain` (NONE: none, or zones off).
    pub(crate) fn zone_of_collector(&self, id: u32) -> u32 {
        self.zoned
            .as_ref()
            .and_then(|z| z.of_collector.get(id as usize).copied())
            .unwrap_or(NONE)
    }

    /// Bring the tables up to date and restore the band; push `(slot, collector id or NONE)`
    /// for every target whose collector changes (once per target, its final collector).
    pub(crate) fn settle(
        &mut self,
        targets: &Targets,
        zones: &ZoneView<'_>,
        out: &mut Vec<(u32, u32)>,
    ) {
        let zones_changed = self.zoned.as_ref().is_some_and(|z| z.changed);
        if self.dirty.is_empty() && !self.collectors_changed && !zones_changed {
            return;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        if self.known.len() < targets.capacity_slots() {
            self.known.resize(targets.capacity_slots(), UNKNOWN);
        }
        let new_zones = if self.collectors_changed || zones_changed {
            self.collector_zones(zones, &mut dirty)
        } else {
            None
        };
        dirty.sort_unstable();
        dirty.dedup();
        for &slot in &dirty {
            self.forget(slot);
        }
        if let (Some(z), Some(of_collector)) = (&mut self.zoned, new_zones) {
            // After `forget`, which took the dirty targets off `away` with the old zones.
            z.of_collector = of_collector;
            z.changed = false;
            z.grow(zones.names.len());
            let mut by_name: Vec<u32> = (0..zones.names.len() as u32).collect();
            by_name
                .sort_unstable_by(|&a, &b| zones.names[a as usize].cmp(&zones.names[b as usize]));
            z.by_name = by_name;
            // With the collector set unchanged (else `change_members` rebuilds them below, with
            // the new member indexes).
            if !self.collectors_changed {
                self.rebuild_zone_orders();
            }
        }
        let mut touched: Vec<u32> = Vec::new();
        // Targets to place in this diff (new ones, removed collectors' ones).
        let mut pending: Vec<Pending> = Vec::new();
        if std::mem::take(&mut self.collectors_changed) {
            self.change_members(&mut pending, &mut touched);
        }
        for &slot in &dirty {
            let r = targets.get(slot);
            if !r.is_live() {
                continue;
            }
            self.total += u64::from(r.weight);
            let member = r.collector != NONE
                && self
                    .rank
                    .get(r.collector as usize)
                    .is_some_and(|&m| m != NONE);
            self.known[slot as usize] = Known {
                key: r.key,
                weight: r.weight,
                collector: NONE,
                zone: if self.zoned.is_some() {
                    zones.of_node(r.node)
                } else {
                    NONE
                },
                live: true,
            };
            if member {
                self.hold(slot, r.collector);
            } else {
                // Touched when placed (or, with no collectors, when a removed one held it).
                pending.push((Reverse(r.weight), r.key, slot));
                if r.collector != NONE {
                    touched.push(slot);
                }
            }
        }
        dirty.clear();
        self.dirty = dirty;
        if self.ids.is_empty() {
            self.unplaced.extend(pending);
        } else {
            pending.extend(std::mem::take(&mut self.unplaced));
            if self.zoned.is_some() {
                self.place_in_zones(pending, &mut touched);
                self.rebalance(&mut touched);
                self.bring_home(&mut touched);
            } else {
                self.place(pending, &mut touched);
                self.rebalance(&mut touched);
            }
        }
        // Moves in key order, so the same history gives the same list (slots depend on it).
        let known = &self.known;
        touched.sort_unstable_by_key(|&slot| (known[slot as usize].key, slot));
        touched.dedup();
        for slot in touched {
            let now = self.known[slot as usize].collector;
            if now != targets.get(slot).collector {
                out.push((slot, now));
            }
        }
    }

    /// Drop what was known of a slot from every table.
    fn forget(&mut self, slot: u32) {
        let k = std::mem::replace(&mut self.known[slot as usize], UNKNOWN);
        if !k.live {
            return;
        }
        self.total -= u64::from(k.weight);
        if k.collector == NONE {
            self.unplaced.remove(&(Reverse(k.weight), k.key, slot));
        } else {
            self.release_zoned(k.collector, (k.weight, k.key, slot), k.zone);
        }
    }

    /// Zones on and the collectors or the table changed: every collector id's zone as of now
    /// (by its node), with the targets of members whose zone changed added to `dirty` (they
    /// are re-held, so their away status is read again). `None` when zones are off.
    fn collector_zones(&self, zones: &ZoneView<'_>, dirty: &mut Vec<u32>) -> Option<Vec<u32>> {
        let z = self.zoned.as_ref()?;
        let count = zones.collectors.slot_count().max(self.held.len());
        let mut of_collector = vec![NONE; count];
        for &id in &self.ids {
            if let Some(c) = zones.collectors.get(id) {
                of_collector[id as usize] = zones.of_node(c.node);
            }
        }
        for (id, set) in self.held.iter().enumerate() {
            let old = z.of_collector.get(id).copied().unwrap_or(NONE);
            if old != of_collector[id] && !set.is_empty() {
                dirty.extend(set.iter().map(|t| t.2));
            }
        }
        Some(of_collector)
    }

    /// Install the member set of the last `commit`: removed collectors' targets become
    /// unplaced, member ranks and the load order are rebuilt.
    fn change_members(&mut self, pending: &mut Vec<Pending>, touched: &mut Vec<u32>) {
        let max_id = self.ids.iter().copied().max().map_or(0, |m| m as usize + 1);
        if self.rank.len() < max_id {
            self.rank.resize(max_id, NONE);
            self.load.resize(max_id, 0);
            self.held.resize_with(max_id, BTreeSet::new);
        }
        let mut member = vec![false; self.rank.len()];
        for &id in &self.ids {
            member[id as usize] = true;
        }
        for (id, &stays) in member.iter().enumerate() {
            if self.rank[id] != NONE && !stays {
                for (w, key, slot) in std::mem::take(&mut self.held[id]) {
                    let zone = self.known[slot as usize].zone;
                    if let Some(z) = &mut self.zoned {
                        if zone != NONE {
                            z.remove_away(zone, id as u32, &(w, key, slot));
                        }
                    }
                    self.known[slot as usize].collector = NONE;
                    pending.push((Reverse(w), key, slot));
                    touched.push(slot);
                }
                self.load[id] = 0;
            }
            self.rank[id] = NONE;
        }
        self.order.clear();
        for (m, &id) in self.ids.iter().enumerate() {
            self.rank[id as usize] = m as u32;
            self.order.insert((self.load[id as usize], m as u32));
        }
        self.rebuild_zone_orders();
    }

    /// Each zone's `(load, member)` order from the members' current loads.
    fn rebuild_zone_orders(&mut self) {
        let Some(z) = &mut self.zoned else {
            return;
        };
        for set in &mut z.order {
            set.clear();
        }
        for &(load, m) in &self.order {
            let id = self.ids[m as usize];
            let zone = z.of_collector.get(id as usize).copied().unwrap_or(NONE);
            if zone != NONE {
                z.order[zone as usize].insert((load, m));
            }
        }
    }

    /// Zones on: place targets heaviest first, then by key, each on the least-loaded
    /// collector of its zone while that one stays within the band's cap, else on the
    /// least-loaded collector of all (lowest name on ties).
    fn place_in_zones(&mut self, mut pending: Vec<Pending>, touched: &mut Vec<u32>) {
        let Some(Band { cap, .. }) = self.band() else {
            return;
        };
        pending.sort_unstable();
        for (Reverse(w), _, slot) in pending {
            let zone = self.known[slot as usize].zone;
            let home = self.zoned.as_ref().and_then(|z| {
                let &(load, m) = z.order.get(zone as usize)?.first()?;
                (load + u64::from(w) <= cap).then_some(m)
            });
            let m = home.unwrap_or_else(|| self.order.first().expect("members exist").1);
            self.hold(slot, self.ids[m as usize]);
            touched.push(slot);
        }
    }

    /// Zones on, after the band holds: move targets held outside their zone back into it
    /// (heaviest first, zones in name order) while the receiver (the least-loaded collector of
    /// the zone) stays within the cap and the giver above the floor. Every move takes weight
    /// home and none breaks the band, so the loop ends and leaves nothing for `rebalance`.
    fn bring_home(&mut self, touched: &mut Vec<u32>) {
        let Some(Band { floor, cap }) = self.band() else {
            return;
        };
        let by_name = match &self.zoned {
            Some(z) => z.by_name.clone(),
            None => return,
        };
        // Until a whole pass moves nothing: a target going home to one zone makes room in
        // another (its giver's).
        let mut moved = true;
        while moved {
            moved = false;
            for &zone in &by_name {
                while let Some((t, to)) = self.home_move(zone, floor, cap) {
                    let from = self.known[t.2 as usize].collector;
                    self.relocate(t, from, to, touched);
                    moved = true;
                }
            }
        }
    }

    /// The next target of `zone` to bring home, with its receiver (the zone's least-loaded
    /// collector): the heaviest target away (then the highest key) that fits under the cap
    /// there and leaves its holder at or over the floor.
    ///
    /// Usually one of the heaviest that fit can go, so they are looked at first. When their
    /// holders all sit at the floor (hundreds of targets, after a zone table set on a placed
    /// fleet), the search goes holder by holder instead, busiest first: a holder can give at
    /// most its load over the floor, so the search stops once that is below the lightest
    /// target away or below the best found. Both find the same target: the first eligible one
    /// in the zone's away targets from the heaviest down. Cost: at most `QUICK_LOOKS`
    /// entries, then a range query per holder visited, at most one per collector.
    fn home_move(&self, zone: u32, floor: u64, cap: u64) -> Option<(Held, u32)> {
        let z = self.zoned.as_ref()?;
        let &(load, m) = z.order.get(zone as usize)?.first()?;
        let receiver = self.ids[m as usize];
        let room = cap.saturating_sub(load).min(u64::from(u32::MAX)) as u32;
        let away = z.away.get(zone as usize)?;
        let fits = ..=(room, u64::MAX, u32::MAX);
        let gives = |t: &Held| {
            let holder = self.known[t.2 as usize].collector;
            self.load[holder as usize] >= floor + u64::from(t.0)
        };
        let mut heaviest = away.range(fits).rev();
        if let Some(t) = heaviest.by_ref().take(QUICK_LOOKS).find(|t| gives(t)) {
            return Some((*t, receiver));
        }
        heaviest.next()?;
        let lightest = away.first()?.0;
        let holders = &z.away_by_holder[zone as usize];
        let mut best: Option<Held> = None;
        for &(holder_load, member) in self.order.iter().rev() {
            let Some(over_floor) = holder_load.checked_sub(floor) else {
                break;
            };
            let limit = over_floor.min(u64::from(room));
            if limit < u64::from(lightest) || best.is_some_and(|b| u64::from(b.0) > limit) {
                break;
            }
            let Some(held) = holders.get(&self.ids[member as usize]) else {
                continue;
            };
            if let Some(&t) = held
                .range(..=(limit as u32, u64::MAX, u32::MAX))
                .next_back()
            {
                if best.is_none_or(|b| t > b) {
                    best = Some(t);
                }
            }
        }
        best.map(|t| (t, receiver))
    }

    /// Place targets heaviest first, then by key, each on the least-loaded collector (lowest
    /// name on ties). In bulk: a heap of loads for the choices, then each collector's new
    /// targets added to its set at once (a bulk build when the set was empty: a full
    /// allocation).
    fn place(&mut self, mut pending: Vec<Pending>, touched: &mut Vec<u32>) {
        if pending.is_empty() {
            return;
        }
        pending.sort_unstable();
        let mut heap: BinaryHeap<Reverse<(u64, u32)>> =
            self.order.iter().map(|&x| Reverse(x)).collect();
        let mut fresh: Vec<Vec<Held>> = vec![Vec::new(); self.ids.len()];
        for (Reverse(w), key, slot) in pending {
            let Reverse((load, m)) = heap.pop().expect("members exist");
            heap.push(Reverse((load + u64::from(w), m)));
            fresh[m as usize].push((w, key, slot));
            self.known[slot as usize].collector = self.ids[m as usize];
            touched.push(slot);
        }
        for (m, list) in fresh.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            let id = self.ids[m];
            let added: u64 = list.iter().map(|t| u64::from(t.0)).sum();
            let set = &mut self.held[id as usize];
            if set.is_empty() {
                *set = list.into_iter().collect();
            } else {
                set.extend(list);
            }
            self.shift(id, |l| l + added);
        }
    }

    /// Put a slot (known, unplaced) on collector `id`, a member.
    fn hold(&mut self, slot: u32, id: u32) {
        let k = &mut self.known[slot as usize];
        k.collector = id;
        let (w, key, zone) = (k.weight, k.key, k.zone);
        self.held[id as usize].insert((w, key, slot));
        if let Some(z) = &mut self.zoned {
            if z.is_away(zone, id) {
                z.add_away(zone, id, (w, key, slot));
            }
        }
        self.shift(id, |l| l + u64::from(w));
    }

    /// Take a held target off collector `id` (the caller decides where it goes).
    fn release(&mut self, id: u32, t: Held) {
        let zone = self.known[t.2 as usize].zone;
        self.release_zoned(id, t, zone);
    }

    /// [`Rebalancing::release`] for a target of zone `zone` (given: `forget` has already
    /// cleared what was known of the slot).
    fn release_zoned(&mut self, id: u32, t: Held, zone: u32) {
        let removed = self.held[id as usize].remove(&t);
        debug_assert!(removed, "released a target the collector does not hold");
        if let Some(z) = &mut self.zoned {
            if z.is_away(zone, id) {
                z.remove_away(zone, id, &t);
            }
        }
        self.shift(id, |l| l - u64::from(t.0));
    }

    /// Change a collector's load, keeping the load order (non-members have no entry in it).
    fn shift(&mut self, id: u32, f: impl FnOnce(u64) -> u64) {
        let (old, m) = (self.load[id as usize], self.rank[id as usize]);
        let new = f(old);
        self.load[id as usize] = new;
        if m != NONE {
            self.order.remove(&(old, m));
            self.order.insert((new, m));
            if let Some(z) = &mut self.zoned {
                let zone = z.of_collector.get(id as usize).copied().unwrap_or(NONE);
                if zone != NONE {
                    z.order[zone as usize].remove(&(old, m));
                    z.order[zone as usize].insert((new, m));
                }
            }
        }
    }

    fn relocate(&mut self, t: Held, from: u32, to: u32, touched: &mut Vec<u32>) {
        self.release(from, t);
        self.hold(t.2, to);
        touched.push(t.2);
    }

    /// Restore the band by single moves (see the module docs) until none helps.
    fn rebalance(&mut self, touched: &mut Vec<u32>) {
        let Some(Band { floor, cap }) = self.band() else {
            return;
        };
        loop {
            let &(low, low_m) = self.order.first().expect("members exist");
            let to = self.ids[low_m as usize];
            // Over the cap: the busiest collectors that can give, busiest first.
            let mut pick = None;
            for &(load, m) in self.order.iter().rev() {
                if load <= cap || m == low_m {
                    break;
                }
                let limit = (cap.saturating_sub(low)).min(load - low - 1);
                let need = load - cap;
                let from = self.ids[m as usize];
                let set = &self.held[from as usize];
                if let Some(t) = lightest(set, need, limit.min(load.saturating_sub(floor)))
                    .or_else(|| heaviest(set, limit.min(need - 1)))
                    .or_else(|| lightest(set, need, limit))
                {
                    pick = Some((t, from));
                    break;
                }
            }
            if pick.is_none() && low < floor {
                // Under the floor: fill from the busiest collectors' surplus over the floor.
                let need = floor - low;
                for &(load, m) in self.order.iter().rev() {
                    if load <= floor || load <= low + 1 {
                        break;
                    }
                    let limit = (cap.saturating_sub(low))
                        .min(load - low - 1)
                        .min(load - floor);
                    let from = self.ids[m as usize];
                    let set = &self.held[from as usize];
                    if let Some(t) =
                        lightest(set, need, limit).or_else(|| heaviest(set, limit.min(need - 1)))
                    {
                        pick = Some((t, from));
                        break;
                    }
                }
            }
            match pick {
                Some((t, from)) => self.relocate(t, from, to, touched),
                None => match self.swap(floor, cap) {
                    Some((t, from, u)) => {
                        self.relocate(t, from, to, touched);
                        self.relocate(u, to, from, touched);
                    }
                    None => return,
                },
            }
        }
    }

    /// When no single move helps: an exchange between the busiest collector (over the cap) and
    /// the idlest (or the idlest, under the floor, and the busiest): a heavier target `t` of the
    /// busiest for a lighter `u` of the idlest, their difference `d` taking the busiest under the
    /// cap (the idlest over the floor) with the smallest `d` that does, else the largest `d`
    /// below that. The idlest stays under the cap, the busiest at or over the floor, and
    /// `d` is below the gap between them, so the sum of squared loads falls and the loop ends.
    /// Two collectors holding 3 × 1024 and 1024 + 4 × 108 (ε = 0.05) are balanced only so.
    fn swap(&self, floor: u64, cap: u64) -> Option<(Held, u32, Held)> {
        let &(low, low_m) = self.order.first()?;
        let &(high, high_m) = self.order.last()?;
        if high_m == low_m || high <= low + 1 {
            return None;
        }
        let need = if high > cap {
            high - cap
        } else if low < floor {
            floor - low
        } else {
            return None;
        };
        let limit = cap
            .saturating_sub(low)
            .min(high - low - 1)
            .min(high.saturating_sub(floor));
        let (from, to) = (self.ids[high_m as usize], self.ids[low_m as usize]);
        let (giver, taker) = (&self.held[from as usize], &self.held[to as usize]);
        // (covers the need, d or its complement, t, u): the smallest covering d, else the
        // largest d; ties by the targets' order.
        let mut best: Option<(bool, u64, Held, Held)> = None;
        for &t in giver {
            let a = u64::from(t.0);
            if a == 0 {
                continue;
            }
            // u of weight b with d = a − b in [1, limit]: b in [a − limit, a − 1].
            let lo = a.saturating_sub(limit) as u32;
            let hi = (a - 1) as u32;
            if limit == 0 || lo > hi {
                continue;
            }
            let range = || taker.range((lo, 0, 0)..=(hi, u64::MAX, u32::MAX));
            // Covering: the heaviest u with b ≤ a − need (smallest d ≥ need).
            let covering = (a >= need)
                .then(|| (a - need) as u32)
                .filter(|&top| top >= lo)
                .and_then(|top| {
                    taker
                        .range((lo, 0, 0)..=(top.min(hi), u64::MAX, u32::MAX))
                        .next_back()
                });
            let candidate = match covering {
                Some(&u) => (true, a - u64::from(u.0), u),
                // Else the lightest u in range (largest d, below the need).
                None => match range().next() {
                    Some(&u) => (false, a - u64::from(u.0), u),
                    None => continue,
                },
            };
            let better = match &best {
                None => true,
                Some((covers, d, ..)) => match (candidate.0, *covers) {
                    (true, false) => true,
                    (false, true) => false,
                    (true, true) => candidate.1 < *d,
                    (false, false) => candidate.1 > *d,
                },
            };
            if better {
                best = Some((candidate.0, candidate.1, t, candidate.2));
            }
        }
        best.map(|(_, _, t, u)| (t, from, u))
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        // B-tree nodes hold up to 11 entries; count entries at about 1.5× their size.
        let entries: usize =
            self.held.iter().map(BTreeSet::len).sum::<usize>() + self.unplaced.len();
        let zoned = self.zoned.as_ref().map_or(0, |z| {
            let entries: usize = 2 * z.away.iter().map(BTreeSet::len).sum::<usize>()
                + z.order.iter().map(BTreeSet::len).sum::<usize>();
            entries * std::mem::size_of::<Held>() * 3 / 2 + z.of_collector.capacity() * 4
        });
        zoned
            + entries * std::mem::size_of::<Held>() * 3 / 2
            + self.known.capacity() * std::mem::size_of::<Known>()
            + (self.ids.capacity() + self.rank.capacity() + self.dirty.capacity()) * 4
            + self.load.capacity() * 8
            + self.held.capacity() * std::mem::size_of::<BTreeSet<Held>>()
    }
}

/// The lightest target of weight in `[max(need, 1), limit]`.
fn lightest(set: &BTreeSet<Held>, need: u64, limit: u64) -> Option<Held> {
    let lo = need.max(1);
    if lo > limit || lo > u64::from(u32::MAX) {
        return None;
    }
    set.range((lo as u32, 0, 0)..)
        .next()
        .copied()
        .filter(|t| u64::from(t.0) <= limit)
}

/// The heaviest target of weight in `[1, limit]`.
fn heaviest(set: &BTreeSet<Held>, limit: u64) -> Option<Held> {
    if limit == 0 {
        return None;
    }
    let hi = limit.min(u64::from(u32::MAX)) as u32;
    set.range(..=(hi, u64::MAX, u32::MAX))
        .next_back()
        .copied()
        .filter(|t| t.0 >= 1)
}

/// `⌊(1−ε)·W/n⌋` in integers, ε given in millionths (0 when ε ≥ 1).
pub(crate) fn floor(total: u64, n: u64, eps_ppm: u64) -> u64 {
    let keep = 1_000_000u64.saturating_sub(eps_ppm);
    let num = u128::from(total) * u128::from(keep);
    (num / (u128::from(n) * 1_000_000)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_is_the_floor_of_the_shrunk_mean() {
        assert_eq!(floor(100, 10, 50_000), 9); // 9.5 → 9
        assert_eq!(floor(100, 10, 0), 10);
        assert_eq!(floor(100, 10, 2_000_000), 0);
    }

    #[test]
    fn range_picks_respect_need_and_limit() {
        let set: BTreeSet<Held> = [(5, 1, 0), (5, 2, 1), (9, 3, 2), (20, 4, 3), (0, 5, 4)]
            .into_iter()
            .collect();
        assert_eq!(lightest(&set, 6, 100), Some((9, 3, 2)));
        assert_eq!(lightest(&set, 6, 8), None);
        assert_eq!(lightest(&set, 0, 100), Some((5, 1, 0))); // weight 0 never moves
        assert_eq!(heaviest(&set, 19), Some((9, 3, 2)));
        assert_eq!(heaviest(&set, 5), Some((5, 2, 1)));
        assert_eq!(heaviest(&set, 4), None);
        assert_eq!(heaviest(&set, 0), None);
    }
}
