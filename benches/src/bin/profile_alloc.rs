//! Full allocations for profilers (perf, callgrind):
//! `cargo run --profile bench -p allocator-benches --bin profile_alloc [N] [COLLECTORS] [MODE] [STRATEGY] [ROUNDS]`
//!
//! MODE: `alloc` (pre-hashed specs, the allocation alone), `hash` (label hashing alone),
//! `spec` (hashing + allocation through `TargetSpec`s, as the `full_allocation` bench), `batch`
//! (hashing + allocation through the columnar batch, as `full_allocation_batch`), `hash-batch`
//! and `hash-sorted` (the columnar label hashing alone, of the sets as discovered and sorted),
//! `churn` (a 1% churn diff on an allocated state: 1% of the targets removed, as many new ones
//! added, then undone; the forward diff is timed, as the `strategies_100k` churn bench).

use std::time::Instant;

use allocator_benches::{
    allocated, allocated_batch, collector_names, hash_label_sets, specs, targets, LabelColumns,
};
use allocator_core::{BatchDiff, Config, KeyHasher, Strategy, TargetColumns, TargetSpec};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let n = num(0, 100_000);
    let k = num(1, 10);
    let mode = args.get(2).map_or("alloc", String::as_str);
    let strategy: Strategy = args.get(3).map_or(Strategy::ConsistentHashing, |s| {
        s.parse().expect("a strategy")
    });
    let rounds = num(4, 1);
    let mut config = Config::with_strategy(strategy);
    if strategy == Strategy::PerNode {
        config.fallback = Some(Strategy::ConsistentHashing);
    }
    // `churn` swaps 1% of the targets for as many others, generated with them.
    let reserve = if mode == "churn" { n / 100 } else { 0 };
    let raw = targets(n + reserve, 1_000, 1);
    let sets = LabelColumns::new(&raw);
    // The same label sets, each sorted by name (discovery hands them over unsorted).
    let mut sorted = sets.clone();
    let mut first = 0usize;
    for &count in &sets.counts {
        sorted.labels[first..first + count as usize].sort_unstable();
        first += count as usize;
    }
    let names = collector_names(k);
    // Pre-hashed specs only where the mode allocates them (a profile of a hashing mode then
    // shows that mode's hashing alone).
    let pre = if mode == "alloc" || mode == "churn" {
        specs(&mut KeyHasher::new(), &raw)
    } else {
        Vec::new()
    };
    if mode == "churn" {
        return churn(config, &names, &pre, n, rounds);
    }
    // Each round timed alone; the minimum is the figure least disturbed by other processes
    // on a shared machine, the median shows how disturbed the run was.
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        match mode {
            "alloc" => assert_eq!(allocated(config, &names, &pre).len(), n),
            "hash" => assert_eq!(specs(&mut KeyHasher::new(), &raw).len(), n),
            "spec" => {
                let upsert = specs(&mut KeyHasher::new(), &raw);
                assert_eq!(allocated(config, &names, &upsert).len(), n);
            }
            "batch" => assert_eq!(allocated_batch(config, &names, &sets).len(), n),
            "hash-batch" => assert_eq!(hash_label_sets(&mut KeyHasher::new(), &sets).keys.len(), n),
            "hash-sorted" => {
                assert_eq!(
                    hash_label_sets(&mut KeyHasher::new(), &sorted).keys.len(),
                    n
                )
            }
            other => panic!("unknown mode {other}"),
        }
        times.push(start.elapsed());
    }
    times.sort_unstable();
    let per = |d: std::time::Duration| d.as_nanos() as f64 / n as f64;
    let bytes: usize = sets.labels.iter().map(|(a, b)| a.len() + b.len()).sum();
    println!(
        "{mode} {} {n}/{k}: min {:.0} ns/target ({:.2} GB/s of labels), median {:.0} ns/target ({rounds} rounds)",
        strategy.name(),
        per(times[0]),
        bytes as f64 / times[0].as_nanos() as f64,
        per(times[times.len() / 2]),
    );
}

/// A churn diff in columns (as the C ABI and the Go package hand one over): removed keys and
/// the upserted targets.
struct Churn<'a> {
    remove: Vec<u64>,
    upsert: TargetColumns<'a>,
}

impl<'a> Churn<'a> {
    /// Remove `out`, upsert `into`.
    fn new(out: &[TargetSpec<'a>], into: &[TargetSpec<'a>]) -> Self {
        Churn {
            remove: out.iter().map(|t| t.key.0).collect(),
            upsert: TargetColumns::from_specs(into),
        }
    }

    fn diff(&self) -> BatchDiff<'_> {
        BatchDiff {
            upsert: self.upsert.batch(),
            remove: &self.remove,
            ..BatchDiff::default()
        }
    }
}

/// `churn`: the first 1% of the targets swapped for the reserve (one diff: removals and
/// upserts) and back, `rounds` times; the forward diffs are timed.
fn churn(
    config: Config,
    names: &[(String, String)],
    all: &[TargetSpec<'_>],
    n: usize,
    rounds: usize,
) {
    let (base, reserve) = all.split_at(n);
    let k = reserve.len();
    let mut alloc = allocated(config, names, base);
    let forward = Churn::new(&base[..k], reserve);
    let backward = Churn::new(reserve, &base[..k]);
    let mut times = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        let moved = alloc
            .apply_batch(&forward.diff())
            .expect("valid diff")
            .len();
        times.push(start.elapsed());
        assert!(moved >= 2 * k);
        alloc.apply_batch(&backward.diff()).expect("valid diff");
    }
    times.sort_unstable();
    let per = |d: std::time::Duration| d.as_nanos() as f64 / (2 * k) as f64;
    println!(
        "churn {} {n}/{}: {} changes, min {:.0} ns/change, median {:.0} ns/change ({rounds} rounds)",
        config.strategy.name(),
        names.len(),
        2 * k,
        per(times[0]),
        per(times[times.len() / 2]),
    );
}
