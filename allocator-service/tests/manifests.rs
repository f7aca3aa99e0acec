//! The manifests of examples/k8s parse as Kubernetes objects (k8s-openapi types, and our CRD
//! spec types for the Prometheus Operator resources), the Target Allocator configuration they
//! carry is valid, and the RBAC rules bound to the `ta` service account cover every resource the
//! watchers read (`k8s::WATCHED`) with get, list and watch, and, in its namespace only, what
//! leader election does to its Lease (`k8s::lease::VERBS`).

use std::path::Path;

use allocator_service::k8s::monitors::{
    PodMonitorSpec, ProbeSpec, ScrapeConfigSpec, ServiceMonitorSpec,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use serde::Deserialize;
use serde_json::Value;

fn documents() -> Vec<(String, Value)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/k8s");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let names: Vec<String> = files
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "00-namespace.yaml",
            "01-rbac.yaml",
            "02-collector.yaml",
            "03-sample-app-with-servicemonitor.yaml"
        ]
    );
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let v = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            out.push((f.file_name().unwrap().to_string_lossy().into_owned(), v));
        }
    }
    out
}

fn parse<T: serde::de::DeserializeOwned>(file: &str, v: &Value) -> T {
    serde_json::from_value(v.clone())
        .unwrap_or_else(|e| panic!("{file}: {} {}: {e}", v["kind"], v["metadata"]["name"]))
}

