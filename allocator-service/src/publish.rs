//! Publishing the view incrementally: each tick's discovery changes (targets added, removed,
//! relabeled) and the moves of its diffs rebuild only the chunks of the HTTP SD answers they
//! touch. Nothing here passes over every target per tick.
//!
//! A served fragment is `{"labels":{...},"targets":["<address>"]}` of one target, and an answer
//! is the `[...]` of a pair's fragments **in target key order**, exactly as [`rebuild`] (the full
//! build) serializes them. The order inside one (job, collector) answer is ours to choose: the Go
//! allocator serves a collector's targets from a Go map (random order per request), so no client
//! can rely on one. Key order makes an incremental update cheap: a change finds its chunk by
//! binary search instead of a pass over the pair.
//!
//! The publisher keeps, per target, what its fragment is made of (address and discovered labels,
//! `__meta_*` included, which are not part of the target's identity and can change without a
//! move; shared with discovery, not copied), and per chunk member where its fragment starts in
//! the chunk's bytes (so an unchanged fragment is copied, not serialized again, when its chunk is
//! recut). Each (job, collector) pair is a list of chunks, each the members of one key range
//! (sorted by key) and the bytes of their fragments joined by `,`:
//! - a discovery change ([`Publisher::upsert`], [`Publisher::remove`]) or a move
//!   ([`Publisher::moved`]) inserts or removes the target in its pair's chunk, found by binary
//!   search on the chunks' first keys, and marks that chunk dirty;
//! - [`Publisher::publish`] rebuilds only the dirty chunks (consecutive dirty chunks are recut
//!   together into chunks of about [`CHUNK_BYTES`], a small one joins a small neighbour): the
//!   fragments of changed and new members are serialized, the others are copied from their old
//!   chunk's bytes (inflated from its gzip member when the chunk kept only that, see
//!   [`Part::chunk`]); it makes each touched pair's answer from its chunks' parts.
//!
//! Answers are shared [`Answer`]s: every view and every client shares them. A rebuilt chunk gets
//! a new [`Part`], whose gzip member is made once (by the loop right after the view is published,
//! or by the first client that asks, whichever comes first); an untouched chunk keeps its `Part`,
//! gzip member included, so a tick compresses only what it rebuilt.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use allocator_core::{Allocator, Move, TargetKey};
use axum::body::Bytes;
use serde_json::json;

use crate::answer::{Answer, Members, Part};
use crate::discovery::{LabelSet, Target, TargetLabels};

/// Index meaning "none" in the publisher's dense tables.
const NONE: u32 = u32::MAX;

/// The collector id of the pairs that hold a job's targets without a collector: not served to
/// any collector (not in [`Published::sd`]), listed by the debug pages
/// ([`Published::unassigned`]), as the Go allocator lists its target items.
const UNASSIGNED: u32 = u32::MAX - 1;

/// The plain size a chunk of an answer is cut at. A change rebuilds and compresses only the
/// chunks it touches, and each chunk is its own gzip member, which compresses less well the
/// smaller it is: on `make scale`'s targets (~200 bytes each), gzip level 1 of one whole
/// answer is 11.9× smaller, of 13 KB chunks 11.0×, of 6.6 KB chunks 9.5× (Python's zlib, same
/// level); 1% churn spread evenly touches a third of 8 KB chunks.
pub const CHUNK_BYTES: usize = 8 * 1024;

/// The first targets (job, address) a collector serves, per collector (the dashboard's list).
pub type First = Vec<(String, Vec<(Arc<str>, Arc<str>)>)>;

/// Targets per job the allocator holds (what `View::jobs` holds): `/jobs` and the dashboard
/// count them; the targets themselves are in the answers.
pub type Jobs = BTreeMap<String, usize>;
/// The HTTP SD answer of every (job, collector) pair with targets (what `View::sd` holds).
pub type Answers = HashMap<(String, String), Arc<Answer>>;

/// The fragments of each job's targets without a collector (what `View::unassigned` holds).
pub type Unassigned = HashMap<String, Arc<Answer>>;

/// What one publish hands to the view.
pub struct Published {
    pub jobs: Jobs,
    pub sd: Answers,
    /// Per job, its held targets without a collector (the debug pages list them).
    pub unassigned: Unassigned,
    /// The answers this publish rebuilt (the only ones whose gzip form is still to be made).
    pub rebuilt: Vec<Arc<Answer>>,
}

/// The C heap's bytes in use and free (glibc's `mallinfo2`; zeros elsewhere): logged with each
/// published view, so resident memory can be told apart from what the service holds.
pub fn heap() -> (usize, usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's statistics.
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd, m.fordblks)
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        (0, 0)
    }
}

/// Give the C heap's free pages back to the system (glibc's `malloc_trim`, which also releases
/// whole free pages inside the heap, not only at its top). A tick frees what the last view and
/// the last parse held, scattered among what stays: without this, resident memory keeps those
/// holes. Run off the allocation loop (it walks the heap: tens of milliseconds at 1M targets).
pub fn trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free memory to the system; it takes the heap's locks.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// The full build: every answer serialized from scratch, each pair's targets in key order.
/// The reference of the incremental publisher (tests compare the two byte for byte) and the
/// benchmark's baseline.
pub fn rebuild(targets: Vec<Target>, a: &Allocator) -> Published {
    let mut jobs: Jobs = BTreeMap::new();
    let mut pairs: HashMap<(String, String), Vec<Target>> = HashMap::new();
    for t in targets {
        // A target the allocator does not hold (its listing was refused) is not served.
        let Some(info) = a.target(t.key) else {
            continue;
        };
        *jobs.entry(t.job.to_string()).or_default() += 1;
        if let Some(owner) = info.collector.and_then(|c| a.collector_name(c)) {
            pairs
                .entry((t.job.to_string(), owner.to_owned()))
                .or_default()
                .push(t);
        }
    }
    let sd: Answers = pairs
        .into_iter()
        .map(|(k, mut ts)| {
            ts.sort_by_key(|t| t.key);
            let mut v = b"[".to_vec();
            for t in &ts {
                if v.len() > 1 {
                    v.push(b',');
                }
                serde_json::to_writer(
                    &mut v,
                    &json!({ "targets": [&*t.address], "labels": t.labels() }),
                )
                .expect("plain data");
            }
            v.push(b']');
            (k, Answer::new(Bytes::from(v)))
        })
        .collect();
    let rebuilt = sd.values().cloned().collect();
    Published {
        jobs,
        sd,
        unassigned: Unassigned::new(),
        rebuilt,
    }
}

