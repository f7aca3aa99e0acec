//! Simulation for issue 21 item 2, run before changing `bounded-hashing`: would a capacitated
//! deferred acceptance (a unique, order-independent assignment) move at most 2× the minimum
//! weight on scale events at ε = 0.05? Same workload as the `quality` report (100k targets,
//! log-normal series counts, five 200k-series giants); nothing here is used by the core.
//!
//! The rule simulated, a pure function of the state:
//! - every target has a preference list: the distinct collectors met walking the ring clockwise
//!   from its hash (the ring of `bounded-hashing`: `xxh64(name, v)` points, 128–1,024 per
//!   collector). Adding a collector inserts it into lists and removing one deletes it; the other
//!   collectors keep their order, unlike independent probes whose owners change in place;
//! - every collector ranks its proposers by (position in the target's list, then weight
//!   descending, then a pair hash) — or, for comparison, by the pair hash alone;
//! - a collector holds the longest prefix of its proposers, in its ranking, whose weight fits
//!   under `cap = ⌈(1+ε)·W/n⌉` (a prefix, not "every one that fits": skipping would make the
//!   result depend on the order of proposals); rejected targets propose to their next collector;
//! - a target heavier than the cap (a giant) first takes, heaviest first, the first collector of
//!   its list without a giant, which then takes nothing else.
//!
//! Prefix choice is substitutable (removing other proposers never rejects a held one), so the
//! outcome of proposals is independent of their order; every run here checks that by proposing
//! in two orders.
//!
//! `churn` also keeps the state between diffs (per collector the proposers it holds and those it
//! rejected) and updates it incrementally: proposals downward after additions or a lower cap; after
//! removals or a higher cap, a collector with room takes back its best rejected proposer, which
//! leaves the collectors below it. It checks the result against an allocation from scratch.
//!
//! `cargo run --release -p allocator-benches --bin bounded_da [curve | seeds | churn | removals | million]`

use std::collections::BTreeSet;
use std::time::Instant;

use allocator_benches::{allocated, collector_names, specs, targets};
use allocator_core::{Config, Diff, KeyHasher, MoveKind, Strategy};
use xxhash_rust::xxh64::xxh64;

/// Longest preference list kept per target; a target rejected by all of them stays unassigned.
const LIST: usize = 24;
const NONE: u32 = u32::MAX;

/// Points per collector: as `bounded-hashing` (a power of two, ~2^18 points in all, 128–1,024).
fn vnodes(n: usize) -> u64 {
    let fair = (1u64 << 18) / n.max(1) as u64;
    let pow2 = if fair == 0 {
        1
    } else {
        1 << (63 - fair.leading_zeros())
    };
    pow2.clamp(128, 1024)
}

