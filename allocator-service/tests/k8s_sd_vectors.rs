//! Our Kubernetes discovery labels (`allocator_service::k8s::meta`) against Prometheus' own
//! discovery code at the version the Go allocator links: `testdata/k8s-sd-gen/vectors.json` is
//! what `discovery/kubernetes`' pod, service, endpointslice, endpoints and node discoverers (pod
//! and the endpoint roles also with node metadata attached, and each with label selectors) produce for the objects in `testdata/k8s-sd-gen/corpus.yaml`
//! (testdata/k8s-sd-gen/README.md). We build the targets of the same objects and require the
//! same targets: each one its group's labels merged with its own, the lists sorted by address,
//! then by the whole label set. Each variant is reached twice: with the selectors as a
//! ScrapeConfig's are parsed, and as a `kubernetes_sd_configs` entry of the configuration file
//! (role, `attach_metadata`, `selectors`) parses and checks them.

use std::collections::BTreeMap;
use std::sync::Arc;

use allocator_service::config::KubernetesSdConfig;
use allocator_service::k8s::field_selector::FieldSelector;
use allocator_service::k8s::meta::{self, Labels};
use allocator_service::k8s::selector::{RoleSelectors, SelectorEntry};
use allocator_service::k8s::{attach_endpoint_node, trim_node};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use serde::Deserialize;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/k8s-sd-gen");

/// The role variants the generator writes.
const VARIANTS: [&str; 13] = [
    "pod",
    "pod+node",
    "service",
    "endpointslice",
    "endpointslice+node",
    "node",
    "pod+selectors",
    "service+selectors",
    "endpointslice+selectors",
    "node+selectors",
    "endpoints",
    "endpoints+node",
    "endpoints+selectors",
];

#[derive(Default)]
struct Corpus {
    nodes: BTreeMap<String, Node>,
    pods: Vec<Arc<Pod>>,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
    endpoints: Vec<Endpoints>,
}

