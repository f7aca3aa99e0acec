//! The Go allocator's item hash (DESIGN.md §6.2): the identity of a target.
//!
//! XXH64 (seed 0) over, for every label whose name does not start with `__meta_`, the name,
//! a 0xFF byte, the value and a 0xFF byte, in the label builder's range order; then the job name
//! with no separator. We lay the bytes out in one buffer and hash once: the streaming digest of
//! the same bytes is identical and many tiny `update` calls are slower.

use crate::error::Error;
use crate::ids::TargetKey;

const SEP: u8 = 0xFF;
const META_PREFIX: &str = "__meta_";

/// Whether a label takes part in the item hash.
#[inline]
pub(crate) fn is_hashed(name: &str) -> bool {
    !name.starts_with(META_PREFIX)
}

/// A reusable buffer for computing many [`TargetKey`]s without allocating per target.
#[derive(Default, Debug, Clone)]
pub struct KeyHasher {
    buf: Vec<u8>,
    stage: Vec<u8>,
    spans: Vec<(usize, usize, usize)>,
}

impl KeyHasher {
    /// A new hasher with empty buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of a discovered label set with no relabeling: labels in sorted bytewise order
    /// (`filter_strategy` other than `relabel-config`). Label order in the input does not matter.
    ///
    /// Fails if a label name appears twice: a label set holds each name once.
    pub fn key_of<'a, I>(&mut self, labels: I, job: &str) -> Result<TargetKey, Error>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        // Stage every label as (name start, name end, value end) offsets into one byte buffer,
        // so sorting moves three integers per label and nothing is allocated per call.
        let stage = &mut self.stage;
        let spans = &mut self.spans;
        stage.clear();
        spans.clear();
        let mut sorted = true;
        for (name, value) in labels {
            let start = stage.len();
            stage.extend_from_slice(name.as_bytes());
            let name_end = stage.len();
            stage.extend_from_slice(value.as_bytes());
            if let Some(&(ps, pe, _)) = spans.last() {
                sorted &= stage[ps..pe] < stage[start..name_end];
            }
            spans.push((start, name_end, stage.len()));
        }
        if !sorted {
            spans.sort_unstable_by(|a, b| stage[a.0..a.1].cmp(&stage[b.0..b.1]));
            if let Some(w) = spans
                .windows(2)
                .find(|w| stage[w[0].0..w[0].1] == stage[w[1].0..w[1].1])
            {
                let name = String::from_utf8_lossy(&stage[w[0].0..w[0].1]).into_owned();
                return Err(Error::DuplicateLabel(name));
            }
        }
        self.buf.clear();
        for &(start, name_end, value_end) in spans.iter() {
            if !stage[start..name_end].starts_with(META_PREFIX.as_bytes()) {
                self.buf.extend_from_slice(&stage[start..name_end]);
                self.buf.push(SEP);
                self.buf.extend_from_slice(&stage[name_end..value_end]);
                self.buf.push(SEP);
            }
        }
        self.buf.extend_from_slice(job.as_bytes());
        Ok(TargetKey(xxhash_rust::xxh64::xxh64(&self.buf, 0)))
    }

    /// The key of labels hashed in exactly the order given (the builder's range order).
    /// `__meta_` labels are skipped here; the caller owns the order and uniqueness.
    pub fn key_in_order<'a, I>(&mut self, labels: I, job: &str) -> TargetKey
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
    {
        self.buf.clear();
        for (name, value) in labels {
            if is_hashed(name) {
                self.buf.extend_from_slice(name.as_bytes());
                self.buf.push(SEP);
                self.buf.extend_from_slice(value.as_bytes());
                self.buf.push(SEP);
            }
        }
        self.buf.extend_from_slice(job.as_bytes());
        TargetKey(xxhash_rust::xxh64::xxh64(&self.buf, 0))
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
    {
        KeyHasher::new().key_of(labels, job)
    }
}