/// The distinct collectors (indexes into `names`) met walking clockwise from each key's hash.
fn lists(keys: &[u64], names: &[String]) -> Vec<Vec<u32>> {
    let mut pts: Vec<(u64, u32)> = Vec::new();
    for (m, name) in names.iter().enumerate() {
        for v in 0..vnodes(names.len()) {
            pts.push((xxh64(name.as_bytes(), v), m as u32));
        }
    }
    pts.sort_unstable();
    let want = LIST.min(names.len());
    keys.iter()
        .map(|&k| {
            let h = xxh64(&k.to_le_bytes(), 0);
            let mut i = pts.partition_point(|p| p.0 < h);
            let mut out = Vec::with_capacity(want);
            while out.len() < want {
                let o = pts[i % pts.len()].1;
                if !out.contains(&o) {
                    out.push(o);
                }
                i += 1;
            }
            out
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Pref {
    /// Position in the target's list, then weight descending, then the pair hash.
    RankWeight,
    /// The pair hash alone (rendezvous-like).
    Hash,
}

type Score = (u64, u64, u64);

struct Outcome {
    /// Collector index per target (NONE: unassigned).
    assign: Vec<u32>,
    loads: Vec<u64>,
}

/// The deferred-acceptance outcome for targets (keys, weights) on `names`, proposals taken in
/// index order or reversed.
fn allocate(
    keys: &[u64],
    w: &[u32],
    names: &[String],
    eps: f64,
    pref: Pref,
    reversed: bool,
) -> Outcome {
    let n = names.len();
    let lists = lists(keys, names);
    let total: u64 = w.iter().map(|&x| u64::from(x)).sum();
    let cap = (u128::from(total) * u128::from(1_000_000 + (eps * 1e6) as u64))
        .div_ceil(n as u128 * 1_000_000) as u64;
    let name_hash: Vec<u64> = names.iter().map(|s| xxh64(s.as_bytes(), 0)).collect();
    let score = |t: usize, rank: usize, c: u32| -> Score {
        let h = xxh64(&(keys[t] ^ name_hash[c as usize]).to_le_bytes(), 1);
        match pref {
            Pref::RankWeight => (u64::MAX - rank as u64, u64::from(w[t]), h),
            Pref::Hash => (h, 0, 0),
        }
    };
    let mut assign = vec![NONE; keys.len()];
    let mut loads = vec![0u64; n];
    let mut closed = vec![false; n];
    let mut giants: Vec<usize> = (0..keys.len()).filter(|&t| u64::from(w[t]) > cap).collect();
    giants.sort_by_key(|&t| (std::cmp::Reverse(w[t]), keys[t]));
    for &t in &giants {
        if let Some(&c) = lists[t].iter().find(|&&c| !closed[c as usize]) {
            closed[c as usize] = true;
            assign[t] = c;
            loads[c as usize] += u64::from(w[t]);
        }
    }
    let mut held: Vec<BTreeSet<(Score, u32)>> = vec![BTreeSet::new(); n];
    // The best score a collector has rejected: proposers below it are rejected too (prefix).
    let mut stop: Vec<Option<Score>> = vec![None; n];
    let mut next = vec![0usize; keys.len()];
    let mut queue: Vec<u32> = (0..keys.len() as u32)
        .filter(|&t| assign[t as usize] == NONE)
        .collect();
    if !reversed {
        queue.reverse(); // popped from the back
    }
    while let Some(t) = queue.pop() {
        let t = t as usize;
        while next[t] < lists[t].len() {
            let c = lists[t][next[t]];
            let ci = c as usize;
            let s = score(t, next[t], c);
            if closed[ci] || stop[ci].is_some_and(|b| s < b) {
                next[t] += 1;
                continue;
            }
            held[ci].insert((s, t as u32));
            loads[ci] += u64::from(w[t]);
            assign[t] = c;
            while loads[ci] > cap {
                let (s2, t2) = held[ci].pop_first().expect("over the cap holds something");
                let t2 = t2 as usize;
                loads[ci] -= u64::from(w[t2]);
                assign[t2] = NONE;
                stop[ci] = Some(s2);
                next[t2] += 1;
                if t2 != t {
                    queue.push(t2 as u32);
                }
            }
            if assign[t] != NONE {
                break;
            }
        }
    }
    Outcome { assign, loads }
}

/// Both proposal orders, checked equal.
fn outcome(keys: &[u64], w: &[u32], names: &[String], eps: f64, pref: Pref) -> Outcome {
    let a = allocate(keys, w, names, eps, pref, false);
    let b = allocate(keys, w, names, eps, pref, true);
    assert_eq!(a.assign, b.assign, "proposal order changed the outcome");
    a
}

struct Row {
    max: f64,
    min: f64,
    up: f64,
    to_new: f64,
    down: f64,
    unassigned: usize,
    /// Share of collectors within a mean target's weight of the cap.
    full: f64,
}

/// Balance at n, then weight moved on n→n+1 and on removing the first collector, each over
/// the minimum (W/(n+1), W/n).
fn measure(seed: u64, n: usize, eps: f64, pref: Pref) -> Row {
    measure_k(100_000, seed, n, eps, pref)
}

fn measure_k(k: usize, seed: u64, n: usize, eps: f64, pref: Pref) -> Row {
    let raw = targets(k, n, seed);
    let mut hasher = KeyHasher::new();
    let sp = specs(&mut hasher, &raw);
    let keys: Vec<u64> = sp.iter().map(|s| s.key.0).collect();
    let w: Vec<u32> = sp.iter().map(|s| s.weight).collect();
    let names: Vec<String> = (0..=n).map(|i| format!("otel-collector-{i}")).collect();
    let base = outcome(&keys, &w, &names[..n], eps, pref);
    let up = outcome(&keys, &w, &names, eps, pref);
    let down = outcome(&keys, &w, &names[1..n], eps, pref);
    let total: f64 = w.iter().map(|&x| f64::from(x)).sum();
    let mean = total / n as f64;
    let weight_where = |f: &dyn Fn(usize) -> bool| -> f64 {
        (0..keys.len())
            .filter(|&t| f(t))
            .map(|t| f64::from(w[t]))
            .sum()
    };
    // `down` names collectors from index 1.
    let down_id = |t: usize| down.assign[t].checked_add(1).unwrap_or(NONE);
    Row {
        max: *base.loads.iter().max().unwrap() as f64 / mean,
        min: *base.loads.iter().min().unwrap() as f64 / mean,
        up: weight_where(&|t| base.assign[t] != up.assign[t]) / (total / (n + 1) as f64),
        to_new: weight_where(&|t| up.assign[t] == n as u32) / (total / (n + 1) as f64),
        down: weight_where(&|t| base.assign[t] != down_id(t)) / mean,
        unassigned: base.assign.iter().filter(|&&c| c == NONE).count(),
        full: {
            let cap = mean * (1.0 + eps);
            let near = total / keys.len() as f64;
            let count = base
                .loads
                .iter()
                .filter(|&&l| l as f64 > cap - near)
                .count();
            count as f64 / n as f64
        },
    }
}

fn curve() {
    println!("| preference | ε | collectors | weight max/mean | weight min/mean | weight moved +1 / min | of which to the new collector | weight moved −1 / min | unassigned | collectors within a mean target of the cap |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for pref in [Pref::RankWeight, Pref::Hash] {
        for eps in [0.02, 0.05, 0.1, 0.25] {
            for n in [10usize, 100, 1000] {
                let r = measure(21, n, eps, pref);
                println!(
                    "| {pref:?} | {eps} | {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {:.0}% |",
                    r.max, r.min, r.up, r.to_new, r.down, r.unassigned, r.full * 100.0
                );
            }
        }
    }
}

fn seeds() {
    println!("| workload seed | weight moved +1 / min | weight moved −1 / min |");
    println!("|---|---|---|");
    for seed in [21, 1, 2, 3, 4, 5] {
        let r = measure(seed, 1000, 0.05, Pref::RankWeight);
        println!("| {seed} | {:.2} | {:.2} |", r.up, r.down);
    }
}

/// The deferred-acceptance state kept between diffs, so that a diff follows only the chains it
/// starts: per collector, the proposers it holds and those it rejected, both in its ranking.
/// Giants (heavier than the cap) are placed once and not revisited: the churn below changes
/// neither them nor which targets are giants.
#[derive(Clone)]
struct State {
    keys: Vec<u64>,
    w: Vec<u32>,
    live: Vec<bool>,
    lists: Vec<Vec<u32>>,
    /// Position in its list of the target's collector (the list's length: rejected by all).
    pos: Vec<usize>,
    assign: Vec<u32>,
    held: Vec<BTreeSet<(Score, u32)>>,
    waiting: Vec<BTreeSet<(Score, u32)>>,
    loads: Vec<u64>,
    closed: Vec<bool>,
    cap: u64,
    eps_ppm: u64,
    name_hash: Vec<u64>,
    /// Proposals made downward and rejected proposers taken back upward, since the last reset.
    steps: (u64, u64),
}

impl State {
    fn new(keys: &[u64], w: &[u32], names: &[String], eps: f64) -> State {
        let n = names.len();
        let mut st = State {
            keys: keys.to_vec(),
            w: w.to_vec(),
            live: vec![true; keys.len()],
            lists: lists(keys, names),
            pos: vec![0; keys.len()],
            assign: vec![NONE; keys.len()],
            held: vec![BTreeSet::new(); n],
            waiting: vec![BTreeSet::new(); n],
            loads: vec![0; n],
            closed: vec![false; n],
            cap: 0,
            eps_ppm: (eps * 1e6) as u64,
            name_hash: names.iter().map(|s| xxh64(s.as_bytes(), 0)).collect(),
            steps: (0, 0),
        };
        st.cap = st.new_cap();
        let mut giants: Vec<usize> = (0..keys.len())
            .filter(|&t| u64::from(w[t]) > st.cap)
            .collect();
        giants.sort_by_key(|&t| (std::cmp::Reverse(w[t]), keys[t]));
        for &t in &giants {
            if let Some(r) = st.lists[t].iter().position(|&c| !st.closed[c as usize]) {
                let c = st.lists[t][r];
                st.closed[c as usize] = true;
                st.assign[t] = c;
                st.pos[t] = r;
                st.loads[c as usize] += u64::from(w[t]);
            }
        }
        let mut queue: Vec<u32> = (0..keys.len() as u32)
            .filter(|&t| st.assign[t as usize] == NONE)
            .rev()
            .collect();
        st.propose(&mut queue);
        st
    }

    fn new_cap(&self) -> u64 {
        let total: u64 = (0..self.keys.len())
            .filter(|&t| self.live[t])
            .map(|t| u64::from(self.w[t]))
            .sum();
        (u128::from(total) * u128::from(1_000_000 + self.eps_ppm))
            .div_ceil(self.loads.len() as u128 * 1_000_000) as u64
    }

    fn score(&self, t: usize, rank: usize) -> Score {
        let c = self.lists[t][rank] as usize;
        let h = xxh64(&(self.keys[t] ^ self.name_hash[c]).to_le_bytes(), 1);
        (u64::MAX - rank as u64, u64::from(self.w[t]), h)
    }

    /// Proposals downward (targets added, or rejected after a collector lost room).
    fn propose(&mut self, queue: &mut Vec<u32>) {
        while let Some(t) = queue.pop() {
            let t = t as usize;
            while self.pos[t] < self.lists[t].len() {
                let r = self.pos[t];
                let c = self.lists[t][r] as usize;
                if self.closed[c] {
                    self.pos[t] += 1;
                    continue;
                }
                self.steps.0 += 1;
                let s = self.score(t, r);
                if self.waiting[c].last().is_some_and(|&(b, _)| s < b) {
                    self.waiting[c].insert((s, t as u32));
                    self.pos[t] += 1;
                    continue;
                }
                self.held[c].insert((s, t as u32));
                self.loads[c] += u64::from(self.w[t]);
                self.assign[t] = c as u32;
                // If t itself was rejected, it is queued again.
                self.evict(c, queue);
                break;
            }
        }
    }

    /// Reject the lowest-ranked held targets while the collector is over the cap.
    fn evict(&mut self, c: usize, queue: &mut Vec<u32>) {
        while self.loads[c] > self.cap {
            let (s, t) = self.held[c]
                .pop_first()
                .expect("over the cap holds something");
            self.loads[c] -= u64::from(self.w[t as usize]);
            self.waiting[c].insert((s, t));
            self.assign[t as usize] = NONE;
            self.pos[t as usize] += 1;
            queue.push(t);
        }
    }

    /// Take the rejected proposers back, best first, while the next one fits; each leaves the
    /// collectors below, which may then take theirs.
    fn settle_up(&mut self, mut dirty: Vec<usize>) {
        while let Some(c) = dirty.pop() {
            while let Some(&(s, y)) = self.waiting[c].last() {
                let yu = y as usize;
                if self.loads[c] + u64::from(self.w[yu]) > self.cap {
                    break;
                }
                self.waiting[c].pop_last();
                self.steps.1 += 1;
                let r = self.lists[yu]
                    .iter()
                    .position(|&x| x as usize == c)
                    .unwrap();
                let last = self.pos[yu].min(self.lists[yu].len() - 1);
                for k in r + 1..=last {
                    let c2 = self.lists[yu][k] as usize;
                    if self.closed[c2] {
                        continue;
                    }
                    let s2 = self.score(yu, k);
                    if self.assign[yu] == c2 as u32 && k == self.pos[yu] {
                        self.held[c2].remove(&(s2, y));
                        self.loads[c2] -= u64::from(self.w[yu]);
                    } else {
                        self.waiting[c2].remove(&(s2, y));
                    }
                    dirty.push(c2);
                }
                self.held[c].insert((s, y));
                self.loads[c] += u64::from(self.w[yu]);
                self.assign[yu] = c as u32;
                self.pos[yu] = r;
            }
        }
    }

    /// Remove targets, add others (their lists already computed), with the cap of the result.
    fn apply(&mut self, remove: &[usize], add: &[(u64, u32, Vec<u32>)]) {
        let mut dirty = Vec::new();
        for &t in remove {
            let last = self.pos[t].min(self.lists[t].len() - 1);
            for k in 0..=last {
                let c = self.lists[t][k] as usize;
                if self.closed[c] {
                    continue;
                }
                let s = self.score(t, k);
                if self.assign[t] == c as u32 && k == self.pos[t] {
                    self.held[c].remove(&(s, t as u32));
                    self.loads[c] -= u64::from(self.w[t]);
                } else {
                    self.waiting[c].remove(&(s, t as u32));
                }
                dirty.push(c);
            }
            self.live[t] = false;
            self.assign[t] = NONE;
        }
        let mut queue = Vec::new();
        for (key, weight, list) in add {
            self.keys.push(*key);
            self.w.push(*weight);
            self.live.push(true);
            self.lists.push(list.clone());
            self.pos.push(0);
            self.assign.push(NONE);
            queue.push(self.keys.len() as u32 - 1);
        }
        let cap = self.new_cap();
        if cap >= self.cap {
            self.cap = cap;
            dirty = (0..self.loads.len()).collect();
        }
        self.settle_up(dirty);
        queue.reverse();
        self.propose(&mut queue);
        if cap < self.cap {
            self.cap = cap;
            for c in 0..self.loads.len() {
                if !self.closed[c] {
                    self.evict(c, &mut queue);
                }
            }
            self.propose(&mut queue);
        }
    }
}

/// 1M targets on 1,000 collectors (1,000 per collector instead of 100).
fn million() {
    println!("| targets | collectors | ε | weight max/mean | weight min/mean | moved +1 / min (to new) | moved −1 / min | at cap |");
    println!("|---|---|---|---|---|---|---|---|");
    for eps in [0.02, 0.05] {
        let r = measure_k(1_000_000, 21, 1000, eps, Pref::RankWeight);
        println!(
            "| 1M | 1000 | {eps} | {:.2} | {:.2} | {:.2} ({:.2}) | {:.2} | {:.0}% |",
            r.max,
            r.min,
            r.up,
            r.to_new,
            r.down,
            r.full * 100.0
        );
    }
}

/// 1% churn at 100k targets and 1,000 collectors: the surviving targets that change collector,
/// and the time of an incremental update against one allocation from scratch (checked equal).
fn churn() {
    let n = 1000;
    let mut hasher = KeyHasher::new();
    let raw = targets(100_000, n, 21);
    let sp = specs(&mut hasher, &raw);
    let fresh_raw = targets(1_000, n, 99);
    let fresh = specs(&mut hasher, &fresh_raw);
    let names: Vec<String> = (0..n).map(|i| format!("otel-collector-{i}")).collect();
    let keys: Vec<u64> = sp.iter().map(|s| s.key.0).collect();
    let w: Vec<u32> = sp.iter().map(|s| s.weight).collect();
    let started = Instant::now();
    let mut state = State::new(&keys, &w, &names, 0.05);
    let scratch_took = started.elapsed();
    let before = state.assign.clone();
    // Remove every 100th target, add 1,000 others.
    let remove: Vec<usize> = (0..keys.len()).filter(|t| t % 100 == 7).collect();
    let fresh_keys: Vec<u64> = fresh.iter().map(|s| s.key.0).collect();
    let fresh_lists = lists(&fresh_keys, &names);
    let add: Vec<(u64, u32, Vec<u32>)> = fresh
        .iter()
        .zip(fresh_lists)
        .map(|(s, l)| (s.key.0, s.weight, l))
        .collect();
    // The fastest of five runs on copies (the machine is shared), their vectors grown first.
    state.steps = (0, 0);
    let mut took = std::time::Duration::MAX;
    for _ in 0..5 {
        let mut copy = state.clone();
        copy.pos.reserve(add.len());
        copy.keys.reserve(add.len());
        copy.w.reserve(add.len());
        copy.live.reserve(add.len());
        copy.lists.reserve(add.len());
        copy.assign.reserve(add.len());
        let started = Instant::now();
        copy.apply(&remove, &add);
        took = took.min(started.elapsed());
    }
    state.apply(&remove, &add);
    // From scratch on the final state, in another order of targets.
    let kept: Vec<usize> = (0..keys.len()).filter(|t| t % 100 != 7).collect();
    let mut keys2: Vec<u64> = fresh.iter().map(|s| s.key.0).collect();
    let mut w2: Vec<u32> = fresh.iter().map(|s| s.weight).collect();
    keys2.extend(kept.iter().map(|&t| keys[t]));
    w2.extend(kept.iter().map(|&t| w[t]));
    let after = allocate(&keys2, &w2, &names, 0.05, Pref::RankWeight, true);
    for (i, &t) in kept.iter().enumerate() {
        assert_eq!(
            state.assign[t],
            after.assign[fresh.len() + i],
            "incremental ≠ scratch"
        );
    }
    for i in 0..fresh.len() {
        assert_eq!(
            state.assign[keys.len() + i],
            after.assign[i],
            "incremental ≠ scratch"
        );
    }
    let (mut count, mut weight) = (0, 0u64);
    for &t in &kept {
        if before[t] != state.assign[t] {
            count += 1;
            weight += u64::from(w[t]);
        }
    }
    let total: u64 = w2.iter().map(|&x| u64::from(x)).sum();
    println!(
        "1% churn at 1,000 collectors: {count} surviving targets change collector ({:.2}× the mean collector weight); incremental update {:.2} ms, {} proposals downward and {} taken back upward (equal to one allocation from scratch, which took {:.0} ms)",
        weight as f64 / (total as f64 / n as f64),
        took.as_secs_f64() * 1e3,
        state.steps.0,
        state.steps.1,
        scratch_took.as_secs_f64() * 1e3
    );
    // The same diff on today's strategies.
    for strategy in [Strategy::BoundedHashing, Strategy::Rebalancing] {
        let mut alloc = allocated(Config::with_strategy(strategy), &collector_names(n), &sp);
        let diff = Diff {
            remove: (0..keys.len())
                .filter(|t| t % 100 == 7)
                .map(|t| sp[t].key)
                .collect(),
            upsert: fresh.clone(),
            ..Diff::default()
        };
        let moves = alloc.apply(&diff).unwrap().to_vec();
        let (mut count, mut weight) = (0, 0u64);
        for m in moves.iter().filter(|m| m.kind() == MoveKind::Reassigned) {
            count += 1;
            weight += u64::from(alloc.target(m.key).unwrap().weight);
        }
        println!(
            "the same diff on {strategy}: {count} surviving targets change collector ({:.2}× the mean collector weight)",
            weight as f64 / (total as f64 / n as f64)
        );
    }
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("seeds") => seeds(),
        Some("churn") => churn(),
        Some("million") => million(),
        Some("removals") => {
            removals();
            random_diffs();
        }
        _ => curve(),
    }
}

/// Removals alone (the cap falls): the incremental update against one allocation from scratch.
fn removals() {
    let n = 1000;
    let mut hasher = KeyHasher::new();
    let raw = targets(100_000, n, 21);
    let sp = specs(&mut hasher, &raw);
    let names: Vec<String> = (0..n).map(|i| format!("otel-collector-{i}")).collect();
    let keys: Vec<u64> = sp.iter().map(|s| s.key.0).collect();
    let w: Vec<u32> = sp.iter().map(|s| s.weight).collect();
    let st = State::new(&keys, &w, &names, 0.05);
    let sc = allocate(&keys, &w, &names, 0.05, Pref::RankWeight, true);
    assert_eq!(st.assign, sc.assign, "two proposal orders differ");
    for (label, every) in [
        ("remove 1", 100_000usize),
        ("remove 10", 10_000),
        ("remove 1000", 100),
    ] {
        let mut st = State::new(&keys, &w, &names, 0.05);
        let remove: Vec<usize> = (0..keys.len()).filter(|t| t % every == 7).collect();
        let old_cap = st.cap;
        st.apply(&remove, &[]);
        let kept: Vec<usize> = (0..keys.len()).filter(|t| t % every != 7).collect();
        let k2: Vec<u64> = kept.iter().map(|&t| keys[t]).collect();
        let w2: Vec<u32> = kept.iter().map(|&t| w[t]).collect();
        let sc = allocate(&k2, &w2, &names, 0.05, Pref::RankWeight, false);
        let bad = kept
            .iter()
            .enumerate()
            .filter(|&(i, &t)| st.assign[t] != sc.assign[i])
            .count();
        println!(
            "{label}: cap {old_cap} → {}, targets placed otherwise than from scratch: {bad}",
            st.cap
        );
        assert_eq!(bad, 0);
    }
}

/// Random diffs on a small state (2,000 targets, 20 collectors, no giants): after each, the
/// incremental state equals an allocation from scratch in the reverse order.
fn random_diffs() {
    let names: Vec<String> = (0..20).map(|i| format!("otel-collector-{i}")).collect();
    let mut rng = allocator_benches::Rng::new(7);
    let weight =
        |rng: &mut allocator_benches::Rng| (500.0 * rng.normal().exp()).clamp(1.0, 20_000.0) as u32;
    let keys: Vec<u64> = (0..2_000).map(|_| rng.next_u64()).collect();
    let w: Vec<u32> = (0..2_000).map(|_| weight(&mut rng)).collect();
    let mut st = State::new(&keys, &w, &names, 0.05);
    for round in 0..200 {
        let live: Vec<usize> = (0..st.keys.len()).filter(|&t| st.live[t]).collect();
        let mut remove: Vec<usize> = (0..rng.below(40))
            .map(|_| live[rng.below(live.len() as u64) as usize])
            .collect();
        remove.sort_unstable();
        remove.dedup();
        let new_keys: Vec<u64> = (0..rng.below(40)).map(|_| rng.next_u64()).collect();
        let new_lists = lists(&new_keys, &names);
        let add: Vec<(u64, u32, Vec<u32>)> = new_keys
            .iter()
            .zip(new_lists)
            .map(|(&k, l)| (k, weight(&mut rng), l))
            .collect();
        st.apply(&remove, &add);
        let live: Vec<usize> = (0..st.keys.len()).filter(|&t| st.live[t]).rev().collect();
        let k2: Vec<u64> = live.iter().map(|&t| st.keys[t]).collect();
        let w2: Vec<u32> = live.iter().map(|&t| st.w[t]).collect();
        let sc = allocate(&k2, &w2, &names, 0.05, Pref::RankWeight, false);
        for (i, &t) in live.iter().enumerate() {
            assert_eq!(
                st.assign[t], sc.assign[i],
                "round {round}: incremental ≠ scratch"
            );
        }
    }
    println!(
        "200 random diffs: the incremental state equals an allocation from scratch after each"
    );
}
