//! Result-code messages, the version, and the caller-owned error object.

use std::ffi::{c_char, CStr};
use std::panic::UnwindSafe;

use crate::error::{ta_error, ta_result};
use crate::guard::call;
use crate::handle;

use super::convert::write_c_string;

/// The static, NUL-terminated message of a result code (e.g. "unknown target"), or "unknown
/// result code" for a value not in the list. Never NULL; never freed.
#[no_mangle]
pub extern "C" fn ta_result_message(code: u32) -> *const c_char {
    static_text(|| ta_result::from_u32(code).map(ta_result::message_c))
}

/// The static, NUL-terminated name of a result code (e.g. "TA_UNKNOWN_TARGET"), or "unknown
/// result code" for a value not in the list. Never NULL; never freed.
#[no_mangle]
pub extern "C" fn ta_result_name(code: u32) -> *const c_char {
    static_text(|| ta_result::from_u32(code).map(ta_result::name_c))
}

/// The panic guard of the exports that return a static string instead of a code.
fn static_text(f: impl FnOnce() -> Option<&'static CStr> + UnwindSafe) -> *const c_char {
    std::panic::catch_unwind(f)
        .ok()
        .flatten()
        .unwrap_or(c"unknown result code")
        .as_ptr()
}

/// The library version, NUL-terminated, static.
#[no_mangle]
pub extern "C" fn ta_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// Create an error object. `*out` receives it; free it with `ta_error_free`.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ta_error_new(out: *mut *mut ta_error) -> ta_result {
    call(std::ptr::null_mut(), || {
        // The slot is checked before the object is made: a NULL `out` must not leak one.
        // SAFETY: forwarded contract.
        let slot = unsafe { handle::out(out, "out") }?;
        *slot = handle::error_into_raw();
        Ok(())
    })
}

/// Free an error object. NULL is ignored.
///
/// # Safety
/// `err` is NULL or from `ta_error_new`, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ta_error_free(err: *mut ta_error) {
    call(std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        unsafe { handle::error_free(err) };
        Ok(())
    });
}

/// The code of the last failure recorded in `err` (`TA_OK` after a success or when NULL).
///
/// # Safety
/// `err` is NULL or a live error object.
#[no_mangle]
pub unsafe extern "C" fn ta_error_code(err: *const ta_error) -> ta_result {
    let mut code = ta_result::TA_OK;
    call(std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        if let Ok(e) = unsafe { handle::error_ref(err) } {
            code = e.code;
        }
        Ok(())
    });
    code
}

/// Copy the detailed message of `err`, NUL-terminated, into `buf`. `*needed` receives the
/// bytes needed including the NUL; `TA_BUFFER_TOO_SMALL` if `cap` is less.
///
/// # Safety
/// `err` live; `buf` NULL or writable for `cap` bytes; `needed` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ta_error_message(
    err: *const ta_error,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
) -> ta_result {
    call(std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        let e = unsafe { handle::error_ref(err) }?;
        // SAFETY: forwarded contract.
        unsafe { write_c_string(&e.message, buf, cap, needed, "message") }
    })
}
