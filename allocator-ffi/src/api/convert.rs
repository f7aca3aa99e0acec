//! Conversions of C arguments into core values (and back), shared by the exports.

use std::ffi::c_char;

use allocator_core::{CollectorId, CollectorSpec, PlacementHash, TargetKey, TargetSpec};

use crate::error::FfiError;
use crate::handle;
use crate::types::{ta_collector, ta_str, ta_target, TA_NO_COLLECTOR};

pub(super) fn id_out(c: Option<CollectorId>) -> u32 {
    c.map_or(TA_NO_COLLECTOR, |c| c.index())
}

/// # Safety
/// As `handle::write_output`.
pub(super) unsafe fn write_c_string(
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

/// A label as bytes: name and value.
pub(super) type Label<'a> = (&'a [u8], &'a [u8]);

/// # Safety
/// `names` and `values` as `handle::slice` for `n` elements, and each of their strings too.
pub(super) unsafe fn labels<'a>(
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
pub(super) struct StrCache<'a> {
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
pub(super) struct SpecReader<'a> {
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
pub(super) unsafe fn target_specs<'a>(
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
pub(super) unsafe fn collector_specs<'a>(
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
pub(super) unsafe fn names<'a>(
    ptr: *const ta_str,
    n: usize,
    what: &str,
) -> Result<Vec<&'a str>, FfiError> {
    // SAFETY: forwarded contract.
    let names = unsafe { handle::slice(ptr, n, what) }?;
    names
        .iter()
        .enumerate()
        // SAFETY: forwarded contract.
        .map(|(i, s)| unsafe { handle::string(*s, format_args!("{what}[{i}]")) })
        .collect()
}
