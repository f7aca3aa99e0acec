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

pub mod http_sd;
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
use watch::{Disk, Source, Watch, Watcher};

/// A target after discovery and relabeling.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub job: String,
    /// The raw `__address__`.
    pub address: String,
    /// Discovered labels before relabeling (group labels merged with the target's), as the
    /// collector's HTTP SD reads them.
    pub labels: BTreeMap<String, String>,
    /// Identity: the Go allocator's item hash of the relabeled set.
    pub key: allocator_core::TargetKey,
}

/// One file_sd group, as Prometheus reads it (JSON or YAML).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Group {
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
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
    Groups(Vec<StaticConfig>),
    Names(Vec<String>),
}

/// A watcher's report: new contents of a file.
struct Update {
    path: PathBuf,
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
    cache: BTreeMap<PathBuf, Vec<StaticConfig>>,
    collectors: Option<Vec<String>>,
    watchers: BTreeMap<PathBuf, Watched>,
    updates: Option<mpsc::Receiver<Update>>,
    /// Tells the watchers to end when discovery is dropped.
    stop: Arc<AtomicBool>,
    /// Every watcher had tried its first read when the last update was taken in.
    all_tried: bool,
    /// Where watched files are read from.
    source: Arc<dyn Source>,
    /// A watcher busy with one check for longer than this is reported as stalled.
    stall: Duration,
    /// `http_sd_configs`: one fetcher thread per URL.
    http: http_sd::HttpSd,
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

/// What one refresh found.
pub struct Found {
    pub targets: Vec<Target>,
    /// Targets discovered per job, before relabeling filters them.
    pub discovered: BTreeMap<String, usize>,
    /// Collector names with their node (Kubernetes discovery only).
    pub collectors: Vec<(String, Option<String>)>,
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

/// The target pipeline shared by every discovery source: seed the scrape-layer labels a target
/// does not set, relabel, drop what the rules drop, and keep one target per relabeled set.
#[derive(Default)]
pub struct Collect {
    pub targets: Vec<Target>,
    pub discovered: BTreeMap<String, usize>,
    /// Seconds spent relabeling and hashing each job's groups.
    pub seconds: BTreeMap<String, f64>,
    /// Targets kept by relabeling, duplicates included.
    pub kept: usize,
    /// Index in `targets` of each (job, identity): a later target with the same identity
    /// replaces the earlier one, as the Go allocator's target map keeps the last.
    seen: std::collections::HashMap<(String, allocator_core::TargetKey), usize>,
}

impl Collect {
    pub fn add(
        &mut self,
        job: &JobSpec<'_>,
        groups: impl IntoIterator<Item = BTreeMap<String, String>>,
    ) {
        let start = std::time::Instant::now();
        let count = self.discovered.entry(job.name.to_owned()).or_insert(0);
        for labels in groups {
            *count += 1;
            let Some(address) = labels.get("__address__").cloned() else {
                continue;
            };
            let Some(b) = relabeled(job, &labels) else {
                continue;
            };
            self.kept += 1;
            let key = b.target_key(job.name);
            let target = Target {
                job: job.name.to_owned(),
                address,
                labels,
                key,
            };
            match self.seen.entry((job.name.to_owned(), key)) {
                std::collections::hash_map::Entry::Occupied(at) => {
                    self.targets[*at.get()] = target;
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(self.targets.len());
                    self.targets.push(target);
                }
            }
        }
        *self.seconds.entry(job.name.to_owned()).or_default() += start.elapsed().as_secs_f64();
    }
}

/// A target's labels after seeding the scrape-layer labels and applying the job's rules; None
/// when the rules drop it (or a label is invalid). As the Go discoverer (and Prometheus'
/// PopulateDiscoveredLabels): a label that is absent or empty counts as unset.
pub fn relabeled(job: &JobSpec<'_>, labels: &BTreeMap<String, String>) -> Option<LabelBuilder> {
    let mut b = LabelBuilder::new(labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))).ok()?;
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

/// Static groups as label sets (`__address__` merged into each group's labels).
pub fn expand(groups: &[StaticConfig]) -> impl Iterator<Item = BTreeMap<String, String>> + '_ {
    groups.iter().flat_map(|g| {
        g.targets.iter().map(move |address| {
            let mut labels = g.labels.clone();
            labels.insert("__address__".into(), address.clone());
            labels
        })
    })
}

