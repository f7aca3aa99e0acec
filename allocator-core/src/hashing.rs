//! The Go allocator's item hash (DESIGN.md §6.2): the identity of a target.
//!
//! XXH64 (seed 0) over, for every label whose name does not start with `__meta_`, the name,
//! a 0xFF byte, the value and a 0xFF byte, in the label builder's range order; then the job name
//! with no separator. We lay the bytes out in one buffer and hash once: the streaming digest of
//! the same bytes is identical and many tiny `update` calls are slower.

use crate::error::Error;
use crate::ids::TargetKey;
use crate::labels::NodeFinder;

const SEP: u8 = 0xFF;
const META_PREFIX: &str = "__meta_";

/// Whether a label takes part in the item hash.
#[inline]
pub(crate) fn is_hashed(name: &[u8]) -> bool {
    !name.starts_with(META_PREFIX.as_bytes())
}

/// What one pass over a discovered label set yields. Label names and values are hashed as
/// bytes (as the Go allocator does); only the caller decides whether they must be UTF-8.
pub(crate) struct Scanned<'a> {
    pub key: TargetKey,
    pub address: Option<&'a [u8]>,
    pub node: Option<&'a [u8]>,
}

/// A reusable buffer for computing many [`TargetKey`]s without allocating per target.
#[derive(Default, Debug, Clone)]
pub struct KeyHasher {
    /// The hashed bytes of the labels that take part in the item hash, in input order.
    buf: Vec<u8>,
    /// Where each of those labels lies in `buf`: start, name length, end.
    pieces: Vec<(u32, u32, u32)>,
    /// `buf` rebuilt in sorted label order, for unsorted input.
    sorted: Vec<u8>,
    /// Fingerprints of the `__meta_` names seen, to detect a repeated name.
    fingerprints: Vec<u64>,
}

/// A fingerprint of a `__meta_` label name (at least 7 bytes): equal names have equal
/// fingerprints, so distinct fingerprints prove distinct names without comparing them. Reads
/// three 8-byte words (after the common prefix, the middle, the end) and the length.
#[inline]
fn fingerprint(name: &[u8]) -> u64 {
    let n = name.len();
    let word = |at: usize| -> u64 {
        match name.get(at..at + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().unwrap_or([0; 8])),
            None => 0,
        }
    };
    let tail = if n >= 8 { word(n - 8) } else { 0 };
    let head = word(META_PREFIX.len());
    let middle = if n >= 16 { word(n / 2 - 4) } else { 0 };
    (tail.wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ head.wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ middle.wrapping_mul(0x1656_67B1_9E37_79F9))
    .wrapping_add(n as u64)
}

impl KeyHasher {
    /// A new hasher with an empty buffer.
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
    /// hashed labels are laid out as they come; out of order, only they are sorted.
    pub(crate) fn scan<'a, I>(&mut self, labels: I, job: &str) -> Result<Scanned<'a>, Error>
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let restart = labels.clone();
        self.buf.clear();
        self.pieces.clear();
        self.fingerprints.clear();
        let mut prev: Option<&[u8]> = None;
        let mut in_order = true;
        let mut repeated_meta = false;
        let mut address = None;
        let mut node = NodeFinder::default();
        for (name, value) in labels {
            if !is_hashed(name) {
                node.observe(name, value);
                let fp = fingerprint(name);
                repeated_meta |= self.fingerprints.contains(&fp);
                self.fingerprints.push(fp);
                continue;
            }
            if name == b"__address__" {
                address = Some(value);
            }
            in_order &= prev.is_none_or(|p| p < name);
            prev = Some(name);
            let start = self.buf.len() as u32;
            self.buf.extend_from_slice(name);
            self.buf.push(SEP);
            self.buf.extend_from_slice(value);
            self.buf.push(SEP);
            self.pieces
                .push((start, name.len() as u32, self.buf.len() as u32));
        }
        if repeated_meta {
            // Two equal fingerprints: maybe a repeated name, maybe a rare coincidence.
            check_unique(restart.clone())?;
        }
        if !in_order {
            if let Err(name) = self.sort_pieces() {
                // The exact check names the smallest repeated name, as for any label set.
                check_unique(restart)?;
                return Err(Error::DuplicateLabel(name));
            }
        }
        Ok(Scanned {
            key: self.finish(job),
            address,
            node: node.finish(),
        })
    }

    /// Put the hashed labels of `buf` in sorted name order; fails with a repeated name.
    #[cold]
    fn sort_pieces(&mut self) -> Result<(), String> {
        let buf = &self.buf;
        let name = |p: &(u32, u32, u32)| &buf[p.0 as usize..(p.0 + p.1) as usize];
        self.pieces.sort_unstable_by(|a, b| name(a).cmp(name(b)));
        if let Some(w) = self.pieces.windows(2).find(|w| name(&w[0]) == name(&w[1])) {
            return Err(String::from_utf8_lossy(name(&w[0])).into_owned());
        }
        self.sorted.clear();
        for p in &self.pieces {
            self.sorted
                .extend_from_slice(&buf[p.0 as usize..p.2 as usize]);
        }
        std::mem::swap(&mut self.buf, &mut self.sorted);
        Ok(())
    }

    #[inline]
    fn push_label(&mut self, name: &[u8], value: &[u8]) {
        if is_hashed(name) {
            self.buf.extend_from_slice(name);
            self.buf.push(SEP);
            self.buf.extend_from_slice(value);
            self.buf.push(SEP);
        }
    }

    #[inline]
    fn finish(&mut self, job: &str) -> TargetKey {
        self.buf.extend_from_slice(job.as_bytes());
        TargetKey(xxhash_rust::xxh64::xxh64(&self.buf, 0))
    }

    /// The key of labels hashed in exactly the order given (the builder's range order).
    /// `__meta_` labels are skipped here; the caller owns the order and uniqueness.
    pub fn key_in_order<'a, I>(&mut self, labels: I, job: &str) -> TargetKey
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        self.buf.clear();
        for (name, value) in labels {
            self.push_label(name.as_bytes(), value.as_bytes());
        }
        self.finish(job)
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
