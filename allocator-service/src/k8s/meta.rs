//! The `__meta_kubernetes_*` labels Prometheus' Kubernetes discovery produces, for the roles the
//! allocator uses: `pod`, `service`, `endpointslice` and `ingress` (names from Prometheus'
//! `discovery/kubernetes`).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::Ingress;

pub type Labels = BTreeMap<String, String>;

/// A label name as Prometheus sanitizes it: every character outside `[a-zA-Z0-9_]` becomes `_`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn object_labels(
    out: &mut Labels,
    prefix: &str,
    labels: Option<&BTreeMap<String, String>>,
    annotations: Option<&BTreeMap<String, String>>,
) {
    for (k, v) in labels.into_iter().flatten() {
        let n = sanitize(k);
        out.insert(format!("{prefix}_label_{n}"), v.clone());
        out.insert(format!("{prefix}_labelpresent_{n}"), "true".into());
    }
    for (k, v) in annotations.into_iter().flatten() {
        let n = sanitize(k);
        out.insert(format!("{prefix}_annotation_{n}"), v.clone());
        out.insert(format!("{prefix}_annotationpresent_{n}"), "true".into());
    }
}

/// The labels Prometheus' `attach_metadata.node` adds to a pod's or an endpoint's targets for
/// the node they run on (`addNodeLabels`): its name, labels and annotations.
pub fn node_labels(node: &Node) -> Labels {
    let mut l = Labels::new();
    l.insert(
        "__meta_kubernetes_node_name".into(),
        node.metadata.name.clone().unwrap_or_default(),
    );
    object_labels(
        &mut l,
        "__meta_kubernetes_node",
        node.metadata.labels.as_ref(),
        node.metadata.annotations.as_ref(),
    );
    l
}

fn pod_ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

/// The pod-level labels (shared by every target of the pod, and added to endpointslice targets
/// that point at a pod).
pub fn pod_labels(pod: &Pod) -> Labels {
    let mut l = Labels::new();
    let m = &pod.metadata;
    let p = "__meta_kubernetes_pod";
    l.insert(
        "__meta_kubernetes_namespace".into(),
        m.namespace.clone().unwrap_or_default(),
    );
    l.insert(format!("{p}_name"), m.name.clone().unwrap_or_default());
    object_labels(&mut l, p, m.labels.as_ref(), m.annotations.as_ref());
    let status = pod.status.as_ref();
    l.insert(
        format!("{p}_ip"),
        status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
    );
    l.insert(format!("{p}_ready"), pod_ready(pod).to_string());
    l.insert(
        format!("{p}_phase"),
        status.and_then(|s| s.phase.clone()).unwrap_or_default(),
    );
    l.insert(
        format!("{p}_node_name"),
        pod.spec
            .as_ref()
            .and_then(|s| s.node_name.clone())
            .unwrap_or_default(),
    );
    l.insert(
        format!("{p}_host_ip"),
        status.and_then(|s| s.host_ip.clone()).unwrap_or_default(),
    );
    l.insert(format!("{p}_uid"), m.uid.clone().unwrap_or_default());
    if let Some(owner) = m
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
    {
        l.insert(format!("{p}_controller_kind"), owner.kind.clone());
        l.insert(format!("{p}_controller_name"), owner.name.clone());
    }
    l
}

