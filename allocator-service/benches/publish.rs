//! Publishing a view after churn: the incremental publisher against the full build it replaced,
//! at 100k targets (10 jobs, 10 collectors, consistent-hashing, Kubernetes-like labels).
//!
//! `cargo bench -p allocator-service --bench publish --profile release`
//!
//! Each measured publish goes from one listing to the other (A → B, then B → A, …), so every
//! iteration carries the same churn; the listing's clone (the engine gets it from discovery)
//! and the drop of the previous view are outside the timing for both. Unchanged targets share
//! their label set and address with the other listing, as discovery hands them over (an
//! unchanged file, or the unchanged groups of a re-read one).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use allocator_core::{Allocator, CollectorSpec, Config, Move, PlacementHash, Strategy, TargetSpec};
use allocator_service::discovery::Target;
use allocator_service::publish::{rebuild, Publisher};
use common::target;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

const TARGETS: usize = 100_000;
const COLLECTORS: usize = 10;

/// The base listing, and one with `per_mille`‰ of it churned: half of those replaced by new
/// targets (removed + added), half with a changed `__meta_*` label (same identity).
fn listings(per_mille: usize) -> (Vec<Target>, Vec<Target>) {
    let a: Vec<Target> = (0..TARGETS).map(|n| target(n, 0)).collect();
    let churned = TARGETS * per_mille / 1000;
    let step = TARGETS / churned.max(1);
    let mut b = a.clone();
    for (i, at) in (0..churned).map(|i| (i, i * step)) {
        b[at] = if i % 2 == 0 {
            target(TARGETS + at, 0)
        } else {
            target(at, 1)
        };
    }
    (a, b)
}

fn specs(ts: &[Target]) -> Vec<TargetSpec<'_>> {
    ts.iter()
        .map(|t| TargetSpec::new(t.key, PlacementHash::of_address(&t.address), &t.job))
        .collect()
}

/// An allocator holding `first` then `then`, with the moves of that last listing.
fn allocator(first: &[Target], then: &[Target]) -> (Allocator, Vec<Move>) {
    let mut a = Allocator::new(Config::with_strategy(Strategy::ConsistentHashing)).unwrap();
    let names: Vec<String> = (0..COLLECTORS).map(|i| format!("collector-{i}")).collect();
    let specs_c: Vec<CollectorSpec<'_>> = names.iter().map(|n| CollectorSpec::new(n)).collect();
    a.set_collectors(&specs_c).unwrap();
    a.set_targets(&specs(first)).unwrap();
    let moves = a.set_targets(&specs(then)).unwrap().to_vec();
    (a, moves)
}

fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_100k");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for per_mille in [0usize, 1, 10, 100] {
        let (a, b) = listings(per_mille);
        // The same collectors were added in the same order, so collector ids agree.
        let (alloc_b, to_b) = allocator(&a, &b);
        let (alloc_a, to_a) = allocator(&b, &a);
        let label = format!("{}%", per_mille as f64 / 10.0);
        // Criterion calls the routine once per sample: the publisher lives across them.
        let mut p = Publisher::default();
        let first = allocator(&[], &a);
        p.moved(&first.1, &first.0);
        drop(p.publish(a.clone(), &first.0));
        let mut at_a = true;
        g.bench_function(BenchmarkId::new("incremental", &label), |bench| {
            bench.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let (listing, alloc, moves) = if at_a {
                        (b.clone(), &alloc_b, &to_b)
                    } else {
                        (a.clone(), &alloc_a, &to_a)
                    };
                    at_a = !at_a;
                    let start = Instant::now();
                    p.moved(moves, alloc);
                    let view = black_box(p.publish(listing, alloc));
                    spent += start.elapsed();
                    drop(view);
                }
                spent
            });
        });
    }
    // Today's full build does not depend on the churn: measured once, in the same run.
    let (_, b) = listings(10);
    let (alloc_b, _) = allocator(&[], &b);
    g.bench_function(BenchmarkId::new("full", "any churn"), |bench| {
        bench.iter_custom(|iters| {
            let mut spent = Duration::ZERO;
            for _ in 0..iters {
                let listing = b.clone();
                let start = Instant::now();
                let view = black_box(rebuild(listing, &alloc_b));
                spent += start.elapsed();
                drop(view);
            }
            spent
        });
    });
    g.finish();
}

criterion_group!(benches, publish);
criterion_main!(benches);
