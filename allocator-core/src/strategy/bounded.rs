//! `bounded-hashing`: our own strategy. Deterministic, weight-aware consistent hashing with
//! bounded loads and an even spread of every job.
//!
//! # What it guarantees
//! - **A function of the state.** The assignment depends only on the current targets (key, job,
//!   weight) and collectors (names), never on the diffs that built them, so replicas and
//!   embedding collectors agree without talking.
//! - **Bounded weight.** A target is placed past `cap = ⌈(1+ε)·W/n⌉` (W the total weight, n
//!   the collectors; `min(cap, max_weight)` with an absolute cap) only when no collector has room
//!   for it at its turn — in practice a single target heavier than the slack, like
//!   kube-state-metrics on many small collectors. It then goes to its least-loaded probe; with an
//!   absolute cap it stays unassigned instead, so that cap is never broken.
//! - **Even jobs, as far as the cap allows.** Every collector may take `⌊N/n⌋` targets of a job
//!   with `N` targets, and the `N mod n` collectors that rank highest for the job (rendezvous on
//!   the job and collector names) one more, so the extra slots move little when `n` changes. A
//!   target leaves its job's quota only when no collector the quota allows has room under the
//!   cap. The two goals can conflict outright: with four 2,000-weight targets and 2,400 light
//!   ones on 12 collectors, the giants' collectors cannot also take their even share of the light
//!   job without breaking the cap. Balance by weight is what users ask for first (Go allocator
//!   #3128, #4923, #5605), so the cap wins. With equal weights the quotas always fit under the cap
//!   and every job is within one target of even; with heavy-tailed weights the spread is measured
//!   in `benches/README.md`.
//! - **Moves.** A target's candidates come from its own hash, so adding a collector takes about
//!   `1/(n+1)` of every collector's first choices. But a fixed visiting order with caps is not
//!   move-minimal: when `n` changes, every cap and job quota changes, collectors fill at other
//!   points of the order, and the light targets that arrive late cascade (measured on 100k
//!   heavy-tailed targets: 0.97× the minimum at 10 collectors, 1.35× at 100, 8.4× at 1,000; see
//!   `benches/README.md`). That is the price of
//!   tight balance as a function of the state: Mirrokni et al. bound the moves of one
//!   bounded-load update by `O(1/ε²)`, not `O(1)`.
//!
//! # How it decides
//! Targets are visited in one canonical order — weight descending, then key — and each takes the
//! first of its candidates that has room under `cap` and a slot in its job's quota (the full
//! preference is in `Bounded::visit`). The candidates are probes of a ring: probe `k` hashes the
//! target key with seed `k` (xxHash64) and takes the owner of the next of the collectors' points
//! (1,024 per collector up to 256 collectors, then fewer — a power of two, at least 128 — so the
//! ring stays near 2^18 points and cache-sized; with 128 points per collector at 10 collectors
//! the shares of the circle differ by ±9%, which showed up directly as uneven loads and extra
//! moves). Each target's first probe is cached in its entry: most targets take it. Heaviest
//! first is the longest-processing-time rule: the big targets land while everything is empty
//! and the small ones fill the gaps, which keeps the maximum at the cap with ~100 targets per
//! collector.
//!
//! # Why this design (sources)
//! - Consistent hashing with bounded loads (Mirrokni, Thorup, Zadimoghaddam, SODA 2018): cap
//!   every bin at `⌈(1+ε)·m/n⌉` and let an item that finds its bin full walk on; expected moves
//!   per update are `O(1/ε²)`. We keep the cap, but count weight instead of items, and walk by
//!   independent probes instead of ring successors so overflow does not pile onto a neighbour.
//!   Their insertion order is arbitrary (the result depends on history); we fix one canonical
//!   order, which makes the result a function of the state.
//! - Multi-probe consistent hashing (Appleton, O'Reilly 2015): several hashed probes per key,
//!   fewer points per node for the same balance; our probes are its candidates, taken in order.
//! - Weighted rendezvous hashing (Thaler, Ravishankar; Schindelhauer, Schomaker): per-key
//!   rankings of nodes, movement minimal, but `O(n)` per key (1,000 hashes per target at 1,000
//!   collectors); the probes give the same independent per-key orders for a few hashes.
//! - Jump consistent hash (Lamping, Veach 2014) and AnchorHash (Mendelson et al. 2020): perfect
//!   balance and minimal movement with numbered buckets, but removing any collector but the last
//!   needs state that depends on the order of removals (AnchorHash's removal stack), which would
//!   break "a function of the state". Named collectors on a ring do not.
//! - The power of two choices (Azar, Broder, Karlin, Upfal; Mitzenmacher): two random choices
//!   take the maximum from `log n/log log n` to `log log n` above the mean; it still leaves an
//!   unbounded excess with weights, so here probes are tried until one has room under the cap.
//!
//! # Cost
//! The canonical order is kept sorted across diffs (a diff merges its changed targets in), and
//! every diff that changes anything re-runs the visit over all targets: with a fixed order, a
//! change anywhere can shift the room the later targets see, so incremental repair would have to
//! replay that order anyway. The visit is a sequential pass over 32-byte entries with one hash
//! and one table lookup per probe past the first; an empty diff does nothing. Measured worst
//! case: 24.7 ms for a 1% churn diff on 100k targets and 1,000 collectors.

