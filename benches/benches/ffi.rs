//! The C ABI against the core called directly, per target, in batches of 1,024
//! (DESIGN.md §5: within 10%). Both sides start from the same 100k-target state and receive
//! the same batches ([`allocator_benches::c_abi`]); the C side also hands each change's moves
//! back in a `ta_view`, the core side reads its moves from the returned slice.
//!
//! `cargo bench -p allocator-benches --bench ffi`

use allocator_benches::c_abi::{Sides, BATCH};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn smoke() -> bool {
    std::env::var("BENCH_SCALE").is_ok_and(|s| s == "smoke")
}

fn batches(c: &mut Criterion) {
    let mut sides = Sides::new(if smoke() { 5_000 } else { 100_000 });
    let mut group = c.benchmark_group("batch_1024");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("core/upsert+remove", |b| b.iter(|| sides.core_columns()));
    group.bench_function("c_abi/upsert+remove (moves in a view)", |b| {
        b.iter(|| sides.c_columns())
    });
    group.bench_function("core/labeled upsert+remove", |b| {
        b.iter(|| sides.core_labeled())
    });
    group.bench_function("c_abi/labeled upsert+remove (moves in a view)", |b| {
        b.iter(|| sides.c_labeled())
    });
    group.bench_function("core/read (owners + collector table)", |b| {
        b.iter(|| sides.core_read())
    });
    group.bench_function("c_abi/read (owners + collector table)", |b| {
        b.iter(|| sides.c_read())
    });
    group.finish();
}

criterion_group!(benches, batches);
criterion_main!(benches);
