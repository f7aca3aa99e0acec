//! File discovery, the embedded default: `static_configs` and `file_sd_configs` targets of the
//! Prometheus config, and collectors listed in the configuration or in a file.
//!
//! Every watched file has a watcher thread of its own ([`watch`]), so a read that blocks (a
//! network filesystem, a slow disk) never blocks the allocation loop: the watcher checks the
//! file's status every [`crate::REFRESH`], re-reads it when the status changed or its
//! `refresh_interval` is due, and reports only contents whose hash changed (a rewrite that keeps
//! the modification time is still seen at the next refresh). A file that cannot be read or
//! parsed is logged, its previous contents kept, and retried with backoff. Only regular files
//! are read (a FIFO would block), within size and nesting limits. A watcher busy for longer than
//! [`STALL`] is reported as a stall, which `/readyz` shows.

mod current;
pub mod http_sd;
pub mod labels;
pub(crate) mod watch;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use allocator_core::LabelBuilder;
use serde::Deserialize;

use crate::config::{Loaded, StaticConfig};
use crate::relabel;
pub use current::{Changes, Current};
use labels::{split_address, Pairs, Reuse};
pub use labels::{LabelSet, TargetLabels};
use watch::{Disk, Source, Watch, Watcher};

/// A target after discovery and relabeling.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Shared by every target of the job.
    pub job: Arc<str>,
    /// The raw `__address__` (shared with the discovery cache).
    pub address: Arc<str>,
    /// Discovered labels before relabeling, `__address__` excepted: the group's labels (file_sd:
    /// with `__meta_filepath`), shared by every target of the group. [`Target::labels`] is
    /// what the collector's HTTP SD reads.
    pub group: Arc<LabelSet>,
    /// Identity: the Go allocator's item hash of the relabeled set.
    pub key: allocator_core::TargetKey,
}

impl Target {
    /// The discovered labels: the group's with `__address__`.
    pub fn labels(&self) -> TargetLabels<'_> {
        TargetLabels::new(&self.group, &self.address)
    }

    /// The target of `job` with discovered `labels` kept as they are (no relabeling: its key is
    /// the Go allocator's item hash of them); `None` without an `__address__` or with a label
    /// the item hash refuses. For tests and benchmarks that make targets by hand.
    pub fn unrelabeled(labels: &BTreeMap<String, String>, job: &str) -> Option<Target> {
        let key = allocator_core::TargetKey::from_labels(
            labels.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            job,
        )
        .ok()?;
        let (group, address) = discovered(labels);
        Some(Target {
            job: job.into(),
            address: address?,
            group,
            key,
        })
    }
}

/// One file_sd group, as Prometheus reads it (JSON or YAML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: Pairs,
}

/// One group as discovery keeps it: its addresses, and its labels shared by its targets.
#[derive(Debug)]
pub struct FileGroup {
    targets: Box<[Arc<str>]>,
    labels: Arc<LabelSet>,
}

/// A target's identity under `job`'s rules; `None` when they drop it. Without the relabel
/// filter (`filter_strategy` other than `relabel-config`) the Go discoverer neither seeds nor
/// relabels: the identity is the item hash of the discovered labels, and nothing is dropped.
fn relabeled_key(
    job: &JobSpec<'_>,
    labels: TargetLabels<'_>,
    filter: bool,
) -> Option<allocator_core::TargetKey> {
    let b = if filter {
        relabeled(job, labels.iter())
    } else {
        LabelBuilder::new(labels.iter()).ok()
    };
    b.map(|b| b.target_key(job.name))
}

impl FileGroup {
    /// A group of one target, as discovery would have read it (benchmarks make sources of
    /// these).
    pub fn of(t: &Target) -> Arc<FileGroup> {
        Arc::new(FileGroup {
            targets: Box::new([t.address.clone()]),
            labels: t.group.clone(),
        })
    }

    /// A group, `__address__` left out of its labels (a target's own address replaces it).
    fn new<'a>(
        targets: impl IntoIterator<Item = &'a str>,
        labels: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> FileGroup {
        let (labels, _) = split_address(labels);
        FileGroup {
            targets: targets.into_iter().map(Arc::from).collect(),
            labels,
        }
    }

    /// Each target's group labels and address.
    #[cfg(test)]
    fn items(&self) -> impl Iterator<Item = Discovered> + '_ {
        self.targets
            .iter()
            .map(|a| (self.labels.clone(), Some(a.clone())))
    }
}

