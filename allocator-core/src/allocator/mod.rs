//! [`Allocator`]: the one struct that owns the allocation state.

use hashbrown::{HashMap, HashSet};

use crate::collectors::Collectors;
use crate::config::{Config, Strategy};
use crate::diff::{CollectorSpec, Diff, Move, MoveTotals, TargetSpec};
use crate::error::Error;
use crate::error::SnapshotError;
use crate::ids::{opt, CollectorId, JobId, NodeId, PlacementHash, TargetKey, NONE};
use crate::intern::Interner;
use crate::loads::Loads;
use crate::snapshot::{CollectorRec, Payload, TargetRec};
use crate::strategy::{Ctx, Member, Placer, Prepared};
use crate::targets::{Buckets, TargetRecord, Targets};

type Set<T> = HashSet<T, ahash::RandomState>;

/// Capacity of the moves buffer kept between diffs.
const MOVES_KEPT: usize = 64 * 1024;

/// Assigns targets to collectors. Diffs in, moves out; every query is pure.
///
/// ```
/// use allocator_core::{Allocator, CollectorSpec, Config, Diff, TargetSpec};
///
/// let mut alloc = Allocator::new(Config::default()).unwrap();
/// let labels = [("__address__", "10.0.0.1:9100"), ("instance", "a")];
/// let target = TargetSpec::from_labels(labels, "node").unwrap();
/// let moves = alloc
///     .apply(&Diff {
///         add_collectors: vec![CollectorSpec::new("collector-0"), CollectorSpec::new("collector-1")],
///         upsert: vec![target],
///         ..Diff::default()
///     })
///     .unwrap();
/// assert_eq!(moves.len(), 1); // the new target was assigned
/// let owner = alloc.collector_of(target.key).unwrap();
/// assert!(alloc.collector_name(owner).unwrap().starts_with("collector-"));
/// ```
#[derive(Debug, Clone)]
pub struct Allocator {
    config: Config,
    placer: Placer,
    targets: Targets,
    buckets: Buckets,
    collectors: Collectors,
    jobs: Interner,
    nodes: Interner,
    loads: Loads,
    /// Targets whose collector differs from what their (non-sticky) rule now says, because their
    /// placement or node changed in place; the Go allocator re-places them at the next collector
    /// change, and so do we.
    stale: Set<u32>,
    moves: Vec<Move>,
    totals: MoveTotals,
}

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

/// Everything one target query returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TargetInfo<'a> {
    /// Identity.
    pub key: TargetKey,
    /// Placement hash.
    pub placement: PlacementHash,
    /// Job name.
    pub job: &'a str,
    /// Node name.
    pub node: Option<&'a str>,
    /// Weight.
    pub weight: u32,
    /// Assigned collector.
    pub collector: Option<CollectorId>,
}

/// Load of one collector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CollectorStats<'a> {
    /// Its id.
    pub id: CollectorId,
    /// Its name.
    pub name: &'a str,
    /// Its node.
    pub node: Option<&'a str>,
    /// Targets assigned to it.
    pub targets: u32,
    /// Sum of their weights.
    pub weight: u64,
}

/// Balance over all collectors.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct LoadSummary {
    /// Collectors.
    pub collectors: usize,
    /// Targets, assigned or not.
    pub targets: usize,
    /// Targets with no collector.
    pub unassigned: usize,
    /// Most targets on one collector.
    pub max_targets: u32,
    /// Fewest targets on one collector.
    pub min_targets: u32,
    /// Assigned targets per collector.
    pub mean_targets: f64,
    /// Most weight on one collector.
    pub max_weight: u64,
    /// Least weight on one collector.
    pub min_weight: u64,
    /// Assigned weight per collector.
    pub mean_weight: f64,
}

impl LoadSummary {
    /// Busiest collector's targets over the mean (1.0 is perfect balance; 0 with no targets).
    pub fn max_over_mean(&self) -> f64 {
        ratio(f64::from(self.max_targets), self.mean_targets)
    }

