//! The configuration file: the Go Target Allocator's keys where they apply (DESIGN.md §8.1), plus
//! the file-discovery keys of this service. Unknown keys are errors that name the key and line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use allocator_core::{BoundedConfig, Config, Strategy};
use serde::{Deserialize, Serialize};

use crate::flags::Overrides;
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
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub allow_insecure_auth_secrets: bool,
    #[serde(default)]
    pub prometheus_cr: Option<PrometheusCr>,
    #[serde(default)]
    pub https: Option<Https>,
    /// `kubernetes` or `file`. Unset: `kubernetes` when the file has a `collector_selector`,
    /// enables `prometheus_cr` or has a Kubernetes SD, and names no collectors itself
    /// (`collectors`, `collectors_file`, `collector_nodes`); else `file`.
    #[serde(default)]
    pub discovery: Option<String>,
    /// Collectors, by name (file discovery).
    #[serde(default)]
    pub collectors: Vec<String>,
    /// A file with one collector name per line (re-read on change).
    #[serde(default)]
    pub collectors_file: Option<PathBuf>,
    /// The node each collector runs on (file discovery; per-node allocation places a target on
    /// the collector of its node). Collectors not named here have no node.
    #[serde(default)]
    pub collector_nodes: BTreeMap<String, String>,
    /// bounded-hashing's slack and absolute cap.
    #[serde(default)]
    pub bounded: Option<Bounded>,
    /// Zone-aware `rebalancing` (Kubernetes discovery): targets stay in the zone of their node.
    #[serde(default)]
    pub zones: Option<Zones>,
    /// Which `buraksezer/consistent` release the consistent-hashing ring reproduces:
    /// `v0.10.0` (the Operator's release, default) or `v1.0.0` (its main branch).
    #[serde(default)]
    pub ring: Option<String>,
    /// At most so many reassignments (or so much weight) per interval; the rest queued.
    #[serde(default)]
    pub movement_budget: Option<MovementBudget>,
    /// Serve a reassigned target to its old collector too, until the new one scraped it.
    #[serde(default)]
    pub handover: Option<HandoverConfig>,
    /// Target weights from observed series counts, pushed or pulled.
    #[serde(default)]
    pub observed_load: Option<ObservedLoad>,
    /// Several replicas with a leader elected through a Lease (history-dependent strategies).
    #[serde(default)]
    pub replication: Option<crate::replica::ReplicationFile>,
    /// The Go allocator's self-telemetry (OTLP push of its own metrics). Accepted when it
    /// configures no reader, as the Go allocator then does nothing with it; a reader is refused
    /// by name (`check_telemetry`): this service's metrics are scraped from `/metrics`.
    #[serde(default)]
    pub telemetry: Option<serde_yaml::Value>,
    pub config: PromConfig,
}

/// Refuse a `telemetry` section that asks for a metric reader: pushing the allocator's own
/// metrics over OTLP is not built, and accepting it would drop them silently.
fn check_telemetry(telemetry: Option<&serde_yaml::Value>) -> Result<(), String> {
    let Some(t) = telemetry.filter(|t| !t.is_null()) else {
        return Ok(());
    };
    let Some(t) = t.as_mapping() else {
        return Err("telemetry: expected a mapping".into());
    };
    let metrics = t.get("metrics").filter(|m| !m.is_null());
    if let Some(other) = t.keys().find(|k| k.as_str() != Some("metrics")) {
        return Err(format!(
            "telemetry: unknown key {other:?}; expected metrics"
        ));
    }
    let readers = match metrics {
        None => return Ok(()),
        Some(m) => match m.as_mapping() {
            Some(m) => m.get("readers").filter(|r| !r.is_null()),
            None => return Err("telemetry.metrics: expected a mapping".into()),
        },
    };
    let readers = match readers.map(|r| r.as_sequence()) {
        None => return Ok(()),
        Some(Some(r)) => r,
        Some(None) => return Err("telemetry.metrics.readers: expected a list".into()),
    };
    // The Go allocator skips a reader without `periodic`, its only kind.
    let pushes = readers
        .iter()
        .any(|r| r.get("periodic").is_some_and(|p| !p.is_null()));
    if pushes {
        Err("telemetry.metrics.readers: pushing the allocator's own metrics over \
             OTLP is not supported by this service; scrape its /metrics endpoint instead and remove \
             the readers"
            .into())
    } else {
        Ok(())
    }
}

/// `observed_load`: see [`crate::loads`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedLoad {
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub push: bool,
    #[serde(default)]
    pub pull: Option<LoadPull>,
    #[serde(default, deserialize_with = "yaml11::opt_f64")]
    pub band_percent: Option<f64>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub consecutive: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadPull {
    pub url: String,
    #[serde(default)]
    pub interval: Option<String>,
    #[serde(default)]
    pub query: Option<String>,
    #[serde(default)]
    pub collector_label: Option<String>,
}

impl ObservedLoad {
    /// The checked settings: push and/or pull; `band_percent` ≥ 0 (default 25); `consecutive`
    /// ≥ 1 (default 3); `pull.url` an `http://` URL with a host; `pull.interval` at least
    /// 100ms (default 30s).
    pub fn settings(&self) -> Result<crate::loads::Settings, String> {
        if !self.push && self.pull.is_none() {
            return Err("observed_load: set push: true, a pull section, or both".into());
        }
        let band = self.band_percent.unwrap_or(25.0);
        if !(band.is_finite() && band >= 0.0) {
            return Err(format!(
                "observed_load.band_percent: {band} is not a number ≥ 0"
            ));
        }
        let consecutive = self.consecutive.unwrap_or(3);
        if consecutive == 0 || consecutive > u64::from(u32::MAX) {
            return Err(format!(
                "observed_load.consecutive: {consecutive} is not between 1 and {}",
                u32::MAX
            ));
        }
        let pull = match &self.pull {
            None => None,
            Some(p) => {
                let uri: hyper::Uri = p
                    .url
                    .parse()
                    .map_err(|e| format!("observed_load.pull.url: {:?}: {e}", p.url))?;
                if uri.scheme_str() != Some("http") || uri.host().is_none() {
                    return Err(format!(
                        "observed_load.pull.url: {:?}: expected http://host[:port][/prefix] (https is not supported yet)",
                        p.url
                    ));
                }
                if uri.query().is_some() {
                    return Err(format!(
                        "observed_load.pull.url: {:?}: no query string (use pull.query)",
                        p.url
                    ));
                }
                let interval = match &p.interval {
                    Some(i) => {
                        duration(i).map_err(|e| format!("observed_load.pull.interval: {e}"))?
                    }
                    None => std::time::Duration::from_secs(30),
                };
                // A query every few milliseconds would load the query API for nothing.
                if interval < std::time::Duration::from_millis(100) {
                    return Err("observed_load.pull.interval: must be at least 100ms".into());
                }
                let query = p
                    .query
                    .clone()
                    .unwrap_or_else(|| "scrape_samples_scraped".into());
                if query.trim().is_empty() {
                    return Err("observed_load.pull.query: must not be empty".into());
                }
                Some(crate::loads::Pull {
                    url: p.url.clone(),
                    interval,
                    query,
                    collector_label: p.collector_label.clone().filter(|l| !l.is_empty()),
                })
            }
        };
        Ok(crate::loads::Settings {
            push: self.push,
            pull,
            band: band / 100.0,
            consecutive: consecutive as u32,
        })
    }
}

/// `handover`: see [`crate::handover`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HandoverConfig {
    /// The longest a target is served to both collectors.
    pub max_window: String,
}

/// `movement_budget`: see [`crate::budget`].
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MovementBudget {
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub max_moves: Option<u64>,
    #[serde(default, deserialize_with = "yaml11::opt_f64")]
    pub max_weight_percent: Option<f64>,
    #[serde(default)]
    pub interval: Option<String>,
}

