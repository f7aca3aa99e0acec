//! Publishing a view after churn at 100k targets (10 jobs, 10 collectors, consistent-hashing,
//! Kubernetes-like labels): the full build against the incremental paths.
//!
//! `cargo bench -p allocator-service --bench publish --profile release`
//!
//! - `full`: every answer serialized from scratch ([`rebuild`]; does not depend on the churn).
//! - `publisher`: the publisher alone, handed one listing's changes (targets added, removed,
//!   relabeled) and the diff's moves (made outside the timing), then publishing.
//! - `publisher_gzipped`: the same, each view's rebuilt answers compressed after it is published
//!   (outside the timing) as the service's gzip thread does: chunks then hold only their gzip
//!   member, and a recut inflates the unchanged fragments of the chunks it rebuilds.
//! - `tick`: what the service's refresh does from a re-read file's groups to a published view:
//!   discovery compares each job's groups by pointer and relabels the new ones
//!   ([`Current`]), the allocator applies the changes as one diff, the publisher takes the
//!   changes and the moves and publishes.
//!
//! Each measured step goes from one listing to the other (A → B, then B → A, …), so every
//! iteration carries the same churn. Unchanged targets are the same groups (allocations) in
//! both listings, as discovery hands them over for the unchanged groups of a re-read file.

mod common;

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allocator_core::{
    Allocator, CollectorSpec, Config, Diff, Move, PlacementHash, Strategy, TargetKey, TargetSpec,
};
use allocator_service::discovery::{Current, FileGroup, JobSpec, Target};
use allocator_service::publish::{rebuild, Publisher};
use common::{target, JOBS};
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

fn spec(t: &Target) -> TargetSpec<'_> {
    TargetSpec::new(t.key, PlacementHash::of_address(&t.address), &t.job)
}

fn allocator() -> Allocator {
    let mut a = Allocator::new(Config::with_strategy(Strategy::ConsistentHashing)).unwrap();
    let names: Vec<String> = (0..COLLECTORS).map(|i| format!("collector-{i}")).collect();
    let specs_c: Vec<CollectorSpec<'_>> = names.iter().map(|n| CollectorSpec::new(n)).collect();
    a.set_collectors(&specs_c).unwrap();
    a
}

/// What changed from `from` to `to`: removed keys, and targets added or changed.
fn changes<'a>(from: &[Target], to: &'a [Target]) -> (Vec<TargetKey>, Vec<&'a Target>) {
    let before: HashMap<TargetKey, &Target> = from.iter().map(|t| (t.key, t)).collect();
    let after: HashMap<TargetKey, &Target> = to.iter().map(|t| (t.key, t)).collect();
    let removed = from
        .iter()
        .filter(|t| !after.contains_key(&t.key))
        .map(|t| t.key)
        .collect();
    let upserted = to
        .iter()
        .filter(|t| before.get(&t.key).is_none_or(|b| *b != *t))
        .collect();
    (removed, upserted)
}

/// One step of the publisher alone: changes and moves handed over, then a publish.
struct Step<'a> {
    removed: Vec<TargetKey>,
    upserted: Vec<&'a Target>,
    moves: Vec<Move>,
    alloc: Allocator,
}

fn step<'a>(from: &[Target], to: &'a [Target]) -> Step<'a> {
    let (removed, upserted) = changes(from, to);
    let mut alloc = allocator();
    let specs: Vec<TargetSpec<'_>> = from.iter().map(spec).collect();
    alloc.set_targets(&specs).unwrap();
    let diff = Diff {
        upsert: upserted.iter().map(|t| spec(t)).collect(),
        remove: removed.clone(),
        ..Diff::default()
    };
    let moves = alloc.apply(&diff).unwrap().to_vec();
    Step {
        removed,
        upserted,
        moves,
        alloc,
    }
}

/// Each job's file groups (one target each, as `make scale`'s file); where `listing` holds the
/// same target as `base` (the same allocations), the same group as `shared`.
fn groups(
    listing: &[Target],
    base: &[Target],
    shared: &[Arc<FileGroup>],
) -> Vec<Vec<Arc<FileGroup>>> {
    let mut out = vec![Vec::new(); JOBS];
    for (n, t) in listing.iter().enumerate() {
        let kept = base.get(n).is_some_and(|b| {
            Arc::ptr_eq(&b.group, &t.group) && Arc::ptr_eq(&b.address, &t.address)
        });
        let g = if kept {
            shared[n].clone()
        } else {
            FileGroup::of(t)
        };
        out[n % JOBS].push(g);
    }
    out
}

