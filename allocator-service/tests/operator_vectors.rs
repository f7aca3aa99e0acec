//! The service's jobs for Prometheus Operator resources against what prometheus-operator's own
//! `ConfigGenerator` (the version the Go allocator pins) generates for the same objects, and what
//! the Go allocator's filtering gives for the same discovered targets:
//! `testdata/operator-gen/vectors.json`, written by `make operator-vectors` from the upstream
//! Go modules. Selection, job names, scrape settings, every relabel rule, and the final label set
//! of every synthetic target (or that it is dropped) must be equal.

use std::collections::BTreeMap;

use allocator_service::config::PrometheusCr;
use allocator_service::discovery::{relabeled, JobSpec};
use allocator_service::k8s::client::{self, Assets};
use allocator_service::k8s::meta::Labels;
use allocator_service::k8s::monitors::{self, JobDef, Source};
use allocator_service::k8s::{finish_job, resource_selected, validate};
use allocator_service::relabel::RuleSpec;
use allocator_service::state::{job_config, JobConfig};
use serde_json::{Map, Value};

/// The case's Secrets and ConfigMaps, as the cluster would hold them.
struct CaseAssets {
    secrets: BTreeMap<(String, String, String), String>,
    config_maps: BTreeMap<(String, String, String), String>,
}

impl CaseAssets {
    fn of(case: &Value) -> CaseAssets {
        let read = |list: &Value, decode: bool| {
            let mut out = BTreeMap::new();
            for obj in list.as_array().into_iter().flatten() {
                let ns = obj["metadata"]["namespace"].as_str().unwrap().to_owned();
                let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
                for (k, v) in obj["data"].as_object().into_iter().flatten() {
                    let v = v.as_str().unwrap();
                    let v = if decode { base64(v) } else { v.to_owned() };
                    out.insert((ns.clone(), name.clone(), k.clone()), v);
                }
            }
            out
        };
        CaseAssets {
            secrets: read(&case["secrets"], true),
            config_maps: read(&case["configmaps"], false),
        }
    }
}

impl Assets for CaseAssets {
    fn secret(&self, ns: &str, name: &str, key: &str) -> Option<String> {
        self.secrets
            .get(&(ns.into(), name.into(), key.into()))
            .cloned()
    }
    fn config_map(&self, ns: &str, name: &str, key: &str) -> Option<String> {
        self.config_maps
            .get(&(ns.into(), name.into(), key.into()))
            .cloned()
    }
}

/// Standard base64 (a Secret's `data`), decoded to text.
fn base64(s: &str) -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s)
        .expect("base64");
    String::from_utf8(bytes).unwrap()
}

/// Keys of a loaded scrape config that this test compares elsewhere or not at all: the service
/// discovery sections (the service discovers for the collectors and serves HTTP SD instead) and
/// `relabel_configs` (compared rule by rule).
const NOT_COMPARED: [&str; 5] = [
    "kubernetes_sd_configs",
    "static_configs",
    "file_sd_configs",
    "http_sd_configs",
    "relabel_configs",
];

/// The value Prometheus' config loader gives a field the service's `/scrape_configs` entry
/// leaves out (the collector's loader fills the same), so leaving it out serves the same config.
fn loader_default(key: &str) -> Option<Value> {
    Some(match key {
        "always_scrape_classic_histograms"
        | "convert_classic_histograms_to_nhcb"
        | "extra_scrape_metrics"
        | "scrape_native_histograms"
        | "track_timestamps_staleness"
        | "honor_labels" => Value::Bool(false),
        "enable_compression" => Value::Bool(true),
        "metrics_path" => "/metrics".into(),
        "metric_name_validation_scheme" => "utf8".into(),
        "metric_name_escaping_scheme" => "allow-utf-8".into(),
        "scrape_protocols" => serde_json::json!([
            "OpenMetricsText1.0.0",
            "OpenMetricsText0.0.1",
            "PrometheusText1.0.0",
            "PrometheusText0.0.4"
        ]),
        _ => return None,
    })
}