/// One target's fragment, as [`rebuild`] writes it: `serde_json::Value` objects keep their keys
/// sorted, so `labels` comes before `targets`.
fn fragment(address: &str, labels: &LabelSet, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"labels\":");
    serde_json::to_writer(&mut *out, &TargetLabels::new(labels, address)).expect("plain data");
    out.extend_from_slice(b",\"targets\":[");
    serde_json::to_writer(&mut *out, address).expect("plain data");
    out.extend_from_slice(b"]}");
}

/// Whether two shared values are equal: the same allocation, or equal contents.
fn same<T: PartialEq + ?Sized>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || **a == **b
}

/// Names (jobs, collectors) as dense indexes, so that per-target state holds `u32`s.
#[derive(Default)]
struct Names {
    ids: HashMap<Arc<str>, u32, ahash::RandomState>,
    names: Vec<Arc<str>>,
}

impl Names {
    fn id(&mut self, name: &str) -> u32 {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len() as u32;
        let name: Arc<str> = name.into();
        self.names.push(name.clone());
        self.ids.insert(name, id);
        id
    }
}

/// What the publisher remembers of one target.
struct Entry {
    key: TargetKey,
    /// What its fragment is made of: address and group labels. Shared with discovery, so an
    /// unchanged target is recognized by pointer (a file re-read makes new ones, then the
    /// contents are compared).
    address: Arc<str>,
    labels: Arc<LabelSet>,
    job: u32,
    /// Collector name id, or `NONE` (unassigned).
    owner: u32,
    /// Pair index (`NONE` when unassigned).
    group: u32,
    /// Whether the allocator holds it (false only after a refused listing, until the next one
    /// is taken): `/jobs` counts the targets held.
    held: bool,
}

/// One member of a chunk: its key, its entry, and where its fragment starts in the chunk's
/// plain bytes (`NONE`: not there, to be serialized from the entry: new in the chunk, or
/// changed). Its end is found by reading the fragment (a JSON object) from there.
#[derive(Clone, Copy)]
struct Member {
    key: TargetKey,
    entry: u32,
    at: u32,
}

/// The fragments of a run of chunks being recut: their bytes one after the other (no
/// separators) and, per member in key order, its key, entry and bytes.
#[derive(Default)]
struct Run {
    buf: Vec<u8>,
    members: Vec<RunMember>,
}

/// One member of a [`Run`]: key, entry, bytes in the run's buffer, and whether the pair serves
/// it as a second owner (a hand-over).
type RunMember = (TargetKey, u32, std::ops::Range<usize>, bool);

impl Run {
    fn clear(&mut self) {
        self.buf.clear();
        self.members.clear();
    }

    /// Bytes of the fragments with a separator each.
    fn bytes(&self) -> usize {
        self.buf.len() + self.members.len()
    }
}

