//! The movement budget: the core decides where a target belongs; the service serves a reassigned
//! target where it was until the budget lets it move.
//!
//! It sits between a diff's moves and the publisher (`Publisher::moved`): reassignments that fit
//! the current interval's allowance pass, the others are queued (first in, first out) and the
//! target stays served by its old collector. Each interval the allowance refills and queued moves
//! are released in order, each to wherever the core has the target *then*. Never budgeted, so
//! never delayed: new targets (assigned from none), targets that lose their collector (removed or
//! unassigned), and moves away from a collector that left (a target is never served by a
//! collector that no longer exists). A queued target that the core moves back to the collector
//! serving it, or removes, or whose serving collector leaves, is released at once; one the core
//! moves elsewhere stays queued in its place and goes to its latest collector.
//!
//! The budget depends on time, so replicas with the same inputs agree on the core's placement
//! but not necessarily on what is served while moves are queued.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allocator_core::{Allocator, Move, MoveKind, TargetKey};
use serde_json::{json, Value};

/// The configured allowance per interval (`movement_budget:`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Limits {
    /// At most this many reassignments per interval.
    pub max_moves: Option<u64>,
    /// At most this share (percent, of the assigned weight at the interval's start) of the
    /// weight per interval. A single target heavier than the whole allowance moves alone, as
    /// the first move of an interval, so it is delayed but never stuck.
    pub max_weight_percent: Option<f64>,
    /// The length of an interval.
    pub interval: Duration,
}

/// A queued move: the collector serving the target, and its place in the queue.
struct Held {
    served: Arc<str>,
    seq: u64,
}

/// Counters since start, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Reassignments the budget queued.
    pub deferred: u64,
    /// Queued moves released by the budget as it refilled.
    pub released: u64,
    /// Queued moves that left the queue without the budget: the target was removed or lost
    /// its collector, the core moved it back where it is served, its serving collector left,
    /// or every owner was read again (`clear`). deferred = released + dropped + queued.
    pub dropped: u64,
}

/// The budget's state (see the module documentation). Without limits every move passes.
#[derive(Default)]
pub struct Budget {
    limits: Option<Limits>,
    held: HashMap<TargetKey, Held, ahash::RandomState>,
    /// Queue order: sequence number → target.
    order: BTreeMap<u64, TargetKey>,
    next_seq: u64,
    window_start: Option<Instant>,
    moves_left: u64,
    weight_left: u64,
    moved_in_window: u64,
    totals: Totals,
}

impl Budget {
    pub fn new(limits: Option<Limits>) -> Budget {
        Budget {
            limits,
            ..Budget::default()
        }
    }

