//! The diff engine: everything that can fail is validated first, then removals, in-place
//! updates, the collector change and new placements run, each recording the moves it causes.

use crate::batch::{BatchDiff, TargetBatch, TargetColumns, NO_NODE};
use crate::diff::{CollectorSpec, Diff, Move};
use crate::error::Error;
use crate::ids::{opt, CollectorId, TargetKey, NONE};
use crate::strategy::{Ctx, Member, Prepared, ZoneView};
use crate::targets::TargetRecord;

use super::{Allocator, Set};

/// Capacity of the moves buffer kept between diffs.
const MOVES_KEPT: usize = 64 * 1024;

/// From this many new targets a first allocation fills the key index in bulk
/// ([`crate::targets::Targets::insert_fresh`]): then the index (~10 bytes a target) outgrows a
/// core's L2 cache, where a random access per row costs more than the bulk fill's extra passes.
const BULK_INDEX_FROM: usize = 1 << 16;

/// The same for a rule that places targets independently of each other (no key order): there
/// the bulk fill also lets [`Allocator::place_fresh`] place the batch in one pass over the
/// fresh records, which saves more than the fill's extra passes cost well below the size
/// where the index outgrows L2 (callgrind, 20,000 targets on 10 collectors: 622 → 513
/// instructions a target; wall time level within the noise of a loaded machine).
const BULK_PLACE_FROM: usize = 4096;

/// A collector change, validated and with the strategy's new tables computed.
struct CollectorPlan<'a> {
    removed: Vec<CollectorId>,
    added: Vec<(&'a str, u32)>,
    renoded: Vec<(CollectorId, u32)>,
    /// The collector set after the change, sorted by name (the member order of `prepared`).
    members: Vec<MemberRef>,
    prepared: Prepared,
}

#[derive(Clone, Copy)]
enum MemberRef {
    Kept(CollectorId),
    Added(usize),
}

/// A batch's upserts with its job and node tables resolved to the allocator's interned ids.
struct Rows<'b> {
    batch: TargetBatch<'b>,
    /// Interned job id of each entry of `batch.job_names`.
    jobs: Vec<u32>,
    /// Interned node id (or NONE) of each entry of `batch.node_names`.
    nodes: Vec<u32>,
}

impl Rows<'_> {
    fn len(&self) -> usize {
        self.batch.len()
    }

    /// Every row's record, sorted by key, when no key repeats and the keys spread over their
    /// range as hashes do; `None` otherwise (the caller then takes the general path).
    ///
    /// Two counting sorts by the key's top bits, then an insertion sort of each group of ~8:
    /// the records are first written into at most 256 buckets, few enough that each bucket's
    /// next cache line and page stay cached while it fills, then each bucket (~160 KB at 1M
    /// targets) is sorted by its next bits through a reused scratch copy, within the cache. A
    /// comparison sort of (key, row) followed by a gather of each row's columns in key order
    /// cost ~20 comparisons and five random reads a row; writing each record straight to its
    /// final group of ~8 (131,072 groups at 1M), a cache and TLB miss a row (1,024 buckets
    /// measured between the two, 256 best).
    fn records_by_key(&self) -> Option<Vec<TargetRecord>> {
        let keys = self.batch.keys;
        let n = keys.len();
        let bits = (n / 8).max(2).next_power_of_two().trailing_zeros().min(24);
        let high = bits.min(8);
        let low = bits - high;
        let bucket_of = |k: u64| (k >> (64 - high)) as usize;
        // The next `low` bits (none when `low` is 0).
        let group_of = |k: u64| ((k << high) >> 1 >> (63 - low)) as usize;
        let mut starts = vec![0u32; (1 << high) + 1];
        for &k in keys {
            starts[bucket_of(k) + 1] += 1;
        }
        for b in 1..starts.len() {
            starts[b] += starts[b - 1];
        }
        let empty = TargetRecord {
            key: 0,
            placement: 0,
            job: 0,
            node: NONE,
            weight: 0,
            collector: NONE,
            bucket_pos: 0,
        };
        let mut records = vec![empty; n];
        let mut at = starts.clone();
        for i in 0..n {
            let r = self.record(i);
            let next = &mut at[bucket_of(r.key)];
            records[*next as usize] = r;
            *next += 1;
        }
        drop(at);
        let mut scratch: Vec<TargetRecord> = Vec::new();
        let mut groups = vec![0u32; (1 << low) + 1];
        for b in 0..1 << high {
            let bucket = &mut records[starts[b] as usize..starts[b + 1] as usize];
            groups.fill(0);
            for r in bucket.iter() {
                groups[group_of(r.key) + 1] += 1;
            }
            // Keys that crowd into a few groups (not hashes): an insertion sort would be
            // quadratic.
            if groups.iter().any(|&c| c > 64) {
                return None;
            }
            for g in 1..groups.len() {
                groups[g] += groups[g - 1];
            }
            scratch.clear();
            scratch.extend_from_slice(bucket);
            for r in &scratch {
                let next = &mut groups[group_of(r.key)];
                bucket[*next as usize] = *r;
                *next += 1;
            }
            // `groups[g]` is now the end of group `g`. Keys of different groups differ in
            // their top bits, so sorting each group sorts all, and a repeat can only meet its
            // key there.
            let mut begin = 0;
            for &end in &groups[..1 << low] {
                let group = &mut bucket[begin..end as usize];
                for i in 1..group.len() {
                    let mut j = i;
                    while j > 0 && group[j - 1].key > group[j].key {
                        group.swap(j - 1, j);
                        j -= 1;
                    }
                    if j > 0 && group[j - 1].key == group[j].key {
                        return None;
                    }
                }
                begin = end as usize;
            }
        }
        Some(records)
    }

    /// The record row `i` describes, not yet assigned.
    #[inline]
    fn record(&self, i: usize) -> TargetRecord {
        let b = &self.batch;
        let node = match b.nodes.get(i) {
            Some(&n) if n != NO_NODE => self.nodes[n as usize],
            _ => NONE,
        };
        TargetRecord {
            key: b.keys[i],
            placement: b.placements[i],
            job: self.jobs[b.jobs[i] as usize],
            node,
            weight: b.weight(i),
            collector: NONE,
            bucket_pos: 0,
        }
    }
}