/// One discovered target before relabeling: its group's labels (without `__address__`) and its
/// address (`None`: it has none, and is counted but dropped).
pub type Discovered = (Arc<LabelSet>, Option<Arc<str>>);

/// One Kubernetes target's labels as discovery hands them over.
pub fn discovered(labels: &BTreeMap<String, String>) -> Discovered {
    split_address(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
}

/// A watcher that has been reading or checking one file for this long is reported as stalled.
pub const STALL: Duration = Duration::from_secs(10);
/// Prometheus' default `refresh_interval` for file_sd.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(300);

/// What a watched file holds.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    /// A file_sd file: JSON or YAML groups.
    Targets,
    /// The collectors file: one name per line.
    Collectors,
}

/// Parsed contents of a watched file.
enum Contents {
    Groups(Vec<Arc<FileGroup>>),
    Names(Vec<String>),
}

/// A watched file: its resolved path, and its name as configured (the `__meta_filepath` of its
/// groups; empty for the collectors file). A file named twice is watched twice, so each name
/// labels its own groups.
type Key = (PathBuf, String);

/// A watcher's report: new contents of a file.
struct Update {
    key: Key,
    contents: Contents,
}

/// One watcher thread, as the loop sees it.
struct Watched {
    /// Since when its current check or read has been running.
    busy: Arc<Mutex<Option<Instant>>>,
    /// A stall already logged (log once per stall).
    reported: bool,
    /// Set by the watcher once its first read has been tried (after sending what it found).
    tried: Arc<AtomicBool>,
    /// Why its last read failed (`None` after a good one).
    error: Arc<Mutex<Option<String>>>,
}

/// Discovery state: the last good contents of every watched file, fed by the watchers.
pub struct Files {
    cache: BTreeMap<Key, Vec<Arc<FileGroup>>>,
    /// The targets of every source, and what each refresh changed.
    current: Current,
    collectors: Option<Vec<String>>,
    watchers: BTreeMap<Key, Watched>,
    updates: Option<mpsc::Receiver<Update>>,
    /// Tells the watchers to end when discovery is dropped.
    stop: Arc<AtomicBool>,
    /// Every watcher had tried its first read when the last update was taken in.
    all_tried: bool,
    /// Where watched files are read from.
    source: Arc<dyn Source>,
    /// A watcher busy with one check for longer than this is reported as stalled.
    stall: Duration,
    /// `http_sd_configs`: one fetcher thread per entry.
    http: http_sd::HttpSd,
    /// Set by a watcher that sent new contents, so the loop wakes at once instead of at its next
    /// refresh.
    wake: Arc<Wake>,
}

/// A flag with a condition variable: watchers raise it, the allocation loop waits on it.
#[derive(Default)]
pub(crate) struct Wake {
    raised: Mutex<bool>,
    cv: parking_lot::Condvar,
}

impl Wake {
    pub(crate) fn raise(&self) {
        *self.raised.lock() = true;
        self.cv.notify_all();
    }
}

impl Default for Files {
    /// Files on disk, stalled after [`STALL`].
    fn default() -> Self {
        Files::new(Arc::new(Disk), STALL)
    }
}

impl Drop for Files {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// What a job contributes to the target pipeline: its name, scrape-layer labels and rules.
pub struct JobSpec<'a> {
    pub name: &'a str,
    pub scrape_interval: &'a str,
    pub scrape_timeout: &'a str,
    pub metrics_path: &'a str,
    pub scheme: &'a str,
    pub params: &'a BTreeMap<String, Vec<String>>,
    pub rules: &'a [relabel::Rule],
}

/// A target's labels after seeding the scrape-layer labels and applying the job's rules; None
/// when the rules drop it (or a label is invalid). As the Go discoverer (and Prometheus'
/// PopulateDiscoveredLabels): a label that is absent or empty counts as unset.
pub fn relabeled<'a>(
    job: &JobSpec<'_>,
    labels: impl IntoIterator<Item = (&'a str, &'a str)>,
) -> Option<LabelBuilder> {
    let mut b = LabelBuilder::new(labels).ok()?;
    let mut seeds: Vec<(String, &str)> = vec![
        ("job".into(), job.name),
        ("__scrape_interval__".into(), job.scrape_interval),
        ("__scrape_timeout__".into(), job.scrape_timeout),
        ("__metrics_path__".into(), job.metrics_path),
        ("__scheme__".into(), job.scheme),
    ];
    for (k, v) in job.params {
        if let Some(first) = v.first() {
            seeds.push((format!("__param_{k}"), first));
        }
    }
    for (n, v) in &seeds {
        if b.get(n).is_none_or(str::is_empty) {
            b.set(n, v);
        }
    }
    relabel::apply(job.rules, &mut b).then_some(b)
}

