//! The targets discovery holds now, kept from refresh to refresh, and what each refresh changed.
//!
//! Every discovery source of a job (its static and HTTP SD groups, each file_sd file, its
//! Kubernetes groups) is a list of groups. A file's unchanged groups are the same
//! `Arc<FileGroup>` from read to read, so a refresh compares a file's groups by pointer and
//! touches only the targets of groups that came or went; the targets of the other sources are
//! made anew each refresh, so all of theirs are touched ("compare everything": they are small
//! or new allocations anyway). Only touched targets are compared, by content, with what was
//! served before; the differences are the refresh's [`Changes`].
//!
//! A (job, identity) may be listed more than once (the same target in two groups or files):
//! the Go allocator's target map keeps the last one in discovery order (sources in the
//! configuration's order, groups and targets in their source's order). Each (job, identity)
//! holds all its occurrences (a counted multimap), so the last one is found again when the one
//! served goes away, without a pass over the others.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use allocator_core::TargetKey;

use super::{relabeled_key, Discovered, FileGroup, JobSpec, LabelSet, Target, TargetLabels};

/// What one refresh changed in the targets discovery holds (each (job, identity) at most once).
#[derive(Default, Debug)]
pub struct Changes {
    /// Targets no longer listed, with what they were.
    pub removed: Vec<Target>,
    /// Targets added, or whose address or labels changed (same identity), with what they are.
    pub upserted: Vec<Target>,
    /// What the changed targets of `upserted` were before (the added ones are not here).
    pub replaced: Vec<Target>,
}

impl Changes {
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.upserted.is_empty()
    }
}

/// One occurrence of a (job, identity): target `idx` of group `group` (its address) of source
/// `source`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Occ {
    source: u32,
    idx: u32,
    group: usize,
}

/// The occurrences of one (job, identity): nearly always one.
enum Occs {
    One(Occ),
    /// Boxed: a multimap entry stays the size of one occurrence and a tag.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Occ>>),
}

impl Occs {
    fn as_slice(&self) -> &[Occ] {
        match self {
            Occs::One(o) => std::slice::from_ref(o),
            Occs::Many(v) => v,
        }
    }
}

/// One group of a source, by its address.
struct GroupState {
    group: Arc<FileGroup>,
    /// How many times the source lists it (a file may hold the same group text twice; a
    /// re-read then shares one `Arc` for both).
    count: u32,
    /// Its last position in the source (the later copy wins).
    pos: u32,
    /// The last [`Current::replace`] that found it listed.
    round: u32,
    /// Its targets' identities under the source's job (`None`: the rules drop it).
    keys: Keys,
}

/// A group's identities: inline for a group of one target (file_sd files often list one
/// target per group), so it costs no allocation of its own.
#[derive(Clone)]
enum Keys {
    One(Option<TargetKey>),
    Many(Box<[Option<TargetKey>]>),
}

impl Keys {
    fn new(mut keys: Vec<Option<TargetKey>>) -> Keys {
        match keys.len() {
            1 => Keys::One(keys.pop().expect("one")),
            _ => Keys::Many(keys.into_boxed_slice()),
        }
    }

    fn as_slice(&self) -> &[Option<TargetKey>] {
        match self {
            Keys::One(k) => std::slice::from_ref(k),
            Keys::Many(k) => k,
        }
    }
}

/// One source of one job.
struct Source {
    id: String,
    job: u32,
    /// Its place in discovery order.
    order: u32,
    groups: Vec<Arc<FileGroup>>,
    at: HashMap<usize, GroupState, ahash::RandomState>,
    /// Targets discovered (before relabeling), and kept by relabeling.
    discovered: usize,
    kept: usize,
    /// Targets discovered without an address (counted, and dropped).
    missing: usize,
    /// Set this refresh (a source not set is gone).
    live: bool,
}

/// The targets discovery holds (see the module documentation).
#[derive(Default)]
pub struct Current {
    sources: Vec<Source>,
    free_sources: Vec<u32>,
    by_id: HashMap<String, u32>,
    jobs: Vec<Arc<str>>,
    job_ids: HashMap<Arc<str>, u32>,
    targets: HashMap<(u32, TargetKey), Occs, ahash::RandomState>,
    /// The (job, identity)s listed more than once.
    dups: HashSet<(u32, TargetKey), ahash::RandomState>,
    /// This refresh: the (job, identity)s touched, with what was served of each before it.
    touched: HashMap<(u32, TargetKey), Option<Served>, ahash::RandomState>,
    /// This refresh: the next source's place in discovery order.
    next_order: u32,
    /// Per job: seconds spent relabeling this refresh.
    seconds: BTreeMap<String, f64>,
    /// Targets relabeled this refresh (the others kept the identities of their group).
    relabeled: usize,
    /// Counts [`Current::replace`] calls (marks the groups each one finds listed).
    round: u32,
    /// Relabel filtering off (`filter_strategy` other than `relabel-config`).
    unfiltered: bool,
}