/// Where the JSON object starting at `at` in `b` ends (one past its `}`). `b` is the bytes of
/// one of our chunks, `at` a fragment's start: valid JSON that serde_json wrote.
pub(crate) fn object_end(b: &[u8], at: usize) -> usize {
    let mut depth = 0usize;
    let mut i = at;
    loop {
        match b[i] {
            b'"' => {
                // Most of a fragment is inside strings: find the closing quote with memchr.
                i += 1;
                loop {
                    i += memchr::memchr2(b'"', b'\\', &b[i..]).expect("a string ends");
                    if b[i] == b'"' {
                        break;
                    }
                    i += 2;
                }
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
        i += 1;
    }
}

/// One chunk of a pair's answer: the members of one key range, in key order, and their
/// fragments joined by `,`.
struct Chunk {
    /// Where its key range starts (the first chunk of a pair also takes every smaller key);
    /// the range ends where the next chunk's starts.
    low: TargetKey,
    /// Its members, sorted by key.
    members: Vec<Member>,
    /// Its bytes (`None` until it is first built).
    part: Option<Arc<Part>>,
    /// Members changed since `part` was built.
    dirty: bool,
    /// `members` is in key order (joiners are appended to a dirty chunk and sorted when it is
    /// recut: a pair's first build takes all its targets without moving any twice).
    sorted: bool,
}

impl Chunk {
    /// Where `key` is among the members.
    fn find(&self, key: TargetKey) -> Option<usize> {
        if self.sorted {
            self.members.binary_search_by_key(&key, |m| m.key).ok()
        } else {
            self.members.iter().position(|m| m.key == key)
        }
    }
}

/// One (job, collector) pair.
struct Group {
    job: u32,
    collector: u32,
    /// Its answer's chunks, in key order.
    chunks: Vec<Chunk>,
    /// How many entries it serves.
    len: usize,
    answer: Arc<Answer>,
    dirty: bool,
}

impl Group {
    /// The chunk whose key range holds `key` (there is at least one chunk).
    fn chunk_of(&self, key: TargetKey) -> usize {
        self.chunks
            .partition_point(|c| c.low <= key)
            .saturating_sub(1)
    }
}

/// The incremental publisher (see the module documentation).
#[derive(Default)]
pub struct Publisher {
    slots: HashMap<TargetKey, u32, ahash::RandomState>,
    entries: Vec<Entry>,
    free_entries: Vec<u32>,
    jobs: Names,
    /// Targets held per job id.
    job_len: Vec<usize>,
    collectors: Names,
    groups: Vec<Group>,
    group_ids: HashMap<(u32, u32), u32, ahash::RandomState>,
    free_groups: Vec<u32>,
    dirty: Vec<u32>,
    /// The answer of every pair with targets, as the last publish left it.
    sd: Answers,
    /// Collectors of moved targets not known yet (a diff's moves handed over before the
    /// discovery change that lists the target): taken when it is upserted.
    pending: HashMap<TargetKey, u32, ahash::RandomState>,
    /// Read every owner from the allocator on the next publish (its listing was refused, or it
    /// was replaced, so the allocator does not hold what moves would describe).
    resync: bool,
    /// The job of the last upserted target, with its id: consecutive targets of one job share
    /// its name, so most lookups are a pointer comparison.
    last_job: Option<(Arc<str>, u32)>,
    /// Second owners (the hand-over window, see [`Publisher::also_serve`]): entry → (collector
    /// name id, group). A side table, so entries pay nothing when there are none.
    also: HashMap<u32, (u32, u32), ahash::RandomState>,
    /// Where chunks are cut (0: [`CHUNK_BYTES`]).
    chunk_bytes: usize,
    /// The answers of the unassigned pairs, per job.
    unassigned: Unassigned,
    /// Entries that may have been left without a collector since the last publish: the next
    /// publish puts those still held and without one in their job's unassigned pair (deferred,
    /// so that a new target placed in the same tick never joins it).
    loose: Vec<u32>,
    /// Mark of [`Publisher::publish_listing`]'s pass: entries listed in it.
    listed: Vec<bool>,
}

impl Publisher {
    /// A publisher cutting chunks at `bytes` instead of [`CHUNK_BYTES`] (tests use small chunks).
    pub fn with_chunk_bytes(bytes: usize) -> Publisher {
        Publisher {
            chunk_bytes: bytes.max(1),
            ..Publisher::default()
        }
    }

    fn chunk_target(&self) -> usize {
        match self.chunk_bytes {
            0 => CHUNK_BYTES,
            n => n,
        }
    }

    /// How many targets it knows (served or not).
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Apply one diff's moves. Call it right after the diff, while `a` still names every
    /// collector the moves reference.
    pub fn moved(&mut self, moves: &[Move], a: &Allocator) {
        for m in moves {
            let owner = match m.to.and_then(|c| a.collector_name(c)) {
                Some(name) => self.collectors.id(name),
                None => NONE,
            };
            match self.slots.get(&m.key) {
                Some(&i) => self.set_owner(i, owner),
                None => {
                    self.pending.insert(m.key, owner);
                }
            }
        }
    }

    /// A target discovery added, or whose address or labels changed (same key): serve its new
    /// fragment where it is served. A new target is served once a move places it (or it was
    /// placed by moves already handed over).
    pub fn upsert(&mut self, t: &Target) {
        let job = match &self.last_job {
            Some((name, id)) if Arc::ptr_eq(name, &t.job) => *id,
            _ => {
                let id = self.jobs.id(&t.job);
                self.last_job = Some((t.job.clone(), id));
                id
            }
        };
        if self.job_len.len() <= job as usize {
            self.job_len.resize(job as usize + 1, 0);
        }
        match self.slots.get(&t.key) {
            Some(&i) => {
                let e = &mut self.entries[i as usize];
                let changed = !same(&e.address, &t.address) || !same(&e.labels, &t.group);
                // Hold what discovery holds now (the next comparison is by pointer).
                e.address = t.address.clone();
                e.labels = t.group.clone();
                if !e.held {
                    e.held = true;
                    self.job_len[e.job as usize] += 1;
                    if e.owner == NONE {
                        self.loose.push(i);
                    }
                }
                let e = &self.entries[i as usize];
                if e.job != job {
                    // The same key under another job: a 64-bit hash collision; it moves job.
                    let owner = e.owner;
                    self.detach(i);
                    self.job_len[self.entries[i as usize].job as usize] -= 1;
                    self.job_len[job as usize] += 1;
                    self.entries[i as usize].job = job;
                    self.set_owner(i, owner);
                }
                if changed {
                    self.touch(i);
                }
            }
            None => {
                let e = Entry {
                    key: t.key,
                    address: t.address.clone(),
                    labels: t.group.clone(),
                    job,
                    owner: NONE,
                    group: NONE,
                    held: true,
                };
                let i = match self.free_entries.pop() {
                    Some(i) => {
                        self.entries[i as usize] = e;
                        i
                    }
                    None => {
                        self.entries.push(e);
                        (self.entries.len() - 1) as u32
                    }
                };
                self.slots.insert(t.key, i);
                self.job_len[job as usize] += 1;
                match self.pending.remove(&t.key) {
                    Some(owner) => self.set_owner(i, owner),
                    None => self.loose.push(i),
                }
            }
        }
    }

    /// A target discovery no longer lists: it leaves every answer.
    pub fn remove(&mut self, key: TargetKey) {
        self.pending.remove(&key);
        let Some(i) = self.slots.remove(&key) else {
            return;
        };
        self.detach(i);
        let e = &mut self.entries[i as usize];
        if e.held {
            self.job_len[e.job as usize] -= 1;
        }
        // Do not pin discovery's strings.
        e.address = Arc::from("");
        e.labels = EMPTY_LABELS.clone();
        e.held = false;
        self.free_entries.push(i);
    }

    /// Serve listed target `key` to `collector` too, besides its owner (the hand-over window),
    /// until its owner changes or this is called again (`None`: stop). Ignored for a target not
    /// listed or without an owner, and when `collector` is its owner.
    pub fn also_serve(&mut self, key: TargetKey, collector: Option<&str>) {
        let Some(&i) = self.slots.get(&key) else {
            return;
        };
        self.drop_also(i);
        let Some(name) = collector else { return };
        let c = self.collectors.id(name);
        let e = &self.entries[i as usize];
        if e.owner == NONE || e.owner == c {
            return;
        }
        let g = self.group(e.job, c);
        self.join(g, key, i);
        self.also.insert(i, (c, g));
    }

    fn drop_also(&mut self, i: u32) {
        if let Some((_, g)) = self.also.remove(&i) {
            let key = self.entries[i as usize].key;
            self.leave(g, key);
        }
    }

    /// The allocator refused a listing or was replaced: the next publish reads every owner from
    /// it (a pass over every target, on this path only).
    pub fn resync(&mut self) {
        self.resync = true;
    }

    fn read_owners(&mut self, a: &Allocator) {
        self.pending.clear();
        let live: Vec<u32> = self.slots.values().copied().collect();
        for i in live {
            let e = &self.entries[i as usize];
            let (job, was) = (e.job as usize, e.held);
            let (held, owner) = match a.target(e.key) {
                None => (false, NONE),
                Some(info) => (
                    true,
                    match info.collector.and_then(|c| a.collector_name(c)) {
                        Some(name) => self.collectors.id(name),
                        None => NONE,
                    },
                ),
            };
            if held != was {
                self.entries[i as usize].held = held;
                if held {
                    self.job_len[job] += 1;
                } else {
                    self.job_len[job] -= 1;
                }
            }
            self.set_owner(i, owner);
        }
    }

    /// Publish what the changes and moves handed over since the last publish made of the view.
    pub fn publish(&mut self, a: &Allocator) -> Published {
        if std::mem::take(&mut self.resync) {
            self.read_owners(a);
        }
        // Moves of targets that were never listed (their listing was refused) serve nothing.
        self.pending.clear();
        self.settle();
        let rebuilt = self.rebuild_dirty();
        let jobs = self
            .job_len
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(j, &n)| (self.jobs.names[j].to_string(), n))
            .collect();
        Published {
            jobs,
            sd: self.sd.clone(),
            unassigned: self.unassigned.clone(),
            rebuilt,
        }
    }

    /// Put the loose entries still held and without a collector in their job's unassigned pair.
    fn settle(&mut self) {
        for i in std::mem::take(&mut self.loose) {
            let e = &self.entries[i as usize];
            let live = self.slots.get(&e.key) == Some(&i);
            if live && e.held && e.owner == NONE && e.group == NONE {
                let (job, key) = (e.job, e.key);
                let g = self.group(job, UNASSIGNED);
                self.join(g, key, i);
                self.entries[i as usize].group = g;
            }
        }
    }

    /// Take entry `i` out of every pair (it is removed, or changes job).
    fn detach(&mut self, i: u32) {
        self.drop_also(i);
        let e = &mut self.entries[i as usize];
        let (g, key) = (e.group, e.key);
        e.group = NONE;
        e.owner = NONE;
        if g != NONE {
            self.leave(g, key);
        }
    }

    /// Publish a full listing (in no particular order): what changed against what the
    /// publisher holds is found by comparing every target (unchanged ones by pointer), then
    /// [`Publisher::publish`]. For sources that only deliver full listings, and the tests.
    pub fn publish_listing(&mut self, targets: Vec<Target>, a: &Allocator) -> Published {
        self.listed.clear();
        self.listed.resize(self.entries.len(), false);
        for t in &targets {
            self.upsert(t);
            let i = self.slots[&t.key] as usize;
            if self.listed.len() <= i {
                self.listed.resize(i + 1, false);
            }
            self.listed[i] = true;
        }
        let gone: Vec<TargetKey> = self
            .slots
            .iter()
            .filter(|(_, &i)| !self.listed.get(i as usize).copied().unwrap_or(false))
            .map(|(&k, _)| k)
            .collect();
        for k in gone {
            self.remove(k);
        }
        self.publish(a)
    }

    /// Up to `limit` (job, address) of the targets each of `collectors` serves, in job then key
    /// order (the dashboard lists a few per collector): one pass over the pairs, then at most
    /// `limit` targets per collector.
    pub fn first(&self, collectors: &[String], limit: usize) -> First {
        let mut per: HashMap<u32, Vec<&Group>> = HashMap::new();
        for (&(_, c), &g) in &self.group_ids {
            per.entry(c).or_default().push(&self.groups[g as usize]);
        }
        collectors
            .iter()
            .map(|name| {
                let mut out = Vec::new();
                let mut groups = self
                    .collectors
                    .ids
                    .get(name.as_str())
                    .and_then(|c| per.remove(c))
                    .unwrap_or_default();
                groups.sort_by_key(|g| &self.jobs.names[g.job as usize]);
                'pairs: for g in groups {
                    for ch in &g.chunks {
                        for m in &ch.members {
                            if out.len() == limit {
                                break 'pairs;
                            }
                            let e = &self.entries[m.entry as usize];
                            out.push((self.jobs.names[g.job as usize].clone(), e.address.clone()));
                        }
                    }
                }
                (name.clone(), out)
            })
            .collect()
    }

    /// The keys of `job`'s targets at `address` (a pass over every target: `/explain` only).
    pub fn find(&self, job: &str, address: &str) -> Vec<TargetKey> {
        let Some(&j) = self.jobs.ids.get(job) else {
            return Vec::new();
        };
        self.slots
            .values()
            .map(|&i| &self.entries[i as usize])
            .filter(|e| e.job == j && *e.address == *address)
            .map(|e| e.key)
            .collect()
    }

    fn mark(&mut self, g: u32) {
        if g != NONE && !self.groups[g as usize].dirty {
            self.groups[g as usize].dirty = true;
            self.dirty.push(g);
        }
    }

    /// Entry `i`'s fragment changed: the chunks that serve it are rebuilt, with its fragment
    /// serialized again.
    fn touch(&mut self, i: u32) {
        let e = &self.entries[i as usize];
        let key = e.key;
        let also = self.also.get(&i).map_or(NONE, |&(_, g)| g);
        for g in [e.group, also] {
            if g != NONE {
                let group = &mut self.groups[g as usize];
                let c = group.chunk_of(key);
                let chunk = &mut group.chunks[c];
                if let Some(at) = chunk.find(key) {
                    chunk.members[at].at = NONE;
                } else {
                    debug_assert!(false, "a member is in the chunk of its key");
                }
                chunk.dirty = true;
                self.mark(g);
            }
        }
    }

    /// Add entry `i` (key `key`) to pair `g`.
    fn join(&mut self, g: u32, key: TargetKey, i: u32) {
        let group = &mut self.groups[g as usize];
        group.len += 1;
        if group.chunks.is_empty() {
            group.chunks.push(Chunk {
                low: key,
                members: Vec::new(),
                part: None,
                dirty: true,
                sorted: true,
            });
        }
        let c = group.chunk_of(key);
        let chunk = &mut group.chunks[c];
        // Appended; the chunk is sorted when it is recut (its members are few, or this is a
        // first build).
        if chunk.members.last().is_some_and(|m| m.key > key) {
            chunk.sorted = false;
        }
        chunk.members.push(Member {
            key,
            entry: i,
            at: NONE,
        });
        chunk.low = chunk.low.min(key);
        chunk.dirty = true;
        self.mark(g);
    }

    /// Take key `key` out of pair `g`.
    fn leave(&mut self, g: u32, key: TargetKey) {
        let group = &mut self.groups[g as usize];
        group.len -= 1;
        let c = group.chunk_of(key);
        let chunk = &mut group.chunks[c];
        if let Some(at) = chunk.find(key) {
            if chunk.sorted {
                chunk.members.remove(at);
            } else {
                chunk.members.swap_remove(at);
            }
        } else {
            debug_assert!(false, "a member is in the chunk of its key");
        }
        chunk.dirty = true;
        self.mark(g);
    }

    /// Move entry `i` to the pair of its job and `owner` (`NONE`: out of every pair).
    fn set_owner(&mut self, i: u32, owner: u32) {
        let e = &self.entries[i as usize];
        if owner == NONE && e.owner == NONE {
            // Already without a collector: in its unassigned pair while held, else in none.
            match (e.held, e.group != NONE) {
                (true, false) => self.loose.push(i),
                (false, true) => self.detach(i),
                _ => {}
            }
            return;
        }
        if e.owner == owner && e.group != NONE {
            return;
        }
        self.drop_also(i);
        let e = &self.entries[i as usize];
        let (old, job, key) = (e.group, e.job, e.key);
        if old != NONE {
            self.leave(old, key);
        }
        let group = if owner == NONE {
            if self.entries[i as usize].held {
                self.loose.push(i);
            }
            NONE
        } else {
            let g = self.group(job, owner);
            self.join(g, key, i);
            g
        };
        let e = &mut self.entries[i as usize];
        e.owner = owner;
        e.group = group;
    }

    fn group(&mut self, job: u32, collector: u32) -> u32 {
        if let Some(&g) = self.group_ids.get(&(job, collector)) {
            return g;
        }
        let group = Group {
            job,
            collector,
            chunks: Vec::new(),
            len: 0,
            answer: Answer::empty(),
            dirty: false,
        };
        let g = match self.free_groups.pop() {
            Some(g) => {
                self.groups[g as usize] = group;
                g
            }
            None => {
                self.groups.push(group);
                (self.groups.len() - 1) as u32
            }
        };
        self.group_ids.insert((job, collector), g);
        g
    }

    fn names(&self, g: &Group) -> (String, String) {
        let collector = match g.collector {
            UNASSIGNED => String::new(),
            c => self.collectors.names[c as usize].to_string(),
        };
        (self.jobs.names[g.job as usize].to_string(), collector)
    }

    /// Rebuild the dirty chunks of the dirty pairs; drop the pairs left empty. Returns the new
    /// answers.
    fn rebuild_dirty(&mut self) -> Vec<Arc<Answer>> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut rebuilt = Vec::with_capacity(dirty.len());
        for g in dirty {
            let group = &mut self.groups[g as usize];
            group.dirty = false;
            if group.len == 0 {
                let key = (group.job, group.collector);
                group.answer = Answer::empty();
                group.chunks = Vec::new();
                self.group_ids.remove(&key);
                self.free_groups.push(g);
                let names = self.names(&self.groups[g as usize]);
                if self.groups[g as usize].collector == UNASSIGNED {
                    self.unassigned.remove(&names.0);
                } else {
                    self.sd.remove(&names);
                }
                continue;
            }
            let old = std::mem::take(&mut group.chunks);
            let chunks = self.recut(old, g);
            debug_assert_eq!(
                chunks.iter().map(|c| c.members.len()).sum::<usize>(),
                self.groups[g as usize].len
            );
            let answer = Answer::list(
                chunks
                    .iter()
                    .map(|c| c.part.clone().expect("a built chunk holds its part")),
            );
            let names = self.names(&self.groups[g as usize]);
            let group = &mut self.groups[g as usize];
            let collector = group.collector;
            group.chunks = chunks;
            group.answer = answer.clone();
            if collector == UNASSIGNED {
                self.unassigned.insert(names.0, answer.clone());
            } else {
                self.sd.insert(names, answer.clone());
            }
            rebuilt.push(answer);
        }
        rebuilt
    }

    /// The chunks of one pair after its changes: clean chunks are kept as they are; each run of
    /// consecutive dirty chunks is recut into chunks of about the target size (a run smaller
    /// than half of it takes a small clean neighbour along, so that chunks do not shrink to a
    /// few targets each over many ticks: each chunk costs a gzip member's frame and compresses
    /// worse than a larger one).
    fn recut(&mut self, old: Vec<Chunk>, g: u32) -> Vec<Chunk> {
        let target = self.chunk_target();
        let small = |c: &Chunk| c.part.as_ref().is_some_and(|p| p.len() < target / 2);
        let mut out: Vec<Chunk> = Vec::with_capacity(old.len());
        let mut run = Run::default();
        let mut in_run = false;
        let mut old = old.into_iter().peekable();
        while let Some(c) = old.next() {
            if !c.dirty {
                out.push(c);
                continue;
            }
            if !in_run {
                in_run = true;
                run.clear();
                if out.last().is_some_and(|p| !p.dirty && small(p)) {
                    let before = out.pop().expect("checked");
                    self.take(before, &mut run, g);
                }
            }
            self.take(c, &mut run, g);
            if old.peek().is_some_and(|n| n.dirty) {
                continue;
            }
            // The run ends here.
            if run.bytes() < target / 2 && old.peek().is_some_and(&small) {
                let next = old.next().expect("checked");
                self.take(next, &mut run, g);
            }
            cut(&run, target, &mut out);
            in_run = false;
        }
        out
    }

    /// Add chunk `c`'s members, in key order, with their fragments to `run`: copied from the
    /// chunk's bytes where they are there, serialized from their entries otherwise.
    fn take(&self, mut c: Chunk, run: &mut Run, g: u32) {
        if !c.sorted {
            c.members.sort_unstable_by_key(|m| m.key);
        }
        let old = match &c.part {
            Some(p) if c.members.iter().any(|m| m.at != NONE) => p.plain(),
            _ => Bytes::new(),
        };
        for m in &c.members {
            let start = run.buf.len();
            if m.at == NONE {
                let e = &self.entries[m.entry as usize];
                fragment(&e.address, &e.labels, &mut run.buf);
            } else {
                let at = m.at as usize;
                run.buf.extend_from_slice(&old[at..object_end(&old, at)]);
            }
            let second = self.entries[m.entry as usize].group != g;
            run.members
                .push((m.key, m.entry, start..run.buf.len(), second));
        }
    }
}

