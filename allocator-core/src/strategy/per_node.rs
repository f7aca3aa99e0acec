//! `per-node` (DESIGN.md §6.5): a target goes to the collector on its node. With two collectors
//! on one node, the smallest name takes the node (Go picks one arbitrarily). A node with no
//! collector leaves its targets unassigned; targets without a node go to the fallback strategy
//! over all collectors, or stay unassigned without one.
//!
//! Node targets are bucketed by node (after the ring's partition buckets), so a collector change
//! re-evaluates only the nodes whose collector changed.

use super::{least_weighted, to_ids, ConsistentHashing, Ctx, Member, Prepared};
use crate::config::{Config, Strategy};
use crate::error::Error;
use crate::ids::NONE;
use crate::targets::TargetRecord;

#[derive(Debug, Clone)]
enum Fallback {
    None,
    Consistent(ConsistentHashing),
    LeastWeighted,
}

#[derive(Debug, Clone)]
pub(crate) struct PerNode {
    /// Node buckets start after the partition buckets.
    offset: u32,
    /// Node id → collector id (NONE: no collector on that node).
    by_node: Vec<u32>,
    fallback: Fallback,
}

impl PerNode {
    pub(crate) fn new(config: &Config) -> Self {
        let fallback = match config.fallback {
            Some(Strategy::ConsistentHashing) => {
                Fallback::Consistent(ConsistentHashing::new(config.ring))
            }
            Some(Strategy::LeastWeighted) => Fallback::LeastWeighted,
            _ => Fallback::None,
        };
        PerNode {
            offset: config.ring.partition_count,
            by_node: Vec::new(),
            fallback,
        }
    }

    #[inline]
    pub(crate) fn bucket(&self, t: &TargetRecord) -> u32 {
        if t.node != NONE {
            return self.offset + t.node;
        }
        match &self.fallback {
            Fallback::Consistent(ch) => ch.bucket(t),
            _ => NONE,
        }
    }

    #[inline]
    pub(crate) fn sticky(&self, t: &TargetRecord) -> bool {
        t.node == NONE && matches!(self.fallback, Fallback::LeastWeighted)
    }

    pub(crate) fn ring(&self) -> Option<&ConsistentHashing> {
        match &self.fallback {
            Fallback::Consistent(ch) => Some(ch),
            _ => None,
        }
    }

    pub(crate) fn order_matters(&self) -> bool {
        matches!(self.fallback, Fallback::LeastWeighted)
    }

    #[inline]
    pub(crate) fn choose(&self, t: &TargetRecord, ctx: &Ctx<'_>) -> u32 {
        if t.node != NONE {
            return self.by_node.get(t.node as usize).copied().unwrap_or(NONE);
        }
        match &self.fallback {
            Fallback::None => NONE,
            Fallback::Consistent(ch) => ch.choose(t),
            Fallback::LeastWeighted => least_weighted::choose(t, ctx),
        }
    }

    /// The collector on each node (by member index). `members` is sorted by name, so the first
    /// member seen on a node is the smallest name.
    pub(crate) fn prepare(&self, members: &[Member<'_>], nodes: usize) -> Result<Prepared, Error> {
        let mut by_node = vec![NONE; nodes];
        for (m, member) in members.iter().enumerate() {
            if member.node != NONE && by_node[member.node as usize] == NONE {
                by_node[member.node as usize] = m as u32;
            }
        }
        let ring = match &self.fallback {
            Fallback::Consistent(ch) => Some(ch.prepare(members)?),
            _ => None,
        };
        Ok(Prepared {
            ring,
            by_node: Some(by_node),
            probes: None,
        })
    }

    pub(crate) fn commit(&mut self, prepared: Prepared, ids: &[u32], affected: &mut Vec<u32>) {
        if let Some(by_node) = prepared.by_node {
            let by_node = to_ids(by_node, ids);
            for (node, &now) in by_node.iter().enumerate() {
                let before = self.by_node.get(node).copied().unwrap_or(NONE);
                if before != now {
                    affected.push(self.offset + node as u32);
                }
            }
            self.by_node = by_node;
        }
        if let (Some(owners), Fallback::Consistent(ch)) = (prepared.ring, &mut self.fallback) {
            ch.commit(owners, ids, affected);
        }
    }
}