    /// Idlest collector's targets over the mean.
    pub fn min_over_mean(&self) -> f64 {
        ratio(f64::from(self.min_targets), self.mean_targets)
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 {
        a / b
    } else {
        0.0
    }
}

impl Allocator {
    /// A new, empty allocator. Fails on an invalid configuration.
    pub fn new(config: Config) -> Result<Allocator, Error> {
        config.validate()?;
        Ok(Allocator {
            placer: Placer::new(&config),
            config,
            targets: Targets::default(),
            buckets: Buckets::default(),
            collectors: Collectors::default(),
            jobs: Interner::default(),
            nodes: Interner::default(),
            loads: Loads::default(),
            stale: Set::default(),
            moves: Vec::new(),
            totals: MoveTotals::default(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Apply a diff; returns the moves it caused (also readable later with
    /// [`Allocator::last_moves`]). On error nothing has changed.
    pub fn apply(&mut self, diff: &Diff<'_>) -> Result<&[Move], Error> {
        // Validation: everything that can fail happens before any state changes. Interning
        // names is the one exception, and an unused name changes no decision.
        let plan = if diff.add_collectors.is_empty() && diff.remove_collectors.is_empty() {
            None
        } else {
            Some(self.plan_collectors(diff)?)
        };
        self.validate_removals(diff)?;
        let ids = self.intern_targets(&diff.upsert)?;

        self.collectors.release_retired();
        self.moves.clear();
        // A full allocation's moves can be as large as the state; do not keep that buffer.
        self.moves.shrink_to(MOVES_KEPT);
        self.remove_targets(&diff.remove);
        let new = self.update_existing(&diff.upsert, &ids);
        if let Some(plan) = plan {
            self.change_collectors(plan)?;
        }
        self.insert_new(&diff.upsert, &ids, &new);
        self.settle();
        debug_assert!(self
            .targets
            .iter()
            .all(|(_, r)| r.collector == NONE || self.collectors.is_alive(r.collector)));
        self.totals.count(&self.moves);
        Ok(&self.moves)
    }

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

    // ---- validation -------------------------------------------------------------------------

    fn plan_collectors<'d>(&mut self, diff: &Diff<'d>) -> Result<CollectorPlan<'d>, Error> {
        let mut removing: Set<&str> = Set::default();
        for &name in &diff.remove_collectors {
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
        for c in &diff.add_collectors {
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
        let removed: Vec<CollectorId> = diff
            .remove_collectors
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

    fn validate_removals(&self, diff: &Diff<'_>) -> Result<(), Error> {
        for &key in &diff.remove {
            if self.targets.find(key).is_none() {
                return Err(Error::UnknownTarget(key));
            }
        }
        if !diff.remove.is_empty() && !diff.upsert.is_empty() {
            let removed: Set<TargetKey> = diff.remove.iter().copied().collect();
            if let Some(t) = diff.upsert.iter().find(|t| removed.contains(&t.key)) {
                return Err(Error::ConflictingTarget(t.key));
            }
        }
        Ok(())
    }

    /// Job and node ids of every upserted target.
    fn intern_targets(&mut self, upsert: &[TargetSpec<'_>]) -> Result<Vec<(u32, u32)>, Error> {
        let mut ids = Vec::with_capacity(upsert.len());
        // Consecutive targets usually share a job: one comparison instead of a map lookup.
        let mut last: Option<(&str, u32)> = None;
        for t in upsert {
            let job = match last {
                Some((name, id)) if name == t.job => id,
                _ => {
                    let id = self.jobs.intern(t.job, "jobs")?;
                    last = Some((t.job, id));
                    id
                }
            };
            let node = match t.node.filter(|n| !n.is_empty()) {
                Some(n) => self.nodes.intern(n, "nodes")?,
                None => NONE,
            };
            ids.push((job, node));
        }
        self.loads
            .grow(self.collectors.slot_count(), self.jobs.len());
        Ok(ids)
    }

    // ---- mutation ---------------------------------------------------------------------------

    fn ctx(&self) -> Ctx<'_> {
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
        self.moves.push(Move {
            key: TargetKey(key),
            from: opt(from).map(CollectorId),
            to: opt(to).map(CollectorId),
        });
    }

    fn remove_targets(&mut self, keys: &[TargetKey]) {
        for &key in keys {
            // A key listed twice is removed once.
            let Some(slot) = self.targets.find(key) else {
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
        let stale: Vec<u32> = self.stale.drain().collect();
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
            for (_, slot) in orphans {
                let to = self.placer.choose(self.targets.get(slot), &self.ctx());
                self.reassign(slot, to);
            }
        }
        Ok(())
    }

    /// What a strategy that decides after the whole diff (`bounded-hashing`) changes:
    /// `(slot, collector)` per target it now puts elsewhere.
    fn settled(&mut self) -> Vec<(u32, u32)> {
        let mut changes = Vec::new();
        self.placer.settle(
            &self.targets,
            self.jobs.names(),
            &self.loads.job_total,
            &mut changes,
        );
        changes
    }

    /// Let a strategy that decides after the whole diff (`bounded-hashing`) move its targets.
    fn settle(&mut self) {
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

    fn record(t: &TargetSpec<'_>, (job, node): (u32, u32)) -> TargetRecord {
        TargetRecord {
            key: t.key.0,
            placement: t.placement.0,
            job,
            node,
            weight: t.weight,
            collector: NONE,
            bucket_pos: 0,
        }
    }

    /// Update the targets that existed before this diff, in place; return the positions of the
    /// upserts that name new targets. Runs before a collector change, so the change re-places
    /// any target these updates left off its rule: after a diff that changes collectors, no
    /// target of a non-sticky rule is left stale.
    fn update_existing(&mut self, upsert: &[TargetSpec<'_>], ids: &[(u32, u32)]) -> Vec<u32> {
        if self.targets.len() == 0 {
            // Nothing exists yet (a full allocation): every upsert is new, no lookups needed.
            return (0..upsert.len() as u32).collect();
        }
        let mut new = Vec::new();
        for (i, (t, &id)) in upsert.iter().zip(ids).enumerate() {
            match self.targets.find(t.key) {
                Some(slot) => self.update_in_place(slot, Self::record(t, id)),
                None => new.push(i as u32),
            }
        }
        new
    }

    /// Insert the new targets, then place them: a key repeated in one diff is placed once, by
    /// its last fields (the last one wins, as in a listing).
    fn insert_new(&mut self, upsert: &[TargetSpec<'_>], ids: &[(u32, u32)], new: &[u32]) {
        self.targets.reserve(new.len());
        let mut fresh: Vec<u32> = Vec::with_capacity(new.len());
        for &i in new {
            let (t, id) = (&upsert[i as usize], ids[i as usize]);
            let record = Self::record(t, id);
            let (slot, inserted) = self.targets.find_or_insert(record);
            if !inserted {
                // A repeat of a key first inserted by this diff: it takes the later fields.
                self.update_in_place(slot, record);
                continue;
            }
            self.buckets.insert(
                self.placer.bucket(&record),
                slot,
                self.targets.records_mut(),
            );
            self.loads.job_total[id.0 as usize] += 1;
            self.loads.add(NONE, id.0, t.weight);
            self.placer.touch(slot);
            fresh.push(slot);
        }
        if self.placer.order_matters() {
            // Sticky placements depend on the ones before them: visit in key order.
            let targets = &self.targets;
            fresh.sort_unstable_by_key(|&slot| targets.get(slot).key);
        }
        for slot in fresh {
            if !self.stale.is_empty() {
                // A repeat of a new key in this diff may have marked it; it is placed now.
                self.stale.remove(&slot);
            }
            let to = self.placer.choose(self.targets.get(slot), &self.ctx());
            self.reassign(slot, to);
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

    // ---- queries ----------------------------------------------------------------------------

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.len() == 0
    }

    /// The collector of a target (`None`: unknown or unassigned target).
    #[inline]
    pub fn collector_of(&self, key: TargetKey) -> Option<CollectorId> {
        let slot = self.targets.find(key)?;
        opt(self.targets.get(slot).collector).map(CollectorId)
    }

    /// Everything known about a target.
    pub fn target(&self, key: TargetKey) -> Option<TargetInfo<'_>> {
        let slot = self.targets.find(key)?;
        Some(self.info(self.targets.get(slot)))
    }

    fn info(&self, r: &TargetRecord) -> TargetInfo<'_> {
        TargetInfo {
            key: TargetKey(r.key),
            placement: PlacementHash(r.placement),
            job: self.jobs.name(r.job),
            node: opt(r.node).map(|n| self.nodes.name(n)),
            weight: r.weight,
            collector: opt(r.collector).map(CollectorId),
        }
    }

    /// Every target, in no particular order.
    pub fn targets(&self) -> impl Iterator<Item = TargetInfo<'_>> + '_ {
        self.targets.iter().map(|(_, r)| self.info(r))
    }

    /// A collector's id by name (alive collectors only).
    pub fn collector_id(&self, name: &str) -> Option<CollectorId> {
        self.collectors.find(name)
    }

    /// A collector's name; also for collectors removed by the last diff.
    pub fn collector_name(&self, id: CollectorId) -> Option<&str> {
        self.collectors.get(id.0).map(|s| &*s.name)
    }

    /// Alive collectors, sorted by name.
    pub fn collectors(&self) -> impl Iterator<Item = CollectorStats<'_>> + '_ {
        self.collectors
            .sorted()
            .iter()
            .map(|&id| self.collector_stats(id))
    }

    fn collector_stats(&self, id: CollectorId) -> CollectorStats<'_> {
        let slot = self.collectors.get(id.0).expect("alive collector");
        CollectorStats {
            id,
            name: &slot.name,
            node: opt(slot.node).map(|n| self.nodes.name(n)),
            targets: self.loads.count[id.0 as usize],
            weight: self.loads.weight[id.0 as usize],
        }
    }

    /// Load of one alive collector.
    pub fn stats_of(&self, id: CollectorId) -> Option<CollectorStats<'_>> {
        self.collectors
            .is_alive(id.0)
            .then(|| self.collector_stats(id))
    }

    /// Number of alive collectors.
    pub fn collector_count(&self) -> usize {
        self.collectors.len()
    }

    /// Keys of a collector's targets, sorted; optionally of one job only.
    pub fn targets_of(&self, id: CollectorId, job: Option<&str>) -> Vec<TargetKey> {
        let job = match job {
            Some(name) => match self.jobs.get(name) {
                Some(j) => j,
                None => return Vec::new(),
            },
            None => NONE,
        };
        let mut keys: Vec<TargetKey> = self
            .targets
            .iter()
            .filter(|(_, r)| r.collector == id.0 && (job == NONE || r.job == job))
            .map(|(_, r)| TargetKey(r.key))
            .collect();
        keys.sort_unstable();
        keys
    }

    /// Jobs with at least one target, sorted by name, with their target counts.
    pub fn jobs(&self) -> Vec<(&str, u32)> {
        let mut jobs: Vec<(&str, u32)> = self
            .jobs
            .names()
            .iter()
            .zip(&self.loads.job_total)
            .filter(|(_, &n)| n > 0)
            .map(|(name, &n)| (&**name, n))
            .collect();
        jobs.sort_unstable();
        jobs
    }

    /// Targets of a job on a collector.
    pub fn job_targets_on(&self, job: JobId, id: CollectorId) -> u32 {
        self.loads
            .per_job
            .get(job.0 as usize)
            .and_then(|row| row.get(id.0 as usize))
            .copied()
            .unwrap_or(0)
    }

    /// A job's id by name.
    pub fn job_id(&self, name: &str) -> Option<JobId> {
        self.jobs.get(name).map(JobId)
    }

    /// A node's id by name.
    pub fn node_id(&self, name: &str) -> Option<NodeId> {
        self.nodes.get(name).map(NodeId)
    }

    /// Balance over all alive collectors.
    pub fn summary(&self) -> LoadSummary {
        let mut s = LoadSummary {
            collectors: self.collectors.len(),
            targets: self.targets.len(),
            unassigned: self.loads.unassigned,
            ..LoadSummary::default()
        };
        if s.collectors == 0 {
            return s;
        }
        s.min_targets = u32::MAX;
        s.min_weight = u64::MAX;
        let (mut sum_t, mut sum_w) = (0u64, 0u64);
        for &id in self.collectors.sorted() {
            let (t, w) = (
                self.loads.count[id.0 as usize],
                self.loads.weight[id.0 as usize],
            );
            s.max_targets = s.max_targets.max(t);
            s.min_targets = s.min_targets.min(t);
            s.max_weight = s.max_weight.max(w);
            s.min_weight = s.min_weight.min(w);
            sum_t += u64::from(t);
            sum_w += w;
        }
        s.mean_targets = sum_t as f64 / s.collectors as f64;
        s.mean_weight = sum_w as f64 / s.collectors as f64;
        s
    }

    /// The owner of each consistent-hashing ring partition, when a ring is in use
    /// (`consistent-hashing`, or `per-node` falling back to it).
    pub fn ring_owners(&self) -> Option<Vec<Option<CollectorId>>> {
        let ring = self.placer.ring()?;
        Some(
            (0..ring.partition_count())
                .map(|p| opt(ring.owner(p)).map(CollectorId))
                .collect(),
        )
    }

    /// The moves of the last diff (empty after a diff that moved nothing).
    pub fn last_moves(&self) -> &[Move] {
        &self.moves
    }

    /// Moves counted since the allocator was created.
    pub fn move_totals(&self) -> MoveTotals {
        self.totals
    }

    /// The whole state as bytes (see [`crate::snapshot`] for the format). The same state gives
    /// the same bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let (strategy, fallback, ring_version) = Payload::config_parts(&self.config);
        // Position in name order, by collector id.
        let mut position = vec![NONE; self.collectors.slot_count()];
        let collectors: Vec<CollectorRec> = self
            .collectors
            .sorted()
            .iter()
            .enumerate()
            .map(|(i, id)| {
                position[id.0 as usize] = i as u32;
                let slot = self.collectors.get(id.0).expect("alive");
                CollectorRec {
                    name: slot.name.to_string(),
                    node: slot.node,
                }
            })
            .collect();
        // Only names in use, sorted: the bytes depend on the state, not on its history.
        let jobs = Canonical::new(&self.jobs, self.targets.iter().map(|(_, r)| r.job));
        let nodes = Canonical::new(
            &self.nodes,
            self.targets.iter().map(|(_, r)| r.node).chain(
                self.collectors
                    .sorted()
                    .iter()
                    .map(|id| self.collectors.get(id.0).expect("alive").node),
            ),
        );
        let collectors = collectors
            .into_iter()
            .map(|c: CollectorRec| CollectorRec {
                node: nodes.map(c.node),
                ..c
            })
            .collect();
        let mut targets: Vec<TargetRec> = self
            .targets
            .iter()
            .map(|(_, r)| TargetRec {
                key: r.key,
                placement: r.placement,
                job: jobs.map(r.job),
                node: nodes.map(r.node),
                weight: r.weight,
                collector: if r.collector == NONE {
                    NONE
                } else {
                    position[r.collector as usize]
                },
            })
            .collect();
        targets.sort_unstable_by_key(|t| t.key);
        crate::snapshot::encode(&Payload {
            strategy,
            fallback,
            ring_version,
            partition_count: self.config.ring.partition_count,
            replication_factor: self.config.ring.replication_factor,
            load_factor: self.config.ring.load_factor,
            weighted: self.config.weighted,
            epsilon_ppm: self.config.bounded.epsilon_ppm(),
            max_weight: self.config.bounded.max_weight,
            jobs: jobs.names,
            nodes: nodes.names,
            collectors,
            targets,
            totals: [
                self.totals.assigned,
                self.totals.unassigned,
                self.totals.reassigned,
            ],
        })
    }

    /// An allocator from [`Allocator::snapshot`] bytes: the same assignments, and the same
    /// behaviour on the next diffs. Truncated, corrupted or foreign bytes are an error.
    pub fn restore(bytes: &[u8]) -> Result<Allocator, Error> {
        let payload = crate::snapshot::decode(bytes)?;
        let invalid = |what: String| Error::Snapshot(SnapshotError::Invalid(what));
        let mut alloc = Allocator::new(payload.config()?)?;
        alloc.jobs = Interner::from_names(payload.jobs)
            .map_err(|n| invalid(format!("job {n:?} listed twice")))?;
        alloc.nodes = Interner::from_names(payload.nodes)
            .map_err(|n| invalid(format!("node {n:?} listed twice")))?;
        let node_count = alloc.nodes.len() as u32;
        let mut ids = Vec::with_capacity(payload.collectors.len());
        for c in &payload.collectors {
            if c.name.is_empty() {
                return Err(invalid("collector with an empty name".into()));
            }
            if c.node != NONE && c.node >= node_count {
                return Err(invalid(format!(
                    "collector {:?} has node index {} of {node_count}",
                    c.name, c.node
                )));
            }
            if alloc.collectors.find(&c.name).is_some() {
                return Err(invalid(format!("collector {:?} listed twice", c.name)));
            }
            ids.push(alloc.collectors.add(&c.name, c.node)?.0);
        }
        alloc.collectors.resort();
        // Strategy tables for the collector set, exactly as a collector diff builds them.
        let sorted: Vec<CollectorId> = alloc.collectors.sorted().to_vec();
        let view: Vec<Member<'_>> = sorted
            .iter()
            .map(|&id| {
                let slot = alloc.collectors.get(id.0).expect("restored");
                Member {
                    name: &slot.name,
                    node: slot.node,
                }
            })
            .collect();
        let prepared = alloc.placer.prepare(&view, alloc.nodes.len())?;
        drop(view);
        let member_ids: Vec<u32> = sorted.iter().map(|c| c.0).collect();
        alloc.placer.commit(prepared, &member_ids, &mut Vec::new());

        alloc
            .loads
            .grow(alloc.collectors.slot_count(), alloc.jobs.len());
        alloc.targets.reserve(payload.targets.len());
        let job_count = alloc.jobs.len() as u32;
        for t in &payload.targets {
            if t.job >= job_count || (t.node != NONE && t.node >= node_count) {
                return Err(invalid(format!(
                    "target {} names a job or node that is not listed",
                    TargetKey(t.key)
                )));
            }
            let collector = match t.collector {
                NONE => NONE,
                i => *ids.get(i as usize).ok_or_else(|| {
                    invalid(format!(
                        "target {} is on collector #{i} of {}",
                        TargetKey(t.key),
                        ids.len()
                    ))
                })?,
            };
            let record = TargetRecord {
                key: t.key,
                placement: t.placement,
                job: t.job,
                node: t.node,
                weight: t.weight,
                collector,
                bucket_pos: 0,
            };
            let (slot, inserted) = alloc.targets.find_or_insert(record);
            if !inserted {
                return Err(invalid(format!("target {} listed twice", TargetKey(t.key))));
            }
            alloc.buckets.insert(
                alloc.placer.bucket(&record),
                slot,
                alloc.targets.records_mut(),
            );
            alloc.loads.job_total[t.job as usize] += 1;
            alloc.loads.add(collector, t.job, t.weight);
            let sticky = alloc.placer.sticky(&record);
            let rule = alloc.placer.choose(&record, &alloc.ctx());
            // Only states a sequence of diffs can reach: a target lacks a collector only when
            // its rule has none for it, or (per-node) its node changed in place since.
            let waiting = alloc.config.strategy == Strategy::PerNode;
            if collector == NONE && rule != NONE && !waiting {
                return Err(invalid(format!(
                    "target {} is unassigned although collectors can take it",
                    TargetKey(t.key)
                )));
            }
            if !sticky && rule != collector {
                alloc.stale.insert(slot);
            }
        }
        if alloc.config.strategy == Strategy::BoundedHashing {
            // The assignment is a function of the state: the stored one must be it.
            let slots: Vec<u32> = alloc.targets.iter().map(|(s, _)| s).collect();
            for slot in slots {
                alloc.placer.touch(slot);
            }
            if let Some(&(slot, _)) = alloc.settled().first() {
                return Err(invalid(format!(
                    "target {} is not where bounded-hashing places it",
                    TargetKey(alloc.targets.get(slot).key)
                )));
            }
        }
        let [assigned, unassigned, reassigned] = payload.totals;
        alloc.totals = MoveTotals {
            assigned,
            unassigned,
            reassigned,
        };
        Ok(alloc)
    }

    /// Bytes of heap the allocation state holds (labels are never held), for memory reports.
    pub fn heap_bytes(&self) -> usize {
        self.targets.heap_bytes() + self.buckets.heap_bytes() + self.placer.heap_bytes()
    }
}

/// Interned names renumbered for a snapshot: only those in use, in sorted order.
struct Canonical {
    names: Vec<String>,
    /// Old id → new id (NONE where unused).
    remap: Vec<u32>,
}

impl Canonical {
    fn new(interner: &Interner, used: impl Iterator<Item = u32>) -> Canonical {
        let mut in_use = vec![false; interner.len()];
        for id in used.filter(|&id| id != NONE) {
            in_use[id as usize] = true;
        }
        let mut ids: Vec<u32> = (0..interner.len() as u32)
            .filter(|&id| in_use[id as usize])
            .collect();
        ids.sort_unstable_by(|a, b| interner.name(*a).cmp(interner.name(*b)));
        let mut remap = vec![NONE; interner.len()];
        for (new, &old) in ids.iter().enumerate() {
            remap[old as usize] = new as u32;
        }
        Canonical {
            names: ids.iter().map(|&id| interner.name(id).to_owned()).collect(),
            remap,
        }
    }

    fn map(&self, id: u32) -> u32 {
        if id == NONE {
            NONE
        } else {
            self.remap[id as usize]
        }
    }
}
