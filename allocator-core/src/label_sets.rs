//! Label sets in flat columns, hashed in bulk into the columns of a [`TargetBatch`]: the way a
//! C, Go or numpy caller with discovered label sets feeds the engine without building a
//! [`crate::TargetSpec`] per target or a string per node.

use crate::batch::{NameTable, TargetBatch, NO_NODE};
use crate::error::Error;
use crate::hashing::KeyHasher;
use crate::ids::PlacementHash;

mod parallel;

pub use parallel::MIN_LABEL_SETS_PER_THREAD;

/// Discovered label sets in columns; target `i` owns the next `counts[i]` entries of `labels`.
///
/// ```
/// use allocator_core::{Allocator, BatchDiff, CollectorSpec, Config, HashedSets, KeyHasher, LabelSets};
///
/// let labels: &[(&[u8], &[u8])] = &[
///     (b"__address__", b"10.0.0.1:9100"),
///     (b"__meta_kubernetes_pod_node_name", b"node-a"),
///     (b"__address__", b"10.0.0.2:9100"),
/// ];
/// let sets = LabelSets {
///     labels,
///     counts: &[2, 1],
///     jobs: &[0, 0],
///     job_names: &["node-exporter"],
///     weights: &[],
/// };
/// let mut hashed = HashedSets::default();
/// KeyHasher::new().hash_label_sets(&sets, &mut hashed).unwrap();
/// assert_eq!(hashed.node_names, ["node-a"]);
///
/// let mut alloc = Allocator::new(Config::default()).unwrap();
/// let collectors = [CollectorSpec::new("c0")];
/// let diff = BatchDiff { upsert: hashed.batch(), add_collectors: &collectors, ..BatchDiff::default() };
/// assert_eq!(alloc.apply_batch(&diff).unwrap().len(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct LabelSets<'a> {
    /// Every label (name, value) of every target, target after target, in any order within a
    /// target. Hashed as bytes, as the Go allocator hashes them.
    pub labels: &'a [(&'a [u8], &'a [u8])],
    /// Labels per target; they add up to `labels.len()`.
    pub counts: &'a [u32],
    /// Index into `job_names`, one per target.
    pub jobs: &'a [u32],
    /// The batch's job names.
    pub job_names: &'a [&'a str],
    /// Weights, one per target; empty means every weight is 1.
    pub weights: &'a [u32],
}

impl LabelSets<'_> {
    /// Number of targets.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether there is no target.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}

/// What [`KeyHasher::hash_label_sets`] computes: the hashed columns of a [`TargetBatch`], with
/// a per-batch node table. Reusable: hashing again clears it and keeps its buffers.
#[derive(Clone, Debug, Default)]
pub struct HashedSets<'a> {
    /// Target keys (the Go allocator's item hash, no relabeling).
    pub keys: Vec<u64>,
    /// Placement hashes of the `__address__` labels.
    pub placements: Vec<u64>,
    /// Node of each target: an index into `node_names`, or [`NO_NODE`].
    pub nodes: Vec<u32>,
    /// Node names of this batch, each once, as they appear in the label sets.
    pub node_names: Vec<&'a str>,
    sets: LabelSets<'a>,
    node_table: NameTable,
    /// Row of the batch whose first set these columns start with (nonzero for the part of a
    /// batch one thread of [`KeyHasher::hash_label_sets_on`] hashes): errors name batch rows.
    first_row: usize,
}

