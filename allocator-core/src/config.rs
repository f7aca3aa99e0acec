//! Allocator configuration: the strategy and the consistent-hashing ring's parameters.

use std::fmt;
use std::str::FromStr;

use crate::error::{ConfigError, Error};

/// Largest accepted partition count (partition ids must fit the packed records).
pub const MAX_PARTITIONS: u64 = 1 << 20;
/// Largest accepted replication factor.
pub const MAX_REPLICATION: u64 = 1 << 12;
/// Most points a consistent-hashing ring may hold (collectors × replication factor): building
/// it takes 16 bytes a point, so this caps that at 128 MiB instead of letting a large factor
/// times many collectors ask for gigabytes at once.
pub const MAX_RING_POINTS: u64 = 1 << 23;

/// The rule that picks a collector for a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Strategy {
    /// The Go allocator's default: a bounded-load consistent-hash ring over target addresses.
    ConsistentHashing,
    /// Sticky; new and orphaned targets go to the least-loaded collector.
    LeastWeighted,
    /// Each target goes to the collector on its node; node-less targets use the fallback.
    PerNode,
    /// Ours: deterministic, weight-aware consistent hashing with bounded loads and even per-job
    /// spread (see the `strategy::bounded` module docs for the design and its sources).
    BoundedHashing,
    /// Ours, for a central allocator: sticky, and after every diff the fewest weight moves that
    /// keep each collector within ⌈(1±ε)·W/n⌉ (see the `strategy::rebalancing` module docs).
    /// Depends on the diff history, deterministically.
    Rebalancing,
}

impl Strategy {
    /// Every strategy, in the order `allocate --strategies` prints them.
    pub const ALL: [Strategy; 5] = [
        Strategy::ConsistentHashing,
        Strategy::LeastWeighted,
        Strategy::PerNode,
        Strategy::BoundedHashing,
        Strategy::Rebalancing,
    ];

    /// The name used in configuration files (`allocation_strategy`).
    pub fn name(self) -> &'static str {
        match self {
            Strategy::ConsistentHashing => "consistent-hashing",
            Strategy::LeastWeighted => "least-weighted",
            Strategy::PerNode => "per-node",
            Strategy::BoundedHashing => "bounded-hashing",
            Strategy::Rebalancing => "rebalancing",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Strategy {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| ConfigError::UnknownName {
                what: "strategy",
                value: s.to_owned(),
                expected:
                    "consistent-hashing, least-weighted, per-node, bounded-hashing, rebalancing",
            })
    }
}

/// Which release of `github.com/buraksezer/consistent` the ring reproduces (DESIGN.md §6.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum RingVersion {
    /// v0.10.0, pinned by the latest Operator release: replica key `name` + `r`,
    /// average load `ceil(float(P / n) * load)` with integer division.
    #[default]
    V0_10_0,
    /// v1.0.0, on the Operator's main branch: replica key `r` + `:` + `name`,
    /// average load `ceil(P / n * load)` in floating point.
    V1_0_0,
}

impl RingVersion {
    /// The version string used in configuration (`v0.10.0`, `v1.0.0`).
    pub fn name(self) -> &'static str {
        match self {
            RingVersion::V0_10_0 => "v0.10.0",
            RingVersion::V1_0_0 => "v1.0.0",
        }
    }
}

impl fmt::Display for RingVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RingVersion {
    type Err = ConfigError;
    fn from_str(s: &str) -> Result<Self, ConfigError> {
        match s {
            "v0.10.0" => Ok(RingVersion::V0_10_0),
            "v1.0.0" => Ok(RingVersion::V1_0_0),
            _ => Err(ConfigError::UnknownName {
                what: "ring version",
                value: s.to_owned(),
                expected: "v0.10.0, v1.0.0",
            }),
        }
    }
}

/// Parameters of the consistent-hashing ring. The defaults are the Operator's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RingConfig {
    /// Which library release to reproduce.
    pub version: RingVersion,
    /// Number of partitions (Go: 1061).
    pub partition_count: u32,
    /// Points per collector on the ring (Go: 5).
    pub replication_factor: u32,
    /// Bound on partitions per collector relative to the average (Go: 1.1).
    pub load_factor: f64,
}

impl RingConfig {
    /// Whether a ring over `collectors` members stays within [`MAX_RING_POINTS`].
    pub fn check_members(&self, collectors: usize) -> Result<(), Error> {
        let points = (collectors as u64).saturating_mul(u64::from(self.replication_factor));
        if points > MAX_RING_POINTS {
            return Err(ConfigError::RingTooLarge {
                collectors: collectors as u64,
                replication_factor: self.replication_factor,
            }
            .into());
        }
        Ok(())
    }
}

