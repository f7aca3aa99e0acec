//! The caller's view object: created, looked at, freed.

use crate::error::{ta_error, ta_result};
use crate::guard::call;
use crate::handle;
use crate::types::ta_view_data;
use crate::view::ta_view;

/// Create an empty view. `*out` receives it; free it with `ta_view_free`. A view may be filled
/// again and again (by `ta_apply`, `ta_set_targets`, `ta_set_collectors`, `ta_set_node_zones`,
/// `ta_read`); each fill replaces what it held, and a call that fails leaves it empty (no moves,
/// no collectors, a zero summary), never holding an earlier call's contents.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ta_view_new(out: *mut *mut ta_view) -> ta_result {
    call(std::ptr::null_mut(), || {
        // The slot is checked before the object is made: a NULL `out` must not leak one.
        // SAFETY: forwarded contract.
        let slot = unsafe { handle::out(out, "out") }?;
        *slot = handle::view_into_raw();
        Ok(())
    })
}

/// Free a view. NULL is ignored.
///
/// # Safety
/// `view` is NULL or from `ta_view_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ta_view_free(view: *mut ta_view) {
    call(std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        unsafe { handle::view_free(view) };
        Ok(())
    });
}

/// What `view` holds: pointers into it (valid until it is filled again or freed) and counts.
///
/// # Safety
/// `view` a live view; `out` writable; `err` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn ta_view_get(
    view: *const ta_view,
    out: *mut ta_view_data,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (view, out) = unsafe { (handle::view_ref(view)?, handle::out(out, "out")?) };
        *out = view.data();
        Ok(())
    })
}
