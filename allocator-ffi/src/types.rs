//! The plain C structs of the API.

use allocator_core::{BoundedConfig, Config, RingConfig, RingVersion, Strategy};

use crate::error::{ta_result, FfiError};

/// A UTF-8 string: pointer and length in bytes, not NUL-terminated. `ptr` may be NULL when
/// `len` is 0. The library reads it during the call only.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_str {
    /// First byte.
    pub ptr: *const u8,
    /// Length in bytes.
    pub len: usize,
}

impl ta_str {
    /// The empty string.
    pub const EMPTY: ta_str = ta_str {
        ptr: std::ptr::null(),
        len: 0,
    };
}

/// `consistent-hashing` (the Go allocator's default).
pub const TA_STRATEGY_CONSISTENT_HASHING: u32 = 0;
/// `least-weighted`.
pub const TA_STRATEGY_LEAST_WEIGHTED: u32 = 1;
/// `per-node`.
pub const TA_STRATEGY_PER_NODE: u32 = 2;
/// `bounded-hashing` (ours: weight-aware bounded loads, even jobs, a function of the state).
pub const TA_STRATEGY_BOUNDED_HASHING: u32 = 3;
/// `rebalancing` (ours: sticky, the fewest weight moves that keep every collector within
/// ⌈(1±ε)·W/n⌉; depends on the diff history, deterministically; `max_weight` must be 0).
pub const TA_STRATEGY_REBALANCING: u32 = 4;
/// No fallback strategy (`ta_config.fallback`).
pub const TA_STRATEGY_NONE: u32 = 0xFFFF_FFFF;
/// Ring of `github.com/buraksezer/consistent` v0.10.0 (latest Operator release).
pub const TA_RING_V0_10_0: u32 = 0;
/// Ring of `github.com/buraksezer/consistent` v1.0.0 (Operator main branch).
pub const TA_RING_V1_0_0: u32 = 1;
/// "No collector": an unknown or unassigned target, or the side of a move with no collector.
pub const TA_NO_COLLECTOR: u32 = 0xFFFF_FFFF;

/// Allocator configuration. Fill it with `ta_config_default`, then change fields.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_config {
    /// One of `TA_STRATEGY_*` (not `TA_STRATEGY_NONE`).
    pub strategy: u32,
    /// For per-node only: `TA_STRATEGY_CONSISTENT_HASHING`, `TA_STRATEGY_LEAST_WEIGHTED` or
    /// `TA_STRATEGY_NONE`.
    pub fallback: u32,
    /// `TA_RING_V0_10_0` or `TA_RING_V1_0_0`.
    pub ring_version: u32,
    /// Ring partitions (Go: 1061).
    pub partition_count: u32,
    /// Ring points per collector (Go: 5).
    pub replication_factor: u32,
    /// Bound on partitions per collector relative to the average (Go: 1.1).
    pub load_factor: f64,
    /// least-weighted balances weight instead of count (0 or 1).
    pub weighted: u8,
    /// bounded-hashing and rebalancing: slack ε over the mean weight (default 0.05; 0 to 100).
    pub epsilon: f64,
    /// bounded-hashing: absolute cap on one collector's weight (0: none; any other value with
    /// another strategy is `TA_INVALID_CONFIG`).
    pub max_weight: u64,
    /// rebalancing: keep targets in their node's zone (0 or 1; see `ta_set_node_zones`).
    pub zones: u8,
    /// With `zones`: how far (as a fraction of the mean weight, 0 to 100) a collector may go
    /// over or under the mean to keep targets in their zone (ε applies when wider).
    pub zone_skew: f64,
}

fn strategy(code: u32, field: &str) -> Result<Strategy, FfiError> {
    match code {
        TA_STRATEGY_CONSISTENT_HASHING => Ok(Strategy::ConsistentHashing),
        TA_STRATEGY_LEAST_WEIGHTED => Ok(Strategy::LeastWeighted),
        TA_STRATEGY_PER_NODE => Ok(Strategy::PerNode),
        TA_STRATEGY_BOUNDED_HASHING => Ok(Strategy::BoundedHashing),
        TA_STRATEGY_REBALANCING => Ok(Strategy::Rebalancing),
        other => Err(FfiError::new(
            ta_result::TA_INVALID_CONFIG,
            format!("ta_config.{field}: unknown strategy code {other}"),
        )),
    }
}

