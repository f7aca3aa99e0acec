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

/// [`choose`] for a run of placements, each adding one target to the collector it names (a
/// full allocation, a removed collector's orphans): the caller asks [`Run::choose`], places the
/// target, then tells [`Run::placed`] which collector received it.
pub(crate) enum Run {
    /// By target count: a bucket queue by count, O(jobs) per placement.
    Levels(Box<Levels>),
    /// By weight, which a placement raises by any amount: O(jobs · log collectors).
    Tournament(Tournament),
}

impl Run {
    /// Whether a run of `placements` is faster this way than a scan per placement: enough
    /// collectors that a scan costs more than updating every job's structure, and a run long
    /// enough to pay for building them.
    pub(crate) fn worth_it(ctx: &Ctx<'_>, placements: usize) -> bool {
        let collectors = ctx.collectors.len();
        let jobs = ctx.loads.per_job.len().max(1);
        let depth = (usize::BITS - collectors.leading_zeros()) as usize + 1;
        collectors >= 64 && jobs * depth * 4 < collectors && placements * 4 >= collectors
    }

    pub(crate) fn new(ctx: &Ctx<'_>) -> Run {
        if ctx.weighted {
            Run::Tournament(Tournament::new(ctx))
        } else {
            Run::Levels(Box::new(Levels::new(ctx)))
        }
    }

    /// What [`choose`] returns for a target of this job, given the loads of the last
    /// [`Run::placed`].
    #[inline]
    pub(crate) fn choose(&mut self, job: u32, loads: &Loads) -> u32 {
        match self {
            Run::Levels(l) => l.choose(job, loads),
            Run::Tournament(t) => t.choose(job),
        }
    }

    /// `collector` (any collector, or NONE) received a target of `job`; `loads` count it
    /// already.
    #[inline]
    pub(crate) fn placed(&mut self, collector: u32, job: u32, loads: &Loads) {
        match self {
            Run::Levels(l) => l.placed(collector, job, loads),
            Run::Tournament(t) => t.refresh(collector, loads),
        }
    }
}

/// [`choose`] by target count as a bucket queue by count ("level").
///
/// Only the lowest level can hold the answer: `choose` takes the smallest (count, targets of
/// the job, name rank), so the answer is the collector of the lowest count with the fewest
/// targets of the job, then the smallest name. A placement raises one count by exactly one,
/// so the collectors are kept sorted by count in O(1) per placement (the placed collector
/// swaps with the last of its level, whose boundary moves down by one), and the lowest level
/// only ever loses members until it is empty and the next one, never empty then, takes over.
///
/// While a collector stays in the lowest level its targets per job cannot change (a target
/// added to it would raise its count), so each job orders the lowest level once — by
/// (targets of the job, rank), a counting sort — when it is first asked at that level, and
/// then walks that list, skipping the collectors that have left the level since. Each level
/// costs each job asked at it one pass over the level's members; a placement costs a few
/// steps per job on average, instead of a scan of every collector or a walk of every job's
/// tournament tree.
pub(crate) struct Levels {
    /// Collector id by name rank.
    ids: Vec<u32>,
    /// Name rank by collector id (NONE: not alive).
    rank_of: Vec<u32>,
    /// Target count by rank, as last placed.
    count: Vec<u32>,
    /// Ranks sorted by count (any order within a count).
    order: Vec<u32>,
    /// Position in `order` by rank.
    pos: Vec<u32>,
    /// `first[l]`: the position in `order` of the first rank whose count is at least
    /// `base + l`, for every count from `base` to one past the highest.
    first: Vec<u32>,
    /// The lowest count when the run started.
    base: u32,
    /// The lowest count now: `order[..first[lowest + 1 - base]]` is the lowest level.
    lowest: u32,
    /// The lowest level's ranks in rank order, collected once per level when a job first
    /// needs them (`level_for`: the level they were collected at, or NONE).
    level_ranks: Vec<u32>,
    /// The collector id of each of `level_ranks`.
    level_ids: Vec<u32>,
    level_for: u32,
    /// Position in `level_ranks` by rank, for the ranks collected at `level_for` (other
    /// entries are stale and never read: only a rank still at that count is looked up).
    level_pos: Vec<u32>,
    /// Bit `p` set while `level_ranks[p]` is still in the lowest level (`level_for`).
    alive: Vec<u64>,
    /// Per job, `alive.len()` words: bit `p` set when `level_ranks[p]` left the level with a
    /// target of that job.
    left_with: Vec<u64>,
    jobs: Vec<JobOrder>,
    /// Scratch of [`Levels::order_job`]: the job's count per member of `level_ranks`, and the
    /// counting sort's buckets.
    keys: Vec<u32>,
    buckets: Vec<u32>,
}