impl MovementBudget {
    /// The checked limits: at least one of `max_moves` (≥ 1) and `max_weight_percent`
    /// (above 0, at most 100); `interval` a positive duration (default 30s).
    pub fn limits(&self) -> Result<crate::budget::Limits, String> {
        if self.max_moves.is_none() && self.max_weight_percent.is_none() {
            return Err("movement_budget: set max_moves, max_weight_percent or both".into());
        }
        if self.max_moves == Some(0) {
            return Err(
                "movement_budget.max_moves: must be at least 1 (0 would never move a target)"
                    .into(),
            );
        }
        if let Some(p) = self.max_weight_percent {
            if !(p > 0.0 && p <= 100.0) {
                return Err(format!(
                    "movement_budget.max_weight_percent: {p} is not in (0, 100]"
                ));
            }
        }
        let interval = match &self.interval {
            Some(i) => duration(i).map_err(|e| format!("movement_budget.interval: {e}"))?,
            None => std::time::Duration::from_secs(30),
        };
        // Each interval with moves queued costs a refresh (at 1M targets about a second).
        if interval < std::time::Duration::from_secs(1) {
            return Err("movement_budget.interval: must be at least 1s".into());
        }
        Ok(crate::budget::Limits {
            max_moves: self.max_moves,
            max_weight_percent: self.max_weight_percent,
            interval,
        })
    }
}

fn default_strategy() -> String {
    "consistent-hashing".into()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bounded {
    #[serde(default, deserialize_with = "yaml11::opt_f64")]
    pub epsilon: Option<f64>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub max_weight: Option<u64>,
}

/// `zones`: keep targets on collectors of their own zone (cross-zone traffic costs money and
/// latency) while every collector stays within `max_skew` of the mean weight.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zones {
    /// How far a collector may go over or under the mean weight to keep targets in their zone
    /// (default 0.1; the `bounded` ε applies when wider).
    #[serde(default, deserialize_with = "yaml11::opt_f64")]
    pub max_skew: Option<f64>,
    /// The node label naming a node's zone (default `topology.kubernetes.io/zone`).
    #[serde(default)]
    pub label: Option<String>,
}

/// The node label Kubernetes puts a node's zone in.
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";

/// `prometheus_cr`: which Prometheus Operator resources are turned into jobs. An absent resource
/// selector selects nothing, `{}` selects all; namespace selectors default to all namespaces.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrometheusCr {
    #[serde(default, deserialize_with = "yaml11::bool")]
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
    /// The Prometheus CRD's `scrapeClasses` (k8s/monitors.rs applies them).
    #[serde(default, deserialize_with = "yaml11::scrape_classes")]
    pub scrape_classes: Vec<crate::k8s::monitors::ScrapeClass>,
    #[serde(default)]
    pub allow_namespaces: Vec<String>,
    #[serde(default)]
    pub deny_namespaces: Vec<String>,
    /// Where changed Secrets are watched for (their metadata), when the role may not list
    /// Secrets cluster-wide and the ones resources name are read by name: a cached Secret there
    /// is read again as soon as it changes. Default: the collector namespace; `""` is every
    /// namespace (the Go allocator's meaning, whose role needs `list` and `watch` on Secrets
    /// there).
    #[serde(default, deserialize_with = "yaml11::secret_namespaces")]
    pub secret_namespaces: Vec<String>,
    /// The generated configuration's rule evaluation interval: checked and accepted, as the Go
    /// allocator accepts it; no scrape config reads it.
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    /// The generated jobs' default scrape protocols (the generated global section's; the Go
    /// allocator's default is Prometheus' own list).
    #[serde(default)]
    pub scrape_protocols: Option<Vec<String>>,
    /// Drop every generated job whose scrapes would read a file of the collector's host
    /// (`authorization.credentials_file`, `tls_config.ca_file` / `cert_file` / `key_file`), so a
    /// tenant's monitor cannot make collectors send their service account token.
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub deny_fs_access_through_sms: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Https {
    #[serde(default, deserialize_with = "yaml11::bool")]
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

/// Prometheus' `global` section. After [`parse`], `scrape_interval` and `scrape_timeout` hold the
/// resolved values in Prometheus' form (an unset or zero timeout is min(10s, interval)).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Global {
    #[serde(default)]
    pub scrape_interval: String,
    #[serde(default)]
    pub scrape_timeout: String,
    #[serde(default)]
    pub evaluation_interval: Option<String>,
    #[serde(default)]
    pub external_labels: BTreeMap<String, String>,
    #[serde(default)]
    pub rule_query_offset: Option<String>,
    #[serde(default)]
    pub query_log_file: Option<String>,
    // The settings below are the defaults of every job (see `scrape_defaults`).
    #[serde(default)]
    pub scrape_protocols: Option<Vec<String>>,
    #[serde(default)]
    pub scrape_failure_log_file: Option<String>,
    #[serde(default)]
    pub body_size_limit: Option<String>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub sample_limit: Option<u64>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub target_limit: Option<u64>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub label_limit: Option<u64>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub label_name_length_limit: Option<u64>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub label_value_length_limit: Option<u64>,
    #[serde(default, deserialize_with = "yaml11::opt_u64")]
    pub keep_dropped_targets: Option<u64>,
    #[serde(default)]
    pub metric_name_validation_scheme: Option<String>,
    #[serde(default)]
    pub metric_name_escaping_scheme: Option<String>,
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub scrape_native_histograms: bool,
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub convert_classic_histograms_to_nhcb: bool,
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub always_scrape_classic_histograms: bool,
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub extra_scrape_metrics: bool,
}

impl Global {
    /// The limits a job inherits when its own is zero, by their key, with the global values.
    pub fn inherited_limits(&self) -> [(&'static str, Option<u64>); 6] {
        [
            ("sample_limit", self.sample_limit),
            ("target_limit", self.target_limit),
            ("label_limit", self.label_limit),
            ("label_name_length_limit", self.label_name_length_limit),
            ("label_value_length_limit", self.label_value_length_limit),
            ("keep_dropped_targets", self.keep_dropped_targets),
        ]
    }
}

/// Prometheus' default global scrape interval and timeout (`config.DefaultGlobalConfig`).
const DEFAULT_INTERVAL_MS: u64 = 60_000;
const DEFAULT_TIMEOUT_MS: u64 = 10_000;

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

impl ScrapeConfig {
    /// The names this job's relabel rules may write: its `metric_name_validation_scheme`, else
    /// the global one.
    pub fn name_scheme(&self, global: &Global) -> crate::relabel::NameScheme {
        crate::relabel::NameScheme::of_job(
            self.rest
                .get("metric_name_validation_scheme")
                .and_then(serde_yaml::Value::as_str),
            global.metric_name_validation_scheme.as_deref(),
        )
    }
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

/// `kubernetes_sd_configs` entry: the roles the allocator discovers itself, from its own
/// caches of the in-cluster API server. Keys it does not take are kept in `other` and refused
/// by [`KubernetesSdConfig::check`] with an error naming them.
#[derive(Debug, Deserialize, Serialize, Clone)]
pub struct KubernetesSdConfig {
    pub role: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaces: Option<SdNamespaces>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub selectors: Vec<SdSelector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attach_metadata: Option<SdAttachMetadata>,
    #[serde(flatten, skip_serializing)]
    pub other: BTreeMap<String, serde_yaml::Value>,
}

#[derive(Debug, Deserialize, Serialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SdNamespaces {
    #[serde(
        default,
        deserialize_with = "yaml11::bool",
        skip_serializing_if = "std::ops::Not::not"
    )]
    pub own_namespace: bool,
    #[serde(default)]
    pub names: Vec<String>,
}

/// A `selectors` entry: Prometheus passes them to the API server's list and watch; the
/// allocator applies them to its caches (`k8s::selector::RoleSelectors`).
#[derive(Debug, Deserialize, Serialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SdSelector {
    #[serde(default)]
    pub role: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub field: String,
}

/// `attach_metadata`: the node's labels on the pod, endpoints and endpointslice roles' targets.
/// Prometheus' other kinds of metadata (namespace, deployment, job, cronjob) are refused when
/// set (taken when false, as Prometheus writes them back).
#[derive(Debug, Deserialize, Serialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SdAttachMetadata {
    #[serde(default, deserialize_with = "yaml11::bool")]
    pub node: bool,
    #[serde(default, deserialize_with = "yaml11::bool", skip_serializing)]
    pub namespace: bool,
    #[serde(default, deserialize_with = "yaml11::bool", skip_serializing)]
    pub deployment: bool,
    #[serde(default, deserialize_with = "yaml11::bool", skip_serializing)]
    pub job: bool,
    #[serde(default, deserialize_with = "yaml11::bool", skip_serializing)]
    pub cronjob: bool,
}

