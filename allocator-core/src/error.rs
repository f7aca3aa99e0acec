//! The one error type of the core. Every variant names the input that caused it.

use crate::ids::TargetKey;

/// Why a configuration was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The ring needs at least one partition.
    #[error("partition_count must be at least 1, got 0")]
    ZeroPartitions,
    /// Partition ids are stored in 32 bits.
    #[error("partition_count {0} is too large (at most {max})", max = crate::config::MAX_PARTITIONS)]
    TooManyPartitions(u64),
    /// Every member needs at least one point on the ring.
    #[error("replication_factor must be at least 1, got 0")]
    ZeroReplicationFactor,
    /// Guards against a ring too large to build in reasonable time.
    #[error("replication_factor {0} is too large (at most {max})", max = crate::config::MAX_REPLICATION)]
    TooManyReplicas(u64),
    /// The ring would hold more than [`crate::config::MAX_RING_POINTS`] points.
    #[error(
        "{collectors} collectors × replication_factor {replication_factor} is more than {max} ring points: lower the replication factor",
        max = crate::config::MAX_RING_POINTS
    )]
    RingTooLarge {
        /// Collectors on the ring.
        collectors: u64,
        /// Points per collector.
        replication_factor: u32,
    },
    /// A load factor below 1 cannot place every partition.
    #[error("load_factor must be a finite number >= 1.0, got {0}")]
    LoadFactor(f64),
    /// Only `per-node` takes a fallback strategy.
    #[error("a fallback strategy is only allowed with per-node, not with {0}")]
    FallbackWithoutPerNode(crate::config::Strategy),
    /// `per-node` falls back to `consistent-hashing` or `least-weighted` only.
    #[error("per-node can fall back to consistent-hashing or least-weighted, not to {0}")]
    PerNodeFallback(crate::config::Strategy),
    /// The slack of `bounded-hashing` and `rebalancing` must be a finite number in range (it is
    /// checked whatever the strategy, as every option is).
    #[error("epsilon (the balance slack of bounded-hashing and rebalancing) must be a finite number in [0, {max}], got {0}", max = crate::config::MAX_EPSILON)]
    Epsilon(f64),
    /// The zone skew must be a finite number in range.
    #[error("zone_skew must be a finite number in [0, {max}], got {0}", max = crate::config::MAX_EPSILON)]
    ZoneSkew(f64),
    /// Zone awareness is a `rebalancing` feature.
    #[error("zone_skew is only supported by rebalancing, not by {0}")]
    ZonesUnsupported(crate::config::Strategy),
    /// `bounded-hashing`'s probe ring gives every collector at least 128 points; past
    /// [`crate::config::MAX_RING_POINTS`] in all it would take memory out of proportion.
    #[error(
        "{0} collectors are more than bounded-hashing's probe ring holds ({max} collectors: 128 points each, {points} points in all)",
        max = crate::config::MAX_RING_POINTS / 128,
        points = crate::config::MAX_RING_POINTS
    )]
    ProbeRingTooLarge(u64),
    /// The absolute weight cap is a `bounded-hashing` parameter only.
    #[error("max_weight is only supported by bounded-hashing, not by {0} (set it to 0)")]
    MaxWeightUnsupported(crate::config::Strategy),
    /// A strategy or ring version name that is not known.
    #[error("unknown {what} {value:?}; expected one of: {expected}")]
    UnknownName {
        /// What kind of name was parsed ("strategy", "ring version").
        what: &'static str,
        /// The text given.
        value: String,
        /// The accepted spellings.
        expected: &'static str,
    },
}

/// Why snapshot bytes were refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SnapshotError {
    /// Fewer bytes than the header says.
    #[error("snapshot is truncated: expected {expected} bytes, got {got}")]
    Truncated {
        /// Bytes the header announces.
        expected: u64,
        /// Bytes given.
        got: u64,
    },
    /// The bytes do not start with the snapshot magic.
    #[error("bytes are not an allocator snapshot (bad magic)")]
    NotASnapshot,
    /// Written by a format version this build does not read.
    #[error(
        "snapshot format version {found} is not supported (this build reads version {supported})"
    )]
    Version {
        /// Version in the header.
        found: u32,
        /// Version this build reads.
        supported: u32,
    },
    /// The payload does not match its checksum.
    #[error("snapshot checksum mismatch: the bytes are corrupted")]
    Checksum,
    /// The payload is well-formed bytes but not a valid state.
    #[error("snapshot is invalid: {0}")]
    Invalid(String),
}

/// Errors from building an allocator or applying a diff.
///
/// A diff that returns an error has changed nothing: validation happens before any state is touched.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is invalid.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A collector name must not be empty.
    #[error("collector name is empty")]
    EmptyCollectorName,
    /// A collector was named twice in one change (added or removed twice), or added while it
    /// already exists.
    #[error("duplicate collector {0:?} (named twice in one change, or added while it exists)")]
    DuplicateCollector(String),
    /// A collector that does not exist was named.
    #[error("unknown collector {0:?}")]
    UnknownCollector(String),
    /// A target that does not exist was removed.
    #[error("unknown target {0}")]
    UnknownTarget(TargetKey),
    /// One diff both upserts and removes the same target.
    #[error("target {0} is both upserted and removed in one diff")]
    ConflictingTarget(TargetKey),
    /// A target's label set has no `__address__`, so it cannot be placed.
    #[error("target {0} has no __address__ label")]
    MissingAddress(TargetKey),
    /// The node label of a target is not valid UTF-8 (the allocator keeps node names).
    #[error("target {0} has a node name that is not valid UTF-8")]
    InvalidNodeName(TargetKey),
    /// A label set has the same label name twice.
    #[error("label {0:?} appears more than once in one label set")]
    DuplicateLabel(String),
    /// The consistent-hashing ring could not place every partition
    /// (the Go library panics here: "not enough room to distribute partitions").
    #[error(
        "consistent-hashing ring cannot place {partitions} partitions on {collectors} collectors \
         with load factor {load_factor}: raise the load factor or the partition count's ratio to collectors"
    )]
    RingCapacity {
        /// Partitions to place.
        partitions: u32,
        /// Collectors on the ring.
        collectors: usize,
        /// Configured load factor.
        load_factor: f64,
    },
    /// Snapshot bytes were refused.
    #[error(transparent)]
    Snapshot(#[from] SnapshotError),
    /// More collectors, jobs or nodes than 32-bit ids can hold.
    #[error("too many {0}: ids are 32-bit")]
    Capacity(&'static str),
    /// A node → zone table ([`crate::Allocator::set_node_zones`]) names an empty node or a node
    /// twice.
    #[error("invalid node zone table: {0}")]
    InvalidZones(String),
    /// A [`crate::TargetBatch`]'s columns disagree in length, or an index names no table entry.
    #[error("invalid target batch: {0}")]
    InvalidBatch(String),
}