/// One job's order of the lowest level: ranks by (targets of the job, rank).
///
/// Either as groups of bits, one group per count of the job (from the least), each with a bit
/// per position in `level_ranks` (so, within a group, in rank order): the walk is then a scan
/// of words ANDed with the members still in the level, a word of 64 members a step; or, when
/// the job's counts spread too widely for that, as a list of ranks.
#[derive(Default)]
struct JobOrder {
    /// The level the order was made at (NONE: never).
    level: u32,
    /// Whether the order is `bits` (else `ranks`).
    by_bits: bool,
    /// The groups, `words` words each, one after the other.
    bits: Vec<u64>,
    /// The next word of `bits` to look at, and its word within the group: words before it
    /// hold no member still in the level.
    at: usize,
    word: usize,
    ranks: Vec<u32>,
    /// Entries before `next` have left the level.
    next: usize,
}

impl Levels {
    fn new(ctx: &Ctx<'_>) -> Levels {
        let ids: Vec<u32> = ctx.collectors.sorted().iter().map(|c| c.index()).collect();
        let mut rank_of = vec![NONE; ctx.loads.count.len()];
        for (rank, &id) in ids.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
        }
        let level_pos = vec![NONE; ids.len()];
        let mut l = Levels {
            ids,
            rank_of,
            count: Vec::new(),
            order: Vec::new(),
            pos: Vec::new(),
            first: Vec::new(),
            base: 0,
            lowest: 0,
            level_ranks: Vec::new(),
            level_ids: Vec::new(),
            level_for: NONE,
            level_pos,
            alive: Vec::new(),
            left_with: Vec::new(),
            jobs: Vec::new(),
            keys: Vec::new(),
            buckets: Vec::new(),
        };
        l.jobs
            .resize_with(ctx.loads.per_job.len(), JobOrder::default);
        l.sort_by_count(ctx.loads);
        l
    }

    /// (Re)build the order by count from the loads; every job's order is stale afterwards.
    fn sort_by_count(&mut self, loads: &Loads) {
        self.count.clear();
        self.count
            .extend(self.ids.iter().map(|&c| loads.count[c as usize]));
        let n = self.ids.len();
        self.order.clear();
        self.order.extend(0..n as u32);
        let count = &self.count;
        self.order.sort_unstable_by_key(|&r| count[r as usize]);
        self.pos.clear();
        self.pos.resize(n, 0);
        for (i, &r) in self.order.iter().enumerate() {
            self.pos[r as usize] = i as u32;
        }
        self.base = self.order.first().map_or(0, |&r| self.count[r as usize]);
        self.lowest = self.base;
        let top = self.order.last().map_or(0, |&r| self.count[r as usize]);
        self.first.clear();
        self.first.resize((top - self.base) as usize + 2, 0);
        // first[l] = ranks whose count is below base + l.
        for &c in &self.count {
            self.first[(c - self.base) as usize + 1] += 1;
        }
        for l in 1..self.first.len() {
            self.first[l] += self.first[l - 1];
        }
        self.level_for = NONE;
        for job in &mut self.jobs {
            job.level = NONE;
        }
    }

    #[inline]
    fn choose(&mut self, job: u32, loads: &Loads) -> u32 {
        if self.ids.is_empty() {
            return NONE;
        }
        let j = job as usize;
        if self.jobs[j].level != self.lowest {
            self.order_job(j, loads);
        }
        let order = &mut self.jobs[j];
        if order.by_bits {
            // The lowest level is not empty, so a member still in it lies at or after `at`.
            let words = self.alive.len();
            loop {
                let live = order.bits[order.at] & self.alive[order.word];
                if live != 0 {
                    return self.level_ids[order.word * 64 + live.trailing_zeros() as usize];
                }
                order.at += 1;
                order.word += 1;
                if order.word == words {
                    order.word = 0;
                }
            }
        }
        loop {
            let rank = order.ranks[order.next];
            if self.count[rank as usize] == self.lowest {
                return self.ids[rank as usize];
            }
            order.next += 1;
        }
    }

    /// Order the lowest level for `job` by (targets of the job, rank): once per job and level,
    /// out of the inlined path of `choose`.
    #[inline(never)]
    fn order_job(&mut self, j: usize, loads: &Loads) {
        let lowest = self.lowest;
        if self.level_for != lowest {
            self.collect_level();
            if self.jobs[j].level == lowest {
                return;
            }
        }
        self.order_job_afresh(j, loads);
    }

    /// Collect the lowest level's members. When it and the level before it both hold every
    /// collector (a run that fills the collectors evenly, as a first allocation does), its
    /// members are the last level's, each with one target more: one of the job it left with.
    /// So a job's groups by count follow from its last ones by moving the members that left
    /// with a target of the job up one group, a word of 64 members at a time, instead of
    /// visiting every member again.
    fn collect_level(&mut self) {
        let lowest = self.lowest;
        let n = self.ids.len();
        let members = self.first[(lowest + 1 - self.base) as usize] as usize;
        let words = self.alive.len();
        if members == n
            && self.level_ranks.len() == n
            && self.level_for != NONE
            && self.level_for + 1 == lowest
        {
            let last = self.level_for;
            for (order, left) in self.jobs.iter_mut().zip(self.left_with.chunks_exact(words)) {
                if order.level != last || !order.by_bits {
                    continue;
                }
                // Group g now: those of g that did not leave with the job, and those of g - 1
                // that did; a new top group, then the bottom groups that emptied dropped.
                let groups = order.bits.len() / words;
                order.bits.resize((groups + 1) * words, 0);
                for g in (0..=groups).rev() {
                    for (w, &l) in left.iter().enumerate() {
                        let stay = order.bits[g * words + w] & !l;
                        let rise = if g > 0 {
                            order.bits[(g - 1) * words + w] & l
                        } else {
                            0
                        };
                        order.bits[g * words + w] = stay | rise;
                    }
                }
                let empty = |g: &[u64]| g.iter().all(|&w| w == 0);
                while order.bits.len() > words && empty(&order.bits[order.bits.len() - words..]) {
                    order.bits.truncate(order.bits.len() - words);
                }
                let bottom = order
                    .bits
                    .chunks_exact(words)
                    .take_while(|g| empty(g))
                    .count();
                order.bits.drain(..bottom * words);
                order.at = 0;
                order.word = 0;
                // Ordered afresh (by the same rule) if its counts now spread too widely.
                order.level = if order.bits.len() <= members {
                    lowest
                } else {
                    NONE
                };
            }
            self.alive.fill(u64::MAX);
            if n % 64 != 0 {
                *self.alive.last_mut().expect("a level has members") = (1 << (n % 64)) - 1;
            }
        } else {
            let members = self.first[(lowest + 1 - self.base) as usize] as usize;
            self.level_ranks.clear();
            if members * 4 >= self.ids.len() {
                // Most collectors: a pass in rank order beats a sort.
                let count = &self.count;
                self.level_ranks
                    .extend((0..count.len() as u32).filter(|&r| count[r as usize] == lowest));
            } else {
                self.level_ranks.extend_from_slice(&self.order[..members]);
                self.level_ranks.sort_unstable();
            }
            self.level_ids.clear();
            let ids = &self.ids;
            self.level_ids
                .extend(self.level_ranks.iter().map(|&r| ids[r as usize]));
            for (p, &r) in self.level_ranks.iter().enumerate() {
                self.level_pos[r as usize] = p as u32;
            }
            let len = self.level_ranks.len();
            self.alive.clear();
            self.alive.resize(len.div_ceil(64), u64::MAX);
            if len % 64 != 0 {
                *self.alive.last_mut().expect("a level has members") = (1 << (len % 64)) - 1;
            }
        }
        self.level_for = lowest;
        self.left_with.clear();
        self.left_with.resize(self.jobs.len() * self.alive.len(), 0);
    }

    /// Order the lowest level, collected, for job `j` from the job's counts.
    fn order_job_afresh(&mut self, j: usize, loads: &Loads) {
        let lowest = self.lowest;
        // The job's count of each member collected at the level. Members that left the level
        // since keep their place in the order: the walk in `choose` skips them anyway.
        // A member that already left the level with a target of the job counts it no more:
        // the groups describe the level as it began, which the next level's groups are
        // derived from (`collect_level`).
        let per_job = &loads.per_job[j];
        let words = self.alive.len();
        let left = &self.left_with[j * words..(j + 1) * words];
        let keys = &mut self.keys;
        keys.clear();
        keys.extend(
            self.level_ids
                .iter()
                .enumerate()
                .map(|(p, &id)| per_job[id as usize] - ((left[p / 64] >> (p % 64)) & 1) as u32),
        );
        let least = keys.iter().copied().min().unwrap_or(0);
        let most = keys.iter().copied().max().unwrap_or(0);
        let order = &mut self.jobs[j];
        order.level = lowest;
        order.next = 0;
        order.ranks.clear();
        let range = (most - least) as usize;
        // Groups of bits when scanning them costs at most a word per member.
        order.by_bits = (range + 1) * words <= keys.len();
        if order.by_bits {
            order.bits.clear();
            order.bits.resize((range + 1) * words, 0);
            for (p, &c) in keys.iter().enumerate() {
                order.bits[(c - least) as usize * words + p / 64] |= 1 << (p % 64);
            }
            order.at = 0;
            order.word = 0;
        } else if range == 0 {
            order.ranks.extend_from_slice(&self.level_ranks);
        } else if range <= 2 * keys.len() + 64 {
            // Counting sort by the job's count, stable, so ranks stay in order within a count.
            self.buckets.clear();
            self.buckets.resize(range + 2, 0);
            for &c in keys.iter() {
                self.buckets[(c - least) as usize + 1] += 1;
            }
            for b in 1..self.buckets.len() {
                self.buckets[b] += self.buckets[b - 1];
            }
            order.ranks.resize(keys.len(), 0);
            for (&c, &r) in keys.iter().zip(&self.level_ranks) {
                let b = &mut self.buckets[(c - least) as usize];
                order.ranks[*b as usize] = r;
                *b += 1;
            }
        } else {
            let mut keyed: Vec<(u32, u32)> = keys
                .iter()
                .copied()
                .zip(self.level_ranks.iter().copied())
                .collect();
            keyed.sort_unstable();
            order.ranks.extend(keyed.iter().map(|&(_, r)| r));
        }
    }

    /// A target of `job` was added to `collector`: its count rises by one.
    #[inline]
    fn placed(&mut self, collector: u32, job: u32, loads: &Loads) {
        let Some(&rank) = self.rank_of.get(collector as usize) else {
            return;
        };
        if rank == NONE {
            return;
        }
        let now = loads.count[collector as usize];
        let r = rank as usize;
        if now != self.count[r] + 1 {
            // Not one target added (no caller does this): start over from the loads.
            if now != self.count[r] {
                self.sort_by_count(loads);
            }
            return;
        }
        let level = self.count[r];
        if level == self.lowest && self.level_for == level {
            // It leaves the lowest level, whose members were collected at this count.
            let p = self.level_pos[r] as usize;
            self.alive[p / 64] &= !(1 << (p % 64));
            self.left_with[job as usize * self.alive.len() + p / 64] |= 1 << (p % 64);
        }
        // The placed rank swaps with the last of its level, which then ends one earlier.
        let up = (level + 1 - self.base) as usize;
        if up + 1 == self.first.len() {
            self.first.push(self.ids.len() as u32);
        }
        let last = self.first[up] as usize - 1;
        let (here, other) = (self.pos[r] as usize, self.order[last]);
        self.order.swap(here, last);
        self.pos[other as usize] = here as u32;
        self.pos[r] = last as u32;
        self.first[up] -= 1;
        self.count[r] = level + 1;
        if level == self.lowest && self.first[up] == 0 {
            // The lowest level is empty; the placed collector is in the next one.
            self.lowest += 1;
        }
    }
}