    /// Moves waiting for budget.
    pub fn queued(&self) -> usize {
        self.held.len()
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// Whether a refill is due and would release something: the allocation loop then runs a
    /// refresh even when its inputs did not change.
    pub fn due(&self, now: Instant) -> bool {
        !self.held.is_empty() && self.window_elapsed(now)
    }

    fn window_elapsed(&self, now: Instant) -> bool {
        match (self.window_start, self.limits) {
            (Some(start), Some(l)) => now.saturating_duration_since(start) >= l.interval,
            _ => true,
        }
    }

    /// Start a new interval when the current one is over. Call once per refresh, before the
    /// diffs.
    pub fn refill(&mut self, now: Instant, a: &Allocator) {
        let Some(l) = self.limits else { return };
        if !self.window_elapsed(now) {
            return;
        }
        self.window_start = Some(now);
        self.moves_left = l.max_moves.unwrap_or(u64::MAX);
        self.weight_left = match l.max_weight_percent {
            Some(p) => {
                let total: u64 = a.collectors().map(|c| c.weight).sum();
                (total as f64 * p / 100.0).ceil() as u64
            }
            None => u64::MAX,
        };
        self.moved_in_window = 0;
    }

    /// Whether a move of `weight` fits what is left of this interval; takes it if so.
    fn take(&mut self, weight: u64) -> bool {
        if self.limits.is_none() {
            return true;
        }
        let weight_ok = weight <= self.weight_left || self.moved_in_window == 0;
        if self.moves_left == 0 || !weight_ok {
            return false;
        }
        self.moves_left -= 1;
        self.weight_left = self.weight_left.saturating_sub(weight);
        self.moved_in_window += 1;
        true
    }

    fn unhold(&mut self, key: TargetKey) -> Option<Held> {
        let h = self.held.remove(&key)?;
        self.order.remove(&h.seq);
        Some(h)
    }

    /// The moves of one diff that the publisher should apply now (into `out`); the others are
    /// queued. Call right after the diff, while `a` still names the collectors it removed.
    pub fn filter(&mut self, moves: &[Move], a: &Allocator, out: &mut Vec<Move>) {
        if self.limits.is_none() {
            out.extend_from_slice(moves);
            return;
        }
        for m in moves {
            if let Some(h) = self.held.get(&m.key) {
                let to = m.to.and_then(|c| a.collector_name(c));
                match to {
                    // Removed or unassigned: not budgeted.
                    None => {
                        self.unhold(m.key);
                        self.totals.dropped += 1;
                        out.push(*m);
                    }
                    // Back where it is served: no longer a move.
                    Some(name) if *name == *h.served => {
                        self.unhold(m.key);
                        self.totals.dropped += 1;
                    }
                    // Elsewhere: stays queued, released to wherever the core has it then.
                    Some(_) => {}
                }
                continue;
            }
            if m.kind() != MoveKind::Reassigned {
                out.push(*m);
                continue;
            }
            let from = m.from.expect("a reassignment has a source");
            let served = match a.collector_name(from) {
                // The source left with this diff: never served by a collector that is gone.
                Some(name) if a.collector_id(name) == Some(from) => name,
                _ => {
                    out.push(*m);
                    continue;
                }
            };
            let weight = a.target(m.key).map_or(1, |t| u64::from(t.weight));
            if self.order.is_empty() && self.take(weight) {
                out.push(*m);
                continue;
            }
            self.totals.deferred += 1;
            let seq = self.next_seq;
            self.next_seq += 1;
            self.order.insert(seq, m.key);
            self.held.insert(
                m.key,
                Held {
                    served: served.into(),
                    seq,
                },
            );
        }
    }

    /// After the refresh's diffs: release, not budgeted, the queued targets whose serving
    /// collector left or that the core no longer holds; then release queued moves in order as
    /// far as the interval's allowance goes. Each released move takes the target to the core's
    /// collector now.
    pub fn release(&mut self, a: &Allocator, out: &mut Vec<Move>) {
        if self.held.is_empty() {
            return;
        }
        let gone: Vec<TargetKey> = self
            .held
            .iter()
            .filter(|(k, h)| a.collector_id(&h.served).is_none() || a.collector_of(**k).is_none())
            .map(|(k, _)| *k)
            .collect();
        for key in gone {
            self.unhold(key);
            self.totals.dropped += 1;
            out.push(Move {
                key,
                from: None,
                to: a.collector_of(key),
            });
        }
        while let Some((&seq, &key)) = self.order.first_key_value() {
            let to = a
                .collector_of(key)
                .expect("held targets have a collector (checked above)");
            let weight = a.target(key).map_or(1, |t| u64::from(t.weight));
            if !self.take(weight) {
                break;
            }
            self.order.remove(&seq);
            let h = self.held.remove(&key).expect("queued targets are held");
            self.totals.released += 1;
            // From the collector that served it (alive, checked above): a reassignment.
            out.push(Move {
                key,
                from: a.collector_id(&h.served),
                to: Some(to),
            });
        }
    }

    /// Forget every queued move: the publisher will read every owner from the allocator
    /// (after a refused listing).
    pub fn clear(&mut self) {
        self.totals.dropped += self.held.len() as u64;
        self.held.clear();
        self.order.clear();
    }

    /// Every queued target with the collector serving it (no particular order).
    pub fn held(&self) -> impl Iterator<Item = (TargetKey, &str)> + '_ {
        self.held.iter().map(|(k, h)| (*k, &*h.served))
    }

    /// The collector serving `key` while its move waits for budget.
    pub fn served(&self, key: TargetKey) -> Option<&str> {
        self.held.get(&key).map(|h| &*h.served)
    }

    /// The digest of what is served (`/digest`): the core's digest of its placement, with each
    /// queued target's term for its core collector replaced by the term for its serving
    /// collector (the terms are XORed, so replacing is two XORs).
    pub fn served_digest(&self, a: &Allocator) -> u64 {
        let mut d = a.digest();
        for (key, h) in &self.held {
            if let Some(core) = a.collector_of(*key).and_then(|c| a.collector_name(c)) {
                d ^= digest_term(*key, core) ^ digest_term(*key, &h.served);
            }
        }
        d
    }

    /// What `/explain` adds for a queued target.
    pub fn explain(&self, key: TargetKey) -> Option<Value> {
        let h = self.held.get(&key)?;
        let ahead = self.order.range(..h.seq).count();
        Some(json!({
            "held": true,
            "served_by": &*h.served,
            "queue_position": ahead,
            "queued": self.held.len(),
        }))
    }
}

/// One target's term of the assignment digest, as `allocator-core/src/digest.rs` defines it:
/// xxh64(key as 8 little-endian bytes ‖ xxh64(collector name) as 8 little-endian bytes).
fn digest_term(key: TargetKey, collector: &str) -> u64 {
    use xxhash_rust::xxh64::xxh64;
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&key.0.to_le_bytes());
    b[8..].copy_from_slice(&xxh64(collector.as_bytes(), 0).to_le_bytes());
    xxh64(&b, 0)
}

#[cfg(test)]
mod tests;