impl ta_config {
    pub(crate) fn from_core(c: &Config) -> ta_config {
        let code = |s: Strategy| match s {
            Strategy::LeastWeighted => TA_STRATEGY_LEAST_WEIGHTED,
            Strategy::PerNode => TA_STRATEGY_PER_NODE,
            Strategy::BoundedHashing => TA_STRATEGY_BOUNDED_HASHING,
            Strategy::Rebalancing => TA_STRATEGY_REBALANCING,
            _ => TA_STRATEGY_CONSISTENT_HASHING,
        };
        ta_config {
            strategy: code(c.strategy),
            fallback: c.fallback.map_or(TA_STRATEGY_NONE, code),
            ring_version: match c.ring.version {
                RingVersion::V0_10_0 => TA_RING_V0_10_0,
                RingVersion::V1_0_0 => TA_RING_V1_0_0,
            },
            partition_count: c.ring.partition_count,
            replication_factor: c.ring.replication_factor,
            load_factor: c.ring.load_factor,
            weighted: u8::from(c.weighted),
            epsilon: c.bounded.epsilon,
            max_weight: c.bounded.max_weight,
            zones: u8::from(c.zone_skew.is_some()),
            zone_skew: c.zone_skew.unwrap_or(0.0),
        }
    }

    pub(crate) fn to_core(self) -> Result<Config, FfiError> {
        let fallback = match self.fallback {
            TA_STRATEGY_NONE => None,
            code => Some(strategy(code, "fallback")?),
        };
        let version = match self.ring_version {
            TA_RING_V0_10_0 => RingVersion::V0_10_0,
            TA_RING_V1_0_0 => RingVersion::V1_0_0,
            other => {
                return Err(FfiError::new(
                    ta_result::TA_INVALID_CONFIG,
                    format!("ta_config.ring_version: unknown code {other}"),
                ))
            }
        };
        let weighted = match self.weighted {
            0 => false,
            1 => true,
            other => {
                return Err(FfiError::new(
                    ta_result::TA_INVALID_CONFIG,
                    format!("ta_config.weighted must be 0 or 1, got {other}"),
                ))
            }
        };
        let config = Config {
            strategy: strategy(self.strategy, "strategy")?,
            fallback,
            ring: RingConfig {
                version,
                partition_count: self.partition_count,
                replication_factor: self.replication_factor,
                load_factor: self.load_factor,
            },
            weighted,
            bounded: BoundedConfig {
                epsilon: self.epsilon,
                max_weight: self.max_weight,
            },
            zone_skew: match self.zones {
                0 => None,
                1 => Some(self.zone_skew),
                other => {
                    return Err(FfiError::new(
                        ta_result::TA_INVALID_CONFIG,
                        format!("ta_config.zones must be 0 or 1, got {other}"),
                    ))
                }
            },
        };
        config.validate()?;
        Ok(config)
    }
}

/// In `ta_target_batch.nodes`: this target has no node.
pub const TA_NO_NODE: u32 = 0xFFFF_FFFF;

/// Targets in columns: row `i` is one target. Jobs and nodes are indexes into the batch's own
/// name tables, so each distinct name crosses the boundary once per batch. Every column has
/// `len` entries; `weights` and `nodes` may be NULL (every weight 1; no target has a node).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_target_batch {
    /// Number of targets.
    pub len: usize,
    /// Identities (the Go allocator's item hash). A key repeated in one batch is one target
    /// with its last row's fields.
    pub keys: *const u64,
    /// Placement hashes: `ta_placement_hash` of each raw `__address__`.
    pub placements: *const u64,
    /// Weights, or NULL for all 1. A weight of 0 is kept: the target counts as a target but
    /// adds no weight (the Go package's zero value means 1 instead).
    pub weights: *const u32,
    /// Index into `job_names` of each target.
    pub jobs: *const u32,
    /// The batch's job names.
    pub job_names: *const ta_str,
    /// Entries of `job_names`.
    pub n_job_names: usize,
    /// Index into `node_names` (or `TA_NO_NODE`) of each target, or NULL for no nodes.
    pub nodes: *const u32,
    /// The batch's node names.
    pub node_names: *const ta_str,
    /// Entries of `node_names`.
    pub n_node_names: usize,
}

