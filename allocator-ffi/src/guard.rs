//! The wrapper every export runs in: panics become `TA_PANIC`, errors are written to the
//! caller's error object.

use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{ta_error, ta_result, FfiError};
use crate::handle;
use crate::view::ta_view;

/// Run an export's body. `err` may be NULL.
pub(crate) fn call(err: *mut ta_error, body: impl FnOnce() -> Result<(), FfiError>) -> ta_result {
    // AssertUnwindSafe: state touched by a body that panics is either the caller's output
    // (reported as failed) or a handle, which `handle::write` marks poisoned.
    let outcome = catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(FfiError::new(
            ta_result::TA_PANIC,
            format!("internal error: {what}"),
        ))
    });
    // SAFETY: the caller passes NULL or a pointer from `ta_error_new` not used concurrently.
    let slot = unsafe { handle::error_mut(err) };
    match outcome {
        Ok(()) => {
            if let Some(e) = slot {
                e.clear();
            }
            ta_result::TA_OK
        }
        Err(e) => {
            let code = e.code;
            if let Some(slot) = slot {
                slot.set(e);
            }
            code
        }
    }
}

/// [`call`] for an export that fills the caller's view (NULL: none). When it fails, the view is
/// left empty: a failed change moved nothing, so a caller that reads the view without checking
/// the result sees no moves and no collectors, never what an earlier call put there.
pub(crate) fn call_filling(
    err: *mut ta_error,
    view: *mut ta_view,
    body: impl FnOnce() -> Result<(), FfiError>,
) -> ta_result {
    let code = call(err, body);
    if code != ta_result::TA_OK {
        // SAFETY: the export's contract: `view` is NULL or a live view no other thread uses
        // during the call; `body` has returned, so nothing else borrows it.
        if let Some(view) = unsafe { handle::view_mut(view) } {
            view.empty();
        }
    }
    code
}