/// Every field of `want` (an upstream loaded scrape config) and of `got` (ours) that differs,
/// a field we leave out counting as its loader default; the number of fields compared.
fn config_diff(got: &Value, want: &Value) -> (Vec<String>, usize) {
    let (got, want) = (got.as_object().unwrap(), want.as_object().unwrap());
    let keys: std::collections::BTreeSet<&String> = got.keys().chain(want.keys()).collect();
    let mut diffs = Vec::new();
    let mut compared = 0;
    for k in keys {
        if NOT_COMPARED.contains(&k.as_str()) {
            continue;
        }
        let g = got.get(k).cloned().or_else(|| loader_default(k));
        let w = want.get(k).cloned().or_else(|| loader_default(k));
        compared += 1;
        if g != w {
            diffs.push(format!(
                "{k}: upstream {}, ours {}",
                w.map_or("(absent)".into(), |v| v.to_string()),
                g.map_or("(absent)".into(), |v| v.to_string())
            ));
        }
    }
    (diffs, compared)
}

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/operator-gen/vectors.json"
    );
    serde_json::from_str(&std::fs::read_to_string(path).expect("vectors.json")).unwrap()
}

fn str_map(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// Our jobs for the case's objects, selected as the service selects them, each with its
/// rendered settings; a resource whose credentials cannot be read is rejected.
type Jobs = Vec<(JobDef, Map<String, Value>)>;

fn our_jobs(case: &Value) -> (Jobs, BTreeMap<String, Vec<String>>) {
    let assets = CaseAssets::of(case);
    let cr: PrometheusCr = serde_json::from_value(case["prometheus_cr"].clone()).unwrap();
    let ns_labels: BTreeMap<String, BTreeMap<String, String>> = case["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| {
            (
                n["name"].as_str().unwrap().to_owned(),
                str_map(&n["labels"]),
            )
        })
        .collect();
    let mut defs = Vec::new();
    let mut selected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for obj in case["resources"].as_array().unwrap() {
        let kind = obj["kind"].as_str().unwrap();
        let ns = obj["metadata"]["namespace"].as_str().unwrap();
        let name = obj["metadata"]["name"].as_str().unwrap();
        let (sel, ns_sel) = match kind {
            "ServiceMonitor" => (
                &cr.service_monitor_selector,
                &cr.service_monitor_namespace_selector,
            ),
            "PodMonitor" => (&cr.pod_monitor_selector, &cr.pod_monitor_namespace_selector),
            "Probe" => (&cr.probe_selector, &cr.probe_namespace_selector),
            "ScrapeConfig" => (
                &cr.scrape_config_selector,
                &cr.scrape_config_namespace_selector,
            ),
            other => panic!("unknown kind {other}"),
        };
        let Some(sel) = sel else { continue };
        if !resource_selected(
            &cr,
            sel,
            ns_sel,
            &str_map(&obj["metadata"]["labels"]),
            ns,
            ns_labels.get(ns),
        ) {
            continue;
        }
        let spec = obj["spec"].clone();
        // Refused by the service (a field it does not translate): the case must say so.
        let refused = allocator_service::k8s::support::unsupported(kind, &spec);
        let listed = &input_unsupported(case)[&format!("{kind}/{ns}/{name}")];
        if !refused.is_empty() || !listed.is_null() {
            assert!(
                listed
                    .as_str()
                    .is_some_and(|f| refused.iter().any(|r| r == f)),
                "{kind}/{ns}/{name}: refused for {refused:?}, the case lists {listed}"
            );
            continue;
        }
        let classes = &cr.scrape_classes;
        let interval = cr.scrape_interval.as_deref().unwrap_or("30s");
        let mut resource: Vec<JobDef> = Vec::new();
        // The operator's checks first: a resource that fails one is not selected.
        let checked = match kind {
            "ServiceMonitor" => {
                let spec = serde_json::from_value(spec).unwrap();
                let checked = validate::service_monitor(&spec, classes, interval);
                resource.extend(monitors::service_monitor_jobs(ns, name, &spec, classes));
                checked
            }
            "PodMonitor" => {
                let spec = serde_json::from_value(spec).unwrap();
                let checked = validate::pod_monitor(&spec, classes, interval);
                resource.extend(monitors::pod_monitor_jobs(ns, name, &spec, classes));
                checked
            }
            "Probe" => {
                let spec = serde_json::from_value(spec).unwrap();
                let checked = validate::probe(&spec, classes, interval);
                resource.extend(monitors::probe_job(ns, name, &spec, classes));
                checked
            }
            _ => {
                let spec = serde_json::from_value(spec).unwrap();
                let checked = validate::scrape_config(&spec, classes, interval);
                resource.push(monitors::scrape_config_job(
                    ns,
                    name,
                    &spec,
                    classes,
                    case["collector_namespace"].as_str().unwrap(),
                ));
                checked
            }
        };
        if checked.is_err() {
            continue;
        }
        let rendered: Result<Jobs, String> = resource
            .into_iter()
            .map(|d| client::render(&d.settings, &assets).map(|s| (d, s)))
            .collect();
        let Ok(rendered) = rendered else { continue };
        defs.extend(rendered);
        selected
            .entry(kind.to_owned())
            .or_default()
            .push(format!("{ns}/{name}"));
    }
    for v in selected.values_mut() {
        v.sort();
    }
    (defs, selected)
}