/// [`choose`] by weight for a run of placements, in O(jobs · log collectors) per placement
/// instead of O(collectors): one tournament tree per job over the collectors in name order,
/// whose leaves are the keys `choose` compares — (weight, targets of the job, name rank), packed
/// so that integer order is that order — and whose root is therefore `choose`'s answer.
///
/// Built from the loads at the start of a run; after each placement the caller refreshes the
/// collector whose load changed, from the loads themselves, so the trees never hold their own
/// copy of a load.
pub(crate) struct Tournament {
    /// Leaves per tree (a power of two at least the number of collectors).
    size: usize,
    /// Collector id by name rank.
    ids: Vec<u32>,
    /// Name rank by collector id (NONE: not alive).
    rank_of: Vec<u32>,
    /// Per job, a tree of `2 * size` keys (weight: 64, job count: 32, rank: 32): node `i`
    /// holds the smaller of `2i` and `2i + 1`.
    trees: Vec<u128>,
}

/// Set leaf `rank` of `tree` and recompute the nodes above it until one does not change.
#[inline]
fn update(tree: &mut [u128], size: usize, rank: usize, key: u128) {
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

impl Tournament {
    fn new(ctx: &Ctx<'_>) -> Tournament {
        let ids: Vec<u32> = ctx.collectors.sorted().iter().map(|c| c.index()).collect();
        let size = ids.len().next_power_of_two().max(1);
        let mut rank_of = vec![NONE; ctx.loads.count.len()];
        for (rank, &id) in ids.iter().enumerate() {
            rank_of[id as usize] = rank as u32;
        }
        let jobs = ctx.loads.per_job.len();
        let mut trees = vec![u128::MAX; jobs * 2 * size];
        for (job, tree) in trees.chunks_exact_mut(2 * size).enumerate() {
            for (rank, &c) in ids.iter().enumerate() {
                tree[size + rank] = key(ctx.loads, job, c as usize, rank);
            }
            for i in (1..size).rev() {
                tree[i] = tree[2 * i].min(tree[2 * i + 1]);
            }
        }
        Tournament {
            size,
            ids,
            rank_of,
            trees,
        }
    }

    #[inline]
    fn choose(&self, job: u32) -> u32 {
        match self.trees[job as usize * 2 * self.size + 1] {
            u128::MAX => NONE,
            key => self.ids[key as u32 as usize],
        }
    }

    /// A collector's load changed: recompute its leaf in every job's tree, and the nodes
    /// above it until one does not change.
    fn refresh(&mut self, collector: u32, loads: &Loads) {
        let Some(&rank) = self.rank_of.get(collector as usize) else {
            return;
        };
        if rank == NONE {
            return;
        }
        let (size, rank, c) = (self.size, rank as usize, collector as usize);
        for (job, tree) in self.trees.chunks_exact_mut(2 * size).enumerate() {
            update(tree, size, rank, key(loads, job, c, rank));
        }
    }
}

/// (weight, targets of the job, rank) in 128 bits.
#[inline]
fn key(loads: &Loads, job: usize, c: usize, rank: usize) -> u128 {
    (u128::from(loads.weight[c]) << 64) | (u128::from(loads.per_job[job][c]) << 32) | rank as u128
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::Collectors;
    use crate::ids::CollectorId;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// A placement of a run: by the rule, for a target of `job`, or (as per-node's node
    /// targets) straight to the collector at `to` (an index into the alive ones).
    #[derive(Debug, Clone)]
    struct Step {
        job: u32,
        node_target: bool,
        to: usize,
        weight: u32,
    }

    fn step() -> impl Strategy<Value = Step> {
        (0u32..4, 0u32..4, any::<usize>(), 1u32..40).prop_map(|(job, kind, to, weight)| Step {
            job,
            node_target: kind == 0,
            to,
            weight,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        /// A run decides every placement exactly as `choose`'s scan over the loads of the moment
        /// does, by count and by weight, from random loads (some collectors holding many more
        /// targets of a job than others), over collectors whose ids are not in name order and
        /// some of which left, with placements outside the rule (node targets) in between.
        #[test]
        fn a_run_decides_as_a_scan_per_placement(
            collectors in 0usize..70,
            offset in 0usize..10_007,
            left in vec(any::<bool>(), 70),
            jobs in 1usize..5,
            weighted in any::<bool>(),
            start in vec((any::<usize>(), 0u32..4, 1u32..100, 0u32..90), 0..60),
            steps in vec(step(), 1..500),
        ) {
            run_decides_as_a_scan(collectors, offset, &left, jobs, weighted, &start, &steps)?;
        }

        /// The same from empty collectors, the start of a first allocation, where every level
        /// holds every collector until node targets set some apart, and `Levels` derives a
        /// level's order from the one before; by count only (a run by weight has no levels).
        #[test]
        fn a_run_from_empty_collectors_decides_as_a_scan(
            collectors in 1usize..140,
            offset in 0usize..10_007,
            left in vec(prop::bool::weighted(0.1), 140),
            jobs in 1usize..7,
            steps in vec(step(), 1..1500),
        ) {
            run_decides_as_a_scan(collectors, offset, &left, jobs, false, &[], &steps)?;
        }
    }

    fn run_decides_as_a_scan(
        collectors: usize,
        offset: usize,
        left: &[bool],
        jobs: usize,
        weighted: bool,
        start: &[(usize, u32, u32, u32)],
        steps: &[Step],
    ) -> Result<(), TestCaseError> {
        {
            let mut set = Collectors::default();
            let mut ids = Vec::new();
            for i in 0..collectors {
                // 7919 is invertible modulo the prime 10007: distinct names, shuffled ids.
                let name = format!("c{:05}", (i * 7919 + offset) % 10_007);
                ids.push(set.add(&name, NONE).unwrap());
            }
            for (&id, &gone) in ids.iter().zip(left) {
                if gone {
                    set.retire(id);
                }
            }
            set.resort();
            let alive: Vec<u32> = set
                .sorted()
                .iter()
                .map(|c: &CollectorId| c.index())
                .collect();
            let mut loads = Loads::default();
            loads.grow(collectors, jobs);
            for &(at, job, weight, times) in start {
                if let Some(&c) = ids.get(at % collectors.max(1)) {
                    for _ in 0..times {
                        loads.add(c.index(), job % jobs as u32, weight);
                    }
                }
            }
            let ctx = Ctx {
                collectors: &set,
                loads: &loads,
                weighted,
            };
            let mut run = Run::new(&ctx);
            for s in steps {
                let job = s.job % jobs as u32;
                let to = if s.node_target {
                    alive
                        .get(s.to % alive.len().max(1))
                        .copied()
                        .unwrap_or(NONE)
                } else {
                    let record = TargetRecord {
                        key: 0,
                        placement: 0,
                        job,
                        node: NONE,
                        weight: s.weight,
                        collector: NONE,
                        bucket_pos: 0,
                    };
                    let ctx = Ctx {
                        collectors: &set,
                        loads: &loads,
                        weighted,
                    };
                    let scan = choose(&record, &ctx);
                    prop_assert_eq!(run.choose(job, &loads), scan);
                    scan
                };
                loads.add(to, job, s.weight);
                run.placed(to, job, &loads);
            }
        }
        Ok(())
    }
}
