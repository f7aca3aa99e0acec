//! The hand-over window: a reassigned target is served to both its old and its new collector
//! until the new one has scraped it (the observed-load feed reports the target on the new
//! collector, see [`crate::loads`]) or the window's maximum passes, so no scrape interval is lost
//! while the new collector picks the target up.
//!
//! The price: during the window both collectors scrape the target and send the same series (same
//! labels) twice. A remote-write backend that deduplicates (or one replica's samples win, as with
//! an HA pair) absorbs that; one that rejects out-of-order or duplicate samples logs and drops the
//! second copy; a backend that stores both doubles the series for the window. Keep the window at
//! one or two scrape intervals.
//!
//! A window opens for a reassignment the publisher applies (after the movement budget) whose old
//! collector still exists, and closes when the target is scraped on the new collector, the window
//! passes, the old collector leaves (a collector that is gone is never served anything), or the
//! target moves again (a new window from its latest collector), is removed or loses its collector.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use allocator_core::{Allocator, Move, MoveKind, TargetKey};
use serde_json::{json, Value};

use crate::publish::Publisher;

/// One open window.
struct Open {
    old: Arc<str>,
    new: Arc<str>,
    until: Instant,
    /// The new collector has been seen scraping the target.
    scraped: bool,
}

/// How windows ended, since start.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Closed {
    /// The new collector scraped the target.
    pub scraped: u64,
    /// The window's maximum passed first.
    pub window: u64,
    /// The old collector left.
    pub collector_left: u64,
    /// The target moved again, lost its collector or was removed.
    pub moved: u64,
    /// Dropped with every other window (the publisher re-read every owner).
    pub cleared: u64,
}

/// Open windows (see the module documentation). Without a window nothing opens.
#[derive(Default)]
pub struct Handover {
    window: Option<Duration>,
    open: HashMap<TargetKey, Open, ahash::RandomState>,
    closed: Closed,
}

impl Handover {
    pub fn new(window: Option<Duration>) -> Handover {
        Handover {
            window,
            ..Handover::default()
        }
    }

    /// Targets served to two collectors now.
    pub fn open(&self) -> usize {
        self.open.len()
    }

    pub fn closed(&self) -> Closed {
        self.closed
    }

    /// Whether a window should close now: the allocation loop then runs a refresh even when
    /// its inputs did not change.
    pub fn due(&self, now: Instant) -> bool {
        self.open.values().any(|o| o.scraped || o.until <= now)
    }

    /// The moves just handed to the publisher: open windows for reassignments, close those of
    /// targets that lost their collector. Call right after `Publisher::moved` with the same
    /// moves, while `a` still names the collectors the diff removed.
    pub fn moved(&mut self, moves: &[Move], a: &Allocator, now: Instant, p: &mut Publisher) {
        let Some(window) = self.window else { return };
        for m in moves {
            let names = match (m.kind(), m.from, m.to) {
                (MoveKind::Reassigned, Some(from), Some(to)) => a
                    .collector_name(from)
                    .filter(|old| a.collector_id(old) == Some(from))
                    .zip(a.collector_name(to)),
                _ => None,
            };
            match names {
                Some((old, new)) if old != new => {
                    p.also_serve(m.key, Some(old));
                    let replaced = self.open.insert(
                        m.key,
                        Open {
                            old: old.into(),
                            new: new.into(),
                            until: now + window,
                            scraped: false,
                        },
                    );
                    if replaced.is_some() {
                        self.closed.moved += 1;
                    }
                }
                _ => {
                    if self.open.remove(&m.key).is_some() {
                        self.closed.moved += 1;
                        p.also_serve(m.key, None);
                    }
                }
            }
        }
    }

    /// The observed-load feed saw `key` scraped by `collector`.
    pub fn observed(&mut self, key: TargetKey, collector: &str) {
        if let Some(o) = self.open.get_mut(&key) {
            if *o.new == *collector {
                o.scraped = true;
            }
        }
    }

    /// Close the windows that are over: scraped on the new collector, past their maximum, or
    /// whose old collector left.
    pub fn expire(&mut self, a: &Allocator, now: Instant, p: &mut Publisher) {
        let mut over = Vec::new();
        for (k, o) in &self.open {
            if o.scraped {
                self.closed.scraped += 1;
            } else if o.until <= now {
                self.closed.window += 1;
            } else if a.collector_id(&o.old).is_some() {
                continue;
            } else {
                self.closed.collector_left += 1;
            }
            over.push(*k);
        }
        for k in over {
            self.open.remove(&k);
            p.also_serve(k, None);
        }
    }

    /// Close every window (the publisher reads every owner from the allocator).
    pub fn clear(&mut self, p: &mut Publisher) {
        for (k, _) in self.open.drain() {
            self.closed.cleared += 1;
            p.also_serve(k, None);
        }
    }

    /// What `/explain` adds for a target in its window.
    pub fn explain(&self, key: TargetKey, now: Instant) -> Option<Value> {
        let o = self.open.get(&key)?;
        Some(json!({
            "also_served_by": &*o.old,
            "until_scraped_by": &*o.new,
            "seconds_left": o.until.saturating_duration_since(now).as_secs_f64(),
        }))
    }
}

#[cfg(test)]
mod tests;