/// Static groups as label maps (`__address__` merged into each group's labels), for the
/// Kubernetes side, which keeps a map per target.
pub fn expand(groups: &[StaticConfig]) -> impl Iterator<Item = BTreeMap<String, String>> + '_ {
    groups.iter().flat_map(|g| {
        g.targets.iter().map(move |address| {
            let mut labels = g.labels.clone();
            labels.insert("__address__".into(), address.clone());
            labels
        })
    })
}

/// Static groups as discovery keeps them.
fn statics(groups: &[StaticConfig]) -> Vec<Arc<FileGroup>> {
    groups
        .iter()
        .map(|g| {
            Arc::new(FileGroup::new(
                g.targets.iter().map(String::as_str),
                g.labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
            ))
        })
        .collect()
}

impl Files {
    /// Discovery reading watched files from `source`, reporting a watcher stuck in one check
    /// for longer than `stall`.
    pub(crate) fn new(source: Arc<dyn Source>, stall: Duration) -> Files {
        Files {
            cache: BTreeMap::new(),
            current: Current::default(),
            collectors: None,
            watchers: BTreeMap::new(),
            updates: None,
            stop: Arc::default(),
            all_tried: false,
            source,
            stall,
            http: http_sd::HttpSd::default(),
            wake: Arc::default(),
        }
    }

