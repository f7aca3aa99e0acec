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
    pub collectors: Vec<String>,
    /// Whether any watched file changed since the last refresh.
    pub changed: bool,
}

impl Files {
    /// Re-read changed files and rebuild the target list.
    pub fn refresh(&mut self, cfg: &Loaded) -> Found {
        let mut changed = false;
        let global = &cfg.file.config.global;
        let mut targets = Vec::new();
        let mut discovered = BTreeMap::new();
        let mut seen = std::collections::BTreeSet::new();
        for (sc, rules) in cfg.file.config.scrape_configs.iter().zip(&cfg.rules) {
            let mut groups: Vec<StaticConfig> = sc.static_configs.clone();
            for fsd in &sc.file_sd_configs {
                for f in &fsd.files {
                    let path = cfg.resolve(f);
                    changed |= self.read_targets(&path);
                    groups.extend(self.cache[&path].groups.iter().cloned());
                }
            }
            // Scrape-layer labels the target does not set itself are seeded before relabeling.
            let mut seeds: Vec<(String, String)> = vec![
                ("job".into(), sc.job_name.clone()),
                (
                    "__scrape_interval__".into(),
                    sc.scrape_interval
                        .clone()
                        .unwrap_or_else(|| global.scrape_interval.clone()),
                ),
                (
                    "__scrape_timeout__".into(),
                    sc.scrape_timeout
                        .clone()
                        .unwrap_or_else(|| global.scrape_timeout.clone()),
                ),
                (
                    "__metrics_path__".into(),
                    sc.metrics_path.clone().unwrap_or_else(|| "/metrics".into()),
                ),
                (
                    "__scheme__".into(),
                    sc.scheme.clone().unwrap_or_else(|| "http".into()),
                ),
            ];
            for (k, v) in &sc.params {
                if let Some(first) = v.first() {
                    seeds.push((format!("__param_{k}"), first.clone()));
                }
            }
            let count = discovered.entry(sc.job_name.clone()).or_insert(0);
            for group in &groups {
                for address in &group.targets {
                    *count += 1;
                    let mut labels = group.labels.clone();
                    labels.insert("__address__".into(), address.clone());
                    let Ok(mut b) =
                        LabelBuilder::new(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                    else {
                        continue;
                    };
                    for (n, v) in &seeds {
                        if b.get(n).is_none() {
                            b.set(n, v);
                        }
                    }
                    if !relabel::apply(rules, &mut b) {
                        continue;
                    }
                    let key = b.target_key(&sc.job_name);
                    // Targets that relabel to the same set are one target.
                    if !seen.insert((sc.job_name.clone(), key)) {
                        continue;
                    }
                    targets.push(Target {
                        job: sc.job_name.clone(),
                        address: address.clone(),
                        labels,
                        key,
                    });
                }
            }
        }
        let collectors = match &cfg.file.collectors_file {
            Some(p) => {
                changed |= self.read_collectors(&cfg.resolve(p));
                self.collectors
                    .groups
                    .first()
                    .map(|g| g.targets.clone())
                    .unwrap_or_default()
            }
            None => cfg.file.collectors.clone(),
        };
        Found {
            targets,
            discovered,
            collectors,
            changed,
        }
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
