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

/// `consistent-hashing` (the Go allocator's default).
pub const TA_STRATEGY_CONSISTENT_HASHING: u32 = 0;
/// `least-weighted`.
pub const TA_STRATEGY_LEAST_WEIGHTED: u32 = 1;
/// `per-node`.
pub const TA_STRATEGY_PER_NODE: u32 = 2;
/// `bounded-hashing` (ours: weight-aware bounded loads, even jobs, a function of the state).
pub const TA_STRATEGY_BOUNDED_HASHING: u32 = 3;
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
    /// bounded-hashing: slack ε over the mean weight (default 0.05; 0 to 100).
    pub epsilon: f64,
    /// bounded-hashing: absolute cap on one collector's weight (0: none).
    pub max_weight: u64,
}

fn strategy(code: u32, field: &str) -> Result<Strategy, FfiError> {
    match code {
        TA_STRATEGY_CONSISTENT_HASHING => Ok(Strategy::ConsistentHashing),
        TA_STRATEGY_LEAST_WEIGHTED => Ok(Strategy::LeastWeighted),
        TA_STRATEGY_PER_NODE => Ok(Strategy::PerNode),
        TA_STRATEGY_BOUNDED_HASHING => Ok(Strategy::BoundedHashing),
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
        };
        config.validate()?;
        Ok(config)
    }
}

/// A target with its key computed by the caller (or by `ta_target_key`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ta_target {
    /// Identity (the Go allocator's item hash).
    pub key: u64,
    /// Placement hash: `ta_placement_hash` of the raw `__address__`.
    pub placement: u64,
    /// Job name.
    pub job: ta_str,
    /// Node name; length 0 for none.
    pub node: ta_str,
    /// Weight (1 unless the caller knows better, e.g. its series count).
    pub weight: u32,
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

/// A change of one target's collector. `TA_NO_COLLECTOR` on a side means none
/// (a new or removed target, or one that no collector can take).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ta_move {
    /// The target.
    pub key: u64,
    /// Collector id before, or `TA_NO_COLLECTOR`.
    pub from: u32,
    /// Collector id after, or `TA_NO_COLLECTOR`.
    pub to: u32,
}

/// Load of one collector (from `ta_get_collector_stats`). Its name: `ta_collector_name(id)`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ta_collector_stats {
    /// Collector id (valid until the collector is removed and one more change is applied).
    pub id: u32,
    /// Targets assigned to it.
    pub targets: u32,
    /// Sum of their weights.
    pub weight: u64,
}

/// Totals, balance and move counters (from `ta_get_summary`).
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
