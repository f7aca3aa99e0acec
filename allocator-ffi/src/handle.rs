//! Every cast between raw pointers and Rust values, in one place: handles boxed into raw
//! pointers and borrowed back, caller arrays and strings viewed as slices, outputs written.
//! Each function checks what can be checked (NULL, alignment, length, UTF-8) and returns an
//! error naming the argument otherwise.

use std::fmt::Display;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use allocator_core::Allocator;
use parking_lot::{RwLock, RwLockReadGuard};

use crate::error::{ta_error, ta_result, FfiError};
use crate::types::ta_str;
use crate::view::ta_view;

/// An allocator shared across threads: many readers or one writer at a time.
pub struct ta_allocator {
    lock: RwLock<Allocator>,
    /// Set while a write runs; stays set if it panicked, after which the state is not trusted.
    poisoned: AtomicBool,
    /// Unique among the handles of this process (never reused, unlike an address), so a view
    /// can tell which allocator its copy of a collector table came from.
    id: u64,
}

/// The next handle id.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn poisoned() -> FfiError {
    FfiError::new(
        ta_result::TA_PANIC,
        "this allocator was being changed when an internal error happened; it can only be freed",
    )
}

impl ta_allocator {
    /// This handle's id (unique in the process).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Read access (concurrent with other readers).
    pub(crate) fn read(&self) -> Result<RwLockReadGuard<'_, Allocator>, FfiError> {
        let guard = self.lock.read();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned());
        }
        Ok(guard)
    }

    /// Exclusive access for a change. A panic inside `f` leaves the handle poisoned.
    pub(crate) fn write<R>(
        &self,
        f: impl FnOnce(&mut Allocator) -> Result<R, FfiError>,
    ) -> Result<R, FfiError> {
        let mut guard = self.lock.write();
        if self.poisoned.load(Ordering::Acquire) {
            return Err(poisoned());
        }
        self.poisoned.store(true, Ordering::Release);
        let out = f(&mut guard);
        self.poisoned.store(false, Ordering::Release);
        out
    }
}

/// Box an allocator into a handle for the caller.
pub(crate) fn into_raw(a: Allocator) -> *mut ta_allocator {
    Box::into_raw(Box::new(ta_allocator {
        lock: RwLock::new(a),
        poisoned: AtomicBool::new(false),
        id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
    }))
}

/// Free a handle from [`into_raw`]; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from [`into_raw`] and is not used again.
pub(crate) unsafe fn free(ptr: *mut ta_allocator) {
    if !ptr.is_null() {
        // SAFETY: per the contract, `ptr` is a live box from `into_raw`, freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// Borrow a handle for the duration of a call.
///
/// # Safety
/// `ptr` is NULL or a live handle from [`into_raw`].
pub(crate) unsafe fn borrow<'a>(ptr: *const ta_allocator) -> Result<&'a ta_allocator, FfiError> {
    // SAFETY: per the contract, a non-NULL `ptr` points to a live handle.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null("allocator"))
}

/// Write an out-pointer.
///
/// # Safety
/// `ptr` is NULL or valid for writing a `T`.
pub(crate) unsafe fn out<'a, T>(ptr: *mut T, what: impl Display) -> Result<&'a mut T, FfiError> {
    check_aligned(ptr, &what)?;
    // SAFETY: non-NULL and aligned (checked); valid for writes per the contract.
    unsafe { ptr.as_mut() }.ok_or_else(|| FfiError::null(&what))
}

fn check_aligned<T>(ptr: *const T, what: impl Display) -> Result<(), FfiError> {
    if (ptr as usize) % std::mem::align_of::<T>() != 0 {
        return Err(FfiError::new(
            ta_result::TA_INVALID_ARGUMENT,
            format!("{what} is not aligned for its type"),
        ));
    }
    Ok(())
}

fn check_len<T>(len: usize, what: impl Display) -> Result<(), FfiError> {
    if len
        .checked_mul(std::mem::size_of::<T>().max(1))
        .is_none_or(|b| b > isize::MAX as usize)
    {
        return Err(FfiError::new(
            ta_result::TA_INVALID_ARGUMENT,
            format!("{what}: length {len} is too large"),
        ));
    }
    Ok(())
}

/// View a caller array. NULL is accepted for an empty array.
///
/// # Safety
/// A non-NULL `ptr` points to `len` initialized `T`s that stay valid and unmodified during the call.
pub(crate) unsafe fn slice<'a, T>(
    ptr: *const T,
    len: usize,
    what: impl Display,
) -> Result<&'a [T], FfiError> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(FfiError::null(&what));
    }
    check_aligned(ptr, &what)?;
    check_len::<T>(len, &what)?;
    // SAFETY: non-NULL, aligned, length in bounds (checked); valid per the contract.
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// View a caller output buffer. NULL is accepted when `cap` is 0.
///
/// # Safety
/// A non-NULL `ptr` is valid for writing `cap` `T`s and not aliased during the call.
pub(crate) unsafe fn slice_mut<'a, T>(
    ptr: *mut T,
    cap: usize,
    what: impl Display,
) -> Result<&'a mut [T], FfiError> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if ptr.is_null() {
        return Err(FfiError::null(&what));
    }
    check_aligned(ptr, &what)?;
    check_len::<T>(cap, &what)?;
    // SAFETY: non-NULL, aligned, length in bounds (checked); writable per the contract.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr, cap) })
}