impl<'a> HashedSets<'a> {
    /// Number of targets hashed (after an error: the index of the label set that failed).
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no target was hashed.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The hashed targets as a batch (jobs and weights from the label sets).
    pub fn batch(&self) -> TargetBatch<'_> {
        TargetBatch {
            keys: &self.keys,
            placements: &self.placements,
            weights: &self.sets.weights[..self.keys.len().min(self.sets.weights.len())],
            jobs: &self.sets.jobs[..self.keys.len().min(self.sets.jobs.len())],
            job_names: self.sets.job_names,
            nodes: &self.nodes,
            node_names: &self.node_names,
        }
    }

    /// Start over for `n` label sets whose jobs and weights are those of `sets`.
    fn clear(&mut self, sets: LabelSets<'a>, n: usize) {
        self.keys.clear();
        self.placements.clear();
        self.nodes.clear();
        self.node_names.clear();
        self.node_table.clear();
        self.sets = sets;
        self.first_row = 0;
        self.keys.reserve(n);
        self.placements.reserve(n);
        self.nodes.reserve(n);
    }

    #[inline]
    fn node(&mut self, node: Option<&'a [u8]>) -> Result<u32, ()> {
        let Some(bytes) = node else {
            return Ok(NO_NODE);
        };
        if let Some(i) = self.node_table.find(bytes) {
            return Ok(i);
        }
        // The allocator keeps node names: each distinct one is checked once per batch.
        let name = std::str::from_utf8(bytes).map_err(|_| ())?;
        self.node_table.add(bytes, self.node_names.len() as u32);
        self.node_names.push(name);
        Ok(self.node_names.len() as u32 - 1)
    }
}

impl KeyHasher {
    /// Hash label sets in columns into `out`: per target its key (sorted labels and job, no
    /// relabeling), the placement hash of its `__address__` and its node (DESIGN.md §6.5),
    /// exactly as [`crate::TargetSpec::from_label_bytes_with`] computes them one by one.
    ///
    /// Fails on columns of the wrong length, a job index out of range, or a bad label set (a
    /// repeated name, no `__address__`, a node name that is not UTF-8); then `out.len()` is the
    /// index of the label set that failed.
    pub fn hash_label_sets<'a>(
        &mut self,
        sets: &LabelSets<'a>,
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error> {
        out.clear(*sets, sets.len());
        check_columns(sets)?;
        self.hash_rows(sets, out)
    }

    /// Hash the rows of columns already checked onto the end of `out`.
    fn hash_rows<'a>(
        &mut self,
        sets: &LabelSets<'a>,
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error> {
        let mut start = 0usize;
        for (&count, &job) in sets.counts.iter().zip(sets.jobs) {
            let set = &sets.labels[start..start + count as usize];
            start += count as usize;
            self.hash_into(set.iter().copied(), job, sets.job_names, out)?;
        }
        Ok(())
    }

    /// [`KeyHasher::hash_label_sets`] for label sets handed over one by one, each as an
    /// iterator of its (name, value) pairs, with the job (an index into `job_names`) of each:
    /// for a caller whose label sets are in an encoding of its own (the C ABI's labels
    /// encoding), decoded while they are hashed rather than into a flat array first. The
    /// batch's weights are the caller's to add. Hashing stops at the first set that fails (as
    /// `hash_label_sets` does) or when `sets` ends.
    pub fn hash_label_iters<'a, S, L>(
        &mut self,
        sets: S,
        jobs: &'a [u32],
        job_names: &'a [&'a str],
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error>
    where
        S: IntoIterator<Item = L>,
        L: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let columns = LabelSets {
            jobs,
            job_names,
            ..LabelSets::default()
        };
        out.clear(columns, jobs.len());
        for (set, &job) in sets.into_iter().zip(jobs) {
            self.hash_into(set, job, job_names, out)?;
        }
        Ok(())
    }

    /// Hash one label set of job `job` onto the end of `out`'s columns.
    #[inline]
    fn hash_into<'a, L>(
        &mut self,
        set: L,
        job: u32,
        job_names: &[&str],
        out: &mut HashedSets<'a>,
    ) -> Result<(), Error>
    where
        L: Iterator<Item = (&'a [u8], &'a [u8])> + Clone,
    {
        let Some(&job_name) = job_names.get(job as usize) else {
            return Err(Error::InvalidBatch(format!(
                "row {}: job index {job} but the batch names {} jobs",
                out.first_row + out.len(),
                job_names.len()
            )));
        };
        let scanned = self.scan(set, job_name)?;
        let address = scanned.address.ok_or(Error::MissingAddress(scanned.key))?;
        let node = out
            .node(scanned.node)
            .map_err(|()| Error::InvalidNodeName(scanned.key))?;
        out.keys.push(scanned.key.0);
        out.placements.push(PlacementHash::of_bytes(address).0);
        out.nodes.push(node);
        Ok(())
    }
}

