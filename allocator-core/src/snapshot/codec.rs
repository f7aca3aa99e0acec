//! The byte format: header, checksum and rkyv payload, encoded and validated.

use rkyv::rancor;
use xxhash_rust::xxh64::xxh64;

use crate::config::{BoundedConfig, Config, RingConfig, RingVersion, Strategy};
use crate::error::{Error, SnapshotError};

pub(crate) const MAGIC: &[u8; 8] = b"TALLOCSN";
/// Bumped whenever the payload layout changes; older versions are refused with a clear error.
pub const FORMAT_VERSION: u32 = 3;
const HEADER: usize = 32;

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct Payload {
    pub strategy: u8,
    /// 0xFF: no fallback.
    pub fallback: u8,
    pub ring_version: u8,
    pub partition_count: u32,
    pub replication_factor: u32,
    pub load_factor: f64,
    pub weighted: bool,
    /// `bounded-hashing` ε in millionths.
    pub epsilon_ppm: u64,
    pub max_weight: u64,
    /// `rebalancing`'s zone skew in millionths; `u64::MAX`: zones off.
    pub zone_skew_ppm: u64,
    pub jobs: Vec<String>,
    pub nodes: Vec<String>,
    pub zones: Vec<String>,
    /// The node → zone table, by index into `nodes` and `zones`, in node order.
    pub node_zones: Vec<NodeZoneRec>,
    pub collectors: Vec<CollectorRec>,
    pub targets: Vec<TargetRec>,
    /// Moves assigned, unassigned, reassigned so far.
    pub totals: [u64; 3],
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, PartialEq)]
pub(crate) struct CollectorRec {
    pub name: String,
    /// Node index or u32::MAX.
    pub node: u32,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq)]
pub(crate) struct NodeZoneRec {
    pub node: u32,
    pub zone: u32,
}

#[derive(rkyv::Archive, rkyv::Serialize, rkyv::Deserialize, Debug, Clone, Copy, PartialEq)]
pub(crate) struct TargetRec {
    pub key: u64,
    pub placement: u64,
    pub job: u32,
    pub node: u32,
    pub weight: u32,
    /// Index into `collectors` (sorted by name), or u32::MAX.
    pub collector: u32,
}

fn strategy_code(s: Strategy) -> u8 {
    match s {
        Strategy::ConsistentHashing => 0,
        Strategy::LeastWeighted => 1,
        Strategy::PerNode => 2,
        Strategy::BoundedHashing => 3,
        Strategy::Rebalancing => 4,
    }
}

fn strategy_from(code: u8) -> Result<Strategy, SnapshotError> {
    Strategy::ALL
        .into_iter()
        .find(|s| strategy_code(*s) == code)
        .ok_or(SnapshotError::Invalid(format!(
            "unknown strategy code {code}"
        )))
}

impl Payload {
    pub(crate) fn config_parts(config: &Config) -> (u8, u8, u8) {
        (
            strategy_code(config.strategy),
            config.fallback.map_or(0xFF, strategy_code),
            match config.ring.version {
                RingVersion::V0_10_0 => 0,
                RingVersion::V1_0_0 => 1,
            },
        )
    }

    pub(crate) fn config(&self) -> Result<Config, Error> {
        let fallback = match self.fallback {
            0xFF => None,
            code => Some(strategy_from(code)?),
        };
        let version = match self.ring_version {
            0 => RingVersion::V0_10_0,
            1 => RingVersion::V1_0_0,
            v => {
                return Err(SnapshotError::Invalid(format!("unknown ring version code {v}")).into())
            }
        };
        let config = Config {
            strategy: strategy_from(self.strategy)?,
            fallback,
            ring: RingConfig {
                version,
                partition_count: self.partition_count,
                replication_factor: self.replication_factor,
                load_factor: self.load_factor,
            },
            weighted: self.weighted,
            bounded: BoundedConfig {
                // Exact: ppm values are whole numbers far below 2^53.
                epsilon: self.epsilon_ppm as f64 / 1e6,
                max_weight: self.max_weight,
            },
            zone_skew: match self.zone_skew_ppm {
                u64::MAX => None,
                ppm => Some(ppm as f64 / 1e6),
            },
        };
        // A configuration the checks refuse came from damaged or forged bytes: a snapshot error.
        config
            .validate()
            .map_err(|e| SnapshotError::Invalid(format!("stored configuration: {e}")))?;
        Ok(config)
    }
}

/// Header and payload, as bytes.
pub(crate) fn encode(payload: &Payload) -> Vec<u8> {
    let archive = rkyv::to_bytes::<rancor::Error>(payload)
        .expect("serializing plain data into memory cannot fail");
    let mut out = Vec::with_capacity(HEADER + archive.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(archive.len() as u64).to_le_bytes());
    out.extend_from_slice(&xxh64(&archive, 0).to_le_bytes());
    out.extend_from_slice(&archive);
    out
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().expect("4 bytes"))
}

fn le_u64(b: &[u8]) -> u64 {
    u64::from_le_bytes(b.try_into().expect("8 bytes"))
}

/// Check the header and checksum, validate and deserialize the archive.
pub(crate) fn decode(bytes: &[u8]) -> Result<Payload, SnapshotError> {
    if bytes.len() < HEADER {
        return Err(SnapshotError::Truncated {
            expected: HEADER as u64,
            got: bytes.len() as u64,
        });
    }
    if &bytes[..8] != MAGIC {
        return Err(SnapshotError::NotASnapshot);
    }
    let version = le_u32(&bytes[8..12]);
    if version != FORMAT_VERSION {
        return Err(SnapshotError::Version {
            found: version,
            supported: FORMAT_VERSION,
        });
    }
    if le_u32(&bytes[12..16]) != 0 {
        return Err(SnapshotError::Invalid(
            "reserved header field is not zero".into(),
        ));
    }
    let len = le_u64(&bytes[16..24]);
    let body = &bytes[HEADER..];
    if body.len() as u64 != len {
        return Err(SnapshotError::Truncated {
            expected: HEADER as u64 + len,
            got: bytes.len() as u64,
        });
    }
    if xxh64(body, 0) != le_u64(&bytes[24..32]) {
        return Err(SnapshotError::Checksum);
    }
    // rkyv needs its archive aligned; a caller's buffer may not be.
    let mut aligned = rkyv::util::AlignedVec::<16>::with_capacity(body.len());
    aligned.extend_from_slice(body);
    rkyv::from_bytes::<Payload, rancor::Error>(&aligned)
        .map_err(|e| SnapshotError::Invalid(format!("archive does not validate: {e}")))
}
