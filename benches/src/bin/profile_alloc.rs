//! Full allocations for profilers (perf, callgrind):
//! `cargo run --profile bench -p allocator-benches --bin profile_alloc [N] [COLLECTORS] [MODE] [STRATEGY] [ROUNDS] [THREADS]`
//!
//! MODE: `alloc` (pre-hashed specs, the allocation alone), `hash` (label hashing alone),
//! `spec` (hashing + allocation through `TargetSpec`s, as the `full_allocation` bench), `batch`
//! (hashing + allocation through the columnar batch, as `full_allocation_batch`), `hash-batch`
//! and `hash-sorted` (the columnar label hashing alone, of the sets as discovered and sorted),
//! `apply` (the label sets hashed into columns once, then each round a fresh allocator's
//! `apply_batch` of them timed alone: the full allocation of pre-hashed targets, issue 15),
//! `churn` (a 1% churn diff on an allocated state: 1% of the targets removed, as many new ones
//! added, then undone; the forward diff is timed, as the `strategies_100k` churn bench).
//!
//! STRATEGY `least-weighted:weighted` balances weight instead of count (`Config::weighted`).
//!
//! On `THREADS` threads (default 2; `KeyHasher::hash_label_sets_on`): `hash-par` and
//! `batch-par` (`hash-batch` and `batch` with the label sets hashed on them); `hash-vs` and
//! `batch-vs` time the serial and the parallel form alternately within each round (same
//! window) and give both with the process's CPU time (user + system, all threads) for each
//! side, which shows whether the parallel form does more work than the serial one; `spawn` times
//! starting and joining `THREADS` scoped threads that do nothing (`N` times), what a thread
//! costs the parallel form.

use std::time::Instant;

use std::time::Duration;

use allocator_benches::{
    allocated, allocated_batch, allocated_hashed, collector_names, collector_specs,
    hash_label_sets, specs, targets, LabelColumns,
};
use allocator_core::{
    Allocator, BatchDiff, Config, HashedSets, KeyHasher, Strategy, TargetColumns, TargetSpec,
};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let n = num(0, 100_000);
    let k = num(1, 10);
    let mode = args.get(2).map_or("alloc", String::as_str);
    // `STRATEGY:weighted`: least-weighted by weight (`Config::weighted`) instead of count.
    let (strategy, weighted) = match args.get(3).map(|s| s.split_once(':').unwrap_or((s, ""))) {
        None => (Strategy::ConsistentHashing, false),
        Some((s, suffix)) => (s.parse().expect("a strategy"), suffix == "weighted"),
    };
    let rounds = num(4, 1);
    let threads = num(5, 2);
    if mode == "spawn" {
        return spawn(n, threads);
    }
    let mut config = Config::with_strategy(strategy);
    config.weighted = weighted;
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
    if mode == "apply" {
        return apply(config, &names, &sets, rounds);
    }
    let bytes: usize = sets.labels.iter().map(|(a, b)| a.len() + b.len()).sum();
    if let Some(what) = mode.strip_suffix("-vs") {
        return serial_vs_parallel(what, config, &names, &sets, threads, rounds, bytes);
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
            "hash-par" => assert_eq!(hashed_on(&sets, threads).keys.len(), n),
            "batch-par" => assert_eq!(allocated_on(config, &names, &sets, threads).len(), n),
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
    println!(
        "{mode} {} {n}/{k}: min {:.0} ns/target ({:.2} GB/s of labels), median {:.0} ns/target ({rounds} rounds)",
        strategy.name(),
        per(times[0]),
        bytes as f64 / times[0].as_nanos() as f64,
        per(times[times.len() / 2]),
    );
}