/// Cut `run` into chunks of about `target` bytes onto `out`.
fn cut(run: &Run, target: usize, out: &mut Vec<Chunk>) {
    if run.members.is_empty() {
        return;
    }
    let pieces = run.bytes().div_ceil(target).max(1);
    let each = run.bytes().div_ceil(pieces);
    let mut from = 0;
    let mut size = 0;
    for (n, (_, _, bytes, _)) in run.members.iter().enumerate() {
        size += bytes.len() + 1;
        if size >= each || n + 1 == run.members.len() {
            out.push(build_chunk(run, &run.members[from..=n]));
            from = n + 1;
            size = 0;
        }
    }
}

/// A new chunk of `members`' fragments (from `run`) joined by `,`.
fn build_chunk(run: &Run, members: &[RunMember]) -> Chunk {
    let size: usize = members.iter().map(|m| m.2.len() + 1).sum::<usize>() - 1;
    let mut buf = Vec::with_capacity(size);
    let mut out = Vec::with_capacity(members.len());
    let mut seconds = Vec::new();
    for (n, (key, entry, bytes, second)) in members.iter().enumerate() {
        if n > 0 {
            buf.push(b',');
        }
        if *second {
            seconds.push(n as u32);
        }
        out.push(Member {
            key: *key,
            entry: *entry,
            // A chunk is about `CHUNK_BYTES` and at most one fragment more, and one fragment
            // is one target's labels (a label set is far below 4 GiB): offsets fit.
            at: u32::try_from(buf.len()).unwrap_or(NONE),
        });
        buf.extend_from_slice(&run.buf[bytes.clone()]);
    }
    let keys = out.iter().map(|m| m.key.0).collect();
    let served = Members {
        keys,
        seconds: seconds.into(),
    };
    Chunk {
        low: out[0].key,
        members: out,
        part: Some(Part::targets_chunk(Bytes::from(buf), served)),
        dirty: false,
        sorted: true,
    }
}