/// Role `pod`: one target per declared container port, or one per pod (address = pod IP) when
/// no container declares a port.
pub fn pod_targets(pod: &Pod) -> Vec<Labels> {
    let base = pod_labels(pod);
    let ip = base
        .get("__meta_kubernetes_pod_ip")
        .cloned()
        .unwrap_or_default();
    if ip.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    let containers = pod
        .spec
        .as_ref()
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    for c in containers {
        for port in c.ports.iter().flatten() {
            let mut l = base.clone();
            l.insert(
                "__address__".into(),
                format!("{ip}:{}", port.container_port),
            );
            l.insert(
                "__meta_kubernetes_pod_container_name".into(),
                c.name.clone(),
            );
            l.insert(
                "__meta_kubernetes_pod_container_image".into(),
                c.image.clone().unwrap_or_default(),
            );
            l.insert(
                "__meta_kubernetes_pod_container_init".into(),
                "false".into(),
            );
            l.insert(
                "__meta_kubernetes_pod_container_port_name".into(),
                port.name.clone().unwrap_or_default(),
            );
            l.insert(
                "__meta_kubernetes_pod_container_port_number".into(),
                port.container_port.to_string(),
            );
            l.insert(
                "__meta_kubernetes_pod_container_port_protocol".into(),
                port.protocol.clone().unwrap_or_else(|| "TCP".into()),
            );
            out.push(l);
        }
    }
    if out.is_empty() {
        let mut l = base;
        l.insert("__address__".into(), ip);
        out.push(l);
    }
    out
}

/// The service-level labels.
pub fn service_labels(svc: &Service) -> Labels {
    let mut l = Labels::new();
    let m = &svc.metadata;
    l.insert(
        "__meta_kubernetes_namespace".into(),
        m.namespace.clone().unwrap_or_default(),
    );
    l.insert(
        "__meta_kubernetes_service_name".into(),
        m.name.clone().unwrap_or_default(),
    );
    object_labels(
        &mut l,
        "__meta_kubernetes_service",
        m.labels.as_ref(),
        m.annotations.as_ref(),
    );
    let spec = svc.spec.as_ref();
    l.insert(
        "__meta_kubernetes_service_type".into(),
        spec.and_then(|s| s.type_.clone())
            .unwrap_or_else(|| "ClusterIP".into()),
    );
    if let Some(ip) = spec.and_then(|s| s.cluster_ip.clone()) {
        l.insert("__meta_kubernetes_service_cluster_ip".into(), ip);
    }
    l
}

