//! Full allocations for profilers (perf, callgrind):
//! `cargo run --profile bench -p allocator-benches --bin profile_alloc [N] [COLLECTORS] [MODE] [STRATEGY] [ROUNDS]`
//!
//! MODE: `alloc` (pre-hashed specs, the allocation alone), `hash` (label hashing alone),
//! `spec` (hashing + allocation through `TargetSpec`s, as the `full_allocation` bench), `batch`
//! (hashing + allocation through the columnar batch, as `full_allocation_batch`).

use std::time::Instant;

use allocator_benches::{
    allocated, allocated_batch, collector_names, specs, targets, LabelColumns,
};
use allocator_core::{Config, KeyHasher, Strategy};

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
    let raw = targets(n, 1_000, 1);
    let sets = LabelColumns::new(&raw);
    let names = collector_names(k);
    let pre = specs(&mut KeyHasher::new(), &raw);
    let start = Instant::now();
    for _ in 0..rounds {
        match mode {
            "alloc" => assert_eq!(allocated(config, &names, &pre).len(), n),
            "hash" => assert_eq!(specs(&mut KeyHasher::new(), &raw).len(), n),
            "spec" => {
                let upsert = specs(&mut KeyHasher::new(), &raw);
                assert_eq!(allocated(config, &names, &upsert).len(), n);
            }
            "batch" => assert_eq!(allocated_batch(config, &names, &sets).len(), n),
            other => panic!("unknown mode {other}"),
        }
    }
    let elapsed = start.elapsed() / rounds as u32;
    println!(
        "{mode}: {n} targets on {k} collectors: {elapsed:?} ({:.0} ns/target)",
        elapsed.as_nanos() as f64 / n as f64
    );
}
