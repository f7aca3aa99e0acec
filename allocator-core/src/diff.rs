//! Diffs in, moves out: the only way allocation state changes.

use crate::error::Error;
use crate::hashing::KeyHasher;
use crate::ids::{CollectorId, PlacementHash, TargetKey};

/// A target as the core needs it. Labels stay with the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetSpec<'a> {
    /// Identity (the Go allocator's item hash).
    pub key: TargetKey,
    /// Consistent-hashing placement (XXH64 of the raw `__address__`).
    pub placement: PlacementHash,
    /// Job name.
    pub job: &'a str,
    /// Node the target runs on, for `per-node` (and zones). `Some("")` is no node, as `None`.
    pub node: Option<&'a str>,
    /// Relative cost of scraping it (default 1), e.g. its series count. 0 is allowed: the
    /// target counts as a target but adds no weight.
    pub weight: u32,
}

impl<'a> TargetSpec<'a> {
    /// A target of weight 1 with no node.
    pub fn new(key: TargetKey, placement: PlacementHash, job: &'a str) -> Self {
        TargetSpec {
            key,
            placement,
            job,
            node: None,
            weight: 1,
        }
    }

    /// A target from its discovered label set with no relabeling: key from the sorted labels and
    /// the job, placement from `__address__`, node per DESIGN.md §6.5.
    ///
    /// ```
    /// use allocator_core::TargetSpec;
    /// let labels = [("__address__", "10.1.2.3:9100"), ("__meta_kubernetes_pod_node_name", "n1")];
    /// let t = TargetSpec::from_labels(labels, "node-exporter").unwrap();
    /// assert_eq!(t.node, Some("n1"));
    /// ```
    pub fn from_labels<I>(labels: I, job: &'a str) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        Self::from_labels_with(&mut KeyHasher::new(), labels, job)
    }

    /// Like [`TargetSpec::from_labels`], reusing a hasher's buffers.
    pub fn from_labels_with<I>(
        hasher: &mut KeyHasher,
        labels: I,
        job: &'a str,
    ) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (&'a str, &'a str)>,
        I::IntoIter: Clone,
    {
        let bytes = labels
            .into_iter()
            .map(|(n, v)| (n.as_bytes(), v.as_bytes()));
        Self::from_label_bytes_with(hasher, bytes, job)
    }

    /// Like [`TargetSpec::from_labels_with`] for labels given as bytes, as a C or Go caller has
    /// them: names and values are hashed as bytes, the way the Go allocator hashes them, so only
    /// the node name (which the allocator keeps) must be UTF-8.
    pub fn from_label_bytes_with<I>(
        hasher: &mut KeyHasher,
        labels: I,
        job: &'a str,
    ) -> Result<Self, Error>
    where
        I: IntoIterator<Item = (&'a [u8], &'a [u8])>,
        I::IntoIter: Clone,
    {
        let scanned = hasher.scan(labels.into_iter(), job)?;
        let address = scanned.address.ok_or(Error::MissingAddress(scanned.key))?;
        let node = match scanned.node {
            Some(bytes) => {
                Some(std::str::from_utf8(bytes).map_err(|_| Error::InvalidNodeName(scanned.key))?)
            }
            None => None,
        };
        Ok(TargetSpec {
            key: scanned.key,
            placement: PlacementHash::of_bytes(address),
            job,
            node,
            weight: 1,
        })
    }

    /// The same target with another weight.
    pub fn with_weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    /// The same target on a node.
    pub fn with_node(mut self, node: Option<&'a str>) -> Self {
        self.node = node;
        self
    }
}

/// A collector: the name it presents (its pod name) and the node it runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectorSpec<'a> {
    /// The collector id, e.g. the pod name. Must not be empty.
    pub name: &'a str,
    /// The pod's `spec.nodeName`, for `per-node` (and zones). `Some("")` is no node, as `None`.
    pub node: Option<&'a str>,
}

impl<'a> CollectorSpec<'a> {
    /// A collector with no node.
    pub fn new(name: &'a str) -> Self {
        CollectorSpec { name, node: None }
    }

    /// A collector on a node.
    pub fn on_node(name: &'a str, node: &'a str) -> Self {
        CollectorSpec {
            name,
            node: Some(node),
        }
    }
}

/// A change to the allocation state.
///
/// Applied in this order: targets removed; existing targets updated in place (they keep their
/// collector and take the new fields, as in the Go allocator); collectors removed and added (a
/// name both removed and added keeps its id and takes the new node), which re-places every
/// target whose collector left or whose rule now names another collector; new targets placed.
/// So a diff that changes collectors leaves every `consistent-hashing` and `per-node` target
/// where a fresh allocator with the same state would put it.
#[derive(Clone, Debug, Default)]
pub struct Diff<'a> {
    /// Targets added, or changed in place (same key). For a repeated key the last one wins.
    pub upsert: Vec<TargetSpec<'a>>,
    /// Targets removed. Each must exist.
    pub remove: Vec<TargetKey>,
    /// Collectors added.
    pub add_collectors: Vec<CollectorSpec<'a>>,
    /// Collectors removed, by name. Each must exist.
    pub remove_collectors: Vec<&'a str>,
}

impl Diff<'_> {
    /// Whether the diff changes nothing.
    pub fn is_empty(&self) -> bool {
        self.upsert.is_empty()
            && self.remove.is_empty()
            && self.add_collectors.is_empty()
            && self.remove_collectors.is_empty()
    }
}

/// A change of one target's collector caused by a diff.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Move {
    /// The target.
    pub key: TargetKey,
    /// Its collector before the diff (`None`: new, or unassigned).
    pub from: Option<CollectorId>,
    /// Its collector after the diff (`None`: removed, or left unassigned).
    pub to: Option<CollectorId>,
}

/// What kind of change a [`Move`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MoveKind {
    /// The target got a collector (it was new or unassigned).
    Assigned,
    /// The target lost its collector (it was removed, or no collector can take it).
    Unassigned,
    /// The target changed hands between two collectors.
    Reassigned,
}

impl Move {
    /// The kind of change.
    pub fn kind(&self) -> MoveKind {
        match (self.from, self.to) {
            (Some(_), Some(_)) => MoveKind::Reassigned,
            (None, _) => MoveKind::Assigned,
            (Some(_), None) => MoveKind::Unassigned,
        }
    }
}

/// Moves counted over the allocator's life.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MoveTotals {
    /// Targets that got a collector.
    pub assigned: u64,
    /// Targets that lost their collector.
    pub unassigned: u64,
    /// Targets that changed hands.
    pub reassigned: u64,
}

impl MoveTotals {
    pub(crate) fn count(&mut self, moves: &[Move]) {
        for m in moves {
            match m.kind() {
                MoveKind::Assigned => self.assigned += 1,
                MoveKind::Unassigned => self.unassigned += 1,
                MoveKind::Reassigned => self.reassigned += 1,
            }
        }
    }
}
