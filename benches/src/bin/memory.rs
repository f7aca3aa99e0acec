//! Memory of the core state per target at 1M targets: bytes the allocator holds (a counting
//! global allocator), its own estimate, and process RSS; plus snapshot size and timings.
//!
//! `cargo run --release -p allocator-benches --bin memory [TARGETS]`

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::Instant;

use allocator_benches::{allocated, collector_names, specs, targets};
use allocator_core::{Allocator, Config, Diff, KeyHasher, Strategy};

/// Counts live heap bytes.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: same layout contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: `ptr` came from `alloc` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let raw = targets(n, 1_000, 11);
    let mut hasher = KeyHasher::new();
    let upsert = specs(&mut hasher, &raw);
    let names = collector_names(100);
    println!("| strategy | targets | live bytes/target | estimate bytes/target | RSS MiB (process, with inputs) | snapshot bytes/target | snapshot ms | restore ms |");
    println!("|---|---|---|---|---|---|---|---|");
    for strategy in Strategy::ALL {
        let mut config = Config::with_strategy(strategy);
        if strategy == Strategy::PerNode {
            config.fallback = Some(Strategy::ConsistentHashing);
        }
        let before = LIVE.load(Ordering::Relaxed);
        let mut alloc = allocated(config, &names, &upsert);
        // The moves of the last diff are a caller-facing buffer, not state: clear them.
        alloc.apply(&Diff::default()).unwrap();
        let live = LIVE.load(Ordering::Relaxed) - before;
        let rss = rss_kib();
        let t = Instant::now();
        let snap = alloc.snapshot();
        let snap_ms = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        let back = Allocator::restore(&snap).unwrap();
        let restore_ms = t.elapsed().as_secs_f64() * 1e3;
        assert_eq!(back.len(), alloc.len());
        println!(
            "| {strategy} | {n} | {:.1} | {:.1} | {:.0} | {:.1} | {snap_ms:.0} | {restore_ms:.0} |",
            live as f64 / n as f64,
            alloc.heap_bytes() as f64 / n as f64,
            rss as f64 / 1024.0,
            snap.len() as f64 / n as f64,
        );
    }
}