/// What is served of one target: its address and group labels.
type Served = (Arc<str>, Arc<LabelSet>);

impl Current {
    /// Whether targets are relabeled (and dropped) at discovery; fixed for a configuration,
    /// so set before the first refresh (identities already computed are not redone).
    pub fn set_filter(&mut self, on: bool) {
        self.unfiltered = !on;
    }

    /// Start a refresh: sources are then set in discovery order, and [`Current::finish`] says
    /// what changed.
    pub fn begin(&mut self) {
        self.next_order = 0;
        self.seconds.clear();
        self.relabeled = 0;
        for s in &mut self.sources {
            s.live = false;
        }
    }

    fn job(&mut self, name: &str) -> u32 {
        if let Some(&j) = self.job_ids.get(name) {
            return j;
        }
        let name: Arc<str> = Arc::from(name);
        let j = self.jobs.len() as u32;
        self.jobs.push(name.clone());
        self.job_ids.insert(name, j);
        j
    }

    /// The source `id` of `job` now lists `groups` (file_sd: the file's groups, unchanged ones
    /// as the same `Arc`s as before).
    pub fn set_groups(&mut self, id: &str, job: &JobSpec<'_>, groups: &[Arc<FileGroup>]) {
        let start = std::time::Instant::now();
        let j = self.job(job.name);
        let order = self.next_order;
        self.next_order += 1;
        let s = match self.by_id.get(id) {
            Some(&s) => s,
            None => {
                let source = Source {
                    id: id.to_owned(),
                    job: j,
                    order,
                    groups: Vec::new(),
                    at: Default::default(),
                    discovered: 0,
                    kept: 0,
                    missing: 0,
                    live: true,
                };
                let s = match self.free_sources.pop() {
                    Some(s) => {
                        self.sources[s as usize] = source;
                        s
                    }
                    None => {
                        self.sources.push(source);
                        (self.sources.len() - 1) as u32
                    }
                };
                self.by_id.insert(id.to_owned(), s);
                s
            }
        };
        let src = &mut self.sources[s as usize];
        src.live = true;
        let same = src.order == order
            && src.groups.len() == groups.len()
            && src
                .groups
                .iter()
                .zip(groups)
                .all(|(a, b)| Arc::ptr_eq(a, b));
        if !same {
            self.replace(s, order, groups, job);
        }
        *self.seconds.entry(job.name.to_owned()).or_default() += start.elapsed().as_secs_f64();
    }

    /// The source `id` of `job` now lists `items` (one group each; made anew every refresh).
    pub fn set_items(&mut self, id: &str, job: &JobSpec<'_>, items: &[Discovered]) {
        let mut missing = 0;
        let groups: Vec<Arc<FileGroup>> = items
            .iter()
            .filter_map(|(labels, address)| match address {
                Some(a) => Some(Arc::new(FileGroup {
                    targets: Box::new([a.clone()]),
                    labels: labels.clone(),
                })),
                None => {
                    missing += 1;
                    None
                }
            })
            .collect();
        self.set_groups(id, job, &groups);
        let s = self.by_id[id];
        self.sources[s as usize].missing = missing;
    }

    /// Record what `k` serves now, before its occurrences change (once per refresh).
    fn touch(&mut self, k: (u32, TargetKey)) {
        if self.touched.contains_key(&k) {
            return;
        }
        let served = self.winner(k);
        self.touched.insert(k, served);
    }

    /// What (job, identity) `k` serves: its last occurrence in discovery order.
    fn winner(&self, k: (u32, TargetKey)) -> Option<Served> {
        let occs = self.targets.get(&k)?;
        let place = |o: &Occ| {
            let s = &self.sources[o.source as usize];
            (s.order, s.at[&o.group].pos, o.idx)
        };
        let o = occs
            .as_slice()
            .iter()
            .max_by_key(|o| place(o))
            .expect("no empty occurrence lists");
        let g = &self.sources[o.source as usize].at[&o.group].group;
        Some((g.targets[o.idx as usize].clone(), g.labels.clone()))
    }