#[test]
fn every_manifest_is_a_valid_object_and_rbac_covers_the_watchers() {
    let docs = documents();
    let mut roles: Vec<ClusterRole> = Vec::new();
    let mut bindings: Vec<ClusterRoleBinding> = Vec::new();
    let mut ns_roles: Vec<Role> = Vec::new();
    let mut ns_bindings: Vec<RoleBinding> = Vec::new();
    let mut kinds = Vec::new();
    for (file, v) in &docs {
        let kind = v["kind"]
            .as_str()
            .unwrap_or_else(|| panic!("{file}: a document without kind"));
        assert!(
            v["apiVersion"].is_string(),
            "{file}: {kind} without apiVersion"
        );
        assert!(
            v["metadata"]["name"].is_string(),
            "{file}: {kind} without a name"
        );
        kinds.push(kind.to_owned());
        match kind {
            "Namespace" => drop(parse::<Namespace>(file, v)),
            "ServiceAccount" => drop(parse::<ServiceAccount>(file, v)),
            "ClusterRole" => roles.push(parse(file, v)),
            "ClusterRoleBinding" => bindings.push(parse(file, v)),
            "Role" => ns_roles.push(parse(file, v)),
            "RoleBinding" => ns_bindings.push(parse(file, v)),
            "ConfigMap" => {
                let cm: ConfigMap = parse(file, v);
                if let Some(ta) = cm.data.as_ref().and_then(|d| d.get("targetallocator.yaml")) {
                    let cfg = allocator_service::parse(ta, Path::new("."))
                        .unwrap_or_else(|e| panic!("{file}: {e}"));
                    assert!(
                        cfg.kubernetes,
                        "the in-cluster configuration uses Kubernetes discovery"
                    );
                }
            }
            "StatefulSet" => {
                let s: StatefulSet = parse(file, v);
                let spec = s.spec.unwrap();
                let labels = spec.template.metadata.unwrap().labels.unwrap();
                assert_eq!(
                    spec.selector.match_labels.unwrap(),
                    labels,
                    "{file}: selector matches the pod template"
                );
            }
            "Deployment" => {
                let d: Deployment = parse(file, v);
                let spec = d.spec.unwrap();
                let labels = spec.template.metadata.unwrap().labels.unwrap();
                assert_eq!(
                    spec.selector.match_labels.unwrap(),
                    labels,
                    "{file}: selector matches the pod template"
                );
            }
            "Service" => drop(parse::<Service>(file, v)),
            "ServiceMonitor" => assert!(!parse::<ServiceMonitorSpec>(file, &v["spec"])
                .endpoints
                .is_empty()),
            "PodMonitor" => assert!(!parse::<PodMonitorSpec>(file, &v["spec"])
                .pod_metrics_endpoints
                .is_empty()),
            "ScrapeConfig" => assert!(!parse::<ScrapeConfigSpec>(file, &v["spec"])
                .static_configs
                .is_empty()),
            "Probe" => assert!(parse::<ProbeSpec>(file, &v["spec"])
                .targets
                .static_config
                .is_some()),
            other => panic!("{file}: unexpected kind {other}"),
        }
    }
    for k in [
        "ServiceMonitor",
        "PodMonitor",
        "ScrapeConfig",
        "StatefulSet",
        "Deployment",
    ] {
        assert!(kinds.iter().any(|x| x == k), "no {k} in the manifests");
    }

    // The roles bound to the `ta` service account.
    let ta_roles: Vec<&ClusterRole> = bindings
        .iter()
        .filter(|b| {
            b.subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == "ta"
                    && s.namespace.as_deref() == Some("observability")
            })
        })
        .filter_map(|b| {
            roles
                .iter()
                .find(|r| r.metadata.name.as_deref() == Some(b.role_ref.name.as_str()))
        })
        .collect();
    assert!(
        !ta_roles.is_empty(),
        "no ClusterRole bound to observability/ta"
    );
    for (group, resource) in allocator_service::k8s::WATCHED {
        for verb in ["get", "list", "watch"] {
            let granted = ta_roles
                .iter()
                .flat_map(|r| r.rules.iter().flatten())
                .any(|rule| {
                    rule.api_groups.iter().flatten().any(|g| g == group)
                        && rule.resources.iter().flatten().any(|r| r == resource)
                        && rule.verbs.iter().any(|v| v == verb)
                });
            assert!(
                granted,
                "the ta role does not grant {verb} on {group}/{resource}"
            );
        }
    }
    // Least privilege: nothing but reads.
    for rule in ta_roles.iter().flat_map(|r| r.rules.iter().flatten()) {
        assert!(
            rule.verbs
                .iter()
                .all(|v| ["get", "list", "watch"].contains(&v.as_str())),
            "{rule:?}"
        );
    }

    // Leader election: a Role in the ta account's namespace, bound to it, granting exactly what
    // the election does to Leases there.
    let ta_ns_roles: Vec<&Role> = ns_bindings
        .iter()
        .filter(|b| b.metadata.namespace.as_deref() == Some("observability"))
        .filter(|b| {
            b.subjects.iter().flatten().any(|s| {
                s.kind == "ServiceAccount"
                    && s.name == "ta"
                    && s.namespace.as_deref() == Some("observability")
            })
        })
        .filter_map(|b| {
            ns_roles.iter().find(|r| {
                b.role_ref.kind == "Role"
                    && r.metadata.name.as_deref() == Some(b.role_ref.name.as_str())
                    && r.metadata.namespace == b.metadata.namespace
            })
        })
        .collect();
    let rules: Vec<_> = ta_ns_roles
        .iter()
        .flat_map(|r| r.rules.iter().flatten())
        .collect();
    for verb in allocator_service::k8s::lease::VERBS {
        assert!(
            rules.iter().any(|rule| {
                rule.api_groups
                    .iter()
                    .flatten()
                    .any(|g| g == "coordination.k8s.io")
                    && rule.resources.iter().flatten().any(|r| r == "leases")
                    && rule.verbs.iter().any(|v| v == verb)
            }),
            "the ta account may not {verb} leases in its namespace"
        );
    }
    for rule in &rules {
        assert!(
            rule.resources.iter().flatten().all(|r| r == "leases")
                && rule
                    .verbs
                    .iter()
                    .all(|v| allocator_service::k8s::lease::VERBS.contains(&v.as_str())),
            "more than leader election needs: {rule:?}"
        );
    }
}
