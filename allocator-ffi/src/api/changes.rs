//! Changes: one diff in, applied atomically under the write lock, its moves out in the
//! caller's view (filled under the same lock).

use allocator_core::{Allocator, BatchDiff, Error, Move};

use crate::error::{ta_error, ta_result, FfiError};
use crate::guard::call_filling;
use crate::handle::{self, ta_allocator};
use crate::types::{ta_collector, ta_diff, ta_label_batch, ta_node_zone, ta_target_batch};
use crate::view::ta_view;

use super::convert::{collector_specs, names, node_zones, Targets};

/// Run a change under the write lock and, if the caller passed a view, fill it with the moves
/// before the lock is released.
fn change(
    h: &ta_allocator,
    view: Option<&mut ta_view>,
    f: impl FnOnce(&mut Allocator) -> Result<&[Move], Error>,
) -> Result<(), FfiError> {
    h.write(|a| {
        f(a)?;
        if let Some(view) = view {
            view.fill_change(a, h.id(), a.last_moves());
        }
        Ok(())
    })
}

/// Apply one change atomically: remove targets, remove then add collectors, upsert targets
/// (the columns of `diff->upsert`, then the label sets of `diff->upsert_labels`). On failure
/// nothing changed. If `view` is not NULL it receives the moves of this change and the
/// collectors they name, taken under the same lock (no other change can come between).
///
/// # Safety
/// See the safety contract (top of the header); `diff` readable; `view` NULL or a live view.
#[no_mangle]
pub unsafe extern "C" fn ta_apply(
    ta: *const ta_allocator,
    diff: *const ta_diff,
    view: *mut ta_view,
    err: *mut ta_error,
) -> ta_result {
    call_filling(err, view, || {
        // SAFETY: forwarded contract (all arguments).
        unsafe {
            let h = handle::borrow(ta)?;
            let d = diff.as_ref().ok_or_else(|| FfiError::null("diff"))?;
            let mut upsert = Targets::read(Some(&d.upsert), Some(&d.upsert_labels), "upsert")?;
            let remove = handle::slice(d.remove, d.n_remove, "remove")?;
            let add = collector_specs(d.add_collectors, d.n_add_collectors)?;
            let gone = names(
                d.remove_collectors,
                d.n_remove_collectors,
                "remove_collectors",
            )?;
            let batch = upsert.batch();
            change(h, handle::view_mut(view), |a| {
                a.apply_batch(&BatchDiff {
                    upsert: batch,
                    remove,
                    add_collectors: &add,
                    remove_collectors: &gone,
                })
            })?;
            upsert.write_keys();
            Ok(())
        }
    })
}

/// Replace the target set by a full listing (as a discovery loop delivers it): the columns of
/// `targets` and the label sets of `labels` (either may be NULL). Unlisted targets are removed,
/// new or changed ones upserted. `view` as in `ta_apply`.
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_set_targets(
    ta: *const ta_allocator,
    targets: *const ta_target_batch,
    labels: *const ta_label_batch,
    view: *mut ta_view,
    err: *mut ta_error,
) -> ta_result {
    call_filling(err, view, || {
        // SAFETY: forwarded contract (all arguments).
        unsafe {
            let h = handle::borrow(ta)?;
            let mut all = Targets::read(targets.as_ref(), labels.as_ref(), "targets")?;
            let batch = all.batch();
            change(h, handle::view_mut(view), |a| a.set_targets_batch(&batch))?;
            all.write_keys();
            Ok(())
        }
    })
}

/// Replace the collector set by a full listing (a collector whose node changed keeps its
/// place). `view` as in `ta_apply`.
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_set_collectors(
    ta: *const ta_allocator,
    collectors: *const ta_collector,
    n: usize,
    view: *mut ta_view,
    err: *mut ta_error,
) -> ta_result {
    call_filling(err, view, || {
        // SAFETY: forwarded contract.
        let (h, specs, view) = unsafe {
            (
                handle::borrow(ta)?,
                collector_specs(collectors, n)?,
                handle::view_mut(view),
            )
        };
        change(h, view, |a| a.set_collectors(&specs))
    })
}

/// Replace the node → zone table (zone-aware rebalancing reads it: a target is in the zone of
/// its node, a collector in the zone of its node). Nodes not listed have no zone. `view` as in
/// `ta_apply`.
///
/// # Safety
/// See the safety contract (top of the header); `table` readable for `n` rows (NULL when `n` is 0).
#[no_mangle]
pub unsafe extern "C" fn ta_set_node_zones(
    ta: *const ta_allocator,
    table: *const ta_node_zone,
    n: usize,
    view: *mut ta_view,
    err: *mut ta_error,
) -> ta_result {
    call_filling(err, view, || {
        // SAFETY: forwarded contract.
        let (h, rows, view) = unsafe {
            (
                handle::borrow(ta)?,
                node_zones(table, n)?,
                handle::view_mut(view),
            )
        };
        change(h, view, |a| a.set_node_zones(&rows))
    })
}
