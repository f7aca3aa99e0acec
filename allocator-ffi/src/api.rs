//! The exported functions. Each translates C arguments (through [`crate::handle`]), calls the
//! core, and translates back; no decision is made here.
//!
//! Safety contract shared by every `unsafe` export (the header repeats it): pointers are NULL
//! or valid for the documented number of elements during the call; a handle is one returned by
//! this library and not yet freed; an error object is not used by two threads at once.

use std::ffi::c_char;

use allocator_core::{
    Allocator, CollectorId, CollectorSpec, Diff, KeyHasher, Move, PlacementHash, TargetKey,
    TargetSpec,
};

use crate::error::{ta_error, ta_result, FfiError};
use crate::guard::call;
use crate::handle::{self, ta_allocator};
use crate::types::*;

fn id_out(c: Option<CollectorId>) -> u32 {
    c.map_or(TA_NO_COLLECTOR, |c| c.index())
}

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

/// # Safety
/// As `handle::write_output`.
unsafe fn write_c_string(
    text: &str,
    buf: *mut c_char,
    cap: usize,
    needed: *mut usize,
    what: &str,
) -> Result<(), FfiError> {
    let mut bytes: Vec<c_char> = text.bytes().map(|b| b as c_char).collect();
    bytes.push(0);
    // SAFETY: forwarded contract.
    unsafe { handle::write_output(&bytes, buf, cap, needed, what) }
}

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
/// See the module contract.
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

/// The placement hash of a raw `__address__` (XXH64, as the Go allocator's ring).
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_placement_hash(
    address: ta_str,
    out: *mut u64,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let address = unsafe { handle::string(address, "address") }?;
        // SAFETY: forwarded contract.
        *unsafe { handle::out(out, "out") }? = PlacementHash::of_address(address).0;
        Ok(())
    })
}

/// The target key (the Go allocator's item hash, no relabeling) of one label set given as
/// parallel arrays of `n` names and values, in any order.
///
/// # Safety
/// See the module contract.
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

/// A label as bytes: name and value.
type Label<'a> = (&'a [u8], &'a [u8]);

/// # Safety
/// `names` and `values` as `handle::slice` for `n` elements, and each of their strings too.
unsafe fn labels<'a>(
    names: *const ta_str,
    values: *const ta_str,
    n: usize,
) -> Result<Vec<Label<'a>>, FfiError> {
    // SAFETY: forwarded contract.
    let (names, values) = unsafe {
        (
            handle::slice(names, n, "names")?,
            handle::slice(values, n, "values")?,
        )
    };
    // Label names and values are hashed as bytes, as the Go allocator does: no UTF-8 check.
    names
        .iter()
        .zip(values)
        .enumerate()
        .map(|(i, (n, v))| {
            // SAFETY: forwarded contract.
            unsafe {
                Ok((
                    handle::slice(n.ptr, n.len, format_args!("names[{i}]"))?,
                    handle::slice(v.ptr, v.len, format_args!("values[{i}]"))?,
                ))
            }
        })
        .collect()
}

/// Strings already validated in this call, by (pointer, length): batches repeat a few job and
/// node buffers, and UTF-8 validation of each repeat would cost as much as the allocation.
/// Direct-mapped; a collision only costs a re-validation.
struct StrCache<'a> {
    slots: [Option<(*const u8, usize, &'a str)>; 256],
}

impl<'a> StrCache<'a> {
    fn new() -> Self {
        StrCache { slots: [None; 256] }
    }

    /// # Safety
    /// As `handle::string` for `s`, valid for `'a`.
    unsafe fn get(&mut self, s: ta_str, what: impl std::fmt::Display) -> Result<&'a str, FfiError> {
        let slot = (s.ptr as usize >> 3 ^ s.len) & 255;
        if let Some((ptr, len, v)) = self.slots[slot] {
            if ptr == s.ptr && len == s.len {
                return Ok(v);
            }
        }
        // SAFETY: forwarded contract.
        let v = unsafe { handle::string(s, what) }?;
        self.slots[slot] = Some((s.ptr, s.len, v));
        Ok(v)
    }
}

/// Turns C targets into core specs.
struct SpecReader<'a> {
    strings: StrCache<'a>,
}

