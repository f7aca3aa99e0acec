//! The input document of `allocate` (its stable contract; see the README).

use allocator_core::{BoundedConfig, Config, RingConfig, RingVersion, Strategy};
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Input {
    pub strategy: String,
    #[serde(default)]
    pub fallback_strategy: Option<String>,
    #[serde(default)]
    pub ring: Option<String>,
    #[serde(default)]
    pub partition_count: Option<u32>,
    #[serde(default)]
    pub replication_factor: Option<u32>,
    #[serde(default)]
    pub load_factor: Option<f64>,
    /// least-weighted balances weight instead of target count.
    #[serde(default)]
    pub weighted: bool,
    /// bounded-hashing and rebalancing: slack over the mean weight (default 0.05).
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// bounded-hashing: absolute cap on one collector's weight (default none).
    #[serde(default)]
    pub max_weight: Option<u64>,
    pub collectors: Vec<Collector>,
    pub targets: crate::columns::Targets,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collector {
    pub name: String,
    #[serde(default)]
    pub node: Option<String>,
}

impl Input {
    pub fn config(&self) -> Result<Config, String> {
        let strategy: Strategy = self
            .strategy
            .parse()
            .map_err(|e| format!("\"strategy\": {e}"))?;
        let fallback = match &self.fallback_strategy {
            Some(s) => Some(
                s.parse::<Strategy>()
                    .map_err(|e| format!("\"fallback_strategy\": {e}"))?,
            ),
            None => None,
        };
        let version = match &self.ring {
            Some(r) => r
                .parse::<RingVersion>()
                .map_err(|e| format!("\"ring\": {e}"))?,
            None => RingVersion::default(),
        };
        let defaults = RingConfig::default();
        let config = Config {
            strategy,
            fallback,
            ring: RingConfig {
                version,
                partition_count: self.partition_count.unwrap_or(defaults.partition_count),
                replication_factor: self
                    .replication_factor
                    .unwrap_or(defaults.replication_factor),
                load_factor: self.load_factor.unwrap_or(defaults.load_factor),
            },
            weighted: self.weighted,
            bounded: BoundedConfig {
                epsilon: self.epsilon.unwrap_or(BoundedConfig::default().epsilon),
                max_weight: self.max_weight.unwrap_or(0),
            },
            zone_skew: None,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}