    /// Wait until a watcher sends new contents or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let mut raised = self.wake.raised.lock();
        if !*raised {
            self.wake.cv.wait_for(&mut raised, timeout);
        }
        *raised = false;
    }

    /// Start a watcher for every file the configuration names (once), then take in what the
    /// watchers found since the last call; true when any contents were replaced. Never blocks.
    pub fn poll(&mut self, cfg: &Loaded) -> bool {
        if self.updates.is_none() {
            let (tx, rx) = mpsc::channel();
            self.updates = Some(rx);
            for sc in &cfg.file.config.scrape_configs {
                for fsd in &sc.file_sd_configs {
                    let refresh = fsd
                        .refresh_interval
                        .as_deref()
                        .and_then(|r| crate::config::duration(r).ok())
                        .unwrap_or(DEFAULT_REFRESH);
                    for f in &fsd.files {
                        let key = (cfg.resolve(f), f.to_string_lossy().into_owned());
                        self.watch(key, Kind::Targets, refresh, &tx);
                    }
                }
            }
            if let Some(p) = &cfg.file.collectors_file {
                let key = (cfg.resolve(p), String::new());
                self.watch(key, Kind::Collectors, DEFAULT_REFRESH, &tx);
            }
            for (sc, entries) in cfg.file.config.scrape_configs.iter().zip(&cfg.http_sd) {
                for (k, e) in entries.iter().enumerate() {
                    self.http.watch(&http_sd::entry_id(&sc.job_name, k), e);
                }
            }
        }
        // Before taking updates in: a watcher sends its first contents before it says it tried.
        self.all_tried = self
            .watchers
            .values()
            .all(|w| w.tried.load(Ordering::Acquire))
            && self.http.all_tried();
        let mut changed = self.http.poll();
        let updates = self.updates.as_ref().expect("set above");
        while let Ok(u) = updates.try_recv() {
            changed = true;
            match u.contents {
                Contents::Groups(g) => {
                    self.cache.insert(u.key, g);
                }
                Contents::Names(n) => self.collectors = Some(n),
            }
        }
        changed
    }

    fn watch(&mut self, key: Key, kind: Kind, refresh: Duration, tx: &mpsc::Sender<Update>) {
        if self.watchers.contains_key(&key) {
            return;
        }
        let path = key.0.clone();
        let busy = Arc::new(Mutex::new(None));
        let tried = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let w = Watcher {
            watch: Watch::new(key.clone(), kind, refresh),
            source: self.source.clone(),
            tx: tx.clone(),
            busy: busy.clone(),
            stop: self.stop.clone(),
            tried: tried.clone(),
            error: error.clone(),
            wake: self.wake.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("file-watch".into())
            .spawn(move || w.run());
        if let Err(e) = spawned {
            tracing::error!(file = %path.display(), error = %e, "cannot start a file watcher");
        }
        self.watchers.insert(
            key,
            Watched {
                busy,
                reported: false,
                tried,
                error,
            },
        );
    }

    /// Why the last read of `path` failed, if it did (under any of its configured names).
    pub fn error_of(&self, path: &Path) -> Option<String> {
        self.watchers
            .iter()
            .filter(|((p, _), _)| p == path)
            .find_map(|(_, w)| w.error.lock().clone())
    }

    /// Whether every watched file has been read (or failed to read) at least once, as of the
    /// last [`Files::poll`]: until then a view would miss targets that are about to arrive.
    pub fn first_reads_done(&self) -> bool {
        self.all_tried
    }

    /// Files whose watcher has been stuck in one check or read for longer than the stall
    /// threshold ([`STALL`] by default; logged once per stall).
    pub fn stalls(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        for ((path, _), w) in &mut self.watchers {
            let since = *w.busy.lock();
            match since.map(|t| t.elapsed()).filter(|d| *d > self.stall) {
                Some(d) => {
                    if !w.reported {
                        tracing::error!(file = %path.display(), seconds = d.as_secs(), "reading a watched file is stalled; serving its previous contents");
                        w.reported = true;
                    }
                    out.push(format!(
                        "reading {} has been stalled for {} s",
                        path.display(),
                        d.as_secs()
                    ));
                }
                None => w.reported = false,
            }
        }
        out
    }

    /// The collectors of file discovery (listed, or from the collectors file); `None` while the
    /// collectors file has never been read successfully.
    pub fn collectors(&self, cfg: &Loaded) -> Option<Vec<(String, Option<String>)>> {
        let names = match &cfg.file.collectors_file {
            Some(_) => self.collectors.clone()?,
            None => cfg.file.collectors.clone(),
        };
        Some(
            names
                .into_iter()
                .map(|n| {
                    // An empty node is no node, as for a Go collector built with "".
                    let node = cfg
                        .file
                        .collector_nodes
                        .get(&n)
                        .filter(|d| !d.is_empty())
                        .cloned();
                    (n, node)
                })
                .collect(),
        )
    }

    /// The targets discovery holds (after [`Files::refresh`]: of the last read files).
    pub fn current(&mut self) -> &mut Current {
        &mut self.current
    }

    /// Start a refresh of the targets from the configured scrape configs and the last read
    /// files; `extra` adds more groups per scrape config (Kubernetes discovery). More sources
    /// may be set before [`Current::finish`] says what changed.
    pub fn refresh(
        &mut self,
        cfg: &Loaded,
        mut extra: impl FnMut(&crate::config::ScrapeConfig) -> Vec<BTreeMap<String, String>>,
    ) {
        let global = &cfg.file.config.global;
        self.current.set_filter(cfg.filter);
        self.current.begin();
        for (n, ((sc, rules), http)) in cfg
            .file
            .config
            .scrape_configs
            .iter()
            .zip(&cfg.rules)
            .zip(&cfg.http_sd)
            .enumerate()
        {
            let mut groups = statics(&sc.static_configs);
            for k in 0..http.len() {
                groups.extend(statics(
                    self.http.groups(&http_sd::entry_id(&sc.job_name, k)),
                ));
            }
            let job = JobSpec {
                name: &sc.job_name,
                scrape_interval: sc
                    .scrape_interval
                    .as_deref()
                    .unwrap_or(&global.scrape_interval),
                scrape_timeout: sc
                    .scrape_timeout
                    .as_deref()
                    .unwrap_or(&global.scrape_timeout),
                metrics_path: sc.metrics_path.as_deref().unwrap_or("/metrics"),
                scheme: sc.scheme.as_deref().unwrap_or("http"),
                params: &sc.params,
                rules,
            };
            // Static and HTTP SD groups are made anew each refresh: compared in full.
            self.current
                .set_groups(&format!("{n}\0static"), &job, &groups);
            // One source per configured file entry (a file named twice is two sources).
            for (i, f) in sc
                .file_sd_configs
                .iter()
                .flat_map(|fsd| &fsd.files)
                .enumerate()
            {
                let key = (cfg.resolve(f), f.to_string_lossy().into_owned());
                let id = format!("{n}\0file\0{i}\0{}\0{}", key.0.display(), key.1);
                // A file not read yet lists nothing.
                let groups = self.cache.get(&key).map_or(&[][..], |g| &g[..]);
                self.current.set_groups(&id, &job, groups);
            }
            // Kubernetes targets are new allocations each refresh: compared in full.
            let items: Vec<Discovered> = extra(sc).iter().map(discovered).collect();
            self.current.set_items(&format!("{n}\0k8s"), &job, &items);
        }
    }
}

