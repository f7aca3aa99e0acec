//! Target keys and placement hashes, computed for the caller.

use allocator_core::{KeyHasher, PlacementHash};

use crate::error::{ta_error, ta_result};
use crate::guard::call;
use crate::handle;
use crate::types::ta_str;

use super::convert::labels;

/// The placement hash of a raw `__address__` (XXH64 of its bytes, as the Go allocator's ring;
/// any bytes, as a Go string may hold).
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_placement_hash(
    address: ta_str,
    out: *mut u64,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let address = unsafe { handle::slice(address.ptr, address.len, "address") }?;
        // SAFETY: forwarded contract.
        *unsafe { handle::out(out, "out") }? = PlacementHash::of_bytes(address).0;
        Ok(())
    })
}

/// The target key (the Go allocator's item hash, no relabeling) of one label set given as
/// parallel arrays of `n` names and values, in any order.
///
/// # Safety
/// See the safety contract (top of the header).
#[no_mangle]
pub unsafe extern "C" fn ta_target_key(
    names: *const ta_str,
    values: *const ta_str,
    n: usize,
    job: ta_str,
    out: *mut u64,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let labels = unsafe { labels(names, values, n) }?;
        // SAFETY: forwarded contract.
        let job = unsafe { handle::string(job, "job") }?;
        let key = KeyHasher::new().key_of_bytes(labels.iter().copied(), job)?;
        // SAFETY: forwarded contract.
        *unsafe { handle::out(out, "out") }? = key.0;
        Ok(())
    })
}
