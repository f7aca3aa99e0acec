//! The node → zone table that zone-aware `rebalancing` reads: a target is in the zone of its
//! node, a collector in the zone of the node it runs on (Kubernetes' `topology.kubernetes.io/zone`
//! node label, or whatever the caller calls a zone).

use crate::diff::Move;
use crate::error::Error;
use crate::ids::{TargetKey, NONE};

use super::{Allocator, Set};

impl Allocator {
    /// Replace the node → zone table: `(node, zone)` pairs; nodes not listed (or listed with an
    /// empty zone) have no zone. Returns the moves it causes (only zone-aware `rebalancing`
    /// moves anything). On error nothing has changed.
    ///
    /// A change re-reads the zones of the targets on nodes whose zone changed (found by one
    /// pass over the targets' node ids) and of the collectors. An unchanged table costs a
    /// comparison.
    pub fn set_node_zones(&mut self, table: &[(&str, &str)]) -> Result<&[Move], Error> {
        let mut seen: Set<&str> = Set::default();
        for &(node, _) in table {
            if node.is_empty() {
                return Err(Error::InvalidZones("a node name is empty".into()));
            }
            if !seen.insert(node) {
                return Err(Error::InvalidZones(format!(
                    "node {node:?} is listed twice"
                )));
            }
        }
        // Interning is the one change before the table is known to differ: an unused name
        // changes no decision (as in `apply_batch`).
        let mut next = vec![NONE; self.nodes.len()];
        for &(node, zone) in table {
            if zone.is_empty() {
                continue;
            }
            let n = self.nodes.intern(node, "nodes")? as usize;
            let z = self.zones.intern(zone, "zones")?;
            if next.len() <= n {
                next.resize(n + 1, NONE);
            }
            next[n] = z;
        }
        while next.last() == Some(&NONE) {
            next.pop();
        }
        self.collectors.release_retired();
        self.moves.clear();
        if next == self.node_zones {
            return Ok(&self.moves);
        }
        let old = std::mem::replace(&mut self.node_zones, next);
        if self.config.zone_skew.is_some() {
            // Only targets on nodes whose zone changed are read again (a new node, the usual
            // change, has none yet); collectors' zones are read again at the settle.
            let zone = |t: &[u32], n: u32| t.get(n as usize).copied().unwrap_or(NONE);
            let slots: Vec<u32> = self
                .targets
                .iter()
                .filter(|(_, r)| {
                    r.node != NONE && zone(&old, r.node) != zone(&self.node_zones, r.node)
                })
                .map(|(slot, _)| slot)
                .collect();
            for slot in slots {
                self.placer.touch(slot);
            }
            self.placer.zones_changed();
            self.settle();
        }
        debug_assert_eq!(self.digest, self.recompute_digest());
        self.totals.count(&self.moves);
        Ok(&self.moves)
    }

    /// The zone of a node id (NONE: none).
    #[inline]
    pub(crate) fn zone_of_node(&self, node: u32) -> u32 {
        self.node_zones.get(node as usize).copied().unwrap_or(NONE)
    }

    /// The zone of a target's node, if it has one.
    pub fn zone_of(&self, key: TargetKey) -> Option<&str> {
        let slot = self.targets.find(key)?;
        match self.zone_of_node(self.targets.get(slot).node) {
            NONE => None,
            z => Some(self.zones.name(z)),
        }
    }

    /// The node → zone table, sorted by node name.
    pub fn node_zones(&self) -> Vec<(&str, &str)> {
        let mut table: Vec<(&str, &str)> = self
            .node_zones
            .iter()
            .enumerate()
            .filter(|(_, &z)| z != NONE)
            .map(|(n, &z)| (self.nodes.name(n as u32), self.zones.name(z)))
            .collect();
        table.sort_unstable();
        table
    }
}