/// The column lengths of `sets`: counts adding up to the labels, a job per set, and a weight
/// per set or none.
fn check_columns(sets: &LabelSets<'_>) -> Result<(), Error> {
    let n = sets.len();
    let total: u64 = sets.counts.iter().map(|&c| u64::from(c)).sum();
    if total != sets.labels.len() as u64 {
        return Err(Error::InvalidBatch(format!(
            "label counts add up to {total} for {} labels",
            sets.labels.len()
        )));
    }
    if sets.jobs.len() != n || !(sets.weights.is_empty() || sets.weights.len() == n) {
        return Err(Error::InvalidBatch(format!(
            "{n} label sets with {} jobs and {} weights",
            sets.jobs.len(),
            sets.weights.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diff::TargetSpec;

    const NODE: &[u8] = b"__meta_kubernetes_pod_node_name";

    #[test]
    fn bulk_hashing_equals_one_by_one_in_any_label_order() {
        let addresses: Vec<String> = (0..40).map(|i| format!("10.0.0.{i}:9100")).collect();
        let nodes: Vec<String> = (0..40).map(|i| format!("node-{}", i % 7)).collect();
        let mut labels: Vec<(&[u8], &[u8])> = Vec::new();
        let mut counts = Vec::new();
        for i in 0..40 {
            let mut set: Vec<(&[u8], &[u8])> = vec![
                (b"__address__", addresses[i].as_bytes()),
                (b"__meta_kubernetes_namespace", b"default"),
                (b"__metrics_path__", b"/metrics"),
                (b"instance", nodes[i].as_bytes()),
                (b"zone", b"a"),
            ];
            if i % 3 != 0 {
                set.push((NODE, nodes[i].as_bytes()));
            }
            // Rotations and reversals: the hashed labels and the `__meta_` ones out of order.
            let len = set.len();
            set.rotate_left(i % len);
            if i % 4 == 1 {
                set.reverse();
            }
            counts.push(set.len() as u32);
            labels.extend(set);
        }
        let jobs: Vec<u32> = (0..40).map(|i| i % 2).collect();
        let sets = LabelSets {
            labels: &labels,
            counts: &counts,
            jobs: &jobs,
            job_names: &["a", "b"],
            weights: &[],
        };
        let mut out = HashedSets::default();
        let mut hasher = KeyHasher::new();
        hasher.hash_label_sets(&sets, &mut out).unwrap();
        let mut start = 0;
        for i in 0..40 {
            let set = &labels[start..start + counts[i] as usize];
            start += set.len();
            let job = ["a", "b"][jobs[i] as usize];
            let one =
                TargetSpec::from_label_bytes_with(&mut KeyHasher::new(), set.iter().copied(), job)
                    .unwrap();
            let mut sorted = set.to_vec();
            sorted.sort();
            let key = KeyHasher::new().key_in_order(
                sorted.iter().map(|(n, v)| {
                    (
                        std::str::from_utf8(n).unwrap(),
                        std::str::from_utf8(v).unwrap(),
                    )
                }),
                job,
            );
            assert_eq!(out.keys[i], one.key.0);
            assert_eq!(out.keys[i], key.0);
            assert_eq!(out.placements[i], one.placement.0);
            let node = (out.nodes[i] != NO_NODE).then(|| out.node_names[out.nodes[i] as usize]);
            assert_eq!(node, one.node);
        }
        assert_eq!(out.node_names.len(), 7);
        let batch = out.batch();
        batch.validate().unwrap();
        assert_eq!(batch.len(), 40);
        // Hashing again into the same output clears it first: the same columns and node table.
        let (keys, nodes, names) = (out.keys.clone(), out.nodes.clone(), out.node_names.clone());
        hasher.hash_label_sets(&sets, &mut out).unwrap();
        assert_eq!((out.keys, out.nodes, out.node_names), (keys, nodes, names));
    }

    #[test]
    fn a_bad_label_set_is_named_by_its_index() {
        let labels: &[(&[u8], &[u8])] = &[
            (b"__address__", b"a:1"),
            (b"x", b"1"),
            (b"__address__", b"b:1"),
            (b"__meta_a", b"1"),
            (b"__meta_a", b"2"),
            (b"__address__", b"c:1"),
        ];
        let sets = LabelSets {
            labels,
            counts: &[2, 3, 1],
            jobs: &[0, 0, 0],
            job_names: &["j"],
            weights: &[],
        };
        let mut out = HashedSets::default();
        let err = KeyHasher::new()
            .hash_label_sets(&sets, &mut out)
            .unwrap_err();
        assert_eq!(err, Error::DuplicateLabel("__meta_a".into()));
        assert_eq!(out.len(), 1);
        // Counts that do not add up, and a job out of range, are refused before any hashing.
        let short = LabelSets {
            counts: &[2, 3],
            jobs: &[0, 0],
            ..sets
        };
        assert!(matches!(
            KeyHasher::new().hash_label_sets(&short, &mut out),
            Err(Error::InvalidBatch(_))
        ));
        let bad_job = LabelSets {
            jobs: &[0, 1, 0],
            ..sets
        };
        assert!(matches!(
            KeyHasher::new().hash_label_sets(&bad_job, &mut out),
            Err(Error::InvalidBatch(_))
        ));
        let no_address: &[(&[u8], &[u8])] = &[(b"x", b"1")];
        let sets = LabelSets {
            labels: no_address,
            counts: &[1],
            jobs: &[0],
            ..sets
        };
        assert!(matches!(
            KeyHasher::new().hash_label_sets(&sets, &mut out),
            Err(Error::MissingAddress(_))
        ));
        let bad_node: &[(&[u8], &[u8])] = &[(b"__address__", b"a"), (NODE, b"\xff")];
        let sets = LabelSets {
            labels: bad_node,
            counts: &[2],
            ..sets
        };
        assert!(matches!(
            KeyHasher::new().hash_label_sets(&sets, &mut out),
            Err(Error::InvalidNodeName(_))
        ));
    }

    #[test]
    fn repeated_names_are_found_in_either_part_and_the_smallest_is_named() {
        let mut h = KeyHasher::new();
        let dup =
            |h: &mut KeyHasher, labels: &[(&str, &str)]| h.key_of(labels.iter().copied(), "j");
        // Repeated `__meta_` names, sorted and not; and names whose fingerprints could meet.
        assert!(dup(&mut h, &[("__meta_x", "1"), ("__meta_x", "2")]).is_err());
        assert!(dup(&mut h, &[("__meta_y", "1"), ("a", "1"), ("__meta_y", "2")]).is_err());
        assert!(dup(&mut h, &[("b", "1"), ("a", "1"), ("b", "2")]).is_err());
        assert_eq!(
            dup(
                &mut h,
                &[("b", "1"), ("__meta_z", "1"), ("b", "2"), ("__meta_z", "1")]
            ),
            Err(Error::DuplicateLabel("__meta_z".into()))
        );
        let long_a = "__meta_kubernetes_pod_label_aaaaaaaa_bbbbbbbb_cccccccc_name";
        let long_b = "__meta_kubernetes_pod_label_aaaaaaaa_bbbbbbbX_cccccccc_name";
        assert!(dup(
            &mut h,
            &[(long_a, "1"), (long_b, "2"), ("__address__", "a")]
        )
        .is_ok());
        assert!(dup(&mut h, &[(long_b, "1"), (long_a, "2"), (long_b, "3")]).is_err());
        // Names that differ only where the fingerprint does not look (after the prefix, before
        // the middle word): equal fingerprints, so the exact check decides.
        let skipped_a = "__meta_aaaaaa_mmmmmmmmmmmmmmmmmmmmmm";
        let skipped_b = "__meta_bbbbbb_mmmmmmmmmmmmmmmmmmmmmm";
        assert_eq!(
            crate::hashing::fingerprint(skipped_a.as_bytes()),
            crate::hashing::fingerprint(skipped_b.as_bytes())
        );
        assert!(dup(
            &mut h,
            &[(skipped_a, "1"), (skipped_b, "2"), ("__address__", "a")]
        )
        .is_ok());
        assert!(dup(
            &mut h,
            &[(skipped_b, "1"), (skipped_a, "2"), (skipped_b, "3")]
        )
        .is_err());
        // The `__meta_` name alone, shorter than a word.
        assert!(dup(&mut h, &[("__meta_", "1"), ("__meta_", "2")]).is_err());
        assert!(dup(&mut h, &[("__meta_", "1"), ("__meta_a", "2")]).is_ok());
    }
}
