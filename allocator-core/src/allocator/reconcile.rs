//! Full listings, as a discovery loop delivers them, reconciled into one diff each.

use hashbrown::HashMap;

use crate::batch::{BatchDiff, TargetBatch, TargetColumns, NO_NODE};
use crate::diff::{CollectorSpec, Diff, Move, TargetSpec};
use crate::error::Error;
use crate::ids::{opt, NONE};
use crate::targets::TargetRecord;

use super::Allocator;

impl Allocator {
    /// Reconcile a full listing of targets (as discovery delivers it) into a diff and apply it:
    /// targets not listed are removed, new or changed ones upserted. A convenience over
    /// [`Allocator::set_targets_batch`].
    pub fn set_targets(&mut self, targets: &[TargetSpec<'_>]) -> Result<&[Move], Error> {
        let columns = TargetColumns::from_specs(targets);
        self.set_targets_batch(&columns.batch())
    }

    /// Reconcile a full listing of targets in columns into one diff and apply it; returns its
    /// moves. Listed targets whose fields are unchanged cost one lookup and are not in the diff.
    pub fn set_targets_batch(&mut self, targets: &TargetBatch<'_>) -> Result<&[Move], Error> {
        targets.validate()?;
        let mut listed = vec![false; self.targets.capacity_slots()];
        let mut changed: Vec<usize> = Vec::new();
        // Job and node names of the listing as the allocator knows them (None: a new name, so
        // every target naming it is changed).
        let jobs: Vec<Option<u32>> = targets.job_names.iter().map(|n| self.jobs.get(n)).collect();
        let nodes: Vec<Option<u32>> = targets
            .node_names
            .iter()
            .map(|n| {
                if n.is_empty() {
                    Some(NONE)
                } else {
                    self.nodes.get(n)
                }
            })
            .collect();
        for i in 0..targets.len() {
            match self.targets.find(targets.key(i)) {
                Some(slot) => {
                    listed[slot as usize] = true;
                    if !same_fields(self.targets.get(slot), targets, i, &jobs, &nodes) {
                        changed.push(i);
                    }
                }
                None => changed.push(i),
            }
        }
        let remove: Vec<u64> = self
            .targets
            .iter()
            .filter(|(slot, _)| !listed[*slot as usize])
            .map(|(_, r)| r.key)
            .collect();
        let pick = |col: &[u64]| changed.iter().map(|&i| col[i]).collect::<Vec<u64>>();
        let (keys, placements) = (pick(targets.keys), pick(targets.placements));
        let weights: Vec<u32> = changed.iter().map(|&i| targets.weight(i)).collect();
        let job_rows: Vec<u32> = changed.iter().map(|&i| targets.jobs[i]).collect();
        let node_rows: Vec<u32> = if targets.nodes.is_empty() {
            Vec::new()
        } else {
            changed.iter().map(|&i| targets.nodes[i]).collect()
        };
        self.apply_batch(&BatchDiff {
            upsert: TargetBatch {
                keys: &keys,
                placements: &placements,
                weights: &weights,
                jobs: &job_rows,
                job_names: targets.job_names,
                nodes: &node_rows,
                node_names: targets.node_names,
            },
            remove: &remove,
            ..BatchDiff::default()
        })
    }

    /// Reconcile a full listing of collectors into a diff and apply it. A collector whose node
    /// changed is replaced in place (same id).
    pub fn set_collectors(&mut self, collectors: &[CollectorSpec<'_>]) -> Result<&[Move], Error> {
        let mut listed: HashMap<&str, Option<&str>, ahash::RandomState> = HashMap::default();
        for c in collectors {
            if c.name.is_empty() {
                return Err(Error::EmptyCollectorName);
            }
            if listed.insert(c.name, c.node).is_some() {
                return Err(Error::DuplicateCollector(c.name.to_owned()));
            }
        }
        let mut remove: Vec<String> = Vec::new();
        for &id in self.collectors.sorted() {
            let slot = self.collectors.get(id.0).expect("sorted ids are alive");
            let node = opt(slot.node).map(|n| self.nodes.name(n));
            match listed.get(&*slot.name) {
                Some(&want) if want.filter(|n| !n.is_empty()) == node => {}
                _ => remove.push(slot.name.to_string()),
            }
        }
        let add_collectors: Vec<CollectorSpec<'_>> = collectors
            .iter()
            .filter(|c| {
                self.collectors.find(c.name).is_none() || remove.iter().any(|r| r == c.name)
            })
            .copied()
            .collect();
        self.apply(&Diff {
            add_collectors,
            remove_collectors: remove.iter().map(String::as_str).collect(),
            ..Diff::default()
        })
    }
}

/// Whether row `i` of a listing says what the allocator already holds for that target.
fn same_fields(
    r: &TargetRecord,
    targets: &TargetBatch<'_>,
    i: usize,
    jobs: &[Option<u32>],
    nodes: &[Option<u32>],
) -> bool {
    let node = match targets.nodes.get(i) {
        Some(&n) if n != NO_NODE => nodes[n as usize],
        _ => Some(NONE),
    };
    r.placement == targets.placements[i]
        && r.weight == targets.weight(i)
        && jobs[targets.jobs[i] as usize] == Some(r.job)
        && node == Some(r.node)
}
