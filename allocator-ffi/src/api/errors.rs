//! Result-code messages, the version, and the caller-owned error object.

use std::ffi::c_char;

use crate::error::{ta_error, ta_result};
use crate::guard::call;
use crate::handle;

use super::convert::write_c_string;

/// The static, NUL-terminated message of a result code ("unknown result code" for values not
/// in the list). Never NULL; never freed.
#[no_mangle]
pub extern "C" fn ta_result_message(code: u32) -> *const c_char {
    let text: &'static [u8] = match std::panic::catch_unwind(|| message_bytes(code)) {
        Ok(t) => t,
        Err(_) => b"internal error\0",
    };
    text.as_ptr().cast()
}

fn message_bytes(code: u32) -> &'static [u8] {
    macro_rules! nul {
        ($($code:ident),*) => {
            match code {
                $(c if c == ta_result::$code as u32 => concat!(stringify!($code), "\0").as_bytes(),)*
                _ => b"unknown result code\0",
            }
        };
    }
    // The code's name keeps this table in step with the enum; `ta_result::message` has prose.
    nul!(
        TA_OK,
        TA_NULL_ARGUMENT,
        TA_INVALID_UTF8,
        TA_INVALID_CONFIG,
        TA_UNKNOWN_COLLECTOR,
        TA_DUPLICATE_COLLECTOR,
        TA_EMPTY_COLLECTOR_NAME,
        TA_UNKNOWN_TARGET,
        TA_CONFLICTING_TARGET,
        TA_DUPLICATE_LABEL,
        TA_MISSING_ADDRESS,
        TA_RING_CAPACITY,
        TA_CAPACITY,
        TA_BUFFER_TOO_SMALL,
        TA_INVALID_SNAPSHOT,
        TA_PANIC,
        TA_INVALID_ARGUMENT
    )
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
        // SAFETY: forwarded contract.
        *unsafe { handle::out(out, "out") }? = handle::error_into_raw();
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
