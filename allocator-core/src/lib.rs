//! # allocator-core
//!
//! The allocation engine behind our Target Allocator: it decides which collector scrapes which
//! Prometheus target. It does no I/O and keeps no global state: callers feed it [`Diff`]s (targets
//! upserted or removed, collectors added or removed) and get back the [`Move`]s each diff caused.
//!
//! In compatibility mode it reproduces the OpenTelemetry Operator's Go Target Allocator bit for
//! bit: the same target identities ([`TargetKey`], DESIGN.md §6.2) and, for `consistent-hashing`,
//! the same collector for every target with either ring version the Operator ships (§6.3).
//!
//! Entry points: [`Allocator`] (state, diffs, queries), [`TargetBatch`] and [`BatchDiff`] (bulk
//! input in columns), [`LabelSets`] with [`KeyHasher::hash_label_sets`] (discovered label sets
//! in columns, hashed in bulk; [`KeyHasher::hash_label_iters`] for label sets in an encoding of
//! the caller's, decoded as they are hashed; [`KeyHasher::hash_label_sets_on`] and
//! [`KeyHasher::hash_label_iters_on`] for either on several threads), [`TargetKey::from_labels`] and
//! [`LabelBuilder`] (identity), [`PlacementHash::of_address`] (placement), [`node_of`] (node).
//!
//! ## Determinism
//! Decisions never read hash-map order, process-seeded hashes or timing. `bounded-hashing`
//! assignments are a function of the current targets and collectors. `consistent-hashing` and
//! `per-node` (without a `least-weighted` fallback) are too, except that, as in the Go allocator,
//! a target changed in place (new address or node) keeps its collector until the next collector
//! change re-places it ([`Diff`]); after that, and on any fresh allocation, the assignment is
//! the function of the state. The sticky
//! `least-weighted` rule depends on history by nature, but visits targets in key order and breaks
//! ties by collector name, so the same diffs give the same result everywhere. So does the sticky
//! `rebalancing` rule, whose every choice is ordered by weight, then key or collector name.
//! [`Allocator::digest`] lets replicas check that they agree.

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod allocator;
mod batch;
mod collectors;
mod config;
mod diff;
mod digest;
mod error;
mod hashing;
mod ids;
mod intern;
mod label_sets;
mod labels;
mod loads;
mod ring;
pub mod snapshot;
mod strategy;
mod targets;

pub use allocator::{
    Allocator, CollectorStats, Detail, Explanation, LoadSummary, TargetInfo, Unassigned,
};
pub use batch::{BatchDiff, NameIndex, TargetBatch, TargetColumns, NO_NODE};
pub use config::{
    BoundedConfig, Config, RingConfig, RingVersion, Strategy, MAX_EPSILON, MAX_PARTITIONS,
    MAX_REPLICATION, MAX_RING_POINTS,
};
pub use diff::{CollectorSpec, Diff, Move, MoveKind, MoveTotals, TargetSpec};
pub use error::{ConfigError, Error, SnapshotError};
pub use hashing::{HashedLabels, KeyHasher};
pub use ids::{CollectorId, JobId, NodeId, PlacementHash, TargetKey};
pub use label_sets::{HashedSets, LabelSets, MIN_LABEL_SETS_PER_THREAD};
pub use labels::{node_of, LabelBuilder};
