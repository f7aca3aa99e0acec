//! The Go allocator's item hash (DESIGN.md §6.2): the identity of a target.
//!
//! XXH64 (seed 0) over, for every label whose name does not start with `__meta_` and whose
//! value is not empty (Prometheus' label builder deletes empty labels), the name, a 0xFF byte,
//! the value and a 0xFF byte, in the label builder's range order; then the job name with no
//! separator. The hashed pieces are laid out in one buffer and hashed once; they are
//! short (~10 bytes), so they are copied by whole words inline rather than by a `memcpy` call
//! each. (Feeding each piece to a streaming XXH64 instead was measured: ~30 % more
//! instructions per label set, the lanes being assembled by shifts.)

use std::cmp::Ordering;

use crate::error::Error;
use crate::ids::{PlacementHash, TargetKey};
use crate::labels::NodeFinder;

const SEP: u8 = 0xFF;
const META_PREFIX: &str = "__meta_";

/// Bytes of hashed text laid out without bounds growth; a longer text takes the `Vec` path.
const BUF_BYTES: usize = 512;

type Label<'a> = (&'a [u8], &'a [u8]);

/// Whether a label takes part in the item hash.
#[inline]
pub(crate) fn is_hashed(name: &[u8]) -> bool {
    // A `__meta_` name is longer than the prefix (but may be the prefix alone): its first 8
    // bytes, masked to 7, are compared as one word.
    match name.first_chunk::<8>() {
        Some(head) => u64::from_le_bytes(*head) & 0x00FF_FFFF_FFFF_FFFF != META_WORD,
        None => name != META_PREFIX.as_bytes(),
    }
}

/// `__meta_` as a little-endian word, its eighth byte zero.
const META_WORD: u64 = u64::from_le_bytes(*b"__meta_\0");

/// Bytewise order of label names, deciding on the first 8 bytes as one word when it can (label
/// names mostly differ there) instead of calling `memcmp`.
#[inline]
fn cmp_names(a: &[u8], b: &[u8]) -> Ordering {
    if let (Some(x), Some(y)) = (a.first_chunk::<8>(), b.first_chunk::<8>()) {
        let (x, y) = (u64::from_be_bytes(*x), u64::from_be_bytes(*y));
        if x != y {
            return x.cmp(&y);
        }
    }
    a.cmp(b)
}

/// What one pass over a discovered label set yields. Label names and values are hashed as
/// bytes (as the Go allocator does); only the caller decides whether they must be UTF-8.
pub(crate) struct Scanned<'a> {
    pub key: TargetKey,
    pub address: Option<&'a [u8]>,
    pub node: Option<&'a [u8]>,
}

/// What [`KeyHasher::hash_label_bytes`] finds in one label set: its key, the placement hash of
/// its `__address__`, and its node name as bytes (not yet checked to be UTF-8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HashedLabels<'a> {
    /// The item hash (no relabeling).
    pub key: TargetKey,
    /// The placement hash of the `__address__` label.
    pub placement: PlacementHash,
    /// The node (DESIGN.md §6.5), if any.
    pub node: Option<&'a [u8]>,
}

/// Reusable scratch space for computing many [`TargetKey`]s without allocating per target.
#[derive(Debug, Clone)]
pub struct KeyHasher {
    /// The hashed text of one label set: `BUF_BYTES` long, written by whole words.
    buf: Vec<u8>,
    /// The hashed text of a label set longer than `buf`.
    long: Vec<u8>,
    /// Fingerprints of the `__meta_` names seen, to detect a repeated name.
    fingerprints: Vec<u64>,
    /// The hashed labels of one label set (empty between sets; its buffer is reused).
    hashed: Vec<Label<'static>>,
}

impl Default for KeyHasher {
    fn default() -> Self {
        KeyHasher {
            buf: vec![0; BUF_BYTES],
            long: Vec::new(),
            fingerprints: Vec::new(),
            hashed: Vec::new(),
        }
    }
}

/// An empty vector of labels of another lifetime on the same buffer: the hashed labels of each
/// label set borrow that set, so the buffer kept between sets must forget them. Collecting the
/// emptied vector's iterator reuses its allocation (the standard library collects a vector's
/// own iterator in place), so no label set allocates once the buffer has grown.
fn recycle<'b>(mut labels: Vec<Label<'_>>) -> Vec<Label<'b>> {
    labels.clear();
    labels.into_iter().map(|_| (&[][..], &[][..])).collect()
}

