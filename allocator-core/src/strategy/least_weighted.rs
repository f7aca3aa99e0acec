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
    trees: Trees,
    weighted: bool,
}

/// Per job, a tree of `2 * size` keys: node `i` holds the smaller of `2i` and `2i + 1`.
enum Trees {
    /// Keys packed in 64 bits (count: 24, job count: 24, rank: 16), when every count of the
    /// run fits: half the memory and one-word compares on the path a refresh walks.
    Narrow(Vec<u64>),
    /// Keys in 128 bits (load: 64, job count: 32, rank: 32).
    Wide(Vec<u128>),
}

/// The limit of counts and ranks in a narrow key.
const NARROW_COUNT: u64 = 1 << 24;
const NARROW_RANK: usize = 1 << 16;

/// Set leaf `rank` of `tree` and recompute the nodes above it until one does not change.
#[inline]
fn update<K: Copy + Ord>(tree: &mut [K], size: usize, rank: usize, key: K) {
    let mut i = size + rank;
    tree[i] = key;
    while i > 1 {
        let min = tree[i].min(tree[i ^ 1]);
        i /= 2;
        if tree[i] == min {
            break;
        }
        tree[i] = min;
    }
}

/// Fill the inner nodes of a tree whose leaves are set.
fn build<K: Copy + Ord>(tree: &mut [K], size: usize) {
    for i in (1..size).rev() {
        tree[i] = tree[2 * i].min(tree[2 * i + 1]);
    }
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

    /// The trees for a run of at most `placements` placements, each adding one target.
    pub(crate) fn new(ctx: &Ctx<'_>, placements: usize) -> Tournament {
        let ids: Vec<u32> = ctx.collectors.sorted().iter().map(|c| c.index()).collect();
        let size = ids.len().next_power_of_two().max(1);
        let mut rank_of = vec![NONE; ctx.loads.count.len()];
        for (rank, &id) in ids.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
        }
        let jobs = ctx.loads.per_job.len();
        // A count grows by one per placement, and a job's count never exceeds the total.
        let most = ids
            .iter()
            .map(|&c| u64::from(ctx.loads.count[c as usize]))
            .max()
            .unwrap_or(0);
        let narrow =
            !ctx.weighted && most + (placements as u64) < NARROW_COUNT && ids.len() <= NARROW_RANK;
        let mut t = Tournament {
            size,
            ids,
            rank_of,
            trees: if narrow {
                Trees::Narrow(vec![u64::MAX; jobs * 2 * size])
            } else {
                Trees::Wide(vec![u128::MAX; jobs * 2 * size])
            },
            weighted: ctx.weighted,
        };
        for job in 0..jobs {
            let base = job * 2 * size;
            for rank in 0..t.ids.len() {
                let c = t.ids[rank] as usize;
                match &mut t.trees {
                    Trees::Narrow(trees) => {
                        trees[base + size + rank] = narrow_key(ctx.loads, job, c, rank)
                    }
                    Trees::Wide(trees) => {
                        trees[base + size + rank] = wide_key(ctx.loads, t.weighted, job, c, rank)
                    }
                }
            }
            match &mut t.trees {
                Trees::Narrow(trees) => build(&mut trees[base..base + 2 * size], size),
                Trees::Wide(trees) => build(&mut trees[base..base + 2 * size], size),
            }
        }
        t
    }

    /// What [`choose`] returns for a target of this job, given the loads last refreshed.
    #[inline]
    pub(crate) fn choose(&self, job: u32) -> u32 {
        let root = job as usize * 2 * self.size + 1;
        let rank = match &self.trees {
            Trees::Narrow(trees) => match trees[root] {
                u64::MAX => return NONE,
                key => (key as usize) & (NARROW_RANK - 1),
            },
            Trees::Wide(trees) => match trees[root] {
                u128::MAX => return NONE,
                key => key as u32 as usize,
            },
        };
        self.ids[rank]
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
        let (size, rank, c) = (self.size, rank as usize, collector as usize);
        match &mut self.trees {
            Trees::Narrow(trees) => {
                for (job, tree) in trees.chunks_exact_mut(2 * size).enumerate() {
                    update(tree, size, rank, narrow_key(loads, job, c, rank));
                }
            }
            Trees::Wide(trees) => {
                for (job, tree) in trees.chunks_exact_mut(2 * size).enumerate() {
                    update(
                        tree,
                        size,
                        rank,
                        wide_key(loads, self.weighted, job, c, rank),
                    );
                }
            }
        }
    }
}

/// (count, targets of the job, rank) in 64 bits; the caller checked that each fits.
#[inline]
fn narrow_key(loads: &Loads, job: usize, c: usize, rank: usize) -> u64 {
    u64::from(loads.count[c]) << 40 | u64::from(loads.per_job[job][c]) << 16 | rank as u64
}

/// (load, targets of the job, rank) in 128 bits.
#[inline]
fn wide_key(loads: &Loads, weighted: bool, job: usize, c: usize, rank: usize) -> u128 {
    let load = if weighted {
        loads.weight[c]
    } else {
        u64::from(loads.count[c])
    };
    (u128::from(load) << 64) | (u128::from(loads.per_job[job][c]) << 32) | rank as u128
}