    /// Replace source `s`'s groups with `groups`: the targets of groups that went away lose an
    /// occurrence, those of new groups gain one (relabeled); kept groups only take their new
    /// count and position. One lookup per listed group (by its address); the groups that went
    /// away are found by position in the last list, without a lookup for the others.
    fn replace(&mut self, s: u32, order: u32, groups: &[Arc<FileGroup>], job: &JobSpec<'_>) {
        // Positions and orders decide between duplicates: record what every duplicate serves
        // before they change (there are few).
        let dups: Vec<(u32, TargetKey)> = self.dups.iter().copied().collect();
        for k in dups {
            self.touch(k);
        }
        self.round = self.round.wrapping_add(1);
        let round = self.round;
        let j = self.sources[s as usize].job;
        let last = std::mem::take(&mut self.sources[s as usize].groups);
        // Positions in `last` of the groups listed again.
        let mut again = vec![false; last.len()];
        for (pos, g) in groups.iter().enumerate() {
            let p = Arc::as_ptr(g) as usize;
            let pos = pos as u32;
            let src = &mut self.sources[s as usize];
            if let Some(state) = src.at.get_mut(&p) {
                let keys = state.keys.as_slice();
                let (len, kept) = (keys.len(), keys.iter().flatten().count());
                if state.round != round {
                    // Listed before: it starts counting again (each listing counts, as the Go
                    // allocator counts what discovery sent).
                    again[state.pos as usize] = true;
                    src.discovered -= state.count as usize * len;
                    src.kept -= state.count as usize * kept;
                    state.count = 0;
                    state.round = round;
                }
                state.count += 1;
                state.pos = pos;
                src.discovered += len;
                src.kept += kept;
                continue;
            }
            self.relabeled += g.targets.len();
            let keys = Keys::new(
                g.targets
                    .iter()
                    .map(|address| {
                        relabeled_key(job, TargetLabels::new(&g.labels, address), !self.unfiltered)
                    })
                    .collect(),
            );
            let src = &mut self.sources[s as usize];
            src.discovered += keys.as_slice().len();
            src.kept += keys.as_slice().iter().flatten().count();
            src.at.insert(
                p,
                GroupState {
                    group: g.clone(),
                    count: 1,
                    pos,
                    round,
                    keys: keys.clone(),
                },
            );
            for (idx, key) in keys.as_slice().iter().enumerate() {
                if let Some(key) = *key {
                    self.add_occ(
                        (j, key),
                        Occ {
                            source: s,
                            idx: idx as u32,
                            group: p,
                        },
                    );
                }
            }
        }
        // Groups that went away: not listed again at their last position (an earlier copy of
        // a group listed twice is looked up, and kept).
        for (i, g) in last.iter().enumerate() {
            if again[i] {
                continue;
            }
            let p = Arc::as_ptr(g) as usize;
            let src = &mut self.sources[s as usize];
            let Some(state) = src.at.get(&p).filter(|st| st.round != round) else {
                continue;
            };
            let (keys, n) = (state.keys.clone(), state.count as usize);
            let keys = keys.as_slice();
            src.discovered -= n * keys.len();
            src.kept -= n * keys.iter().flatten().count();
            for (idx, key) in keys.iter().enumerate() {
                if let Some(key) = *key {
                    self.drop_occ(
                        (j, key),
                        Occ {
                            source: s,
                            idx: idx as u32,
                            group: p,
                        },
                    );
                }
            }
            self.sources[s as usize].at.remove(&p);
        }
        let src = &mut self.sources[s as usize];
        src.order = order;
        src.groups = groups.to_vec();
    }

