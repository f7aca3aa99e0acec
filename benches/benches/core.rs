//! Criterion benchmarks of allocator-core (results and machine in benches/README.md).
//!
//! `cargo bench -p allocator-benches --bench core`               the full suite (long)
//! `BENCH_SCALE=smoke cargo bench -p allocator-benches --bench core -- --test`  CI smoke run

use std::hint::black_box;
use std::time::{Duration, Instant};

use allocator_benches::{
    allocated, allocated_batch, collector_names, collector_specs, hash_label_sets, specs, targets,
    LabelColumns,
};
use allocator_core::{Allocator, Config, Diff, KeyHasher, Strategy, TargetSpec};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

fn smoke() -> bool {
    std::env::var("BENCH_SCALE").is_ok_and(|s| s == "smoke")
}

fn config(strategy: Strategy) -> Config {
    let mut c = Config::with_strategy(strategy);
    if strategy == Strategy::PerNode {
        c.fallback = Some(Strategy::ConsistentHashing);
    }
    c
}

fn strategy_name(s: Strategy) -> &'static str {
    s.name()
}

/// Full allocation from nothing, label hashing included: what a restarted allocator does.
fn full_allocation(c: &mut Criterion) {
    let sizes: &[usize] = if smoke() {
        &[1_000]
    } else {
        &[10_000, 100_000, 1_000_000]
    };
    let fleets: &[usize] = if smoke() { &[10] } else { &[10, 100, 1_000] };
    let mut group = c.benchmark_group("full_allocation");
    group.sample_size(10);
    for &n in sizes {
        let raw = targets(n, 1_000, 1);
        for &k in fleets {
            let names = collector_names(k);
            for strategy in Strategy::ALL {
                group.throughput(Throughput::Elements(n as u64));
                let id = BenchmarkId::new(strategy_name(strategy), format!("{n}/{k}"));
                group.bench_function(id, |b| {
                    b.iter(|| {
                        allocated(
                            config(strategy),
                            &names,
                            &specs(&mut KeyHasher::new(), &raw),
                        )
                    })
                });
            }
        }
    }
    group.finish();
}

/// [`full_allocation`] through the columnar input: label sets in flat arrays hashed into batch
/// columns, then one `apply_batch`.
fn full_allocation_batch(c: &mut Criterion) {
    let cases: &[(usize, usize)] = if smoke() {
        &[(1_000, 10)]
    } else {
        &[(100_000, 10), (1_000_000, 100), (1_000_000, 1_000)]
    };
    let mut group = c.benchmark_group("full_allocation_batch");
    group.sample_size(10);
    let mut raw = (0, targets(0, 1_000, 1));
    for &(n, k) in cases {
        if raw.0 != n {
            raw = (n, targets(n, 1_000, 1));
        }
        let sets = LabelColumns::new(&raw.1);
        let names = collector_names(k);
        for strategy in Strategy::ALL {
            group.throughput(Throughput::Elements(n as u64));
            let id = BenchmarkId::new(strategy_name(strategy), format!("{n}/{k}"));
            group.bench_function(id, |b| {
                b.iter(|| allocated_batch(config(strategy), &names, &sets))
            });
        }
    }
    group.finish();
}

