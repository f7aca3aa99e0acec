//! Prometheus Operator resources (ServiceMonitor, PodMonitor, ScrapeConfig), written by hand for
//! the fields the allocator reads, and their translation into jobs the way the operator
//! generates scrape configs: job names `serviceMonitor/<ns>/<name>/<i>`,
//! `podMonitor/<ns>/<name>/<i>`, `scrapeConfig/<ns>/<name>`, the operator's target labels
//! (`namespace`, `service`, `pod`, `container`, `endpoint`, `job`) set by relabeling, then the
//! resource's own relabelings. Selection (label selector, namespaces, port) is done directly on
//! the discovered objects rather than with keep rules, which selects the same targets.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::selector::LabelSelector;
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
    /// Whether targets in `ns` are selected by a resource living in `own`.
    pub fn selects(&self, own: &str, ns: &str) -> bool {
        if self.any {
            true
        } else if self.match_names.is_empty() {
            ns == own
        } else {
            self.match_names.iter().any(|n| n == ns)
        }
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
    fn from(r: &CrRelabel) -> RuleSpec {
        RuleSpec {
            source_labels: r.source_labels.clone(),
            separator: r.separator.clone(),
            regex: r.regex.clone(),
            modulus: r.modulus,
            target_label: r.target_label.clone(),
            replacement: r.replacement.clone(),
            action: r.action.clone(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    pub port: Option<String>,
    pub target_port: Option<serde_json::Value>,
    pub path: Option<String>,
    pub scheme: Option<String>,
    pub interval: Option<String>,
    pub scrape_timeout: Option<String>,
    #[serde(default)]
    pub params: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    pub relabelings: Vec<CrRelabel>,
    #[serde(default)]
    pub metric_relabelings: Vec<CrRelabel>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    pub job_label: Option<String>,
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub namespace_selector: NamespaceSelector,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodMonitorSpec {
    pub job_label: Option<String>,
    #[serde(default)]
    pub selector: LabelSelector,
    #[serde(default)]
    pub namespace_selector: NamespaceSelector,
    #[serde(default)]
    pub pod_metrics_endpoints: Vec<Endpoint>,
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
pub struct ScrapeConfigSpec {
    #[serde(default)]
    pub static_configs: Vec<CrStaticConfig>,
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
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Prober {
    pub url: String,
    pub scheme: Option<String>,
    pub path: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeStatic {
    #[serde(default, rename = "static")]
    pub targets: Vec<String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub relabeling_configs: Vec<CrRelabel>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeTargets {
    pub static_config: Option<ProbeStatic>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProbeSpec {
    #[serde(default)]
    pub prober: Prober,
    pub module: Option<String>,
    pub interval: Option<String>,
    pub scrape_timeout: Option<String>,
    #[serde(default)]
    pub targets: ProbeTargets,
}

/// A static Probe as the operator generates it: the probed address becomes `__param_target`
/// and `instance`, the prober becomes `__address__`, then the probe's own relabelings.
pub fn probe_rules(spec: &ProbeSpec) -> Vec<RuleSpec> {
    let mut rules = vec![
        replace("__address__", "__param_target"),
        replace("__param_target", "instance"),
        set("__address__", &spec.prober.url),
    ];
    if let Some(s) = &spec.targets.static_config {
        rules.extend(s.relabeling_configs.iter().map(RuleSpec::from));
    }
    rules
}

fn replace(source: &str, target: &str) -> RuleSpec {
    RuleSpec {
        source_labels: vec![source.into()],
        target_label: Some(target.into()),
        action: Some("replace".into()),
        ..RuleSpec::default()
    }
}

fn set(target: &str, value: &str) -> RuleSpec {
    RuleSpec {
        target_label: Some(target.into()),
        replacement: Some(value.into()),
        action: Some("replace".into()),
        ..RuleSpec::default()
    }
}

/// The operator's target-label rules for a ServiceMonitor endpoint, then the endpoint's own.
pub fn service_monitor_rules(spec: &ServiceMonitorSpec, ep: &Endpoint) -> Vec<RuleSpec> {
    let rules = vec![
        replace("__meta_kubernetes_namespace", "namespace"),
        replace("__meta_kubernetes_service_name", "service"),
        replace("__meta_kubernetes_pod_name", "pod"),
        replace("__meta_kubernetes_pod_container_name", "container"),
        replace("__meta_kubernetes_service_name", "job"),
    ];
    finish(rules, "service", spec.job_label.as_deref(), ep)
}

/// The rules every generated job ends with: `job` from the object's `jobLabel` label when it has
/// one, `endpoint` from the port name, then the endpoint's own relabelings.
fn finish(
    mut rules: Vec<RuleSpec>,
    object: &str,
    job_label: Option<&str>,
    ep: &Endpoint,
) -> Vec<RuleSpec> {
    if let Some(label) = job_label {
        let source = format!(
            "__meta_kubernetes_{object}_label_{}",
            super::meta::sanitize(label)
        );
        rules.push(RuleSpec {
            regex: Some("(.+)".into()),
            ..replace(&source, "job")
        });
    }
    if let Some(port) = &ep.port {
        rules.push(set("endpoint", port));
    }
    rules.extend(ep.relabelings.iter().map(RuleSpec::from));
    rules
}

/// The operator's target-label rules for a PodMonitor endpoint, then the endpoint's own.
pub fn pod_monitor_rules(
    ns: &str,
    name: &str,
    spec: &PodMonitorSpec,
    ep: &Endpoint,
) -> Vec<RuleSpec> {
    let rules = vec![
        replace("__meta_kubernetes_namespace", "namespace"),
        replace("__meta_kubernetes_pod_container_name", "container"),
        replace("__meta_kubernetes_pod_name", "pod"),
        set("job", &format!("{ns}/{name}")),
    ];
    finish(rules, "pod", spec.job_label.as_deref(), ep)
}

/// Whether an EndpointSlice port (name, number) is the one a ServiceMonitor endpoint names.
pub fn port_matches(ep: &Endpoint, name: &str, number: &str) -> bool {
    match (&ep.port, &ep.target_port) {
        (Some(p), _) => p == name,
        (None, Some(serde_json::Value::Number(n))) => n.to_string() == number,
        (None, Some(serde_json::Value::String(s))) => s == name || s == number,
        _ => true,
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
        assert!(any.selects("shop", "other"));
        let names = NamespaceSelector {
            match_names: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert!(names.selects("shop", "b") && !names.selects("shop", "shop"));
    }

    #[test]
    fn crd_specs_parse_from_operator_json_and_give_the_operators_target_labels() {
        let spec: ServiceMonitorSpec = serde_json::from_value(serde_json::json!({
            "jobLabel": "app.kubernetes.io/name",
            "selector": {"matchLabels": {"app": "api"}},
            "namespaceSelector": {"matchNames": ["shop"]},
            "endpoints": [{"port": "metrics", "interval": "15s", "path": "/metrics",
                "relabelings": [{"sourceLabels": ["__meta_kubernetes_pod_node_name"], "targetLabel": "node"}],
                "unknownField": true}]
        }))
        .unwrap();
        let rules = service_monitor_rules(&spec, &spec.endpoints[0]);
        let targets: Vec<_> = rules
            .iter()
            .filter_map(|r| r.target_label.clone())
            .collect();
        assert_eq!(
            targets,
            [
                "namespace",
                "service",
                "pod",
                "container",
                "job",
                "job",
                "endpoint",
                "node"
            ]
        );
        assert!(port_matches(&spec.endpoints[0], "metrics", "9090"));
        assert!(!port_matches(&spec.endpoints[0], "web", "80"));
        let by_number = Endpoint {
            target_port: Some(serde_json::json!(9090)),
            ..Default::default()
        };
        assert!(port_matches(&by_number, "x", "9090") && !port_matches(&by_number, "x", "80"));
    }
}
