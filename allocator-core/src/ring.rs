//! The bounded-load consistent-hash ring of `github.com/buraksezer/consistent`, as the Go
//! allocator configures it (DESIGN.md §6.3), for both library versions the Operator uses.
//!
//! Only the partition → owner table is kept: a target's placement hash modulo the partition count
//! names its partition, and the table names the collector. Rebuilding the table for a new member
//! set costs O(members · replicas · log + partitions); comparing old and new tables tells exactly
//! which partitions, and so which targets, move.

use std::fmt::Write as _;

use xxhash_rust::xxh64::xxh64;

use crate::config::{RingConfig, RingVersion};
use crate::error::Error;
use crate::ids::{CollectorId, PlacementHash, NONE};

/// A ring configuration with its partition table.
#[derive(Debug, Clone)]
pub(crate) struct Ring {
    cfg: RingConfig,
    /// XXH64 of each partition id as 8 little-endian bytes; fixed for a partition count.
    partition_hashes: Vec<u64>,
    /// Owner of each partition (raw collector id, or NONE while there are no members).
    owners: Vec<u32>,
}

impl Ring {
    pub(crate) fn new(cfg: RingConfig) -> Ring {
        let partition_hashes = (0..u64::from(cfg.partition_count))
            .map(|p| xxh64(&p.to_le_bytes(), 0))
            .collect();
        Ring {
            cfg,
            partition_hashes,
            owners: vec![NONE; cfg.partition_count as usize],
        }
    }

    pub(crate) fn partition_count(&self) -> u32 {
        self.cfg.partition_count
    }

    /// The partition of a placement hash: `hash mod partition_count`, as `FindPartitionID`.
    #[inline]
    pub(crate) fn partition_of(&self, placement: PlacementHash) -> u32 {
        (placement.0 % u64::from(self.cfg.partition_count)) as u32
    }

    /// The owner of a partition, as raw collector id (NONE without members).
    #[inline]
    pub(crate) fn owner(&self, partition: u32) -> u32 {
        self.owners[partition as usize]
    }

    /// The average load of the library version: the most partitions one member may own.
    fn average_load(&self, members: usize) -> f64 {
        let p = self.cfg.partition_count;
        match self.cfg.version {
            // float64(partitionCount / uint64(len(members))) * load, integer division first.
            RingVersion::V0_10_0 => (f64::from(p / members as u32) * self.cfg.load_factor).ceil(),
            RingVersion::V1_0_0 => (f64::from(p) / members as f64 * self.cfg.load_factor).ceil(),
        }
    }

    /// Compute the partition table for a member set (names are unique). Changes nothing.
    ///
    /// Fails where the Go library panics ("not enough room to distribute partitions").
    pub(crate) fn distribute(&self, members: &[(&str, CollectorId)]) -> Result<Vec<u32>, Error> {
        let partitions = self.cfg.partition_count as usize;
        if members.is_empty() {
            return Ok(vec![NONE; partitions]);
        }
        if members.len() > u32::MAX as usize {
            return Err(Error::Capacity("collectors"));
        }
        self.cfg.check_members(members.len())?;
        let replicas = self.cfg.replication_factor;
        let mut points: Vec<(u64, u32)> = Vec::with_capacity(members.len() * replicas as usize);
        let mut key = String::new();
        for (m, (name, _)) in members.iter().enumerate() {
            for r in 0..replicas {
                key.clear();
                // Writing to a String cannot fail.
                let _ = match self.cfg.version {
                    RingVersion::V0_10_0 => write!(key, "{name}{r}"),
                    RingVersion::V1_0_0 => write!(key, "{r}:{name}"),
                };
                points.push((xxh64(key.as_bytes(), 0), m as u32));
            }
        }
        points.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0)
                .then_with(|| members[a.1 as usize].0.cmp(members[b.1 as usize].0))
        });
        // Go keeps one member per point hash (a map) but every point in its sorted list; on a
        // 64-bit collision all entries of that hash resolve to one member. Go's choice depends on
        // map order; ours is the smallest name.
        for i in 1..points.len() {
            if points[i].0 == points[i - 1].0 {
                points[i].1 = points[i - 1].1;
            }
        }

        let avg = self.average_load(members.len());
        let len = points.len();
        // v0.10.0 gives up after visiting len-1 points, v1.0.0 after all len points.
        let max_visits = match self.cfg.version {
            RingVersion::V0_10_0 => len - 1,
            RingVersion::V1_0_0 => len,
        };
        let mut loads = vec![0u32; members.len()];
        let mut owners = vec![NONE; partitions];
        for (partition, &h) in self.partition_hashes.iter().enumerate() {
            let mut idx = points.partition_point(|pt| pt.0 < h);
            if idx >= len {
                idx = 0;
            }
            let mut visits = 0;
            loop {
                visits += 1;
                if visits > max_visits {
                    return Err(Error::RingCapacity {
                        partitions: self.cfg.partition_count,
                        collectors: members.len(),
                        load_factor: self.cfg.load_factor,
                    });
                }
                let m = points[idx].1 as usize;
                if f64::from(loads[m] + 1) <= avg {
                    loads[m] += 1;
                    owners[partition] = members[m].1 .0;
                    break;
                }
                idx += 1;
                if idx >= len {
                    idx = 0;
                }
            }
        }
        Ok(owners)
    }

    /// Install a table computed by [`Ring::distribute`]; returns the partitions whose owner changed.
    pub(crate) fn install(&mut self, owners: Vec<u32>, changed: &mut Vec<u32>) {
        for (p, (old, new)) in self.owners.iter().zip(&owners).enumerate() {
            if old != new {
                changed.push(p as u32);
            }
        }
        self.owners = owners;
    }
}