/// A state of the first `n` targets on `k` collectors.
fn state(strategy: Strategy, n: usize, k: usize, targets: &[TargetSpec<'_>]) -> Allocator {
    allocated(config(strategy), &collector_names(k), &targets[..n])
}

/// Time `forward` only, undoing it with `backward` between samples so the state stays the same.
fn alternate(
    b: &mut criterion::Bencher<'_>,
    alloc: &mut Allocator,
    forward: &Diff<'_>,
    backward: &Diff<'_>,
) {
    b.iter_custom(|iters| {
        let mut total = Duration::ZERO;
        for _ in 0..iters {
            let start = Instant::now();
            black_box(alloc.apply(forward).unwrap().len());
            total += start.elapsed();
            alloc.apply(backward).unwrap();
        }
        total
    })
}

/// A churn diff that swaps the first `k` targets of `base` for the first `k` of `reserve`, and
/// the diff that undoes it.
fn swap_diffs<'a>(
    base: &[TargetSpec<'a>],
    reserve: &[TargetSpec<'a>],
    k: usize,
) -> (Diff<'a>, Diff<'a>) {
    let forward = Diff {
        remove: base[..k].iter().map(|t| t.key).collect(),
        upsert: reserve[..k].to_vec(),
        ..Diff::default()
    };
    let backward = Diff {
        remove: reserve[..k].iter().map(|t| t.key).collect(),
        upsert: base[..k].to_vec(),
        ..Diff::default()
    };
    (forward, backward)
}

/// Churn diffs on a large state: k targets removed and k new ones added.
fn churn(c: &mut Criterion) {
    let n = if smoke() { 2_000 } else { 1_000_000 };
    let raw = targets(n + n / 10, 1_000, 2);
    let mut hasher = KeyHasher::new();
    let all = specs(&mut hasher, &raw);
    let (base, reserve) = all.split_at(n);
    let mut group = c.benchmark_group("churn_1M");
    group.sample_size(20);
    for strategy in Strategy::ALL {
        let mut alloc = state(strategy, n, 100, base);
        let empty = Diff::default();
        group.bench_function(BenchmarkId::new(strategy_name(strategy), "empty"), |b| {
            b.iter(|| black_box(alloc.apply(&empty).unwrap().len()))
        });
        for permille in [1usize, 10, 100] {
            let k = n * permille / 1000;
            let (forward, backward) = swap_diffs(base, reserve, k);
            group.throughput(Throughput::Elements(2 * k as u64));
            let label = format!("{:.1}%", permille as f64 / 10.0);
            group.bench_function(BenchmarkId::new(strategy_name(strategy), label), |b| {
                alternate(b, &mut alloc, &forward, &backward)
            });
        }
    }
    group.finish();
}

/// The strategy comparison of benches/README.md (issue #10): full allocation of already-hashed
/// targets and a 1% churn diff, on 100k targets at 10, 100 and 1,000 collectors.
fn strategies_100k(c: &mut Criterion) {
    let n = if smoke() { 2_000 } else { 100_000 };
    let fleets: &[usize] = if smoke() { &[10] } else { &[10, 100, 1_000] };
    let raw = targets(n + n / 100, 1_000, 21);
    let mut hasher = KeyHasher::new();
    let all = specs(&mut hasher, &raw);
    let (base, reserve) = all.split_at(n);
    let (forward, backward) = swap_diffs(base, reserve, n / 100);
    let mut group = c.benchmark_group("strategies_100k");
    group.sample_size(10);
    for &fleet in fleets {
        let names = collector_names(fleet);
        for strategy in [
            Strategy::ConsistentHashing,
            Strategy::LeastWeighted,
            Strategy::BoundedHashing,
            Strategy::Rebalancing,
        ] {
            let s = strategy_name(strategy);
            group.bench_function(BenchmarkId::new(s, format!("full/{fleet}")), |b| {
                b.iter(|| allocated(config(strategy), &names, base))
            });
            let mut alloc = allocated(config(strategy), &names, base);
            group.bench_function(BenchmarkId::new(s, format!("churn 1%/{fleet}")), |b| {
                alternate(b, &mut alloc, &forward, &backward)
            });
        }
    }
    group.finish();
}

/// Scale events on a large state of 100 collectors.
fn scale(c: &mut Criterion) {
    let n = if smoke() { 2_000 } else { 1_000_000 };
    let raw = targets(n, 1_000, 3);
    let mut hasher = KeyHasher::new();
    let base = specs(&mut hasher, &raw);
    let extra = collector_names(110);
    let extra = collector_specs(&extra[100..]);
    let mut group = c.benchmark_group("scale_1M");
    group.sample_size(10);
    for strategy in Strategy::ALL {
        let mut alloc = state(strategy, n, 100, &base);
        let names: Vec<&str> = extra.iter().map(|c| c.name).collect();
        let add1 = Diff {
            add_collectors: extra[..1].to_vec(),
            ..Diff::default()
        };
        let del1 = Diff {
            remove_collectors: names[..1].to_vec(),
            ..Diff::default()
        };
        let add10 = Diff {
            add_collectors: extra.clone(),
            ..Diff::default()
        };
        let del10 = Diff {
            remove_collectors: names.clone(),
            ..Diff::default()
        };
        let last = collector_names(100).pop().unwrap();
        let remove_existing = Diff {
            remove_collectors: vec![last.0.as_str()],
            ..Diff::default()
        };
        let readd_existing = Diff {
            add_collectors: vec![allocator_core::CollectorSpec::on_node(&last.0, &last.1)],
            ..Diff::default()
        };
        let s = strategy_name(strategy);
        group.bench_function(BenchmarkId::new(s, "add 1"), |b| {
            alternate(b, &mut alloc, &add1, &del1)
        });
        group.bench_function(BenchmarkId::new(s, "remove 1"), |b| {
            alternate(b, &mut alloc, &remove_existing, &readd_existing)
        });
        group.bench_function(BenchmarkId::new(s, "add 10"), |b| {
            alternate(b, &mut alloc, &add10, &del10)
        });
    }
    group.finish();
}

/// Label hashing alone: target keys, placement and node from discovered label sets.
fn hashing(c: &mut Criterion) {
    let n = if smoke() { 1_000 } else { 100_000 };
    let raw = targets(n, 1_000, 4);
    let mut group = c.benchmark_group("label_hashing");
    group.throughput(Throughput::Elements(n as u64));
    group.bench_function("targets", |b| {
        let mut hasher = KeyHasher::new();
        b.iter(|| black_box(specs(&mut hasher, &raw)))
    });
    group.throughput(Throughput::Bytes(raw.label_bytes()));
    group.bench_function("bytes", |b| {
        let mut hasher = KeyHasher::new();
        b.iter(|| black_box(specs(&mut hasher, &raw)))
    });
    // The flat columns of the batch input: label sets in discovery order (never sorted), and
    // the same sets sorted.
    let unsorted = LabelColumns::new(&raw);
    let sorted = unsorted.sorted();
    for (name, part) in [("batch/unsorted", &unsorted), ("batch/sorted", &sorted)] {
        group.throughput(Throughput::Bytes(part.label_bytes()));
        group.bench_function(name, |b| {
            let mut hasher = KeyHasher::new();
            b.iter(|| black_box(hash_label_sets(&mut hasher, part)))
        });
    }
    group.finish();
}

/// Building the ring for a collector set (a collector change costs at least this).
fn ring_build(c: &mut Criterion) {
    let fleets: &[usize] = if smoke() { &[10] } else { &[100, 1_000] };
    let mut group = c.benchmark_group("ring_build");
    for &k in fleets {
        let names = collector_names(k);
        for version in ["v0.10.0", "v1.0.0"] {
            let mut config = Config::default();
            config.ring.version = version.parse().unwrap();
            group.bench_function(BenchmarkId::new(version, k), |b| {
                b.iter(|| {
                    let mut alloc = Allocator::new(config).unwrap();
                    alloc
                        .apply(&Diff {
                            add_collectors: collector_specs(&names),
                            ..Diff::default()
                        })
                        .unwrap();
                    alloc
                })
            });
        }
    }
    group.finish();
}

criterion_group!(
    benches,
    hashing,
    ring_build,
    full_allocation,
    full_allocation_batch,
    churn,
    strategies_100k,
    scale
);
criterion_main!(benches);