impl<'a> SpecReader<'a> {
    /// # Safety
    /// The strings of `t` as `handle::string`, valid for `'a`.
    unsafe fn read(&mut self, i: usize, t: &ta_target) -> Result<TargetSpec<'a>, FfiError> {
        // SAFETY: forwarded contract.
        let job = unsafe { self.strings.get(t.job, format_args!("targets[{i}].job")) }?;
        let node = if t.node.len == 0 {
            None
        } else {
            // SAFETY: forwarded contract.
            Some(unsafe { self.strings.get(t.node, format_args!("targets[{i}].node")) }?)
        };
        Ok(TargetSpec {
            key: TargetKey(t.key),
            placement: PlacementHash(t.placement),
            job,
            node,
            weight: t.weight,
        })
    }
}

/// # Safety
/// As `handle::slice` for `ptr`/`n`, strings as `handle::string`.
unsafe fn target_specs<'a>(
    ptr: *const ta_target,
    n: usize,
) -> Result<Vec<TargetSpec<'a>>, FfiError> {
    // SAFETY: forwarded contract.
    let targets = unsafe { handle::slice(ptr, n, "targets") }?;
    let mut reader = SpecReader {
        strings: StrCache::new(),
    };
    // SAFETY: forwarded contract.
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| unsafe { reader.read(i, t) })
        .collect()
}

/// # Safety
/// As `handle::slice`, strings as `handle::string`.
unsafe fn collector_specs<'a>(
    ptr: *const ta_collector,
    n: usize,
) -> Result<Vec<CollectorSpec<'a>>, FfiError> {
    // SAFETY: forwarded contract.
    let cs = unsafe { handle::slice(ptr, n, "collectors") }?;
    cs.iter()
        .enumerate()
        .map(|(i, c)| {
            // SAFETY: forwarded contract.
            unsafe {
                Ok(CollectorSpec {
                    name: handle::string(c.name, format_args!("collectors[{i}].name"))?,
                    node: handle::opt_string(c.node, format_args!("collectors[{i}].node"))?,
                })
            }
        })
        .collect()
}

/// # Safety
/// As `handle::slice`, strings as `handle::string`.
unsafe fn names<'a>(ptr: *const ta_str, n: usize, what: &str) -> Result<Vec<&'a str>, FfiError> {
    // SAFETY: forwarded contract.
    let names = unsafe { handle::slice(ptr, n, what) }?;
    names
        .iter()
        .enumerate()
        // SAFETY: forwarded contract.
        .map(|(i, s)| unsafe { handle::string(*s, format_args!("{what}[{i}]")) })
        .collect()
}

fn apply(ta: &ta_allocator, diff: &Diff<'_>) -> Result<(), FfiError> {
    ta.write(|a| a.apply(diff).map(|_| ()).map_err(FfiError::from))
}

/// Apply one change atomically: remove targets, remove then add collectors, upsert targets.
/// On failure nothing changed. Read the moves with `ta_last_moves`.
///
/// # Safety
/// See the module contract; each array may be NULL when its length is 0.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ta_apply(
    ta: *const ta_allocator,
    upsert: *const ta_target,
    n_upsert: usize,
    remove: *const u64,
    n_remove: usize,
    add_collectors: *const ta_collector,
    n_add_collectors: usize,
    remove_collectors: *const ta_str,
    n_remove_collectors: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract (all arguments).
        unsafe {
            let h = handle::borrow(ta)?;
            let diff = Diff {
                upsert: target_specs(upsert, n_upsert)?,
                remove: handle::slice(remove, n_remove, "remove")?
                    .iter()
                    .map(|&k| TargetKey(k))
                    .collect(),
                add_collectors: collector_specs(add_collectors, n_add_collectors)?,
                remove_collectors: names(
                    remove_collectors,
                    n_remove_collectors,
                    "remove_collectors",
                )?,
            };
            apply(h, &diff)
        }
    })
}

/// Upsert targets (keys computed by the caller). An existing key keeps its collector.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_upsert_targets(
    ta: *const ta_allocator,
    targets: *const ta_target,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, upsert) = unsafe { (handle::borrow(ta)?, target_specs(targets, n)?) };
        apply(
            h,
            &Diff {
                upsert,
                ..Diff::default()
            },
        )
    })
}

