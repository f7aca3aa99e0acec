//! The allocation state to and from a snapshot [`Payload`]: names renumbered canonically so the
//! same state gives the same bytes, and restore accepting only states a sequence of diffs can
//! reach.

use crate::allocator::Allocator;
use crate::config::Strategy;
use crate::diff::MoveTotals;
use crate::error::{Error, SnapshotError};
use crate::ids::{CollectorId, TargetKey, NONE};
use crate::intern::Interner;
use crate::strategy::Member;
use crate::targets::TargetRecord;

use super::codec::{CollectorRec, NodeZoneRec, Payload, TargetRec};

impl Allocator {
    /// Node ids that have a zone.
    fn zoned_nodes(&self) -> impl Iterator<Item = u32> + '_ {
        self.node_zones
            .iter()
            .enumerate()
            .filter(|(_, &z)| z != NONE)
            .map(|(n, _)| n as u32)
    }

    /// The whole state as bytes (see [`crate::snapshot`] for the format). The same state gives
    /// the same bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let (strategy, fallback, ring_version) = Payload::config_parts(&self.config);
        // Position in name order, by collector id.
        let mut position = vec![NONE; self.collectors.slot_count()];
        let collectors: Vec<CollectorRec> = self
            .collectors
            .sorted()
            .iter()
            .enumerate()
            .map(|(i, id)| {
                position[id.0 as usize] = i as u32;
                let slot = self.collectors.get(id.0).expect("alive");
                CollectorRec {
                    name: slot.name.to_string(),
                    node: slot.node,
                }
            })
            .collect();
        // Only names in use, sorted: the bytes depend on the state, not on its history.
        let jobs = Canonical::new(&self.jobs, self.targets.iter().map(|(_, r)| r.job));
        let nodes = Canonical::new(
            &self.nodes,
            self.targets
                .iter()
                .map(|(_, r)| r.node)
                .chain(
                    self.collectors
                        .sorted()
                        .iter()
                        .map(|id| self.collectors.get(id.0).expect("alive").node),
                )
                .chain(self.zoned_nodes()),
        );
        let zones = Canonical::new(&self.zones, self.node_zones.iter().copied());
        let mut node_zones: Vec<NodeZoneRec> = self
            .zoned_nodes()
            .map(|n| NodeZoneRec {
                node: nodes.map(n),
                zone: zones.map(self.node_zones[n as usize]),
            })
            .collect();
        node_zones.sort_unstable_by_key(|r| r.node);
        let collectors = collectors
            .into_iter()
            .map(|c: CollectorRec| CollectorRec {
                node: nodes.map(c.node),
                ..c
            })
            .collect();
        let mut targets: Vec<TargetRec> = self
            .targets
            .iter()
            .map(|(_, r)| TargetRec {
                key: r.key,
                placement: r.placement,
                job: jobs.map(r.job),
                node: nodes.map(r.node),
                weight: r.weight,
                collector: if r.collector == NONE {
                    NONE
                } else {
                    position[r.collector as usize]
                },
            })
            .collect();
        targets.sort_unstable_by_key(|t| t.key);
        super::codec::encode(&Payload {
            strategy,
            fallback,
            ring_version,
            partition_count: self.config.ring.partition_count,
            replication_factor: self.config.ring.replication_factor,
            load_factor: self.config.ring.load_factor,
            weighted: self.config.weighted,
            epsilon_ppm: self.config.bounded.epsilon_ppm(),
            max_weight: self.config.bounded.max_weight,
            zone_skew_ppm: self.config.zone_skew.map_or(u64::MAX, crate::config::ppm),
            jobs: jobs.names,
            nodes: nodes.names,
            zones: zones.names,
            node_zones,
            collectors,
            targets,
            totals: [
                self.totals.assigned,
                self.totals.unassigned,
                self.totals.reassigned,
            ],
        })
    }

    /// An allocator from [`Allocator::snapshot`] bytes: the same assignments, and the same
    /// behaviour on the next diffs (the same targets move to the same collectors). Collectors
    /// are named, not numbered, in the snapshot, so the restored allocator may give them other
    /// [`crate::CollectorId`]s than the original had: read moves and owners by name across a
    /// restore. Truncated, corrupted or foreign bytes are an error.
    pub fn restore(bytes: &[u8]) -> Result<Allocator, Error> {
        let payload = super::codec::decode(bytes)?;
        let invalid = |what: String| Error::Snapshot(SnapshotError::Invalid(what));
        let mut alloc = Allocator::new(payload.config()?)?;
        alloc.jobs = Interner::from_names(payload.jobs)
            .map_err(|n| invalid(format!("job {n:?} listed twice")))?;
        alloc.nodes = Interner::from_names(payload.nodes)
            .map_err(|n| invalid(format!("node {n:?} listed twice")))?;
        let node_count = alloc.nodes.len() as u32;
        alloc.zones = Interner::from_names(payload.zones)
            .map_err(|z| invalid(format!("zone {z:?} listed twice")))?;
        let zone_count = alloc.zones.len() as u32;
        let mut last = None;
        for r in &payload.node_zones {
            if r.node >= node_count || r.zone >= zone_count || last >= Some(r.node) {
                return Err(invalid(format!(
                    "node zone entry ({}, {}) of {node_count} nodes and {zone_count} zones, \
                     out of range or out of order",
                    r.node, r.zone
                )));
            }
            last = Some(r.node);
            if alloc.node_zones.len() <= r.node as usize {
                alloc.node_zones.resize(r.node as usize + 1, NONE);
            }
            alloc.node_zones[r.node as usize] = r.zone;
        }
        let mut ids = Vec::with_capacity(payload.collectors.len());
        for c in &payload.collectors {
            if c.name.is_empty() {
                return Err(invalid("collector with an empty name".into()));
            }
            if c.node != NONE && c.node >= node_count {
                return Err(invalid(format!(
                    "collector {:?} has node index {} of {node_count}",
                    c.name, c.node
                )));
            }
            if alloc.collectors.find(&c.name).is_some() {
                return Err(invalid(format!("collector {:?} listed twice", c.name)));
            }
            ids.push(alloc.collectors.add(&c.name, c.node)?.0);
        }
        alloc.collectors.resort();
        // Strategy tables for the collector set, exactly as a collector diff builds them.
        let sorted: Vec<CollectorId> = alloc.collectors.sorted().to_vec();
        let view: Vec<Member<'_>> = sorted
            .iter()
            .map(|&id| {
                let slot = alloc.collectors.get(id.0).expect("restored");
                Member {
                    name: &slot.name,
                    node: slot.node,
                }
            })
            .collect();
        // A stored collector set the stored ring cannot place was never a real state.
        let prepared = alloc
            .placer
            .prepare(&view, alloc.nodes.len())
            .map_err(|e| invalid(format!("stored collectors: {e}")))?;
        drop(view);
        let member_ids: Vec<u32> = sorted.iter().map(|c| c.0).collect();
        alloc.placer.commit(prepared, &member_ids, &mut Vec::new());

        alloc
            .loads
            .grow(alloc.collectors.slot_count(), alloc.jobs.len());
        alloc.targets.reserve(payload.targets.len());
        let job_count = alloc.jobs.len() as u32;
        for t in &payload.targets {
            if t.job >= job_count || (t.node != NONE && t.node >= node_count) {
                return Err(invalid(format!(
                    "target {} names a job or node that is not listed",
                    TargetKey(t.key)
                )));
            }
            let collector = match t.collector {
                NONE => NONE,
                i => *ids.get(i as usize).ok_or_else(|| {
                    invalid(format!(
                        "target {} is on collector #{i} of {}",
                        TargetKey(t.key),
                        ids.len()
                    ))
                })?,
            };
            let record = TargetRecord {
                key: t.key,
                placement: t.placement,
                job: t.job,
                node: t.node,
                weight: t.weight,
                collector,
                bucket_pos: 0,
            };
            let (slot, inserted) = alloc.targets.find_or_insert(record);
            if !inserted {
                return Err(invalid(format!("target {} listed twice", TargetKey(t.key))));
            }
            alloc.buckets.insert(
                alloc.placer.bucket(&record),
                slot,
                alloc.targets.records_mut(),
            );
            alloc.loads.job_total[t.job as usize] += 1;
            alloc.loads.add(collector, t.job, t.weight);
            let sticky = alloc.placer.sticky(&record);
            let rule = alloc.placer.choose(&record, &alloc.ctx());
            // Only states a sequence of diffs can reach: a target lacks a collector only when
            // its rule has none for it, or (per-node) its node changed in place since.
            let waiting = alloc.config.strategy == Strategy::PerNode;
            if collector == NONE && rule != NONE && !waiting {
                return Err(invalid(format!(
                    "target {} is unassigned although collectors can take it",
                    TargetKey(t.key)
                )));
            }
            if !sticky && rule != collector {
                alloc.stale.insert(slot);
            }
        }
        if matches!(
            alloc.config.strategy,
            Strategy::BoundedHashing | Strategy::Rebalancing
        ) {
            // bounded-hashing: the assignment is a function of the state, the stored one must
            // be it. rebalancing: every diff ends at a fixed point of its rules (targets placed,
            // no band move left), and its tables are rebuilt from the assignment here.
            let slots: Vec<u32> = alloc.targets.iter().map(|(s, _)| s).collect();
            for slot in slots {
                alloc.placer.touch(slot);
            }
            if let Some(&(slot, _)) = alloc.settled().first() {
                return Err(invalid(format!(
                    "target {} is not where {} places it",
                    TargetKey(alloc.targets.get(slot).key),
                    alloc.config.strategy
                )));
            }
        }
        alloc.digest = alloc.recompute_digest();
        let [assigned, unassigned, reassigned] = payload.totals;
        alloc.totals = MoveTotals {
            assigned,
            unassigned,
            reassigned,
        };
        Ok(alloc)
    }
}