/// Parse a watched file's bytes, within the nesting limit (`reuse`: see [`parse_groups`]).
fn parse(key: &Key, kind: Kind, bytes: Vec<u8>, reuse: &mut Reuse) -> Result<Contents, String> {
    let text = String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    Ok(match kind {
        Kind::Targets => Contents::Groups(parse_groups(key, &text, reuse)?),
        Kind::Collectors => Contents::Names(parse_collectors(&text)),
    })
}

/// The groups of a file_sd file, each labelled with the file's configured name as Prometheus'
/// file discovery does (`__meta_filepath`). JSON is read group by group into compact groups
/// (no document tree).
///
/// `reuse` holds the last contents' groups, label sets and addresses: unchanged ones are taken
/// from it (see [`Reuse`]); after a successful parse it holds this one's. A JSON file is split
/// into its groups' texts first, and only groups whose text is new are parsed, so re-reading a
/// large file after a small change costs a scan and a hash per group, not a parse.
fn parse_groups(
    (path, name): &Key,
    text: &str,
    reuse: &mut Reuse,
) -> Result<Vec<Arc<FileGroup>>, String> {
    crate::limits::check_nesting(text)?;
    let mut next = Reuse::default();
    let last = &*reuse;
    let group = |g: Group, next: &mut Reuse| {
        // Last: when the group names `__meta_filepath` too, the file's name wins.
        let set = LabelSet::new(
            g.labels
                .iter()
                .filter(|(n, _)| *n != labels::ADDRESS)
                .chain([("__meta_filepath", name.as_str())]),
        );
        Arc::new(FileGroup {
            targets: g.targets.iter().map(|a| Arc::from(a.as_str())).collect(),
            labels: last.set(next, set),
        })
    };
    let json = path.extension().is_some_and(|e| e == "json");
    let groups = match json.then(|| json_elements(text)).flatten() {
        Some(elements) => {
            let mut out = Vec::with_capacity(elements.len());
            next.groups.reserve(elements.len());
            for e in elements {
                let h = xxhash_rust::xxh3::xxh3_128(e.as_bytes());
                let g = match last.groups.get(&h) {
                    Some(g) => g.clone(),
                    None => match serde_json::from_str::<Group>(e) {
                        Ok(g) => group(g, &mut next),
                        // The whole text's parse says where the error is.
                        Err(e) => return Err(json_error(text).unwrap_or(e.to_string())),
                    },
                };
                next.groups.insert(h, g.clone());
                out.push(g);
            }
            out
        }
        None if json => return Err(json_error(text).unwrap_or("not a JSON list".into())),
        None => {
            let groups: Vec<Group> = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
            groups.into_iter().map(|g| group(g, &mut next)).collect()
        }
    };
    *reuse = next;
    Ok(groups)
}

/// The error of reading `text` as a whole list of groups (with its line and column).
fn json_error(text: &str) -> Option<String> {
    serde_json::from_str::<Vec<Group>>(text)
        .err()
        .map(|e| e.to_string())
}

/// The text of each element of the top-level JSON array `text`, trimmed; `None` when `text`
/// is not one array as far as this scan can tell (the full parser then says why). Elements
/// themselves are checked by parsing them.
fn json_elements(text: &str) -> Option<Vec<&str>> {
    let b = text.as_bytes();
    let ws = |mut i: usize| {
        while b
            .get(i)
            .is_some_and(|c| matches!(c, b' ' | b'\t' | b'\n' | b'\r'))
        {
            i += 1;
        }
        i
    };
    let mut i = ws(0);
    if b.get(i) != Some(&b'[') {
        return None;
    }
    let mut out = Vec::new();
    i = ws(i + 1);
    if b.get(i) == Some(&b']') {
        return (ws(i + 1) == b.len()).then_some(out);
    }
    loop {
        let start = i;
        let mut depth = 0usize;
        loop {
            match *b.get(i)? {
                b'"' => {
                    i += 1;
                    loop {
                        match *b.get(i)? {
                            b'\\' => i += 2,
                            b'"' => break,
                            _ => i += 1,
                        }
                    }
                }
                b'{' | b'[' => depth += 1,
                b'}' | b']' if depth > 0 => depth -= 1,
                b']' | b',' if depth == 0 => break,
                b'}' if depth == 0 => return None,
                _ => {}
            }
            i += 1;
        }
        // `i` is at an ASCII byte, so a character boundary.
        out.push(text[start..i].trim_end());
        if b[i] == b']' {
            return (ws(i + 1) == b.len()).then_some(out);
        }
        i = ws(i + 1);
    }
}

