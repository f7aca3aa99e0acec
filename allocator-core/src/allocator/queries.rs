//! Pure reads of the allocation state.

use crate::diff::{Move, MoveTotals};
use crate::ids::{opt, CollectorId, JobId, NodeId, PlacementHash, TargetKey, NONE};
use crate::targets::TargetRecord;

use super::Allocator;

/// Everything one target query returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetInfo<'a> {
    /// Identity.
    pub key: TargetKey,
    /// Placement hash.
    pub placement: PlacementHash,
    /// Job name.
    pub job: &'a str,
    /// Node name.
    pub node: Option<&'a str>,
    /// Weight.
    pub weight: u32,
    /// Assigned collector.
    pub collector: Option<CollectorId>,
}

/// Load of one collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectorStats<'a> {
    /// Its id.
    pub id: CollectorId,
    /// Its name.
    pub name: &'a str,
    /// Its node.
    pub node: Option<&'a str>,
    /// Targets assigned to it.
    pub targets: u32,
    /// Sum of their weights.
    pub weight: u64,
}

/// Balance over all collectors.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadSummary {
    /// Collectors.
    pub collectors: usize,
    /// Targets, assigned or not.
    pub targets: usize,
    /// Targets with no collector.
    pub unassigned: usize,
    /// Most targets on one collector.
    pub max_targets: u32,
    /// Fewest targets on one collector.
    pub min_targets: u32,
    /// Assigned targets per collector.
    pub mean_targets: f64,
    /// Most weight on one collector.
    pub max_weight: u64,
    /// Least weight on one collector.
    pub min_weight: u64,
    /// Assigned weight per collector.
    pub mean_weight: f64,
}

impl LoadSummary {
    /// Busiest collector's targets over the mean (1.0 is perfect balance; 0 with no targets).
    pub fn max_over_mean(&self) -> f64 {
        ratio(f64::from(self.max_targets), self.mean_targets)
    }

    /// Idlest collector's targets over the mean.
    pub fn min_over_mean(&self) -> f64 {
        ratio(f64::from(self.min_targets), self.mean_targets)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl Allocator {
    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.len() == 0
    }

    /// The collector of a target (`None`: unknown or unassigned target).
    #[inline]
    pub fn collector_of(&self, key: TargetKey) -> Option<CollectorId> {
        let slot = self.targets.find(key)?;
        opt(self.targets.get(slot).collector).map(CollectorId)
    }

    /// Everything known about a target.
    pub fn target(&self, key: TargetKey) -> Option<TargetInfo<'_>> {
        let slot = self.targets.find(key)?;
        Some(self.info(self.targets.get(slot)))
    }

