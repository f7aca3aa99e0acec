//! Publishing the view incrementally: each tick's moves and discovery changes rebuild only the
//! HTTP SD answers of the (job, collector) pairs they touch.
//!
//! A served fragment is `{"labels":{...},"targets":["<address>"]}` of one target, and an answer
//! is the `[...]` of a pair's fragments in discovery order, exactly as [`rebuild`] (the full build
//! the service did before) serializes them. The publisher keeps, per target, what its fragment is
//! made of (address and discovered labels, `__meta_*` included, which are not part of the
//! target's identity and can change without a move; shared with discovery, not copied) and the
//! fragment itself as a slice of its pair's answer, so no byte is held twice. Per tick:
//! - moves (fed as each diff returns them) move targets between pairs and mark both dirty;
//! - one pass over the listing compares every target with what it was (a pointer comparison
//!   when discovery kept it; the contents when a file was re-read), serializes only targets that
//!   are new or changed, and marks their pair dirty; a pair whose members were
//!   reordered in the listing is dirty too, so answers keep discovery order;
//! - targets no longer listed leave their pair (dirty);
//! - only dirty pairs are re-concatenated from their members' fragments (a `memcpy` each).
//!
//! Answers are shared [`Answer`]s: every view and every client shares them. A rebuilt pair gets
//! a new `Answer`, whose gzip form is made once (by the loop right after the view is published, or
//! by the first client that asks, whichever comes first); an untouched pair keeps its `Answer`,
//! gzip form included, so a tick compresses only what it rebuilt.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use allocator_core::{Allocator, Move, TargetKey};
use axum::body::Bytes;
use serde_json::json;

use crate::answer::{Answer, Part};
use crate::discovery::{LabelSet, Target};

/// Index meaning "none" in the publisher's dense tables.
const NONE: u32 = u32::MAX;

/// The plain size a chunk of an answer is cut at. A change rebuilds and compresses only the
/// chunks it touches, and each chunk is its own gzip member, which compresses less well the
/// smaller it is: on `make scale`'s targets (~200 bytes each), gzip level 1 of one whole
/// answer is 11.9× smaller, of 13 KB chunks 11.0×, of 6.6 KB chunks 9.5× (Python's zlib, same
/// level); 1% churn spread evenly touches a third of 8 KB chunks.
pub const CHUNK_BYTES: usize = 8 * 1024;

/// Targets per job, each with its collector, in discovery order (what `View::jobs` holds).
/// Collector names are shared, not copied per target.
pub type Jobs = BTreeMap<String, Vec<(Target, Option<Arc<str>>)>>;
/// The HTTP SD answer of every (job, collector) pair with targets (what `View::sd` holds).
pub type Answers = HashMap<(String, String), Arc<Answer>>;

/// What one publish hands to the view.
pub struct Published {
    pub jobs: Jobs,
    pub sd: Answers,
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

/// The full build: every answer serialized from scratch. This is what the service published
/// before the incremental publisher; kept as its reference (tests compare the two byte for byte)
/// and as the benchmark's baseline.
pub fn rebuild(targets: Vec<Target>, a: &Allocator) -> Published {
    let mut jobs: Jobs = BTreeMap::new();
    for t in targets {
        // A target the allocator does not hold (its listing was refused) is not served.
        let Some(info) = a.target(t.key) else {
            continue;
        };
        let owner = info
            .collector
            .and_then(|c| a.collector_name(c))
            .map(Arc::from);
        jobs.entry(t.job.to_string()).or_default().push((t, owner));
    }
    let mut parts: HashMap<(String, String), Vec<u8>> = HashMap::new();
    for (job, ts) in &jobs {
        for (t, owner) in ts {
            let Some(owner) = owner else { continue };
            let buf = parts
                .entry((job.clone(), owner.to_string()))
                .or_insert_with(|| b"[".to_vec());
            if buf.len() > 1 {
                buf.push(b',');
            }
            serde_json::to_writer(
                &mut *buf,
                &json!({ "targets": [&*t.address], "labels": t.labels() }),
            )
            .expect("plain data");
        }
    }
    let sd: Answers = parts
        .into_iter()
        .map(|(k, mut v)| {
            v.push(b']');
            (k, Answer::new(Bytes::from(v)))
        })
        .collect();
    let rebuilt = sd.values().cloned().collect();
    Published { jobs, sd, rebuilt }
}

/// One target's fragment, as [`rebuild`] writes it: `serde_json::Value` objects keep their keys
/// sorted, so `labels` comes before `targets`.
fn fragment(t: &Target, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"labels\":");
    serde_json::to_writer(&mut *out, &t.labels()).expect("plain data");
    out.extend_from_slice(b",\"targets\":[");
    serde_json::to_writer(&mut *out, &*t.address).expect("plain data");
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

/// What the publisher remembers of one listed target.
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
    /// Group index (`NONE` when unassigned).
    group: u32,
    /// Position in the last listing: the order of an answer.
    pos: u32,
    /// The tick that last listed it.
    seen: u32,
    /// The rebuild that last placed it in an answer (so a stale member index is skipped once).
    placed: u32,
    /// Its serialized fragment: a slice of its chunk, or a fresh buffer when it was serialized
    /// this tick. Empty when it must be serialized (new, changed, or unassigned).
    fragment: Bytes,
    /// The chunk its fragment was last cut into (`NONE`: none since it changed or moved): a
    /// hint only, which [`Publisher::chunk`] checks against the chunk's bytes before keeping
    /// the chunk (a target served to two pairs during a hand-over has one fragment).
    chunk: u32,
}

