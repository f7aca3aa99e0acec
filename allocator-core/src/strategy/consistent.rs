//! `consistent-hashing`: a target goes to the owner of its address's ring partition
//! (DESIGN.md §6.3). Targets are bucketed by partition, so a collector change re-evaluates
//! exactly the targets of partitions whose owner changed.

use super::{to_ids, Member};
use crate::config::RingConfig;
use crate::error::Error;
use crate::ids::PlacementHash;
use crate::ring::Ring;
use crate::targets::TargetRecord;

#[derive(Debug, Clone)]
pub(crate) struct ConsistentHashing {
    ring: Ring,
}

impl ConsistentHashing {
    pub(crate) fn new(cfg: RingConfig) -> Self {
        ConsistentHashing {
            ring: Ring::new(cfg),
        }
    }

    #[inline]
    pub(crate) fn bucket(&self, t: &TargetRecord) -> u32 {
        self.ring.partition_of(PlacementHash(t.placement))
    }

    #[inline]
    pub(crate) fn choose(&self, t: &TargetRecord) -> u32 {
        self.ring.owner(self.bucket(t))
    }

    pub(crate) fn owner(&self, partition: u32) -> u32 {
        self.ring.owner(partition)
    }

    pub(crate) fn partition_count(&self) -> u32 {
        self.ring.partition_count()
    }

    pub(crate) fn prepare(&self, members: &[Member<'_>]) -> Result<Vec<u32>, Error> {
        let named: Vec<(&str, crate::ids::CollectorId)> = members
            .iter()
            .enumerate()
            .map(|(i, m)| (m.name, crate::ids::CollectorId(i as u32)))
            .collect();
        self.ring.distribute(&named)
    }

    pub(crate) fn commit(&mut self, owners: Vec<u32>, ids: &[u32], affected: &mut Vec<u32>) {
        self.ring.install(to_ids(owners, ids), affected);
    }
}