/// One collector name per line (blank lines and `#` comments skipped). A name listed twice is
/// kept as listed: the allocator refuses the list, and the service is not ready with the reason
/// (a read error would keep serving the previous list as ready).
fn parse_collectors(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file_sd text in JSON and the same groups in YAML.
    const JSON: &str = r#"[
        {"targets": ["10.0.0.1:80", "10.0.0.2:80"], "labels": {"team": "a", "__meta_x": "\"q\" é"}},
        {"targets": ["10.0.0.3:80"]},
        {"targets": ["10.0.0.4:80"], "labels": {"__address__": "ignored", "__meta_filepath": "mine", "z": "1", "z": "2"}},
        {"targets": [], "labels": {"empty": "group"}}
    ]"#;
    const YAML: &str = r#"
- targets: ['10.0.0.1:80', '10.0.0.2:80']
  labels: {team: a, __meta_x: '"q" é'}
- targets: ['10.0.0.3:80']
- targets: ['10.0.0.4:80']
  labels: {__address__: ignored, __meta_filepath: mine, z: '2'}
- targets: []
  labels: {empty: group}
"#;

    /// Each target's labels as discovery built them before the compact store: the group's
    /// labels read into a map, `__meta_filepath` and `__address__` inserted.
    fn reference(text: &str, name: &str) -> Vec<BTreeMap<String, String>> {
        #[derive(Deserialize)]
        struct G {
            targets: Vec<String>,
            #[serde(default)]
            labels: BTreeMap<String, String>,
        }
        let groups: Vec<G> = serde_json::from_str(text).unwrap();
        let mut out = Vec::new();
        for g in groups {
            for a in g.targets {
                let mut l = g.labels.clone();
                l.insert("__meta_filepath".into(), name.into());
                l.insert("__address__".into(), a);
                out.push(l);
            }
        }
        out
    }

    fn served(groups: &[Arc<FileGroup>]) -> Vec<BTreeMap<String, String>> {
        groups
            .iter()
            .flat_map(|g| g.items())
            .map(|(group, address)| {
                TargetLabels::new(&group, &address.unwrap())
                    .iter()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect()
            })
            .collect()
    }

    #[test]
    fn file_groups_serve_the_labels_a_map_per_target_did() {
        let want = reference(JSON, "sd/pods.json");
        assert_eq!(want.len(), 4);
        let key = ("x/pods.json".into(), "sd/pods.json".into());
        let mut reuse = Reuse::default();
        let json = parse_groups(&key, JSON, &mut reuse).unwrap();
        assert_eq!(served(&json), want);
        let yaml_key = ("x/pods.yaml".into(), "sd/pods.json".into());
        let yaml = parse_groups(&yaml_key, YAML, &mut Reuse::default()).unwrap();
        assert_eq!(served(&yaml), want);
        // Read again with one group changed: the others keep their allocations.
        let changed = JSON.replace("\"team\": \"a\"", "\"team\": \"b\"");
        let again = parse_groups(&key, &changed, &mut reuse).unwrap();
        assert!(!Arc::ptr_eq(&json[0].labels, &again[0].labels));
        assert_eq!(again[0].labels.get("team"), Some("b"));
        assert!(Arc::ptr_eq(&json[1].labels, &again[1].labels));
        assert!(Arc::ptr_eq(&json[2].labels, &again[2].labels));
        assert!(Arc::ptr_eq(&json[1].targets[0], &again[1].targets[0]));
        // The targets of one group share one label set.
        assert!(Arc::ptr_eq(
            &json[0].labels,
            &json[0].items().nth(1).unwrap().0
        ));
        // Element boundaries inside strings and nested values, escapes: read as a whole text is.
        let tricky = r#" [ {"targets": ["a]:1", "b,}:2"], "labels": {"q": "\"],[{", "s": "\\", "t": "x\\\"]"}} ,
            {"targets": []} ] "#;
        let whole: Vec<Group> = serde_json::from_str(tricky).unwrap();
        let groups = parse_groups(&key, tricky, &mut Reuse::default()).unwrap();
        assert_eq!(groups.len(), whole.len());
        assert_eq!(&*groups[0].targets[1], "b,}:2");
        assert_eq!(groups[0].labels.get("q"), Some("\"],[{"));
        assert_eq!(groups[0].labels.get("t"), Some("x\\\"]"));
        assert_eq!(json_elements("[]"), Some(vec![]));
        assert_eq!(
            json_elements(" [ 1 , [2,3] ,{\"a\":\"]\"}]\n"),
            Some(vec!["1", "[2,3]", "{\"a\":\"]\"}"])
        );
        for bad in [
            "[{\"targets\": [\"a\"]},]",
            "[{\"targets\": [\"a\"]}] x",
            "[{\"targets\": [\"a\"]}",
            "[{\"targets\": [\"a\"]} {\"targets\": []}]",
            "[\"unterminated]",
            "",
            "{}",
            "[{\"targets\": [\"a\"], \"labels\": {\"n\": 1}}]",
            "[{\"targets\": [\"a\"], \"other\": 1}]",
            "[] []",
        ] {
            let mut reuse = Reuse::default();
            assert!(
                parse_groups(&("p.json".into(), "p.json".into()), bad, &mut reuse).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_relabel_cache_gives_what_relabeling_gives_and_skips_kept_targets() {
        let dir = std::env::temp_dir();
        let cfg = crate::parse(
            "collectors: [c0]\nconfig:\n  scrape_configs:\n    - job_name: j\n      \
             file_sd_configs: [{files: [t.json]}]\n      relabel_configs:\n        \
             - {source_labels: [team], regex: drop, action: drop}\n        \
             - {source_labels: [__meta_x], target_label: x}\n",
            &dir,
        )
        .unwrap();
        let text = |team_of_first: &str| {
            format!(
                r#"[{{"targets": ["a:1", "b:1"], "labels": {{"team": "{team_of_first}", "__meta_x": "1"}}}},
                    {{"targets": ["c:1"], "labels": {{"team": "drop"}}}},
                    {{"targets": ["d:1", "e:1"], "labels": {{"__meta_x": "2"}}}}]"#
            )
        };
        let key = (cfg.resolve(Path::new("t.json")), "t.json".to_owned());
        let mut reuse = Reuse::default();
        let mut files = Files::default();
        // One refresh: what changed, how many targets were relabeled, and the whole listing.
        let tick = |files: &mut Files| {
            files.refresh(&cfg, |_| Vec::new());
            let c = files.current();
            let changes = c.finish();
            let mut listing = c.listing();
            listing.sort_by_key(|t| t.key);
            (changes, c.relabeled(), listing, c.discovered(), c.kept())
        };
        files.cache.insert(
            key.clone(),
            parse_groups(&key, &text("a"), &mut reuse).unwrap(),
        );
        let first = tick(&mut files);
        assert_eq!(first.1, 5);
        assert_eq!(first.2.len(), 4, "the dropped group is dropped");
        assert_eq!(first.0.upserted.len(), 4);
        let second = tick(&mut files);
        assert_eq!(second.1, 0, "nothing changed: nothing relabeled");
        assert!(second.0.is_empty());
        assert_eq!(second.2, first.2);
        assert_eq!(second.3, first.3);
        // The first group changes (now dropped): only its two targets are relabeled.
        files.cache.insert(
            key.clone(),
            parse_groups(&key, &text("drop"), &mut reuse).unwrap(),
        );
        let third = tick(&mut files);
        assert_eq!(third.1, 2);
        assert_eq!(third.0.removed.len(), 2);
        assert!(third.0.upserted.is_empty());
        // The reference: every target relabeled from a fresh parse (new groups: all relabeled,
        // and nothing served changes).
        files.cache.insert(
            key.clone(),
            parse_groups(&key, &text("drop"), &mut Reuse::default()).unwrap(),
        );
        let uncached = tick(&mut files);
        assert_eq!(uncached.1, 5);
        assert!(uncached.0.is_empty(), "{:?}", uncached.0);
        assert_eq!(third.2, uncached.2);
        assert_eq!(third.2.len(), 2);
        assert_eq!(third.4, uncached.4);
        assert_eq!(third.3, uncached.3);
    }
}
