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
    /// Where each collector's name and node are in `names.text` (start, length), before the
    /// pointers of `collectors` are made (the text may move while it grows).
    spans: Vec<[usize; 4]>,
    /// Names and nodes of the collectors this view has shown, kept across fills.
    names: NameCache,
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

/// The names and nodes of collectors, by id, for one collector set (a handle's id and its
/// collectors version): a change names the same few collectors call after call, so their strings
/// are copied into the view once per collector set instead of once per fill.
#[derive(Default)]
struct NameCache {
    /// The collector set the cache holds names of.
    of: Option<(u64, u64)>,
    text: String,
    /// Per collector id slot: where its name and node are in `text`.
    spans: Vec<Option<[usize; 4]>>,
}

impl NameCache {
    /// Make the cache hold names of `a`'s collector set (a handle's `handle`).
    fn keep_for(&mut self, handle: u64, a: &Allocator) {
        let of = Some((handle, a.collectors_version()));
        if self.of != of {
            self.of = of;
            self.text.clear();
            self.spans.clear();
        }
    }

    /// Where the name and node of `id` are in `text`, copied there on first sight.
    #[inline]
    fn span(&mut self, id: CollectorId, name: &str, node: Option<&str>) -> [usize; 4] {
        let slot = id.index() as usize;
        if let Some(Some(span)) = self.spans.get(slot) {
            return *span;
        }
        let node = node.unwrap_or("");
        let start = self.text.len();
        self.text.push_str(name);
        self.text.push_str(node);
        let span = [start, name.len(), start + name.len(), node.len()];
        if slot >= self.spans.len() {
            self.spans.resize(slot + 1, None);
        }
        self.spans[slot] = Some(span);
        span
    }
}

/// The local index of a collector id in a fill (`local` by id slot, `ids` in local order),
/// giving it the next one on first sight. Inlined into the per-move loop: after the first few
/// moves of a change every id has been seen, so the common path is one load and one compare.
#[inline(always)]
fn local_index(local: &mut Vec<u32>, ids: &mut Vec<CollectorId>, id: Option<CollectorId>) -> u32 {
    let Some(id) = id else {
        return TA_NO_COLLECTOR;
    };
    match local.get(id.index() as usize) {
        Some(&l) if l != TA_NO_COLLECTOR => l,
        _ => first_sight(local, ids, id),
    }
}

/// [`local_index`] for an id not seen yet in this fill.
#[cold]
#[inline(never)]
fn first_sight(local: &mut Vec<u32>, ids: &mut Vec<CollectorId>, id: CollectorId) -> u32 {
    let slot = id.index() as usize;
    if slot >= local.len() {
        local.resize(slot + 1, TA_NO_COLLECTOR);
    }
    let l = ids.len() as u32;
    local[slot] = l;
    ids.push(id);
    l
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
    /// Nothing: no moves, no collectors, a zero summary (after a failed call).
    pub(crate) fn empty(&mut self) {
        self.clear();
        self.summary = ta_summary::default();
    }

    fn clear(&mut self) {
        self.read_table = None;
        self.moves.clear();
        self.collectors.clear();
        self.spans.clear();
        for id in self.ids.drain(..) {
            self.local[id.index() as usize] = TA_NO_COLLECTOR;
        }
    }

    /// The local index of a collector id, giving it the next one on first sight.
    #[inline]
    fn local(&mut self, id: Option<CollectorId>) -> u32 {
        local_index(&mut self.local, &mut self.ids, id)
    }

    /// The moves of the change just applied to `a` (under the same lock) and the collectors
    /// they reference. Collectors the change removed still have their names. `handle` is the
    /// id of the allocator's handle.
    pub(crate) fn fill_change(&mut self, a: &Allocator, handle: u64, moves: &[Move]) {
        self.clear();
        self.names.keep_for(handle, a);
        let (local, ids) = (&mut self.local, &mut self.ids);
        self.moves.extend(moves.iter().map(|m| ta_move {
            key: m.key.0,
            from: local_index(local, ids, m.from),
            to: local_index(local, ids, m.to),
        }));
        for i in 0..self.ids.len() {
            let id = self.ids[i];
            match a.stats_of(id) {
                Some(s) => self.push_collector(id, s.name, s.node, s.targets, s.weight),
                // Removed by this change: its name is still known, its load is none.
                None => {
                    let name = a.collector_name(id).unwrap_or_default();
                    self.push_collector(id, name, None, 0, 0)
                }
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
            for (info, (targets, weight)) in self.collectors.iter_mut().zip(a.collector_loads()) {
                info.targets = targets;
                info.weight = weight;
            }
        } else {
            self.clear();
            self.names.keep_for(handle, a);
            for c in a.collectors() {
                self.local(Some(c.id));
                self.push_collector(c.id, c.name, c.node, c.targets, c.weight);
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

    fn push_collector(
        &mut self,
        id: CollectorId,
        name: &str,
        node: Option<&str>,
        targets: u32,
        weight: u64,
    ) {
        let span = self.names.span(id, name, node);
        self.spans.push(span);
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

    /// Point the collectors' strings into the names' text, now that it no longer grows.
    fn point_strings(&mut self) {
        let base = self.names.text.as_ptr();
        for (c, s) in self.collectors.iter_mut().zip(&self.spans) {
            // SAFETY: every span lies inside the names' text (it was pushed there), so the offsets stay
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
