//! Changes: diffs in, applied atomically under the write lock.

use allocator_core::{Diff, KeyHasher, TargetKey, TargetSpec};

use crate::error::{ta_error, ta_result, FfiError};
use crate::guard::call;
use crate::handle::{self, ta_allocator};
use crate::types::{ta_collector, ta_str, ta_target};

use super::convert::{collector_specs, labels, names, target_specs};

fn apply(ta: &ta_allocator, diff: &Diff<'_>) -> Result<(), FfiError> {
    ta.write(|a| a.apply(diff).map(|_| ()).map_err(FfiError::from))
}

/// Apply one change atomically: remove targets, remove then add collectors, upsert targets.
/// On failure nothing changed. Read the moves with `ta_last_moves`.
///
/// # Safety
/// See the module contract; each array may be NULL when its length is 0.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ta_apply(
    ta: *const ta_allocator,
    upsert: *const ta_target,
    n_upsert: usize,
    remove: *const u64,
    n_remove: usize,
    add_collectors: *const ta_collector,
    n_add_collectors: usize,
    remove_collectors: *const ta_str,
    n_remove_collectors: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract (all arguments).
        unsafe {
            let h = handle::borrow(ta)?;
            let diff = Diff {
                upsert: target_specs(upsert, n_upsert)?,
                remove: handle::slice(remove, n_remove, "remove")?
                    .iter()
                    .map(|&k| TargetKey(k))
                    .collect(),
                add_collectors: collector_specs(add_collectors, n_add_collectors)?,
                remove_collectors: names(
                    remove_collectors,
                    n_remove_collectors,
                    "remove_collectors",
                )?,
            };
            apply(h, &diff)
        }
    })
}

/// Upsert targets (keys computed by the caller). An existing key keeps its collector.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_upsert_targets(
    ta: *const ta_allocator,
    targets: *const ta_target,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, upsert) = unsafe { (handle::borrow(ta)?, target_specs(targets, n)?) };
        apply(
            h,
            &Diff {
                upsert,
                ..Diff::default()
            },
        )
    })
}

/// Upsert targets given as label sets, hashed by the library (key from the sorted labels and
/// the job, placement from `__address__`, node from the Kubernetes labels). Target `i` has job
/// `jobs[i]`, weight `weights[i]` (or 1 when `weights` is NULL) and the next `label_counts[i]`
/// entries of `names`/`values`, whose length `n_labels` must be the sum of `label_counts`.
/// `out_keys`, if not NULL, receives the `n_targets` keys.
///
/// # Safety
/// See the module contract.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ta_upsert_labeled_targets(
    ta: *const ta_allocator,
    jobs: *const ta_str,
    label_counts: *const u32,
    weights: *const u32,
    n_targets: usize,
    names: *const ta_str,
    values: *const ta_str,
    n_labels: usize,
    out_keys: *mut u64,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract (all arguments).
        unsafe {
            let h = handle::borrow(ta)?;
            let jobs = handle::slice(jobs, n_targets, "jobs")?;
            let counts = handle::slice(label_counts, n_targets, "label_counts")?;
            let weights = if weights.is_null() {
                None
            } else {
                Some(handle::slice(weights, n_targets, "weights")?)
            };
            let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
            if total != n_labels as u64 {
                return Err(FfiError::new(
                    ta_result::TA_INVALID_ARGUMENT,
                    format!("label_counts add up to {total}, but n_labels is {n_labels}"),
                ));
            }
            let all = labels(names, values, n_labels)?;
            let mut hasher = KeyHasher::new();
            let mut upsert = Vec::with_capacity(n_targets);
            let mut start = 0usize;
            for (i, (&job, &count)) in jobs.iter().zip(counts).enumerate() {
                let job = handle::string(job, format_args!("jobs[{i}]"))?;
                let set = &all[start..start + count as usize];
                start += count as usize;
                let spec = TargetSpec::from_label_bytes_with(&mut hasher, set.iter().copied(), job)
                    .map_err(|e| FfiError::from(e).context(format_args!("target {i}")))?;
                upsert.push(spec.with_weight(weights.map_or(1, |w| w[i])));
            }
            if !out_keys.is_null() {
                let keys = handle::slice_mut(out_keys, n_targets, "out_keys")?;
                for (k, spec) in keys.iter_mut().zip(&upsert) {
                    *k = spec.key.0;
                }
            }
            apply(
                h,
                &Diff {
                    upsert,
                    ..Diff::default()
                },
            )
        }
    })
}

/// Remove targets by key. Each must exist.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_remove_targets(
    ta: *const ta_allocator,
    keys: *const u64,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, keys) = unsafe { (handle::borrow(ta)?, handle::slice(keys, n, "keys")?) };
        apply(
            h,
            &Diff {
                remove: keys.iter().map(|&k| TargetKey(k)).collect(),
                ..Diff::default()
            },
        )
    })
}

/// Replace the target set by a full listing: unlisted targets are removed, new or changed ones
/// upserted (as a discovery loop delivers targets).
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_set_targets(
    ta: *const ta_allocator,
    targets: *const ta_target,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, specs) = unsafe { (handle::borrow(ta)?, target_specs(targets, n)?) };
        h.write(|a| a.set_targets(&specs).map(|_| ()).map_err(FfiError::from))
    })
}

/// Add collectors.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_add_collectors(
    ta: *const ta_allocator,
    collectors: *const ta_collector,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, add) = unsafe { (handle::borrow(ta)?, collector_specs(collectors, n)?) };
        apply(
            h,
            &Diff {
                add_collectors: add,
                ..Diff::default()
            },
        )
    })
}

/// Remove collectors by name; their targets move.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_remove_collectors(
    ta: *const ta_allocator,
    collector_names: *const ta_str,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, remove) = unsafe { (handle::borrow(ta)?, names(collector_names, n, "names")?) };
        apply(
            h,
            &Diff {
                remove_collectors: remove,
                ..Diff::default()
            },
        )
    })
}

/// Replace the collector set by a full listing (a collector whose node changed keeps its id).
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_set_collectors(
    ta: *const ta_allocator,
    collectors: *const ta_collector,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, specs) = unsafe { (handle::borrow(ta)?, collector_specs(collectors, n)?) };
        h.write(|a| a.set_collectors(&specs).map(|_| ()).map_err(FfiError::from))
    })
}