/// Copy `src` into `dst` at `at` by 8-byte words, the last one overlapping the one before
/// (it writes the same bytes again), so a short piece costs a few moves and no call. The
/// caller checked that `dst` has room for `src` at `at`.
#[inline(always)]
fn put(dst: &mut [u8], at: usize, src: &[u8]) {
    let n = src.len();
    let dst = &mut dst[at..at + n];
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            dst[i..i + 8].copy_from_slice(&src[i..i + 8]);
            i += 8;
        }
        dst[n - 8..].copy_from_slice(&src[n - 8..]);
    } else if n >= 4 {
        dst[..4].copy_from_slice(&src[..4]);
        dst[n - 4..].copy_from_slice(&src[n - 4..]);
    } else if n > 0 {
        dst[0] = src[0];
        dst[n / 2] = src[n / 2];
        dst[n - 1] = src[n - 1];
    }
}

/// A fingerprint of a `__meta_` label name (at least 7 bytes): equal names have equal
/// fingerprints, so distinct fingerprints prove distinct names without comparing them. Reads
/// two 8-byte words (the end and, from 16 bytes on, the middle) and the length: up to 15 bytes
/// they cover every byte after the common prefix; in a longer name what they skip is mostly
/// the source's own prefix (`kubernetes_pod_`), shared by the names of one label set. One
/// multiplication spreads them into the top bits, which pick the name's bit in the scan.
#[inline]
pub(crate) fn fingerprint(name: &[u8]) -> u64 {
    let n = name.len();
    let word = |at: usize| -> u64 {
        match name.get(at..at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => 0,
        }
    };
    let tail = if n >= 8 { word(n - 8) } else { 0 };
    let middle = if n >= 16 { word(n / 2 - 4) } else { 0 };
    ((tail ^ middle.rotate_left(29)).wrapping_add(n as u64)).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// The item hash of hashed labels in the order given, then the job.
#[inline]
fn digest(buf: &mut [u8], long: &mut Vec<u8>, labels: &[Label<'_>], job: &[u8]) -> u64 {
    let len = labels
        .iter()
        .map(|(n, v)| n.len() + v.len() + 2)
        .sum::<usize>()
        + job.len();
    if len > buf.len() {
        long.clear();
        for (name, value) in labels {
            long.extend_from_slice(name);
            long.push(SEP);
            long.extend_from_slice(value);
            long.push(SEP);
        }
        long.extend_from_slice(job);
        return xxhash_rust::xxh64::xxh64(long, 0);
    }
    let mut at = 0;
    for (name, value) in labels {
        put(buf, at, name);
        at += name.len();
        buf[at] = SEP;
        at += 1;
        put(buf, at, value);
        at += value.len();
        buf[at] = SEP;
        at += 1;
    }
    put(buf, at, job);
    xxhash_rust::xxh64::xxh64(&buf[..len], 0)
}

impl KeyHasher {
    /// A new hasher.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of a discovered label set with no relabeling: labels in sorted bytewise order
    /// (`filter_strategy` other than `relabel-config`). Label order in the input does not matter,
    /// but sorted input (as Prometheus keeps labels) takes the fast path.
    ///
    /// Fails if a label name appears twice: a label set holds each name once.
    pub fn key_of<'a, I>(&mut self, labels: I, job: &str) -> Result<TargetKey, Error>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        self.scan(
            labels
                .into_iter()
                .map(|(n, v)| (n.as_bytes(), v.as_bytes())),
            job,
        )
        .map(|s| s.key)
    }

    /// [`KeyHasher::key_of`] for labels given as bytes (hashed as bytes, like Go does).
    pub fn key_of_bytes<'a, I>(&mut self, labels: I, job: &str) -> Result<TargetKey, Error>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
        I::IntoIter: Clone,
    {
        self.scan(labels.into_iter(), job).map(|s| s.key)
    }

    /// One pass over a label set given as bytes: its key, its `__address__` and its node.
    ///
    /// Only the labels that are hashed (names not starting with `__meta_`) need sorted order;
    /// the `__meta_` ones, most of a Kubernetes label set, are skipped by the hash, so their
    /// order never matters and they are only checked for a repeated name, by fingerprint. The
    /// pass over the labels only sorts them into those two kinds; the few hashed labels,
    /// noted as they come (where they lie, not copied), are then checked on their own (the
    /// address, empty values, order), which keeps the loop over the many `__meta_` labels to
    /// a handful of registers. Out of order, only the hashed labels are sorted.
    pub(crate) fn scan<'a, I>(&mut self, labels: I, job: &str) -> Result<Scanned<'a>, Error>
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let restart = labels.clone();
        let mut set: Vec<Label<'a>> = recycle(std::mem::take(&mut self.hashed));
        let fingerprints = &mut self.fingerprints;
        fingerprints.clear();
        let mut repeated_meta = false;
        let mut seen = 0u64;
        let mut node = NodeFinder::default();
        for (name, value) in labels {
            if is_hashed(name) {
                set.push((name, value));
                continue;
            }
            node.observe(name, value);
            let fp = fingerprint(name);
            // One bit per fingerprint: a name whose bit is new cannot be a repeat, so the list
            // is searched only on a shared bit (~1 name in 10 in a Kubernetes set).
            let bit = 1u64 << (fp >> 58);
            if seen & bit != 0 {
                repeated_meta |= fingerprints.contains(&fp);
            }
            seen |= bit;
            fingerprints.push(fp);
        }
        let mut address = None;
        let mut any_empty = false;
        let mut in_order = true;
        let mut kept = 0;
        for i in 0..set.len() {
            let (name, value) = set[i];
            if name == b"__address__" {
                address = Some(value);
            }
            if value.is_empty() {
                // An empty value is no label: Prometheus' label builder, which the Go allocator
                // hashes from, deletes it. Rare, so it only sends the set to the exact
                // repeated-name check below.
                any_empty = true;
                continue;
            }
            in_order &= kept == 0 || cmp_names(set[kept - 1].0, name) == Ordering::Less;
            set[kept] = (name, value);
            kept += 1;
        }
        set.truncate(kept);
        if repeated_meta || any_empty {
            // Two equal fingerprints (maybe a repeated name, maybe a rare coincidence), or a
            // label left out for its empty value that may repeat a name.
            check_unique(restart.clone())?;
        }
        if !in_order {
            set.sort_unstable_by(|a, b| cmp_names(a.0, b.0));
            if let Some(w) = set.windows(2).find(|w| w[0].0 == w[1].0) {
                let name = String::from_utf8_lossy(w[0].0).into_owned();
                // The exact check names the smallest repeated name, as for any label set.
                check_unique(restart)?;
                return Err(Error::DuplicateLabel(name));
            }
        }
        let key = digest(&mut self.buf, &mut self.long, &set, job.as_bytes());
        self.hashed = recycle(set);
        Ok(Scanned {
            key: TargetKey(key),
            address,
            node: node.finish(),
        })
    }

    /// One label set given as bytes: its key, placement and node, as
    /// [`crate::TargetSpec::from_label_bytes_with`] computes them, but with the node left as
    /// bytes, so a caller that interns node names checks each distinct one once (for example
    /// with [`crate::NameIndex::index_bytes`]) instead of once per target.
    ///
    /// Fails on a repeated label name or a missing `__address__`.
    pub fn hash_label_bytes<'a, I>(
        &mut self,
        labels: I,
        job: &str,
    ) -> Result<HashedLabels<'a>, Error>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
        I::IntoIter: Clone,
    {
        let scanned = self.scan(labels.into_iter(), job)?;
        let address = scanned.address.ok_or(Error::MissingAddress(scanned.key))?;
        Ok(HashedLabels {
            key: scanned.key,
            placement: PlacementHash::of_bytes(address),
            node: scanned.node,
        })
    }

    /// The key of labels hashed in exactly the order given (the builder's range order).
    /// `__meta_` labels are skipped here; the caller owns the order and uniqueness.
    pub fn key_in_order<'a, I>(&mut self, labels: I, job: &str) -> TargetKey
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        self.long.clear();
        for (name, value) in labels {
            // An empty value is no label (Prometheus' label builder deletes it).
            if is_hashed(name.as_bytes()) && !value.is_empty() {
                self.long.extend_from_slice(name.as_bytes());
                self.long.push(SEP);
                self.long.extend_from_slice(value.as_bytes());
                self.long.push(SEP);
            }
        }
        self.long.extend_from_slice(job.as_bytes());
        TargetKey(xxhash_rust::xxh64::xxh64(&self.long, 0))
    }
}

/// The exact check for a repeated label name, as the error names it (the smallest repeated
/// name): for the rare label sets the fast pass cannot clear.
#[cold]
fn check_unique<'a, I>(labels: I) -> Result<(), Error>
where
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut names: Vec<&[u8]> = labels.map(|(n, _)| n).collect();
    names.sort_unstable();
    match names.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => Err(Error::DuplicateLabel(
            String::from_utf8_lossy(w[0]).into_owned(),
        )),
        None => Ok(()),
    }
}

impl TargetKey {
    /// The key of a discovered label set with no relabeling: sorted labels, `__meta_*` skipped,
    /// job name appended. Equal to the Operator's `HashLabels` with filtering off.
    ///
    /// ```
    /// use allocator_core::TargetKey;
    /// let key = TargetKey::from_labels([("test_label", "test-value")], "test-job").unwrap();
    /// assert_eq!(key.0, 11170662653441480747);
    /// ```
    pub fn from_labels<'a, I>(labels: I, job: &str) -> Result<TargetKey, Error>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        KeyHasher::new().key_of(labels, job)
    }
}