impl Corpus {
    fn load() -> Self {
        let path = format!("{DIR}/corpus.yaml");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut c = Corpus::default();
        for (i, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let v = serde_yaml::Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("corpus.yaml document {i}: {e}"));
            if v.is_null() {
                continue;
            }
            let kind = v["kind"].as_str().unwrap_or_default().to_owned();
            let typed = |what: &str| format!("corpus.yaml document {i} as {what}");
            match kind.as_str() {
                "Node" => {
                    let n: Node = serde_yaml::from_value(v)
                        .unwrap_or_else(|e| panic!("{}: {e}", typed("Node")));
                    let name = n.metadata.name.clone().expect("a node has a name");
                    c.nodes.insert(name, n);
                }
                "Pod" => c.pods.push(Arc::new(
                    serde_yaml::from_value(v).unwrap_or_else(|e| panic!("{}: {e}", typed("Pod"))),
                )),
                "Service" => c.services.push(
                    serde_yaml::from_value(v)
                        .unwrap_or_else(|e| panic!("{}: {e}", typed("Service"))),
                ),
                "EndpointSlice" => c.slices.push(
                    serde_yaml::from_value(v)
                        .unwrap_or_else(|e| panic!("{}: {e}", typed("EndpointSlice"))),
                ),
                "Endpoints" => c.endpoints.push(
                    serde_yaml::from_value(v)
                        .unwrap_or_else(|e| panic!("{}: {e}", typed("Endpoints"))),
                ),
                other => panic!("corpus.yaml document {i}: unexpected kind {other:?}"),
            }
        }
        c
    }

    /// `attach_metadata.node`'s view of a node: its metadata labels when the node is known
    /// (and selected).
    fn node(&self, name: &str, sel: &RoleSelectors) -> Option<Labels> {
        self.nodes
            .get(name)
            .filter(|n| RoleSelectors::selects(&sel.node, *n))
            .map(meta::node_labels)
    }

    fn pod(&self, ns: &str, name: &str, sel: &RoleSelectors) -> Option<Arc<Pod>> {
        self.pods
            .iter()
            .find(|p| {
                p.metadata.namespace.as_deref() == Some(ns)
                    && p.metadata.name.as_deref() == Some(name)
                    && RoleSelectors::selects(&sel.pod, *p)
            })
            .cloned()
    }

    fn service(&self, ns: &str, name: &str, sel: &RoleSelectors) -> Option<&Service> {
        self.services.iter().find(|s| {
            s.metadata.namespace.as_deref() == Some(ns)
                && s.metadata.name.as_deref() == Some(name)
                && RoleSelectors::selects(&sel.service, *s)
        })
    }

    /// Our targets for one role variant, sorted as the generator sorts Prometheus' targets:
    /// the objects the selectors select, as the service's caches are filtered
    /// (`Cluster::role_targets`), with node metadata when `attach_node`.
    fn targets(&self, variant: &str, sel: &RoleSelectors, attach_node: bool) -> Vec<Labels> {
        let pods = || {
            self.pods
                .iter()
                .filter(|p| RoleSelectors::selects(&sel.pod, *p))
        };
        let role = variant.split('+').next().unwrap_or_default();
        let mut out: Vec<Labels> = match role {
            "pod" if !attach_node => pods().flat_map(|p| meta::pod_targets(p)).collect(),
            "pod" => pods()
                .flat_map(|p| meta::pod_targets_on_nodes(p, |n| self.node(n, sel)))
                .collect(),
            "service" => self
                .services
                .iter()
                .filter(|s| RoleSelectors::selects(&sel.service, *s))
                .flat_map(meta::service_targets)
                .collect(),
            "endpointslice" => {
                let mut all = Vec::new();
                let slices = self
                    .slices
                    .iter()
                    .filter(|s| RoleSelectors::selects(&sel.endpointslice, *s));
                for slice in slices {
                    let ns = slice.metadata.namespace.as_deref().unwrap_or_default();
                    let svc =
                        meta::slice_service(slice).and_then(|name| self.service(ns, name, sel));
                    all.extend(meta::endpointslice_targets(slice, svc, |ns, name| {
                        self.pod(ns, name, sel)
                    }));
                }
                if attach_node {
                    for t in &mut all {
                        attach_endpoint_node(t, |n| self.node(n, sel));
                    }
                }
                all
            }
            "endpoints" => {
                let mut all = Vec::new();
                let selected = self
                    .endpoints
                    .iter()
                    .filter(|e| RoleSelectors::selects(&sel.endpoints, *e));
                for eps in selected {
                    let ns = eps.metadata.namespace.as_deref().unwrap_or_default();
                    let name = eps.metadata.name.as_deref().unwrap_or_default();
                    // The service of the same name.
                    let svc = self.service(ns, name, sel);
                    all.extend(meta::endpoints_targets(eps, svc, |ns, name| {
                        self.pod(ns, name, sel)
                    }));
                }
                if attach_node {
                    for t in &mut all {
                        attach_endpoint_node(t, |n| self.node(n, sel));
                    }
                }
                all
            }
            // From the nodes as the service's node cache keeps them.
            "node" => self
                .nodes
                .values()
                .filter(|n| RoleSelectors::selects(&sel.node, *n))
                .flat_map(|n| {
                    let mut n = n.clone();
                    trim_node(&mut n);
                    meta::node_targets(&n)
                })
                .collect(),
            other => panic!("unknown role variant {other}"),
        };
        out.sort_by(|a, b| address(a).cmp(address(b)).then_with(|| a.cmp(b)));
        out
    }
}

fn has(l: &Labels, name: &str, value: &str) -> bool {
    l.get(name).is_some_and(|v| v == value)
}

fn address(l: &Labels) -> &str {
    l.get("__address__").map(String::as_str).unwrap_or_default()
}

/// Prometheus' targets per role variant, from vectors.json, with the variants' label
/// selectors by kind.
#[derive(Deserialize)]
struct Vectors {
    prometheus: String,
    roles: BTreeMap<String, Vec<Labels>>,
    selectors: BTreeMap<String, BTreeMap<String, String>>,
    configs: Vec<ConfigVector>,
}

/// Prometheus' verdict on a Kubernetes SD entry of `testdata/k8s-sd-gen/sd-configs.txt`, and
/// the allocator's expected one from the same line (`same`, or `refuses`: a setting it does not
/// serve).
#[derive(Deserialize)]
struct ConfigVector {
    entry: String,
    allocator: String,
    error: String,
    /// When Prometheus loads it: the terms `fields.ParseSelector` makes of each selector's
    /// field selector, as [field, operator, value].
    #[serde(default)]
    fields: Vec<Vec<[String; 3]>>,
}