impl Allocator {
    /// Apply a diff; returns the moves it caused (also readable later with
    /// [`Allocator::last_moves`]). On error nothing has changed. A convenience over
    /// [`Allocator::apply_batch`], which takes the targets in columns.
    ///
    /// The moves are the same set whatever the process or binding; their order is the same for
    /// the same diff history, but is not otherwise specified (a restored copy, whose internal
    /// lists are rebuilt, may list the same moves in another order): sort them if order matters.
    pub fn apply(&mut self, diff: &Diff<'_>) -> Result<&[Move], Error> {
        let columns = TargetColumns::from_specs(&diff.upsert);
        let remove: Vec<u64> = diff.remove.iter().map(|k| k.0).collect();
        self.apply_batch(&BatchDiff {
            upsert: columns.batch(),
            remove: &remove,
            add_collectors: &diff.add_collectors,
            remove_collectors: &diff.remove_collectors,
        })
    }

    /// Apply a diff whose targets are in columns; returns the moves it caused. On error nothing
    /// has changed.
    pub fn apply_batch(&mut self, diff: &BatchDiff<'_>) -> Result<&[Move], Error> {
        // Validation: everything that can fail happens before any state changes. Interning
        // names is the one exception, and an unused name changes no decision.
        diff.upsert.validate()?;
        let plan = if diff.add_collectors.is_empty() && diff.remove_collectors.is_empty() {
            None
        } else {
            Some(self.plan_collectors(diff.add_collectors, diff.remove_collectors)?)
        };
        self.validate_removals(diff.remove, &diff.upsert)?;
        let rows = self.intern_tables(diff.upsert)?;

        self.collectors.release_retired();
        self.moves.clear();
        // A full allocation's moves can be as large as the state; do not keep that buffer.
        self.moves.shrink_to(MOVES_KEPT);
        self.remove_targets(diff.remove);
        let new = self.update_existing(&rows);
        if let Some(plan) = plan {
            self.change_collectors(plan)?;
        }
        self.insert_new(&rows, new.as_deref());
        self.settle();
        debug_assert!(self
            .targets
            .iter()
            .all(|(_, r)| r.collector == NONE || self.collectors.is_alive(r.collector)));
        debug_assert_eq!(self.digest, self.recompute_digest());
        self.totals.count(&self.moves);
        Ok(&self.moves)
    }