/// Prometheus' HTTP client settings of a Kubernetes SD entry (`config.HTTPClientConfig`,
/// inlined), which it takes only with `api_server`.
const SD_HTTP_CLIENT_KEYS: [&str; 13] = [
    "basic_auth",
    "authorization",
    "oauth2",
    "bearer_token",
    "bearer_token_file",
    "tls_config",
    "follow_redirects",
    "enable_http2",
    "proxy_url",
    "no_proxy",
    "proxy_from_environment",
    "proxy_connect_header",
    "http_headers",
];

impl KubernetesSdConfig {
    /// Everything the allocator does not serve is refused, naming the key: another API server
    /// (`api_server`, `kubeconfig_file`) and HTTP client settings (which Prometheus takes only
    /// with `api_server`); the defaults Prometheus writes back (`kubeconfig_file: ""`,
    /// `follow_redirects: true`, `enable_http2: true`) are taken. Then the role and the
    /// selectors as Prometheus checks them (`RoleSelectors::parse`).
    pub fn check(&self) -> Result<(), String> {
        if !matches!(
            self.role.as_str(),
            "pod" | "service" | "endpoints" | "endpointslice" | "node"
        ) {
            return Err(format!(
                "role: {:?} is not supported; use pod, service, endpoints, endpointslice or node",
                self.role
            ));
        }
        for (key, value) in &self.other {
            let default = match key.as_str() {
                "kubeconfig_file" => value.as_str() == Some("") || value.is_null(),
                "follow_redirects" | "enable_http2" => {
                    value
                        .as_bool()
                        .or_else(|| value.as_str().and_then(yaml11::bool_word))
                        == Some(true)
                }
                _ => false,
            };
            if default {
                continue;
            }
            if key == "api_server" || key == "kubeconfig_file" {
                return Err(format!(
                    "{key}: only the in-cluster API server is supported (the allocator \
                     discovers from its own client's caches); remove it"
                ));
            }
            if SD_HTTP_CLIENT_KEYS.contains(&key.as_str()) {
                return Err(format!(
                    "{key}: HTTP client settings are not supported: only the in-cluster API \
                     server is (Prometheus takes them only with api_server, which is not \
                     supported either)"
                ));
            }
            return Err(format!("unknown field {key:?}"));
        }
        if let Some(a) = &self.attach_metadata {
            for (key, on) in [
                ("namespace", a.namespace),
                ("deployment", a.deployment),
                ("job", a.job),
                ("cronjob", a.cronjob),
            ] {
                if on {
                    return Err(format!(
                        "attach_metadata.{key}: not supported (attach_metadata.node is)"
                    ));
                }
            }
        }
        for (j, sel) in self.selectors.iter().enumerate() {
            // Prometheus' roles are lowercase (a ScrapeConfig's are converted by
            // prometheus-operator; a configuration's are not).
            if !matches!(
                sel.role.as_str(),
                "pod" | "service" | "endpoints" | "endpointslice" | "node"
            ) {
                return Err(format!(
                    "selectors[{j}].role: {:?} is not a role (pod, service, endpoints, \
                     endpointslice or node)",
                    sel.role
                ));
            }
        }
        self.role_selectors().map(|_| ())
    }

    /// Its `selectors`, parsed for its role (errors name the entry: `selectors[j].<key>`).
    pub fn role_selectors(&self) -> Result<crate::k8s::selector::RoleSelectors, String> {
        use crate::k8s::selector::{RoleSelectors, SelectorEntry};
        let entries: Vec<SelectorEntry<'_>> = self
            .selectors
            .iter()
            .map(|s| SelectorEntry {
                role: &s.role,
                label: &s.label,
                field: &s.field,
            })
            .collect();
        RoleSelectors::parse(&self.role, &entries).map_err(|(j, e)| format!("selectors[{j}].{e}"))
    }

    /// `attach_metadata.node`.
    pub fn attach_node(&self) -> bool {
        self.attach_metadata.as_ref().is_some_and(|a| a.node)
    }

    /// Whether its discovery reads the nodes (role node, or node metadata).
    pub fn reads_nodes(&self) -> bool {
        self.role == "node" || (self.attach_node() && self.role != "service")
    }