/// One chunk of a pair's answer: consecutive members' fragments joined by `,`.
struct Chunk {
    /// How many members it was built from.
    len: u32,
    /// The pair whose answer it is part of (only that pair keeps or frees it).
    group: u32,
    part: Option<Arc<Part>>,
}

/// One (job, collector) pair.
struct Group {
    job: u32,
    collector: u32,
    /// Entry indexes in the order of the last answer; may hold stale indexes (targets that left
    /// since), which the next rebuild drops.
    members: Vec<u32>,
    /// Its answer's chunks, in order.
    chunks: Vec<u32>,
    /// How many entries belong to it now.
    len: usize,
    answer: Arc<Answer>,
    dirty: bool,
    /// Order check of the current pass: the tick and the previous-listing position of the last
    /// member seen in this pass.
    check_tick: u32,
    check_last: u32,
}

/// The incremental publisher (see the module documentation).
#[derive(Default)]
pub struct Publisher {
    slots: HashMap<TargetKey, u32, ahash::RandomState>,
    entries: Vec<Entry>,
    free_entries: Vec<u32>,
    jobs: Names,
    collectors: Names,
    groups: Vec<Group>,
    chunks: Vec<Chunk>,
    free_chunks: Vec<u32>,
    group_ids: HashMap<(u32, u32), u32, ahash::RandomState>,
    free_groups: Vec<u32>,
    dirty: Vec<u32>,
    /// Collectors of moved targets not listed yet (new targets): taken by the next publish.
    pending: HashMap<TargetKey, u32, ahash::RandomState>,
    /// Read every owner from the allocator on the next publish (its listing was refused, so the
    /// allocator does not hold what moves would describe).
    resync: bool,
    tick: u32,
    builds: u32,
    /// The job of the last listed target, with its id: consecutive targets of one job share
    /// its name, so most lookups are a pointer comparison.
    last_job: Option<(Arc<str>, u32)>,
    /// Targets per job in the last listing: this tick's per-job lists start at that size (their
    /// growth would copy every target again and free large buffers).
    per_job: Vec<usize>,
    /// Second owners (the hand-over window, see [`Publisher::also_serve`]): entry → (collector
    /// name id, group). A side table, so entries pay nothing when there are none.
    also: HashMap<u32, (u32, u32), ahash::RandomState>,
    /// Where chunks are cut (0: [`CHUNK_BYTES`]).
    chunk_bytes: usize,
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
        self.groups[g as usize].members.push(i);
        self.groups[g as usize].len += 1;
        self.mark(g);
        self.also.insert(i, (c, g));
    }

    fn drop_also(&mut self, i: u32) {
        if let Some((_, g)) = self.also.remove(&i) {
            self.groups[g as usize].len -= 1;
            self.mark(g);
        }
    }

    /// The allocator refused a listing: the next publish reads every owner from it.
    pub fn resync(&mut self) {
        self.resync = true;
    }

    /// Publish the listing (in discovery order) against the allocator that placed it.
    pub fn publish(&mut self, targets: Vec<Target>, a: &Allocator) -> Published {
        let resync = std::mem::take(&mut self.resync);
        // 0 marks a free entry.
        self.tick = self.tick.wrapping_add(1).max(1);
        let tick = self.tick;
        let mut by_job: Vec<Vec<(Target, Option<Arc<str>>)>> = self
            .per_job
            .iter()
            .map(|&n| Vec::with_capacity(n))
            .collect();
        let mut scratch = Vec::new();
        // Second owners' answers are rebuilt every publish (few, and short-lived): they follow
        // the listing's order and fragments without a check of their own.
        let also: Vec<u32> = self.also.values().map(|&(_, g)| g).collect();
        for g in also {
            self.mark(g);
        }
        for (pos, t) in targets.into_iter().enumerate() {
            let pos = pos as u32;
            let job = match &self.last_job {
                Some((name, id)) if Arc::ptr_eq(name, &t.job) => *id,
                _ => {
                    let id = self.jobs.id(&t.job);
                    self.last_job = Some((t.job.clone(), id));
                    id
                }
            };
            // After a refused listing, the allocator holds other targets than the listing:
            // serve only those it holds, where it holds them.
            let held = if resync {
                match a.target(t.key) {
                    None => continue,
                    Some(info) => Some(match info.collector.and_then(|c| a.collector_name(c)) {
                        Some(name) => self.collectors.id(name),
                        None => NONE,
                    }),
                }
            } else {
                None
            };
            let i = match self.slots.get(&t.key) {
                Some(&i) => {
                    let e = &mut self.entries[i as usize];
                    if e.seen == tick {
                        // Discovery lists a key once (its identity includes the job); a
                        // repeat would be a 64-bit hash collision.
                        tracing::warn!(key = %t.key, job = %t.job, "target listed twice; serving it once");
                        continue;
                    }
                    e.seen = tick;
                    let changed = !same(&e.address, &t.address) || !same(&e.labels, &t.group);
                    // Hold what discovery holds now (next tick compares pointers).
                    e.address = t.address.clone();
                    e.labels = t.group.clone();
                    let (old_job, owner, group) = (e.job, e.owner, e.group);
                    if changed {
                        e.fragment = Bytes::new();
                        e.chunk = NONE;
                    }
                    if old_job != job {
                        self.set_owner(i, NONE);
                        self.entries[i as usize].job = job;
                        self.set_owner(i, owner);
                    } else if changed {
                        self.mark(group);
                    }
                    if let Some(owner) = held {
                        self.set_owner(i, owner);
                    }
                    // Answers follow discovery order: a pair whose members kept their relative
                    // order keeps its answer; otherwise it is rebuilt.
                    let e = &self.entries[i as usize];
                    if e.group != NONE {
                        let g = &mut self.groups[e.group as usize];
                        if !g.dirty {
                            if g.check_tick == tick && e.pos < g.check_last {
                                g.dirty = true;
                                self.dirty.push(e.group);
                            }
                            g.check_tick = tick;
                            g.check_last = e.pos;
                        }
                    }
                    i
                }
                None => {
                    let owner = match held {
                        Some(owner) => owner,
                        None => self.pending.remove(&t.key).unwrap_or(NONE),
                    };
                    let e = Entry {
                        key: t.key,
                        address: t.address.clone(),
                        labels: t.group.clone(),
                        job,
                        owner: NONE,
                        group: NONE,
                        pos,
                        seen: tick,
                        placed: 0,
                        fragment: Bytes::new(),
                        chunk: NONE,
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
                    self.set_owner(i, owner);
                    i
                }
            };
            let e = &mut self.entries[i as usize];
            e.pos = pos;
            if e.owner != NONE && e.fragment.is_empty() {
                scratch.clear();
                fragment(&t, &mut scratch);
                e.fragment = Bytes::copy_from_slice(&scratch);
            }
            let owner = (e.owner != NONE).then(|| self.collectors.names[e.owner as usize].clone());
            if by_job.len() <= job as usize {
                by_job.resize_with(job as usize + 1, Vec::new);
            }
            by_job[job as usize].push((t, owner));
        }
        self.pending.clear();
        // Targets no longer listed (or no longer held) leave their pair.
        for i in 0..self.entries.len() as u32 {
            let e = &self.entries[i as usize];
            if e.seen != tick && e.seen != 0 {
                self.set_owner(i, NONE);
                let e = &mut self.entries[i as usize];
                self.slots.remove(&e.key);
                e.seen = 0;
                self.free_entries.push(i);
            }
        }
        let rebuilt = self.rebuild_dirty();
        self.per_job = by_job.iter().map(Vec::len).collect();
        let jobs = by_job
            .into_iter()
            .enumerate()
            .filter(|(_, ts)| !ts.is_empty())
            .map(|(j, ts)| (self.jobs.names[j].to_string(), ts))
            .collect();
        let sd = self
            .group_ids
            .values()
            .map(|&g| {
                let g = &self.groups[g as usize];
                (
                    (
                        self.jobs.names[g.job as usize].to_string(),
                        self.collectors.names[g.collector as usize].to_string(),
                    ),
                    g.answer.clone(),
                )
            })
            .collect();
        Published { jobs, sd, rebuilt }
    }

    fn mark(&mut self, g: u32) {
        if g != NONE && !self.groups[g as usize].dirty {
            self.groups[g as usize].dirty = true;
            self.dirty.push(g);
        }
    }

    /// Move entry `i` to the pair of its job and `owner` (`NONE`: out of every pair).
    fn set_owner(&mut self, i: u32, owner: u32) {
        let e = &self.entries[i as usize];
        if e.owner == owner && (owner == NONE || e.group != NONE) {
            return;
        }
        self.drop_also(i);
        let e = &self.entries[i as usize];
        let (old, job) = (e.group, e.job);
        if old != NONE {
            self.groups[old as usize].len -= 1;
            self.mark(old);
        }
        let group = if owner == NONE {
            NONE
        } else {
            let g = self.group(job, owner);
            self.groups[g as usize].members.push(i);
            self.groups[g as usize].len += 1;
            self.mark(g);
            g
        };
        let e = &mut self.entries[i as usize];
        e.owner = owner;
        e.group = group;
        e.chunk = NONE;
        if owner == NONE {
            // Unassigned targets are in no answer: do not pin an old answer's buffer.
            e.fragment = Bytes::new();
        }
    }

    fn group(&mut self, job: u32, collector: u32) -> u32 {
        if let Some(&g) = self.group_ids.get(&(job, collector)) {
            return g;
        }
        let group = Group {
            job,
            collector,
            members: Vec::new(),
            chunks: Vec::new(),
            len: 0,
            answer: Answer::empty(),
            dirty: false,
            check_tick: 0,
            check_last: 0,
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

    /// Rebuild the answers of the dirty pairs (only their chunks that changed); drop the pairs
    /// left empty. Returns the new answers.
    fn rebuild_dirty(&mut self) -> Vec<Arc<Answer>> {
        let dirty = std::mem::take(&mut self.dirty);
        let mut rebuilt = Vec::with_capacity(dirty.len());
        for g in dirty {
            self.builds = self.builds.wrapping_add(1).max(1);
            let build = self.builds;
            let group = &mut self.groups[g as usize];
            group.dirty = false;
            let mut members = std::mem::take(&mut group.members);
            let old = std::mem::take(&mut group.chunks);
            if group.len == 0 {
                let key = (group.job, group.collector);
                group.answer = Answer::empty();
                self.group_ids.remove(&key);
                self.free_groups.push(g);
                self.free(&old, &[]);
                continue;
            }
            let entries = &mut self.entries;
            let also = &self.also;
            members.retain(|&i| {
                let e = &mut entries[i as usize];
                let member = e.group == g || also.get(&i).is_some_and(|&(_, ag)| ag == g);
                let keep = member && e.seen != 0 && e.placed != build;
                e.placed = build;
                keep
            });
            debug_assert_eq!(members.len(), self.groups[g as usize].len);
            // Nearly sorted (old order plus a few joiners): the stable sort finds the runs.
            members.sort_by_key(|&i| entries[i as usize].pos);
            let chunks = self.chunk(g, &members);
            self.free(&old, &chunks);
            let answer = Answer::list(chunks.iter().map(|&c| {
                self.chunks[c as usize]
                    .part
                    .clone()
                    .expect("a chunk in use holds its part")
            }));
            let group = &mut self.groups[g as usize];
            group.members = members;
            group.chunks = chunks;
            group.answer = answer;
            rebuilt.push(group.answer.clone());
        }
        rebuilt
    }

    /// The chunks of pair `g` whose members are `members`, in order: a chunk of the pair's last
    /// answer is kept where its bytes are exactly the fragments of the members at that place
    /// (each member's fragment is the slice of the chunk's buffer at its place: a changed
    /// target has a new fragment, a joiner or a reordering breaks the sequence); the members in
    /// between are cut into new chunks of about [`CHUNK_BYTES`].
    fn chunk(&mut self, g: u32, members: &[u32]) -> Vec<u32> {
        // Runs of `members`: a kept chunk, or `NONE` for members to chunk anew.
        let mut runs: Vec<(usize, usize, u32)> = Vec::new();
        let mut i = 0;
        let mut fresh = 0;
        while i < members.len() {
            let c = self.entries[members[i] as usize].chunk;
            if c != NONE && self.keeps(g, c, &members[i..]) {
                let len = self.chunks[c as usize].len as usize;
                if fresh < i {
                    runs.push((fresh, i, NONE));
                }
                runs.push((i, i + len, c));
                i += len;
                fresh = i;
                continue;
            }
            i += 1;
        }
        if fresh < members.len() {
            runs.push((fresh, members.len(), NONE));
        }
        let bytes = |entries: &[Entry], r: &[u32]| -> usize {
            r.iter()
                .map(|&m| entries[m as usize].fragment.len() + 1)
                .sum()
        };
        let chunk_bytes = self.chunk_target();
        let mut out = Vec::with_capacity(runs.len());
        // The last run pushed as a kept chunk, with its start (a small run may take it back).
        let mut last_kept: Option<usize> = None;
        let mut k = 0;
        while k < runs.len() {
            let (mut start, mut end, c) = runs[k];
            k += 1;
            if c != NONE {
                out.push(c);
                last_kept = Some(start);
                continue;
            }
            // A small run joins a small kept chunk beside it, so that chunks do not shrink to a
            // few targets each over many ticks (each chunk costs a gzip member's frame and
            // compresses worse than a larger one).
            let small = |entries: &[Entry], r: &[u32]| bytes(entries, r) < chunk_bytes / 2;
            if small(&self.entries, &members[start..end]) {
                if let Some(s) = last_kept.filter(|&s| small(&self.entries, &members[s..start])) {
                    out.pop();
                    start = s;
                }
                if let Some(&(_, e, next)) = runs.get(k) {
                    if next != NONE && small(&self.entries, &members[end..e]) {
                        end = e;
                        k += 1;
                    }
                }
            }
            last_kept = None;
            let run = &members[start..end];
            let total = bytes(&self.entries, run);
            let pieces = total.div_ceil(chunk_bytes).max(1);
            let target = total.div_ceil(pieces);
            let mut from = 0;
            let mut size = 0;
            for (n, &m) in run.iter().enumerate() {
                size += self.entries[m as usize].fragment.len() + 1;
                if size >= target || n + 1 == run.len() {
                    out.push(self.build_chunk(g, &run[from..=n]));
                    from = n + 1;
                    size = 0;
                }
            }
        }
        out
    }

    /// Whether chunk `c` of pair `g` is exactly the fragments of the first members of `run`
    /// joined by `,`.
    fn keeps(&self, g: u32, c: u32, run: &[u32]) -> bool {
        let chunk = &self.chunks[c as usize];
        let Some(part) = chunk.part.as_ref().filter(|_| chunk.group == g) else {
            return false;
        };
        let Some(run) = run.get(..chunk.len as usize) else {
            return false;
        };
        let base = part.plain.as_ptr() as usize;
        let mut at = 0;
        for &m in run {
            let f = &self.entries[m as usize].fragment;
            // Fragments hold their buffer, so an address in this chunk's live buffer is a slice
            // of it, never of another allocation.
            if f.is_empty() || f.as_ptr() as usize != base + at {
                return false;
            }
            at += f.len() + 1;
        }
        at == part.plain.len() + 1
    }

    /// A new chunk of pair `g` of `members`' fragments joined by `,`; their fragments become its
    /// slices.
    fn build_chunk(&mut self, g: u32, members: &[u32]) -> u32 {
        let size: usize = members
            .iter()
            .map(|&i| self.entries[i as usize].fragment.len() + 1)
            .sum();
        let mut buf = Vec::with_capacity(size);
        let mut ends = Vec::with_capacity(members.len());
        for (n, &i) in members.iter().enumerate() {
            if n > 0 {
                buf.push(b',');
            }
            let start = buf.len();
            buf.extend_from_slice(&self.entries[i as usize].fragment);
            ends.push((start, buf.len()));
        }
        let bytes = Bytes::from(buf);
        let chunk = Chunk {
            len: members.len() as u32,
            group: g,
            part: Some(Part::new(bytes.clone())),
        };
        let c = match self.free_chunks.pop() {
            Some(c) => {
                self.chunks[c as usize] = chunk;
                c
            }
            None => {
                self.chunks.push(chunk);
                (self.chunks.len() - 1) as u32
            }
        };
        for (&i, &(start, end)) in members.iter().zip(&ends) {
            let e = &mut self.entries[i as usize];
            e.fragment = bytes.slice(start..end);
            e.chunk = c;
        }
        c
    }

    /// Free the chunks of `old` that are not in `kept`.
    fn free(&mut self, old: &[u32], kept: &[u32]) {
        for &c in kept {
            self.chunks[c as usize].len |= KEPT;
        }
        for &c in old {
            let chunk = &mut self.chunks[c as usize];
            if chunk.len & KEPT == 0 {
                chunk.part = None;
                self.free_chunks.push(c);
            }
        }
        for &c in kept {
            self.chunks[c as usize].len &= !KEPT;
        }
    }
}

/// A mark on a chunk's length while [`Publisher::free`] runs (a chunk never holds 2³¹ members).
const KEPT: u32 = 1 << 31;

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
        let key = TargetKey::from_labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())), job)
            .unwrap();
        let (group, address) = crate::discovery::discovered(&labels);
        Target {
            job: job.into(),
            address: address.unwrap(),
            group,
            key,
        }
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
    /// label store): the served bytes must not have changed.
    fn answers_from_maps(jobs: &Jobs) -> HashMap<(String, String), Vec<u8>> {
        let mut out: HashMap<(String, String), Vec<u8>> = HashMap::new();
        for (job, ts) in jobs {
            for (t, owner) in ts {
                let Some(owner) = owner else { continue };
                let buf = out
                    .entry((job.clone(), owner.to_string()))
                    .or_insert_with(|| b"[".to_vec());
                if buf.len() > 1 {
                    buf.push(b',');
                }
                let map = map_of(t);
                serde_json::to_writer(
                    &mut *buf,
                    &json!({ "targets": [map["__address__"]], "labels": map }),
                )
                .unwrap();
            }
        }
        for v in out.values_mut() {
            v.push(b']');
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
            let got = p.publish(listing.clone(), &a);
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
            let before = answers_from_maps(&want.jobs);
            assert_eq!(before.len(), got.sd.len());
            for (pair, bytes) in before {
                assert_eq!(
                    got.sd[&pair].plain(),
                    bytes,
                    "seed {seed} {strategy:?} step {step}: {pair:?} differs from the per-target maps"
                );
            }
            // What this publish rebuilt is what it serves (a stale answer would not be warmed).
            for r in &got.rebuilt {
                assert!(got.sd.values().any(|a| Arc::ptr_eq(a, r)));
            }
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
        let before = p.publish(listing.clone(), &a).sd[&pair].clone();
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
        let after = p.publish(listing.clone(), &a).sd[&pair].clone();
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
        let first = p.publish(old.clone(), &a);
        assert_eq!(first.sd, rebuild(old.clone(), &a).sd);
        // The allocator keeps the old targets; the listing has half of them and new ones.
        let listing: Vec<Target> = (10..30).map(|n| target("api", n, 1, 0)).collect();
        p.resync();
        let got = p.publish(listing.clone(), &a);
        let want = rebuild(listing, &a);
        assert_eq!(got.jobs["api"].len(), 10);
        assert!(got.jobs == want.jobs);
        assert_eq!(got.sd, want.sd);
    }
}
