//! Conversions of C arguments into core values (and back), shared by the exports.

use std::ffi::c_char;

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, Ordering};

use allocator_core::{CollectorSpec, HashedSets, KeyHasher, TargetBatch, NO_NODE};

use crate::error::{ta_result, FfiError};
use crate::handle;
use crate::types::{ta_collector, ta_label_batch, ta_node_zone, ta_str, ta_target_batch};

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
pub(super) unsafe fn node_zones<'a>(
    ptr: *const ta_node_zone,
    n: usize,
) -> Result<Vec<(&'a str, &'a str)>, FfiError> {
    // SAFETY: forwarded contract.
    let rows = unsafe { handle::slice(ptr, n, "table") }?;
    rows.iter()
        .enumerate()
        .map(|(i, r)| {
            // SAFETY: forwarded contract.
            unsafe {
                Ok((
                    handle::string(r.node, format_args!("table[{i}].node"))?,
                    handle::opt_string(r.zone, format_args!("table[{i}].zone"))?.unwrap_or(""),
                ))
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

/// Targets in columns as the core takes them: borrowed from a C batch as they are, or built
/// from label sets the library hashed.
#[derive(Default)]
pub(super) struct Targets<'a> {
    keys: Cow<'a, [u64]>,
    placements: Cow<'a, [u64]>,
    weights: Cow<'a, [u32]>,
    jobs: Cow<'a, [u32]>,
    job_names: Vec<&'a str>,
    nodes: Cow<'a, [u32]>,
    node_names: Vec<&'a str>,
    /// Where the keys of hashed label sets go after a successful change, and the row of the
    /// first of them.
    keys_out: Option<(&'a mut [u64], usize)>,
}

impl<'a> Targets<'a> {
    /// The columns as the core's batch.
    pub(super) fn batch(&self) -> TargetBatch<'_> {
        TargetBatch {
            keys: &self.keys,
            placements: &self.placements,
            weights: &self.weights,
            jobs: &self.jobs,
            job_names: &self.job_names,
            nodes: &self.nodes,
            node_names: &self.node_names,
        }
    }

    /// Hand the keys of hashed label sets to the caller (after the change succeeded).
    pub(super) fn write_keys(&mut self) {
        if let Some((out, from)) = self.keys_out.take() {
            out.copy_from_slice(&self.keys[from..from + out.len()]);
        }
    }

    /// The targets of a columnar batch and a label batch, either of which may be absent.
    ///
    /// # Safety
    /// Every pointer of both batches as `handle::slice` for its documented length.
    pub(super) unsafe fn read(
        columns: Option<&ta_target_batch>,
        labeled: Option<&ta_label_batch>,
        what: &str,
    ) -> Result<Targets<'a>, FfiError> {
        let columns = columns.filter(|c| c.len > 0);
        let labeled = labeled.filter(|l| l.len > 0);
        // SAFETY: forwarded contract.
        unsafe {
            match (columns, labeled) {
                (None, None) => Ok(Targets::default()),
                (Some(c), None) => Targets::from_columns(c, what),
                (None, Some(l)) => Targets::from_labels(l, what),
                (Some(c), Some(l)) => {
                    let mut all = Targets::from_columns(c, what)?;
                    all.append(Targets::from_labels(l, what)?);
                    Ok(all)
                }
            }
        }
    }

    /// # Safety
    /// As [`Targets::read`].
    unsafe fn from_columns(b: &ta_target_batch, what: &str) -> Result<Targets<'a>, FfiError> {
        let n = b.len;
        // SAFETY: forwarded contract.
        unsafe {
            Ok(Targets {
                keys: Cow::Borrowed(handle::slice(b.keys, n, format_args!("{what}.keys"))?),
                placements: Cow::Borrowed(handle::slice(
                    b.placements,
                    n,
                    format_args!("{what}.placements"),
                )?),
                weights: Cow::Borrowed(optional(b.weights, n, what, "weights")?),
                jobs: Cow::Borrowed(handle::slice(b.jobs, n, format_args!("{what}.jobs"))?),
                job_names: names(b.job_names, b.n_job_names, &format!("{what}.job_names"))?,
                nodes: Cow::Borrowed(optional(b.nodes, n, what, "nodes")?),
                node_names: names(b.node_names, b.n_node_names, &format!("{what}.node_names"))?,
                keys_out: None,
            })
        }
    }

    /// Hash label sets into columns.
    ///
    /// # Safety
    /// As [`Targets::read`].
    unsafe fn from_labels(b: &ta_label_batch, what: &str) -> Result<Targets<'a>, FfiError> {
        let n = b.len;
        let what = format!("{what}_labels");
        // SAFETY: forwarded contract.
        let (data, ends, jobs, job_names, weights, keys_out) = unsafe {
            (
                handle::slice(b.data, b.data_len, format_args!("{what}.data"))?,
                handle::slice(b.ends, n, format_args!("{what}.ends"))?,
                handle::slice(b.jobs, n, format_args!("{what}.jobs"))?,
                names(b.job_names, b.n_job_names, &format!("{what}.job_names"))?,
                optional(b.weights, n, &what, "weights")?,
                if b.keys_out.is_null() {
                    None
                } else {
                    Some(handle::slice_mut(
                        b.keys_out,
                        n,
                        format_args!("{what}.keys_out"),
                    )?)
                },
            )
        };
        // The ends and jobs checked first, so that the hash pass reads only good bounds.
        let mut start = 0usize;
        for (i, (&end, &job)) in ends.iter().zip(jobs).enumerate() {
            start = u64_to_usize(end)
                .filter(|&e| e >= start && e <= data.len())
                .ok_or_else(|| {
                    FfiError::new(
                        ta_result::TA_INVALID_ARGUMENT,
                        format!(
                            "{what}.ends[{i}] is {end}: not between the previous end {start} and data_len {}",
                            data.len()
                        ),
                    )
                })?;
            if job as usize >= job_names.len() {
                return Err(FfiError::new(
                    ta_result::TA_INVALID_ARGUMENT,
                    format!(
                        "{what}.jobs[{i}] is {job} but the batch names {} jobs",
                        job_names.len()
                    ),
                ));
            }
        }
        // Bytes after the last set belong to no set: most likely a count off by one.
        if start != data.len() {
            return Err(FfiError::new(
                ta_result::TA_INVALID_ARGUMENT,
                format!(
                    "{what}.data_len is {} but the last label set ends at {start}: the bytes after it belong to no label set (is len {n} right?)",
                    data.len()
                ),
            ));
        }
        // Each set is decoded as the core's hash pass reads it (no array of pairs in between),
        // on `threads` threads for a large batch. A set that is not in the labels encoding
        // ends its labels early and is noted in `fault`; the fault is reported instead of
        // whatever the hash made of the cut set, unless a set before it failed to hash (as a
        // pass that stopped at the first failure would report).
        let fault = Fault::default();
        let (keys, placements, nodes, node_names) = {
            let set = |i: usize| {
                let start = match i {
                    0 => 0,
                    _ => u64_to_usize(ends[i - 1]).unwrap_or(0),
                };
                let end = u64_to_usize(ends[i]).unwrap_or(start);
                Decoded {
                    rest: data.get(start..end).unwrap_or_default(),
                    set: i,
                    fault: &fault,
                }
            };
            let mut hashed = HashedSets::default();
            let threads = usize::try_from(b.threads).unwrap_or(usize::MAX);
            let hashing =
                KeyHasher::new().hash_label_iters_on(set, jobs, &job_names, threads, &mut hashed);
            if let Some((i, e)) = fault.first() {
                if hashing.is_ok() || i <= hashed.len() {
                    return Err(FfiError::new(
                        ta_result::TA_INVALID_ARGUMENT,
                        format!("{what}: label set {i} is not in the labels encoding: {e}"),
                    ));
                }
            }
            if let Err(e) = hashing {
                // The hash pass stops at the set that failed: its row is the count hashed so far.
                let i = hashed.len();
                return Err(FfiError::from(e).context(format_args!("{what}: label set {i}")));
            }
            // The node names point into the caller's `data` (they are label values): taken
            // again from `data` itself so that they outlive the job table borrowed above.
            let node_names = hashed
                .node_names
                .iter()
                .map(|name| in_data(data, name))
                .collect::<Result<Vec<&'a str>, FfiError>>()?;
            (
                std::mem::take(&mut hashed.keys),
                std::mem::take(&mut hashed.placements),
                std::mem::take(&mut hashed.nodes),
                node_names,
            )
        };
        let keys_out = keys_out.map(|k| (k, 0));
        Ok(Targets {
            keys: Cow::Owned(keys),
            placements: Cow::Owned(placements),
            weights: Cow::Borrowed(weights),
            jobs: Cow::Borrowed(jobs),
            job_names,
            nodes: Cow::Owned(nodes),
            node_names,
            keys_out,
        })
    }

    /// Rows of `other` after these (job and node indexes moved past this batch's tables).
    fn append(&mut self, mut other: Targets<'a>) {
        let n = self.keys.len();
        let (jobs_before, nodes_before) =
            (self.job_names.len() as u32, self.node_names.len() as u32);
        self.keys.to_mut().extend_from_slice(&other.keys);
        self.placements
            .to_mut()
            .extend_from_slice(&other.placements);
        if !self.weights.is_empty() || !other.weights.is_empty() {
            let w = self.weights.to_mut();
            w.resize(n, 1);
            if other.weights.is_empty() {
                w.resize(n + other.keys.len(), 1);
            } else {
                w.extend_from_slice(&other.weights);
            }
        }
        self.jobs
            .to_mut()
            .extend(other.jobs.iter().map(|j| j + jobs_before));
        self.job_names.append(&mut other.job_names);
        if !self.nodes.is_empty() || !other.nodes.is_empty() {
            let x = self.nodes.to_mut();
            x.resize(n, NO_NODE);
            if other.nodes.is_empty() {
                x.resize(n + other.keys.len(), NO_NODE);
            } else {
                x.extend(
                    other
                        .nodes
                        .iter()
                        .map(|&v| if v == NO_NODE { v } else { v + nodes_before }),
                );
            }
        }
        self.node_names.append(&mut other.node_names);
        self.keys_out = other.keys_out.map(|(k, from)| (k, from + n));
    }
}