/// Targets given as discovered label sets, hashed by the library (key from the sorted labels
/// and the job, placement from `__address__`, node from the Kubernetes labels).
///
/// Label set `i` is `data[ends[i-1] .. ends[i]]` (from 0 for the first) in the encoding of
/// Prometheus' default `labels.Labels` (stringlabels): for each label its name then its value,
/// each preceded by its length in one byte (0 to 254) or, for longer strings, the byte 255 and
/// the length in 3 bytes little-endian. A Go caller hands over its label sets as they are.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_label_batch {
    /// Number of label sets.
    pub len: usize,
    /// The encoded label sets, back to back.
    pub data: *const u8,
    /// Bytes in `data`: the end of the last label set (0 when `len` is 0).
    pub data_len: usize,
    /// End offset in `data` of each label set (`len` entries, non-decreasing).
    pub ends: *const u64,
    /// Index into `job_names` of each label set.
    pub jobs: *const u32,
    /// The batch's job names.
    pub job_names: *const ta_str,
    /// Entries of `job_names`.
    pub n_job_names: usize,
    /// Weights, or NULL for all 1. A weight of 0 is kept: the target counts as a target but
    /// adds no weight (the Go package's zero value means 1 instead).
    pub weights: *const u32,
    /// If not NULL, receives the `len` keys the library computed (written only on success).
    pub keys_out: *mut u64,
    /// Threads that hash the label sets, the calling one included: 0 or 1 (a zeroed batch)
    /// hash them on the calling thread; more (at most the cores the process may run on) cut a
    /// batch of at least 8,192 sets into runs of at least 4,096, one per thread, started and
    /// joined within the call (~10–30 µs each). The keys, errors and moves are the same for
    /// every value; only the time differs. The first such call on a thread gives that thread a
    /// handle of the Rust runtime (48 bytes, freed when the thread exits; on the main thread,
    /// still held when valgrind checks for leaks at exit, which it reports as "possibly lost":
    /// call from another thread or suppress it under valgrind).
    pub threads: u32,
}

/// A collector: its name (the id it presents, e.g. the pod name) and node (length 0 for none).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_collector {
    /// Name; must not be empty.
    pub name: ta_str,
    /// Node; length 0 for none.
    pub node: ta_str,
}

/// One row of a node → zone table (`ta_set_node_zones`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_node_zone {
    /// Node name; must not be empty.
    pub node: ta_str,
    /// Its zone; length 0 for none.
    pub zone: ta_str,
}

/// One change, applied atomically by `ta_apply`: remove targets, remove then add collectors,
/// upsert targets. Arrays may be NULL when their length is 0; a zeroed `ta_diff` changes nothing.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_diff {
    /// Targets added or changed in place (same key), in columns.
    pub upsert: ta_target_batch,
    /// More targets to upsert, as label sets (`len` 0 for none).
    pub upsert_labels: ta_label_batch,
    /// Keys of removed targets; each must exist.
    pub remove: *const u64,
    /// Entries of `remove`.
    pub n_remove: usize,
    /// Collectors added.
    pub add_collectors: *const ta_collector,
    /// Entries of `add_collectors`.
    pub n_add_collectors: usize,
    /// Names of collectors removed; each must exist.
    pub remove_collectors: *const ta_str,
    /// Entries of `remove_collectors`.
    pub n_remove_collectors: usize,
}

/// A change of one target's collector, in a `ta_view`. `from` and `to` index the view's
/// `collectors` table; `TA_NO_COLLECTOR` on a side means none (a new or removed target, or one
/// that no collector can take).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ta_move {
    /// The target.
    pub key: u64,
    /// Index of the collector before, or `TA_NO_COLLECTOR`.
    pub from: u32,
    /// Index of the collector after, or `TA_NO_COLLECTOR`.
    pub to: u32,
}

/// A collector as a `ta_view` shows it. The strings live in the view.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_collector_info {
    /// Name.
    pub name: ta_str,
    /// Node (length 0 for none).
    pub node: ta_str,
    /// Targets assigned to it (0 for a collector this change removed).
    pub targets: u32,
    /// Sum of their weights.
    pub weight: u64,
}

/// Totals, balance and move counters (in a `ta_view`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ta_summary {
    /// Collectors.
    pub collectors: u64,
    /// Targets, assigned or not.
    pub targets: u64,
    /// Targets with no collector.
    pub unassigned: u64,
    /// Most targets on one collector.
    pub max_targets: u32,
    /// Fewest targets on one collector.
    pub min_targets: u32,
    /// Mean targets per collector.
    pub mean_targets: f64,
    /// Most weight on one collector.
    pub max_weight: u64,
    /// Least weight on one collector.
    pub min_weight: u64,
    /// Mean weight per collector.
    pub mean_weight: f64,
    /// Moves since creation: targets that got a collector.
    pub moves_assigned: u64,
    /// Moves since creation: targets that lost their collector.
    pub moves_unassigned: u64,
    /// Moves since creation: targets that changed collector.
    pub moves_reassigned: u64,
}

/// What a `ta_view` holds, from `ta_view_get`. Pointers stay valid until the view is filled
/// again or freed.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_view_data {
    /// The moves of the change that filled the view (none after `ta_read`).
    pub moves: *const ta_move,
    /// Entries of `moves`.
    pub n_moves: usize,
    /// After a change: the collectors its moves reference. After `ta_read`: every collector,
    /// sorted by name.
    pub collectors: *const ta_collector_info,
    /// Entries of `collectors`.
    pub n_collectors: usize,
    /// Totals after the change, or at the read.
    pub summary: ta_summary,
}