fn publish(c: &mut Criterion) {
    let mut g = c.benchmark_group("publish_100k");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    let job_names: Vec<String> = (0..JOBS).map(|j| format!("job-{j}")).collect();
    let params = Default::default();
    let jobs: Vec<JobSpec<'_>> = job_names
        .iter()
        .map(|name| JobSpec {
            name,
            scrape_interval: "30s",
            scrape_timeout: "10s",
            metrics_path: "/metrics",
            scheme: "http",
            params: &params,
            rules: &[],
        })
        .collect();
    for per_mille in [0usize, 1, 10, 100] {
        let (a, b) = listings(per_mille);
        let label = format!("{}%", per_mille as f64 / 10.0);

        // The publisher alone; `gzipped`: each view's rebuilt answers are compressed after it
        // is published (outside the timing), as the service's gzip thread does, so chunks keep
        // only their gzip members and a recut inflates the old chunk's unchanged fragments.
        for gzipped in [false, true] {
            let to_b = step(&a, &b);
            let to_a = step(&b, &a);
            let mut p = Publisher::default();
            {
                let mut first = allocator();
                let specs: Vec<TargetSpec<'_>> = a.iter().map(spec).collect();
                let moves = first.set_targets(&specs).unwrap().to_vec();
                for t in &a {
                    p.upsert(t);
                }
                p.moved(&moves, &first);
                let view = p.publish(&first);
                if gzipped {
                    view.rebuilt.iter().for_each(|r| r.warm());
                }
            }
            let mut at_a = true;
            let name = if gzipped {
                "publisher_gzipped"
            } else {
                "publisher"
            };
            g.bench_function(BenchmarkId::new(name, &label), |bench| {
                bench.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let s = if at_a { &to_b } else { &to_a };
                        at_a = !at_a;
                        let start = Instant::now();
                        for t in &s.upserted {
                            p.upsert(t);
                        }
                        p.moved(&s.moves, &s.alloc);
                        for &k in &s.removed {
                            p.remove(k);
                        }
                        let view = black_box(p.publish(&s.alloc));
                        spent += start.elapsed();
                        if gzipped {
                            view.rebuilt.iter().for_each(|r| r.warm());
                        }
                        drop(view);
                    }
                    spent
                });
            });
            drop((to_a, to_b, p));
        }

        // The refresh from changed groups to a published view.
        let of_a: Vec<Arc<FileGroup>> = a.iter().map(FileGroup::of).collect();
        let groups_a = groups(&a, &a, &of_a);
        let groups_b = groups(&b, &a, &of_a);
        let mut current = Current::default();
        let mut alloc = allocator();
        let mut p = Publisher::default();
        let mut refresh =
            |groups: &[Vec<Arc<FileGroup>>], alloc: &mut Allocator, p: &mut Publisher| {
                current.begin();
                for (job, gs) in jobs.iter().zip(groups) {
                    current.set_groups(&format!("file {}", job.name), job, gs);
                }
                let c = current.finish();
                for t in &c.upserted {
                    p.upsert(t);
                }
                let diff = Diff {
                    upsert: c.upserted.iter().map(spec).collect(),
                    remove: c.removed.iter().map(|t| t.key).collect(),
                    ..Diff::default()
                };
                let moves = alloc.apply(&diff).unwrap().to_vec();
                p.moved(&moves, alloc);
                for t in &c.removed {
                    p.remove(t.key);
                }
                black_box(p.publish(alloc))
            };
        drop(refresh(&groups_a, &mut alloc, &mut p));
        let mut at_a = true;
        g.bench_function(BenchmarkId::new("tick", &label), |bench| {
            bench.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    let groups = if at_a { &groups_b } else { &groups_a };
                    at_a = !at_a;
                    let start = Instant::now();
                    let view = refresh(groups, &mut alloc, &mut p);
                    spent += start.elapsed();
                    drop(view);
                }
                spent
            });
        });
    }
    // The full build does not depend on the churn: measured once, in the same run.
    let (_, b) = listings(10);
    let mut alloc_b = allocator();
    let specs: Vec<TargetSpec<'_>> = b.iter().map(spec).collect();
    alloc_b.set_targets(&specs).unwrap();
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
