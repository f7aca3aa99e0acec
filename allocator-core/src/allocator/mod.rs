//! [`Allocator`]: the one struct that owns the allocation state.
//!
//! Its behaviour is split by concern: `apply` (the diff engine: validation, then removals,
//! in-place updates, collector changes and placements), `reconcile` (full listings turned into
//! diffs), `queries` (pure reads); snapshot and restore live beside their codec in
//! [`crate::snapshot`].

mod apply;
mod explain;
mod queries;
mod reconcile;
mod zones;

use hashbrown::HashSet;

use crate::collectors::Collectors;
use crate::config::Config;
use crate::diff::{Move, MoveTotals};
use crate::error::Error;
use crate::intern::Interner;
use crate::loads::Loads;
use crate::strategy::Placer;
use crate::targets::{Buckets, Targets};

pub use explain::{Detail, Explanation, Unassigned};
pub use queries::{CollectorStats, LoadSummary, TargetInfo};

pub(crate) type Set<T> = HashSet<T, ahash::RandomState>;

/// Assigns targets to collectors. Diffs in, moves out; every query is pure.
///
/// ```
/// use allocator_core::{Allocator, CollectorSpec, Config, Diff, TargetSpec};
///
/// let mut alloc = Allocator::new(Config::default()).unwrap();
/// let labels = [("__address__", "10.0.0.1:9100"), ("instance", "a")];
/// let target = TargetSpec::from_labels(labels, "node").unwrap();
/// let moves = alloc
///     .apply(&Diff {
///         add_collectors: vec![CollectorSpec::new("collector-0"), CollectorSpec::new("collector-1")],
///         upsert: vec![target],
///         ..Diff::default()
///     })
///     .unwrap();
/// assert_eq!(moves.len(), 1); // the new target was assigned
/// let owner = alloc.collector_of(target.key).unwrap();
/// assert!(alloc.collector_name(owner).unwrap().starts_with("collector-"));
/// ```
#[derive(Debug, Clone)]
pub struct Allocator {
    pub(crate) config: Config,
    pub(crate) placer: Placer,
    pub(crate) targets: Targets,
    pub(crate) buckets: Buckets,
    pub(crate) collectors: Collectors,
    pub(crate) jobs: Interner,
    pub(crate) nodes: Interner,
    /// Zone names, and node id → zone id (NONE: none; see [`Allocator::set_node_zones`]).
    pub(crate) zones: Interner,
    pub(crate) node_zones: Vec<u32>,
    pub(crate) loads: Loads,
    /// Targets whose collector differs from what their (non-sticky) rule now says, because their
    /// placement or node changed in place; the Go allocator re-places them at the next collector
    /// change, and so do we.
    pub(crate) stale: Set<u32>,
    pub(crate) moves: Vec<Move>,
    pub(crate) totals: MoveTotals,
    /// The assignment digest (see [`Allocator::digest`]), kept current by every move.
    pub(crate) digest: u64,
    /// Collector changes applied so far ([`Allocator::collectors_version`]).
    pub(crate) collector_changes: u64,
}

impl Allocator {
    /// A new, empty allocator. Fails on an invalid configuration.
    pub fn new(config: Config) -> Result<Allocator, Error> {
        config.validate()?;
        Ok(Allocator {
            placer: Placer::new(&config),
            config,
            targets: Targets::default(),
            buckets: Buckets::default(),
            collectors: Collectors::default(),
            jobs: Interner::default(),
            nodes: Interner::default(),
            zones: Interner::default(),
            node_zones: Vec::new(),
            loads: Loads::default(),
            stale: Set::default(),
            moves: Vec::new(),
            totals: MoveTotals::default(),
            digest: 0,
            collector_changes: 0,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// A 64-bit digest of the assignment (every assigned target's key with its collector's
    /// name): equal for equal assignments whatever diffs built them, on every platform, so
    /// replicas can compare one number. XOR over the assigned targets of
    /// `xxh64(key LE ‖ xxh64(collector name, 0) LE, 0)`; unassigned targets add nothing
    /// (compare [`LoadSummary::unassigned`] too when they matter). O(1): kept current by every
    /// move.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// One target's share of the digest, for its current record (0 when unassigned).
    #[inline]
    pub(crate) fn digest_pair(&self, key: u64, collector: u32) -> u64 {
        self.collectors
            .name_hash(collector)
            .map_or(0, |name| crate::digest::pair(key, name))
    }

    /// The digest computed from scratch (restore, tests).
    pub(crate) fn recompute_digest(&self) -> u64 {
        self.targets
            .iter()
            .fold(0, |d, (_, r)| d ^ self.digest_pair(r.key, r.collector))
    }

    /// A number that changes whenever the collector set may have (a diff that adds or removes
    /// collectors): a reader that keeps a copy of the collector table (names, nodes, order) can
    /// tell whether its copy is current without comparing it. Loads change with every diff.
    pub fn collectors_version(&self) -> u64 {
        self.collector_changes
    }

    /// Bytes of heap the allocation state holds (labels are never held), for memory reports.
    pub fn heap_bytes(&self) -> usize {
        self.targets.heap_bytes() + self.buckets.heap_bytes() + self.placer.heap_bytes()
    }
}
