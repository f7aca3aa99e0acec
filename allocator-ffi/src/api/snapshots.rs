//! The whole state as bytes, and an allocator restored from them.

use allocator_core::Allocator;

use crate::error::{ta_error, ta_result};
use crate::guard::call;
use crate::handle::{self, ta_allocator};

/// The whole state as bytes, into `buf` (needed-size protocol; call with `cap` 0 to learn the
/// size). Restore with `ta_allocator_restore`.
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_snapshot(
    ta: *const ta_allocator,
    buf: *mut u8,
    cap: usize,
    needed: *mut usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let h = unsafe { handle::borrow(ta) }?;
        let bytes = h.read()?.snapshot();
        // SAFETY: forwarded contract.
        unsafe { handle::write_output(&bytes, buf, cap, needed, "buf") }
    })
}

/// A new allocator from snapshot bytes. Truncated, corrupted or foreign bytes give
/// `TA_INVALID_SNAPSHOT` with a message saying why.
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_allocator_restore(
    bytes: *const u8,
    len: usize,
    out: *mut *mut ta_allocator,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (bytes, out) = unsafe {
            (
                handle::slice(bytes, len, "bytes")?,
                handle::out(out, "out")?,
            )
        };
        *out = handle::into_raw(Allocator::restore(bytes)?);
        Ok(())
    })
}
