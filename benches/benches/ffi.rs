//! The C ABI against the core called directly, per target, in batches of 1,024
//! (DESIGN.md §5: within 10%). Both sides start from the same 100k-target state.
//!
//! `cargo bench -p allocator-benches --bench ffi`

use std::hint::black_box;

use allocator_benches::{collector_names, collector_specs, specs, targets};
use allocator_core::{Allocator, Config, Diff, KeyHasher, TargetKey, TargetSpec};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use target_allocator::{
    ta_allocator, ta_apply, ta_collector, ta_config, ta_config_default, ta_lookup, ta_result,
    ta_str, ta_target, ta_upsert_labeled_targets,
};

const BATCH: usize = 1024;

fn smoke() -> bool {
    std::env::var("BENCH_SCALE").is_ok_and(|s| s == "smoke")
}

fn s(v: &str) -> ta_str {
    ta_str {
        ptr: v.as_ptr(),
        len: v.len(),
    }
}

fn to_c(t: &TargetSpec<'_>) -> ta_target {
    ta_target {
        key: t.key.0,
        placement: t.placement.0,
        job: s(t.job),
        node: t.node.map_or(
            ta_str {
                ptr: std::ptr::null(),
                len: 0,
            },
            s,
        ),
        weight: t.weight,
    }
}