use std::cmp::Reverse;

use xxhash_rust::xxh64::xxh64;

use super::Member;
use crate::config::{BoundedConfig, MAX_RING_POINTS};
use crate::error::{ConfigError, Error};
use crate::ids::NONE;
use crate::targets::Targets;

/// Points per collector on the probe ring.
const VNODES: u64 = 1024;
/// Points on the whole ring at most (fewer per collector past 256 collectors), so the ring
/// stays cache-sized: a probe into a ring of megabytes is a cache miss.
const MAX_POINTS: u64 = 1 << 18;

/// Points per collector for a ring of `n` collectors: a power of two, so it changes only when
/// n crosses a power of two (a collector's points are a prefix of one fixed sequence, so even
/// then only the dropped or added points' arcs change hands).
fn vnodes(n: usize) -> u64 {
    let fair = MAX_POINTS / n.max(1) as u64;
    let pow2 = if fair == 0 {
        1
    } else {
        1 << (63 - fair.leading_zeros())
    };
    pow2.clamp(128, VNODES)
}
/// Probes tried before the least-loaded fallback.
const PROBES: u64 = 16;

/// Collector points on the 64-bit circle, with a table from the top bits of a point to the first
/// ring index at or after it, so a probe costs a lookup and a short scan.
#[derive(Debug, Clone, Default)]
pub(crate) struct ProbeRing {
    points: Vec<u64>,
    /// Member index of each point.
    owners: Vec<u32>,
    /// Hash of each member's name.
    names: Vec<u64>,
    table: Vec<u32>,
    shift: u32,
}