fn vectors() -> Vectors {
    let path = format!("{DIR}/vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Vectors = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    assert_eq!(
        v.prometheus, "v0.314.0",
        "vectors.json from another version"
    );
    let variants: Vec<&str> = v.roles.keys().map(String::as_str).collect();
    let mut want = VARIANTS.to_vec();
    want.sort_unstable();
    assert_eq!(variants, want, "vectors.json's role variants");
    v
}

/// A variant's selectors, parsed by the service's parser from the strings the generator gave
/// the (fake) API server.
fn role_selectors(v: &Vectors, variant: &str) -> RoleSelectors {
    let Some(by_kind) = v.selectors.get(variant) else {
        return RoleSelectors::default();
    };
    let sd_role = variant.split('+').next().unwrap_or_default();
    let entries: Vec<SelectorEntry<'_>> = by_kind
        .iter()
        .map(|(kind, label)| SelectorEntry {
            role: kind,
            label,
            field: "",
        })
        .collect();
    RoleSelectors::parse(sd_role, &entries)
        .unwrap_or_else(|(i, e)| panic!("{variant}: selector {i}: {e}"))
}

/// The first target where ours and Prometheus' lists differ, as a label diff (`-` Prometheus
/// only, `+` ours only, `~` both with different values).
fn first_difference(ours: &[Labels], theirs: &[Labels]) -> Option<String> {
    let i = (0..ours.len().max(theirs.len())).find(|&i| ours.get(i) != theirs.get(i))?;
    let differing = (0..ours.len().max(theirs.len()))
        .filter(|&i| ours.get(i) != theirs.get(i))
        .count();
    let mut out = format!(
        "{} targets from us, {} from Prometheus, {differing} positions differ, the first is #{i}",
        ours.len(),
        theirs.len()
    );
    let empty = Labels::new();
    let (o, t) = (
        ours.get(i).unwrap_or(&empty),
        theirs.get(i).unwrap_or(&empty),
    );
    out.push_str(&format!(
        " (ours {:?}, Prometheus' {:?}):\n",
        ours.get(i).map(address),
        theirs.get(i).map(address)
    ));
    for (k, v) in t {
        match o.get(k) {
            None => out.push_str(&format!("  - {k}={v:?}\n")),
            Some(ov) if ov != v => {
                out.push_str(&format!("  ~ {k}: ours {ov:?}, Prometheus {v:?}\n"))
            }
            Some(_) => {}
        }
    }
    for (k, v) in o {
        if !t.contains_key(k) {
            out.push_str(&format!("  + {k}={v:?}\n"));
        }
    }
    Some(out)
}

/// Whether the generator's discoverer of a variant attaches node metadata (its selector variant
/// of the pod role does).
fn attaches_node(variant: &str) -> bool {
    variant.ends_with("+node") || variant == "pod+selectors"
}

/// The variant as a `kubernetes_sd_configs` entry of the service's configuration file (role,
/// `attach_metadata`, the generator's selectors), as the configuration parses and checks it.
fn file_config_entry(v: &Vectors, variant: &str) -> KubernetesSdConfig {
    let role = variant.split('+').next().unwrap_or_default();
    let mut entry = serde_json::json!({ "role": role });
    if attaches_node(variant) {
        entry["attach_metadata"] = serde_json::json!({"node": true});
    }
    if let Some(by_kind) = v.selectors.get(variant) {
        entry["selectors"] = by_kind
            .iter()
            .map(|(kind, label)| serde_json::json!({"role": kind, "label": label}))
            .collect();
    }
    let yaml = serde_yaml::to_string(&entry).unwrap();
    let sd: KubernetesSdConfig =
        serde_yaml::from_str(&yaml).unwrap_or_else(|e| panic!("{variant}: the entry {yaml}: {e}"));
    sd.check()
        .unwrap_or_else(|e| panic!("{variant}: the entry {yaml} is refused: {e}"));
    sd
}

