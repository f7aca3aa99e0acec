//! `least-weighted` (DESIGN.md §6.4): sticky. A new or orphaned target goes to the collector with
//! the fewest targets (or least weight, when weighted); ties go to the fewest targets of the same
//! job, then to the smallest name. Callers visit targets in key order, so results reproduce.

use super::Ctx;
use crate::ids::NONE;
use crate::loads::Loads;
use crate::targets::TargetRecord;

pub(crate) fn choose(t: &TargetRecord, ctx: &Ctx<'_>) -> u32 {
    let loads = ctx.loads;
    let same_job = &loads.per_job[t.job as usize];
    let mut best = NONE;
    let mut best_key = (u64::MAX, u32::MAX);
    // Collectors are visited in name order and only a strictly smaller key wins,
    // so the smallest name wins every full tie.
    for &c in ctx.collectors.sorted() {
        let i = c.index() as usize;
        let load = if ctx.weighted {
            loads.weight[i]
        } else {
            u64::from(loads.count[i])
        };
        let key = (load, same_job[i]);
        if best == NONE || key < best_key {
            best = c.index();
            best_key = key;
        }
    }
    best
}

/// [`choose`] for a run of placements, in O(jobs · log collectors) per placement instead of
/// O(collectors): one tournament tree per job over the collectors in name order, whose leaves
/// are the keys `choose` compares — (load, targets of the job, name rank), packed so that
/// integer order is that order — and whose root is therefore `choose`'s answer.
///
/// Built from the loads at the start of a run; after each placement the caller refreshes the
/// collector whose load changed, from the loads themselves, so the trees never hold their own
/// copy of a count.
pub(crate) struct Tournament {
    /// Leaves per tree (a power of two at least the number of collectors).
    size: usize,
    /// Collector id by name rank.
    ids: Vec<u32>,
    /// Name rank by collector id (NONE: not alive).
    rank_of: Vec<u32>,
    /// Per job, a tree of `2 * size` keys: node `i` holds the smaller of `2i` and `2i + 1`.
    trees: Vec<u128>,
    weighted: bool,
}

impl Tournament {
    /// Whether a run of `placements` is faster this way: enough collectors that a scan costs
    /// more than updating every job's tree, and a run long enough to pay for building them.
    pub(crate) fn worth_it(ctx: &Ctx<'_>, placements: usize) -> bool {
        let collectors = ctx.collectors.len();
        let jobs = ctx.loads.per_job.len().max(1);
        let depth = (usize::BITS - collectors.leading_zeros()) as usize + 1;
        collectors >= 64 && jobs * depth * 4 < collectors && placements * 4 >= collectors
    }

    pub(crate) fn new(ctx: &Ctx<'_>) -> Tournament {
        let ids: Vec<u32> = ctx.collectors.sorted().iter().map(|c| c.index()).collect();
        let size = ids.len().next_power_of_two().max(1);
        let mut rank_of = vec![NONE; ctx.loads.count.len()];
        for (rank, &id) in ids.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
        }
        let jobs = ctx.loads.per_job.len();
        let mut t = Tournament {
            size,
            ids,
            rank_of,
            trees: vec![u128::MAX; jobs * 2 * size],
            weighted: ctx.weighted,
        };
        for job in 0..jobs {
            let base = job * 2 * size;
            for rank in 0..t.ids.len() {
                t.trees[base + size + rank] = t.key(ctx.loads, job, rank);
            }
            for i in (1..size).rev() {
                t.trees[base + i] = t.trees[base + 2 * i].min(t.trees[base + 2 * i + 1]);
            }
        }
        t
    }

    #[inline]
    fn key(&self, loads: &Loads, job: usize, rank: usize) -> u128 {
        let c = self.ids[rank] as usize;
        let load = if self.weighted {
            loads.weight[c]
        } else {
            u64::from(loads.count[c])
        };
        (u128::from(load) << 64) | (u128::from(loads.per_job[job][c]) << 32) | rank as u128
    }

    /// What [`choose`] returns for a target of this job, given the loads last refreshed.
    #[inline]
    pub(crate) fn choose(&self, job: u32) -> u32 {
        let root = self.trees[job as usize * 2 * self.size + 1];
        if root == u128::MAX {
            return NONE;
        }
        self.ids[root as u32 as usize]
    }

    /// A collector's load changed: recompute its leaf in every job's tree, and the nodes
    /// above it until one does not change.
    pub(crate) fn refresh(&mut self, collector: u32, loads: &Loads) {
        let Some(&rank) = self.rank_of.get(collector as usize) else {
            return;
        };
        if rank == NONE {
            return;
        }
        let size = self.size;
        for job in 0..self.trees.len() / (2 * size) {
            let key = self.key(loads, job, rank as usize);
            let tree = &mut self.trees[job * 2 * size..(job + 1) * 2 * size];
            let mut i = size + rank as usize;
            tree[i] = key;
            while i > 1 {
                i /= 2;
                let min = tree[2 * i].min(tree[2 * i + 1]);
                if tree[i] == min {
                    break;
                }
                tree[i] = min;
            }
        }
    }
}
