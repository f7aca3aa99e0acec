//! The configuration file: the Go Target Allocator's keys where they apply (DESIGN.md §8.1), plus
//! the file-discovery keys of this service. Unknown keys are errors that name the key and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use allocator_core::{BoundedConfig, Config, Strategy};
use serde::{Deserialize, Serialize};

use crate::k8s::selector::LabelSelector;
use crate::relabel::{Rule, RuleSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct File {
    #[serde(default)]
    pub listen_addr: Option<String>,
    #[serde(default = "default_strategy")]
    pub allocation_strategy: String,
    #[serde(default)]
    pub allocation_fallback_strategy: Option<String>,
    #[serde(default)]
    pub filter_strategy: Option<String>,
    /// Kubernetes discovery: collector pods are those matching this selector in
    /// `collector_namespace` (env `OTELCOL_NAMESPACE`).
    #[serde(default)]
    pub collector_selector: Option<LabelSelector>,
    #[serde(default)]
    pub collector_namespace: Option<String>,
    /// How long a collector pod may be not Running or not Ready before it stops counting.
    #[serde(default)]
    pub collector_not_ready_grace_period: Option<String>,
    /// Kubeconfig for Kubernetes discovery outside a cluster (default: in-cluster, then the
    /// usual kubeconfig).
    #[serde(default)]
    pub kube_config_file_path: Option<PathBuf>,
    #[serde(default)]
    pub allow_insecure_auth_secrets: bool,
    #[serde(default)]
    pub prometheus_cr: Option<PrometheusCr>,
    #[serde(default)]
    pub https: Option<Https>,
    /// `file` (default). Kubernetes discovery is not part of this build.
    #[serde(default)]
    pub discovery: Option<String>,
    /// Collectors, by name (file discovery).
    #[serde(default)]
    pub collectors: Vec<String>,
    /// A file with one collector name per line (re-read on change).
    #[serde(default)]
    pub collectors_file: Option<PathBuf>,
    /// bounded-hashing's slack and absolute cap.
    #[serde(default)]
    pub bounded: Option<Bounded>,
    pub config: PromConfig,
}

fn default_strategy() -> String {
    "consistent-hashing".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounded {
    #[serde(default)]
    pub epsilon: Option<f64>,
    #[serde(default)]
    pub max_weight: Option<u64>,
}

/// `prometheus_cr`: which Prometheus Operator resources are turned into jobs. An absent resource
/// selector selects nothing, `{}` selects all; namespace selectors default to all namespaces.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusCr {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub scrape_interval: Option<String>,
    #[serde(default)]
    pub service_monitor_selector: Option<LabelSelector>,
    #[serde(default)]
    pub pod_monitor_selector: Option<LabelSelector>,
    #[serde(default)]
    pub scrape_config_selector: Option<LabelSelector>,
    #[serde(default)]
    pub probe_selector: Option<LabelSelector>,
    #[serde(default)]
    pub service_monitor_namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub pod_monitor_namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub scrape_config_namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub probe_namespace_selector: Option<LabelSelector>,
    #[serde(default)]
    pub allow_namespaces: Vec<String>,
    #[serde(default)]
    pub deny_namespaces: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Https {
    #[serde(default)]
    pub enabled: bool,
    #[serde(default)]
    pub listen_addr: Option<String>,
    #[serde(default)]
    pub ca_file_path: Option<String>,
    #[serde(default)]
    pub tls_cert_file_path: Option<String>,
    #[serde(default)]
    pub tls_key_file_path: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromConfig {
    #[serde(default)]
    pub global: Global,
    #[serde(default)]
    pub scrape_configs: Vec<ScrapeConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    #[serde(default = "default_interval")]
    pub scrape_interval: String,
    #[serde(default = "default_timeout")]
    pub scrape_timeout: String,
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
}

impl Default for Global {
    fn default() -> Self {
        Global {
            scrape_interval: default_interval(),
            scrape_timeout: default_timeout(),
            evaluation_interval: None,
            external_labels: BTreeMap::new(),
        }
    }
}

fn default_interval() -> String {
    "1m".into()
}
fn default_timeout() -> String {
    "10s".into()
}

/// A Prometheus scrape config: the fields discovery and relabeling read are typed; the rest is
/// kept as written and handed to collectors on `/scrape_configs`.
#[derive(Debug, Deserialize)]
pub struct ScrapeConfig {
    pub job_name: String,
    #[serde(default)]
    pub scrape_interval: Option<String>,
    #[serde(default)]
    pub scrape_timeout: Option<String>,
    #[serde(default)]
    pub metrics_path: Option<String>,
    #[serde(default)]
    pub scheme: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub static_configs: Vec<StaticConfig>,
    #[serde(default)]
    pub file_sd_configs: Vec<FileSdConfig>,
    #[serde(default)]
    pub kubernetes_sd_configs: Vec<KubernetesSdConfig>,
    #[serde(default)]
    pub relabel_configs: Vec<RuleSpec>,
    #[serde(default)]
    pub metric_relabel_configs: Vec<RuleSpec>,
    #[serde(flatten)]
    pub rest: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct StaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSdConfig {
    pub files: Vec<PathBuf>,
    #[serde(default)]
    pub refresh_interval: Option<String>,
}

/// `kubernetes_sd_configs` entry: the roles the allocator discovers itself.
#[derive(Debug, Deserialize, Serialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct KubernetesSdConfig {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<SdNamespaces>,
}

#[derive(Debug, Deserialize, Serialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SdNamespaces {
    #[serde(default)]
    pub names: Vec<String>,
}

/// A Prometheus duration (`30s`, `1m30s`, `2h`, `500ms`).
pub fn duration(s: &str) -> Result<std::time::Duration, String> {
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err("empty duration".into());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| format!("duration {s:?} lacks a unit"))?;
        if digits == 0 {
            return Err(format!("duration {s:?}: expected a number"));
        }
        let n: f64 = rest[..digits]
            .parse()
            .map_err(|_| format!("duration {s:?}"))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            "d" => 86400.0,
            "w" => 604800.0,
            "y" => 31536000.0,
            u => return Err(format!("duration {s:?}: unknown unit {u:?}")),
        };
        total += n * scale;
        rest = &rest[unit_len..];
    }
    std::time::Duration::try_from_secs_f64(total).map_err(|_| format!("duration {s:?} is too long"))
}

