//! Pure reads of the allocation state.

use crate::error::{ta_error, ta_result, FfiError};
use crate::guard::{call, call_filling};
use crate::handle::{self, ta_allocator};
use crate::types::ta_str;
use crate::view::ta_view;

/// One consistent picture of the state: `view` receives every collector (sorted by name) with
/// its load, and the totals; `owners[i]` receives the index in that table of the collector of
/// `keys[i]`, or `TA_NO_COLLECTOR` for an unknown or unassigned target. All of it comes from
/// one state under one read lock. `n` may be 0 (then `keys` and `owners` may be NULL).
///
/// # Safety
/// See the safety contract (top of the header); `keys` readable and `owners` writable for `n` elements; `view` live.
#[no_mangle]
pub unsafe extern "C" fn ta_read(
    ta: *const ta_allocator,
    keys: *const u64,
    n: usize,
    owners: *mut u32,
    view: *mut ta_view,
    err: *mut ta_error,
) -> ta_result {
    call_filling(err, view, || {
        // SAFETY: forwarded contract.
        let (h, keys, owners, view) = unsafe {
            (
                handle::borrow(ta)?,
                handle::slice(keys, n, "keys")?,
                handle::slice_mut(owners, n, "owners")?,
                handle::view_mut(view).ok_or_else(|| FfiError::null("view"))?,
            )
        };
        let a = h.read()?;
        view.fill_read(&a, h.id(), keys, owners);
        Ok(())
    })
}

/// The keys of a collector's targets, sorted; only of job `job` unless its length is 0.
/// Needed-size protocol.
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ta_collector_targets(
    ta: *const ta_allocator,
    collector: ta_str,
    job: ta_str,
    out: *mut u64,
    cap: usize,
    needed: *mut usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, name, job) = unsafe {
            (
                handle::borrow(ta)?,
                handle::string(collector, "collector")?,
                handle::opt_string(job, "job")?,
            )
        };
        let a = h.read()?;
        let id = a.collector_id(name).ok_or_else(|| {
            FfiError::new(
                ta_result::TA_UNKNOWN_COLLECTOR,
                format!("unknown collector {name:?}"),
            )
        })?;
        let keys: Vec<u64> = a.targets_of(id, job).into_iter().map(|k| k.0).collect();
        // SAFETY: forwarded contract.
        unsafe { handle::write_output(&keys, out, cap, needed, "out") }
    })
}

/// The assignment digest into `*out`: a 64-bit value equal for equal assignments (every
/// assigned target's key with its collector's name) whatever changes built them, on every
/// platform, so replicas can compare one number. XOR over the assigned targets of
/// `xxh64(key LE ‖ xxh64(collector name, 0) LE, 0)`; unassigned targets add nothing. O(1).
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_digest(
    ta: *const ta_allocator,
    out: *mut u64,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let h = unsafe { handle::borrow(ta) }?;
        // SAFETY: forwarded contract.
        let out = unsafe { handle::out(out, "out") }?;
        *out = h.read()?.digest();
        Ok(())
    })
}