/// Interned names renumbered for a snapshot: only those in use, in sorted order.
struct Canonical {
    names: Vec<String>,
    /// Old id → new id (NONE where unused).
    remap: Vec<u32>,
}

impl Canonical {
    fn new(interner: &Interner, used: impl Iterator<Item = u32>) -> Canonical {
        let mut in_use = vec![false; interner.len()];
        for id in used.filter(|&id| id != NONE) {
            in_use[id as usize] = true;
        }
        let mut ids: Vec<u32> = (0..interner.len() as u32)
            .filter(|&id| in_use[id as usize])
            .collect();
        ids.sort_unstable_by(|a, b| interner.name(*a).cmp(interner.name(*b)));
        let mut remap = vec![NONE; interner.len()];
        for (new, &old) in ids.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        Canonical {
            names: ids.iter().map(|&id| interner.name(id).to_owned()).collect(),
            remap,
        }
    }

    fn map(&self, id: u32) -> u32 {
        if id == NONE {
            NONE
        } else {
            self.remap[id as usize]
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, Strategy};
    use crate::diff::{CollectorSpec, Diff, TargetSpec};
    use crate::error::{Error, SnapshotError};
    use crate::ids::{PlacementHash, TargetKey};
    use crate::strategy::Placer;
    use crate::Allocator;

    /// A least-weighted state whose assignment rebalancing would still change (every target on
    /// "a", "b" empty), written as a rebalancing snapshot: restore must refuse it, since no
    /// sequence of rebalancing diffs ends there.
    #[test]
    fn a_rebalancing_snapshot_its_rules_would_change_is_refused() {
        let mut a = Allocator::new(Config::with_strategy(Strategy::LeastWeighted)).unwrap();
        let targets: Vec<TargetSpec<'_>> = (0..20)
            .map(|k| TargetSpec {
                key: TargetKey(k),
                placement: PlacementHash(k),
                job: "j",
                node: None,
                weight: 5,
            })
            .collect();
        a.apply(&Diff {
            add_collectors: vec![CollectorSpec::new("a")],
            upsert: targets,
            ..Diff::default()
        })
        .unwrap();
        // least-weighted moves nothing onto a new collector.
        a.apply(&Diff {
            add_collectors: vec![CollectorSpec::new("b")],
            ..Diff::default()
        })
        .unwrap();
        a.config = Config::with_strategy(Strategy::Rebalancing);
        a.placer = Placer::new(&a.config);
        let err = Allocator::restore(&a.snapshot()).unwrap_err();
        let Error::Snapshot(SnapshotError::Invalid(why)) = &err else {
            panic!("{err}");
        };
        assert!(why.contains("not where rebalancing places it"), "{why}");
    }
}