/// The case's resources the service refuses, "Kind/namespace/name" → the field it names.
fn input_unsupported(case: &Value) -> &Value {
    static EMPTY: Value = Value::Null;
    let u = &case["unsupported_by_service"];
    if u.is_object() {
        u
    } else {
        &EMPTY
    }
}

/// The upstream job names of a refused resource (`serviceMonitor/ns/name/0`, `probe/ns/name`, ...).
fn job_prefix(refused: &str) -> String {
    let (kind, rest) = refused.split_once('/').unwrap();
    let mut k = kind.to_owned();
    k[..1].make_ascii_lowercase();
    format!("{k}/{rest}")
}

/// The case's synthetic targets for one of our job's sources.
fn groups(case: &Value, src: &Source) -> Vec<Labels> {
    match src {
        Source::Kubernetes {
            role, namespaces, ..
        } => case["targets"][role.as_str()]
            .as_array()
            .into_iter()
            .flatten()
            .map(str_map)
            .filter(|l| {
                namespaces.is_empty() || namespaces.contains(&l["__meta_kubernetes_namespace"])
            })
            .collect(),
        Source::Static(g) => g.clone(),
        Source::File(_) | Source::Http(_) => Vec::new(),
    }
}

/// A rule with Prometheus' defaults filled, as its config loader prints it: an empty
/// `separator` or `replacement` (which the rule applies as empty) is not printed (`omitempty`).
fn normalized(r: &RuleSpec) -> Value {
    let action = r.action.clone().unwrap_or_else(|| "replace".into());
    let mut m = serde_json::Map::new();
    m.insert("action".into(), action.clone().into());
    if !r.source_labels.is_empty() {
        m.insert("source_labels".into(), r.source_labels.clone().into());
    }
    let separator = r.separator.clone().unwrap_or_else(|| ";".into());
    if !separator.is_empty() {
        m.insert("separator".into(), separator.into());
    }
    let regex = r.regex.clone().unwrap_or_else(|| "(.*)".into());
    if regex != "(.*)" {
        m.insert("regex".into(), regex.into());
    }
    let replacement = r.replacement.clone().unwrap_or_else(|| "$1".into());
    if !replacement.is_empty() {
        m.insert("replacement".into(), replacement.into());
    }
    if let Some(t) = &r.target_label {
        m.insert("target_label".into(), t.clone().into());
    }
    if let Some(n) = r.modulus {
        m.insert("modulus".into(), n.into());
    }
    Value::Object(m)
}

fn upstream_rule(r: &Value) -> Value {
    let mut r = r.clone();
    let o = r.as_object_mut().unwrap();
    if o.get("regex").and_then(Value::as_str) == Some("(.*)") {
        o.remove("regex");
    }
    r
}