fn check(variant: &str) {
    let corpus = Corpus::load();
    let mut v = vectors();
    let sel = role_selectors(&v, variant);
    let sd = file_config_entry(&v, variant);
    let want = v.roles.remove(variant).expect("variant in vectors.json");
    let got = corpus.targets(variant, &sel, attaches_node(variant));
    if let Some(diff) = first_difference(&got, &want) {
        panic!("role {variant}: our targets differ from Prometheus v0.314.0's: {diff}");
    }
    // The same discovery reached from the configuration file.
    let file_sel = sd.role_selectors().expect("checked");
    assert_eq!(file_sel, sel, "{variant}: the configuration's selectors");
    assert_eq!(
        file_sel.refused(&sd.role, sd.attach_node()),
        None,
        "{variant}"
    );
    let got = corpus.targets(variant, &file_sel, sd.attach_node());
    if let Some(diff) = first_difference(&got, &want) {
        panic!(
            "role {variant} from a kubernetes_sd_configs entry: our targets differ from \
             Prometheus v0.314.0's: {diff}"
        );
    }
}

#[test]
fn pod_role_matches_prometheus() {
    check("pod");
}

#[test]
fn pod_role_with_node_metadata_matches_prometheus() {
    check("pod+node");
}

#[test]
fn service_role_matches_prometheus() {
    check("service");
}

#[test]
fn endpointslice_role_matches_prometheus() {
    check("endpointslice");
}

#[test]
fn endpointslice_role_with_node_metadata_matches_prometheus() {
    check("endpointslice+node");
}

#[test]
fn endpoints_role_matches_prometheus() {
    check("endpoints");
}

#[test]
fn endpoints_role_with_node_metadata_matches_prometheus() {
    check("endpoints+node");
}

#[test]
fn node_role_matches_prometheus() {
    check("node");
}

/// Prometheus' Kubernetes SD `selectors` (label selectors, as a ScrapeConfig's
/// `kubernetesSDConfigs[].selectors` carries them): set-based and equality requirements, node
/// selectors on attached metadata, service and pod selectors of the endpointslice role.
#[test]
fn selectors_select_as_prometheus_lists() {
    for variant in [
        "pod+selectors",
        "service+selectors",
        "endpointslice+selectors",
        "node+selectors",
        "endpoints+selectors",
    ] {
        check(variant);
    }
}

/// The corpus reaches the shapes the vectors are for: a vector file of a corpus that lost them
/// would pass while checking little.
#[test]
fn corpus_covers_the_listed_shapes() {
    let c = Corpus::load();
    let vectors = vectors();
    let v = &vectors.roles;
    for variant in VARIANTS {
        assert!(!v[variant].is_empty(), "{variant}: no targets");
    }
    // Each selector variant selects some of its role's targets, not all or none.
    for (variant, all) in [
        ("pod+selectors", "pod+node"),
        ("service+selectors", "service"),
        ("endpointslice+selectors", "endpointslice"),
        ("node+selectors", "node"),
        ("endpoints+selectors", "endpoints"),
    ] {
        assert!(
            v[variant].len() < v[all].len(),
            "{variant} selects every target"
        );
    }
    let any = |variant: &str, f: &dyn Fn(&Labels) -> bool| v[variant].iter().any(f);
    assert!(any("pod", &|l| has(
        l,
        "__meta_kubernetes_pod_container_init",
        "true"
    )));
    assert!(any("pod", &|l| has(
        l,
        "__meta_kubernetes_pod_ready",
        "unknown"
    )));
    assert!(any("pod", &|l| address(l).starts_with('[')));
    assert!(any("endpointslice", &|l| address(l).starts_with('[')));
    // A slice port without a number: the bare address.
    assert!(any("endpointslice", &|l| address(l)
        .parse::<std::net::IpAddr>()
        .is_ok()));
    assert!(any("endpointslice", &|l| l.contains_key(
        "__meta_kubernetes_endpointslice_port_app_protocol"
    )));
    assert!(any("endpointslice", &|l| l.keys().any(|k| k.starts_with(
        "__meta_kubernetes_endpointslice_endpoint_topology_present_"
    ))));
    // Targets for container ports no slice port covers (no endpoint labels, pod labels).
    assert!(any("endpointslice", &|l| l
        .contains_key("__meta_kubernetes_pod_name")
        && !l.contains_key("__meta_kubernetes_endpointslice_port")));
    assert!(any("endpointslice+node", &|l| l
        .contains_key("__meta_kubernetes_node_name")));
    // The endpoints role: ready and not-ready addresses, IPv6, a hostname, targets of pods'
    // uncovered container ports, a matched container port labelled with the endpoint port's
    // protocol where the container's differs, a port without name or protocol (empty labels),
    // node metadata by nodeName over a targeted Node, and a service without Endpoints.
    for ready in ["true", "false"] {
        assert!(any("endpoints", &|l| has(
            l,
            "__meta_kubernetes_endpoint_ready",
            ready
        )));
    }
    assert!(any("endpoints", &|l| address(l).starts_with('[')));
    assert!(any("endpoints", &|l| l
        .contains_key("__meta_kubernetes_endpoint_hostname")));
    assert!(any("endpoints", &|l| l
        .contains_key("__meta_kubernetes_pod_name")
        && !l.contains_key("__meta_kubernetes_endpoint_ready")));
    assert!(any("endpoints", &|l| has(
        l,
        "__meta_kubernetes_pod_container_port_name",
        "dns-tcp"
    ) && has(
        l,
        "__meta_kubernetes_pod_container_port_protocol",
        "UDP"
    )));
    assert!(any("endpoints", &|l| has(
        l,
        "__meta_kubernetes_endpoint_port_name",
        ""
    ) && has(
        l,
        "__meta_kubernetes_endpoint_port_protocol",
        ""
    )));
    assert!(any("endpoints+node", &|l| has(
        l,
        "__meta_kubernetes_endpoint_address_target_name",
        "node-b"
    ) && has(
        l,
        "__meta_kubernetes_node_name",
        "node-a"
    )));
    assert!(c
        .services
        .iter()
        .any(|s| !c
            .endpoints
            .iter()
            .any(|e| e.metadata.namespace == s.metadata.namespace
                && e.metadata.name == s.metadata.name)));
    // A pod whose node has no Node object, so attach_metadata drops its targets.
    assert!(v["pod+node"].len() < v["pod"].len());
    assert!(c.pods.iter().any(|p| p
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .is_some_and(|n| !c.nodes.contains_key(n))));
    assert!(!c.services.is_empty() && !c.slices.is_empty());
}