fn ffi_allocator(base: &[TargetSpec<'_>], names: &[(String, String)]) -> *mut ta_allocator {
    let mut cfg = std::mem::MaybeUninit::<ta_config>::uninit();
    // SAFETY: `cfg` is writable; ta_config_default fills every field.
    let cfg = unsafe {
        assert_eq!(ta_config_default(cfg.as_mut_ptr()), ta_result::TA_OK);
        cfg.assume_init()
    };
    let mut ta: *mut ta_allocator = std::ptr::null_mut();
    // SAFETY: valid config and out-pointer.
    assert_eq!(
        unsafe { target_allocator::ta_allocator_new(&cfg, &mut ta, std::ptr::null_mut()) },
        ta_result::TA_OK
    );
    let cols: Vec<ta_collector> = names
        .iter()
        .map(|(n, node)| ta_collector {
            name: s(n),
            node: s(node),
        })
        .collect();
    let upsert: Vec<ta_target> = base.iter().map(to_c).collect();
    // SAFETY: arrays valid for their lengths during the call.
    let rc = unsafe {
        ta_apply(
            ta,
            upsert.as_ptr(),
            upsert.len(),
            std::ptr::null(),
            0,
            cols.as_ptr(),
            cols.len(),
            std::ptr::null(),
            0,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, ta_result::TA_OK);
    ta
}

fn batches(c: &mut Criterion) {
    let n = if smoke() { 5_000 } else { 100_000 };
    let raw = targets(n + BATCH, 1_000, 7);
    let mut hasher = KeyHasher::new();
    let all = specs(&mut hasher, &raw);
    let (base, batch) = all.split_at(n);
    let names = collector_names(100);

    let mut core = Allocator::new(Config::default()).unwrap();
    core.apply(&Diff {
        add_collectors: collector_specs(&names),
        upsert: base.to_vec(),
        ..Diff::default()
    })
    .unwrap();
    let ta = ffi_allocator(base, &names);
    let c_batch: Vec<ta_target> = batch.iter().map(to_c).collect();
    let keys: Vec<u64> = batch.iter().map(|t| t.key.0).collect();

    let mut group = c.benchmark_group("batch_1024");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("core/upsert+remove", |b| {
        b.iter(|| {
            core.apply(&Diff {
                upsert: batch.to_vec(),
                ..Diff::default()
            })
            .unwrap();
            core.apply(&Diff {
                remove: keys.iter().map(|&k| TargetKey(k)).collect(),
                ..Diff::default()
            })
            .unwrap();
        })
    });
    group.bench_function("c_abi/upsert+remove", |b| {
        b.iter(|| {
            // SAFETY: arrays valid for their lengths during the calls.
            unsafe {
                let rc = ta_apply(
                    ta,
                    c_batch.as_ptr(),
                    BATCH,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    0,
                    std::ptr::null_mut(),
                );
                assert_eq!(rc, ta_result::TA_OK);
                let rc = ta_apply(
                    ta,
                    std::ptr::null(),
                    0,
                    keys.as_ptr(),
                    BATCH,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    0,
                    std::ptr::null_mut(),
                );
                assert_eq!(rc, ta_result::TA_OK);
            }
        })
    });
    // Label sets hashed by the library: the core's `from_labels_with` against
    // `ta_upsert_labeled_targets` on the same flat arrays.
    let fresh = targets(BATCH, 1_000, 8);
    let jobs: Vec<ta_str> = (0..BATCH).map(|i| s(fresh.job(i))).collect();
    let counts: Vec<u32> = (0..BATCH).map(|i| fresh.labels(i).count() as u32).collect();
    let (names, values): (Vec<ta_str>, Vec<ta_str>) = (0..BATCH)
        .flat_map(|i| fresh.labels(i))
        .map(|(n, v)| (s(n), s(v)))
        .unzip();
    let mut fresh_keys = vec![0u64; BATCH];
    group.bench_function("core/labeled upsert+remove", |b| {
        b.iter(|| {
            let mut hasher = KeyHasher::new();
            let upsert = specs(&mut hasher, &fresh);
            let keys: Vec<TargetKey> = upsert.iter().map(|t| t.key).collect();
            core.apply(&Diff {
                upsert,
                ..Diff::default()
            })
            .unwrap();
            core.apply(&Diff {
                remove: keys,
                ..Diff::default()
            })
            .unwrap();
        })
    });
    group.bench_function("c_abi/labeled upsert+remove", |b| {
        b.iter(|| {
            // SAFETY: arrays valid for their lengths during the calls.
            unsafe {
                let rc = ta_upsert_labeled_targets(
                    ta,
                    jobs.as_ptr(),
                    counts.as_ptr(),
                    std::ptr::null(),
                    BATCH,
                    names.as_ptr(),
                    values.as_ptr(),
                    names.len(),
                    fresh_keys.as_mut_ptr(),
                    std::ptr::null_mut(),
                );
                assert_eq!(rc, ta_result::TA_OK);
                let rc = ta_apply(
                    ta,
                    std::ptr::null(),
                    0,
                    fresh_keys.as_ptr(),
                    BATCH,
                    std::ptr::null(),
                    0,
                    std::ptr::null(),
                    0,
                    std::ptr::null_mut(),
                );
                assert_eq!(rc, ta_result::TA_OK);
            }
        })
    });
    let lookup_keys: Vec<u64> = base
        .iter()
        .step_by((n / BATCH).max(1))
        .take(BATCH)
        .map(|t| t.key.0)
        .collect();
    group.bench_function("core/lookup", |b| {
        let mut out = vec![0u32; BATCH];
        b.iter(|| {
            for (o, &k) in out.iter_mut().zip(&lookup_keys) {
                *o = core
                    .collector_of(TargetKey(k))
                    .map_or(u32::MAX, |c| c.index());
            }
            black_box(&out);
        })
    });
    group.bench_function("c_abi/lookup", |b| {
        let mut out = vec![0u32; BATCH];
        b.iter(|| {
            // SAFETY: arrays valid for BATCH elements.
            let rc = unsafe {
                ta_lookup(
                    ta,
                    lookup_keys.as_ptr(),
                    lookup_keys.len(),
                    out.as_mut_ptr(),
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(rc, ta_result::TA_OK);
            black_box(&out);
        })
    });
    group.finish();
    // SAFETY: `ta` came from ta_allocator_new and is not used afterwards.
    unsafe { target_allocator::ta_allocator_free(ta) };
}

criterion_group!(benches, batches);
criterion_main!(benches);