/// The label set a freed entry holds (so it pins none of discovery's).
static EMPTY_LABELS: std::sync::LazyLock<Arc<LabelSet>> =
    std::sync::LazyLock::new(|| LabelSet::new(std::iter::empty()));

#[cfg(test)]
mod tests {
    use super::*;
    use allocator_core::{CollectorSpec, Config, Strategy, TargetSpec};

    use crate::test_rng::Rng;

    fn target(job: &str, n: u64, meta: u64, node: u64) -> Target {
        let address = format!("10.{}.{}.{}:9100", n >> 16, (n >> 8) & 255, n & 255);
        let mut labels = BTreeMap::new();
        labels.insert("__address__".to_owned(), address.clone());
        labels.insert("env".to_owned(), format!("e{}", n % 3));
        labels.insert("__meta_id".to_owned(), n.to_string());
        labels.insert("__meta_revision".to_owned(), format!("r{meta}"));
        labels.insert(
            "__meta_kubernetes_pod_node_name".to_owned(),
            format!("node-{node}"),
        );
        // Escapes must survive the fragment writer too.
        labels.insert("__meta_note".to_owned(), format!("\"q\" \\ é {meta}"));
        Target::unrelabeled(&labels, job).unwrap()
    }

    /// The labels `target` made, as the map discovery held per target before the compact store.
    fn map_of(t: &Target) -> BTreeMap<String, String> {
        let n: u64 = t.group.get("__meta_id").unwrap().parse().unwrap();
        let meta = t.group.get("__meta_revision").unwrap()[1..]
            .parse()
            .unwrap();
        let node = t.group.get("__meta_kubernetes_pod_node_name").unwrap()[5..]
            .parse()
            .unwrap();
        let again = target(&t.job, n, meta, node);
        assert_eq!(again, *t);
        let mut m = BTreeMap::new();
        m.insert(
            "__address__".to_owned(),
            format!("10.{}.{}.{}:9100", n >> 16, (n >> 8) & 255, n & 255),
        );
        m.insert("env".to_owned(), format!("e{}", n % 3));
        m.insert("__meta_id".to_owned(), n.to_string());
        m.insert("__meta_revision".to_owned(), format!("r{meta}"));
        m.insert(
            "__meta_kubernetes_pod_node_name".to_owned(),
            format!("node-{node}"),
        );
        m.insert("__meta_note".to_owned(), format!("\"q\" \\ é {meta}"));
        m
    }