#[test]
fn generated_jobs_equal_prometheus_operators_for_the_same_objects_and_targets() {
    let v = vectors();
    assert_eq!(
        v["generator"]["github.com/prometheus-operator/prometheus-operator"],
        "v0.92.0"
    );
    let (mut jobs_checked, mut targets_checked, mut kept, mut rules_checked) = (0, 0, 0, 0);
    let mut settings_checked = 0;
    let mut attach_checked = 0;
    let mut refused_checked = 0;
    // Every difference, reported together.
    let mut failures: Vec<String> = Vec::new();
    for case in v["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let input = &case["case"];
        let (defs, selected) = our_jobs(input);
        let want_selected: BTreeMap<String, Vec<String>> = case["selected"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_array()
                        .unwrap()
                        .iter()
                        .map(|s| s.as_str().unwrap().to_owned())
                        .filter(|r| input_unsupported(input)[format!("{k}/{r}")].is_null())
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        assert_eq!(selected, want_selected, "{name}: selected objects");
        // What the service refuses, the operator accepts (else the case shows nothing).
        let refused: Vec<String> = input_unsupported(input)
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys())
            .map(|r| job_prefix(r))
            .collect();
        for r in &refused {
            assert!(
                case["jobs"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|j| j["job_name"].as_str().unwrap().starts_with(r.as_str())),
                "{name}: the operator generates no job for {r}, which the service refuses"
            );
            refused_checked += 1;
        }

        let upstream: BTreeMap<&str, &Value> = case["jobs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|j| (j["job_name"].as_str().unwrap(), j))
            .filter(|(n, _)| {
                !refused
                    .iter()
                    .any(|r| n.starts_with(&format!("{r}/")) || n == r)
            })
            .collect();
        let ours: Vec<&str> = defs.iter().map(|(d, _)| d.name.as_str()).collect();
        let mut ours_sorted = ours.clone();
        ours_sorted.sort();
        assert_eq!(
            ours_sorted,
            upstream.keys().copied().collect::<Vec<_>>(),
            "{name}: job names"
        );
        let interval = input["prometheus_cr"]["scrape_interval"]
            .as_str()
            .unwrap_or("30s");
        for (def, settings) in defs {
            let job = upstream[def.name.as_str()];
            let sc = &job["scrape_config"];
            let ctx = format!("{name}: {}", def.name);
            // The served relabel rules, rule by rule.
            let want_rules: Vec<Value> = sc["relabel_configs"]
                .as_array()
                .unwrap()
                .iter()
                .map(upstream_rule)
                .collect();
            let got_rules: Vec<Value> = def.rules.iter().map(normalized).collect();
            if got_rules != want_rules {
                failures.push(format!(
                    "{ctx}: relabel_configs\n  upstream {}\n  ours     {}",
                    Value::from(want_rules.clone()),
                    Value::from(got_rules.clone())
                ));
            }
            rules_checked += want_rules.len();
            // Discovery: role and namespaces of each kubernetes_sd_config.
            let want_sd: Vec<(String, Vec<String>)> = job["discovery"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    (
                        d["role"].as_str().unwrap().to_owned(),
                        d["namespaces"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .map(|n| n.as_str().unwrap().to_owned())
                            .collect(),
                    )
                })
                .collect();
            let got_sd: Vec<(String, Vec<String>)> = def
                .sources
                .iter()
                .filter_map(|s| match s {
                    Source::Kubernetes {
                        role, namespaces, ..
                    } => Some((role.clone(), namespaces.clone())),
                    _ => None,
                })
                .collect();
            assert_eq!(got_sd, want_sd, "{ctx}: kubernetes_sd_configs");
            // attachMetadata (the resource's or its scrape class's): whether node labels are
            // attached to the targets of each kubernetes_sd_config.
            let want_attach: Vec<bool> = sc["kubernetes_sd_configs"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|k| k["attach_metadata"]["node"].as_bool().unwrap_or(false))
                .collect();
            let got_attach: Vec<bool> = def
                .sources
                .iter()
                .filter_map(|s| match s {
                    Source::Kubernetes { attach_node, .. } => Some(*attach_node),
                    _ => None,
                })
                .collect();
            assert_eq!(got_attach, want_attach, "{ctx}: attach_metadata.node");
            attach_checked += want_attach.iter().filter(|a| **a).count();
            let fed: Vec<Labels> = def.sources.iter().flat_map(|s| groups(input, s)).collect();
            let g = finish_job(def, interval, fed.clone(), settings).expect("job compiles");
            // The whole `/scrape_configs` entry as the service serves it (the job's fields, then
            // its rendered settings, as `state` builds it), with secrets shown (over mTLS) and
            // redacted (plain HTTP).
            let mut served = job_config(&JobConfig {
                name: &g.name,
                interval: &g.interval,
                timeout: &g.timeout,
                path: &g.path,
                scheme: &g.scheme,
                params: &g.params,
                relabel: &g.rule_specs,
                metric_relabel: &[],
            });
            served.as_object_mut().unwrap().extend(g.settings.clone());
            // Completed as `state` completes every generated job before serving it: Prometheus'
            // loader's reshaping (body size units, the escaping that follows the validation).
            let protocols =
                serde_json::from_value(input["prometheus_cr"]["scrape_protocols"].clone())
                    .unwrap_or(None);
            allocator_service::scrape_defaults::complete(
                served.as_object_mut().unwrap(),
                &allocator_service::scrape_defaults::generated_global(protocols),
            )
            .unwrap_or_else(|e| failures.push(format!("{ctx}: served config not completed: {e}")));
            let (diffs, compared) = config_diff(&served, &job["scrape_config_secrets"]);
            failures.extend(
                diffs
                    .iter()
                    .map(|d| format!("{ctx}: scrape config (secrets shown): {d}")),
            );
            allocator_service::http::redact_scrape_config(&mut served);
            let (diffs, _) = config_diff(&served, sc);
            failures.extend(
                diffs
                    .iter()
                    .map(|d| format!("{ctx}: scrape config (redacted): {d}")),
            );
            settings_checked += compared;
            let spec = JobSpec {
                name: &g.name,
                scrape_interval: &g.interval,
                scrape_timeout: &g.timeout,
                metrics_path: &g.path,
                scheme: &g.scheme,
                params: &g.params,
                rules: &g.rules,
            };
            let targets = job["targets"].as_array().unwrap();
            assert_eq!(fed.len(), targets.len(), "{ctx}: targets fed");
            for (labels, t) in fed.iter().zip(targets) {
                assert_eq!(*labels, str_map(&t["discovered"]), "{ctx}: fed in order");
                let got = relabeled(&spec, labels.iter().map(|(n, v)| (n.as_str(), v.as_str())))
                    .map(|b| b.labels().into_iter().collect::<BTreeMap<String, String>>());
                let want = (!t["final"].is_null()).then(|| str_map(&t["final"]));
                if got != want {
                    failures.push(format!(
                        "{ctx}: target {}\n  upstream {want:?}\n  ours     {got:?}",
                        labels["__address__"]
                    ));
                }
                targets_checked += 1;
                kept += usize::from(want.is_some());
            }
            jobs_checked += 1;
        }
    }
    assert!(
        failures.is_empty(),
        "{} differences from prometheus-operator:\n{}",
        failures.len(),
        failures.join("\n")
    );
    eprintln!(
        "operator vectors: {jobs_checked} jobs, {rules_checked} relabel rules, {settings_checked} settings, {targets_checked} targets ({kept} kept) equal; {refused_checked} resources refused as the cases list"
    );
    assert!(jobs_checked >= 25 && targets_checked >= 60 && kept >= 20 && settings_checked >= 90);
    // The corpus attaches node metadata on some jobs (a ServiceMonitor's own, a scrape class's).
    assert!(
        attach_checked >= 2,
        "{attach_checked} jobs with attach_metadata.node"
    );
}