/// `text`, a piece of `data`, as a string borrowed from `data` itself.
fn in_data<'a>(data: &'a [u8], text: &str) -> Result<&'a str, FfiError> {
    let start = (text.as_ptr() as usize).wrapping_sub(data.as_ptr() as usize);
    match start
        .checked_add(text.len())
        .and_then(|end| data.get(start..end))
    {
        // SAFETY: these bytes are `text`'s own (same address, same length), a valid `str`.
        Some(bytes) if bytes.as_ptr() == text.as_ptr() => {
            Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
        }
        _ => Err(FfiError::new(
            ta_result::TA_PANIC,
            "a hashed node name is not a piece of the label data".to_owned(),
        )),
    }
}

fn u64_to_usize(v: u64) -> Option<usize> {
    usize::try_from(v).ok()
}

/// An optional column: NULL means "absent" (empty for the core).
///
/// # Safety
/// As `handle::slice`.
unsafe fn optional<'a, T>(
    ptr: *const T,
    n: usize,
    what: &str,
    field: &str,
) -> Result<&'a [T], FfiError> {
    if ptr.is_null() {
        return Ok(&[]);
    }
    // SAFETY: forwarded contract.
    unsafe { handle::slice(ptr, n, format_args!("{what}.{field}")) }
}

/// Read one string of the labels encoding: its length in one byte (0 to 254), or 255 then 3
/// bytes LE, then its bytes. Short strings first: label names and values are almost all shorter
/// than 255 bytes.
#[inline(always)]
fn read_string(rest: &[u8]) -> Option<(&[u8], &[u8])> {
    let (&first, tail) = rest.split_first()?;
    let (n, tail) = match first {
        255 => match tail {
            [a, b, c, tail @ ..] => (
                usize::from(*a) | usize::from(*b) << 8 | usize::from(*c) << 16,
                tail,
            ),
            _ => return None,
        },
        n => (usize::from(n), tail),
    };
    tail.split_at_checked(n)
}

