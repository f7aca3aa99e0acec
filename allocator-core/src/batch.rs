//! Targets in columns: the primary bulk input of the engine.
//!
//! A C, Go or numpy caller holds its targets as arrays; a [`TargetBatch`] borrows those arrays
//! as they are (no per-target struct, no per-target string). Jobs and nodes are indexes into
//! per-batch name tables, so each distinct name crosses the boundary and is interned once per
//! batch, not once per target. [`crate::TargetSpec`] and [`crate::Diff`] stay as a convenience
//! for callers with a few targets; the engine turns them into a batch.

use crate::diff::{CollectorSpec, TargetSpec};
use crate::error::Error;
use crate::ids::TargetKey;

/// In [`TargetBatch::nodes`]: this target has no node.
pub const NO_NODE: u32 = u32::MAX;

/// Targets in columns; row `i` is one target.
///
/// ```
/// use allocator_core::{Allocator, BatchDiff, CollectorSpec, Config, PlacementHash, TargetBatch};
///
/// let mut alloc = Allocator::new(Config::default()).unwrap();
/// let collectors = [CollectorSpec::new("c0"), CollectorSpec::new("c1")];
/// let keys = [1, 2, 3];
/// let placements = ["a:1", "b:1", "c:1"].map(|a| PlacementHash::of_address(a).0);
/// let batch = TargetBatch {
///     keys: &keys,
///     placements: &placements,
///     jobs: &[0, 0, 1],
///     job_names: &["node", "app"],
///     ..TargetBatch::default()
/// };
/// let moves = alloc
///     .apply_batch(&BatchDiff { upsert: batch, add_collectors: &collectors, ..BatchDiff::default() })
///     .unwrap();
/// assert_eq!(moves.len(), 3);
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct TargetBatch<'a> {
    /// Identities (the Go allocator's item hash, [`TargetKey`]). A key repeated in one batch is
    /// one target with its last row's fields.
    pub keys: &'a [u64],
    /// Placement hashes ([`crate::PlacementHash`]), one per key.
    pub placements: &'a [u64],
    /// Weights, one per key; empty means every weight is 1.
    pub weights: &'a [u32],
    /// Index into `job_names`, one per key.
    pub jobs: &'a [u32],
    /// The batch's job names.
    pub job_names: &'a [&'a str],
    /// Index into `node_names` or [`NO_NODE`], one per key; empty means no target has a node.
    pub nodes: &'a [u32],
    /// The batch's node names (an empty name means no node).
    pub node_names: &'a [&'a str],
}

impl TargetBatch<'_> {
    /// Number of targets.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the batch holds no target.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Check that every column has one entry per key and every index names an entry of its
    /// table; the error names the column and, for an index, the row.
    pub fn validate(&self) -> Result<(), Error> {
        let n = self.keys.len();
        let column = |name: &'static str, len: usize, optional: bool| {
            if len == n || (optional && len == 0) {
                Ok(())
            } else {
                Err(Error::InvalidBatch(format!(
                    "column {name} has {len} entries for {n} keys"
                )))
            }
        };
        column("placements", self.placements.len(), false)?;
        column("weights", self.weights.len(), true)?;
        column("jobs", self.jobs.len(), false)?;
        column("nodes", self.nodes.len(), true)?;
        let names = (self.job_names.len(), self.node_names.len());
        if let Some(row) = self.jobs.iter().position(|&j| j as usize >= names.0) {
            return Err(Error::InvalidBatch(format!(
                "row {row}: job index {} but the batch names {} jobs",
                self.jobs[row], names.0
            )));
        }
        if let Some(row) = self
            .nodes
            .iter()
            .position(|&x| x != NO_NODE && x as usize >= names.1)
        {
            return Err(Error::InvalidBatch(format!(
                "row {row}: node index {} but the batch names {} nodes",
                self.nodes[row], names.1
            )));
        }
        Ok(())
    }

    pub(crate) fn key(&self, row: usize) -> TargetKey {
        TargetKey(self.keys[row])
    }

    pub(crate) fn weight(&self, row: usize) -> u32 {
        self.weights.get(row).copied().unwrap_or(1)
    }
}

