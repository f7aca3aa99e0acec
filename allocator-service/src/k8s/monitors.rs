//! Prometheus Operator resources (ServiceMonitor, PodMonitor, Probe, ScrapeConfig), written by
//! hand for the fields the allocator reads, and their translation into jobs exactly as
//! prometheus-operator's `ConfigGenerator` writes them (the version the Go allocator pins): job
//! names, service discovery (role and namespaces), and the full `relabel_configs` in the same
//! order, including the selector keep/drop rules, the target labels, the scrape class's
//! relabelings and the `$(SHARD)` rules. Selection of targets is done by those rules, as in the
//! Go allocator, not by looking at the objects; `testdata/operator-vectors.json` (written by the
//! operator's own code) is the reference the tests hold this module to.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use super::client::Settings;
use super::meta::{sanitize, Labels};
use super::selector::{LabelSelector, RoleSelectors, SelectorEntry};
use crate::relabel::RuleSpec;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceSelector {
    #[serde(default)]
    pub any: bool,
    #[serde(default)]
    pub match_names: Vec<String>,
}

impl NamespaceSelector {
    /// The `namespaces.names` of the generated Kubernetes SD config for a resource living in
    /// `own`: empty means every namespace.
    pub fn names(&self, own: &str) -> Vec<String> {
        if self.any {
            Vec::new()
        } else if self.match_names.is_empty() {
            vec![own.to_owned()]
        } else {
            self.match_names.clone()
        }
    }

    /// Whether targets in `ns` are selected by a resource living in `own`.
    pub fn selects(&self, own: &str, ns: &str) -> bool {
        let names = self.names(own);
        names.is_empty() || names.iter().any(|n| n == ns)
    }
}

/// A relabeling as the operator's CRDs spell it (camelCase).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrRelabel {
    #[serde(default)]
    pub source_labels: Vec<String>,
    pub separator: Option<String>,
    pub target_label: Option<String>,
    pub regex: Option<String>,
    pub modulus: Option<u64>,
    pub replacement: Option<String>,
    pub action: Option<String>,
}

impl From<&CrRelabel> for RuleSpec {
    /// As the generator writes it: empty strings and a zero modulus are left out, the action is
    /// lower-cased (the CRDs accept `Replace`, `LabelMap`, ...).
    fn from(r: &CrRelabel) -> RuleSpec {
        let nonempty = |s: &Option<String>| s.clone().filter(|s| !s.is_empty());
        RuleSpec {
            source_labels: r.source_labels.clone(),
            separator: r.separator.clone(),
            regex: nonempty(&r.regex),
            modulus: r.modulus.filter(|m| *m != 0),
            target_label: nonempty(&r.target_label),
            replacement: r.replacement.clone(),
            action: nonempty(&r.action).map(|a| a.to_lowercase()),
        }
    }
}

fn rules(rs: &[CrRelabel]) -> impl Iterator<Item = RuleSpec> + '_ {
    rs.iter().map(RuleSpec::from)
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AttachMetadata {
    pub node: Option<bool>,
}

/// The scrape limits, protocols and histogram settings every resource kind has at the level of
/// its spec, which the generator copies into each of its jobs in Prometheus' spelling.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeLimits {
    pub sample_limit: Option<u64>,
    pub target_limit: Option<u64>,
    pub label_limit: Option<u64>,
    pub label_name_length_limit: Option<u64>,
    pub label_value_length_limit: Option<u64>,
    pub keep_dropped_targets: Option<u64>,
    #[serde(default)]
    pub scrape_protocols: Vec<String>,
    pub fallback_scrape_protocol: Option<String>,
    pub scrape_native_histograms: Option<bool>,
    pub scrape_classic_histograms: Option<bool>,
    pub native_histogram_bucket_limit: Option<u64>,
    #[serde(rename = "convertClassicHistogramsToNHCB")]
    pub convert_classic_histograms_to_nhcb: Option<bool>,
    /// A `ByteSize` (`10MB`, `1.5GiB`); Prometheus' loader prints it in its own form when the
    /// served config is completed. ServiceMonitors, PodMonitors and ScrapeConfigs only.
    pub body_size_limit: Option<String>,
    /// A `resource.Quantity`, written as the float the generator makes of it.
    pub native_histogram_min_bucket_factor: Option<Value>,
}

impl ScrapeLimits {
    /// The fields as the generator writes them (`AddLimitsToYAML`, `addScrapeProtocols`,
    /// `addFallbackScrapeProtocol` with the scrape class's fallback, `addNativeHistogramConfig`
    /// for Prometheus 3).
    fn prometheus(&self, class: Option<&ScrapeClass>, out: &mut Map<String, Value>) {
        for (key, v) in [
            ("sample_limit", self.sample_limit),
            ("target_limit", self.target_limit),
            ("label_limit", self.label_limit),
            ("label_name_length_limit", self.label_name_length_limit),
            ("label_value_length_limit", self.label_value_length_limit),
            ("keep_dropped_targets", self.keep_dropped_targets),
            (
                "native_histogram_bucket_limit",
                self.native_histogram_bucket_limit,
            ),
        ] {
            // Prometheus leaves a zero limit out (`omitempty`): zero means no limit.
            if let Some(v) = v.filter(|v| *v != 0) {
                out.insert(key.into(), v.into());
            }
        }
        if !self.scrape_protocols.is_empty() {
            out.insert(
                "scrape_protocols".into(),
                self.scrape_protocols.clone().into(),
            );
        }
        let fallback = self
            .fallback_scrape_protocol
            .clone()
            .or_else(|| class.and_then(|c| c.fallback_scrape_protocol.clone()));
        if let Some(f) = fallback {
            out.insert("fallback_scrape_protocol".into(), f.into());
        }
        for (key, v) in [
            ("scrape_native_histograms", self.scrape_native_histograms),
            (
                "always_scrape_classic_histograms",
                self.scrape_classic_histograms,
            ),
            (
                "convert_classic_histograms_to_nhcb",
                self.convert_classic_histograms_to_nhcb,
            ),
        ] {
            if let Some(v) = v {
                out.insert(key.into(), v.into());
            }
        }
        if let Some(b) = self.body_size_limit.as_ref().filter(|b| !b.is_empty()) {
            out.insert("body_size_limit".into(), b.clone().into());
        }
        // A value that does not convert was refused with the resource (`support::unsupported`).
        let factor = self
            .native_histogram_min_bucket_factor
            .as_ref()
            .and_then(|q| super::quantity::approximate_f64(q).ok());
        if let Some(f) = factor.filter(|f| *f != 0.0) {
            // A whole number is served as one (`2`, as Go's encoders print it, not `2.0`).
            let v = if f.fract() == 0.0 && f.abs() < 9e15 {
                (f as i64).into()
            } else {
                f.into()
            };
            out.insert("native_histogram_min_bucket_factor".into(), v);
        }
    }
}

