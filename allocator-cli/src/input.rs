//! The input document of `allocate` (its stable contract; see the README).

use std::fmt;

use allocator_core::{BoundedConfig, Config, RingConfig, RingVersion, Strategy};
use serde::de::{Deserializer, MapAccess, Visitor};
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
    /// bounded-hashing: slack over the mean weight (default 0.05).
    #[serde(default)]
    pub epsilon: Option<f64>,
    /// bounded-hashing: absolute cap on one collector's weight (default none).
    #[serde(default)]
    pub max_weight: Option<u64>,
    pub collectors: Vec<Collector>,
    pub targets: Vec<Target>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Collector {
    pub name: String,
    #[serde(default)]
    pub node: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Target {
    pub job: String,
    pub labels: Labels,
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// Labels in document order, duplicates kept so the core can name them (a map would silently
/// keep the last value).
pub struct Labels(pub Vec<(String, String)>);

impl<'de> Deserialize<'de> for Labels {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Labels;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of label names to string values")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Labels, A::Error> {
                let mut out = Vec::with_capacity(map.size_hint().unwrap_or(8));
                while let Some((k, v)) = map.next_entry::<String, String>()? {
                    out.push((k, v));
                }
                Ok(Labels(out))
            }
        }
        d.deserialize_map(V)
    }
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
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}
