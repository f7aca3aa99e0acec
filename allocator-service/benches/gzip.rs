//! The gzip level of the served answers: compression time and size of real HTTP SD answers
//! (100k Kubernetes-like targets, 10 jobs × 10 collectors: 100 answers of ~1k targets) at
//! several levels. Each answer is compressed once per change, and sent at every poll.
//!
//! `cargo bench -p allocator-service --bench gzip --profile release`

mod common;

use std::hint::black_box;
use std::time::Duration;

use allocator_core::{Allocator, CollectorSpec, Config, PlacementHash, Strategy, TargetSpec};
use allocator_service::answer::gzip_at;
use allocator_service::discovery::Target;
use allocator_service::publish::rebuild;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const TARGETS: usize = 100_000;
const COLLECTORS: usize = 10;

fn answers() -> Vec<axum::body::Bytes> {
    let ts: Vec<Target> = (0..TARGETS).map(|n| common::target(n, 0)).collect();
    let mut a = Allocator::new(Config::with_strategy(Strategy::ConsistentHashing)).unwrap();
    let names: Vec<String> = (0..COLLECTORS).map(|i| format!("collector-{i}")).collect();
    let cs: Vec<CollectorSpec<'_>> = names.iter().map(|n| CollectorSpec::new(n)).collect();
    a.set_collectors(&cs).unwrap();
    let specs: Vec<TargetSpec<'_>> = ts
        .iter()
        .map(|t| TargetSpec::new(t.key, PlacementHash::of_address(&t.address), &t.job))
        .collect();
    a.set_targets(&specs).unwrap();
    let mut sd: Vec<_> = rebuild(ts, &a).sd.into_iter().collect();
    sd.sort_by(|x, y| x.0.cmp(&y.0));
    sd.into_iter().map(|(_, a)| a.plain()).collect()
}

fn levels(c: &mut Criterion) {
    let answers = answers();
    let plain: usize = answers.iter().map(|a| a.len()).sum();
    let mut g = c.benchmark_group("gzip_100_answers_100k_targets");
    g.sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(4))
        .throughput(Throughput::Bytes(plain as u64));
    for level in [1u32, 3, 6, 9] {
        let packed: usize = answers.iter().map(|a| gzip_at(a, level).len()).sum();
        println!(
            "level {level}: {plain} plain bytes -> {packed} gzip bytes ({:.1}x smaller, {:.1} bytes/target)",
            plain as f64 / packed as f64,
            packed as f64 / TARGETS as f64
        );
        g.bench_function(BenchmarkId::new("level", level), |b| {
            b.iter(|| {
                for a in &answers {
                    black_box(gzip_at(a, level));
                }
            })
        });
    }
    g.finish();
}

criterion_group!(benches, levels);
criterion_main!(benches);
