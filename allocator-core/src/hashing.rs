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
    buf: Vec<u8>,
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
    pub(crate) fn scan<'a, I>(&mut self, labels: I, job: &str) -> Result<Scanned<'a>, Error>
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let restart = labels.clone();
        self.buf.clear();
        let mut prev: Option<&[u8]> = None;
        let mut address = None;
        let mut node = NodeFinder::default();
        // Fast path: hash while reading, as long as names strictly increase.
        for (name, value) in labels {
            if prev.is_some_and(|p| p >= name) {
                return self.scan_unsorted(restart, job);
            }
            prev = Some(name);
            if name == b"__address__" {
                address = Some(value);
            } else {
                node.observe(name, value);
            }
            self.push_label(name, value);
        }
        Ok(Scanned {
            key: self.finish(job),
            address,
            node: node.finish(),
        })
    }

    #[cold]
    fn scan_unsorted<'a, I>(&mut self, labels: I, job: &str) -> Result<Scanned<'a>, Error>
    where
        I: Iterator<Item = (&'a [u8], &'a [u8])>,
    {
        let mut pairs: Vec<(&'a [u8], &'a [u8])> = labels.collect();
        pairs.sort_unstable_by(|a, b| a.0.cmp(b.0));
        if let Some(w) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(Error::DuplicateLabel(
                String::from_utf8_lossy(w[0].0).into_owned(),
            ));
        }
        // Now strictly increasing, so this takes the fast path.
        self.scan(pairs.into_iter(), job)
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
