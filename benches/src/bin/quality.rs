//! Allocation quality report: balance and moves per strategy, for 10, 100 and 1,000 collectors
//! and 100k targets (the table in benches/README.md).
//!
//! `cargo run --release -p allocator-benches --bin quality [TARGETS]`
//!
//! `... --bin quality [TARGETS] epsilon` instead prints the moves-versus-ε curve of the two
//! strategies with a slack (`bounded-hashing`, `rebalancing`) for ε = 0.02, 0.05, 0.1, 0.25.
//!
//! `... --bin quality [TARGETS] zones` prints zone-aware `rebalancing` (three zones) for zone
//! skews 0.05, 0.1, 0.25: weight kept in its zone, balance, and moves on +1 / −1.

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

/// Moves (count, weight) on n→n+1, then, back at n, on the removal of the first collector.
fn scale_events(
    alloc: &mut Allocator,
    all: &[allocator_core::CollectorSpec<'_>],
    n: usize,
) -> ((usize, u64), (usize, u64)) {
    let up = moved(
        alloc,
        &Diff {
            add_collectors: vec![all[n]],
            ..Diff::default()
        },
    );
    alloc
        .apply(&Diff {
            remove_collectors: vec![all[n].name],
            ..Diff::default()
        })
        .unwrap();
    let down = moved(
        alloc,
        &Diff {
            remove_collectors: vec![all[0].name],
            ..Diff::default()
        },
    );
    (up, down)
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
    let (up, down) = scale_events(&mut alloc, all, n);
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

/// Weight held by a collector of its own zone, as a fraction of all.
fn in_zone(alloc: &Allocator) -> f64 {
    let (mut home, mut all) = (0u64, 0u64);
    let zone_of_node: std::collections::HashMap<&str, &str> =
        alloc.node_zones().into_iter().collect();
    let collector_zone: std::collections::HashMap<_, _> = alloc
        .collectors()
        .map(|c| (c.id, c.node.and_then(|n| zone_of_node.get(n).copied())))
        .collect();
    for t in alloc.targets() {
        all += u64::from(t.weight);
        let here = t.collector.and_then(|c| collector_zone[&c]);
        if here.is_some() && here == alloc.zone_of(t.key) {
            home += u64::from(t.weight);
        }
    }
    home as f64 / all as f64
}

/// Zone-aware rebalancing: collectors `i` on node `i`, zone `i % 3`; targets on `2n` nodes, the
/// first `n` spread like the collectors and, in the `crowded` case, the other `n` all in zone 0
/// (two thirds of the weight for a third of the collectors); otherwise zones follow `i % 3`.
fn zones(k: usize) {
    println!("| case | skew | collectors | weight in zone | weight max/mean | weight min/mean | weight moved +1 / min | weight moved −1 / min | full allocation | 1% churn diff |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for crowded in [false, true] {
        for n in [10usize, 100, 1000] {
            let raw: Workload = targets(k, 2 * n, 21);
            let mut hasher = KeyHasher::new();
            let upsert = specs(&mut hasher, &raw);
            let nodes = collector_names(2 * n);
            let names = collector_names(n + 1);
            let all = collector_specs(&names);
            const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];
            let table: Vec<(&str, &str)> = nodes
                .iter()
                .enumerate()
                .map(|(i, (_, node))| {
                    let z = if crowded && i >= n { 0 } else { i % 3 };
                    (node.as_str(), ZONES[z])
                })
                .collect();
            for skew in [0.05, 0.1, 0.25] {
                let mut cfg = config(Strategy::Rebalancing, 0.05);
                cfg.zone_skew = Some(skew);
                let mut alloc = Allocator::new(cfg).unwrap();
                alloc.set_node_zones(&table).unwrap();
                let start = std::time::Instant::now();
                alloc
                    .apply(&Diff {
                        add_collectors: all[..n].to_vec(),
                        upsert: upsert.clone(),
                        ..Diff::default()
                    })
                    .unwrap();
                let full = start.elapsed();
                let s = alloc.summary();
                let home = in_zone(&alloc);
                // 1% churn: remove and re-add 1% of the targets (as a rollout does).
                let churned: Vec<_> = upsert.iter().step_by(100).copied().collect();
                let start = std::time::Instant::now();
                alloc
                    .apply(&Diff {
                        remove: churned.iter().map(|t| t.key).collect(),
                        ..Diff::default()
                    })
                    .unwrap();
                alloc
                    .apply(&Diff {
                        upsert: churned,
                        ..Diff::default()
                    })
                    .unwrap();
                let churn = start.elapsed() / 2;
                let total = s.mean_weight * n as f64;
                let ((_, up_w), (_, down_w)) = scale_events(&mut alloc, &all, n);
                println!(
                    "| {} | {skew} | {n} | {:.3} | {:.2} | {:.2} | {:.2} | {:.2} | {:.0} ms | {:.1} ms |",
                    if crowded { "crowded zone-a" } else { "even" },
                    home,
                    s.max_weight as f64 / s.mean_weight,
                    s.min_weight as f64 / s.mean_weight,
                    up_w as f64 / (total / (n + 1) as f64),
                    down_w as f64 / (total / n as f64),
                    full.as_secs_f64() * 1e3,
                    churn.as_secs_f64() * 1e3,
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
    if std::env::args().nth(2).as_deref() == Some("zones") {
        zones(k);
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
