//! File discovery, the embedded default: `static_configs` and `file_sd_configs` targets of the
//! Prometheus config, and collectors listed in the configuration or in a file. Files are re-read
//! when their modification time changes; a file that cannot be read or parsed is logged and its
//! previous contents kept.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::SystemTime;

use allocator_core::LabelBuilder;
use serde::Deserialize;

use crate::config::{Loaded, StaticConfig};
use crate::relabel;

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

#[derive(Default)]
struct Cached {
    modified: Option<SystemTime>,
    groups: Vec<StaticConfig>,
}

/// Discovery state: the last good contents of every watched file.
#[derive(Default)]
pub struct Files {
    cache: BTreeMap<PathBuf, Cached>,
    collectors: Cached,
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
        let mut seeds: Vec<(String, String)> = vec![
            ("job".into(), job.name.to_owned()),
            ("__scrape_interval__".into(), job.scrape_interval.to_owned()),
            ("__scrape_timeout__".into(), job.scrape_timeout.to_owned()),
            ("__metrics_path__".into(), job.metrics_path.to_owned()),
            ("__scheme__".into(), job.scheme.to_owned()),
        ];
        for (k, v) in job.params {
            if let Some(first) = v.first() {
                seeds.push((format!("__param_{k}"), first.clone()));
            }
        }
        let count = self.discovered.entry(job.name.to_owned()).or_insert(0);
        for labels in groups {
            *count += 1;
            let Some(address) = labels.get("__address__").cloned() else {
                continue;
            };
            let Ok(mut b) = LabelBuilder::new(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            else {
                continue;
            };
            // As the Go discoverer (and Prometheus' PopulateDiscoveredLabels): a label that is
            // absent or empty counts as unset.
            for (n, v) in &seeds {
                if b.get(n).is_none_or(str::is_empty) {
                    b.set(n, v);
                }
            }
            if !relabel::apply(job.rules, &mut b) {
                continue;
            }
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
    /// Re-read the watched files that changed (file_sd files and the collectors file); true
    /// when any content was replaced. Cheap when nothing changed: one `stat` per file.
    pub fn poll(&mut self, cfg: &Loaded) -> bool {
        let mut changed = false;
        for sc in &cfg.file.config.scrape_configs {
            for f in sc.file_sd_configs.iter().flat_map(|fsd| &fsd.files) {
                changed |= self.read_targets(&cfg.resolve(f));
            }
        }
        if let Some(p) = &cfg.file.collectors_file {
            changed |= self.read_collectors(&cfg.resolve(p));
        }
        changed
    }

    /// The collectors of file discovery (listed, or from the collectors file).
    pub fn collectors(&self, cfg: &Loaded) -> Vec<(String, Option<String>)> {
        let names = match &cfg.file.collectors_file {
            Some(_) => self
                .collectors
                .groups
                .first()
                .map(|g| g.targets.clone())
                .unwrap_or_default(),
            None => cfg.file.collectors.clone(),
        };
        names.into_iter().map(|n| (n, None)).collect()
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
        for (sc, rules) in cfg.file.config.scrape_configs.iter().zip(&cfg.rules) {
            let mut groups: Vec<StaticConfig> = sc.static_configs.clone();
            for f in sc.file_sd_configs.iter().flat_map(|fsd| &fsd.files) {
                if let Some(cached) = self.cache.get(&cfg.resolve(f)) {
                    // Prometheus' file discovery labels each group with the file it came from.
                    let path = f.to_string_lossy();
                    groups.extend(cached.groups.iter().map(|g| {
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

    /// Re-read a file_sd file if it changed; true when its contents were replaced.
    fn read_targets(&mut self, path: &PathBuf) -> bool {
        let entry = self.cache.entry(path.clone()).or_default();
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified == entry.modified {
            return false;
        }
        let parsed = std::fs::read_to_string(path)
            .map_err(|e| e.to_string())
            .and_then(|text| {
                let groups: Vec<Group> = if path.extension().is_some_and(|e| e == "json") {
                    serde_json::from_str(&text).map_err(|e| e.to_string())?
                } else {
                    serde_yaml::from_str(&text).map_err(|e| e.to_string())?
                };
                Ok(groups)
            });
        match parsed {
            Ok(groups) => {
                entry.modified = modified;
                entry.groups = groups
                    .into_iter()
                    .map(|g| StaticConfig {
                        targets: g.targets,
                        labels: g.labels,
                    })
                    .collect();
                tracing::info!(file = %path.display(), groups = entry.groups.len(), "file_sd file read");
                true
            }
            Err(e) => {
                if entry.modified.is_some() || modified.is_none() {
                    tracing::warn!(file = %path.display(), error = %e, "file_sd file unreadable; keeping its previous targets");
                } else {
                    tracing::warn!(file = %path.display(), error = %e, "file_sd file unreadable");
                }
                // Do not retry until it changes again.
                entry.modified = modified;
                false
            }
        }
    }

    fn read_collectors(&mut self, path: &PathBuf) -> bool {
        let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok();
        if modified.is_some() && modified == self.collectors.modified {
            return false;
        }
        self.collectors.modified = modified;
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let names: Vec<String> = text
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_owned)
                    .collect();
                tracing::info!(file = %path.display(), collectors = names.len(), "collectors file read");
                self.collectors.groups = vec![StaticConfig {
                    targets: names,
                    labels: BTreeMap::new(),
                }];
                true
            }
            Err(e) => {
                tracing::warn!(file = %path.display(), error = %e, "collectors file unreadable; keeping the previous collectors");
                false
            }
        }
    }
}