    fn plan_collectors<'d>(
        &mut self,
        add_collectors: &[CollectorSpec<'d>],
        remove_collectors: &[&'d str],
    ) -> Result<CollectorPlan<'d>, Error> {
        let mut removing: Set<&str> = Set::default();
        for &name in remove_collectors {
            if self.collectors.find(name).is_none() {
                return Err(Error::UnknownCollector(name.to_owned()));
            }
            if !removing.insert(name) {
                return Err(Error::DuplicateCollector(name.to_owned()));
            }
        }
        let mut adding: Set<&str> = Set::default();
        let mut added = Vec::new();
        let mut renoded = Vec::new();
        for c in add_collectors {
            if c.name.is_empty() {
                return Err(Error::EmptyCollectorName);
            }
            if !adding.insert(c.name) {
                return Err(Error::DuplicateCollector(c.name.to_owned()));
            }
            let node = match c.node.filter(|n| !n.is_empty()) {
                Some(n) => self.nodes.intern(n, "nodes")?,
                None => NONE,
            };
            match self.collectors.find(c.name) {
                Some(id) if removing.contains(c.name) => renoded.push((id, node)),
                Some(_) => return Err(Error::DuplicateCollector(c.name.to_owned())),
                None => added.push((c.name, node)),
            }
        }
        let removed: Vec<CollectorId> = remove_collectors
            .iter()
            .filter(|n| !adding.contains(*n))
            .filter_map(|n| self.collectors.find(n))
            .collect();
        if self.collectors.len() - removed.len() + added.len() >= NONE as usize {
            return Err(Error::Capacity("collectors"));
        }

        // The collector set after the change, sorted by name, and the strategy's tables for it.
        let mut refs: Vec<(MemberRef, &str, u32)> = Vec::new();
        for &id in self.collectors.sorted() {
            if removed.contains(&id) {
                continue;
            }
            let slot = self
                .collectors
                .get(id.0)
                .expect("sorted collectors are alive");
            let node = renoded
                .iter()
                .find(|(r, _)| *r == id)
                .map_or(slot.node, |&(_, n)| n);
            refs.push((MemberRef::Kept(id), &slot.name, node));
        }
        for (i, &(name, node)) in added.iter().enumerate() {
            refs.push((MemberRef::Added(i), name, node));
        }
        refs.sort_unstable_by(|a, b| a.1.cmp(b.1));
        let members: Vec<Member<'_>> = refs
            .iter()
            .map(|&(_, name, node)| Member { name, node })
            .collect();
        let prepared = self.placer.prepare(&members, self.nodes.len())?;
        Ok(CollectorPlan {
            removed,
            added,
            renoded,
            members: refs.into_iter().map(|(r, _, _)| r).collect(),
            prepared,
        })
    }

    fn validate_removals(&self, remove: &[u64], upsert: &TargetBatch<'_>) -> Result<(), Error> {
        for &key in remove {
            if self.targets.find(TargetKey(key)).is_none() {
                return Err(Error::UnknownTarget(TargetKey(key)));
            }
        }
        if !remove.is_empty() && !upsert.is_empty() {
            let removed: Set<u64> = remove.iter().copied().collect();
            if let Some(&key) = upsert.keys.iter().find(|k| removed.contains(*k)) {
                return Err(Error::ConflictingTarget(TargetKey(key)));
            }
        }
        Ok(())
    }