    /// Each pair's answer as the service wrote it from per-target maps (before the compact
    /// label store), each pair's targets in key order: the served bytes must not have changed.
    fn answers_from_maps(listing: &[Target], a: &Allocator) -> HashMap<(String, String), Vec<u8>> {
        let mut pairs: BTreeMap<(String, String), BTreeMap<TargetKey, &Target>> = BTreeMap::new();
        for t in listing {
            let Some(owner) = a.collector_of(t.key).and_then(|c| a.collector_name(c)) else {
                continue;
            };
            pairs
                .entry((t.job.to_string(), owner.to_owned()))
                .or_default()
                .insert(t.key, t);
        }
        let mut out = HashMap::new();
        for (pair, ts) in pairs {
            let mut buf = b"[".to_vec();
            for t in ts.values() {
                if buf.len() > 1 {
                    buf.push(b',');
                }
                let map = map_of(t);
                serde_json::to_writer(
                    &mut buf,
                    &json!({ "targets": [map["__address__"]], "labels": map }),
                )
                .unwrap();
            }
            buf.push(b']');
            out.insert(pair, buf);
        }
        out
    }

    fn specs(ts: &[Target]) -> Vec<TargetSpec<'_>> {
        ts.iter()
            .map(|t| {
                TargetSpec::new(
                    t.key,
                    allocator_core::PlacementHash::of_address(&t.address),
                    &t.job,
                )
                .with_node(allocator_core::node_of(t.labels().iter()))
            })
            .collect()
    }

    fn check(seed: u64, strategy: Strategy, chunk_bytes: usize) {
        let mut rng = Rng(seed | 1);
        let jobs = ["api", "node exporter", "db"];
        let mut a = Allocator::new(Config::with_strategy(strategy)).unwrap();
        let mut p = Publisher::with_chunk_bytes(chunk_bytes);
        let mut listing: Vec<Target> = Vec::new();
        let mut collectors: Vec<String> = Vec::new();
        let mut next = 0u64;
        let mut last: Vec<Target> = Vec::new();
        for step in 0..40 {
            // Collectors come and go (sometimes all of them).
            if rng.chance(30) || collectors.is_empty() {
                if rng.chance(60) && collectors.len() < 6 {
                    collectors.push(format!("collector-{}", rng.below(8)));
                    collectors.sort();
                    collectors.dedup();
                } else if !collectors.is_empty() {
                    collectors.remove(rng.below(collectors.len()));
                }
            }
            // Targets added, removed, relabeled (same identity), re-addressed, reordered.
            for _ in 0..rng.below(12) {
                let job = jobs[rng.below(jobs.len())];
                let at = rng.below(listing.len() + 1);
                listing.insert(at, target(job, next, 0, rng.below(4) as u64));
                next += 1;
            }
            for _ in 0..rng.below(6) {
                if !listing.is_empty() {
                    listing.remove(rng.below(listing.len()));
                }
            }
            for _ in 0..rng.below(6) {
                if !listing.is_empty() {
                    let i = rng.below(listing.len());
                    let t = &listing[i];
                    let n = t.group.get("__meta_id").unwrap().parse().unwrap();
                    listing[i] = target(&t.job.clone(), n, rng.next() % 5, rng.below(4) as u64);
                }
            }
            if rng.chance(20) && listing.len() > 2 {
                let (i, j) = (rng.below(listing.len()), rng.below(listing.len()));
                listing.swap(i, j);
            }
            if rng.chance(5) {
                listing.clear();
            }
            let names: Vec<CollectorSpec<'_>> = collectors
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    if i % 2 == 0 {
                        CollectorSpec::on_node(c, "node-1")
                    } else {
                        CollectorSpec::new(c)
                    }
                })
                .collect();
            let moves = a.set_collectors(&names).unwrap().to_vec();
            p.moved(&moves, &a);
            let moves = a.set_targets(&specs(&listing)).unwrap().to_vec();
            // Sometimes the moves are lost (as after a refused listing): a resync recovers.
            if rng.chance(10) {
                p.resync();
            } else {
                p.moved(&moves, &a);
            }
            // The changes as discovery hands them over (found here by comparing the listings),
            // or the whole listing.
            let got = if rng.chance(50) {
                let now: HashMap<TargetKey, &Target> = listing.iter().map(|t| (t.key, t)).collect();
                for t in &last {
                    if !now.contains_key(&t.key) {
                        p.remove(t.key);
                    }
                }
                let before: HashMap<TargetKey, &Target> = last.iter().map(|t| (t.key, t)).collect();
                for t in &listing {
                    if before.get(&t.key).is_none_or(|b| *b != t) {
                        p.upsert(t);
                    }
                }
                p.publish(&a)
            } else {
                p.publish_listing(listing.clone(), &a)
            };
            last = listing.clone();
            // Often the gzip forms are made (as the service's gzip thread does), so chunks keep
            // only their members: plain answers are then inflated, and the next recut of those
            // chunks takes its unchanged fragments from them.
            let warmed = rng.chance(25);
            if warmed {
                for r in &got.rebuilt {
                    r.warm();
                }
            }
            let want = rebuild(listing.clone(), &a);
            assert!(
                got.jobs == want.jobs,
                "seed {seed} {strategy:?} step {step}: jobs differ"
            );
            let mut pairs: Vec<_> = want.sd.keys().chain(got.sd.keys()).collect();
            pairs.sort();
            pairs.dedup();
            for pair in pairs {
                assert_eq!(
                    got.sd.get(pair),
                    want.sd.get(pair),
                    "seed {seed} {strategy:?} step {step}: answer of {pair:?}"
                );
            }
            let before = answers_from_maps(&listing, &a);
            assert_eq!(before.len(), got.sd.len());
            for (pair, bytes) in before {
                let answer = &got.sd[&pair];
                assert_eq!(
                    answer.plain(),
                    bytes,
                    "seed {seed} {strategy:?} step {step}: {pair:?} differs from the per-target maps"
                );
                let rebuilt = got.rebuilt.iter().any(|r| Arc::ptr_eq(r, answer));
                if !(warmed && rebuilt) {
                    continue;
                }
                // What a plain client receives: the parts, inflated where only the gzip
                // member is held.
                let body = futures::executor::block_on(axum::body::to_bytes(
                    answer.respond(false, "application/json").into_body(),
                    usize::MAX,
                ))
                .unwrap();
                assert_eq!(
                    body, bytes,
                    "seed {seed} {strategy:?} step {step}: {pair:?} sent"
                );
                let parts = answer.parts();
                assert!(
                    parts.iter().skip(1).step_by(2).all(|p| !p.holds_plain()),
                    "seed {seed} {strategy:?} step {step}: a gzipped chunk keeps its plain bytes"
                );
            }
            // The dashboard's first targets of each collector: by job, then key.
            let first = p.first(&collectors, 3);
            for (c, got) in first {
                let mut want: Vec<(String, TargetKey, String)> = listing
                    .iter()
                    .filter(|t| {
                        a.collector_of(t.key).and_then(|id| a.collector_name(id))
                            == Some(c.as_str())
                    })
                    .map(|t| (t.job.to_string(), t.key, t.address.to_string()))
                    .collect();
                want.sort();
                want.truncate(3);
                let want: Vec<(String, String)> =
                    want.into_iter().map(|(j, _, a)| (j, a)).collect();
                let got: Vec<(String, String)> = got
                    .iter()
                    .map(|(j, a)| (j.to_string(), a.to_string()))
                    .collect();
                assert_eq!(
                    got, want,
                    "seed {seed} {strategy:?} step {step}: first of {c}"
                );
            }
            // What this publish rebuilt is what it serves (a stale answer would not be warmed).
            for r in &got.rebuilt {
                assert!(got
                    .sd
                    .values()
                    .chain(got.unassigned.values())
                    .any(|a| Arc::ptr_eq(a, r)));
            }
            // The keys each chunk records (the debug pages' targets): per pair, the keys of
            // the targets the allocator places there, in key order; targets it holds without
            // a collector in their job's unassigned answer.
            let mut want: BTreeMap<(String, String), Vec<u64>> = BTreeMap::new();
            for t in &listing {
                if let Some(info) = a.target(t.key) {
                    let c = info.collector.and_then(|c| a.collector_name(c));
                    let c = c.unwrap_or_default().to_owned();
                    want.entry((t.job.to_string(), c))
                        .or_default()
                        .push(t.key.0);
                }
            }
            want.values_mut().for_each(|v| v.sort_unstable());
            let keys = |a: &Answer| -> Vec<u64> {
                let parts = a.parts().iter();
                parts
                    .flat_map(|p| p.members().keys.iter().copied())
                    .collect()
            };
            let served = got.sd.iter().map(|(k, a)| (k.clone(), keys(a)));
            let loose = got
                .unassigned
                .iter()
                .map(|(j, a)| ((j.clone(), String::new()), keys(a)));
            let have: BTreeMap<(String, String), Vec<u64>> = served.chain(loose).collect();
            assert_eq!(
                have, want,
                "seed {seed} {strategy:?} step {step}: chunk keys"
            );
        }
    }

    #[test]
    fn incremental_answers_equal_a_full_build_after_random_churn() {
        // Chunks of one target, of a few, and of the service's size (one chunk per answer here).
        for chunk_bytes in [1, 700, 2000, CHUNK_BYTES] {
            for strategy in Strategy::ALL {
                for seed in 1..=6u64 {
                    check(
                        seed.wrapping_mul(0x9e37_79b9_7f4a_7c15),
                        strategy,
                        chunk_bytes,
                    );
                }
            }
        }
    }

    #[test]
    fn a_change_rebuilds_only_the_chunks_it_touches() {
        let mut a = Allocator::new(Config::default()).unwrap();
        let mut p = Publisher::with_chunk_bytes(2000);
        let moves = a
            .set_collectors(&[CollectorSpec::new("c0")])
            .unwrap()
            .to_vec();
        p.moved(&moves, &a);
        let mut listing: Vec<Target> = (0..300).map(|n| target("api", n, 0, 0)).collect();
        let moves = a.set_targets(&specs(&listing)).unwrap().to_vec();
        p.moved(&moves, &a);
        let pair = ("api".to_owned(), "c0".to_owned());
        let before = p.publish_listing(listing.clone(), &a).sd[&pair].clone();
        let chunks = |x: &Answer| -> Vec<Arc<Part>> {
            // Parts at odd places are the separators `[`, `,`, `]`.
            x.parts().iter().skip(1).step_by(2).cloned().collect()
        };
        let old = chunks(&before);
        assert!(old.len() > 20, "{} chunks", old.len());
        // One target relabeled (same identity), one removed, one added in the middle.
        listing[150] = target("api", 150, 1, 0);
        listing.remove(40);
        listing.insert(250, target("api", 1000, 0, 0));
        let moves = a.set_targets(&specs(&listing)).unwrap().to_vec();
        p.moved(&moves, &a);
        let after = p.publish_listing(listing.clone(), &a).sd[&pair].clone();
        assert_eq!(*after, *rebuild(listing, &a).sd[&pair]);
        let new = chunks(&after);
        let kept = new
            .iter()
            .filter(|c| old.iter().any(|o| Arc::ptr_eq(o, c)))
            .count();
        // Each change touches one chunk, which may take a small neighbour with it.
        assert!(
            kept + 6 >= old.len() && kept + 6 >= new.len(),
            "{kept} of {} chunks kept ({} now)",
            old.len(),
            new.len()
        );
    }

    #[test]
    fn a_refused_listing_serves_what_the_allocator_holds() {
        let mut a = Allocator::new(Config::default()).unwrap();
        let mut p = Publisher::default();
        let moves = a
            .set_collectors(&[CollectorSpec::new("c0"), CollectorSpec::new("c1")])
            .unwrap()
            .to_vec();
        p.moved(&moves, &a);
        let old: Vec<Target> = (0..20).map(|n| target("api", n, 0, 0)).collect();
        let moves = a.set_targets(&specs(&old)).unwrap().to_vec();
        p.moved(&moves, &a);
        let first = p.publish_listing(old.clone(), &a);
        assert_eq!(first.sd, rebuild(old.clone(), &a).sd);
        // The allocator keeps the old targets; the listing has half of them and new ones.
        let listing: Vec<Target> = (10..30).map(|n| target("api", n, 1, 0)).collect();
        p.resync();
        let got = p.publish_listing(listing.clone(), &a);
        let want = rebuild(listing, &a);
        assert_eq!(got.jobs["api"], 10);
        assert!(got.jobs == want.jobs);
        assert_eq!(got.sd, want.sd);
    }
}