impl Files {
    /// Discovery reading watched files from `source`, reporting a watcher stuck in one check
    /// for longer than `stall`.
    pub(crate) fn new(source: Arc<dyn Source>, stall: Duration) -> Files {
        Files {
            cache: BTreeMap::new(),
            collectors: None,
            watchers: BTreeMap::new(),
            updates: None,
            stop: Arc::default(),
            all_tried: false,
            source,
            stall,
            http: http_sd::HttpSd::default(),
        }
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
                        self.watch(cfg.resolve(f), Kind::Targets, refresh, &tx);
                    }
                }
            }
            if let Some(p) = &cfg.file.collectors_file {
                self.watch(cfg.resolve(p), Kind::Collectors, DEFAULT_REFRESH, &tx);
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
                    self.cache.insert(u.path, g);
                }
                Contents::Names(n) => self.collectors = Some(n),
            }
        }
        changed
    }

    fn watch(&mut self, path: PathBuf, kind: Kind, refresh: Duration, tx: &mpsc::Sender<Update>) {
        if self.watchers.contains_key(&path) {
            return;
        }
        let busy = Arc::new(Mutex::new(None));
        let tried = Arc::new(AtomicBool::new(false));
        let error = Arc::new(Mutex::new(None));
        let w = Watcher {
            watch: Watch::new(path.clone(), kind, refresh),
            source: self.source.clone(),
            tx: tx.clone(),
            busy: busy.clone(),
            stop: self.stop.clone(),
            tried: tried.clone(),
            error: error.clone(),
        };
        let spawned = std::thread::Builder::new()
            .name("file-watch".into())
            .spawn(move || w.run());
        if let Err(e) = spawned {
            tracing::error!(file = %path.display(), error = %e, "cannot start a file watcher");
        }
        self.watchers.insert(
            path,
            Watched {
                busy,
                reported: false,
                tried,
                error,
            },
        );
    }

    /// Why the last read of `path` failed, if it did.
    pub fn error_of(&self, path: &Path) -> Option<String> {
        self.watchers.get(path)?.error.lock().clone()
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
        for (path, w) in &mut self.watchers {
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
        Some(names.into_iter().map(|n| (n, None)).collect())
    }

    /// The target list of the configured scrape configs from the last read files; `extra` adds
    /// more groups per scrape config (Kubernetes discovery).
    pub fn targets(
        &self,
        cfg: &Loaded,
        mut extra: impl FnMut(&crate::config::ScrapeConfig) -> Vec<BTreeMap<String, String>>,
    ) -> Collect {
        let global = &cfg.file.config.global;
        let mut collect = Collect::default();
        for ((sc, rules), http) in cfg
            .file
            .config
            .scrape_configs
            .iter()
            .zip(&cfg.rules)
            .zip(&cfg.http_sd)
        {
            let mut groups: Vec<StaticConfig> = sc.static_configs.clone();
            for k in 0..http.len() {
                groups.extend_from_slice(self.http.groups(&http_sd::entry_id(&sc.job_name, k)));
            }
            for f in sc.file_sd_configs.iter().flat_map(|fsd| &fsd.files) {
                if let Some(cached) = self.cache.get(&cfg.resolve(f)) {
                    // Prometheus' file discovery labels each group with the file it came from.
                    let path = f.to_string_lossy();
                    groups.extend(cached.iter().map(|g| {
                        let mut g = g.clone();
                        g.labels.insert("__meta_filepath".into(), path.to_string());
                        g
                    }));
                }
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
            collect.add(&job, expand(&groups).chain(extra(sc)));
        }
        collect
    }
}

/// Parse a watched file's bytes, within the nesting limit.
fn parse(path: &Path, kind: Kind, bytes: Vec<u8>) -> Result<Contents, String> {
    let text = String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    Ok(match kind {
        Kind::Targets => Contents::Groups(parse_groups(path, &text)?),
        Kind::Collectors => Contents::Names(parse_collectors(&text)?),
    })
}

fn parse_groups(path: &Path, text: &str) -> Result<Vec<StaticConfig>, String> {
    crate::limits::check_nesting(text)?;
    let groups: Vec<Group> = if path.extension().is_some_and(|e| e == "json") {
        serde_json::from_str(text).map_err(|e| e.to_string())?
    } else {
        serde_yaml::from_str(text).map_err(|e| e.to_string())?
    };
    Ok(groups
        .into_iter()
        .map(|g| StaticConfig {
            targets: g.targets,
            labels: g.labels,
        })
        .collect())
}

/// One collector name per line (blank lines and `#` comments skipped); a name listed twice is
/// an error, not silently merged.
fn parse_collectors(text: &str) -> Result<Vec<String>, String> {
    let names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect();
    crate::validate::collector_names(&names)?;
    Ok(names)
}