    fn add_occ(&mut self, k: (u32, TargetKey), o: Occ) {
        self.touch(k);
        match self.targets.entry(k) {
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Occs::One(o));
            }
            std::collections::hash_map::Entry::Occupied(mut e) => {
                let occs = e.get_mut();
                match occs {
                    Occs::One(first) => *occs = Occs::Many(Box::new(vec![*first, o])),
                    Occs::Many(v) => v.push(o),
                }
                self.dups.insert(k);
            }
        }
    }

    fn drop_occ(&mut self, k: (u32, TargetKey), o: Occ) {
        self.touch(k);
        let std::collections::hash_map::Entry::Occupied(mut e) = self.targets.entry(k) else {
            debug_assert!(false, "an occurrence is listed");
            return;
        };
        match e.get_mut() {
            Occs::One(_) => {
                e.remove();
            }
            Occs::Many(v) => {
                if let Some(at) = v.iter().position(|x| *x == o) {
                    v.swap_remove(at);
                }
                if v.len() == 1 {
                    let last = v[0];
                    *e.get_mut() = Occs::One(last);
                    self.dups.remove(&k);
                }
            }
        }
    }

    /// End the refresh: sources not set in it are gone; returns what changed.
    pub fn finish(&mut self) -> Changes {
        let gone: Vec<u32> = (0..self.sources.len() as u32)
            .filter(|&s| {
                let src = &self.sources[s as usize];
                !src.live && !src.id.is_empty()
            })
            .collect();
        for s in gone {
            let job = self.jobs[self.sources[s as usize].job as usize].to_string();
            let spec = JobSpec {
                name: &job,
                scrape_interval: "",
                scrape_timeout: "",
                metrics_path: "",
                scheme: "",
                params: &BTreeMap::new(),
                rules: &[],
            };
            // No group is relabeled: the spec is not used.
            self.replace(s, 0, &[], &spec);
            let id = std::mem::take(&mut self.sources[s as usize].id);
            self.by_id.remove(&id);
            self.free_sources.push(s);
        }
        let mut changes = Changes::default();
        let touched = std::mem::take(&mut self.touched);
        for (k, before) in touched {
            let now = self.winner(k);
            let target = |(address, group): Served| Target {
                job: self.jobs[k.0 as usize].clone(),
                address,
                group,
                key: k.1,
            };
            match (before, now) {
                (None, None) => {}
                (Some(b), None) => changes.removed.push(target(b)),
                (None, Some(n)) => changes.upserted.push(target(n)),
                (Some(b), Some(n)) => {
                    let same = (Arc::ptr_eq(&b.0, &n.0) || b.0 == n.0)
                        && (Arc::ptr_eq(&b.1, &n.1) || b.1 == n.1);
                    if !same {
                        changes.replaced.push(target(b));
                        changes.upserted.push(target(n));
                    }
                }
            }
        }
        changes
    }

    /// Every target discovery holds now (one per (job, identity), the served occurrence).
    pub fn listing(&self) -> Vec<Target> {
        self.targets
            .keys()
            .filter_map(|&k| {
                let (address, group) = self.winner(k)?;
                Some(Target {
                    job: self.jobs[k.0 as usize].clone(),
                    address,
                    group,
                    key: k.1,
                })
            })
            .collect()
    }

    /// The target `key` of `job` as it is served now.
    pub fn target(&self, job: &str, key: TargetKey) -> Option<Target> {
        let j = *self.job_ids.get(job)?;
        let (address, group) = self.winner((j, key))?;
        Some(Target {
            job: self.jobs[j as usize].clone(),
            address,
            group,
            key,
        })
    }

    /// How many targets it holds (one per (job, identity)).
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Targets discovered per job, before relabeling filters them (every configured job).
    pub fn discovered(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for s in self.sources.iter().filter(|s| !s.id.is_empty()) {
            *out.entry(self.jobs[s.job as usize].to_string())
                .or_insert(0) += s.discovered + s.missing;
        }
        out
    }

    /// Targets kept by relabeling, duplicates included.
    pub fn kept(&self) -> usize {
        self.sources
            .iter()
            .filter(|s| !s.id.is_empty())
            .map(|s| s.kept)
            .sum()
    }

    /// Seconds spent relabeling per job this refresh.
    pub fn seconds(&self) -> &BTreeMap<String, f64> {
        &self.seconds
    }

    /// Targets relabeled this refresh.
    pub fn relabeled(&self) -> usize {
        self.relabeled
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_rng::Rng;

    fn job() -> JobSpec<'static> {
        static PARAMS: std::sync::LazyLock<BTreeMap<String, Vec<String>>> =
            std::sync::LazyLock::new(BTreeMap::new);
        JobSpec {
            name: "j",
            scrape_interval: "30s",
            scrape_timeout: "10s",
            metrics_path: "/metrics",
            scheme: "http",
            params: &PARAMS,
            rules: &[],
        }
    }

    /// A group of `addresses` whose `__meta_src` label says where it is from: `__meta_*` labels
    /// are not part of a target's identity, so the same address in two groups is one target
    /// listed twice, and which group serves it shows in its labels.
    fn group(addresses: &[&str], src: &str) -> Arc<FileGroup> {
        Arc::new(FileGroup::new(
            addresses.iter().copied(),
            [("__meta_src", src), ("team", "a")],
        ))
    }

    /// The reference: every source's targets in discovery order, each (job, identity) keeping
    /// the last one listed (what the Go allocator's target map does), relabeled from scratch.
    fn reference(sources: &[Vec<Arc<FileGroup>>]) -> BTreeMap<TargetKey, (String, String)> {
        let job = job();
        let mut out = BTreeMap::new();
        for groups in sources {
            for g in groups {
                for address in g.targets.iter() {
                    let labels: BTreeMap<String, String> = TargetLabels::new(&g.labels, address)
                        .iter()
                        .map(|(n, v)| (n.to_owned(), v.to_owned()))
                        .collect();
                    let b = super::super::relabeled(
                        &job,
                        labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                    )
                    .unwrap();
                    let src = labels["__meta_src"].clone();
                    out.insert(b.target_key("j"), (address.to_string(), src));
                }
            }
        }
        out
    }

    /// Served (job "j") as the changes so far say: applied to `served`.
    fn apply(served: &mut BTreeMap<TargetKey, (String, String)>, c: &Changes) {
        let mut seen = HashSet::new();
        for t in c.removed.iter().chain(&c.upserted) {
            assert!(seen.insert(t.key), "{} twice in one refresh", t.key);
        }
        for t in &c.removed {
            assert!(
                served.remove(&t.key).is_some(),
                "{} removed, not served",
                t.key
            );
        }
        for t in &c.upserted {
            let src = t.group.get("__meta_src").unwrap().to_owned();
            served.insert(t.key, (t.address.to_string(), src));
        }
    }

    /// One refresh of `sources` (one file_sd source each, in order).
    fn refresh(c: &mut Current, sources: &[Vec<Arc<FileGroup>>]) -> Changes {
        refresh_but(c, sources, None)
    }

    /// One refresh of `sources` but `skip`, which is not set (gone).
    fn refresh_but(
        c: &mut Current,
        sources: &[Vec<Arc<FileGroup>>],
        skip: Option<usize>,
    ) -> Changes {
        c.begin();
        for (i, groups) in sources.iter().enumerate() {
            if Some(i) != skip {
                c.set_groups(&format!("file {i}"), &job(), groups);
            }
        }
        c.finish()
    }

    fn src_of(c: &Changes, address: &str) -> Vec<String> {
        c.upserted
            .iter()
            .filter(|t| &*t.address == address)
            .map(|t| t.group.get("__meta_src").unwrap().to_owned())
            .collect()
    }

    #[test]
    fn the_later_duplicate_is_served_and_the_earlier_one_again_when_it_goes() {
        let mut c = Current::default();
        let a = group(&["x:1", "y:1"], "A");
        let b = group(&["x:1"], "B");
        // Two files: the second file's x:1 wins.
        let first = refresh(&mut c, &[vec![a.clone()], vec![b.clone()]]);
        assert_eq!(first.upserted.len(), 2);
        assert_eq!(src_of(&first, "x:1"), ["B"]);
        // The later one goes: the earlier one is served again (a change, not a removal).
        let gone = refresh(&mut c, &[vec![a.clone()], vec![]]);
        assert!(gone.removed.is_empty());
        assert_eq!(src_of(&gone, "x:1"), ["A"]);
        assert_eq!(gone.upserted.len(), 1);
        assert_eq!(gone.replaced.len(), 1);
        assert_eq!(gone.replaced[0].group.get("__meta_src").unwrap(), "B");
        // It comes back: served again.
        let back = refresh(&mut c, &[vec![a.clone()], vec![b.clone()]]);
        assert_eq!(src_of(&back, "x:1"), ["B"]);
        // The earlier one goes: nothing served changes.
        let earlier = refresh(&mut c, &[vec![group(&["y:1"], "A")], vec![b.clone()]]);
        assert!(earlier.removed.is_empty());
        assert!(src_of(&earlier, "x:1").is_empty(), "{:?}", earlier.upserted);
        // Both go: removed.
        let both = refresh(&mut c, &[vec![group(&["y:1"], "A")], vec![]]);
        assert_eq!(both.removed.len(), 1);
        assert_eq!(&*both.removed[0].address, "x:1");
        assert!(both.upserted.is_empty());
    }

    #[test]
    fn a_group_that_moves_in_its_file_changes_which_duplicate_is_served() {
        let mut c = Current::default();
        let g1 = group(&["x:1"], "first");
        let g2 = group(&["x:1", "z:1"], "second");
        let one = refresh(&mut c, &[vec![g1.clone(), g2.clone()]]);
        assert_eq!(src_of(&one, "x:1"), ["second"]);
        // The same groups (same allocations), in the other order.
        let moved = refresh(&mut c, &[vec![g2.clone(), g1.clone()]]);
        assert_eq!(src_of(&moved, "x:1"), ["first"]);
        assert_eq!(moved.upserted.len(), 1, "z:1 did not change");
        assert!(moved.removed.is_empty());
        // One group listed twice (a re-read shares one allocation for equal texts): its last
        // place counts.
        let twice = refresh(&mut c, &[vec![g2.clone(), g1.clone(), g2.clone()]]);
        assert_eq!(src_of(&twice, "x:1"), ["second"]);
        let once = refresh(&mut c, &[vec![g1.clone(), g2.clone()]]);
        assert!(once.is_empty(), "{once:?}");
        let dropped = refresh(&mut c, &[vec![g2.clone()]]);
        assert!(dropped.is_empty(), "{dropped:?}");
        let gone = refresh(&mut c, &[vec![g1.clone()]]);
        assert_eq!(src_of(&gone, "x:1"), ["first"]);
        assert_eq!(gone.removed.len(), 1);
        assert_eq!(&*gone.removed[0].address, "z:1");
    }

    #[test]
    fn changes_add_up_to_a_full_collect_after_random_churn() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let mut c = Current::default();
            let mut served = BTreeMap::new();
            let mut sources: Vec<Vec<Arc<FileGroup>>> = vec![Vec::new(); 3];
            let mut made = 0;
            for step in 0..60 {
                for _ in 0..rng.below(4) {
                    let s = rng.below(sources.len());
                    let groups = &mut sources[s];
                    match rng.below(5) {
                        // A new group (addresses from a small pool: duplicates are common).
                        0 | 1 => {
                            made += 1;
                            let n = 1 + rng.below(4);
                            let addresses: Vec<String> =
                                (0..n).map(|_| format!("h{}:80", rng.below(12))).collect();
                            let refs: Vec<&str> = addresses.iter().map(String::as_str).collect();
                            let g = group(&refs, &format!("g{made}"));
                            let at = rng.below(groups.len() + 1);
                            groups.insert(at, g);
                        }
                        // A group goes.
                        2 if !groups.is_empty() => {
                            groups.remove(rng.below(groups.len()));
                        }
                        // A group moves.
                        3 if groups.len() > 1 => {
                            let g = groups.remove(rng.below(groups.len()));
                            let at = rng.below(groups.len() + 1);
                            groups.insert(at, g);
                        }
                        // A group is listed once more (the same allocation).
                        4 if !groups.is_empty() => {
                            let g = groups[rng.below(groups.len())].clone();
                            let at = rng.below(groups.len() + 1);
                            groups.insert(at, g);
                        }
                        _ => {}
                    }
                }
                // Sometimes a whole file is not listed (its source is not set: gone until it
                // is set again).
                let skip = rng.chance(5).then(|| rng.below(sources.len()));
                let changes = refresh_but(&mut c, &sources, skip);
                let mut listed = sources.clone();
                if let Some(s) = skip {
                    listed[s].clear();
                }
                apply(&mut served, &changes);
                let want = reference(&listed);
                assert_eq!(served, want, "seed {seed} step {step}");
                let mut listing: Vec<(TargetKey, (String, String))> = c
                    .listing()
                    .into_iter()
                    .map(|t| {
                        let src = t.group.get("__meta_src").unwrap().to_owned();
                        (t.key, (t.address.to_string(), src))
                    })
                    .collect();
                listing.sort();
                assert_eq!(listing, want.into_iter().collect::<Vec<_>>());
                let total: usize = listed.iter().flatten().map(|g| g.targets.len()).sum();
                let discovered = c.discovered().get("j").copied().unwrap_or(0);
                assert_eq!(discovered, total, "seed {seed} step {step}");
            }
        }
    }
}