/// `apply`: the label sets hashed once; each round a fresh allocator takes them in one
/// `apply_batch`, which alone is timed (the allocator is dropped outside the timing).
fn apply(config: Config, names: &[(String, String)], sets: &LabelColumns<'_>, rounds: usize) {
    let hashed = hash_label_sets(&mut KeyHasher::new(), sets);
    let n = hashed.keys.len();
    let add = collector_specs(names);
    let mut times = Vec::with_capacity(rounds);
    let mut digest = None;
    for _ in 0..rounds {
        let mut alloc = Allocator::new(config).expect("valid config");
        let start = Instant::now();
        alloc
            .apply_batch(&BatchDiff {
                upsert: hashed.batch(),
                add_collectors: &add,
                ..BatchDiff::default()
            })
            .expect("valid diff");
        times.push(start.elapsed());
        let moves = alloc.last_moves();
        assert_eq!(moves.len(), n);
        // The state's digest and the moves in order, folded: every round, and a build of other
        // code, must print the same.
        let folded = moves.iter().fold(alloc.digest(), |h, m| {
            let to = m.to.map_or(u64::MAX, |c| u64::from(c.index()));
            (h ^ m.key.0 ^ to.rotate_left(32)).wrapping_mul(0x100_0000_01b3)
        });
        assert_eq!(*digest.get_or_insert(folded), folded);
    }
    times.sort_unstable();
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    println!(
        "apply {} {n}/{}: min {:.0} ns/target, median {:.0} ns/target, digest and moves {:016x} ({rounds} rounds)",
        config.strategy.name(),
        names.len(),
        per(times[0]),
        per(times[times.len() / 2]),
        digest.unwrap_or(0),
    );
}

/// The bench's label sets hashed on `threads` threads.
fn hashed_on<'a>(sets: &'a LabelColumns<'a>, threads: usize) -> HashedSets<'a> {
    let mut out = HashedSets::default();
    KeyHasher::new()
        .hash_label_sets_on(&sets.as_sets(), threads, &mut out)
        .expect("generated labels are valid");
    out
}

/// `allocated_batch` with the label sets hashed on `threads` threads.
fn allocated_on(
    config: Config,
    names: &[(String, String)],
    sets: &LabelColumns<'_>,
    threads: usize,
) -> Allocator {
    allocated_hashed(config, names, &hashed_on(sets, threads))
}

/// CPU time of this process so far, all its threads (user + system, from `/proc/self/stat`, in
/// clock ticks of 10 ms), or `None` where there is no such file.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (in parentheses, which may hold spaces): utime and stime
    // are the 12th and 13th.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

/// `hash-vs` / `batch-vs`: the serial and the parallel form alternately, each round timed alone.
fn serial_vs_parallel(
    what: &str,
    config: Config,
    names: &[(String, String)],
    sets: &LabelColumns<'_>,
    threads: usize,
    rounds: usize,
    bytes: usize,
) {
    let n = sets.counts.len();
    let mut wall = [Vec::new(), Vec::new()];
    let mut cpu = [Duration::ZERO; 2];
    for _ in 0..rounds {
        for (side, t) in [1, threads].into_iter().enumerate() {
            let cpu_before = cpu_time();
            let start = Instant::now();
            match what {
                "hash" => assert_eq!(hashed_on(sets, t).keys.len(), n),
                "batch" => assert_eq!(allocated_on(config, names, sets, t).len(), n),
                other => panic!("unknown mode {other}-vs"),
            }
            wall[side].push(start.elapsed());
            if let (Some(a), Some(b)) = (cpu_before, cpu_time()) {
                cpu[side] += b - a;
            }
        }
    }
    let per = |d: Duration| d.as_nanos() as f64 / n as f64;
    for w in &mut wall {
        w.sort_unstable();
    }
    for (side, t) in [1, threads].into_iter().enumerate() {
        let w = &wall[side];
        println!(
            "{what} {} {n}/{} on {t} thread(s): min {:.0} ns/target ({:.2} GB/s of labels), median {:.0} ns/target, CPU {:.0} ns/target ({rounds} rounds)",
            config.strategy.name(),
            names.len(),
            per(w[0]),
            bytes as f64 / w[0].as_nanos() as f64,
            per(w[w.len() / 2]),
            per(cpu[side]) / rounds as f64,
        );
    }
    println!(
        "parallel / serial: wall (min) {:.3}, wall (median) {:.3}, CPU {:.3}",
        wall[1][0].as_secs_f64() / wall[0][0].as_secs_f64(),
        wall[1][rounds / 2].as_secs_f64() / wall[0][rounds / 2].as_secs_f64(),
        cpu[1].as_secs_f64() / cpu[0].as_secs_f64().max(f64::MIN_POSITIVE),
    );
}

/// `spawn`: `n` times, `threads` scoped threads started and joined, doing nothing.
fn spawn(n: usize, threads: usize) {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| ());
            }
        });
        times.push(start.elapsed());
    }
    times.sort_unstable();
    println!(
        "spawn {threads} scoped thread(s) and join them: min {:.1} µs, median {:.1} µs ({n} times)",
        times[0].as_secs_f64() * 1e6,
        times[n / 2].as_secs_f64() * 1e6,
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
