//! Strategies: the rules that pick a collector. Each rule lives in its own module and acts on
//! the allocator's state through the same narrow surface:
//!
//! - `bucket`: which index bucket a target sits in, so a collector change finds the targets it
//!   can move without scanning all of them;
//! - `sticky`: whether a target keeps its collector while that collector lives (`least-weighted`);
//! - `choose`: the collector for a target that needs one;
//! - `prepare` / `commit`: compute the rule's tables for a new collector set (fallible, touches
//!   nothing), then install them and report the buckets whose targets must be re-evaluated.

pub(crate) mod bounded;
mod consistent;
mod least_weighted;
mod per_node;
pub(crate) mod rebalancing;

use crate::collectors::Collectors;
use crate::config::{Config, Strategy};
use crate::error::Error;
use crate::loads::Loads;
use crate::targets::{TargetRecord, Targets};

pub(crate) use bounded::Bounded;
pub(crate) use consistent::ConsistentHashing;
pub(crate) use least_weighted::Run;
pub(crate) use per_node::PerNode;
pub(crate) use rebalancing::Rebalancing;

/// The zones a strategy that decides after the diff may read: node id → zone id (NONE: none),
/// zone names by id, and the collectors (whose nodes place them in zones).
pub(crate) struct ZoneView<'a> {
    pub node_zones: &'a [u32],
    pub names: &'a [Box<str>],
    pub collectors: &'a Collectors,
}

impl ZoneView<'_> {
    #[inline]
    pub(crate) fn of_node(&self, node: u32) -> u32 {
        self.node_zones
            .get(node as usize)
            .copied()
            .unwrap_or(crate::ids::NONE)
    }
}

/// What `choose` may read.
pub(crate) struct Ctx<'a> {
    pub collectors: &'a Collectors,
    pub loads: &'a Loads,
    pub weighted: bool,
}

/// A member of the collector set a change produces: its name and node. Tables computed by
/// `prepare` name members by their index in this list; `commit` maps them to collector ids.
pub(crate) struct Member<'a> {
    pub name: &'a str,
    pub node: u32,
}

/// Tables for a new collector set, indexed by member.
#[derive(Default)]
pub(crate) struct Prepared {
    ring: Option<Vec<u32>>,
    by_node: Option<Vec<u32>>,
    probes: Option<bounded::ProbeRing>,
}

#[derive(Debug, Clone)]
pub(crate) enum Placer {
    Consistent(ConsistentHashing),
    LeastWeighted,
    PerNode(PerNode),
    /// Decides in one canonical visit after each diff ([`Placer::settle`]), not per target.
    Bounded(Bounded),
    /// Sticky; decides after each diff ([`Placer::settle`]) what the weight band needs.
    Rebalancing(Rebalancing),
}

impl Placer {
    pub(crate) fn new(config: &Config) -> Placer {
        match config.strategy {
            Strategy::ConsistentHashing => Placer::Consistent(ConsistentHashing::new(config.ring)),
            Strategy::LeastWeighted => Placer::LeastWeighted,
            Strategy::PerNode => Placer::PerNode(PerNode::new(config)),
            Strategy::BoundedHashing => Placer::Bounded(Bounded::new(config.bounded)),
            Strategy::Rebalancing => Placer::Rebalancing(Rebalancing::new(
                config.bounded.epsilon_ppm(),
                config.zone_skew.map(crate::config::ppm),
            )),
        }
    }

    /// The consistent-hashing ring in use (the strategy's own, or per-node's fallback).
    pub(crate) fn ring(&self) -> Option<&ConsistentHashing> {
        match self {
            Placer::Consistent(ch) => Some(ch),
            Placer::LeastWeighted | Placer::Bounded(_) | Placer::Rebalancing(_) => None,
            Placer::PerNode(pn) => pn.ring(),
        }
    }

    #[inline]
    pub(crate) fn bucket(&self, t: &TargetRecord) -> u32 {
        match self {
            Placer::Consistent(ch) => ch.bucket(t),
            Placer::LeastWeighted | Placer::Bounded(_) | Placer::Rebalancing(_) => crate::ids::NONE,
            Placer::PerNode(pn) => pn.bucket(t),
        }
    }

    /// Whether [`Placer::bucket`] can name a bucket (else every target's is NONE).
    pub(crate) fn has_buckets(&self) -> bool {
        matches!(self, Placer::Consistent(_) | Placer::PerNode(_))
    }

    #[inline]
    pub(crate) fn sticky(&self, t: &TargetRecord) -> bool {
        match self {
            Placer::Consistent(_) => false,
            // Bounded and rebalancing targets move only in `settle`.
            Placer::LeastWeighted | Placer::Bounded(_) | Placer::Rebalancing(_) => true,
            Placer::PerNode(pn) => pn.sticky(t),
        }
    }

