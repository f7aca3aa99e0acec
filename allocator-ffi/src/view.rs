//! The library-owned picture a caller reads after one call: a change's moves with the
//! collectors they name, or every collector with the owners of some keys. It is filled under
//! the same lock as the change or read it describes, so what it shows is one state that
//! existed; indexes into its own collector table replace collector ids, which are reused.

use allocator_core::{Allocator, CollectorId, Move, TargetKey};

use crate::types::{ta_collector_info, ta_move, ta_str, ta_summary, ta_view_data, TA_NO_COLLECTOR};

/// A view: create it with `ta_view_new`, pass it to changes and reads, look at it with
/// `ta_view_get`, free it with `ta_view_free`. Filling it again replaces what it held. One view
/// must not be used by two threads at once.
#[derive(Default)]
pub struct ta_view {
    moves: Vec<ta_move>,
    collectors: Vec<ta_collector_info>,
    /// Where each collector's name and node are in `text` (start, length), before the
    /// pointers of `collectors` are made (`text` may move while it grows).
    spans: Vec<[usize; 4]>,
    text: String,
    summary: ta_summary,
    /// Local index of each collector id seen in this fill (`TA_NO_COLLECTOR` otherwise).
    local: Vec<u32>,
    /// Ids in local-index order.
    ids: Vec<CollectorId>,
    /// Set after a read: the handle and collectors version whose collector table (every
    /// collector, sorted by name) `collectors`, `text`, `ids` and `local` hold. A read of the
    /// same version refreshes only the loads instead of copying every name again.
    read_table: Option<(u64, u64)>,
}

/// Totals, balance and move counters of a state.
pub(crate) fn summary_of(a: &Allocator) -> ta_summary {
    let s = a.summary();
    let m = a.move_totals();
    ta_summary {
        collectors: s.collectors as u64,
        targets: s.targets as u64,
        unassigned: s.unassigned as u64,
        max_targets: s.max_targets,
        min_targets: s.min_targets,
        mean_targets: s.mean_targets,
        max_weight: s.max_weight,
        min_weight: s.min_weight,
        mean_weight: s.mean_weight,
        moves_assigned: m.assigned,
        moves_unassigned: m.unassigned,
        moves_reassigned: m.reassigned,
    }
}

impl ta_view {
    fn clear(&mut self) {
        self.read_table = None;
        self.moves.clear();
        self.collectors.clear();
        self.spans.clear();
        self.text.clear();
        for id in self.ids.drain(..) {
            self.local[id.index() as usize] = TA_NO_COLLECTOR;
        }
    }

    /// The local index of a collector id, giving it the next one on first sight.
    #[inline]
    fn local(&mut self, id: Option<CollectorId>) -> u32 {
        let Some(id) = id else {
            return TA_NO_COLLECTOR;
        };
        let slot = id.index() as usize;
        if slot >= self.local.len() {
            self.local.resize(slot + 1, TA_NO_COLLECTOR);
        }
        if self.local[slot] == TA_NO_COLLECTOR {
            self.local[slot] = self.ids.len() as u32;
            self.ids.push(id);
        }
        self.local[slot]
    }

    /// The moves of the change just applied to `a` (under the same lock) and the collectors
    /// they reference. Collectors the change removed still have their names.
    pub(crate) fn fill_change(&mut self, a: &Allocator, moves: &[Move]) {
        self.clear();
        self.moves.reserve(moves.len());
        for m in moves {
            let from = self.local(m.from);
            let to = self.local(m.to);
            self.moves.push(ta_move {
                key: m.key.0,
                from,
                to,
            });
        }
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            let name = a.collector_name(id).unwrap_or_default();
            match a.stats_of(id) {
                Some(s) => self.push_collector(name, s.node, s.targets, s.weight),
                None => self.push_collector(name, None, 0, 0),
            }
        }
        self.finish(a);
    }

    /// Every collector (sorted by name) and the local index of the owner of each key
    /// (`TA_NO_COLLECTOR` for an unknown or unassigned target), from one state. `handle` is the
    /// id of the allocator's handle.
    pub(crate) fn fill_read(
        &mut self,
        a: &Allocator,
        handle: u64,
        keys: &[u64],
        owners: &mut [u32],
    ) {
        let table = (handle, a.collectors_version());
        if self.read_table == Some(table) && self.collectors.len() == a.collector_count() {
            // The same collectors in the same order as the last read: only their loads moved.
            self.moves.clear();
            for (info, c) in self.collectors.iter_mut().zip(a.collectors()) {
                info.targets = c.targets;
                info.weight = c.weight;
            }
        } else {
            self.clear();
            for c in a.collectors() {
                self.local(Some(c.id));
                self.push_collector(c.name, c.node, c.targets, c.weight);
            }
            self.point_strings();
            self.read_table = Some(table);
        }
        for (o, &k) in owners.iter_mut().zip(keys) {
            *o = match a.collector_of(TargetKey(k)) {
                Some(id) => self.local[id.index() as usize],
                None => TA_NO_COLLECTOR,
            };
        }
        self.summary = summary_of(a);
    }

    fn push_collector(&mut self, name: &str, node: Option<&str>, targets: u32, weight: u64) {
        let node = node.unwrap_or("");
        let start = self.text.len();
        self.text.push_str(name);
        self.text.push_str(node);
        self.spans
            .push([start, name.len(), start + name.len(), node.len()]);
        self.collectors.push(ta_collector_info {
            name: ta_str::EMPTY,
            node: ta_str::EMPTY,
            targets,
            weight,
        });
    }

    /// Point the collectors' strings into `text` (it no longer grows) and take the summary.
    fn finish(&mut self, a: &Allocator) {
        self.point_strings();
        self.summary = summary_of(a);
    }

    /// Point the collectors' strings into `text`, now that it no longer grows.
    fn point_strings(&mut self) {
        let base = self.text.as_ptr();
        for (c, s) in self.collectors.iter_mut().zip(&self.spans) {
            // SAFETY: every span lies inside `text` (it was pushed there), so the offsets stay
            // within one allocation.
            unsafe {
                c.name = ta_str {
                    ptr: base.add(s[0]),
                    len: s[1],
                };
                c.node = ta_str {
                    ptr: base.add(s[2]),
                    len: s[3],
                };
            }
        }
    }

    /// What the view holds, as pointers into it.
    pub(crate) fn data(&self) -> ta_view_data {
        ta_view_data {
            moves: self.moves.as_ptr(),
            n_moves: self.moves.len(),
            collectors: self.collectors.as_ptr(),
            n_collectors: self.collectors.len(),
            summary: self.summary,
        }
    }
}