    /// Intern the batch's job and node tables: each name once per batch.
    fn intern_tables<'b>(&mut self, batch: TargetBatch<'b>) -> Result<Rows<'b>, Error> {
        let mut jobs = Vec::with_capacity(batch.job_names.len());
        for &name in batch.job_names {
            jobs.push(self.jobs.intern(name, "jobs")?);
        }
        let mut nodes = Vec::with_capacity(batch.node_names.len());
        for &name in batch.node_names {
            nodes.push(match name {
                "" => NONE,
                n => self.nodes.intern(n, "nodes")?,
            });
        }
        self.loads
            .grow(self.collectors.slot_count(), self.jobs.len());
        Ok(Rows { batch, jobs, nodes })
    }

    // ---- mutation ---------------------------------------------------------------------------

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        Ctx {
            collectors: &self.collectors,
            loads: &self.loads,
            weighted: self.config.weighted,
        }
    }

    /// Point a target at another collector (or none), recording the move.
    fn reassign(&mut self, slot: u32, to: u32) {
        let r = self.targets.get_mut(slot);
        let from = r.collector;
        if from == to {
            return;
        }
        r.collector = to;
        let (key, job, weight) = (r.key, r.job, r.weight);
        self.loads.sub(from, job, weight);
        self.loads.add(to, job, weight);
        self.digest ^= self.digest_pair(key, from) ^ self.digest_pair(key, to);
        self.moves.push(Move {
            key: TargetKey(key),
            from: opt(from).map(CollectorId),
            to: opt(to).map(CollectorId),
        });
    }

    fn remove_targets(&mut self, keys: &[u64]) {
        for &key in keys {
            // A key listed twice is removed once.
            let Some(slot) = self.targets.find(TargetKey(key)) else {
                continue;
            };
            self.reassign(slot, NONE);
            let r = *self.targets.get(slot);
            self.loads.sub(NONE, r.job, r.weight);
            self.loads.job_total[r.job as usize] -= 1;
            let bucket = self.placer.bucket(&r);
            self.buckets
                .remove(bucket, slot, self.targets.records_mut());
            self.stale.remove(&slot);
            self.placer.touch(slot);
            self.targets.remove(slot);
        }
    }

    fn change_collectors(&mut self, plan: CollectorPlan<'_>) -> Result<(), Error> {
        self.collector_changes += 1;
        let had_unassigned = self.loads.unassigned > 0;
        for &id in &plan.removed {
            self.collectors.retire(id);
        }
        for &(id, node) in &plan.renoded {
            self.collectors.set_node(id, node);
        }
        let mut new_ids = Vec::with_capacity(plan.added.len());
        for &(name, node) in &plan.added {
            new_ids.push(self.collectors.add(name, node)?.0);
        }
        self.loads
            .grow(self.collectors.slot_count(), self.jobs.len());
        for &id in &new_ids {
            self.loads.reset_collector(id);
        }
        self.collectors.resort();
        let ids: Vec<u32> = plan
            .members
            .iter()
            .map(|m| match *m {
                MemberRef::Kept(id) => id.0,
                MemberRef::Added(i) => new_ids[i],
            })
            .collect();
        let mut affected = Vec::new();
        self.placer.commit(plan.prepared, &ids, &mut affected);

        // Targets of buckets whose collector changed, then targets left stale by in-place
        // changes: their rule decides afresh (neither depends on visiting order).
        let buckets = std::mem::take(&mut self.buckets);
        for &bucket in &affected {
            for &slot in buckets.slots(bucket) {
                self.reevaluate(slot);
            }
        }
        self.buckets = buckets;
        // In key order: the set is hashed with a per-process seed, and its order would make the
        // order of the moves differ from one run to the next.
        let mut stale: Vec<u32> = self.stale.drain().collect();
        stale.sort_unstable_by_key(|&slot| self.targets.get(slot).key);
        for slot in stale {
            self.reevaluate(slot);
        }

        // Sticky targets whose collector left (or that waited for any collector): placed in key
        // order, because each placement changes the loads the next one reads.
        let any_collectors = self.collectors.len() > 0;
        if self.placer.order_matters()
            && (!plan.removed.is_empty() || (had_unassigned && any_collectors))
        {
            // A plain loop: valgrind flags the optimized `collect` of a filtered iterator here
            // (a false positive on a stack temporary) and the C tests run under valgrind.
            let mut orphans: Vec<(u64, u32)> = Vec::new();
            for (slot, r) in self.targets.iter() {
                if self.placer.sticky(r) && !self.collectors.is_alive(r.collector) {
                    orphans.push((r.key, slot));
                }
            }
            orphans.sort_unstable();
            let mut run = self.placer.run(&self.ctx(), orphans.len());
            for (_, slot) in orphans {
                let t = self.targets.get(slot);
                let job = t.job;
                let to = match &mut run {
                    Some(run) if self.placer.least_weighted(t) => run.choose(job, &self.loads),
                    _ => self.placer.choose(t, &self.ctx()),
                };
                self.reassign(slot, to);
                if let Some(run) = &mut run {
                    run.placed(to, job, &self.loads);
                }
            }
        }
        Ok(())
    }

    /// What a strategy that decides after the whole diff (`bounded-hashing`) changes:
    /// `(slot, collector)` per target it now puts elsewhere.
    pub(crate) fn settled(&mut self) -> Vec<(u32, u32)> {
        let mut changes = Vec::new();
        let zones = ZoneView {
            node_zones: &self.node_zones,
            names: self.zones.names(),
            collectors: &self.collectors,
        };
        self.placer.settle(
            &self.targets,
            self.jobs.names(),
            &self.loads.job_total,
            &zones,
            &mut changes,
        );
        changes
    }

    /// Let a strategy that decides after the whole diff (`bounded-hashing`) move its targets.
    pub(super) fn settle(&mut self) {
        for (slot, to) in self.settled() {
            self.reassign(slot, to);
        }
    }

    fn reevaluate(&mut self, slot: u32) {
        let r = self.targets.get(slot);
        if self.placer.sticky(r) {
            return;
        }
        let to = self.placer.choose(r, &self.ctx());
        self.reassign(slot, to);
    }

    /// Update the targets that existed before this diff, in place; return the positions of the
    /// upserts that name new targets. Runs before a collector change, so the change re-places
    /// any target these updates left off its rule: after a diff that changes collectors, no
    /// target of a non-sticky rule is left stale.
    /// `None` means every upsert names a new target.
    fn update_existing(&mut self, rows: &Rows<'_>) -> Option<Vec<u32>> {
        if self.targets.len() == 0 {
            // Nothing exists yet (a full allocation): every upsert is new, no lookups needed.
            return None;
        }
        let mut new = Vec::new();
        for i in 0..rows.len() {
            match self.targets.find(rows.batch.key(i)) {
                Some(slot) => self.update_in_place(slot, rows.record(i)),
                None => new.push(i as u32),
            }
        }
        Some(new)
    }

    /// Insert the new targets (`None`: every row), then place them: a key repeated in one diff
    /// is placed once, by its last fields (the last one wins, as in a listing).
    fn insert_new(&mut self, rows: &Rows<'_>, new: Option<&[u32]>) {
        let count = new.map_or(rows.len(), <[u32]>::len);
        if count == 0 {
            return;
        }
        let row = |i: usize| new.map_or(i, |new| new[i] as usize);
        // A first allocation in key order, every key distinct: the records sorted by key in
        // bulk, then placed in one pass.
        if self.placer.order_matters() && self.targets.is_pristine() && count >= BULK_INDEX_FROM {
            debug_assert!(new.is_none());
            if let Some(records) = rows.records_by_key() {
                self.targets.insert_fresh_distinct(records);
                return self.place_fresh_in_order();
            }
        }
        self.targets.reserve(count);
        // Sticky placements depend on the ones before them: they are made in key order. The
        // rows are sorted by (key, position) up front, from the keys themselves (sorting slots
        // by their records' keys reads a record at random per comparison); inserted in that
        // order, the placement loop below walks them without another sort, and a repeated key's
        // rows stay in batch order, the last one winning.
        let order: Option<Vec<(u64, u32)>> = self.placer.order_matters().then(|| {
            let mut keyed: Vec<(u64, u32)> = (0..count)
                .map(|i| (rows.batch.keys[row(i)], i as u32))
                .collect();
            keyed.sort_unstable();
            keyed
        });
        let at = |n: usize| order.as_ref().map_or(n, |o| o[n].1 as usize);
        // A first allocation fills the key index in bulk, in its memory order; its records are
        // then read back from their slots, in order, instead of gathered from the rows again.
        // (A pristine table has no existing targets, so every row is new: `row` is the identity.)
        debug_assert!(!self.targets.is_pristine() || new.is_none());
        let bulk_from = match order {
            Some(_) => BULK_INDEX_FROM,
            None => BULK_PLACE_FROM,
        };
        let slots = (self.targets.is_pristine() && count >= bulk_from).then(|| {
            self.targets.insert_fresh(
                count,
                |n| order.as_ref().map_or(rows.batch.keys[n], |o| o[n].0),
                |n| rows.record(at(n)),
            )
        });
        if matches!(slots, Some(None)) && order.is_none() {
            // Every key distinct, in batch order, placed independently of each other.
            return self.place_fresh();
        }
        // `None` from the bulk fill: no key repeats, row `n` is slot `n`.
        let slots: Option<Vec<u32>> =
            slots.map(|s| s.unwrap_or_else(|| (0..count as u32).collect()));
        // Each new target's bucket, computed once: it sizes the bucket lists before they fill
        // (no list grows by doubling during a full allocation) and places the target.
        let buckets: Vec<u32> = (0..count)
            .map(|i| self.placer.bucket(&rows.record(row(i))))
            .collect();
        self.buckets.reserve(&buckets);
        let mut next_slot = 0;
        let mut fresh: Vec<(u32, u32)> = Vec::with_capacity(count);
        for n in 0..count {
            let i = at(n);
            let (slot, inserted, record) = match &slots {
                Some(slots) if slots[n] == next_slot => {
                    next_slot += 1;
                    (slots[n], true, *self.targets.get(slots[n]))
                }
                Some(slots) => (slots[n], false, rows.record(row(i))),
                None => {
                    let record = rows.record(row(i));
                    let (slot, inserted) = self.targets.find_or_insert(record);
                    (slot, inserted, record)
                }
            };
            // In key order, `buckets[i]` is a random read; a sticky rule's bucket (a node, or
            // none) is cheaper to compute again from the record at hand.
            let bucket = match order {
                Some(_) => self.placer.bucket(&record),
                None => buckets[i],
            };
            if !inserted {
                // A repeat of a key first inserted by this diff: it takes the later fields.
                self.update_in_place(slot, record);
                continue;
            }
            self.buckets
                .insert(bucket, slot, self.targets.records_mut());
            self.loads.job_total[record.job as usize] += 1;
            self.loads.add(NONE, record.job, record.weight);
            self.placer.touch(slot);
            fresh.push((slot, bucket));
        }
        drop((buckets, slots, order));
        self.moves.reserve(fresh.len());
        let mut run = self.placer.run(&self.ctx(), fresh.len());
        for (slot, bucket) in fresh {
            // A repeat of a new key in this diff may have changed its fields, its bucket too.
            let changed = !self.stale.is_empty() && self.stale.remove(&slot);
            let t = self.targets.get(slot);
            let job = t.job;
            let to = match &mut run {
                Some(run) if self.placer.least_weighted(t) => run.choose(job, &self.loads),
                _ if changed => self.placer.choose(t, &self.ctx()),
                _ => self.placer.choose_in(t, bucket, &self.ctx()),
            };
            self.reassign(slot, to);
            if let Some(run) = &mut run {
                run.placed(to, job, &self.loads);
            }
        }
    }

    /// The bucket of every record of a fresh table, with room reserved for them in the bucket
    /// lists (one pass to count, so the lists are sized once).
    fn reserve_fresh_buckets(&mut self) -> Vec<u32> {
        let placer = &self.placer;
        let buckets: Vec<u32> = self
            .targets
            .records()
            .iter()
            .map(|r| placer.bucket(r))
            .collect();
        self.buckets.reserve(&buckets);
        buckets
    }

    /// Place a first allocation whose records [`Targets::insert_fresh`] has just written to
    /// slots `0..n` (every key distinct, row `i` in slot `i`), for a rule that places each
    /// target independently of the others (no sticky rule, so no key order): what the general
    /// path of [`Allocator::insert_new`] does for these records, in one pass over them, without
    /// its per-target list of new slots, its check for a changed repeat or the bookkeeping of a
    /// move from an earlier collector (none had one).
    ///
    /// The bucket lists, loads and moves come out the same, in the same order: a placement reads
    /// neither the bucket lists nor the loads here (that is what `order_matters` says), so
    /// interleaving them with the bucket inserts changes no decision.
    ///
    /// [`Targets::insert_fresh`]: crate::targets::Targets::insert_fresh
    fn place_fresh(&mut self) {
        debug_assert!(!self.placer.order_matters() && self.stale.is_empty());
        let buckets = self.reserve_fresh_buckets();
        self.moves.reserve(buckets.len());
        for (slot, &bucket) in buckets.iter().enumerate() {
            let slot = slot as u32;
            self.buckets
                .insert(bucket, slot, self.targets.records_mut());
            self.placer.touch(slot);
            let t = *self.targets.get(slot);
            self.loads.job_total[t.job as usize] += 1;
            let to = self.placer.choose_in(&t, bucket, &self.ctx());
            self.place_first(slot, &t, to);
        }
    }

    /// A fresh record's first placement: on collector `to`, or left unassigned (`NONE`: no
    /// collector for it yet).
    #[inline]
    fn place_first(&mut self, slot: u32, t: &TargetRecord, to: u32) {
        if to == NONE {
            self.loads.unassigned += 1;
            return;
        }
        self.targets.get_mut(slot).collector = to;
        self.loads.add(to, t.job, t.weight);
        // From no collector: the old pair added nothing to the digest.
        self.digest ^= self.digest_pair(t.key, to);
        self.moves.push(Move {
            key: TargetKey(t.key),
            from: None,
            to: Some(CollectorId(to)),
        });
    }

    /// Place a first allocation whose records [`Targets::insert_fresh_distinct`] has just
    /// written to slots `0..n` in key order (every key distinct), for a rule whose placements
    /// depend on the ones before them: what the general path of [`Allocator::insert_new`] does
    /// for these records, in one pass over them instead of a pass of bucket inserts and a
    /// placement pass over a list of new slots.
    ///
    /// The bucket lists, loads, digest and moves come out the same, in the same order: a
    /// placement reads the collectors' counts, weights and per-job counts, which the bucket
    /// inserts, the job totals and the count of unassigned targets do not touch.
    ///
    /// [`Targets::insert_fresh_distinct`]: crate::targets::Targets::insert_fresh_distinct
    fn place_fresh_in_order(&mut self) {
        debug_assert!(self.stale.is_empty());
        let n = self.targets.records().len();
        if self.placer.has_buckets() {
            self.reserve_fresh_buckets();
        }
        self.moves.reserve(n);
        let mut run = self.placer.run(&self.ctx(), n);
        for slot in 0..n as u32 {
            let t = *self.targets.get(slot);
            let bucket = self.placer.bucket(&t);
            self.buckets
                .insert(bucket, slot, self.targets.records_mut());
            self.placer.touch(slot);
            self.loads.job_total[t.job as usize] += 1;
            let to = match &mut run {
                Some(run) if self.placer.least_weighted(&t) => run.choose(t.job, &self.loads),
                _ => self.placer.choose_in(&t, bucket, &self.ctx()),
            };
            self.place_first(slot, &t, to);
            if let Some(run) = &mut run {
                run.placed(to, t.job, &self.loads);
            }
        }
    }

    /// An existing target changed: it keeps its collector (as in the Go allocator); if its rule
    /// would now pick another, it is re-placed at the next collector change.
    fn update_in_place(&mut self, slot: u32, mut record: TargetRecord) {
        let old = *self.targets.get(slot);
        record.collector = old.collector;
        record.bucket_pos = old.bucket_pos;
        if old == record {
            return;
        }
        self.placer.touch(slot);
        self.loads.sub(old.collector, old.job, old.weight);
        self.loads.job_total[old.job as usize] -= 1;
        let (old_bucket, new_bucket) = (self.placer.bucket(&old), self.placer.bucket(&record));
        if old_bucket != new_bucket {
            self.buckets
                .remove(old_bucket, slot, self.targets.records_mut());
        }
        *self.targets.get_mut(slot) = record;
        if old_bucket != new_bucket {
            self.buckets
                .insert(new_bucket, slot, self.targets.records_mut());
        }
        self.loads.add(record.collector, record.job, record.weight);
        self.loads.job_total[record.job as usize] += 1;
        let stale = !self.placer.sticky(&record)
            && self.placer.choose(&record, &self.ctx()) != record.collector;
        if stale {
            self.stale.insert(slot);
        } else {
            self.stale.remove(&slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Strategy};
    use crate::ids::PlacementHash;
    use crate::TargetSpec;

    /// Distinct keys with nodes, weights and three jobs, in no key order.
    fn targets(n: u64) -> Vec<TargetSpec<'static>> {
        const NODES: [&str; 5] = ["n0", "n1", "n2", "n3", "n4"];
        (0..n)
            .map(|i| {
                TargetSpec::new(
                    TargetKey(i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555),
                    PlacementHash(i.wrapping_mul(7919) ^ (i << 40)),
                    ["a", "b", "c"][(i % 3) as usize],
                )
                .with_weight((i % 17 + 1) as u32)
                .with_node((i % 4 != 0).then(|| NODES[(i as usize / 4) % NODES.len()]))
            })
            .collect()
    }

    /// A fresh allocator and one that held a target before (a used slot, so no bulk fill and
    /// no one-pass placement), whose freed slot the first new target takes, so both number the
    /// slots alike: each takes the collectors, then `upsert` in one diff; the records (slots,
    /// buckets, collectors), bucket lists, loads, digest and the moves in order must be equal.
    fn assert_fresh_as_general(
        config: Config,
        add: &[CollectorSpec<'_>],
        upsert: &[TargetSpec<'_>],
    ) {
        let mut fresh = Allocator::new(config).unwrap();
        let mut general = Allocator::new(config).unwrap();
        general
            .apply(&Diff {
                upsert: vec![upsert[0]],
                ..Diff::default()
            })
            .unwrap();
        general
            .apply(&Diff {
                remove: vec![upsert[0].key],
                ..Diff::default()
            })
            .unwrap();
        let mut moves = Vec::new();
        for a in [&mut fresh, &mut general] {
            a.apply(&Diff {
                add_collectors: add.to_vec(),
                ..Diff::default()
            })
            .unwrap();
            let diff = Diff {
                upsert: upsert.to_vec(),
                ..Diff::default()
            };
            moves.push(a.apply(&diff).unwrap().to_vec());
        }
        let case = format!(
            "{:?} {:?} weighted={} {} targets on {}",
            config.strategy,
            config.fallback,
            config.weighted,
            upsert.len(),
            add.len()
        );
        assert_eq!(moves[0], moves[1], "{case}");
        assert_eq!(fresh.targets.records(), general.targets.records(), "{case}");
        for b in 0..fresh.placer.ring().map_or(64, |r| r.partition_count() + 64) {
            assert_eq!(fresh.buckets.slots(b), general.buckets.slots(b), "{case}");
        }
        let (l, m) = (&fresh.loads, &general.loads);
        assert_eq!(
            (&l.count, &l.weight, &l.per_job, &l.job_total, l.unassigned),
            (&m.count, &m.weight, &m.per_job, &m.job_total, m.unassigned),
            "{case}"
        );
        assert_eq!(fresh.digest(), general.digest(), "{case}");
        assert_eq!(fresh.recompute_digest(), fresh.digest(), "{case}");
        assert_eq!(fresh.move_totals(), general.move_totals(), "{case}");
    }

    /// `count` collectors `c0000`, …, every third on a node.
    fn collector_names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("c{i:04}")).collect()
    }

    fn collectors<'a>(names: &'a [String]) -> Vec<CollectorSpec<'a>> {
        const NODES: [&str; 4] = ["n0", "n1", "n2", "n4"];
        names
            .iter()
            .enumerate()
            .map(|(i, n)| CollectorSpec {
                name: n,
                node: (i % 3 == 0).then(|| NODES[(i / 3) % NODES.len()]),
            })
            .collect()
    }

    /// The one-pass placement of a first allocation (`place_fresh`) leaves exactly the state
    /// and moves the general path leaves for the same targets.
    #[test]
    fn place_fresh_leaves_the_state_and_moves_of_the_general_path() {
        let names = collector_names(12);
        let add = collectors(&names);
        let cases = [
            (Strategy::ConsistentHashing, None, 5_000),
            (Strategy::ConsistentHashing, None, 70_000),
            (Strategy::PerNode, Some(Strategy::ConsistentHashing), 5_000),
            (Strategy::PerNode, None, 5_000),
            (Strategy::BoundedHashing, None, 5_000),
            (Strategy::Rebalancing, None, 5_000),
        ];
        for (strategy, fallback, n) in cases {
            let mut config = Config::with_strategy(strategy);
            config.fallback = fallback;
            assert_fresh_as_general(config, &add, &targets(n));
        }
    }

    /// The same for a first allocation in key order (`records_by_key`, `place_fresh_in_order`):
    /// least-weighted by count and by weight, on a few collectors (a scan per placement) and on
    /// many (a run: `Levels`, `Tournament`), per-node with the least-weighted fallback; and for
    /// the batches that path refuses (a repeated key, keys crowded into a few buckets), which
    /// the general path places.
    #[test]
    fn place_fresh_in_order_leaves_the_state_and_moves_of_the_general_path() {
        let few = collector_names(12);
        let many = collector_names(700);
        let hashed = targets(70_000);
        let mut repeated = hashed.clone();
        repeated.push(hashed[12_345].with_weight(99));
        // Small keys: all share their top bits.
        let crowded: Vec<TargetSpec<'_>> = hashed
            .iter()
            .enumerate()
            .map(|(i, t)| TargetSpec {
                key: TargetKey(i as u64 * 3 + 1),
                ..*t
            })
            .collect();
        for names in [&few, &many] {
            let add = collectors(names);
            for (strategy, fallback, weighted) in [
                (Strategy::LeastWeighted, None, false),
                (Strategy::LeastWeighted, None, true),
                (Strategy::PerNode, Some(Strategy::LeastWeighted), false),
                (Strategy::PerNode, Some(Strategy::LeastWeighted), true),
            ] {
                let mut config = Config::with_strategy(strategy);
                config.fallback = fallback;
                config.weighted = weighted;
                assert_fresh_as_general(config, &add, &hashed);
            }
        }
        let add = collectors(&many);
        let config = Config::with_strategy(Strategy::LeastWeighted);
        assert_fresh_as_general(config, &add, &repeated);
        assert_fresh_as_general(config, &add, &crowded);
    }
}