/// Why a label set is not in the labels encoding.
const FAULTS: [&str; 2] = [
    "a name runs past the end",
    "a value is missing or runs past the end",
];

/// The first label set (by row) found not to be in the labels encoding, and why, noted by
/// whichever thread decodes it: `row * 2 + why` (an index into `FAULTS`), the lowest kept.
struct Fault(AtomicU64);

impl Default for Fault {
    fn default() -> Self {
        Fault(AtomicU64::new(u64::MAX))
    }
}

impl Fault {
    fn note(&self, row: usize, why: usize) {
        let code = (row as u64).saturating_mul(2).saturating_add(why as u64);
        self.0.fetch_min(code, Ordering::Relaxed);
    }

    /// The lowest row noted, and why.
    fn first(&self) -> Option<(usize, &'static str)> {
        match self.0.load(Ordering::Relaxed) {
            u64::MAX => None,
            code => Some(((code / 2) as usize, FAULTS[(code % 2) as usize])),
        }
    }
}

/// The (name, value) pairs of one label set in the labels encoding, decoded as they are read.
/// A string that runs past the end, or a name without a value, ends the pairs and is noted in
/// `fault`.
#[derive(Clone)]
struct Decoded<'a, 'f> {
    rest: &'a [u8],
    /// Index of the set in its batch.
    set: usize,
    fault: &'f Fault,
}

impl<'a> Iterator for Decoded<'a, '_> {
    type Item = Label<'a>;

    #[inline]
    fn next(&mut self) -> Option<Label<'a>> {
        if self.rest.is_empty() {
            return None;
        }
        let Some((name, rest)) = read_string(self.rest) else {
            return self.fail(0);
        };
        let Some((value, rest)) = read_string(rest) else {
            return self.fail(1);
        };
        self.rest = rest;
        Some((name, value))
    }
}

impl Decoded<'_, '_> {
    /// End the pairs, noting why (`FAULTS[why]`).
    #[cold]
    fn fail<T>(&mut self, why: usize) -> Option<T> {
        self.rest = &[];
        self.fault.note(self.set, why);
        None
    }
}
