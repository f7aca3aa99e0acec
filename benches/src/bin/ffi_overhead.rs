//! The C ABI's overhead over the core on a shared, noisy machine: the same operations as the
//! `ffi` bench ([`allocator_benches::c_abi`]), core and C ABI run alternately, each round timing
//! `ITERS` calls of one side, the minimum per call over the rounds reported (the figure least
//! disturbed by other processes), with the ratio of the minimums:
//! `cargo run --profile bench -p allocator-benches --bin ffi_overhead [ROUNDS] [ITERS]`

use std::time::{Duration, Instant};

use allocator_benches::c_abi::Sides;

type Op = fn(&mut Sides);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let num = |i: usize, d: usize| args.get(i).map_or(d, |a| a.parse().expect("a number"));
    let (rounds, iters) = (num(0, 30), num(1, 20));
    let mut sides = Sides::new(100_000);
    let pairs: [(&str, Op, Op); 3] = [
        (
            "upsert+remove (columns)",
            Sides::core_columns,
            Sides::c_columns,
        ),
        (
            "labeled upsert+remove",
            Sides::core_labeled,
            Sides::c_labeled,
        ),
        (
            "read (owners + collector table)",
            Sides::core_read,
            Sides::c_read,
        ),
    ];
    for (name, core, c) in pairs {
        let mut best = [Duration::MAX; 2];
        for _ in 0..rounds {
            for (side, op) in [core, c].into_iter().enumerate() {
                let start = Instant::now();
                for _ in 0..iters {
                    op(&mut sides);
                }
                best[side] = best[side].min(start.elapsed() / iters as u32);
            }
        }
        println!(
            "{name}: core {:.1} µs, C ABI {:.1} µs, C ABI / core {:.3}",
            best[0].as_secs_f64() * 1e6,
            best[1].as_secs_f64() * 1e6,
            best[1].as_secs_f64() / best[0].as_secs_f64()
        );
    }
}