/// A proxy for the scrapes (`ProxyConfig`, inlined in endpoints, probers and ScrapeConfigs).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Proxy {
    pub proxy_url: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_environment: Option<bool>,
    /// Header name → Secret key references (read when the settings are rendered).
    pub proxy_connect_header: Option<Value>,
}

impl Proxy {
    /// The fields as `addProxyConfigtoYaml` writes them, but the connect headers (Secrets).
    fn prometheus(&self, out: &mut Map<String, Value>) {
        if let Some(u) = &self.proxy_url {
            out.insert("proxy_url".into(), u.clone().into());
        }
        if let Some(n) = &self.no_proxy {
            out.insert("no_proxy".into(), n.clone().into());
        }
        if let Some(e) = self.proxy_from_environment {
            out.insert("proxy_from_environment".into(), e.into());
        }
    }
}

/// A scrape class of the allocator's `prometheus_cr.scrape_classes` (the Prometheus CRD's
/// `scrapeClasses`): relabelings applied after the generated ones, and TLS, authorization and
/// `attachMetadata` defaults for resources that name it or, for the default class, name none.
/// Every field of the operator's `ScrapeClass` (v0.92) is read; another one is a configuration
/// error, not silently ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScrapeClass {
    pub name: String,
    #[serde(default)]
    pub default: bool,
    #[serde(default)]
    pub relabelings: Vec<CrRelabel>,
    #[serde(default)]
    pub metric_relabelings: Vec<CrRelabel>,
    #[serde(default)]
    pub tls_config: Option<serde_json::Value>,
    #[serde(default)]
    pub authorization: Option<serde_json::Value>,
    #[serde(default)]
    pub attach_metadata: Option<AttachMetadata>,
    #[serde(default)]
    pub fallback_scrape_protocol: Option<String>,
}

/// The class a resource uses: the one it names when it exists, else the default one, else none
/// (the generator's `getScrapeClassOrDefault`).
pub fn scrape_class<'a>(classes: &'a [ScrapeClass], name: Option<&str>) -> Option<&'a ScrapeClass> {
    name.and_then(|n| classes.iter().find(|c| c.name == n))
        .or_else(|| classes.iter().find(|c| c.default))
}

/// Fields shared by ServiceMonitor endpoints and PodMonitor endpoints.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub port: Option<String>,
    /// PodMonitor only.
    pub port_number: Option<i64>,
    pub target_port: Option<serde_json::Value>,
    pub path: Option<String>,
    pub scheme: Option<String>,
    pub interval: Option<String>,
    pub scrape_timeout: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: Option<bool>,
    pub honor_timestamps: Option<bool>,
    pub track_timestamps_staleness: Option<bool>,
    pub filter_running: Option<bool>,
    pub tls_config: Option<serde_json::Value>,
    pub authorization: Option<serde_json::Value>,
    /// Deprecated: a Bearer token from a Secret.
    pub bearer_token_secret: Option<serde_json::Value>,
    /// ServiceMonitor only (deprecated): a Bearer token read from a file by the scraper.
    pub bearer_token_file: Option<String>,
    #[serde(flatten)]
    pub proxy: Proxy,
    pub basic_auth: Option<serde_json::Value>,
    pub oauth2: Option<serde_json::Value>,
    pub follow_redirects: Option<bool>,
    #[serde(rename = "enableHttp2")]
    pub enable_http2: Option<bool>,
    #[serde(default)]
    pub relabelings: Vec<CrRelabel>,
    #[serde(default)]
    pub metric_relabelings: Vec<CrRelabel>,
}

impl Endpoint {
    /// `targetPort` as the generator prints it (`IntOrString.String()`), when set.
    fn target_port(&self) -> Option<String> {
        match &self.target_port {
            Some(serde_json::Value::Number(n)) => Some(n.to_string()),
            Some(serde_json::Value::String(s)) => Some(s.clone()),
            _ => None,
        }
    }

