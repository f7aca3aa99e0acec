//! The C ABI against the core called directly, per target, in batches of 1,024
//! (DESIGN.md §5: within 10%). Both sides start from the same 100k-target state and receive
//! the same columns; the C side also hands each change's moves back in a `ta_view`, the core
//! side reads its moves from the returned slice.
//!
//! `cargo bench -p allocator-benches --bench ffi`

use std::hint::black_box;

use allocator_benches::{collector_names, collector_specs, specs, targets, LabelColumns, Workload};
use allocator_core::{
    Allocator, BatchDiff, Config, HashedSets, KeyHasher, LabelSets, TargetBatch, TargetKey,
    TargetSpec,
};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use target_allocator::{
    ta_allocator, ta_apply, ta_collector, ta_config, ta_config_default, ta_diff, ta_label_batch,
    ta_read, ta_result, ta_str, ta_target_batch, ta_view, ta_view_free, ta_view_new,
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

/// Targets as columns with a job table, owned (what a C or Go caller holds).
struct Columns {
    keys: Vec<u64>,
    placements: Vec<u64>,
    weights: Vec<u32>,
    jobs: Vec<u32>,
    job_names: Vec<&'static str>,
}

impl Columns {
    fn of(specs: &[TargetSpec<'static>]) -> Columns {
        let mut job_names: Vec<&'static str> = Vec::new();
        let jobs = specs
            .iter()
            .map(|t| match job_names.iter().position(|j| *j == t.job) {
                Some(i) => i as u32,
                None => {
                    job_names.push(t.job);
                    job_names.len() as u32 - 1
                }
            })
            .collect();
        Columns {
            keys: specs.iter().map(|t| t.key.0).collect(),
            placements: specs.iter().map(|t| t.placement.0).collect(),
            weights: specs.iter().map(|t| t.weight).collect(),
            jobs,
            job_names,
        }
    }

    fn core(&self) -> TargetBatch<'_> {
        TargetBatch {
            keys: &self.keys,
            placements: &self.placements,
            weights: &self.weights,
            jobs: &self.jobs,
            job_names: &self.job_names,
            ..TargetBatch::default()
        }
    }

    fn c(&self, job_names: &[ta_str]) -> ta_target_batch {
        ta_target_batch {
            len: self.keys.len(),
            keys: self.keys.as_ptr(),
            placements: self.placements.as_ptr(),
            weights: self.weights.as_ptr(),
            jobs: self.jobs.as_ptr(),
            job_names: job_names.as_ptr(),
            n_job_names: job_names.len(),
            nodes: std::ptr::null(),
            node_names: std::ptr::null(),
            n_node_names: 0,
        }
    }
}

/// Label sets in the labels encoding the C ABI takes, with their job indexes.
fn encoded(w: &Workload, job_names: &[&str]) -> (Vec<u8>, Vec<u64>, Vec<u32>) {
    let mut data = Vec::new();
    let mut ends = Vec::with_capacity(w.len());
    let mut jobs = Vec::with_capacity(w.len());
    for i in 0..w.len() {
        for (n, v) in w.labels(i) {
            for text in [n, v] {
                if text.len() < 255 {
                    data.push(text.len() as u8);
                } else {
                    data.push(255);
                    data.extend_from_slice(&(text.len() as u32).to_le_bytes()[..3]);
                }
                data.extend_from_slice(text.as_bytes());
            }
        }
        ends.push(data.len() as u64);
        jobs.push(job_names.iter().position(|j| *j == w.job(i)).unwrap() as u32);
    }
    (data, ends, jobs)
}

fn zeroed_diff() -> ta_diff {
    // SAFETY: ta_diff is plain data (pointers, lengths); all-zero is the empty diff.
    unsafe { std::mem::zeroed() }
}

fn ffi_allocator(base: &Columns, names: &[(String, String)]) -> *mut ta_allocator {
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
    let job_names: Vec<ta_str> = base.job_names.iter().map(|j| s(j)).collect();
    let mut diff = zeroed_diff();
    diff.upsert = base.c(&job_names);
    diff.add_collectors = cols.as_ptr();
    diff.n_add_collectors = cols.len();
    // SAFETY: arrays valid for their lengths during the call.
    let rc = unsafe { ta_apply(ta, &diff, std::ptr::null_mut(), std::ptr::null_mut()) };
    assert_eq!(rc, ta_result::TA_OK);
    ta
}

fn batches(c: &mut Criterion) {
    let n = if smoke() { 5_000 } else { 100_000 };
    let raw = Box::leak(Box::new(targets(n + BATCH, 1_000, 7)));
    let mut hasher = KeyHasher::new();
    let all = specs(&mut hasher, raw);
    let (base, batch) = all.split_at(n);
    let names = collector_names(100);
    let base = Columns::of(base);
    let batch = Columns::of(batch);

    let mut core = Allocator::new(Config::default()).unwrap();
    core.apply_batch(&BatchDiff {
        upsert: base.core(),
        add_collectors: &collector_specs(&names),
        ..BatchDiff::default()
    })
    .unwrap();
    let ta = ffi_allocator(&base, &names);
    let mut view: *mut ta_view = std::ptr::null_mut();
    // SAFETY: writable out-pointer.
    assert_eq!(unsafe { ta_view_new(&mut view) }, ta_result::TA_OK);
    let batch_jobs: Vec<ta_str> = batch.job_names.iter().map(|j| s(j)).collect();

    let mut group = c.benchmark_group("batch_1024");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.bench_function("core/upsert+remove", |b| {
        b.iter(|| {
            let moves = core
                .apply_batch(&BatchDiff {
                    upsert: batch.core(),
                    ..BatchDiff::default()
                })
                .unwrap();
            black_box(moves.len());
            let moves = core
                .apply_batch(&BatchDiff {
                    remove: &batch.keys,
                    ..BatchDiff::default()
                })
                .unwrap();
            black_box(moves.len());
        })
    });
    let mut upsert = zeroed_diff();
    upsert.upsert = batch.c(&batch_jobs);
    let mut remove = zeroed_diff();
    remove.remove = batch.keys.as_ptr();
    remove.n_remove = BATCH;
    group.bench_function("c_abi/upsert+remove (moves in a view)", |b| {
        b.iter(|| {
            // SAFETY: arrays valid for their lengths during the calls; `view` is live.
            unsafe {
                assert_eq!(
                    ta_apply(ta, &upsert, view, std::ptr::null_mut()),
                    ta_result::TA_OK
                );
                assert_eq!(
                    ta_apply(ta, &remove, view, std::ptr::null_mut()),
                    ta_result::TA_OK
                );
            }
        })
    });

    // Label sets hashed by the library: the core's own columnar label input (the same label
    // sets, node names found and interned as the C side does), then the same batch call,
    // against `ta_apply` with the label sets encoded. Both sides allocate their columns per call.
    let fresh = Box::leak(Box::new(targets(BATCH, 1_000, 8)));
    let fresh_jobs: Vec<&str> = {
        let mut j: Vec<&str> = (0..BATCH).map(|i| fresh.job(i)).collect();
        j.sort_unstable();
        j.dedup();
        j
    };
    let (data, ends, label_jobs) = encoded(fresh, &fresh_jobs);
    let fresh_job_names: Vec<ta_str> = fresh_jobs.iter().map(|j| s(j)).collect();
    let fresh_columns = LabelColumns::new(fresh);
    // Weights left out, as the C side passes none.
    let fresh_sets = LabelSets {
        weights: &[],
        ..fresh_columns.as_sets()
    };
    group.bench_function("core/labeled upsert+remove", |b| {
        b.iter(|| {
            let mut hashed = HashedSets::default();
            KeyHasher::new()
                .hash_label_sets(&fresh_sets, &mut hashed)
                .unwrap();
            black_box(
                core.apply_batch(&BatchDiff {
                    upsert: hashed.batch(),
                    ..BatchDiff::default()
                })
                .unwrap()
                .len(),
            );
            black_box(
                core.apply_batch(&BatchDiff {
                    remove: &hashed.keys,
                    ..BatchDiff::default()
                })
                .unwrap()
                .len(),
            );
        })
    });
    let mut fresh_keys = vec![0u64; BATCH];
    group.bench_function("c_abi/labeled upsert+remove (moves in a view)", |b| {
        b.iter(|| {
            let mut labeled = zeroed_diff();
            labeled.upsert_labels = ta_label_batch {
                len: BATCH,
                data: data.as_ptr(),
                data_len: data.len(),
                ends: ends.as_ptr(),
                jobs: label_jobs.as_ptr(),
                job_names: fresh_job_names.as_ptr(),
                n_job_names: fresh_job_names.len(),
                weights: std::ptr::null(),
                keys_out: fresh_keys.as_mut_ptr(),
            };
            let mut remove = zeroed_diff();
            remove.remove = fresh_keys.as_ptr();
            remove.n_remove = BATCH;
            // SAFETY: arrays valid for their lengths during the calls; `view` is live.
            unsafe {
                assert_eq!(
                    ta_apply(ta, &labeled, view, std::ptr::null_mut()),
                    ta_result::TA_OK
                );
                assert_eq!(
                    ta_apply(ta, &remove, view, std::ptr::null_mut()),
                    ta_result::TA_OK
                );
            }
        })
    });

    // Reads: owners of 1,024 keys with the collector table, from one state.
    let lookup_keys: Vec<u64> = base
        .keys
        .iter()
        .step_by((n / BATCH).max(1))
        .take(BATCH)
        .copied()
        .collect();
    group.bench_function("core/read (owners + collector table)", |b| {
        let mut out = vec![0u32; BATCH];
        b.iter(|| {
            let table: Vec<(&str, u32, u64)> = core
                .collectors()
                .map(|c| (c.name, c.targets, c.weight))
                .collect();
            for (o, &k) in out.iter_mut().zip(&lookup_keys) {
                *o = core
                    .collector_of(TargetKey(k))
                    .map_or(u32::MAX, |c| c.index());
            }
            black_box((&out, table.len()));
        })
    });
    group.bench_function("c_abi/read (owners + collector table)", |b| {
        let mut out = vec![0u32; BATCH];
        b.iter(|| {
            // SAFETY: arrays valid for BATCH elements; `view` is live.
            let rc = unsafe {
                ta_read(
                    ta,
                    lookup_keys.as_ptr(),
                    lookup_keys.len(),
                    out.as_mut_ptr(),
                    view,
                    std::ptr::null_mut(),
                )
            };
            assert_eq!(rc, ta_result::TA_OK);
            black_box(&out);
        })
    });
    group.finish();
    // SAFETY: `ta` and `view` came from their constructors and are not used afterwards.
    unsafe {
        ta_view_free(view);
        target_allocator::ta_allocator_free(ta);
    }
}

criterion_group!(benches, batches);
criterion_main!(benches);