    fn info(&self, r: &TargetRecord) -> TargetInfo<'_> {
        TargetInfo {
            key: TargetKey(r.key),
            placement: PlacementHash(r.placement),
            job: self.jobs.name(r.job),
            node: opt(r.node).map(|n| self.nodes.name(n)),
            weight: r.weight,
            collector: opt(r.collector).map(CollectorId),
        }
    }

    /// Every target, in no particular order.
    pub fn targets(&self) -> impl Iterator<Item = TargetInfo<'_>> + '_ {
        self.targets.iter().map(|(_, r)| self.info(r))
    }

    /// A collector's id by name (alive collectors only).
    pub fn collector_id(&self, name: &str) -> Option<CollectorId> {
        self.collectors.find(name)
    }

    /// A collector's name; also for collectors removed by the last diff.
    pub fn collector_name(&self, id: CollectorId) -> Option<&str> {
        self.collectors.get(id.0).map(|s| &*s.name)
    }

    /// Alive collectors, sorted by name.
    pub fn collectors(&self) -> impl Iterator<Item = CollectorStats<'_>> + '_ {
        self.collectors
            .sorted()
            .iter()
            .map(|&id| self.collector_stats(id))
    }

    /// Targets and weight of each alive collector, sorted by name (the order of
    /// [`Allocator::collectors`]), without names or nodes: for a reader that keeps its own copy
    /// of the collector table and refreshes only the loads.
    pub fn collector_loads(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.collectors.sorted().iter().map(|&id| {
            (
                self.loads.count[id.0 as usize],
                self.loads.weight[id.0 as usize],
            )
        })
    }

    fn collector_stats(&self, id: CollectorId) -> CollectorStats<'_> {
        let slot = self.collectors.get(id.0).expect("alive collector");
        CollectorStats {
            id,
            name: &slot.name,
            node: opt(slot.node).map(|n| self.nodes.name(n)),
            targets: self.loads.count[id.0 as usize],
            weight: self.loads.weight[id.0 as usize],
        }
    }

    /// Load of one alive collector.
    pub fn stats_of(&self, id: CollectorId) -> Option<CollectorStats<'_>> {
        self.collectors
            .is_alive(id.0)
            .then(|| self.collector_stats(id))
    }

    /// Number of alive collectors.
    pub fn collector_count(&self) -> usize {
        self.collectors.len()
    }

    /// Keys of a collector's targets, sorted; optionally of one job only.
    pub fn targets_of(&self, id: CollectorId, job: Option<&str>) -> Vec<TargetKey> {
        let job = match job {
            Some(name) => match self.jobs.get(name) {
                Some(j) => j,
                None => return Vec::new(),
            },
            None => NONE,
        };
        let mut keys: Vec<TargetKey> = self
            .targets
            .iter()
            .filter(|(_, r)| r.collector == id.0 && (job == NONE || r.job == job))
            .map(|(_, r)| TargetKey(r.key))
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Jobs with at least one target, sorted by name, with their target counts.
    pub fn jobs(&self) -> Vec<(&str, u32)> {
        let mut jobs: Vec<(&str, u32)> = self
            .jobs
            .names()
            .iter()
            .zip(&self.loads.job_total)
            .filter(|(_, &n)| n > 0)
            .map(|(name, &n)| (&**name, n))
            .collect();
        jobs.sort_unstable();
        jobs
    }

    /// Targets of a job on a collector.
    pub fn job_targets_on(&self, job: JobId, id: CollectorId) -> u32 {
        self.loads
            .per_job
            .get(job.0 as usize)
            .and_then(|row| row.get(id.0 as usize))
            .copied()
            .unwrap_or(0)
    }

    /// A job's id by name.
    pub fn job_id(&self, name: &str) -> Option<JobId> {
        self.jobs.get(name).map(JobId)
    }

    /// A node's id by name.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes.get(name).map(NodeId)
    }

    /// Balance over all alive collectors.
    pub fn summary(&self) -> LoadSummary {
        let mut s = LoadSummary {
            collectors: self.collectors.len(),
            targets: self.targets.len(),
            unassigned: self.loads.unassigned,
            ..LoadSummary::default()
        };
        if s.collectors == 0 {
            return s;
        }
        s.min_targets = u32::MAX;
        s.min_weight = u64::MAX;
        let (mut sum_t, mut sum_w) = (0u64, 0u64);
        for &id in self.collectors.sorted() {
            let (t, w) = (
                self.loads.count[id.0 as usize],
                self.loads.weight[id.0 as usize],
            );
            s.max_targets = s.max_targets.max(t);
            s.min_targets = s.min_targets.min(t);
            s.max_weight = s.max_weight.max(w);
            s.min_weight = s.min_weight.min(w);
            sum_t += u64::from(t);
            sum_w += w;
        }
        s.mean_targets = sum_t as f64 / s.collectors as f64;
        s.mean_weight = sum_w as f64 / s.collectors as f64;
        s
    }

    /// The owner of each consistent-hashing ring partition, when a ring is in use
    /// (`consistent-hashing`, or `per-node` falling back to it).
    pub fn ring_owners(&self) -> Option<Vec<Option<CollectorId>>> {
        let ring = self.placer.ring()?;
        Some(
            (0..ring.partition_count())
                .map(|p| opt(ring.owner(p)).map(CollectorId))
                .collect(),
        )
    }

    /// The moves of the last diff (empty after a diff that moved nothing).
    pub fn last_moves(&self) -> &[Move] {
        &self.moves
    }

    /// Moves counted since the allocator was created.
    pub fn move_totals(&self) -> MoveTotals {
        self.totals
    }
}