impl Default for RingConfig {
    fn default() -> Self {
        RingConfig {
            version: RingVersion::default(),
            partition_count: 1061,
            replication_factor: 5,
            load_factor: 1.1,
        }
    }
}

/// Largest accepted `bounded-hashing` slack ε.
pub const MAX_EPSILON: f64 = 100.0;

/// Parameters of `bounded-hashing` (ε is also `rebalancing`'s band).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BoundedConfig {
    /// Slack over the mean: no collector is filled past ⌈(1+ε)·W/n⌉ weight (W the total weight,
    /// n the collectors). Resolved to millionths, so every platform computes the same bound.
    pub epsilon: f64,
    /// An absolute cap on the weight of one collector (0: none). Targets that fit under it
    /// nowhere stay unassigned.
    pub max_weight: u64,
}

impl Default for BoundedConfig {
    fn default() -> Self {
        BoundedConfig {
            epsilon: 0.05,
            max_weight: 0,
        }
    }
}

impl BoundedConfig {
    /// ε in millionths (the exact integer the bound is computed from).
    pub fn epsilon_ppm(&self) -> u64 {
        ppm(self.epsilon)
    }
}

/// A validated slack in millionths, so every platform computes the same bounds.
pub(crate) fn ppm(slack: f64) -> u64 {
    (slack * 1e6).round() as u64
}

/// Everything an [`crate::Allocator`] is built from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Config {
    /// The strategy.
    pub strategy: Strategy,
    /// For `per-node` only: how targets without a node are placed (`None`: they stay unassigned).
    pub fallback: Option<Strategy>,
    /// The consistent-hashing ring (used by `consistent-hashing` and as a fallback).
    pub ring: RingConfig,
    /// `least-weighted` balances target weight instead of target count.
    pub weighted: bool,
    /// Parameters of `bounded-hashing`; `rebalancing` takes its ε.
    pub bounded: BoundedConfig,
    /// `rebalancing` only: keep targets in their zone (the zone of their node; collectors'
    /// zones are those of their nodes, see [`crate::Allocator::set_node_zones`]) while every
    /// collector stays within `⌈(1+s)·W/n⌉` and `⌊(1−s)·W/n⌋` weight, `s` this maximum skew
    /// (or ε, whichever is wider). `None`: zones are ignored.
    pub zone_skew: Option<f64>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            strategy: Strategy::ConsistentHashing,
            fallback: None,
            ring: RingConfig::default(),
            weighted: false,
            bounded: BoundedConfig::default(),
            zone_skew: None,
        }
    }
}

impl Config {
    /// A default configuration with the given strategy.
    pub fn with_strategy(strategy: Strategy) -> Self {
        Config {
            strategy,
            ..Config::default()
        }
    }

    /// Check every field; the allocator only ever holds a validated configuration.
    pub fn validate(&self) -> Result<(), Error> {
        let ring = &self.ring;
        if ring.partition_count == 0 {
            return Err(ConfigError::ZeroPartitions.into());
        }
        if u64::from(ring.partition_count) > MAX_PARTITIONS {
            return Err(ConfigError::TooManyPartitions(ring.partition_count.into()).into());
        }
        if ring.replication_factor == 0 {
            return Err(ConfigError::ZeroReplicationFactor.into());
        }
        if u64::from(ring.replication_factor) > MAX_REPLICATION {
            return Err(ConfigError::TooManyReplicas(ring.replication_factor.into()).into());
        }
        if !(ring.load_factor.is_finite() && ring.load_factor >= 1.0) {
            return Err(ConfigError::LoadFactor(ring.load_factor).into());
        }
        let eps = self.bounded.epsilon;
        if !(eps.is_finite() && (0.0..=MAX_EPSILON).contains(&eps)) {
            return Err(ConfigError::Epsilon(eps).into());
        }
        if let Some(skew) = self.zone_skew {
            if !(skew.is_finite() && (0.0..=MAX_EPSILON).contains(&skew)) {
                return Err(ConfigError::ZoneSkew(skew).into());
            }
            if self.strategy != Strategy::Rebalancing {
                return Err(ConfigError::ZonesUnsupported(self.strategy).into());
            }
        }
        // The only strategy that reads it: elsewhere a cap would be silently ignored.
        if self.strategy != Strategy::BoundedHashing && self.bounded.max_weight != 0 {
            return Err(ConfigError::MaxWeightUnsupported(self.strategy).into());
        }
        match (self.strategy, self.fallback) {
            (_, None)
            | (Strategy::PerNode, Some(Strategy::ConsistentHashing))
            | (Strategy::PerNode, Some(Strategy::LeastWeighted)) => Ok(()),
            (Strategy::PerNode, Some(other)) => Err(ConfigError::PerNodeFallback(other).into()),
            (other, Some(_)) => Err(ConfigError::FallbackWithoutPerNode(other).into()),
        }
    }
}
