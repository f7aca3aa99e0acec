//! Configuration, creating and freeing an allocator.

use allocator_core::Allocator;

use crate::error::{ta_error, ta_result, FfiError};
use crate::guard::call;
use crate::handle::{self, ta_allocator};
use crate::types::ta_config;

/// Fill `*out` with the Go allocator's defaults: consistent-hashing, ring v0.10.0, 1061
/// partitions, replication factor 5, load factor 1.1, no fallback, unweighted.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn ta_config_default(out: *mut ta_config) -> ta_result {
    call(std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        *unsafe { handle::out(out, "out") }? = ta_config::from_core(&Default::default());
        Ok(())
    })
}

/// Create an allocator. `*out` receives the handle; free it with `ta_allocator_free`.
///
/// # Safety
/// `config` readable; `out` writable; `err` NULL or live.
#[no_mangle]
pub unsafe extern "C" fn ta_allocator_new(
    config: *const ta_config,
    out: *mut *mut ta_allocator,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let config = unsafe { config.as_ref() }.ok_or_else(|| FfiError::null("config"))?;
        // SAFETY: forwarded contract.
        let out = unsafe { handle::out(out, "out") }?;
        let alloc = Allocator::new(config.to_core()?)?;
        *out = handle::into_raw(alloc);
        Ok(())
    })
}

/// Free an allocator. NULL is ignored. No other thread may be using it.
///
/// # Safety
/// `ta` is NULL or a live handle, not used afterwards.
#[no_mangle]
pub unsafe extern "C" fn ta_allocator_free(ta: *mut ta_allocator) {
    call(std::ptr::null_mut(), || {
        // SAFETY: forwarded contract.
        unsafe { handle::free(ta) };
        Ok(())
    });
}

/// The configuration an allocator was created with.
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_allocator_config(
    ta: *const ta_allocator,
    out: *mut ta_config,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let h = unsafe { handle::borrow(ta) }?;
        // SAFETY: forwarded contract.
        let out = unsafe { handle::out(out, "out") }?;
        *out = ta_config::from_core(h.read()?.config());
        Ok(())
    })
}