/// A validated configuration: everything a bad file can get wrong is caught here.
pub struct Loaded {
    pub file: File,
    pub core: Config,
    /// Compiled relabel rules per scrape config (same order).
    pub rules: Vec<Vec<Rule>>,
    /// Where relative paths in the file are resolved.
    pub base: PathBuf,
    /// Kubernetes discovery is on (`discovery: kubernetes`).
    pub kubernetes: bool,
    pub collector_namespace: String,
    pub collector_selector: LabelSelector,
    pub grace: std::time::Duration,
}

impl Loaded {
    pub fn listen_addr(&self) -> Option<&str> {
        self.file.listen_addr.as_deref()
    }

    /// The HTTPS listener's address and files, when `https.enabled`.
    pub fn https(&self) -> Option<(String, crate::tls::TlsFiles)> {
        let h = self.file.https.as_ref().filter(|h| h.enabled)?;
        let path = |p: &Option<String>| self.resolve(Path::new(p.as_deref().unwrap_or_default()));
        Some((
            h.listen_addr.clone().unwrap_or_else(|| ":8443".into()),
            crate::tls::TlsFiles {
                ca: path(&h.ca_file_path),
                cert: path(&h.tls_cert_file_path),
                key: path(&h.tls_key_file_path),
            },
        ))
    }

    pub fn resolve(&self, p: &Path) -> PathBuf {
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base.join(p)
        }
    }
}