/// A diff with its targets in columns: what [`crate::Allocator::apply_batch`] applies, in the
/// order [`crate::Diff`] documents.
#[derive(Clone, Copy, Debug, Default)]
pub struct BatchDiff<'a> {
    /// Targets added, or changed in place (same key).
    pub upsert: TargetBatch<'a>,
    /// Keys of targets removed. Each must exist.
    pub remove: &'a [u64],
    /// Collectors added.
    pub add_collectors: &'a [CollectorSpec<'a>],
    /// Collectors removed, by name. Each must exist.
    pub remove_collectors: &'a [&'a str],
}

impl BatchDiff<'_> {
    /// Whether the diff changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty()
            && self.remove.is_empty()
            && self.add_collectors.is_empty()
            && self.remove_collectors.is_empty()
    }
}

/// Per-target specs gathered into the columns of a [`TargetBatch`], each job and node name
/// once: what [`crate::Allocator::apply`] does with a [`crate::Diff`]'s upserts, for a caller
/// that builds specs but wants [`crate::Allocator::apply_batch`] (to add removals by key, or
/// to keep the columns for several diffs).
///
/// ```
/// use allocator_core::{Allocator, BatchDiff, CollectorSpec, Config, PlacementHash, TargetColumns, TargetKey, TargetSpec};
///
/// let specs = [TargetSpec::new(TargetKey(7), PlacementHash::of_address("10.0.0.1:80"), "node")];
/// let columns = TargetColumns::from_specs(&specs);
/// let mut alloc = Allocator::new(Config::default()).unwrap();
/// let collectors = [CollectorSpec::new("c0")];
/// let diff = BatchDiff { upsert: columns.batch(), add_collectors: &collectors, ..BatchDiff::default() };
/// assert_eq!(alloc.apply_batch(&diff).unwrap().len(), 1);
/// ```
#[derive(Clone, Debug, Default)]
pub struct TargetColumns<'a> {
    keys: Vec<u64>,
    placements: Vec<u64>,
    weights: Vec<u32>,
    jobs: Vec<u32>,
    job_names: Vec<&'a str>,
    nodes: Vec<u32>,
    node_names: Vec<&'a str>,
}