/// A `kubernetes_sd_configs` entry of the configuration file loads exactly when Prometheus'
/// SDConfig does (roles, selectors and their label and field selectors, namespaces, node
/// metadata, the HTTP client settings it takes only with `api_server`, unknown keys), but for
/// the settings the allocator does not serve, which it refuses; and each field selector parses
/// into the terms Kubernetes' `fields.ParseSelector` makes of it (operators, empty terms,
/// escapes, spaces, sorting).
#[test]
fn kubernetes_sd_entries_load_as_prometheus_loads_them() {
    let v = vectors();
    assert!(v.configs.len() >= 60, "{} entries", v.configs.len());
    let mut loaded_with_fields = 0;
    for c in &v.configs {
        let text = format!(
            "discovery: kubernetes\ncollector_namespace: o\nconfig:\n  scrape_configs:\n    \
             - job_name: j\n      kubernetes_sd_configs:\n        - {}\n",
            c.entry
        );
        let ours = allocator_service::parse(&text, std::path::Path::new("."));
        let (entry, theirs) = (&c.entry, &c.error);
        match (c.allocator.as_str(), &ours, theirs.is_empty()) {
            ("refuses", Err(_), _) | ("same", Err(_), false) => {}
            ("refuses", Ok(_), _) => panic!("{entry}: loaded, but the allocator does not serve it"),
            ("same", Ok(_), false) => panic!("{entry}: loaded; Prometheus refuses it: {theirs}"),
            ("same", Err(e), true) => panic!("{entry}: refused ({e}); Prometheus loads it"),
            ("same", Ok(cfg), true) => {
                let sd = &cfg.file.config.scrape_configs[0].kubernetes_sd_configs[0];
                assert_eq!(sd.selectors.len(), c.fields.len(), "{entry}");
                for (s, want) in sd.selectors.iter().zip(&c.fields) {
                    let got: Vec<[String; 3]> = FieldSelector::parse(&s.field)
                        .unwrap_or_else(|e| panic!("{entry}: {e}"))
                        .terms()
                        .map(|(f, op, v)| [f.to_owned(), op.to_owned(), v.to_owned()])
                        .collect();
                    assert_eq!(&got, want, "{entry}: the terms of {:?}", s.field);
                    loaded_with_fields += usize::from(!want.is_empty());
                }
            }
            (other, ..) => panic!("{entry}: unknown verdict {other:?}"),
        }
    }
    assert!(loaded_with_fields >= 20, "{loaded_with_fields}");
}