/// Read and validate a configuration file.
pub fn load(path: &Path) -> Result<Loaded, String> {
    let limit = crate::limits::MAX_CONFIG_BYTES;
    if std::fs::metadata(path).is_ok_and(|m| m.len() > limit) {
        return Err(format!("{}: larger than {limit} bytes", path.display()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse(&text, path.parent().unwrap_or(Path::new(".")))
        .map_err(|e| format!("{}: {e}", path.display()))
}

/// Parse and validate configuration text; relative paths resolve against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Loaded, String> {
    crate::limits::check_nesting(text)?;
    let file: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    crate::validate::config(&file)?;
    let strategy: Strategy = file
        .allocation_strategy
        .parse()
        .map_err(|e| format!("allocation_strategy: {e}"))?;
    let fallback = match file.allocation_fallback_strategy.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            s.parse::<Strategy>()
                .map_err(|e| format!("allocation_fallback_strategy: {e}"))?,
        ),
    };
    let mut core = Config::with_strategy(strategy);
    core.fallback = fallback;
    if let Some(b) = &file.bounded {
        core.bounded = BoundedConfig {
            epsilon: b.epsilon.unwrap_or(core.bounded.epsilon),
            max_weight: b.max_weight.unwrap_or(0),
        };
    }
    core.validate().map_err(|e| e.to_string())?;
    let kubernetes = match file.discovery.as_deref() {
        None | Some("file") => false,
        Some("kubernetes") => true,
        Some(other) => {
            return Err(format!(
                "discovery: unknown mode {other:?}; expected \"file\" or \"kubernetes\""
            ))
        }
    };
    if !kubernetes && file.prometheus_cr.as_ref().is_some_and(|p| p.enabled) {
        return Err("prometheus_cr.enabled needs discovery: kubernetes".into());
    }
    if let Some(cr) = &file.prometheus_cr {
        if !cr.allow_namespaces.is_empty() && !cr.deny_namespaces.is_empty() {
            return Err("prometheus_cr: allow_namespaces and deny_namespaces are exclusive".into());
        }
        for (key, sel) in [
            ("service_monitor_selector", &cr.service_monitor_selector),
            ("pod_monitor_selector", &cr.pod_monitor_selector),
            ("scrape_config_selector", &cr.scrape_config_selector),
            ("probe_selector", &cr.probe_selector),
            (
                "service_monitor_namespace_selector",
                &cr.service_monitor_namespace_selector,
            ),
            (
                "pod_monitor_namespace_selector",
                &cr.pod_monitor_namespace_selector,
            ),
            (
                "scrape_config_namespace_selector",
                &cr.scrape_config_namespace_selector,
            ),
            ("probe_namespace_selector", &cr.probe_namespace_selector),
        ] {
            if let Some(s) = sel {
                s.validate()
                    .map_err(|e| format!("prometheus_cr.{key}: {e}"))?;
            }
        }
        if let Some(i) = &cr.scrape_interval {
            duration(i).map_err(|e| format!("prometheus_cr.scrape_interval: {e}"))?;
        }
    }
    let collector_selector = file.collector_selector.clone().unwrap_or_default();
    collector_selector
        .validate()
        .map_err(|e| format!("collector_selector: {e}"))?;
    let grace = match &file.collector_not_ready_grace_period {
        Some(g) => duration(g).map_err(|e| format!("collector_not_ready_grace_period: {e}"))?,
        None => std::time::Duration::from_secs(30),
    };
    let collector_namespace = file
        .collector_namespace
        .clone()
        .or_else(|| std::env::var("OTELCOL_NAMESPACE").ok())
        .unwrap_or_default();
    if kubernetes && collector_namespace.is_empty() {
        return Err(
            "collector_namespace (or env OTELCOL_NAMESPACE) is required with discovery: kubernetes"
                .into(),
        );
    }
    if let Some(h) = file.https.as_ref().filter(|h| h.enabled) {
        for (key, value) in [
            ("ca_file_path", &h.ca_file_path),
            ("tls_cert_file_path", &h.tls_cert_file_path),
            ("tls_key_file_path", &h.tls_key_file_path),
        ] {
            if value.as_deref().unwrap_or("").is_empty() {
                return Err(format!(
                    "https.{key} is required when https.enabled is true"
                ));
            }
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut rules = Vec::new();
    for (i, sc) in file.config.scrape_configs.iter().enumerate() {
        if sc.job_name.is_empty() {
            return Err(format!("config.scrape_configs[{i}].job_name is empty"));
        }
        for (k, sd) in sc.kubernetes_sd_configs.iter().enumerate() {
            if !kubernetes {
                return Err(format!(
                    "config.scrape_configs[{i}] (job {:?}).kubernetes_sd_configs needs discovery: kubernetes",
                    sc.job_name
                ));
            }
            if !matches!(sd.role.as_str(), "pod" | "service" | "endpointslice") {
                return Err(format!(
                    "config.scrape_configs[{i}] (job {:?}).kubernetes_sd_configs[{k}].role: {:?} is not supported; use pod, service or endpointslice",
                    sc.job_name, sd.role
                ));
            }
        }
        if !seen.insert(sc.job_name.as_str()) {
            return Err(format!(
                "config.scrape_configs[{i}]: job_name {:?} is used twice",
                sc.job_name
            ));
        }
        let compiled = sc
            .relabel_configs
            .iter()
            .enumerate()
            .map(|(r, spec)| {
                Rule::compile(spec).map_err(|e| {
                    format!(
                        "config.scrape_configs[{i}] (job {:?}).relabel_configs[{r}]: {e}",
                        sc.job_name
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(compiled);
    }
    Ok(Loaded {
        file,
        core,
        rules,
        base: base.to_path_buf(),
        kubernetes,
        collector_namespace,
        collector_selector,
        grace,
    })
}
