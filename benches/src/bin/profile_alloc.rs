//! One full allocation of N pre-hashed targets, for profilers (callgrind, perf):
//! `cargo run --release -p allocator-benches --bin profile_alloc [N] [COLLECTORS]`

use allocator_benches::{allocated, collector_names, specs, targets};
use allocator_core::{Config, KeyHasher};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().expect("numbers"));
    let n = args.next().unwrap_or(100_000);
    let k = args.next().unwrap_or(10);
    let raw = targets(n, 1_000, 1);
    let upsert = specs(&mut KeyHasher::new(), &raw);
    let names = collector_names(k);
    let start = std::time::Instant::now();
    let alloc = allocated(Config::default(), &names, &upsert);
    assert_eq!(alloc.len(), n);
    let elapsed = start.elapsed();
    println!(
        "{n} targets on {k} collectors: {:?} ({:.0} ns/target)",
        elapsed,
        elapsed.as_nanos() as f64 / n as f64
    );
}
