//! Pure reads of the allocation state.

use std::ffi::c_char;

use allocator_core::{Allocator, CollectorId, Move, TargetKey};

use crate::error::{ta_error, ta_result, FfiError};
use crate::guard::call;
use crate::handle::{self, ta_allocator};
use crate::types::{ta_collector_stats, ta_move, ta_str, ta_summary};

use super::convert::{id_out, write_c_string};

/// The collector id of each of `n` keys into `out` (`n` elements): `TA_NO_COLLECTOR` for an
/// unknown or unassigned target.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_lookup(
    ta: *const ta_allocator,
    keys: *const u64,
    n: usize,
    out: *mut u32,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, keys, out) = unsafe {
            (
                handle::borrow(ta)?,
                handle::slice(keys, n, "keys")?,
                handle::slice_mut(out, n, "out")?,
            )
        };
        let a = h.read()?;
        for (o, &k) in out.iter_mut().zip(keys) {
            *o = id_out(a.collector_of(TargetKey(k)));
        }
        Ok(())
    })
}

/// The id of a collector by name (`TA_UNKNOWN_COLLECTOR` if there is none).
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_collector_id(
    ta: *const ta_allocator,
    name: ta_str,
    out: *mut u32,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, name, out) = unsafe {
            (
                handle::borrow(ta)?,
                handle::string(name, "name")?,
                handle::out(out, "out")?,
            )
        };
        let id = h.read()?.collector_id(name).ok_or_else(|| {
            FfiError::new(
                ta_result::TA_UNKNOWN_COLLECTOR,
                format!("unknown collector {name:?}"),
            )
        })?;
        *out = id.index();
        Ok(())
    })
}

/// The name of a collector id, NUL-terminated, into `buf` (needed-size protocol, the NUL
/// included). Ids of collectors removed by the last change still resolve.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_collector_name(
    ta: *const ta_allocator,
    id: u32,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let h = unsafe { handle::borrow(ta) }?;
        let a = h.read()?;
        let name = collector_name(&a, id)?;
        // SAFETY: forwarded contract.
        unsafe { write_c_string(name, buf, cap, needed, "name") }
    })
}

fn collector_name(a: &Allocator, id: u32) -> Result<&str, FfiError> {
    a.collector_name(CollectorId::from_index(id))
        .ok_or_else(|| {
            FfiError::new(
                ta_result::TA_UNKNOWN_COLLECTOR,
                format!("no collector has id {id}"),
            )
        })
}

/// The keys of a collector's targets, sorted; only of job `job` unless its length is 0.
/// Needed-size protocol.
///
/// # Safety
/// See the module contract.
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

/// The moves of the last change (by any thread). Needed-size protocol.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_last_moves(
    ta: *const ta_allocator,
    out: *mut ta_move,
    cap: usize,
    needed: *mut usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let h = unsafe { handle::borrow(ta) }?;
        let a = h.read()?;
        let moves: Vec<ta_move> = a
            .last_moves()
            .iter()
            .map(|m: &Move| ta_move {
                key: m.key.0,
                from: id_out(m.from),
                to: id_out(m.to),
            })
            .collect();
        // SAFETY: forwarded contract.
        unsafe { handle::write_output(&moves, out, cap, needed, "out") }
    })
}

/// Per-collector load, sorted by collector name. Needed-size protocol.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_get_collector_stats(
    ta: *const ta_allocator,
    out: *mut ta_collector_stats,
    cap: usize,
    needed: *mut usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let h = unsafe { handle::borrow(ta) }?;
        let a = h.read()?;
        let stats: Vec<ta_collector_stats> = a
            .collectors()
            .map(|c| ta_collector_stats {
                id: c.id.index(),
                targets: c.targets,
                weight: c.weight,
            })
            .collect();
        // SAFETY: forwarded contract.
        unsafe { handle::write_output(&stats, out, cap, needed, "out") }
    })
}

/// Totals, balance and move counters.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_get_summary(
    ta: *const ta_allocator,
    out: *mut ta_summary,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, out) = unsafe { (handle::borrow(ta)?, handle::out(out, "out")?) };
        let a = h.read()?;
        let s = a.summary();
        let m = a.move_totals();
        *out = ta_summary {
            collectors: s.collectors as u64,
            targets: s.targets as u64,
            unassigned: s.unassigned as u64,
            max_targets: s.max_targets,
            min_targets: s.min_targets,
            mean_targets: s.mean_targets,
            max_weight: s.max_weight,
            min_weight: s.min_weight,
            mean_weight: s.mean_weight,
            moves_assigned: m.assigned,
            moves_unassigned: m.unassigned,
            moves_reassigned: m.reassigned,
        };
        Ok(())
    })
}