    /// Whether any target can be sticky: then new targets are placed in key order,
    /// because a sticky rule's choice depends on the placements before it.
    pub(crate) fn order_matters(&self) -> bool {
        match self {
            // Rebalancing places in its own canonical order, in `settle`.
            Placer::Consistent(_) | Placer::Bounded(_) | Placer::Rebalancing(_) => false,
            Placer::LeastWeighted => true,
            Placer::PerNode(pn) => pn.order_matters(),
        }
    }

    #[inline]
    pub(crate) fn choose(&self, t: &TargetRecord, ctx: &Ctx<'_>) -> u32 {
        match self {
            Placer::Consistent(ch) => ch.choose(t),
            Placer::LeastWeighted => least_weighted::choose(t, ctx),
            Placer::PerNode(pn) => pn.choose(t, ctx),
            Placer::Bounded(_) | Placer::Rebalancing(_) => crate::ids::NONE,
        }
    }

    /// Whether `choose` decides this target by the `least-weighted` rule (so a [`Run`] can
    /// decide it instead).
    #[inline]
    pub(crate) fn least_weighted(&self, t: &TargetRecord) -> bool {
        match self {
            Placer::LeastWeighted => true,
            Placer::PerNode(pn) => pn.sticky(t),
            Placer::Consistent(_) | Placer::Bounded(_) | Placer::Rebalancing(_) => false,
        }
    }

    /// The structure that decides a run of `placements` placed in order, when one is faster
    /// than a scan per placement.
    pub(crate) fn run(&self, ctx: &Ctx<'_>, placements: usize) -> Option<Run> {
        (self.order_matters() && Run::worth_it(ctx, placements)).then(|| Run::new(ctx))
    }

    /// [`Placer::choose`] for a target whose bucket is known.
    #[inline]
    pub(crate) fn choose_in(&self, t: &TargetRecord, bucket: u32, ctx: &Ctx<'_>) -> u32 {
        match self {
            Placer::Consistent(ch) => ch.owner(bucket),
            _ => self.choose(t, ctx),
        }
    }

    pub(crate) fn prepare(&self, members: &[Member<'_>], nodes: usize) -> Result<Prepared, Error> {
        match self {
            Placer::Consistent(ch) => Ok(Prepared {
                ring: Some(ch.prepare(members)?),
                ..Prepared::default()
            }),
            Placer::LeastWeighted | Placer::Rebalancing(_) => Ok(Prepared::default()),
            Placer::PerNode(pn) => pn.prepare(members, nodes),
            Placer::Bounded(_) => Ok(Prepared {
                probes: Some(bounded::ProbeRing::build(members)?),
                ..Prepared::default()
            }),
        }
    }

    /// Install prepared tables; `ids[m]` is the collector id of member `m`.
    pub(crate) fn commit(&mut self, prepared: Prepared, ids: &[u32], affected: &mut Vec<u32>) {
        match self {
            Placer::Consistent(ch) => {
                if let Some(owners) = prepared.ring {
                    ch.commit(owners, ids, affected);
                }
            }
            Placer::LeastWeighted => {}
            Placer::PerNode(pn) => pn.commit(prepared, ids, affected),
            Placer::Bounded(b) => {
                if let Some(ring) = prepared.probes {
                    b.commit(ring, ids);
                }
            }
            Placer::Rebalancing(r) => r.commit(ids),
        }
    }

    /// A target in this slot was added, changed or removed (only strategies that decide after
    /// the diff need to know).
    #[inline]
    pub(crate) fn touch(&mut self, slot: u32) {
        match self {
            Placer::Bounded(b) => b.touch(slot),
            Placer::Rebalancing(r) => r.touch(slot),
            _ => {}
        }
    }

    /// After a diff: push `(slot, collector)` for every target the strategy now puts elsewhere.
    pub(crate) fn settle(
        &mut self,
        targets: &Targets,
        job_names: &[Box<str>],
        job_total: &[u32],
        zones: &ZoneView<'_>,
        out: &mut Vec<(u32, u32)>,
    ) {
        match self {
            Placer::Bounded(b) => b.settle(targets, job_names, job_total, out),
            Placer::Rebalancing(r) => r.settle(targets, zones, out),
            _ => {}
        }
    }

    /// The node → zone table changed (only zone-aware `rebalancing` reads it).
    pub(crate) fn zones_changed(&mut self) {
        if let Placer::Rebalancing(r) = self {
            r.zones_changed();
        }
    }

    /// Heap held by the strategy's own tables, for memory reports.
    pub(crate) fn heap_bytes(&self) -> usize {
        match self {
            Placer::Bounded(b) => b.heap_bytes(),
            Placer::Rebalancing(r) => r.heap_bytes(),
            _ => 0,
        }
    }
}

/// Map a member-indexed table to collector ids.
pub(crate) fn to_ids(table: Vec<u32>, ids: &[u32]) -> Vec<u32> {
    table
        .into_iter()
        .map(|m| {
            if m == crate::ids::NONE {
                m
            } else {
                ids[m as usize]
            }
        })
        .collect()
}