impl ProbeRing {
    /// The ring of `members`; refused past [`MAX_RING_POINTS`] points (at least 128 a member),
    /// as the consistent-hashing ring is, rather than asking for gigabytes.
    pub(crate) fn build(members: &[Member<'_>]) -> Result<ProbeRing, Error> {
        let per = vnodes(members.len());
        if (members.len() as u64).saturating_mul(per) > MAX_RING_POINTS {
            return Err(ConfigError::ProbeRingTooLarge(members.len() as u64).into());
        }
        let mut pts: Vec<(u64, u32)> = Vec::with_capacity(members.len() * per as usize);
        for (m, member) in members.iter().enumerate() {
            for v in 0..per {
                pts.push((xxh64(member.name.as_bytes(), v), m as u32));
            }
        }
        // Equal points (vanishingly rare) order by member index, i.e. by name: deterministic.
        pts.sort_unstable();
        let bits = (usize::BITS - pts.len().leading_zeros()).clamp(4, 20);
        let shift = 64 - bits;
        let mut table = vec![0u32; 1 << bits];
        let mut i = 0;
        for (b, start) in table.iter_mut().enumerate() {
            while i < pts.len() && pts[i].0 < (b as u64) << shift {
                i += 1;
            }
            *start = i as u32;
        }
        Ok(ProbeRing {
            points: pts.iter().map(|p| p.0).collect(),
            owners: pts.iter().map(|p| p.1).collect(),
            table,
            shift,
            names: members
                .iter()
                .map(|m| xxh64(m.name.as_bytes(), 0))
                .collect(),
        })
    }

    /// The member owning the first point at or after `point` (wrapping). Needs a member.
    #[inline]
    fn owner(&self, point: u64) -> usize {
        let mut i = self.table[(point >> self.shift) as usize] as usize;
        while i < self.points.len() && self.points[i] < point {
            i += 1;
        }
        if i == self.points.len() {
            i = 0;
        }
        self.owners[i] as usize
    }

    fn heap_bytes(&self) -> usize {
        self.points.capacity() * 8 + (self.owners.capacity() + self.table.capacity()) * 4
    }
}

/// One target in the canonical order.
#[derive(Debug, Clone, Copy)]
struct Entry {
    key: u64,
    weight: u32,
    job: u32,
    slot: u32,
    /// The collector id the target has now (NONE: none).
    collector: u32,
    /// Member owning the target's first probe, cached: most targets take it, and with a large
    /// ring each lookup is a cache miss. Refreshed whenever the collectors change.
    first: u32,
}

impl Entry {
    #[inline]
    fn rank(&self) -> (Reverse<u32>, u64) {
        (Reverse(self.weight), self.key)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Bounded {
    eps_ppm: u64,
    max_weight: u64,
    ring: ProbeRing,
    /// Member index (collector name order) → collector id.
    ids: Vec<u32>,
    /// Every target, in canonical order.
    order: Vec<Entry>,
    /// Slots whose target was added, changed or removed since the last visit.
    dirty: Vec<u32>,
    collectors_changed: bool,
}

impl Bounded {
    pub(crate) fn new(config: BoundedConfig) -> Bounded {
        Bounded {
            eps_ppm: config.epsilon_ppm(),
            max_weight: config.max_weight,
            ring: ProbeRing::default(),
            ids: Vec::new(),
            order: Vec::new(),
            dirty: Vec::new(),
            collectors_changed: false,
        }
    }

    /// A target in this slot was added, changed or removed.
    #[inline]
    pub(crate) fn touch(&mut self, slot: u32) {
        self.dirty.push(slot);
    }

    /// Install the ring of a new collector set; `ids[m]` is the collector id of member `m`.
    pub(crate) fn commit(&mut self, ring: ProbeRing, ids: &[u32]) {
        self.ring = ring;
        self.ids = ids.to_vec();
        self.collectors_changed = true;
    }

    /// Bring the order up to date and visit it; push `(slot, collector id or NONE)` for every
    /// target whose collector changes. `job_total` counts the targets of each job id.
    pub(crate) fn settle(
        &mut self,
        targets: &Targets,
        job_names: &[Box<str>],
        job_total: &[u32],
        out: &mut Vec<(u32, u32)>,
    ) {
        if self.dirty.is_empty() && !self.collectors_changed {
            return;
        }
        self.merge_dirty(targets);
        if std::mem::take(&mut self.collectors_changed) {
            for i in 0..self.order.len() {
                self.order[i].first = self.first_probe(self.order[i].key);
            }
        }
        self.visit(job_names, job_total, out);
    }

    #[inline]
    fn probe(key: u64, k: u64) -> u64 {
        xxh64(&key.to_le_bytes(), k)
    }

    fn first_probe(&self, key: u64) -> u32 {
        if self.ids.is_empty() {
            NONE
        } else {
            self.ring.owner(Self::probe(key, 0)) as u32
        }
    }

    /// Drop the entries of dirty slots and merge in the current records of those still live.
    fn merge_dirty(&mut self, targets: &Targets) {
        if self.dirty.is_empty() {
            return;
        }
        let mut mark = vec![false; targets.capacity_slots()];
        for &s in &self.dirty {
            mark[s as usize] = true;
        }
        self.order.retain(|e| !mark[e.slot as usize]);
        let mut fresh = Vec::new();
        let dirty = std::mem::take(&mut self.dirty);
        for &s in &dirty {
            if !std::mem::take(&mut mark[s as usize]) {
                continue; // listed twice
            }
            let r = targets.get(s);
            if r.is_live() {
                fresh.push(Entry {
                    key: r.key,
                    weight: r.weight,
                    job: r.job,
                    slot: s,
                    collector: r.collector,
                    first: self.first_probe(r.key),
                });
            }
        }
        // Keep the buffer for the next diff.
        self.dirty = dirty;
        self.dirty.clear();
        fresh.sort_unstable_by_key(Entry::rank);
        if self.order.is_empty() {
            self.order = fresh;
            return;
        }
        let old = std::mem::take(&mut self.order);
        let mut merged = Vec::with_capacity(old.len() + fresh.len());
        let (mut a, mut b) = (old.into_iter().peekable(), fresh.into_iter().peekable());
        loop {
            let take_a = match (a.peek(), b.peek()) {
                (Some(x), Some(y)) => x.rank() < y.rank(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            merged.extend(if take_a { a.next() } else { b.next() });
        }
        self.order = merged;
    }

    /// The canonical visit (see the module docs).
    fn visit(&mut self, job_names: &[Box<str>], job_total: &[u32], out: &mut Vec<(u32, u32)>) {
        let n = self.ids.len();
        if n == 0 {
            for e in &mut self.order {
                if e.collector != NONE {
                    out.push((e.slot, NONE));
                    e.collector = NONE;
                }
            }
            return;
        }
        let total: u64 = self.order.iter().map(|e| u64::from(e.weight)).sum();
        let bound = bound(total, n as u64, self.eps_ppm);
        let (cap, hard) = match self.max_weight {
            0 => (bound, u64::MAX),
            max => (bound.min(max), max),
        };
        // Jobs in use, densely numbered, each with a row of the targets every collector may
        // still take: ⌊N/n⌋, plus one on the N mod n collectors that rank highest for the job
        // (rendezvous on job and collector names), so the extra slots move little when n does.
        let mut dense = vec![NONE; job_total.len()];
        let mut left: Vec<u32> = Vec::new();
        let mut rank: Vec<(u64, usize)> = Vec::with_capacity(n);
        for (j, &count) in job_total.iter().enumerate() {
            if count == 0 {
                continue;
            }
            dense[j] = (left.len() / n) as u32;
            let (floor, extra) = (count / n as u32, (count % n as u32) as usize);
            let row = left.len();
            left.resize(row + n, floor);
            if extra > 0 {
                let job = xxh64(job_names[j].as_bytes(), 0);
                rank.clear();
                rank.extend(
                    self.ring
                        .names
                        .iter()
                        .enumerate()
                        .map(|(m, &h)| (mix(job, h), m)),
                );
                rank.select_nth_unstable_by(extra - 1, |a, b| b.cmp(a));
                for &(_, m) in &rank[..extra] {
                    left[row + m] += 1;
                }
            }
        }
        // Per job, the collectors with quota left (and each one's position in that list), so
        // the search for "any collector the quota allows" shrinks as the job fills.
        let jobs = left.len() / n;
        let mut open: Vec<Vec<u32>> = Vec::with_capacity(jobs);
        let mut pos = vec![NONE; left.len()];
        for d in 0..jobs {
            let list: Vec<u32> = (0..n as u32)
                .filter(|&m| left[d * n + m as usize] > 0)
                .collect();
            for (i, &m) in list.iter().enumerate() {
                pos[d * n + m as usize] = i as u32;
            }
            open.push(list);
        }
        let mut loads = vec![0u64; n];
        for e in &mut self.order {
            let d = dense[e.job as usize] as usize;
            let row = &mut left[d * n..(d + 1) * n];
            let w = u64::from(e.weight);
            let allowed = |m: usize| row[m] > 0;
            // Preference, each step only if the one before finds nothing: the first probe with
            // room that the job's quota allows; the least-loaded collector with room that the
            // quota allows; the first probe with room, then the least-loaded collector with room
            // (the quota gives way, the cap does not); the least-loaded probe (a target too heavy
            // for the room left anywhere stays near its own hash); the least-loaded collector
            // under the absolute cap. Ties go to the lowest name.
            let fits = |m: usize| loads[m] + w <= cap;
            let mut pick = None;
            let (mut first_fit, mut spare): (Option<usize>, Option<usize>) = (None, None);
            for k in 0..PROBES {
                let m = if k == 0 {
                    e.first as usize
                } else {
                    self.ring.owner(Self::probe(e.key, k))
                };
                if fits(m) {
                    if allowed(m) {
                        pick = Some(m);
                        break;
                    }
                    first_fit = first_fit.or(Some(m));
                }
                if loads[m] + w <= hard && spare.is_none_or(|s| loads[m] < loads[s]) {
                    spare = Some(m);
                }
            }
            let least = |ok: &dyn Fn(usize) -> bool| {
                (0..n).filter(|&m| ok(m)).min_by_key(|&m| (loads[m], m))
            };
            let pick = pick
                .or_else(|| {
                    open[d]
                        .iter()
                        .map(|&m| m as usize)
                        .filter(|&m| fits(m))
                        .min_by_key(|&m| (loads[m], m))
                })
                .or(first_fit)
                .or_else(|| least(&fits))
                .or(spare)
                .or_else(|| least(&|m| loads[m] + w <= hard));
            let to = match pick {
                Some(m) => {
                    if row[m] == 1 {
                        // The job's quota on m is used up: drop m from its open list.
                        let list = &mut open[d];
                        let i = pos[d * n + m] as usize;
                        list.swap_remove(i);
                        if let Some(&moved) = list.get(i) {
                            pos[d * n + moved as usize] = i as u32;
                        }
                    }
                    row[m] = row[m].saturating_sub(1);
                    loads[m] += w;
                    self.ids[m]
                }
                None => NONE,
            };
            if to != e.collector {
                out.push((e.slot, to));
                e.collector = to;
            }
        }
    }

    /// The collector ids of a key's probes in probe order, each once (for `explain`).
    pub(crate) fn probe_ids(&self, key: u64) -> Vec<u32> {
        let mut out = Vec::new();
        if self.ids.is_empty() {
            return out;
        }
        for k in 0..PROBES {
            let id = self.ids[self.ring.owner(Self::probe(key, k))];
            if !out.contains(&id) {
                out.push(id);
            }
        }
        out
    }

    /// The weight cap `visit` applies for a total weight (0 without collectors).
    pub(crate) fn cap(&self, total: u64) -> u64 {
        match (self.ids.len() as u64, self.max_weight) {
            (0, _) => 0,
            (n, 0) => bound(total, n, self.eps_ppm),
            (n, max) => bound(total, n, self.eps_ppm).min(max),
        }
    }

    /// The absolute cap (0: none).
    pub(crate) fn max_weight(&self) -> u64 {
        self.max_weight
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        self.ring.heap_bytes()
            + self.order.capacity() * std::mem::size_of::<Entry>()
            + self.ids.capacity() * 4
            + self.dirty.capacity() * 4
    }
}

/// A job's score for a collector, from the two names' hashes.
#[inline]
fn mix(job: u64, collector: u64) -> u64 {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&job.to_le_bytes());
    b[8..].copy_from_slice(&collector.to_le_bytes());
    xxh64(&b, 0)
}

/// `⌈(1+ε)·W/n⌉` in integers, ε given in millionths.
pub(crate) fn bound(total: u64, n: u64, eps_ppm: u64) -> u64 {
    let num = u128::from(total) * u128::from(1_000_000 + eps_ppm);
    let den = u128::from(n) * 1_000_000;
    num.div_ceil(den).min(u128::from(u64::MAX)) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bound_is_the_ceiling_of_the_slackened_mean() {
        assert_eq!(bound(100, 10, 50_000), 11); // 10.5 → 11
        assert_eq!(bound(100, 10, 0), 10);
        assert_eq!(bound(0, 3, 50_000), 0);
        assert_eq!(bound(7, 2, 0), 4);
    }

    #[test]
    fn every_probe_lands_on_a_member_and_owners_follow_points() {
        let names: Vec<String> = (0..7).map(|i| format!("c{i}")).collect();
        let members: Vec<Member<'_>> = names
            .iter()
            .map(|n| Member {
                name: n,
                node: NONE,
            })
            .collect();
        let ring = ProbeRing::build(&members).unwrap();
        assert_eq!(ring.points.len(), 7 * vnodes(7) as usize);
        assert_eq!(vnodes(1000), 256);
        assert_eq!(vnodes(1001), 256);
        assert_eq!(vnodes(256), 1024);
        assert_eq!(vnodes(5000), 128);
        assert!(ring.points.windows(2).all(|w| w[0] <= w[1]));
        for p in [0, 1, u64::MAX, 1 << 63, ring.points[5], ring.points[5] + 1] {
            // The owner is the first point at or after p, found by a plain scan.
            let i = ring.points.iter().position(|&x| x >= p).unwrap_or(0);
            assert_eq!(ring.owner(p), ring.owners[i] as usize);
        }
    }
}
