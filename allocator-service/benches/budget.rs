//! The movement budget on a scale event, per strategy: how much weight the core moves on
//! n → n+1 at 100k targets, and how a budget of 1 % of the weight (or 100 moves) per interval
//! spreads it: intervals until everything is served where the core has it, and the largest
//! share served-moved in one interval. Drives `budget::Budget` with synthetic interval starts,
//! the way the allocation loop does (refill, the diff's moves filtered, queued moves released).
//!
//! `cargo bench -p allocator-service --bench budget --profile release` (prints a Markdown table).

use std::time::{Duration, Instant};

use allocator_benches::{collector_names, collector_specs, specs, targets};
use allocator_core::{Allocator, Config, Diff, KeyHasher, Move, MoveKind, Strategy};
use allocator_service::budget::{Budget, Limits};

/// Weight of the reassignments among `moves`.
fn weight(a: &Allocator, moves: &[Move]) -> u64 {
    moves
        .iter()
        .filter(|m| m.kind() == MoveKind::Reassigned)
        .map(|m| a.target(m.key).map_or(0, |t| u64::from(t.weight)))
        .sum()
}

fn main() {
    let (k, n) = (100_000usize, 100usize);
    let raw = targets(k, n, 21);
    let mut hasher = KeyHasher::new();
    let upsert = specs(&mut hasher, &raw);
    let names = collector_names(n + 1);
    let all = collector_specs(&names);
    let interval = Duration::from_secs(30);
    println!("| strategy | budget per interval | weight moved by the core / min | served in the scale event's interval | intervals until served as placed | largest share served-moved in one interval |");
    println!("|---|---|---|---|---|---|");
    for strategy in [
        Strategy::ConsistentHashing,
        Strategy::LeastWeighted,
        Strategy::BoundedHashing,
        Strategy::Rebalancing,
    ] {
        for (label, limits) in [
            (
                "1 % of the weight",
                Limits {
                    max_moves: None,
                    max_weight_percent: Some(1.0),
                    interval,
                },
            ),
            (
                "100 moves",
                Limits {
                    max_moves: Some(100),
                    max_weight_percent: None,
                    interval,
                },
            ),
        ] {
            let mut a = Allocator::new(Config::with_strategy(strategy)).unwrap();
            a.apply(&Diff {
                add_collectors: all[..n].to_vec(),
                upsert: upsert.clone(),
                ..Diff::default()
            })
            .unwrap();
            let total: u64 = a.collectors().map(|c| c.weight).sum();
            let mut budget = Budget::new(Some(limits));
            let mut now = Instant::now();
            budget.refill(now, &a);
            let moves = a
                .apply(&Diff {
                    add_collectors: vec![all[n]],
                    ..Diff::default()
                })
                .unwrap()
                .to_vec();
            let core_weight = weight(&a, &moves);
            let mut served = Vec::new();
            budget.filter(&moves, &a, &mut served);
            let first = weight(&a, &served);
            let mut largest = first;
            let mut intervals = 1;
            while budget.queued() > 0 {
                now += interval;
                budget.refill(now, &a);
                let mut released = Vec::new();
                budget.release(&a, &mut released);
                largest = largest.max(weight(&a, &released));
                intervals += 1;
                assert!(intervals < 100_000, "the queue does not drain");
            }
            let min = total as f64 / (n + 1) as f64;
            println!(
                "| {strategy} | {label} | {:.2} | {:.2} % | {intervals} | {:.2} % |",
                core_weight as f64 / min,
                first as f64 * 100.0 / total as f64,
                largest as f64 * 100.0 / total as f64,
            );
        }
    }
}
