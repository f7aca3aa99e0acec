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
//!    the loop ends; it ends when no such move exists (then the state is a fixed point: settling
//!    it again moves nothing).
//!
//! # Cost
//! Per diff: `O(log)` B-tree work per changed target and per move, plus `O(n)` over the
//! collectors when the diff places targets or changes collectors; never a pass over all
//! targets. The busiest and idlest collectors come from an ordered set of `(load, name rank)`;
//! the target to move from a collector's ordered set of `(weight, key)` by one range query.
//! A target a band violation cannot be fixed around (the giant) is looked at again on the next
//! diff, one range query per stuck collector.
//!
//! # Sources
//! Greedy LPT scheduling (Graham 1969) for placement; the "move the least weight to restore the
//! bound" repair is the incremental load rebalancing of Aggarwal, Motwani and Zhu (SPAA 2003:
//! minimise the maximum load with a budget of moves), with the budget replaced by the band.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap};

use super::bounded::bound;
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
    live: bool,
}

const UNKNOWN: Known = Known {
    key: 0,
    weight: 0,
    collector: NONE,
    live: false,
};

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
}

/// The weight band of the current state (for `explain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Band {
    pub floor: u64,
    pub cap: u64,
}

impl Rebalancing {
    pub(crate) fn new(eps_ppm: u64) -> Rebalancing {
        Rebalancing {
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

    /// The band for the current state.
    pub(crate) fn band(&self) -> Option<Band> {
        let n = self.ids.len() as u64;
        (n > 0).then(|| Band {
            floor: floor(self.total, n, self.eps_ppm),
            cap: bound(self.total, n, self.eps_ppm),
        })
    }

    /// Bring the tables up to date and restore the band; push `(slot, collector id or NONE)`
    /// for every target whose collector changes (once per target, its final collector).
    pub(crate) fn settle(&mut self, targets: &Targets, out: &mut Vec<(u32, u32)>) {
        if self.dirty.is_empty() && !self.collectors_changed {
            return;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        if self.known.len() < targets.capacity_slots() {
            self.known.resize(targets.capacity_slots(), UNKNOWN);
        }
        for &slot in &dirty {
            self.forget(slot);
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
            self.place(pending, &mut touched);
            self.rebalance(&mut touched);
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
            self.release(k.collector, (k.weight, k.key, slot));
        }
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
        let (w, key) = (k.weight, k.key);
        self.held[id as usize].insert((w, key, slot));
        self.shift(id, |l| l + u64::from(w));
    }

    /// Take a held target off collector `id` (the caller decides where it goes).
    fn release(&mut self, id: u32, t: Held) {
        let removed = self.held[id as usize].remove(&t);
        debug_assert!(removed, "released a target the collector does not hold");
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
                None => return,
            }
        }
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        // B-tree nodes hold up to 11 entries; count entries at about 1.5× their size.
        let entries: usize =
            self.held.iter().map(BTreeSet::len).sum::<usize>() + self.unplaced.len();
        entries * std::mem::size_of::<Held>() * 3 / 2
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
