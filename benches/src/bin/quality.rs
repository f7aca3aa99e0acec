//! Allocation quality report: balance and moves per strategy, for 10, 100 and 1,000 collectors
//! and 100k targets (the table in benches/README.md).
//!
//! `cargo run --release -p allocator-benches --bin quality [TARGETS]`
//!
//! `... --bin quality [TARGETS] epsilon` instead prints the moves-versus-ε curve of the two
//! strategies with a slack (`bounded-hashing`, `rebalancing`) for ε = 0.02, 0.05, 0.1, 0.25.

use allocator_benches::{collector_names, collector_specs, specs, targets, Workload};
use allocator_core::{Allocator, Config, Diff, KeyHasher, MoveKind, Strategy};

fn config(strategy: Strategy, epsilon: f64) -> Config {
    let mut c = Config::with_strategy(strategy);
    c.bounded.epsilon = epsilon;
    if strategy == Strategy::PerNode {
        c.fallback = Some(Strategy::ConsistentHashing);
    }
    c
}

/// The widest spread of one job over the collectors (max − min targets), over the jobs with at
/// least as many targets as collectors.
fn job_spread(alloc: &Allocator) -> u32 {
    let n = alloc.collector_count() as u32;
    let ids: Vec<_> = alloc.collectors().map(|c| c.id).collect();
    alloc
        .jobs()
        .into_iter()
        .filter(|&(_, count)| count >= n)
        .map(|(name, _)| {
            let job = alloc.job_id(name).unwrap();
            let counts = ids.iter().map(|&c| alloc.job_targets_on(job, c));
            counts.clone().max().unwrap_or(0) - counts.min().unwrap_or(0)
        })
        .max()
        .unwrap_or(0)
}

fn moved(alloc: &mut Allocator, diff: &Diff<'_>) -> (usize, u64) {
    let moves = alloc.apply(diff).unwrap().to_vec();
    let mut count = 0;
    let mut weight = 0;
    for m in moves.iter().filter(|m| m.kind() == MoveKind::Reassigned) {
        count += 1;
        weight += u64::from(alloc.target(m.key).unwrap().weight);
    }
    (count, weight)
}

/// One row of measurements: balance after a full allocation, then moves on n→n+1 and, back at
/// n, on the removal of the first collector.
struct Row {
    summary: allocator_core::LoadSummary,
    spread: u32,
    bound: u64,
    up: (usize, u64),
    down: (usize, u64),
}

fn measure(
    cfg: Config,
    upsert: &[allocator_core::TargetSpec<'_>],
    all: &[allocator_core::CollectorSpec<'_>],
    n: usize,
) -> Row {
    let mut alloc = Allocator::new(cfg).unwrap();
    alloc
        .apply(&Diff {
            add_collectors: all[..n].to_vec(),
            upsert: upsert.to_vec(),
            ..Diff::default()
        })
        .unwrap();
    let summary = alloc.summary();
    let spread = job_spread(&alloc);
    let total: u64 = alloc.targets().map(|t| u64::from(t.weight)).sum();
    let bound = (total * 105).div_ceil(100 * n as u64);
    let up = moved(
        &mut alloc,
        &Diff {
            add_collectors: vec![all[n]],
            ..Diff::default()
        },
    );
    // Back to n, then remove one of the original collectors.
    alloc
        .apply(&Diff {
            remove_collectors: vec![all[n].name],
            ..Diff::default()
        })
        .unwrap();
    let down = moved(
        &mut alloc,
        &Diff {
            remove_collectors: vec![all[0].name],
            ..Diff::default()
        },
    );
    Row {
        summary,
        spread,
        bound,
        up,
        down,
    }
}

fn epsilon_curve(k: usize) {
    println!("| strategy | ε | collectors | weight max/mean | weight min/mean | weight moved +1 / min | weight moved −1 / min |");
    println!("|---|---|---|---|---|---|---|");
    for strategy in [Strategy::BoundedHashing, Strategy::Rebalancing] {
        for eps in [0.02, 0.05, 0.1, 0.25] {
            for n in [10usize, 100, 1000] {
                let raw: Workload = targets(k, n, 21);
                let mut hasher = KeyHasher::new();
                let upsert = specs(&mut hasher, &raw);
                let names = collector_names(n + 1);
                let all = collector_specs(&names);
                let r = measure(config(strategy, eps), &upsert, &all, n);
                let s = r.summary;
                let total_weight = s.mean_weight * n as f64;
                println!(
                    "| {strategy} | {eps} | {n} | {:.2} | {:.2} | {:.2} | {:.2} |",
                    s.max_weight as f64 / s.mean_weight,
                    s.min_weight as f64 / s.mean_weight,
                    r.up.1 as f64 / (total_weight / (n + 1) as f64),
                    r.down.1 as f64 / (total_weight / n as f64),
                );
            }
        }
    }
}

fn main() {
    let k: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(100_000);
    if std::env::args().nth(2).as_deref() == Some("epsilon") {
        epsilon_curve(k);
        return;
    }
    println!("| strategy | collectors | max/mean | min/mean | weight max/mean | weight min/mean | weight max / ⌈1.05·W/n⌉ | job spread | moved on +1 (min K/(n+1)) | moved on −1 (min K/n) | weight moved +1 / min | weight moved −1 / min |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for n in [10usize, 100, 1000] {
        // Per-node needs targets on the collectors' nodes: as many nodes as collectors.
        let raw: Workload = targets(k, n, 21);
        let mut hasher = KeyHasher::new();
        let upsert = specs(&mut hasher, &raw);
        let names = collector_names(n + 1);
        let all = collector_specs(&names);
        for strategy in Strategy::ALL {
            let Row {
                summary: s,
                spread,
                bound,
                up: (up, up_w),
                down: (down, down_w),
            } = measure(config(strategy, 0.05), &upsert, &all, n);
            let total_weight = s.mean_weight * n as f64;
            println!(
                "| {strategy} | {n} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {spread} | {up} ({}) | {down} ({}) | {:.2} | {:.2} |",
                s.max_over_mean(),
                s.min_over_mean(),
                s.max_weight as f64 / s.mean_weight,
                s.min_weight as f64 / s.mean_weight,
                s.max_weight as f64 / bound as f64,
                k / (n + 1),
                k / n,
                up_w as f64 / (total_weight / (n + 1) as f64),
                down_w as f64 / (total_weight / n as f64),
            );
        }
    }
}