/// View a caller string as UTF-8.
///
/// # Safety
/// As [`slice`] for `s.ptr` and `s.len`.
pub(crate) unsafe fn string<'a>(s: ta_str, what: impl Display) -> Result<&'a str, FfiError> {
    // SAFETY: forwarded contract.
    let bytes = unsafe { slice(s.ptr, s.len, &what) }?;
    std::str::from_utf8(bytes).map_err(|e| {
        FfiError::new(
            ta_result::TA_INVALID_UTF8,
            format!("{what} is not valid UTF-8 (at byte {})", e.valid_up_to()),
        )
    })
}

/// A string where length 0 means "none".
///
/// # Safety
/// As [`string`].
pub(crate) unsafe fn opt_string<'a>(
    s: ta_str,
    what: impl Display,
) -> Result<Option<&'a str>, FfiError> {
    // SAFETY: forwarded contract.
    unsafe { string(s, what) }.map(|v| (!v.is_empty()).then_some(v))
}

/// Copy `items` to a caller buffer with the needed-size protocol: `*needed` always receives
/// `items.len()`; the buffer is written only if it holds them all.
///
/// # Safety
/// As [`slice_mut`] for `buf`/`cap`; `needed` is NULL or writable.
pub(crate) unsafe fn write_output<T: Copy>(
    items: &[T],
    buf: *mut T,
    cap: usize,
    needed: *mut usize,
    what: impl Display,
) -> Result<(), FfiError> {
    // SAFETY: forwarded contract.
    *unsafe { out(needed, "needed") }? = items.len();
    if cap < items.len() {
        return Err(FfiError::new(
            ta_result::TA_BUFFER_TOO_SMALL,
            format!("{what}: buffer holds {cap}, {} needed", items.len()),
        ));
    }
    // SAFETY: forwarded contract.
    let dst = unsafe { slice_mut(buf, cap, &what) }?;
    dst[..items.len()].copy_from_slice(items);
    Ok(())
}

/// A new, empty error object for the caller.
pub(crate) fn error_into_raw() -> *mut ta_error {
    Box::into_raw(Box::new(ta_error {
        code: ta_result::TA_OK,
        message: String::new(),
    }))
}

/// Free an error object; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from [`error_into_raw`] and is not used again.
pub(crate) unsafe fn error_free(ptr: *mut ta_error) {
    if !ptr.is_null() {
        // SAFETY: per the contract, a live box from `error_into_raw`, freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// The caller's error object, if any.
///
/// # Safety
/// `ptr` is NULL or a live error object not used by another thread during the call.
pub(crate) unsafe fn error_mut<'a>(ptr: *mut ta_error) -> Option<&'a mut ta_error> {
    // SAFETY: per the contract.
    unsafe { ptr.as_mut() }
}

/// Borrow an error object for reading.
///
/// # Safety
/// As [`error_mut`].
pub(crate) unsafe fn error_ref<'a>(ptr: *const ta_error) -> Result<&'a ta_error, FfiError> {
    // SAFETY: per the contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null("error"))
}

/// A new, empty view for the caller.
pub(crate) fn view_into_raw() -> *mut ta_view {
    Box::into_raw(Box::default())
}

/// Free a view; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from [`view_into_raw`] and is not used again.
pub(crate) unsafe fn view_free(ptr: *mut ta_view) {
    if !ptr.is_null() {
        // SAFETY: per the contract, a live box from `view_into_raw`, freed once.
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// The caller's view, if any, for filling.
///
/// # Safety
/// `ptr` is NULL or a live view not used by another thread during the call.
pub(crate) unsafe fn view_mut<'a>(ptr: *mut ta_view) -> Option<&'a mut ta_view> {
    // SAFETY: per the contract.
    unsafe { ptr.as_mut() }
}

/// Borrow a view for reading.
///
/// # Safety
/// As [`view_mut`].
pub(crate) unsafe fn view_ref<'a>(ptr: *const ta_view) -> Result<&'a ta_view, FfiError> {
    // SAFETY: per the contract.
    unsafe { ptr.as_ref() }.ok_or_else(|| FfiError::null("view"))
}
