//! The C ABI and the core on the same work, for the `ffi` bench and the `ffi_overhead` report
//! (DESIGN.md §5: every C ABI batch call within 10 % of the core): both sides start from the
//! same state and receive the same batches of [`BATCH`] targets; the C side also hands each
//! change's moves back in a `ta_view`, the core side reads its moves from the returned slice.

use std::hint::black_box;

use allocator_core::{
    Allocator, BatchDiff, Config, HashedSets, KeyHasher, LabelSets, TargetBatch, TargetKey,
    TargetSpec,
};
use target_allocator::{
    ta_allocator, ta_allocator_free, ta_apply, ta_collector, ta_config, ta_config_default, ta_diff,
    ta_label_batch, ta_read, ta_result, ta_str, ta_target_batch, ta_view, ta_view_free,
    ta_view_new,
};

use crate::{collector_names, collector_specs, specs, targets, LabelColumns, Workload};

/// Targets per batch.
pub const BATCH: usize = 1024;

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

/// The two sides, and the batches both receive.
pub struct Sides {
    core: Allocator,
    ta: *mut ta_allocator,
    view: *mut ta_view,
    batch: Columns,
    batch_jobs: Vec<ta_str>,
    fresh_columns: LabelColumns<'static>,
    data: Vec<u8>,
    ends: Vec<u64>,
    label_jobs: Vec<u32>,
    fresh_job_names: Vec<ta_str>,
    fresh_keys: Vec<u64>,
    lookup_keys: Vec<u64>,
    out: Vec<u32>,
}

impl Sides {
    /// Both sides holding `n` targets on 100 collectors.
    pub fn new(n: usize) -> Sides {
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
        // Label sets new to both sides, encoded for the C side.
        let fresh: &'static Workload = Box::leak(Box::new(targets(BATCH, 1_000, 8)));
        let fresh_jobs: Vec<&'static str> = {
            let mut j: Vec<&str> = (0..BATCH).map(|i| fresh.job(i)).collect();
            j.sort_unstable();
            j.dedup();
            j
        };
        let (data, ends, label_jobs) = encoded(fresh, &fresh_jobs);
        let fresh_job_names: Vec<ta_str> = fresh_jobs.iter().map(|j| s(j)).collect();
        // Owners of 1,024 keys spread over the state.
        let lookup_keys: Vec<u64> = base
            .keys
            .iter()
            .step_by((n / BATCH).max(1))
            .take(BATCH)
            .copied()
            .collect();
        Sides {
            core,
            ta,
            view,
            batch,
            batch_jobs,
            fresh_columns: LabelColumns::new(fresh),
            data,
            ends,
            label_jobs,
            fresh_job_names,
            fresh_keys: vec![0; BATCH],
            lookup_keys,
            out: vec![0; BATCH],
        }
    }

    /// Core: a batch of columns upserted, then removed.
    pub fn core_columns(&mut self) {
        let moves = self
            .core
            .apply_batch(&BatchDiff {
                upsert: self.batch.core(),
                ..BatchDiff::default()
            })
            .unwrap();
        black_box(moves.len());
        let moves = self
            .core
            .apply_batch(&BatchDiff {
                remove: &self.batch.keys,
                ..BatchDiff::default()
            })
            .unwrap();
        black_box(moves.len());
    }

    /// C ABI: the same, the moves of each change in a view.
    pub fn c_columns(&mut self) {
        let mut upsert = zeroed_diff();
        upsert.upsert = self.batch.c(&self.batch_jobs);
        let mut remove = zeroed_diff();
        remove.remove = self.batch.keys.as_ptr();
        remove.n_remove = BATCH;
        // SAFETY: arrays valid for their lengths during the calls; `view` is live.
        unsafe {
            assert_eq!(
                ta_apply(self.ta, &upsert, self.view, std::ptr::null_mut()),
                ta_result::TA_OK
            );
            assert_eq!(
                ta_apply(self.ta, &remove, self.view, std::ptr::null_mut()),
                ta_result::TA_OK
            );
        }
    }

    /// Core: label sets hashed by the core's columnar label input (node names found and
    /// interned, as the C side does; no weights, as the C side passes none), upserted, removed.
    /// Columns allocated per call, as on the C side.
    pub fn core_labeled(&mut self) {
        let sets = LabelSets {
            weights: &[],
            ..self.fresh_columns.as_sets()
        };
        let mut hashed = HashedSets::default();
        KeyHasher::new()
            .hash_label_sets(&sets, &mut hashed)
            .unwrap();
        let moves = self
            .core
            .apply_batch(&BatchDiff {
                upsert: hashed.batch(),
                ..BatchDiff::default()
            })
            .unwrap();
        black_box(moves.len());
        let moves = self
            .core
            .apply_batch(&BatchDiff {
                remove: &hashed.keys,
                ..BatchDiff::default()
            })
            .unwrap();
        black_box(moves.len());
    }

    /// C ABI: the same label sets in the labels encoding, hashed by the library.
    pub fn c_labeled(&mut self) {
        let mut labeled = zeroed_diff();
        labeled.upsert_labels = ta_label_batch {
            len: BATCH,
            data: self.data.as_ptr(),
            data_len: self.data.len(),
            ends: self.ends.as_ptr(),
            jobs: self.label_jobs.as_ptr(),
            job_names: self.fresh_job_names.as_ptr(),
            n_job_names: self.fresh_job_names.len(),
            weights: std::ptr::null(),
            keys_out: self.fresh_keys.as_mut_ptr(),
            threads: 0,
        };
        // SAFETY: arrays valid for their lengths during the call; `view` is live.
        unsafe {
            assert_eq!(
                ta_apply(self.ta, &labeled, self.view, std::ptr::null_mut()),
                ta_result::TA_OK
            );
        }
        let mut remove = zeroed_diff();
        remove.remove = self.fresh_keys.as_ptr();
        remove.n_remove = BATCH;
        // SAFETY: as above.
        unsafe {
            assert_eq!(
                ta_apply(self.ta, &remove, self.view, std::ptr::null_mut()),
                ta_result::TA_OK
            );
        }
    }

    /// Core: owners of 1,024 keys with the collector table.
    pub fn core_read(&mut self) {
        let table: Vec<(&str, u32, u64)> = self
            .core
            .collectors()
            .map(|c| (c.name, c.targets, c.weight))
            .collect();
        for (o, &k) in self.out.iter_mut().zip(&self.lookup_keys) {
            *o = self
                .core
                .collector_of(TargetKey(k))
                .map_or(u32::MAX, |c| c.index());
        }
        black_box((&self.out, table.len()));
    }

    /// C ABI: the same in one `ta_read`.
    pub fn c_read(&mut self) {
        // SAFETY: arrays valid for BATCH elements; `view` is live.
        let rc = unsafe {
            ta_read(
                self.ta,
                self.lookup_keys.as_ptr(),
                self.lookup_keys.len(),
                self.out.as_mut_ptr(),
                self.view,
                std::ptr::null_mut(),
            )
        };
        assert_eq!(rc, ta_result::TA_OK);
        black_box(&self.out);
    }
}

impl Drop for Sides {
    fn drop(&mut self) {
        // SAFETY: `ta` and `view` came from their constructors and are not used afterwards.
        unsafe {
            ta_view_free(self.view);
            ta_allocator_free(self.ta);
        }
    }
}