impl<'a> TargetColumns<'a> {
    /// The specs' columns, in their order.
    pub fn from_specs(specs: &[TargetSpec<'a>]) -> TargetColumns<'a> {
        let mut c = TargetColumns {
            keys: Vec::with_capacity(specs.len()),
            placements: Vec::with_capacity(specs.len()),
            weights: Vec::with_capacity(specs.len()),
            jobs: Vec::with_capacity(specs.len()),
            ..TargetColumns::default()
        };
        let mut job_index = NameIndex::default();
        let mut node_index = NameIndex::default();
        let any_node = specs.iter().any(|t| t.node.is_some());
        for t in specs {
            c.keys.push(t.key.0);
            c.placements.push(t.placement.0);
            c.weights.push(t.weight);
            c.jobs.push(job_index.index(t.job, &mut c.job_names));
            if any_node {
                let node = t
                    .node
                    .map_or(NO_NODE, |n| node_index.index(n, &mut c.node_names));
                c.nodes.push(node);
            }
        }
        c
    }

    /// The columns as a batch.
    pub fn batch(&self) -> TargetBatch<'_> {
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
}

/// Builds a batch's name table (`job_names` or `node_names`) row by row: the index of a name,
/// adding it on first sight. Consecutive targets usually share a job or node, so the last name
/// is compared before the table is asked.
#[derive(Default)]
pub struct NameIndex<'a> {
    last: Option<(&'a str, u32)>,
    table: NameTable,
}

impl<'a> NameIndex<'a> {
    /// The index of `name` in `names`, pushing it there the first time.
    pub fn index(&mut self, name: &'a str, names: &mut Vec<&'a str>) -> u32 {
        if let Some((last, i)) = self.last {
            if last == name {
                return i;
            }
        }
        let i = match self.table.find(name.as_bytes()) {
            Some(i) => i,
            None => {
                self.table.add(name.as_bytes(), names.len() as u32);
                names.push(name);
                names.len() as u32 - 1
            }
        };
        self.last = Some((name, i));
        i
    }
}

impl<'a> NameIndex<'a> {
    /// [`NameIndex::index`] for a name given as bytes: checked to be UTF-8 only the first time
    /// it is seen (a name seen before is found by its bytes).
    pub fn index_bytes(
        &mut self,
        name: &'a [u8],
        names: &mut Vec<&'a str>,
    ) -> Result<u32, std::str::Utf8Error> {
        if let Some((last, i)) = self.last {
            if last.as_bytes() == name {
                return Ok(i);
            }
        }
        let i = match self.table.find(name) {
            Some(i) => i,
            None => {
                // Checked before it is added: after a name that is not UTF-8, the index stays
                // usable.
                let text = std::str::from_utf8(name)?;
                self.table.add(name, names.len() as u32);
                names.push(text);
                names.len() as u32 - 1
            }
        };
        self.last = Some((names[i as usize], i));
        Ok(i)
    }
}

/// Distinct names, each with a value (its index in the caller's table): copies of their bytes side by side,
/// so a lookup compares against this small, warm text, not against the caller's copy of the
/// name seen first (a cache miss per row in a large batch whose names lie with each row).
#[derive(Clone, Debug, Default)]
pub(crate) struct NameTable {
    text: Vec<u8>,
    /// Start and end of each name in `text`, and its value, by entry.
    spans: Vec<(u32, u32, u32)>,
    /// Entries by the hash of their names.
    index: hashbrown::HashTable<u32>,
    hasher: ahash::RandomState,
}

impl NameTable {
    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.spans.clear();
        self.index.clear();
    }

    /// The value of `name`, if it was added.
    #[inline]
    pub(crate) fn find(&self, name: &[u8]) -> Option<u32> {
        let hash = self.hasher.hash_one(name);
        let (text, spans) = (&self.text, &self.spans);
        self.index
            .find(hash, |&e| {
                let (s, end, _) = spans[e as usize];
                &text[s as usize..end as usize] == name
            })
            .map(|&e| spans[e as usize].2)
    }

    /// Add `name` (not present) with `value`.
    pub(crate) fn add(&mut self, name: &[u8], value: u32) {
        let hash = self.hasher.hash_one(name);
        let entry = self.spans.len() as u32;
        let start = self.text.len() as u32;
        self.text.extend_from_slice(name);
        self.spans.push((start, self.text.len() as u32, value));
        let (text, spans, hasher) = (&self.text, &self.spans, &self.hasher);
        self.index.insert_unique(hash, entry, |&e| {
            let (s, end, _) = spans[e as usize];
            hasher.hash_one(&text[s as usize..end as usize])
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_indexed_once_by_text_or_bytes_and_a_bad_name_leaves_the_index_usable() {
        let mut names = Vec::new();
        let mut index = NameIndex::default();
        // Equal texts at different addresses are one name.
        let a1 = String::from("node-a");
        let a2 = String::from("node-a");
        assert_eq!(index.index(&a1, &mut names), 0);
        assert_eq!(index.index("node-b", &mut names), 1);
        assert_eq!(index.index(&a2, &mut names), 0);
        assert_eq!(index.index_bytes(b"node-b", &mut names), Ok(1));
        assert!(index.index_bytes(b"node-\xff", &mut names).is_err());
        assert_eq!(index.index_bytes(b"node-c", &mut names), Ok(2));
        assert!(index.index_bytes(b"node-\xff", &mut names).is_err());
        assert_eq!(index.index("node-c", &mut names), 2);
        assert_eq!(names, ["node-a", "node-b", "node-c"]);
    }
}
