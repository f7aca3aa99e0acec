//! `explain`: why a target is where it is, or why it has no collector — what its rule looked at,
//! read from the state without changing it.

use crate::config::Strategy;
use crate::ids::{opt, TargetKey, NONE};
use crate::strategy::Placer;

use super::Allocator;

/// Why a target is where it is (from [`Allocator::explain`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explanation<'a> {
    /// The target.
    pub key: TargetKey,
    /// The configured strategy.
    pub strategy: Strategy,
    /// The rule that decides this target: the strategy, or `per-node`'s fallback for a target
    /// without a node.
    pub rule: Strategy,
    /// Its collector.
    pub collector: Option<&'a str>,
    /// What the rule looked at.
    pub detail: Detail<'a>,
    /// Why it has no collector (`None` when it has one).
    pub unassigned: Option<Unassigned<'a>>,
}

/// What a target's rule looked at.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Detail<'a> {
    /// `consistent-hashing` (or `per-node`'s fallback to it): the partition of the target's
    /// address and that partition's owner now. The owner differs from the collector while an
    /// address changed in place waits for the next collector change (as in the Go allocator).
    Partition {
        /// Ring partition.
        partition: u32,
        /// Its owner.
        owner: Option<&'a str>,
    },
    /// `per-node`: the target's node and the collector that takes that node now (the smallest
    /// name among the collectors on it). It differs from the target's collector while a node
    /// changed in place waits for the next collector change (as in the Go allocator).
    Node {
        /// The target's node.
        node: &'a str,
        /// The collector on it.
        node_collector: Option<&'a str>,
    },
    /// `least-weighted` (or `per-node`'s fallback to it): sticky; the target went to the
    /// collector with the fewest targets (or least weight) when it arrived or lost its
    /// collector, and stays while that collector lives.
    Sticky {
        /// Whether loads are counted by weight.
        weighted: bool,
    },
    /// `bounded-hashing`: the target's candidate collectors in probe order, and the weight
    /// cap. Targets are visited heaviest first and each takes the first candidate with room
    /// under the cap (and in its job's quota); the collector is outside the candidates only
    /// when none had room.
    Probes {
        /// Distinct collectors of the probes, in order.
        candidates: Vec<&'a str>,
        /// ⌈(1+ε)·W/n⌉, or the absolute cap when lower.
        cap: u64,
        /// Weight of the target's collector (0: none).
        collector_weight: u64,
    },
    /// `rebalancing`: sticky within the weight band; the target moves only when its collector
    /// leaves or the band needs weight moved. With zones, targets are placed in their zone
    /// while its collectors have room, and brought back to it when they do again.
    Band {
        /// ⌊(1−s)·W/n⌋ (s: ε, or the zone skew when wider).
        floor: u64,
        /// ⌈(1+s)·W/n⌉.
        cap: u64,
        /// Weight of the target's collector (0: none).
        collector_weight: u64,
        /// The target's zone (zones on and its node has one).
        zone: Option<&'a str>,
        /// Its collector's zone (zones on and the collector's node has one).
        collector_zone: Option<&'a str>,
    },
    /// `per-node` without a fallback, for a target without a node: no rule applies.
    NoRule,
}

/// Why a target has no collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Unassigned<'a> {
    /// There are no collectors.
    NoCollectors,
    /// `per-node` without a fallback, and the target has no node.
    NoNode,
    /// `per-node`: no collector runs on the target's node.
    NoCollectorOnNode(&'a str),
    /// `bounded-hashing` with an absolute cap: the target fits under it on no collector.
    OverCap(u64),
    /// Its rule has a collector for it, which it gets at the next collector change (a node
    /// changed in place, as the Go allocator does).
    Waiting,
}

impl Allocator {
    /// Why a target is where it is, or why it is unassigned (`None`: unknown target). Cheap
    /// for every strategy but `bounded-hashing`, whose cap needs the total weight (one pass).
    pub fn explain(&self, key: TargetKey) -> Option<Explanation<'_>> {
        let slot = self.targets.find(key)?;
        let r = *self.targets.get(slot);
        let name = |id: u32| {
            opt(id)
                .and_then(|c| self.collectors.get(c))
                .map(|s| &*s.name)
        };
        let weight_of = |id: u32| opt(id).map_or(0, |c| self.loads.weight[c as usize]);
        let strategy = self.config.strategy;
        let node = opt(r.node).map(|n| self.nodes.name(n));
        let rule = match (strategy, node) {
            (Strategy::PerNode, None) => self.config.fallback.unwrap_or(Strategy::PerNode),
            _ => strategy,
        };
        let detail = match (&self.placer, rule) {
            (Placer::PerNode(pn), Strategy::PerNode) => match node {
                Some(node) => Detail::Node {
                    node,
                    node_collector: name(pn.choose(&r, &self.ctx())),
                },
                None => Detail::NoRule,
            },
            (_, Strategy::ConsistentHashing) => {
                let ring = self.placer.ring().expect("a ring decides this target");
                let partition = ring.bucket(&r);
                Detail::Partition {
                    partition,
                    owner: name(ring.owner(partition)),
                }
            }
            (_, Strategy::LeastWeighted) => Detail::Sticky {
                weighted: self.config.weighted,
            },
            (Placer::Bounded(b), _) => {
                let total = self.targets.iter().map(|(_, t)| u64::from(t.weight)).sum();
                Detail::Probes {
                    candidates: b.probe_ids(r.key).into_iter().filter_map(name).collect(),
                    cap: b.cap(total),
                    collector_weight: weight_of(r.collector),
                }
            }
            (Placer::Rebalancing(rb), _) => {
                let band = rb.band();
                let zone_name = |z: u32| (z != NONE).then(|| self.zones.name(z));
                let zones_on = self.config.zone_skew.is_some();
                Detail::Band {
                    floor: band.map_or(0, |b| b.floor),
                    cap: band.map_or(0, |b| b.cap),
                    collector_weight: weight_of(r.collector),
                    zone: zone_name(if zones_on {
                        self.zone_of_node(r.node)
                    } else {
                        NONE
                    }),
                    collector_zone: zone_name(if r.collector == NONE {
                        NONE
                    } else {
                        rb.zone_of_collector(r.collector)
                    }),
                }
            }
            _ => Detail::NoRule,
        };
        let unassigned = (r.collector == NONE).then(|| {
            if self.collectors.len() == 0 {
                return Unassigned::NoCollectors;
            }
            match (&detail, &self.placer) {
                (Detail::NoRule, _) => Unassigned::NoNode,
                (
                    Detail::Node {
                        node,
                        node_collector: None,
                    },
                    _,
                ) => Unassigned::NoCollectorOnNode(node),
                (_, Placer::Bounded(b)) if b.max_weight() > 0 => {
                    Unassigned::OverCap(b.max_weight())
                }
                _ => Unassigned::Waiting,
            }
        });
        Some(Explanation {
            key,
            strategy,
            rule,
            collector: name(r.collector),
            detail,
            unassigned,
        })
    }
}
