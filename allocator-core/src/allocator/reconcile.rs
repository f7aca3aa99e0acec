//! Full listings, as a discovery loop delivers them, reconciled into one diff each.

use hashbrown::HashMap;

use crate::diff::{CollectorSpec, Diff, Move, TargetSpec};
use crate::error::Error;
use crate::ids::{opt, TargetKey, NONE};
use crate::targets::TargetRecord;

use super::Allocator;

impl Allocator {
    /// Reconcile a full listing of targets (as discovery delivers it) into a diff and apply it:
    /// targets not listed are removed, new or changed ones upserted.
    pub fn set_targets(&mut self, targets: &[TargetSpec<'_>]) -> Result<&[Move], Error> {
        let mut listed = vec![false; self.targets.capacity_slots()];
        let mut upsert = Vec::new();
        for spec in targets {
            match self.targets.find(spec.key) {
                Some(slot) => {
                    listed[slot as usize] = true;
                    if !self.same_fields(self.targets.get(slot), spec) {
                        upsert.push(*spec);
                    }
                }
                None => upsert.push(*spec),
            }
        }
        let remove = self
            .targets
            .iter()
            .filter(|(slot, _)| !listed[*slot as usize])
            .map(|(_, r)| TargetKey(r.key))
            .collect();
        self.apply(&Diff {
            upsert,
            remove,
            ..Diff::default()
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

    fn same_fields(&self, r: &TargetRecord, spec: &TargetSpec<'_>) -> bool {
        r.placement == spec.placement.0
            && r.weight == spec.weight
            && self.jobs.get(spec.job) == Some(r.job)
            && match spec.node {
                Some(n) => self.nodes.get(n) == Some(r.node),
                None => r.node == NONE,
            }
    }
}