    /// The namespaces it discovers in, None for all: `names`, and with `own_namespace` the
    /// allocator's (`own`, the collector namespace, as for a ScrapeConfig's); all when neither
    /// is given.
    pub fn namespaces(&self, own: &str) -> Option<Vec<String>> {
        let n = self.namespaces.as_ref()?;
        let mut out = n.names.clone();
        if n.own_namespace {
            out.push(own.to_owned());
        }
        (!out.is_empty()).then_some(out)
    }
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

/// A Go duration, parsed as `time.ParseDuration` does: `0` alone, or a sequence of decimal
/// numbers, each with an optional fraction and a unit (`ns`, `us`/`µs`/`μs`, `ms`, `s`, `m`,
/// `h`), e.g. `1.5s`, `1m0s`, `2h45m`. The Go allocator reads `collector_not_ready_grace_period`
/// into a `time.Duration` this way, and the Operator writes it in that form (`1m0s`). A
/// negative duration (which Go accepts) is refused: a grace period cannot be negative.
pub fn go_duration(s: &str) -> Result<std::time::Duration, String> {
    let bad = || format!("invalid duration {s:?}");
    let rest = s.strip_prefix('+').unwrap_or(s);
    if rest.starts_with('-') {
        return Err(format!("duration {s:?} is negative"));
    }
    if rest == "0" {
        return Ok(std::time::Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    let mut rest = rest;
    while !rest.is_empty() {
        let int_len = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let (int, after) = rest.split_at(int_len);
        let (frac, after) = match after.strip_prefix('.') {
            Some(a) => {
                let n = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
                a.split_at(n)
            }
            None => ("", after),
        };
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        let unit_len = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let nanos: u128 = match &after[..unit_len] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "" => return Err(format!("duration {s:?} lacks a unit")),
            u => return Err(format!("duration {s:?}: unknown unit {u:?}")),
        };
        let whole: u128 = if int.is_empty() {
            0
        } else {
            int.parse().map_err(|_| bad())?
        };
        // The fraction as Go's `leadingFraction` reads it (digits while they fit in an int64,
        // the rest ignored), then scaled in floating point as Go does: `0.3333333333333333333h`
        // is exactly 20 minutes there.
        let (mut f, mut scale) = (0u64, 1f64);
        for d in frac.bytes() {
            match f
                .checked_mul(10)
                .and_then(|y| y.checked_add(u64::from(d - b'0')))
            {
                Some(y) if y <= 1 << 63 => {
                    f = y;
                    scale *= 10.0;
                }
                _ => break,
            }
        }
        let mut part = whole.checked_mul(nanos).ok_or_else(bad)?;
        if f > 0 {
            part += (f as f64 * (nanos as f64 / scale)) as u128;
        }
        total = total.checked_add(part).ok_or_else(bad)?;
        // Go's time.Duration is an int64 of nanoseconds.
        if total > i64::MAX as u128 {
            return Err(format!("duration {s:?} is too long"));
        }
        rest = &after[unit_len..];
    }
    Ok(std::time::Duration::from_nanos(total as u64))
}

/// A Prometheus duration in milliseconds, parsed exactly as `model.ParseDuration` does
/// (prometheus/common): `0` alone, or integer-unit pairs in the order y, w, d, h, m, s, ms, each
/// unit at most once.
pub fn prom_duration_ms(s: &str) -> Result<u64, String> {
    const UNITS: [(&str, u64); 7] = [
        ("y", 365 * 86_400_000),
        ("w", 7 * 86_400_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
        ("ms", 1),
    ];
    match s {
        "0" => return Ok(0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let mut rest = s;
    let mut total: u64 = 0;
    let mut last_unit = None::<usize>;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        if digits == 0 || unit_len == 0 {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        let v: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("not a valid duration string: {s:?}"))?;
        let unit = &rest[digits..digits + unit_len];
        let (pos, mult) = UNITS
            .iter()
            .enumerate()
            .find(|(_, (u, _))| *u == unit)
            .map(|(i, (_, m))| (i, *m))
            .ok_or_else(|| format!("unknown unit {unit:?} in duration {s:?}"))?;
        if last_unit.is_some_and(|l| pos <= l) {
            return Err(format!("not a valid duration string: {s:?}"));
        }
        last_unit = Some(pos);
        total = v
            .checked_mul(mult)
            .and_then(|x| x.checked_add(total))
            .filter(|t| *t <= i64::MAX as u64 / 1_000_000)
            .ok_or_else(|| format!("duration {s:?} out of range"))?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// A duration in Prometheus' form, as `model.Duration.String()` writes it (`1m`, `1m30s`,
/// `2w`, `90d`: years and weeks only when exact).
pub fn format_duration_ms(ms: u64) -> String {
    if ms == 0 {
        return "0s".into();
    }
    let mut ms = ms;
    let mut out = String::new();
    for (unit, mult, exact) in [
        ("y", 365 * 86_400_000u64, true),
        ("w", 7 * 86_400_000, true),
        ("d", 86_400_000, false),
        ("h", 3_600_000, false),
        ("m", 60_000, false),
        ("s", 1_000, false),
        ("ms", 1, false),
    ] {
        if exact && ms % mult != 0 {
            continue;
        }
        let v = ms / mult;
        if v > 0 {
            out.push_str(&format!("{v}{unit}"));
            ms -= v * mult;
        }
    }
    out
}

/// A job's interval and timeout as Prometheus' config loader resolves them
/// (`ScrapeConfig.Validate`): an unset or zero interval is the global one; an unset or zero
/// timeout is min(global timeout, interval). Both in Prometheus' form.
pub fn resolve_timing(
    interval: Option<&str>,
    timeout: Option<&str>,
    global: &Global,
) -> Result<(String, String), String> {
    let ms = |what: &str, v: Option<&str>| -> Result<u64, String> {
        match v {
            None => Ok(0),
            Some(v) => prom_duration_ms(v).map_err(|e| format!("{what}: {e}")),
        }
    };
    let global_interval = ms("global.scrape_interval", Some(&global.scrape_interval))?;
    let global_timeout = ms("global.scrape_timeout", Some(&global.scrape_timeout))?;
    let mut i = ms("scrape_interval", interval)?;
    if i == 0 {
        i = global_interval;
    }
    let mut t = ms("scrape_timeout", timeout)?;
    if t == 0 {
        t = global_timeout.min(i);
    }
    Ok((format_duration_ms(i), format_duration_ms(t)))
}

/// Resolve the global section as `GlobalConfig.UnmarshalYAML` does: an unset or zero interval
/// is 1m, an unset or zero timeout min(10s, interval).
fn resolve_global(g: &mut Global) -> Result<(), String> {
    let ms = |what: &str, v: &str| -> Result<u64, String> {
        if v.is_empty() {
            Ok(0)
        } else {
            prom_duration_ms(v).map_err(|e| format!("config.global.{what}: {e}"))
        }
    };
    let mut i = ms("scrape_interval", &g.scrape_interval)?;
    if i == 0 {
        i = DEFAULT_INTERVAL_MS;
    }
    let mut t = ms("scrape_timeout", &g.scrape_timeout)?;
    if t == 0 {
        t = DEFAULT_TIMEOUT_MS.min(i);
    }
    g.scrape_interval = format_duration_ms(i);
    g.scrape_timeout = format_duration_ms(t);
    Ok(())
}

/// A validated configuration: everything a bad file can get wrong is caught here.
pub struct Loaded {
    pub file: File,
    pub core: Config,
    /// Compiled relabel rules per scrape config (same order).
    pub rules: Vec<Vec<Rule>>,
    /// The checked `http_sd_configs` of each scrape config (same order).
    pub http_sd: Vec<Vec<crate::discovery::http_sd::Endpoint>>,
    /// Where relative paths in the file are resolved.
    pub base: PathBuf,
    /// Kubernetes discovery is on (`discovery: kubernetes`).
    pub kubernetes: bool,
    /// Targets are relabeled at discovery, and those the rules drop left out
    /// (`filter_strategy: relabel-config`, the default; the Go allocator filters with nothing
    /// else, an empty value included).
    pub filter: bool,
    /// Zones on: the node label that names a node's zone.
    pub zone_label: Option<String>,
    /// The global section jobs generated from the operator's resources inherit from: the
    /// generated configuration's (`prometheus_cr.scrape_protocols`), not `config.global`.
    pub generated_global: Global,
    pub collector_namespace: String,
    pub collector_selector: LabelSelector,
    pub grace: std::time::Duration,
    /// `movement_budget`, checked.
    pub budget: Option<crate::budget::Limits>,
    /// `handover.max_window`, checked.
    pub handover: Option<std::time::Duration>,
    /// `observed_load`, checked.
    pub loads: Option<crate::loads::Settings>,
    /// The checked `replication` block.
    pub replication: Option<crate::replica::Replication>,
    /// How the Secrets and ConfigMaps the operator's resources name are read by name when the
    /// role may not list them: `prometheus_cr.secret_namespaces` (default the collector
    /// namespace) and the read timeout and refresh period (fixed, not configurable; tests
    /// shorten them).
    pub by_name: crate::k8s::by_name::Settings,
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
    load_with(path, &Overrides::default())
}

/// [`load`] with the Go allocator's command-line flags applied over the file.
pub fn load_with(path: &Path, flags: &Overrides) -> Result<Loaded, String> {
    let limit = crate::limits::MAX_CONFIG_BYTES;
    if std::fs::metadata(path).is_ok_and(|m| m.len() > limit) {
        return Err(format!("{}: larger than {limit} bytes", path.display()));
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: cannot read: {e}", path.display()))?;
    parse_with(
        text.as_str(),
        path.parent().unwrap_or(Path::new(".")),
        flags,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// Parse and validate configuration text; relative paths resolve against `base`.
pub fn parse(text: &str, base: &Path) -> Result<Loaded, String> {
    parse_with(text, base, &Overrides::default())
}

/// [`parse`] with the environment and the Go allocator's flags applied over the text, in the
/// Go allocator's order (file, environment, flags).
pub fn parse_with(text: &str, base: &Path, flags: &Overrides) -> Result<Loaded, String> {
    crate::limits::check_nesting(text)?;
    // First as written, for errors that name the line; then from the scalars as the Go
    // allocator's loader sees them (see `yaml11::canonical`).
    let _: File = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let mut file: File = serde_yaml::from_value(yaml11::canonical(text)?)
        .map_err(|e| format!("after YAML 1.1 resolution: {e}"))?;
    flags.apply(&mut file);
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
    if let Some(r) = &file.ring {
        core.ring.version = r.parse().map_err(|e| format!("ring: {e}"))?;
    }
    let zone_label = match &file.zones {
        None => None,
        Some(z) => {
            core.zone_skew = Some(z.max_skew.unwrap_or(0.1));
            let label = z.label.clone().unwrap_or_else(|| ZONE_LABEL.into());
            if label.is_empty() {
                return Err("zones.label must not be empty".into());
            }
            Some(label)
        }
    };
    core.validate()
        .map_err(|e| match (&file.zones, e) {
            (Some(_), allocator_core::Error::Config(allocator_core::ConfigError::ZonesUnsupported(s))) => {
                format!("zones: only the rebalancing strategy keeps targets in their zone, not {s} (set allocation_strategy: rebalancing)")
            }
            (Some(_), allocator_core::Error::Config(allocator_core::ConfigError::ZoneSkew(v))) => {
                format!("zones.max_skew must be a finite number in [0, 100], got {v}")
            }
            (_, e) => e.to_string(),
        })?;
    // Durations as Prometheus' loader resolves and writes them (`/scrape_configs` and the
    // seeded `__scrape_interval__` / `__scrape_timeout__` labels show these).
    resolve_global(&mut file.config.global)?;
    check_telemetry(file.telemetry.as_ref())?;
    crate::validate::config(&file)?;
    crate::scrape_defaults::check_global(&file.config.global)?;
    for (i, sc) in file.config.scrape_configs.iter_mut().enumerate() {
        let (interval, timeout) = resolve_timing(
            sc.scrape_interval.as_deref(),
            sc.scrape_timeout.as_deref(),
            &file.config.global,
        )
        .map_err(|e| format!("config.scrape_configs[{i}] (job {:?}).{e}", sc.job_name))?;
        sc.scrape_interval = Some(interval);
        sc.scrape_timeout = Some(timeout);
        yaml11::retype(&mut sc.rest);
        let rest: serde_json::Map<String, serde_json::Value> = sc
            .rest
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
            .collect();
        crate::scrape_defaults::check_job(&rest, &file.config.global)
            .map_err(|e| format!("config.scrape_configs[{i}] (job {:?}).{e}", sc.job_name))?;
    }
    let kubernetes = match file.discovery.as_deref() {
        // Unset: Kubernetes when the file asks for something only it provides - collectors
        // by `collector_selector` (the configuration the Operator generates always has one,
        // and no `discovery` key: the Go allocator always discovers in the cluster),
        // Operator resources or a Kubernetes SD - and names no collectors itself.
        None => {
            let named = !file.collectors.is_empty()
                || file.collectors_file.is_some()
                || !file.collector_nodes.is_empty();
            let cluster = file.collector_selector.is_some()
                || file.prometheus_cr.as_ref().is_some_and(|p| p.enabled)
                || file
                    .config
                    .scrape_configs
                    .iter()
                    .any(|sc| !sc.kubernetes_sd_configs.is_empty());
            cluster && !named
        }
        Some("file") => false,
        Some("kubernetes") => true,
        Some(other) => {
            return Err(format!(
                "discovery: unknown mode {other:?}; expected \"file\" or \"kubernetes\""
            ))
        }
    };
    if !kubernetes && zone_label.is_some() {
        return Err(
            "zones needs discovery: kubernetes (zones come from the nodes' labels and the collector pods' nodes)"
                .into(),
        );
    }
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
        if let Some(i) = &cr.evaluation_interval {
            // A `model.Duration` in the Go allocator: Prometheus' exact grammar.
            prom_duration_ms(i).map_err(|e| format!("prometheus_cr.evaluation_interval: {e}"))?;
        }
        if let Some(p) = &cr.scrape_protocols {
            crate::scrape_defaults::check_protocols(p)
                .map_err(|e| format!("prometheus_cr.scrape_protocols: {e}"))?;
        }
    }
    let collector_selector = file.collector_selector.clone().unwrap_or_default();
    collector_selector
        .validate()
        .map_err(|e| format!("collector_selector: {e}"))?;
    let grace = match &file.collector_not_ready_grace_period {
        Some(g) => go_duration(g).map_err(|e| format!("collector_not_ready_grace_period: {e}"))?,
        None => std::time::Duration::from_secs(30),
    };
    let collector_namespace = file
        .collector_namespace
        .clone()
        .or_else(|| std::env::var("OTELCOL_NAMESPACE").ok())
        .unwrap_or_default();
    if kubernetes && collector_namespace.is_empty() {
        return Err(
            "collector_namespace (or env OTELCOL_NAMESPACE) is required with discovery: kubernetes \
             (the default when a collector_selector, prometheus_cr or a Kubernetes SD is set and \
             no collectors are listed)"
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
    let budget = file
        .movement_budget
        .as_ref()
        .map(MovementBudget::limits)
        .transpose()?;
    let handover = match &file.handover {
        None => None,
        Some(h) => match duration(&h.max_window) {
            Ok(d) if !d.is_zero() => Some(d),
            Ok(_) => return Err("handover.max_window: must be more than 0".into()),
            Err(e) => return Err(format!("handover.max_window: {e}")),
        },
    };
    let loads = file
        .observed_load
        .as_ref()
        .map(ObservedLoad::settings)
        .transpose()?;
    if loads.is_some() {
        let weight_aware = match core.strategy {
            Strategy::LeastWeighted | Strategy::BoundedHashing | Strategy::Rebalancing => true,
            Strategy::PerNode => core.fallback == Some(Strategy::LeastWeighted),
            _ => false,
        };
        if !weight_aware && handover.is_none() {
            return Err(format!(
                "observed_load: {} ignores target weights, so observed loads would change \
                 nothing (use least-weighted, bounded-hashing or rebalancing; with handover the \
                 feed also closes hand-over windows)",
                core.strategy
            ));
        }
        // least-weighted then balances the observed weights, not target counts.
        core.weighted = true;
    }
    let replication = file
        .replication
        .as_ref()
        .map(|r| crate::replica::Replication::from_file(r, &core, &collector_namespace))
        .transpose()?;
    if replication.is_some()
        && (budget.is_some() || handover.is_some() || loads.as_ref().is_some_and(|l| l.push))
    {
        // Followers restore the leader's core assignment, not what its budget and hand-over
        // windows serve, and a load pushed to a follower would never reach the leader.
        return Err(
            "replication cannot be combined with movement_budget, handover or \
                    observed_load.push (followers would serve the core's assignment, not the \
                    leader's budgeted one, and loads pushed to a follower would be lost); \
                    use observed_load.pull"
                .into(),
        );
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut rules = Vec::new();
    let mut http_sd = Vec::new();
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
            sd.check().map_err(|e| {
                format!(
                    "config.scrape_configs[{i}] (job {:?}).kubernetes_sd_configs[{k}].{e}",
                    sc.job_name
                )
            })?;
            // Loads, as Prometheus' does; its discovery then finds nothing (the API server
            // refuses the list).
            if let Some(e) = sd
                .role_selectors()
                .ok()
                .and_then(|s| s.refused(&sd.role, sd.attach_node()))
            {
                tracing::warn!(
                    job = %sc.job_name,
                    entry = k,
                    error = %e,
                    "kubernetes_sd_configs: the API server refuses this selector; the discovery finds no targets"
                );
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
                Rule::compile_for(spec, sc.name_scheme(&file.config.global)).map_err(|e| {
                    format!(
                        "config.scrape_configs[{i}] (job {:?}).relabel_configs[{r}]: {e}",
                        sc.job_name
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        rules.push(compiled);
        let endpoints = match sc.rest.get("http_sd_configs") {
            None | Some(serde_yaml::Value::Null) => Vec::new(),
            Some(serde_yaml::Value::Sequence(list)) => list
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    crate::discovery::http_sd::Endpoint::parse(v, base).map_err(|e| {
                        format!(
                            "config.scrape_configs[{i}] (job {:?}).http_sd_configs[{k}]: {e}",
                            sc.job_name
                        )
                    })
                })
                .collect::<Result<Vec<_>, _>>()?,
            Some(_) => {
                return Err(format!(
                    "config.scrape_configs[{i}] (job {:?}).http_sd_configs: expected a list",
                    sc.job_name
                ))
            }
        };
        http_sd.push(endpoints);
    }
    let filter = file
        .filter_strategy
        .as_deref()
        .is_none_or(|s| s == "relabel-config");
    let generated_global = crate::scrape_defaults::generated_global(
        file.prometheus_cr
            .as_ref()
            .and_then(|c| c.scrape_protocols.clone()),
    );
    let by_name = crate::k8s::by_name::Settings {
        secret_namespaces: match file.prometheus_cr.as_ref() {
            Some(cr) if !cr.secret_namespaces.is_empty() => cr.secret_namespaces.clone(),
            // The Go allocator's `GetSecretsAllowList`.
            _ if !collector_namespace.is_empty() => vec![collector_namespace.clone()],
            _ => Vec::new(),
        },
        timing: Default::default(),
    };
    Ok(Loaded {
        file,
        core,
        rules,
        http_sd,
        base: base.to_path_buf(),
        kubernetes,
        filter,
        zone_label,
        generated_global,
        collector_namespace,
        collector_selector,
        grace,
        budget,
        handover,
        loads,
        replication,
        by_name,
    })
}

/// YAML 1.1 scalars as the Go allocator's loader reads them. It decodes the whole file with
/// gopkg.in/yaml.v2 into untyped maps, re-encodes the `config` section and decodes that into
/// Prometheus' types; so an unquoted scalar takes the YAML 1.1 type its text resolves to (`yes`,
/// `on`, `y` are booleans; `010` is octal 8, `0x1F` 31, `1_000` a thousand; `1.50` the float 1.5)
/// and comes back as that value's canonical text (`true`, `8`, `31`, `1000`, `1.5`) even where a
/// string is expected (a label value, a job name, a regex). Quoted scalars stay as written.
pub mod yaml11 {
    use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};
    use serde::{Deserialize, Deserializer};
    use serde_yaml::{Mapping, Value};
    use std::collections::BTreeMap;
    use std::fmt;

    /// The document with every scalar as the Go loader's text (or null).
    pub fn canonical(text: &str) -> Result<Value, String> {
        let de = serde_yaml::Deserializer::from_str(text);
        Canon { input: text }
            .deserialize(de)
            .map_err(|e| e.to_string())
    }

    /// Deserializes any YAML node into its canonical form; `input` is the document, so that a
    /// scalar borrowed from it can be told plain (its text starts the scalar) from quoted (a
    /// quote precedes it).
    #[derive(Clone, Copy)]
    struct Canon<'a> {
        input: &'a str,
    }

    impl<'de> DeserializeSeed<'de> for Canon<'_> {
        type Value = Value;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
            d.deserialize_any(self)
        }
    }

    impl<'de> Visitor<'de> for Canon<'_> {
        type Value = Value;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any YAML value")
        }
        fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
            Ok(Value::String(b.to_string()))
        }
        fn visit_i64<E>(self, i: i64) -> Result<Value, E> {
            Ok(Value::String(i.to_string()))
        }
        fn visit_u64<E>(self, u: u64) -> Result<Value, E> {
            Ok(Value::String(u.to_string()))
        }
        fn visit_f64<E>(self, f: f64) -> Result<Value, E> {
            Ok(Value::String(go_float(f)))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_none<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }
        fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Value, E> {
            // Where the scalar sits in the document (address arithmetic only, no access).
            let start = (s.as_ptr() as usize).wrapping_sub(self.input.as_ptr() as usize);
            let quoted = start == 0
                || start > self.input.len()
                || matches!(self.input.as_bytes()[start - 1], b'"' | b'\'');
            Ok(Value::String(if quoted {
                s.to_owned()
            } else {
                resolve_plain(s)
            }))
        }
        fn visit_str<E>(self, s: &str) -> Result<Value, E> {
            // Not borrowable: a quoted scalar with escapes, or a folded one; kept as written.
            Ok(Value::String(s.to_owned()))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut out = Vec::new();
            while let Some(v) = seq.next_element_seed(self)? {
                out.push(v);
            }
            Ok(Value::Sequence(out))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let mut out = Mapping::new();
            while let Some(k) = map.next_key_seed(self)? {
                let v = map.next_value_seed(self)?;
                out.insert(k, v);
            }
            Ok(Value::Mapping(out))
        }
    }

    /// An unquoted scalar that YAML 1.2 left a string, resolved as yaml.v2 resolves it.
    fn resolve_plain(s: &str) -> String {
        if let Some(b) = bool_word(s) {
            return b.to_string();
        }
        if let Some(i) = int_word(s) {
            return i.to_string();
        }
        let plain = s.replace('_', "");
        if is_yaml_float(&plain) {
            if let Ok(f) = plain.parse::<f64>() {
                return go_float(f);
            }
        }
        s.to_owned()
    }

    /// yaml.v2's `yamlStyleFloat`: `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
    fn is_yaml_float(s: &str) -> bool {
        let s = s.strip_prefix(['+', '-']).unwrap_or(s);
        let (mant, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], Some(&s[i + 1..])),
            None => (s, None),
        };
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        let mant_ok = match mant.split_once('.') {
            Some(("", frac)) => digits(frac),
            Some((int, frac)) => digits(int) && frac.bytes().all(|b| b.is_ascii_digit()),
            None => digits(mant),
        };
        mant_ok && exp.is_none_or(|e| digits(e.strip_prefix(['+', '-']).unwrap_or(e)))
    }

    /// A float as Go writes it with `strconv.FormatFloat(f, 'g', -1, 64)`: the shortest digits,
    /// in exponent form (`1e+06`) when the exponent is below -4 or at least 6.
    pub fn go_float(f: f64) -> String {
        if f.is_nan() {
            return ".nan".into();
        }
        if f.is_infinite() {
            return if f > 0.0 {
                "+.inf".into()
            } else {
                "-.inf".into()
            };
        }
        let sci = format!("{f:e}");
        let (mant, exp) = sci.split_once('e').expect("exponent form");
        let exp: i32 = exp.parse().expect("an exponent");
        if f != 0.0 && !(-4..6).contains(&exp) {
            let sign = if exp < 0 { '-' } else { '+' };
            format!("{mant}e{sign}{:02}", exp.abs())
        } else {
            format!("{f}")
        }
    }

    /// yaml.v2's boolean words (resolve.go).
    pub fn bool_word(s: &str) -> Option<bool> {
        match s {
            "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON" | "true" | "True" | "TRUE" => {
                Some(true)
            }
            "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF" | "false" | "False"
            | "FALSE" => Some(false),
            _ => None,
        }
    }

    /// An integer as yaml.v2 resolves a plain scalar: underscores removed, then Go's
    /// `strconv.ParseInt(s, 0, 64)` (`0x`, `0o`, `0b` prefixes; a leading `0` is octal).
    pub fn int_word(s: &str) -> Option<i64> {
        let plain = s.replace('_', "");
        let (neg, digits) = match plain.as_bytes().first() {
            Some(b'-') => (true, &plain[1..]),
            Some(b'+') => (false, &plain[1..]),
            _ => (false, &plain[..]),
        };
        let lower = digits.to_ascii_lowercase();
        let (radix, body) = if let Some(b) = lower.strip_prefix("0x") {
            (16, b.to_owned())
        } else if let Some(b) = lower.strip_prefix("0o") {
            (8, b.to_owned())
        } else if let Some(b) = lower.strip_prefix("0b") {
            (2, b.to_owned())
        } else if lower.len() > 1 && lower.starts_with('0') {
            (8, lower[1..].to_owned())
        } else {
            (10, lower.clone())
        };
        if body.is_empty() || body.starts_with(['+', '-']) {
            return None;
        }
        let v = i64::from_str_radix(&body, radix).ok()?;
        Some(if neg { -v } else { v })
    }

    /// `deserialize_with` for a bool field read as yaml.v2 reads it.
    pub fn bool<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match Value::deserialize(d)? {
            Value::Bool(b) => Ok(b),
            Value::String(s) => bool_word(&s).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{s:?} is not a boolean (true/false, yes/no, on/off, y/n)"
                ))
            }),
            other => Err(serde::de::Error::custom(format!(
                "expected a boolean, found {other:?}"
            ))),
        }
    }

    /// `prometheus_cr.secret_namespaces`: a list of strings the Go allocator decodes into a `[]string`
    /// with mapstructure (not weakly typed): null is no list; otherwise a sequence is required
    /// (a scalar or a map is refused), whose elements are strings, or null (an empty string);
    /// a number or a boolean is refused. (The text as written is checked with YAML 1.2's
    /// types, so an unquoted `yes` passes as a string where yaml.v2 reads a boolean.)
    pub fn secret_namespaces<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        go_strings(d, "secret_namespaces")
    }

    fn go_strings<'de, D: Deserializer<'de>>(d: D, key: &str) -> Result<Vec<String>, D::Error> {
        use serde::de::Error;
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Sequence(items)) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::String(s) => Ok(s),
                    Value::Null => Ok(String::new()),
                    other => Err(D::Error::custom(format!(
                        "{key}[{i}]: expected a string, found {}",
                        kind_of(&other)
                    ))),
                })
                .collect(),
            Some(other) => Err(D::Error::custom(format!(
                "{key}: expected a list of strings, found {}",
                kind_of(&other)
            ))),
        }
    }

    fn kind_of(v: &Value) -> &'static str {
        match v {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Sequence(_) => "a list",
            Value::Mapping(_) => "a map",
            Value::Tagged(_) => "a tagged value",
        }
    }

    /// `prometheus_cr.scrape_classes`: the Prometheus CRD's own types, which the Go allocator
    /// reads through a YAML-to-JSON pass (its scalars typed), not as the loader's text. The
    /// canonical text of the typed fields (`default`, `attachMetadata.node`,
    /// `tlsConfig.insecureSkipVerify`, a relabeling's `modulus`) is typed back before the
    /// classes are read: `default: true` used to be refused as a string, and an
    /// `insecureSkipVerify: true` read as false.
    pub fn scrape_classes<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<crate::k8s::monitors::ScrapeClass>, D::Error> {
        fn typed(key: &str, v: &mut Value) {
            match v {
                Value::String(s) if matches!(key, "default" | "node" | "insecureSkipVerify") => {
                    if let Some(b) = bool_word(s) {
                        *v = Value::Bool(b);
                    }
                }
                Value::String(s) if key == "modulus" => {
                    if let Some(i) = int_word(s) {
                        *v = Value::Number(i.into());
                    }
                }
                Value::Mapping(m) => {
                    for (k, x) in m.iter_mut() {
                        if let Some(k) = k.as_str() {
                            let k = k.to_owned();
                            typed(&k, x);
                        }
                    }
                }
                Value::Sequence(items) => items.iter_mut().for_each(|x| typed(key, x)),
                _ => {}
            }
        }
        let mut v = Value::deserialize(d)?;
        if v.is_null() {
            return Ok(Vec::new());
        }
        typed("", &mut v);
        serde_yaml::from_value(v).map_err(serde::de::Error::custom)
    }

    /// `deserialize_with` for an optional unsigned integer read as yaml.v2 reads it.
    pub fn opt_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        let v = Option::<Value>::deserialize(d)?;
        match v {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not an unsigned integer"))),
            Some(Value::String(s)) => int_word(&s)
                .and_then(|i| u64::try_from(i).ok())
                .map(Some)
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("{s:?} is not an unsigned integer"))
                }),
            Some(other) => Err(serde::de::Error::custom(format!(
                "expected an unsigned integer, found {other:?}"
            ))),
        }
    }

    /// `deserialize_with` for an optional float (a number, or its canonical text).
    pub fn opt_f64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        match Option::<Value>::deserialize(d)? {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{n} is not a number"))),
            Some(Value::String(s)) => s
                .replace('_', "")
                .parse::<f64>()
                .map(Some)
                .map_err(|_| serde::de::Error::custom(format!("{s:?} is not a number"))),
            Some(other) => Err(serde::de::Error::custom(format!(
                "expected a number, found {other:?}"
            ))),
        }
    }

    /// Boolean and integer fields of Prometheus' scrape and HTTP client configs (the keys are
    /// unique to those types across the scrape config tree).
    const BOOL_KEYS: [&str; 13] = [
        "honor_labels",
        "extra_scrape_metrics",
        "honor_timestamps",
        "track_timestamps_staleness",
        "enable_compression",
        "enable_http2",
        "follow_redirects",
        "insecure_skip_verify",
        "proxy_from_environment",
        "always_scrape_classic_histograms",
        "convert_classic_histograms_to_nhcb",
        "scrape_native_histograms",
        "fallback_scrape_protocol_enabled",
    ];
    const FLOAT_KEYS: [&str; 1] = ["native_histogram_min_bucket_factor"];
    const INT_KEYS: [&str; 8] = [
        "sample_limit",
        "target_limit",
        "label_limit",
        "label_name_length_limit",
        "label_value_length_limit",
        "keep_dropped_targets",
        "native_histogram_bucket_limit",
        "port",
    ];

    /// Give the pass-through keys of a scrape config the types yaml.v2 gives them, so that
    /// `/scrape_configs` serves `honor_labels: yes` as `true` and `sample_limit: 010` as 8.
    pub fn retype(rest: &mut BTreeMap<String, Value>) {
        for (k, v) in rest.iter_mut() {
            retype_value(k, v);
        }
    }

    fn retype_value(key: &str, v: &mut Value) {
        match v {
            Value::String(s) if BOOL_KEYS.contains(&key) => {
                if let Some(b) = bool_word(s) {
                    *v = Value::Bool(b);
                }
            }
            Value::String(s) if INT_KEYS.contains(&key) => {
                if let Some(i) = int_word(s) {
                    *v = Value::Number(i.into());
                }
            }
            Value::String(s) if FLOAT_KEYS.contains(&key) => {
                if let Ok(f) = s.parse::<f64>() {
                    *v = Value::Number(f.into());
                }
            }
            Value::Mapping(m) => {
                for (k, x) in m.iter_mut() {
                    if let Some(k) = k.as_str() {
                        let k = k.to_owned();
                        retype_value(&k, x);
                    }
                }
            }
            Value::Sequence(items) => items.iter_mut().for_each(|x| retype_value(key, x)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The Go allocator's `telemetry` section: no reader (or a reader without `periodic`, which
    /// it skips) loads; a push reader is refused naming the key, not as an unknown field.
    #[test]
    fn telemetry_without_a_push_reader_loads_and_with_one_is_refused_by_name() {
        let with = |t: &str| {
            parse(
                &format!("{t}\nconfig:\n  scrape_configs: []\n"),
                Path::new("."),
            )
        };
        for ok in [
            "telemetry: {}",
            "telemetry:",
            "telemetry:\n  metrics: {}",
            "telemetry:\n  metrics:\n    readers: []",
            "telemetry:\n  metrics:\n    readers:\n      - {}",
        ] {
            assert!(with(ok).is_ok(), "{ok}: {:?}", with(ok).err());
        }
        let push = "telemetry:\n  metrics:\n    readers:\n      - periodic:\n          interval: 60000\n          exporter:\n            otlp_http:\n              endpoint: http://c:4318";
        let e = with(push).err().expect("refused");
        assert!(e.starts_with("telemetry.metrics.readers: pushing"), "{e}");
        let e = with("telemetry:\n  traces: {}").err().expect("refused");
        assert!(e.contains("telemetry: unknown key"), "{e}");
        let e = with("telemetry:\n  metrics:\n    readers: 3")
            .err()
            .expect("refused");
        assert!(e.contains("expected a list"), "{e}");
    }

    /// Cases of Go's `time.ParseDuration` (its documentation and `time_test.go`
    /// parseDurationTests), negatives excepted (refused here).
    #[test]
    fn go_durations_parse_as_time_parse_duration() {
        let ns = |s: &str| go_duration(s).map(|d| d.as_nanos());
        for (s, want) in [
            ("0", 0u128),
            ("5s", 5_000_000_000),
            ("30s", 30_000_000_000),
            ("1478s", 1_478_000_000_000),
            ("+5s", 5_000_000_000),
            ("5.0s", 5_000_000_000),
            ("5.6s", 5_600_000_000),
            ("5.s", 5_000_000_000),
            (".5s", 500_000_000),
            ("1.0s", 1_000_000_000),
            ("1.004s", 1_004_000_000),
            ("100.00100s", 100_001_000_000),
            ("10ns", 10),
            ("11us", 11_000),
            ("12µs", 12_000),
            ("12μs", 12_000),
            ("13ms", 13_000_000),
            ("14s", 14_000_000_000),
            ("15m", 900_000_000_000),
            ("16h", 57_600_000_000_000),
            ("3h30m", 12_600_000_000_000),
            ("10.5s4m", 250_500_000_000),
            ("1h2m3s4ms5us6ns", 3_723_004_005_006),
            ("39h9m14.425s", 140_954_425_000_000),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 1_200_000_000_000),
            ("9223372036854775807ns", 9_223_372_036_854_775_807),
            ("1m0s", 60_000_000_000),
        ] {
            assert_eq!(ns(s), Ok(want), "{s}");
        }
        for s in [
            "",
            "3",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "1d",
            "9223372036854775808ns",
            "-1s",
        ] {
            assert!(go_duration(s).is_err(), "{s:?} accepted");
        }
    }

    /// The positive cases of prometheus/common v0.70.1 `model/time_test.go` TestParseDuration:
    /// (input, milliseconds, `String()`; `None` when it prints back as written).
    const COMMON_CASES: &[(&str, u64, Option<&str>)] = &[
        ("0", 0, Some("0s")),
        ("0w", 0, Some("0s")),
        ("0s", 0, None),
        ("324ms", 324, None),
        ("3s", 3_000, None),
        ("5m", 300_000, None),
        ("1h", 3_600_000, None),
        ("4d", 4 * 86_400_000, None),
        ("4d1h", 4 * 86_400_000 + 3_600_000, None),
        ("14d", 14 * 86_400_000, Some("2w")),
        ("3w", 21 * 86_400_000, None),
        ("3w2d1h", 23 * 86_400_000 + 3_600_000, Some("23d1h")),
        ("10y", 3650 * 86_400_000, None),
    ];

    #[test]
    fn durations_parse_and_print_as_prometheus_common() {
        for (input, ms, printed) in COMMON_CASES {
            assert_eq!(prom_duration_ms(input), Ok(*ms), "{input}");
            assert_eq!(format_duration_ms(*ms), printed.unwrap_or(input), "{input}");
        }
        // Out of order or repeated units are refused by ParseDuration.
        for bad in ["1s1m", "1m1m", "1.5s", "", "s", "5", "1x"] {
            assert!(prom_duration_ms(bad).is_err(), "{bad}");
        }
        // What issue 16 saw: 60s and 90s are written 1m and 1m30s.
        assert_eq!(format_duration_ms(prom_duration_ms("60s").unwrap()), "1m");
        assert_eq!(
            format_duration_ms(prom_duration_ms("90s").unwrap()),
            "1m30s"
        );
    }

    #[test]
    fn observed_load_needs_a_strategy_that_weighs_or_a_handover_window() {
        let load = |strategy: &str, extra: &str| {
            parse(
                &format!("allocation_strategy: {strategy}\nobserved_load: {{push: true}}\n{extra}config: {{}}"),
                Path::new("."),
            )
        };
        let e = load("consistent-hashing", "").err().unwrap();
        assert!(
            e.contains("consistent-hashing ignores target weights"),
            "{e}"
        );
        let e = load("per-node", "").err().unwrap();
        assert!(e.contains("per-node ignores target weights"), "{e}");
        // The feed also closes hand-over windows: accepted with one.
        assert!(load("consistent-hashing", "handover: {max_window: 1m}\n").is_ok());
        // least-weighted balances the observed weights, not counts.
        assert!(load("least-weighted", "").unwrap().core.weighted);
        assert!(
            !parse(
                "allocation_strategy: least-weighted\nconfig: {}",
                Path::new(".")
            )
            .unwrap()
            .core
            .weighted
        );
    }

    #[test]
    fn movement_budget_values_are_checked_and_named() {
        let load = |b: &str| {
            parse(
                &format!("movement_budget: {b}\nconfig: {{}}"),
                Path::new("."),
            )
        };
        let l = load("{max_moves: 5, max_weight_percent: 2.5, interval: 1m}")
            .unwrap()
            .budget
            .unwrap();
        assert_eq!(l.max_moves, Some(5));
        assert_eq!(l.max_weight_percent, Some(2.5));
        assert_eq!(l.interval, std::time::Duration::from_secs(60));
        let l = load("{max_moves: 1}").unwrap().budget.unwrap();
        assert_eq!(l.interval, std::time::Duration::from_secs(30));
        assert!(parse("config: {}", Path::new("."))
            .unwrap()
            .budget
            .is_none());
        for (bad, names) in [
            ("{}", "set max_moves, max_weight_percent or both"),
            ("{max_moves: 0}", "max_moves"),
            ("{max_weight_percent: 0}", "max_weight_percent"),
            ("{max_weight_percent: 101}", "max_weight_percent"),
            ("{max_weight_percent: .nan}", "not a number"),
            ("{max_moves: 1, interval: 0s}", "interval"),
            (
                "{max_moves: 1, interval: 1ms}",
                "movement_budget.interval: must be at least 1s",
            ),
            ("{max_moves: 1, interval: 5}", "interval"),
            ("{max_moves: 1, intervall: 5s}", "intervall"),
            ("{max_moves: -1}", "-1 is not an unsigned integer at line 1"),
        ] {
            let e = load(bad).err().unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(e.contains(names), "{bad}: {e}");
        }
    }

    /// prometheus v0.314.0 config.go: `GlobalConfig.UnmarshalYAML` (default 1m / 10s, timeout
    /// min(10s, interval)) and `ScrapeConfig.Validate` (timeout min(global timeout, interval)).
    #[test]
    fn unset_timeouts_resolve_as_prometheus_loader() {
        let cfg = parse(
            "config:\n  global: {scrape_interval: 5s}\n  scrape_configs:\n\
             \x20   - {job_name: a}\n\
             \x20   - {job_name: b, scrape_interval: 60s}\n\
             \x20   - {job_name: c, scrape_interval: 2s, scrape_timeout: 0s}\n\
             \x20   - {job_name: d, scrape_interval: 90s, scrape_timeout: 30s}\n",
            Path::new("."),
        )
        .unwrap();
        let g = &cfg.file.config.global;
        assert_eq!(
            (g.scrape_interval.as_str(), g.scrape_timeout.as_str()),
            ("5s", "5s")
        );
        let timing: Vec<_> = cfg
            .file
            .config
            .scrape_configs
            .iter()
            .map(|s| {
                (
                    s.scrape_interval.clone().unwrap(),
                    s.scrape_timeout.clone().unwrap(),
                )
            })
            .collect();
        let want = [("5s", "5s"), ("1m", "5s"), ("2s", "2s"), ("1m30s", "30s")];
        for (got, want) in timing.iter().zip(want) {
            assert_eq!((got.0.as_str(), got.1.as_str()), want);
        }
        let cfg = parse(
            "config:\n  scrape_configs: [{job_name: a, scrape_interval: 5s}, {job_name: b}]\n",
            Path::new("."),
        )
        .unwrap();
        let sc = &cfg.file.config.scrape_configs;
        assert_eq!(sc[0].scrape_timeout.as_deref(), Some("5s"));
        assert_eq!(sc[1].scrape_interval.as_deref(), Some("1m"));
        assert_eq!(sc[1].scrape_timeout.as_deref(), Some("10s"));
    }

    #[test]
    fn ring_version_is_selectable() {
        let base = "config: {scrape_configs: []}\n";
        let cfg = parse(base, Path::new(".")).unwrap();
        assert_eq!(cfg.core.ring.version, allocator_core::RingVersion::V0_10_0);
        let cfg = parse(&format!("ring: v1.0.0\n{base}"), Path::new(".")).unwrap();
        assert_eq!(cfg.core.ring.version, allocator_core::RingVersion::V1_0_0);
        let e = parse(&format!("ring: v2\n{base}"), Path::new("."))
            .err()
            .unwrap();
        assert!(e.contains("ring") && e.contains("v2"), "{e}");
    }

    /// gopkg.in/yaml.v2 resolve.go: the YAML 1.1 boolean words, and integers read with
    /// `strconv.ParseInt(s, 0, 64)` after removing underscores.
    #[test]
    fn yaml11_scalars_read_as_yaml_v2() {
        for (w, b) in [
            ("yes", true),
            ("On", true),
            ("Y", true),
            ("off", false),
            ("NO", false),
        ] {
            assert_eq!(yaml11::bool_word(w), Some(b), "{w}");
        }
        assert_eq!(yaml11::bool_word("enabled"), None);
        for (w, i) in [
            ("010", 8),
            ("007", 7),
            ("0x1F", 31),
            ("0b101", 5),
            ("1_000", 1000),
            ("-010", -8),
        ] {
            assert_eq!(yaml11::int_word(w), Some(i), "{w}");
        }
        assert_eq!(yaml11::int_word("08"), None);
        let cfg = parse(
            "allow_insecure_auth_secrets: yes\nconfig:\n  scrape_configs:\n\
             \x20   - job_name: j\n      honor_labels: on\n      sample_limit: 010\n\
             \x20     relabel_configs: [{source_labels: [a], modulus: 010, target_label: b, action: hashmod}]\n",
            Path::new("."),
        )
        .unwrap();
        assert!(cfg.file.allow_insecure_auth_secrets);
        let sc = &cfg.file.config.scrape_configs[0];
        assert_eq!(sc.rest["honor_labels"], serde_yaml::Value::Bool(true));
        assert_eq!(sc.rest["sample_limit"], serde_yaml::Value::Number(8.into()));
        assert_eq!(sc.relabel_configs[0].modulus, Some(8));
    }
}