/// Upsert targets given as label sets, hashed by the library (key from the sorted labels and
/// the job, placement from `__address__`, node from the Kubernetes labels). Target `i` has job
/// `jobs[i]`, weight `weights[i]` (or 1 when `weights` is NULL) and the next `label_counts[i]`
/// entries of `names`/`values`, whose length `n_labels` must be the sum of `label_counts`.
/// `out_keys`, if not NULL, receives the `n_targets` keys.
///
/// # Safety
/// See the module contract.
#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn ta_upsert_labeled_targets(
    ta: *const ta_allocator,
    jobs: *const ta_str,
    label_counts: *const u32,
    weights: *const u32,
    n_targets: usize,
    names: *const ta_str,
    values: *const ta_str,
    n_labels: usize,
    out_keys: *mut u64,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract (all arguments).
        unsafe {
            let h = handle::borrow(ta)?;
            let jobs = handle::slice(jobs, n_targets, "jobs")?;
            let counts = handle::slice(label_counts, n_targets, "label_counts")?;
            let weights = if weights.is_null() {
                None
            } else {
                Some(handle::slice(weights, n_targets, "weights")?)
            };
            let total: u64 = counts.iter().map(|&c| u64::from(c)).sum();
            if total != n_labels as u64 {
                return Err(FfiError::new(
                    ta_result::TA_INVALID_ARGUMENT,
                    format!("label_counts add up to {total}, but n_labels is {n_labels}"),
                ));
            }
            let all = labels(names, values, n_labels)?;
            let mut hasher = KeyHasher::new();
            let mut upsert = Vec::with_capacity(n_targets);
            let mut start = 0usize;
            for (i, (&job, &count)) in jobs.iter().zip(counts).enumerate() {
                let job = handle::string(job, format_args!("jobs[{i}]"))?;
                let set = &all[start..start + count as usize];
                start += count as usize;
                let spec = TargetSpec::from_label_bytes_with(&mut hasher, set.iter().copied(), job)
                    .map_err(|e| FfiError::from(e).context(format_args!("target {i}")))?;
                upsert.push(spec.with_weight(weights.map_or(1, |w| w[i])));
            }
            if !out_keys.is_null() {
                let keys = handle::slice_mut(out_keys, n_targets, "out_keys")?;
                for (k, spec) in keys.iter_mut().zip(&upsert) {
                    *k = spec.key.0;
                }
            }
            apply(
                h,
                &Diff {
                    upsert,
                    ..Diff::default()
                },
            )
        }
    })
}

/// Remove targets by key. Each must exist.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_remove_targets(
    ta: *const ta_allocator,
    keys: *const u64,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, keys) = unsafe { (handle::borrow(ta)?, handle::slice(keys, n, "keys")?) };
        apply(
            h,
            &Diff {
                remove: keys.iter().map(|&k| TargetKey(k)).collect(),
                ..Diff::default()
            },
        )
    })
}

/// Replace the target set by a full listing: unlisted targets are removed, new or changed ones
/// upserted (as a discovery loop delivers targets).
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_set_targets(
    ta: *const ta_allocator,
    targets: *const ta_target,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, specs) = unsafe { (handle::borrow(ta)?, target_specs(targets, n)?) };
        h.write(|a| a.set_targets(&specs).map(|_| ()).map_err(FfiError::from))
    })
}

/// Add collectors.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_add_collectors(
    ta: *const ta_allocator,
    collectors: *const ta_collector,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, add) = unsafe { (handle::borrow(ta)?, collector_specs(collectors, n)?) };
        apply(
            h,
            &Diff {
                add_collectors: add,
                ..Diff::default()
            },
        )
    })
}

/// Remove collectors by name; their targets move.
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_remove_collectors(
    ta: *const ta_allocator,
    collector_names: *const ta_str,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, remove) = unsafe { (handle::borrow(ta)?, names(collector_names, n, "names")?) };
        apply(
            h,
            &Diff {
                remove_collectors: remove,
                ..Diff::default()
            },
        )
    })
}

/// Replace the collector set by a full listing (a collector whose node changed keeps its id).
///
/// # Safety
/// See the module contract.
#[no_mangle]
pub unsafe extern "C" fn ta_set_collectors(
    ta: *const ta_allocator,
    collectors: *const ta_collector,
    n: usize,
    err: *mut ta_error,
) -> ta_result {
    call(err, || {
        // SAFETY: forwarded contract.
        let (h, specs) = unsafe { (handle::borrow(ta)?, collector_specs(collectors, n)?) };
        h.write(|a| a.set_collectors(&specs).map(|_| ()).map_err(FfiError::from))
    })
}

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

/// The whole state as bytes, into `buf` (needed-size protocol; call with `cap` 0 to learn the
/// size). Restore with `ta_allocator_restore`.
///
/// # Safety
/// See the module contract.
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
/// See the module contract.
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
