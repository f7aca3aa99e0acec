//! The input document of `allocate` (its stable contract; see the README).

use std::fmt;

use allocator_core::{BoundedConfig, Config, RingConfig, RingVersion, Strategy};
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

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
    /// rebalancing: keep targets in their node's zone within this skew (default: zones ignored).
    #[serde(default)]
    pub zone_skew: Option<f64>,
    /// The node → zone table zone-aware rebalancing reads (needs `zone_skew`).
    #[serde(default)]
    pub node_zones: Option<NodeZones>,
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
            zone_skew: self.zone_skew,
        };
        config.validate().map_err(|e| e.to_string())?;
        if self.node_zones.is_some() && self.zone_skew.is_none() {
            // Without a skew the core keeps the table and ignores it: a table given for
            // nothing is a mistake to name, not to pass over.
            return Err("\"node_zones\" needs \"zone_skew\" (zone-aware rebalancing)".into());
        }
        Ok(config)
    }
}

/// `{"node": "zone" | null, ...}` in document order, a repeated node kept (JSON objects may
/// repeat a key, and a map would keep only one of them silently; the core names the repeat).
/// A null zone is no zone.
pub struct NodeZones(pub Vec<(String, Option<String>)>);

impl NodeZones {
    pub fn rows(&self) -> Vec<(&str, &str)> {
        self.0
            .iter()
            .map(|(n, z)| (n.as_str(), z.as_deref().unwrap_or("")))
            .collect()
    }
}

impl<'de> Deserialize<'de> for NodeZones {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Rows;
        impl<'de> Visitor<'de> for Rows {
            type Value = NodeZones;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of node names to zone names (or null)")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NodeZones, A::Error> {
                let mut rows = Vec::new();
                while let Some(row) = map.next_entry()? {
                    rows.push(row);
                }
                Ok(NodeZones(rows))
            }
        }
        d.deserialize_map(Rows)
    }
}