    fn port_name(&self) -> Option<&str> {
        self.port.as_deref().filter(|p| !p.is_empty())
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    #[serde(default)]
    pub job_label: String,
    #[serde(default)]
    pub target_labels: Vec<String>,
    #[serde(default)]
    pub pod_target_labels: Vec<String>,
    #[serde(default)]
    pub selector: LabelSelector,
    pub selector_mechanism: Option<String>,
    #[serde(default)]
    pub namespace_selector: NamespaceSelector,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(rename = "scrapeClass")]
    pub scrape_class: Option<String>,
    pub attach_metadata: Option<AttachMetadata>,
    pub service_discovery_role: Option<String>,
    #[serde(flatten)]
    pub limits: ScrapeLimits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    #[serde(default)]
    pub job_label: String,
    #[serde(default)]
    pub pod_target_labels: Vec<String>,
    #[serde(default)]
    pub selector: LabelSelector,
    pub selector_mechanism: Option<String>,
    #[serde(default)]
    pub namespace_selector: NamespaceSelector,
    #[serde(default)]
    pub pod_metrics_endpoints: Vec<Endpoint>,
    #[serde(rename = "scrapeClass")]
    pub scrape_class: Option<String>,
    pub attach_metadata: Option<AttachMetadata>,
    #[serde(flatten)]
    pub limits: ScrapeLimits,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrStaticConfig {
    #[serde(default)]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrFileSd {
    #[serde(default)]
    pub files: Vec<String>,
    pub refresh_interval: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CrHttpSd {
    pub url: String,
    pub refresh_interval: Option<String>,
    pub authorization: Option<serde_json::Value>,
    pub basic_auth: Option<serde_json::Value>,
    pub tls_config: Option<serde_json::Value>,
    /// Not supported by this allocator: a resource that sets it is rejected.
    pub oauth2: Option<serde_json::Value>,
    /// Not supported by this allocator: a resource that sets it is rejected.
    #[serde(rename = "proxyURL", alias = "proxyUrl")]
    pub proxy_url: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrKubernetesSd {
    pub role: String,
    pub namespaces: Option<CrSdNamespaces>,
    #[serde(default)]
    pub selectors: Vec<serde_json::Value>,
    pub attach_metadata: Option<AttachMetadata>,
    pub api_server: Option<String>,
}

impl CrKubernetesSd {
    /// Its `selectors`, checked and parsed; an error names the entry and what is wrong.
    pub fn role_selectors(&self) -> Result<RoleSelectors, String> {
        role_selectors(&self.role, &self.selectors)
    }
}

/// The `selectors` of a ScrapeConfig's Kubernetes SD entry of `role` (as JSON), checked and
/// parsed; an error names the entry (`selectors[i].<field>: ...`).
pub fn role_selectors(
    role: &str,
    selectors: &[serde_json::Value],
) -> Result<RoleSelectors, String> {
    let text = |v: &serde_json::Value, key: &str| {
        v.get(key)
            .and_then(|x| x.as_str())
            .unwrap_or_default()
            .to_owned()
    };
    let owned: Vec<(String, String, String)> = selectors
        .iter()
        .map(|v| (text(v, "role"), text(v, "label"), text(v, "field")))
        .collect();
    let entries: Vec<SelectorEntry<'_>> = owned
        .iter()
        .map(|(role, label, field)| SelectorEntry { role, label, field })
        .collect();
    RoleSelectors::parse(role, &entries).map_err(|(i, e)| format!("selectors[{i}].{e}"))
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CrSdNamespaces {
    #[serde(default)]
    pub names: Vec<String>,
    pub own_namespace: Option<bool>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ScrapeConfigSpec {
    pub job_name: Option<String>,
    #[serde(rename = "scrapeClass")]
    pub scrape_class: Option<String>,
    #[serde(default)]
    pub static_configs: Vec<CrStaticConfig>,
    #[serde(default, rename = "fileSDConfigs")]
    pub file_sd_configs: Vec<CrFileSd>,
    #[serde(default, rename = "httpSDConfigs")]
    pub http_sd_configs: Vec<CrHttpSd>,
    #[serde(default, rename = "kubernetesSDConfigs")]
    pub kubernetes_sd_configs: Vec<CrKubernetesSd>,
    #[serde(default)]
    pub relabelings: Vec<CrRelabel>,
    #[serde(default)]
    pub metric_relabelings: Vec<CrRelabel>,
    pub metrics_path: Option<String>,
    pub scheme: Option<String>,
    pub scrape_interval: Option<String>,
    pub scrape_timeout: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    pub honor_labels: Option<bool>,
    pub honor_timestamps: Option<bool>,
    pub track_timestamps_staleness: Option<bool>,
    pub enable_compression: Option<bool>,
    #[serde(rename = "enableHTTP2")]
    pub enable_http2: Option<bool>,
    #[serde(flatten)]
    pub proxy: Proxy,
    #[serde(flatten)]
    pub limits: ScrapeLimits,
    pub tls_config: Option<serde_json::Value>,
    pub authorization: Option<serde_json::Value>,
    pub basic_auth: Option<serde_json::Value>,
    pub oauth2: Option<serde_json::Value>,
    /// `UTF8` or `Legacy`, written lower-cased.
    pub name_validation_scheme: Option<String>,
    /// `AllowUTF8`, `Underscores`, `Dots` or `Values`.
    pub name_escaping_scheme: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prober {
    pub url: String,
    pub scheme: Option<String>,
    pub path: Option<String>,
    #[serde(flatten)]
    pub proxy: Proxy,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStatic {
    #[serde(default, rename = "static")]
    pub targets: Vec<String>,
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub relabeling_configs: Vec<CrRelabel>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeIngress {
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub namespace_selector: NamespaceSelector,
    #[serde(default)]
    pub relabeling_configs: Vec<CrRelabel>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTargets {
    pub static_config: Option<ProbeStatic>,
    pub ingress: Option<ProbeIngress>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProbeParam {
    pub name: String,
    #[serde(default)]
    pub values: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    #[serde(default)]
    pub job_name: String,
    #[serde(default)]
    pub prober: Prober,
    #[serde(default)]
    pub module: String,
    #[serde(default)]
    pub params: Vec<ProbeParam>,
    pub interval: Option<String>,
    pub scrape_timeout: Option<String>,
    #[serde(default)]
    pub targets: ProbeTargets,
    #[serde(rename = "scrapeClass")]
    pub scrape_class: Option<String>,
    pub tls_config: Option<serde_json::Value>,
    pub authorization: Option<serde_json::Value>,
    pub basic_auth: Option<serde_json::Value>,
    pub oauth2: Option<serde_json::Value>,
    /// Deprecated: a Bearer token from a Secret.
    pub bearer_token_secret: Option<serde_json::Value>,
    pub follow_redirects: Option<bool>,
    #[serde(rename = "enableHttp2")]
    pub enable_http2: Option<bool>,
    #[serde(default)]
    pub metric_relabelings: Vec<CrRelabel>,
    #[serde(flatten)]
    pub limits: ScrapeLimits,
}

/// Where a generated job's targets come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Prometheus' Kubernetes discovery of `role` in `namespaces` (empty: all).
    Kubernetes {
        role: String,
        namespaces: Vec<String>,
        attach_node: bool,
        /// A ScrapeConfig's `selectors` (the operator's other resources have none); boxed, as
        /// the largest of the variants by far.
        selectors: Box<RoleSelectors>,
    },
    /// Fixed groups (`static_configs`), `__address__` merged into each.
    Static(Vec<Labels>),
    /// `file_sd_configs` files (the last path component may hold `*`).
    File(Vec<String>),
    /// `httpSDConfigs`: fetched by the allocator (credentials read from the resource's namespace).
    Http(CrHttpSd),
}

/// A job as the operator generates it, before its targets are known.
#[derive(Debug, Clone)]
pub struct JobDef {
    pub name: String,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub path: Option<String>,
    pub scheme: Option<String>,
    pub params: BTreeMap<String, Vec<String>>,
    pub rules: Vec<RuleSpec>,
    pub sources: Vec<Source>,
    /// Scrape settings that do not affect targets (TLS, authorization, metric relabelings,
    /// ...), with the scrape class's merged in, as the resource spells them.
    pub settings: Settings,
}

fn rule(src: &[&str], target: &str) -> RuleSpec {
    RuleSpec {
        source_labels: src.iter().map(|s| s.to_string()).collect(),
        target_label: Some(target.into()),
        ..RuleSpec::default()
    }
}

fn set(target: &str, value: &str) -> RuleSpec {
    RuleSpec {
        target_label: Some(target.into()),
        replacement: Some(value.into()),
        ..RuleSpec::default()
    }
}

fn filter(action: &str, src: &[String], regex: String) -> RuleSpec {
    RuleSpec {
        action: Some(action.into()),
        source_labels: src.to_vec(),
        regex: Some(regex),
        ..RuleSpec::default()
    }
}

/// `source_labels: [job]` → `__tmp_prometheus_job_name`, the first rule of every job.
fn init_rules() -> Vec<RuleSpec> {
    vec![rule(&["job"], "__tmp_prometheus_job_name")]
}

/// The keep/drop rules that select objects of `kind` (`service`, `pod`, `ingress`) by label.
fn selector_rules(kind: &str, sel: &LabelSelector) -> Vec<RuleSpec> {
    let label = |k: &str| format!("__meta_kubernetes_{kind}_label_{}", sanitize(k));
    let present = |k: &str| format!("__meta_kubernetes_{kind}_labelpresent_{}", sanitize(k));
    let mut out = Vec::new();
    for (k, v) in &sel.match_labels {
        out.push(filter(
            "keep",
            &[label(k), present(k)],
            format!("({v});true"),
        ));
    }
    for e in &sel.match_expressions {
        let values = format!("({});true", e.values.join("|"));
        match e.operator.as_str() {
            "In" => out.push(filter("keep", &[label(&e.key), present(&e.key)], values)),
            "NotIn" => out.push(filter("drop", &[label(&e.key), present(&e.key)], values)),
            "Exists" => out.push(filter("keep", &[present(&e.key)], "true".into())),
            "DoesNotExist" => out.push(filter("drop", &[present(&e.key)], "true".into())),
            _ => {}
        }
    }
    out
}

fn target_label_rule(source: String, target: &str) -> RuleSpec {
    RuleSpec {
        regex: Some("(.+)".into()),
        replacement: Some("${1}".into()),
        ..rule(&[source.as_str()], target)
    }
}

fn running_filter() -> RuleSpec {
    filter(
        "drop",
        &["__meta_kubernetes_pod_phase".into()],
        "(Failed|Succeeded)".into(),
    )
}

/// The `$(SHARD)` rules (one shard): hash `label` into `__tmp_hash`, keep this shard's
/// targets unless sharding is disabled.
fn sharding_rules(label: &str) -> Vec<RuleSpec> {
    vec![
        RuleSpec {
            source_labels: vec![label.into(), "__tmp_hash".into()],
            target_label: Some("__tmp_hash".into()),
            regex: Some("(.+);".into()),
            replacement: Some("$1".into()),
            action: Some("replace".into()),
            ..RuleSpec::default()
        },
        RuleSpec {
            source_labels: vec!["__tmp_hash".into()],
            target_label: Some("__tmp_hash".into()),
            modulus: Some(1),
            action: Some("hashmod".into()),
            ..RuleSpec::default()
        },
        filter(
            "keep",
            &["__tmp_hash".into(), "__tmp_disable_sharding".into()],
            "$(SHARD);|.+;.+".into(),
        ),
    ]
}

/// What the Go allocator wraps every job's rules in before filtering (its
/// `addNoShardingConfig`): set `__tmp_disable_sharding` first so the `$(SHARD)` keep rule
/// passes, drop it last.
pub fn without_sharding(rules: &[RuleSpec]) -> Vec<RuleSpec> {
    let mut out = vec![set("__tmp_disable_sharding", "true")];
    out.extend(rules.iter().cloned());
    out.push(RuleSpec {
        action: Some("labeldrop".into()),
        regex: Some("__tmp_disable_sharding".into()),
        ..RuleSpec::default()
    });
    out
}

fn uses_relabel_selection(mechanism: &Option<String>) -> bool {
    mechanism.as_deref().is_none_or(|m| m == "RelabelConfig")
}

/// What a resource's TLS, authorization, basic auth and OAuth2 fields give a job's settings,
/// with its scrape class's TLS and authorization when it has none, and the class's metric
/// relabelings before its own (as the generator orders them).
struct Client<'a> {
    tls: &'a Option<serde_json::Value>,
    authorization: &'a Option<serde_json::Value>,
    basic_auth: &'a Option<serde_json::Value>,
    oauth2: &'a Option<serde_json::Value>,
    metric_relabelings: &'a [CrRelabel],
    limits: &'a ScrapeLimits,
    proxy: &'a Proxy,
}

fn settings(ns: &str, c: Client<'_>, class: Option<&ScrapeClass>) -> Settings {
    let mut metric_relabelings: Vec<RuleSpec> = class
        .into_iter()
        .flat_map(|c| rules(&c.metric_relabelings))
        .collect();
    metric_relabelings.extend(rules(c.metric_relabelings));
    let mut plain = Map::new();
    c.limits.prometheus(class, &mut plain);
    c.proxy.prometheus(&mut plain);
    Settings {
        plain,
        proxy_connect_header: c.proxy.proxy_connect_header.clone(),
        namespace: ns.to_owned(),
        tls_config: merge_tls(c.tls, class.and_then(|c| c.tls_config.as_ref())),
        authorization: c.authorization.clone(),
        class_authorization: class.and_then(|c| c.authorization.clone()),
        basic_auth: c.basic_auth.clone(),
        oauth2: c.oauth2.clone(),
        metric_relabelings,
        ..Settings::default()
    }
}

/// A resource's `tlsConfig` with its scrape class's (`mergeTLSConfigWithScrapeClass`): the
/// class's when the resource has none (or an empty one); else the resource's, with the class's
/// CA, certificate and key files for each of them the resource names neither as a file nor
/// from a Secret/ConfigMap.
fn merge_tls(own: &Option<Value>, class: Option<&Value>) -> Option<Value> {
    let own = own
        .as_ref()
        .filter(|t| t.as_object().is_none_or(|m| !m.is_empty()));
    let (Some(own), Some(class)) = (own, class) else {
        return own.or(class).cloned();
    };
    let mut merged = own.clone();
    if let (Some(m), Some(c)) = (merged.as_object_mut(), class.as_object()) {
        for (file, asset) in [
            ("caFile", "ca"),
            ("certFile", "cert"),
            ("keyFile", "keySecret"),
        ] {
            let named = m
                .get(file)
                .and_then(Value::as_str)
                .is_some_and(|f| !f.is_empty())
                || m.get(asset)
                    .is_some_and(|a| a.as_object().is_none_or(|o| !o.is_empty()));
            if !named {
                if let Some(f) = c.get(file) {
                    m.insert(file.into(), f.clone());
                }
            }
        }
    }
    Some(merged)
}

/// The settings of a ServiceMonitor or PodMonitor endpoint.
fn endpoint_settings(
    ns: &str,
    ep: &Endpoint,
    limits: &ScrapeLimits,
    class: Option<&ScrapeClass>,
) -> Settings {
    let client = Client {
        tls: &ep.tls_config,
        authorization: &ep.authorization,
        basic_auth: &ep.basic_auth,
        oauth2: &ep.oauth2,
        metric_relabelings: &ep.metric_relabelings,
        limits,
        proxy: &ep.proxy,
    };
    let mut s = settings(ns, client, class);
    if let Some(t) = ep.track_timestamps_staleness {
        s.plain
            .insert("track_timestamps_staleness".into(), t.into());
    }
    Settings {
        bearer_token_file: ep.bearer_token_file.clone().filter(|f| !f.is_empty()),
        honor_labels: ep.honor_labels,
        honor_timestamps: ep.honor_timestamps,
        enable_http2: ep.enable_http2,
        follow_redirects: ep.follow_redirects,
        bearer_token_secret: ep.bearer_token_secret.clone(),
        ..s
    }
}

fn attach_node(own: &Option<AttachMetadata>, class: Option<&ScrapeClass>) -> bool {
    own.as_ref()
        .or_else(|| class.and_then(|c| c.attach_metadata.as_ref()))
        .and_then(|a| a.node)
        .unwrap_or(false)
}

/// The `serviceDiscoveryRole` of a ServiceMonitor that discovers with role `endpoints` (any
/// other value, or none, discovers with `endpointslice`, as the Go allocator's generator runs).
pub const ENDPOINTS_ROLE: &str = "Endpoints";

/// The jobs of a ServiceMonitor, one per endpoint (`generateServiceMonitorConfig`).
pub fn service_monitor_jobs(
    ns: &str,
    name: &str,
    spec: &ServiceMonitorSpec,
    classes: &[ScrapeClass],
) -> Vec<JobDef> {
    let class = scrape_class(classes, spec.scrape_class.as_deref());
    let role = match spec.service_discovery_role.as_deref() {
        Some(ENDPOINTS_ROLE) => "endpoints",
        _ => "endpointslice",
    };
    let slice = role == "endpointslice";
    spec.endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let mut r = init_rules();
            if uses_relabel_selection(&spec.selector_mechanism) {
                r.extend(selector_rules("service", &spec.selector));
            }
            let port_label = if slice {
                "__meta_kubernetes_endpointslice_port_name"
            } else {
                "__meta_kubernetes_endpoint_port_name"
            };
            if let Some(port) = ep.port_name() {
                r.push(filter("keep", &[port_label.into()], port.into()));
            } else if let Some(tp) = &ep.target_port {
                match tp {
                    serde_json::Value::String(s) if !s.is_empty() => r.push(filter(
                        "keep",
                        &["__meta_kubernetes_pod_container_port_name".into()],
                        s.clone(),
                    )),
                    serde_json::Value::Number(n) if n.as_i64() != Some(0) => r.push(filter(
                        "keep",
                        &["__meta_kubernetes_pod_container_port_number".into()],
                        n.to_string(),
                    )),
                    _ => {}
                }
            }
            let kind = if slice {
                [
                    "__meta_kubernetes_endpointslice_address_target_kind",
                    "__meta_kubernetes_endpointslice_address_target_name",
                ]
            } else {
                [
                    "__meta_kubernetes_endpoint_address_target_kind",
                    "__meta_kubernetes_endpoint_address_target_name",
                ]
            };
            for (regex, target) in [("Node;(.*)", "node"), ("Pod;(.*)", "pod")] {
                r.push(RuleSpec {
                    separator: Some(";".into()),
                    regex: Some(regex.into()),
                    replacement: Some("${1}".into()),
                    ..rule(&kind, target)
                });
            }
            r.push(rule(&["__meta_kubernetes_namespace"], "namespace"));
            r.push(rule(&["__meta_kubernetes_service_name"], "service"));
            r.push(rule(&["__meta_kubernetes_pod_name"], "pod"));
            r.push(rule(&["__meta_kubernetes_pod_container_name"], "container"));
            if ep.filter_running.unwrap_or(true) {
                r.push(running_filter());
            }
            for l in &spec.target_labels {
                r.push(target_label_rule(
                    format!("__meta_kubernetes_service_label_{}", sanitize(l)),
                    &sanitize(l),
                ));
            }
            for l in &spec.pod_target_labels {
                r.push(target_label_rule(
                    format!("__meta_kubernetes_pod_label_{}", sanitize(l)),
                    &sanitize(l),
                ));
            }
            r.push(RuleSpec {
                replacement: Some("${1}".into()),
                ..rule(&["__meta_kubernetes_service_name"], "job")
            });
            if !spec.job_label.is_empty() {
                r.push(target_label_rule(
                    format!(
                        "__meta_kubernetes_service_label_{}",
                        sanitize(&spec.job_label)
                    ),
                    "job",
                ));
            }
            if let Some(port) = ep.port_name() {
                r.push(set("endpoint", port));
            } else if let Some(tp) = ep.target_port().filter(|t| !t.is_empty()) {
                r.push(set("endpoint", &tp));
            }
            if let Some(c) = class {
                r.extend(rules(&c.relabelings));
            }
            r.extend(rules(&ep.relabelings));
            r.extend(sharding_rules("__address__"));
            JobDef {
                name: format!("serviceMonitor/{ns}/{name}/{i}"),
                interval: ep.interval.clone(),
                timeout: ep.scrape_timeout.clone(),
                // The generator writes no `metrics_path` for an empty one.
                path: ep.path.clone().filter(|p| !p.is_empty()),
                // The CRDs accept `HTTP`/`HTTPS`; the generator lower-cases them (`Scheme.String`).
                scheme: ep.scheme.as_ref().map(|s| s.to_lowercase()),
                params: ep.params.clone(),
                rules: r,
                sources: vec![Source::Kubernetes {
                    role: role.into(),
                    namespaces: spec.namespace_selector.names(ns),
                    attach_node: attach_node(&spec.attach_metadata, class),
                    selectors: Box::default(),
                }],
                settings: endpoint_settings(ns, ep, &spec.limits, class),
            }
        })
        .collect()
}

/// The jobs of a PodMonitor, one per endpoint (`generatePodMonitorConfig`).
pub fn pod_monitor_jobs(
    ns: &str,
    name: &str,
    spec: &PodMonitorSpec,
    classes: &[ScrapeClass],
) -> Vec<JobDef> {
    let class = scrape_class(classes, spec.scrape_class.as_deref());
    spec.pod_metrics_endpoints
        .iter()
        .enumerate()
        .map(|(i, ep)| {
            let mut r = init_rules();
            if ep.filter_running.unwrap_or(true) {
                r.push(running_filter());
            }
            if uses_relabel_selection(&spec.selector_mechanism) {
                r.extend(selector_rules("pod", &spec.selector));
            }
            let port_name = || vec!["__meta_kubernetes_pod_container_port_name".to_owned()];
            let port_number = || vec!["__meta_kubernetes_pod_container_port_number".to_owned()];
            if let Some(port) = ep.port_name() {
                r.push(filter("keep", &port_name(), port.into()));
            } else if let Some(n) = ep.port_number.filter(|n| *n != 0) {
                r.push(filter("keep", &port_number(), n.to_string()));
            } else if let Some(tp) = &ep.target_port {
                match tp {
                    serde_json::Value::String(s) if !s.is_empty() => {
                        r.push(filter("keep", &port_name(), s.clone()))
                    }
                    serde_json::Value::Number(n) if n.as_i64() != Some(0) => {
                        r.push(filter("keep", &port_number(), n.to_string()))
                    }
                    _ => {}
                }
            }
            r.push(rule(&["__meta_kubernetes_namespace"], "namespace"));
            r.push(rule(&["__meta_kubernetes_pod_container_name"], "container"));
            r.push(rule(&["__meta_kubernetes_pod_name"], "pod"));
            for l in &spec.pod_target_labels {
                r.push(target_label_rule(
                    format!("__meta_kubernetes_pod_label_{}", sanitize(l)),
                    &sanitize(l),
                ));
            }
            r.push(set("job", &format!("{ns}/{name}")));
            if !spec.job_label.is_empty() {
                r.push(target_label_rule(
                    format!("__meta_kubernetes_pod_label_{}", sanitize(&spec.job_label)),
                    "job",
                ));
            }
            if let Some(port) = ep.port_name() {
                r.push(set("endpoint", port));
            } else if let Some(tp) = ep.target_port().filter(|t| !t.is_empty()) {
                r.push(set("endpoint", &tp));
            }
            if let Some(c) = class {
                r.extend(rules(&c.relabelings));
            }
            r.extend(rules(&ep.relabelings));
            r.extend(sharding_rules("__address__"));
            JobDef {
                name: format!("podMonitor/{ns}/{name}/{i}"),
                interval: ep.interval.clone(),
                timeout: ep.scrape_timeout.clone(),
                // The generator writes no `metrics_path` for an empty one.
                path: ep.path.clone().filter(|p| !p.is_empty()),
                // The CRDs accept `HTTP`/`HTTPS`; the generator lower-cases them (`Scheme.String`).
                scheme: ep.scheme.as_ref().map(|s| s.to_lowercase()),
                params: ep.params.clone(),
                rules: r,
                sources: vec![Source::Kubernetes {
                    role: "pod".into(),
                    namespaces: spec.namespace_selector.names(ns),
                    attach_node: attach_node(&spec.attach_metadata, class),
                    selectors: Box::default(),
                }],
                settings: endpoint_settings(ns, ep, &spec.limits, class),
            }
        })
        .collect()
}

/// The job of a Probe (`generateProbeConfig`): static targets or Ingresses, probed through the
/// prober. None when it has neither.
pub fn probe_job(
    ns: &str,
    name: &str,
    spec: &ProbeSpec,
    classes: &[ScrapeClass],
) -> Option<JobDef> {
    let class = scrape_class(classes, spec.scrape_class.as_deref());
    let mut r = init_rules();
    if !spec.job_name.is_empty() {
        r.push(set("job", &spec.job_name));
    }
    let mut params = BTreeMap::new();
    if !spec.module.is_empty() {
        params.insert("module".to_owned(), vec![spec.module.clone()]);
    }
    for p in &spec.params {
        if !spec.module.is_empty() && p.name == "module" {
            continue;
        }
        params.insert(p.name.clone(), p.values.clone());
    }
    let class_rules = || class.into_iter().flat_map(|c| rules(&c.relabelings));
    let sources = if let Some(st) = &spec.targets.static_config {
        let mut labels = st.labels.clone().unwrap_or_default();
        labels
            .entry("namespace".into())
            .or_insert_with(|| ns.to_owned());
        r.push(rule(&["__address__"], "__param_target"));
        r.push(rule(&["__param_target"], "instance"));
        r.push(set("__address__", &spec.prober.url));
        r.extend(class_rules());
        r.extend(rules(&st.relabeling_configs));
        let groups = st
            .targets
            .iter()
            .map(|t| {
                let mut l = labels.clone();
                l.insert("__address__".into(), t.clone());
                l
            })
            .collect();
        vec![Source::Static(groups)]
    } else if let Some(ing) = &spec.targets.ingress {
        r.extend(selector_rules("ingress", &ing.selector));
        r.push(RuleSpec {
            separator: Some(";".into()),
            regex: Some("(.+);(.+);(.+)".into()),
            replacement: Some("${1}://${2}${3}".into()),
            action: Some("replace".into()),
            ..rule(
                &[
                    "__meta_kubernetes_ingress_scheme",
                    "__address__",
                    "__meta_kubernetes_ingress_path",
                ],
                "__param_target",
            )
        });
        r.push(rule(&["__meta_kubernetes_namespace"], "namespace"));
        r.push(rule(&["__meta_kubernetes_ingress_name"], "ingress"));
        r.push(RuleSpec {
            separator: Some(";".into()),
            regex: Some("(.*)".into()),
            replacement: Some("$1".into()),
            action: Some("replace".into()),
            ..rule(&["__address__"], "__tmp_ingress_address")
        });
        r.push(rule(&["__param_target"], "instance"));
        r.push(set("__address__", &spec.prober.url));
        r.extend(class_rules());
        r.extend(rules(&ing.relabeling_configs));
        vec![Source::Kubernetes {
            role: "ingress".into(),
            namespaces: ing.namespace_selector.names(ns),
            attach_node: false,
            selectors: Box::default(),
        }]
    } else {
        return None;
    };
    r.extend(sharding_rules("__param_target"));
    Some(JobDef {
        name: format!("probe/{ns}/{name}"),
        interval: spec.interval.clone(),
        timeout: spec.scrape_timeout.clone(),
        path: Some(spec.prober.path.clone().unwrap_or_default()),
        scheme: spec.prober.scheme.as_ref().map(|s| s.to_lowercase()),
        params,
        rules: r,
        sources,
        settings: Settings {
            follow_redirects: spec.follow_redirects,
            enable_http2: spec.enable_http2,
            bearer_token_secret: spec.bearer_token_secret.clone(),
            ..settings(
                ns,
                Client {
                    tls: &spec.tls_config,
                    authorization: &spec.authorization,
                    basic_auth: &spec.basic_auth,
                    oauth2: &spec.oauth2,
                    metric_relabelings: &spec.metric_relabelings,
                    limits: &spec.limits,
                    proxy: &spec.prober.proxy,
                },
                class,
            )
        },
    })
}

/// The job of a ScrapeConfig (`generateScrapeConfig`, one shard: no `$(SHARD)` rules), for an
/// allocator running in `own_namespace` (what `namespaces.ownNamespace` means to Prometheus'
/// discovery: the namespace of the process that discovers, not the resource's).
pub fn scrape_config_job(
    ns: &str,
    name: &str,
    spec: &ScrapeConfigSpec,
    classes: &[ScrapeClass],
    own_namespace: &str,
) -> JobDef {
    let class = scrape_class(classes, spec.scrape_class.as_deref());
    let mut r = init_rules();
    if let Some(c) = class {
        r.extend(rules(&c.relabelings));
    }
    if let Some(job) = &spec.job_name {
        r.push(RuleSpec {
            action: Some("replace".into()),
            ..set("job", job)
        });
    }
    r.extend(rules(&spec.relabelings));
    let mut sources = Vec::new();
    if !spec.static_configs.is_empty() {
        sources.push(Source::Static(
            spec.static_configs
                .iter()
                .flat_map(|g| {
                    g.targets.iter().map(move |t| {
                        let mut l = g.labels.clone();
                        l.insert("__address__".into(), t.clone());
                        l
                    })
                })
                .collect(),
        ));
    }
    if !spec.file_sd_configs.is_empty() {
        sources.push(Source::File(
            spec.file_sd_configs
                .iter()
                .flat_map(|f| f.files.iter().cloned())
                .collect(),
        ));
    }
    for h in &spec.http_sd_configs {
        sources.push(Source::Http(h.clone()));
    }
    for k in &spec.kubernetes_sd_configs {
        let mut namespaces = k
            .namespaces
            .as_ref()
            .map(|n| n.names.clone())
            .unwrap_or_default();
        if k.namespaces.as_ref().and_then(|n| n.own_namespace) == Some(true) {
            namespaces.push(own_namespace.to_owned());
        }
        sources.push(Source::Kubernetes {
            role: k.role.to_lowercase(),
            namespaces,
            attach_node: k.attach_metadata.as_ref().and_then(|a| a.node) == Some(true),
            // Bad selectors were refused with the resource (`support::unsupported`).
            selectors: Box::new(k.role_selectors().unwrap_or_default()),
        });
    }
    JobDef {
        name: format!("scrapeConfig/{ns}/{name}"),
        interval: spec.scrape_interval.clone(),
        timeout: spec.scrape_timeout.clone(),
        path: spec.metrics_path.clone(),
        scheme: spec.scheme.as_ref().map(|s| s.to_lowercase()),
        params: spec.params.clone(),
        rules: r,
        sources,
        settings: {
            let mut s = settings(
                ns,
                Client {
                    tls: &spec.tls_config,
                    authorization: &spec.authorization,
                    basic_auth: &spec.basic_auth,
                    oauth2: &spec.oauth2,
                    metric_relabelings: &spec.metric_relabelings,
                    limits: &spec.limits,
                    proxy: &spec.proxy,
                },
                class,
            );
            for (key, v) in [
                (
                    "track_timestamps_staleness",
                    spec.track_timestamps_staleness,
                ),
                ("enable_compression", spec.enable_compression),
            ] {
                if let Some(v) = v {
                    s.plain.insert(key.into(), v.into());
                }
            }
            // `appendNameValidationScheme` / `appendNameEscapingScheme`.
            if let Some(v) = &spec.name_validation_scheme {
                s.plain.insert(
                    "metric_name_validation_scheme".into(),
                    v.to_lowercase().into(),
                );
            }
            let escaping = match spec.name_escaping_scheme.as_deref() {
                Some("AllowUTF8") => Some("allow-utf-8"),
                Some("Underscores") => Some("underscores"),
                Some("Dots") => Some("dots"),
                Some("Values") => Some("values"),
                _ => None,
            };
            if let Some(e) = escaping {
                s.plain
                    .insert("metric_name_escaping_scheme".into(), e.into());
            }
            Settings {
                honor_labels: spec.honor_labels,
                honor_timestamps: spec.honor_timestamps,
                enable_http2: spec.enable_http2,
                ..s
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_selector_defaults_to_the_resources_own_namespace() {
        let own = NamespaceSelector::default();
        assert!(own.selects("shop", "shop") && !own.selects("shop", "other"));
        let any = NamespaceSelector {
            any: true,
            ..Default::default()
        };
        assert!(any.selects("shop", "other") && any.names("shop").is_empty());
        let names = NamespaceSelector {
            match_names: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert!(names.selects("shop", "b") && !names.selects("shop", "shop"));
    }

    #[test]
    fn scrape_class_named_else_default_else_none() {
        let classes: Vec<ScrapeClass> = serde_json::from_value(serde_json::json!([
            {"name": "a", "default": true}, {"name": "b"}
        ]))
        .unwrap();
        assert_eq!(scrape_class(&classes, Some("b")).unwrap().name, "b");
        assert_eq!(scrape_class(&classes, Some("zz")).unwrap().name, "a");
        assert_eq!(scrape_class(&classes, None).unwrap().name, "a");
        assert!(scrape_class(&classes[1..], None).is_none());
    }

    #[test]
    fn a_scrape_class_field_this_allocator_does_not_read_is_an_error() {
        let e = serde_json::from_value::<ScrapeClass>(serde_json::json!(
            {"name": "a", "sigv4": {}}
        ))
        .unwrap_err();
        assert!(e.to_string().contains("unknown field `sigv4`"), "{e}");
    }

    #[test]
    fn cr_relabel_actions_are_lower_cased_and_empty_fields_dropped() {
        let r: CrRelabel = serde_json::from_value(serde_json::json!(
            {"action": "LabelMap", "regex": "", "targetLabel": "", "modulus": 0}
        ))
        .unwrap();
        let spec = RuleSpec::from(&r);
        assert_eq!(spec.action.as_deref(), Some("labelmap"));
        assert!(spec.regex.is_none() && spec.target_label.is_none() && spec.modulus.is_none());
    }
}