/// Role `service`: one target per service port, at the service's DNS name.
pub fn service_targets(svc: &Service) -> Vec<Labels> {
    let base = service_labels(svc);
    let (ns, name) = (
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    svc.spec
        .iter()
        .flat_map(|s| s.ports.iter().flatten())
        .map(|port| {
            let mut l = base.clone();
            l.insert(
                "__address__".into(),
                format!("{name}.{ns}.svc:{}", port.port),
            );
            l.insert(
                "__meta_kubernetes_service_port_name".into(),
                port.name.clone().unwrap_or_default(),
            );
            l.insert(
                "__meta_kubernetes_service_port_number".into(),
                port.port.to_string(),
            );
            l.insert(
                "__meta_kubernetes_service_port_protocol".into(),
                port.protocol.clone().unwrap_or_else(|| "TCP".into()),
            );
            l
        })
        .collect()
}

/// The service an EndpointSlice belongs to (its `kubernetes.io/service-name` label).
pub fn slice_service(slice: &EndpointSlice) -> Option<&str> {
    slice
        .metadata
        .labels
        .as_ref()?
        .get("kubernetes.io/service-name")
        .map(String::as_str)
}

/// Role `endpointslice`: one target per endpoint address and port, with the slice's, the
/// service's (when known) and the target pod's (when known) labels.
pub fn endpointslice_targets(
    slice: &EndpointSlice,
    service: Option<&Service>,
    pod_of: impl Fn(&str, &str) -> Option<Labels>,
) -> Vec<Labels> {
    let mut base = Labels::new();
    let m = &slice.metadata;
    let ns = m.namespace.clone().unwrap_or_default();
    base.insert("__meta_kubernetes_namespace".into(), ns.clone());
    base.insert(
        "__meta_kubernetes_endpointslice_name".into(),
        m.name.clone().unwrap_or_default(),
    );
    object_labels(
        &mut base,
        "__meta_kubernetes_endpointslice",
        m.labels.as_ref(),
        m.annotations.as_ref(),
    );
    base.insert(
        "__meta_kubernetes_endpointslice_address_type".into(),
        slice.address_type.clone(),
    );
    if let Some(svc) = service {
        base.extend(service_labels(svc));
    }
    let mut out = Vec::new();
    for ep in &slice.endpoints {
        let mut el = base.clone();
        let cond = ep.conditions.as_ref();
        let flag = |v: Option<bool>| v.map(|b| b.to_string());
        if let Some(v) = flag(cond.and_then(|c| c.ready)) {
            el.insert(
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready".into(),
                v,
            );
        }
        if let Some(v) = flag(cond.and_then(|c| c.serving)) {
            el.insert(
                "__meta_kubernetes_endpointslice_endpoint_conditions_serving".into(),
                v,
            );
        }
        if let Some(v) = flag(cond.and_then(|c| c.terminating)) {
            el.insert(
                "__meta_kubernetes_endpointslice_endpoint_conditions_terminating".into(),
                v,
            );
        }
        if let Some(h) = &ep.hostname {
            el.insert(
                "__meta_kubernetes_endpointslice_endpoint_hostname".into(),
                h.clone(),
            );
        }
        if let Some(n) = &ep.node_name {
            el.insert(
                "__meta_kubernetes_endpointslice_endpoint_node_name".into(),
                n.clone(),
            );
        }
        if let Some(z) = &ep.zone {
            el.insert(
                "__meta_kubernetes_endpointslice_endpoint_zone".into(),
                z.clone(),
            );
        }
        if let Some(t) = &ep.target_ref {
            el.insert(
                "__meta_kubernetes_endpointslice_address_target_kind".into(),
                t.kind.clone().unwrap_or_default(),
            );
            el.insert(
                "__meta_kubernetes_endpointslice_address_target_name".into(),
                t.name.clone().unwrap_or_default(),
            );
            if t.kind.as_deref() == Some("Pod") {
                if let Some(pl) = pod_of(
                    t.namespace.as_deref().unwrap_or(&ns),
                    t.name.as_deref().unwrap_or_default(),
                ) {
                    el.extend(pl);
                }
            }
        }
        for addr in &ep.addresses {
            for port in slice.ports.iter().flatten() {
                let Some(number) = port.port else { continue };
                let mut l = el.clone();
                l.insert("__address__".into(), format!("{addr}:{number}"));
                l.insert(
                    "__meta_kubernetes_endpointslice_port".into(),
                    number.to_string(),
                );
                l.insert(
                    "__meta_kubernetes_endpointslice_port_name".into(),
                    port.name.clone().unwrap_or_default(),
                );
                l.insert(
                    "__meta_kubernetes_endpointslice_port_protocol".into(),
                    port.protocol.clone().unwrap_or_else(|| "TCP".into()),
                );
                out.push(l);
            }
        }
    }
    out
}

/// Whether `host` is one of the TLS hosts (a `*.` entry matches one leading label), as
/// Prometheus' ingress discovery decides the scheme.
fn tls_host(patterns: &[String], host: &str) -> bool {
    patterns.iter().any(|p| {
        if let Some(suffix) = p.strip_prefix("*.") {
            host.split_once('.')
                .is_some_and(|(first, rest)| !first.is_empty() && rest == suffix)
        } else {
            p == host
        }
    })
}

/// Role `ingress`: one target per rule host and path (`/` when a rule has no paths or a path is
/// empty), scheme `https` when the host is covered by the Ingress's TLS section.
pub fn ingress_targets(ing: &Ingress) -> Vec<Labels> {
    let mut base = Labels::new();
    let m = &ing.metadata;
    base.insert(
        "__meta_kubernetes_namespace".into(),
        m.namespace.clone().unwrap_or_default(),
    );
    base.insert(
        "__meta_kubernetes_ingress_name".into(),
        m.name.clone().unwrap_or_default(),
    );
    object_labels(
        &mut base,
        "__meta_kubernetes_ingress",
        m.labels.as_ref(),
        m.annotations.as_ref(),
    );
    let Some(spec) = &ing.spec else {
        return Vec::new();
    };
    if let Some(class) = &spec.ingress_class_name {
        base.insert("__meta_kubernetes_ingress_class_name".into(), class.clone());
    }
    let tls: Vec<String> = spec
        .tls
        .iter()
        .flatten()
        .flat_map(|t| t.hosts.iter().flatten().cloned())
        .collect();
    let mut out = Vec::new();
    for rule in spec.rules.iter().flatten() {
        let host = rule.host.clone().unwrap_or_default();
        let scheme = if tls_host(&tls, &host) {
            "https"
        } else {
            "http"
        };
        let paths: Vec<String> = match rule.http.as_ref() {
            None => vec!["/".into()],
            Some(h) => h
                .paths
                .iter()
                .map(|p| {
                    p.path
                        .clone()
                        .filter(|p| !p.is_empty())
                        .unwrap_or_else(|| "/".into())
                })
                .collect(),
        };
        for path in paths {
            let mut l = base.clone();
            l.insert("__address__".into(), host.clone());
            l.insert("__meta_kubernetes_ingress_scheme".into(), scheme.into());
            l.insert("__meta_kubernetes_ingress_host".into(), host.clone());
            l.insert("__meta_kubernetes_ingress_path".into(), path);
            out.push(l);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_node_adds_the_nodes_metadata_to_pod_and_endpoint_targets() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-a", "labels": {"topology.kubernetes.io/zone": "eu-1a"},
                         "annotations": {"note": "x"}}
        }))
        .unwrap();
        let lookup = |n: &str| (n == "node-a").then(|| node_labels(&node));
        let mut pod = Labels::from([("__meta_kubernetes_pod_node_name".into(), "node-a".into())]);
        super::super::attach_node("pod", &mut pod, lookup);
        assert_eq!(pod["__meta_kubernetes_node_name"], "node-a");
        assert_eq!(
            pod["__meta_kubernetes_node_label_topology_kubernetes_io_zone"],
            "eu-1a"
        );
        assert_eq!(
            pod["__meta_kubernetes_node_labelpresent_topology_kubernetes_io_zone"],
            "true"
        );
        assert_eq!(pod["__meta_kubernetes_node_annotation_note"], "x");
        // An endpoint that targets a node directly names it; otherwise its nodeName does.
        let mut direct = Labels::from([
            (
                "__meta_kubernetes_endpointslice_address_target_kind".into(),
                "Node".into(),
            ),
            (
                "__meta_kubernetes_endpointslice_address_target_name".into(),
                "node-a".into(),
            ),
            (
                "__meta_kubernetes_endpointslice_endpoint_node_name".into(),
                "other".into(),
            ),
        ]);
        super::super::attach_node("endpointslice", &mut direct, lookup);
        assert_eq!(direct["__meta_kubernetes_node_name"], "node-a");
        let mut unknown = Labels::from([(
            "__meta_kubernetes_endpointslice_endpoint_node_name".into(),
            "gone".into(),
        )]);
        super::super::attach_node("endpointslice", &mut unknown, lookup);
        assert_eq!(unknown.len(), 1);
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-7d9f", "namespace": "shop", "uid": "u1",
                "labels": {"app.kubernetes.io/name": "api"}, "annotations": {"prometheus.io/scrape": "true"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-rs", "uid": "r", "controller": true}]},
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "server", "image": "api:1", "ports": [{"name": "metrics", "containerPort": 9090}, {"containerPort": 8080, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "proxy:2"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "hostIP": "192.168.0.3",
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    #[test]
    fn pod_role_has_one_target_per_container_port_with_prometheus_names() {
        let ts = pod_targets(&pod());
        assert_eq!(ts.len(), 2);
        let t = &ts[0];
        for (k, v) in [
            ("__address__", "10.0.0.7:9090"),
            ("__meta_kubernetes_namespace", "shop"),
            ("__meta_kubernetes_pod_name", "api-7d9f"),
            ("__meta_kubernetes_pod_ip", "10.0.0.7"),
            ("__meta_kubernetes_pod_label_app_kubernetes_io_name", "api"),
            (
                "__meta_kubernetes_pod_labelpresent_app_kubernetes_io_name",
                "true",
            ),
            (
                "__meta_kubernetes_pod_annotation_prometheus_io_scrape",
                "true",
            ),
            ("__meta_kubernetes_pod_container_name", "server"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ("__meta_kubernetes_pod_container_port_number", "9090"),
            ("__meta_kubernetes_pod_container_port_protocol", "TCP"),
            ("__meta_kubernetes_pod_ready", "true"),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__meta_kubernetes_pod_node_name", "node-a"),
            ("__meta_kubernetes_pod_host_ip", "192.168.0.3"),
            ("__meta_kubernetes_pod_controller_kind", "ReplicaSet"),
            ("__meta_kubernetes_pod_controller_name", "api-rs"),
        ] {
            assert_eq!(t.get(k).map(String::as_str), Some(v), "{k}");
        }
        assert_eq!(ts[1]["__address__"], "10.0.0.7:8080");
    }

    #[test]
    fn service_and_endpointslice_roles() {
        let svc: Service = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api", "namespace": "shop", "labels": {"team": "a"}},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "web", "port": 80}]}
        }))
        .unwrap();
        let ts = service_targets(&svc);
        assert_eq!(ts.len(), 1);
        assert_eq!(ts[0]["__address__"], "api.shop.svc:80");
        assert_eq!(ts[0]["__meta_kubernetes_service_port_name"], "web");
        assert_eq!(ts[0]["__meta_kubernetes_service_label_team"], "a");
        assert_eq!(ts[0]["__meta_kubernetes_service_cluster_ip"], "10.96.0.10");

        let slice: EndpointSlice = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-x1", "namespace": "shop", "labels": {"kubernetes.io/service-name": "api"}},
            "addressType": "IPv4",
            "endpoints": [{"addresses": ["10.0.0.7"], "conditions": {"ready": true}, "nodeName": "node-a",
                "targetRef": {"kind": "Pod", "name": "api-7d9f", "namespace": "shop"}}],
            "ports": [{"name": "metrics", "port": 9090, "protocol": "TCP"}]
        }))
        .unwrap();
        assert_eq!(slice_service(&slice), Some("api"));
        let p = pod();
        let ts = endpointslice_targets(&slice, Some(&svc), |ns, name| {
            (ns == "shop" && name == "api-7d9f").then(|| pod_labels(&p))
        });
        assert_eq!(ts.len(), 1);
        let t = &ts[0];
        for (k, v) in [
            ("__address__", "10.0.0.7:9090"),
            ("__meta_kubernetes_endpointslice_name", "api-x1"),
            ("__meta_kubernetes_endpointslice_address_type", "IPv4"),
            (
                "__meta_kubernetes_endpointslice_endpoint_conditions_ready",
                "true",
            ),
            (
                "__meta_kubernetes_endpointslice_endpoint_node_name",
                "node-a",
            ),
            ("__meta_kubernetes_endpointslice_address_target_kind", "Pod"),
            (
                "__meta_kubernetes_endpointslice_address_target_name",
                "api-7d9f",
            ),
            ("__meta_kubernetes_endpointslice_port", "9090"),
            ("__meta_kubernetes_endpointslice_port_name", "metrics"),
            ("__meta_kubernetes_service_name", "api"),
            ("__meta_kubernetes_pod_name", "api-7d9f"),
            ("__meta_kubernetes_pod_node_name", "node-a"),
        ] {
            assert_eq!(t.get(k).map(String::as_str), Some(v), "{k}");
        }
    }
}
