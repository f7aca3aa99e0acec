//! The `__meta_kubernetes_*` labels Prometheus' Kubernetes discovery produces, for the roles the
//! allocator uses: `pod`, `service`, `endpoints`, `endpointslice`, `node` and `ingress` (names
//! from Prometheus' `discovery/kubernetes`).

use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EndpointAddress, Endpoints, Node, ObjectReference, Pod, Service,
};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use k8s_openapi::api::networking::v1::Ingress;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

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

/// A namespaced object's own labels under `prefix` (`__meta_kubernetes_service`, ...): its
/// namespace, `<prefix>_name`, and its labels and annotations.
fn namespaced_object(out: &mut Labels, prefix: &str, m: &ObjectMeta) {
    out.insert(
        "__meta_kubernetes_namespace".into(),
        m.namespace.clone().unwrap_or_default(),
    );
    out.insert(format!("{prefix}_name"), m.name.clone().unwrap_or_default());
    object_labels(out, prefix, m.labels.as_ref(), m.annotations.as_ref());
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

/// `__meta_kubernetes_pod_ready`: the status of the pod's `Ready` condition in lower case,
/// `unknown` without one (Prometheus' `podReady`).
fn pod_ready(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
        .map_or_else(|| "unknown".into(), |c| c.status.to_lowercase())
}

/// `host:port` as Go's `net.JoinHostPort` writes it: an IPv6 address in brackets.
fn join_host_port(host: &str, port: impl std::fmt::Display) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// Role `node` (Prometheus' `buildNode`): one target per node at its preferred address
/// (InternalIP, InternalDNS, ExternalIP, ExternalDNS, LegacyHostIP, Hostname: the first of the
/// first type present) and the kubelet's port, `instance` set to the node's name, the first
/// address of each type, the provider id and every condition; none without an address.
pub fn node_targets(node: &Node) -> Vec<Labels> {
    let status = node.status.as_ref();
    let addresses = status
        .and_then(|s| s.addresses.as_deref())
        .unwrap_or_default();
    let first_of = |ty: &str| addresses.iter().find(|a| a.type_ == ty);
    let preferred = [
        "InternalIP",
        "InternalDNS",
        "ExternalIP",
        "ExternalDNS",
        "LegacyHostIP",
        "Hostname",
    ]
    .into_iter()
    .find_map(first_of);
    let Some(preferred) = preferred else {
        return Vec::new();
    };
    let mut l = node_labels(node);
    l.insert(
        "__meta_kubernetes_node_provider_id".into(),
        node.spec
            .as_ref()
            .and_then(|s| s.provider_id.clone())
            .unwrap_or_default(),
    );
    for c in status
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default()
    {
        l.insert(
            format!(
                "__meta_kubernetes_node_condition_{}",
                sanitize(&c.type_.to_lowercase())
            ),
            c.status.to_lowercase(),
        );
    }
    let port = status
        .and_then(|s| s.daemon_endpoints.as_ref())
        .and_then(|d| d.kubelet_endpoint.as_ref())
        .map_or(0, |k| k.port);
    l.insert(
        "__address__".into(),
        join_host_port(&preferred.address, port),
    );
    l.insert(
        "instance".into(),
        node.metadata.name.clone().unwrap_or_default(),
    );
    for a in addresses {
        l.entry(sanitize(&format!(
            "__meta_kubernetes_node_address_{}",
            a.type_
        )))
        .or_insert_with(|| a.address.clone());
    }
    vec![l]
}

/// The pod-level labels (shared by every target of the pod, and added to endpointslice targets
/// that point at a pod): Prometheus' `podLabels` (the namespace is the target group's).
pub fn pod_labels(pod: &Pod) -> Labels {
    let mut l = Labels::new();
    let m = &pod.metadata;
    let p = "__meta_kubernetes_pod";
    l.insert(format!("{p}_name"), m.name.clone().unwrap_or_default());
    object_labels(&mut l, p, m.labels.as_ref(), m.annotations.as_ref());
    let status = pod.status.as_ref();
    l.insert(
        format!("{p}_ip"),
        status.and_then(|s| s.pod_ip.clone()).unwrap_or_default(),
    );
    l.insert(format!("{p}_ready"), pod_ready(pod));
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
        // Each only when set, as Prometheus writes them.
        if !owner.kind.is_empty() {
            l.insert(format!("{p}_controller_kind"), owner.kind.clone());
        }
        if !owner.name.is_empty() {
            l.insert(format!("{p}_controller_name"), owner.name.clone());
        }
    }
    l
}

/// A pod's containers then its init containers (native sidecars included), each with whether it
/// is an init container: the order in which Prometheus visits them.
fn containers(pod: &Pod) -> impl Iterator<Item = (&Container, bool)> {
    let spec = pod.spec.as_ref();
    let main = spec.map(|s| s.containers.as_slice()).unwrap_or_default();
    let init = spec
        .and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default();
    main.iter()
        .map(|c| (c, false))
        .chain(init.iter().map(|c| (c, true)))
}

/// The labels of the container of a pod's target.
fn container_labels(l: &mut Labels, c: &Container, init: bool) {
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
        init.to_string(),
    );
}

/// The labels of one container port of a pod's target, its container's included.
fn container_port_labels(l: &mut Labels, c: &Container, init: bool, port: &ContainerPort) {
    container_labels(l, c, init);
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
        port.protocol.clone().unwrap_or_default(),
    );
}

/// The id of a container from the pod's (init) container statuses, empty when it has none.
fn container_id(pod: &Pod, name: &str, init: bool) -> String {
    let status = pod.status.as_ref();
    let statuses = if init {
        status.and_then(|s| s.init_container_statuses.as_deref())
    } else {
        status.and_then(|s| s.container_statuses.as_deref())
    };
    statuses
        .unwrap_or_default()
        .iter()
        .find(|s| s.name == name)
        .and_then(|s| s.container_id.clone())
        .unwrap_or_default()
}

/// The pod an endpoint address refers to, and the labels every target of that address shares:
/// the object's (`base`), the address's own and the pod's (their names do not overlap, so
/// their order does not matter). Prometheus finds the pod by the reference's own namespace and
/// name. Shared by the endpointslice and endpoints roles.
fn address_labels(
    base: &Labels,
    own: Labels,
    target: Option<&ObjectReference>,
    pod_of: &impl Fn(&str, &str) -> Option<Arc<Pod>>,
) -> (Option<Arc<Pod>>, Labels) {
    let pod = target
        .filter(|t| t.kind.as_deref() == Some("Pod"))
        .and_then(|t| {
            pod_of(
                t.namespace.as_deref().unwrap_or_default(),
                t.name.as_deref().unwrap_or_default(),
            )
        });
    let mut shared = base.clone();
    shared.extend(own);
    if let Some(pod) = &pod {
        shared.extend(pod_labels(pod));
    }
    (pod, shared)
}

/// Role `pod` (Prometheus' `buildPod`): for each container and init container, one target per
/// declared port, or one at the pod IP when it declares none; no target without a pod IP.
pub fn pod_targets(pod: &Pod) -> Vec<Labels> {
    let mut base = pod_labels(pod);
    base.insert(
        "__meta_kubernetes_namespace".into(),
        pod.metadata.namespace.clone().unwrap_or_default(),
    );
    let ip = base
        .get("__meta_kubernetes_pod_ip")
        .cloned()
        .unwrap_or_default();
    if ip.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (c, init) in containers(pod) {
        let id = container_id(pod, &c.name, init);
        let ports = c.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            let mut l = base.clone();
            l.insert("__address__".into(), ip.clone());
            container_labels(&mut l, c, init);
            l.insert("__meta_kubernetes_pod_container_id".into(), id);
            out.push(l);
            continue;
        }
        for port in ports {
            let mut l = base.clone();
            l.insert(
                "__address__".into(),
                join_host_port(&ip, port.container_port),
            );
            container_port_labels(&mut l, c, init, port);
            l.insert("__meta_kubernetes_pod_container_id".into(), id.clone());
            out.push(l);
        }
    }
    out
}

/// Role `pod` with `attach_metadata.node`: the pod's targets with its node's labels (`node`
/// answers `node_labels` of a known node), none when its node is unknown (Prometheus drops
/// pods on nodes missing from its node store).
pub fn pod_targets_on_nodes(pod: &Pod, node: impl Fn(&str) -> Option<Labels>) -> Vec<Labels> {
    let name = pod
        .spec
        .as_ref()
        .and_then(|s| s.node_name.as_deref())
        .unwrap_or_default();
    let Some(labels) = node(name) else {
        return Vec::new();
    };
    let mut out = pod_targets(pod);
    for t in &mut out {
        t.extend(labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    out
}

/// The service-level labels an EndpointSlice's targets share (Prometheus' `serviceLabels`):
/// namespace, name, labels and annotations.
pub fn service_labels(svc: &Service) -> Labels {
    let mut l = Labels::new();
    namespaced_object(&mut l, "__meta_kubernetes_service", &svc.metadata);
    l
}

/// Role `service` (Prometheus' `buildService`): one target per service port, at the service's
/// DNS name, with its type and cluster IP (the external name of an `ExternalName` service; the
/// load balancer IP of a `LoadBalancer` one).
pub fn service_targets(svc: &Service) -> Vec<Labels> {
    let base = service_labels(svc);
    let (ns, name) = (
        svc.metadata.namespace.clone().unwrap_or_default(),
        svc.metadata.name.clone().unwrap_or_default(),
    );
    let Some(spec) = svc.spec.as_ref() else {
        return Vec::new();
    };
    let kind = spec.type_.clone().unwrap_or_default();
    spec.ports
        .iter()
        .flatten()
        .map(|port| {
            let mut l = base.clone();
            l.insert(
                "__address__".into(),
                join_host_port(&format!("{name}.{ns}.svc"), port.port),
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
                port.protocol.clone().unwrap_or_default(),
            );
            l.insert("__meta_kubernetes_service_type".into(), kind.clone());
            if kind == "ExternalName" {
                l.insert(
                    "__meta_kubernetes_service_external_name".into(),
                    spec.external_name.clone().unwrap_or_default(),
                );
            } else {
                l.insert(
                    "__meta_kubernetes_service_cluster_ip".into(),
                    spec.cluster_ip.clone().unwrap_or_default(),
                );
            }
            if kind == "LoadBalancer" {
                l.insert(
                    "__meta_kubernetes_service_loadbalancer_ip".into(),
                    spec.load_balancer_ip.clone().unwrap_or_default(),
                );
            }
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

/// Whether a slice is the secondary slice of a dual-stack service (its address type is not the
/// service's first IP family): Prometheus gives it no targets, which would repeat the primary's.
fn secondary_family(slice: &EndpointSlice, service: Option<&Service>) -> bool {
    let Some(spec) = service.and_then(|s| s.spec.as_ref()) else {
        return false;
    };
    let dual = matches!(
        spec.ip_family_policy.as_deref(),
        Some("PreferDualStack" | "RequireDualStack")
    );
    match spec.ip_families.as_deref() {
        Some([first, ..]) if dual => *first != slice.address_type,
        _ => false,
    }
}

/// The labels of one endpoint of a slice, shared by its addresses and ports.
fn endpoint_labels(ep: &Endpoint) -> Labels {
    let mut l = Labels::new();
    let cond = ep.conditions.as_ref();
    let p = "__meta_kubernetes_endpointslice";
    for (name, v) in [
        ("ready", cond.and_then(|c| c.ready)),
        ("serving", cond.and_then(|c| c.serving)),
        ("terminating", cond.and_then(|c| c.terminating)),
    ] {
        if let Some(v) = v {
            l.insert(format!("{p}_endpoint_conditions_{name}"), v.to_string());
        }
    }
    if let Some(h) = &ep.hostname {
        l.insert(format!("{p}_endpoint_hostname"), h.clone());
    }
    if let Some(t) = &ep.target_ref {
        l.insert(
            format!("{p}_address_target_kind"),
            t.kind.clone().unwrap_or_default(),
        );
        l.insert(
            format!("{p}_address_target_name"),
            t.name.clone().unwrap_or_default(),
        );
    }
    if let Some(n) = &ep.node_name {
        l.insert(format!("{p}_endpoint_node_name"), n.clone());
    }
    if let Some(z) = &ep.zone {
        l.insert(format!("{p}_endpoint_zone"), z.clone());
    }
    for (k, v) in ep.deprecated_topology.iter().flatten() {
        let n = sanitize(k);
        l.insert(format!("{p}_endpoint_topology_{n}"), v.clone());
        l.insert(format!("{p}_endpoint_topology_present_{n}"), "true".into());
    }
    l
}

/// Role `endpointslice` (Prometheus' `buildEndpointSlice`): one target per endpoint, port and
/// address, with the slice's, the service's (when known) and the target pod's (when known)
/// labels, and the labels of the pod's container port the endpoint port matches; then, for each
/// pod met, one target per container port no endpoint port covered. `pod_of(namespace, name)`
/// finds a pod.
pub fn endpointslice_targets(
    slice: &EndpointSlice,
    service: Option<&Service>,
    pod_of: impl Fn(&str, &str) -> Option<Arc<Pod>>,
) -> Vec<Labels> {
    let mut base = Labels::new();
    let m = &slice.metadata;
    let ns = m.namespace.clone().unwrap_or_default();
    base.insert("__meta_kubernetes_namespace".into(), ns);
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
    if secondary_family(slice, service) {
        return Vec::new();
    }
    let mut pods = PodsMet::default();
    let mut out = Vec::new();
    let ports = slice.ports.as_deref().unwrap_or_default();
    for ep in &slice.endpoints {
        let (pod, shared) =
            address_labels(&base, endpoint_labels(ep), ep.target_ref.as_ref(), &pod_of);
        for port in ports {
            for addr in &ep.addresses {
                let mut l = shared.clone();
                let address = match port.port {
                    Some(n) => join_host_port(addr, n),
                    None => addr.clone(),
                };
                l.insert("__address__".into(), address);
                let p = "__meta_kubernetes_endpointslice_port";
                if let Some(name) = &port.name {
                    l.insert(format!("{p}_name"), name.clone());
                }
                if let Some(protocol) = &port.protocol {
                    l.insert(format!("{p}_protocol"), protocol.clone());
                }
                if let Some(n) = port.port {
                    l.insert(p.into(), n.to_string());
                }
                if let Some(app) = &port.app_protocol {
                    l.insert(format!("{p}_app_protocol"), app.clone());
                }
                if let Some(pod) = &pod {
                    if let Some((c, init, cp)) = port.port.and_then(|n| matching_port(pod, n)) {
                        container_port_labels(&mut l, c, init, cp);
                    }
                    pods.met(pod, port.port);
                }
                out.push(l);
            }
        }
    }
    pods.uncovered_targets(&base, &mut out);
    out
}

/// The pods an endpoint-based role's targets pointed at, in the order first met, with the
/// endpoint port numbers that reached each (`seenPods` in Prometheus' `buildEndpoints` and
/// `buildEndpointSlice`).
#[derive(Default)]
struct PodsMet(Vec<(Arc<Pod>, Vec<i32>)>);

impl PodsMet {
    /// A target of `pod` on endpoint port `port` (None: a slice port without a number, which
    /// covers no container port).
    fn met(&mut self, pod: &Arc<Pod>, port: Option<i32>) {
        let same = |p: &Pod| {
            p.metadata.namespace == pod.metadata.namespace && p.metadata.name == pod.metadata.name
        };
        let at = match self.0.iter().position(|(p, _)| same(p)) {
            Some(i) => i,
            None => {
                self.0.push((pod.clone(), Vec::new()));
                self.0.len() - 1
            }
        };
        if let Some(n) = port {
            self.0[at].1.push(n);
        }
    }

    /// For each pod met that has an IP, one target per container port no endpoint port
    /// covered: `base` (the object's shared labels), the pod's labels and its container port's.
    fn uncovered_targets(&self, base: &Labels, out: &mut Vec<Labels>) {
        for (pod, covered) in &self.0 {
            let ip = pod
                .status
                .as_ref()
                .and_then(|s| s.pod_ip.as_deref())
                .unwrap_or_default();
            if ip.is_empty() {
                continue;
            }
            let mut shared = base.clone();
            shared.extend(pod_labels(pod));
            for (c, init) in containers(pod) {
                for cp in c.ports.iter().flatten() {
                    if covered.contains(&cp.container_port) {
                        continue;
                    }
                    let mut l = shared.clone();
                    l.insert("__address__".into(), join_host_port(ip, cp.container_port));
                    container_port_labels(&mut l, c, init, cp);
                    out.push(l);
                }
            }
        }
    }
}

/// The container port an endpoint port `n` matches: each container's first port of that
/// number, and of the containers that have one the last (Prometheus overwrites container by
/// container, main containers then init containers).
fn matching_port(pod: &Pod, n: i32) -> Option<(&Container, bool, &ContainerPort)> {
    containers(pod)
        .filter_map(|(c, init)| {
            let cp = c.ports.iter().flatten().find(|cp| cp.container_port == n)?;
            Some((c, init, cp))
        })
        .last()
}

/// Role `endpoints` (Prometheus' `buildEndpoints`): one target per subset port and address,
/// ready addresses then not-ready ones (`__meta_kubernetes_endpoint_ready` true or false), with
/// the Endpoints object's, the service's of the same name (when known) and the target pod's
/// (when known) labels, and the labels of the pod's container port the endpoint port matches;
/// then, for each pod met, one target per container port no endpoint port covered.
/// `pod_of(namespace, name)` finds a pod.
pub fn endpoints_targets(
    eps: &Endpoints,
    service: Option<&Service>,
    pod_of: impl Fn(&str, &str) -> Option<Arc<Pod>>,
) -> Vec<Labels> {
    let m = &eps.metadata;
    let mut base = Labels::new();
    if let Some(svc) = service {
        base.extend(service_labels(svc));
    }
    namespaced_object(&mut base, "__meta_kubernetes_endpoints", m);
    let mut pods = PodsMet::default();
    let mut out = Vec::new();
    for subset in eps.subsets.iter().flatten() {
        let ports = subset.ports.as_deref().unwrap_or_default();
        if ports.is_empty() {
            // No targets, and no pod met.
            continue;
        }
        let ready = subset.addresses.iter().flatten().map(|a| (a, "true"));
        let not_ready = subset
            .not_ready_addresses
            .iter()
            .flatten()
            .map(|a| (a, "false"));
        // Each address with its pod and the labels its targets share (the object's, the
        // address's and the pod's: their names do not overlap), built once for all its ports.
        let addresses: Vec<(&EndpointAddress, Option<Arc<Pod>>, Labels)> = ready
            .chain(not_ready)
            .map(|(addr, ready)| {
                let (pod, shared) = address_labels(
                    &base,
                    endpoint_address_labels(addr, ready),
                    addr.target_ref.as_ref(),
                    &pod_of,
                );
                (addr, pod, shared)
            })
            .collect();
        // Ports outer, addresses inner, ready before not-ready: Prometheus' order.
        for port in ports {
            for (addr, pod, shared) in &addresses {
                let mut l = shared.clone();
                l.insert("__address__".into(), join_host_port(&addr.ip, port.port));
                let p = "__meta_kubernetes_endpoint_port";
                l.insert(format!("{p}_name"), port.name.clone().unwrap_or_default());
                l.insert(
                    format!("{p}_protocol"),
                    port.protocol.clone().unwrap_or_default(),
                );
                if let Some(pod) = pod {
                    if let Some((c, init, cp)) = matching_port(pod, port.port) {
                        container_port_labels(&mut l, c, init, cp);
                        // This role names the endpoint port's protocol, not the container's.
                        l.insert(
                            "__meta_kubernetes_pod_container_port_protocol".into(),
                            port.protocol.clone().unwrap_or_default(),
                        );
                    }
                    pods.met(pod, Some(port.port));
                }
                out.push(l);
            }
        }
    }
    pods.uncovered_targets(&base, &mut out);
    out
}

/// The labels of one address of an Endpoints subset, shared by its ports: its readiness
/// always, its target, node name and hostname when set.
fn endpoint_address_labels(addr: &EndpointAddress, ready: &str) -> Labels {
    let p = "__meta_kubernetes_endpoint";
    let mut l = Labels::from([(format!("{p}_ready"), ready.to_owned())]);
    if let Some(t) = &addr.target_ref {
        l.insert(
            format!("{p}_address_target_kind"),
            t.kind.clone().unwrap_or_default(),
        );
        l.insert(
            format!("{p}_address_target_name"),
            t.name.clone().unwrap_or_default(),
        );
    }
    if let Some(n) = &addr.node_name {
        l.insert(format!("{p}_node_name"), n.clone());
    }
    if let Some(h) = addr.hostname.as_ref().filter(|h| !h.is_empty()) {
        l.insert(format!("{p}_hostname"), h.clone());
    }
    l
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
    namespaced_object(&mut base, "__meta_kubernetes_ingress", &ing.metadata);
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
        let targets = pod_targets_on_nodes(&pod(), lookup);
        assert_eq!(targets.len(), pod_targets(&pod()).len());
        let pod = &targets[0];
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
        super::super::attach_endpoint_node(&mut direct, lookup);
        assert_eq!(direct["__meta_kubernetes_node_name"], "node-a");
        let mut unknown = Labels::from([(
            "__meta_kubernetes_endpointslice_endpoint_node_name".into(),
            "gone".into(),
        )]);
        super::super::attach_endpoint_node(&mut unknown, lookup);
        assert_eq!(unknown.len(), 1);
    }

    /// Prometheus' `buildNode`: InternalIP first whatever the order, the first of each type,
    /// conditions in lower case; a node without an address gives no target.
    #[test]
    fn node_role_targets_the_kubelet_at_the_preferred_address() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "node-a", "labels": {"kubernetes.io/os": "linux"}},
            "spec": {"providerID": "aws:///eu-1a/i-1"},
            "status": {
                "addresses": [{"type": "Hostname", "address": "h1"}, {"type": "InternalIP", "address": "10.0.0.1"},
                              {"type": "InternalIP", "address": "10.0.0.2"}, {"type": "ExternalIP", "address": "1.2.3.4"}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "conditions": [{"type": "Ready", "status": "True"}, {"type": "MemoryPressure", "status": "False"}]
            }
        }))
        .unwrap();
        let ts = node_targets(&node);
        assert_eq!(ts.len(), 1);
        for (k, v) in [
            ("__address__", "10.0.0.1:10250"),
            ("instance", "node-a"),
            ("__meta_kubernetes_node_name", "node-a"),
            ("__meta_kubernetes_node_label_kubernetes_io_os", "linux"),
            ("__meta_kubernetes_node_provider_id", "aws:///eu-1a/i-1"),
            ("__meta_kubernetes_node_address_InternalIP", "10.0.0.1"),
            ("__meta_kubernetes_node_address_Hostname", "h1"),
            ("__meta_kubernetes_node_address_ExternalIP", "1.2.3.4"),
            ("__meta_kubernetes_node_condition_ready", "true"),
            ("__meta_kubernetes_node_condition_memorypressure", "false"),
        ] {
            assert_eq!(ts[0].get(k).map(String::as_str), Some(v), "{k}");
        }
        let bare: Node =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "n"}})).unwrap();
        assert!(node_targets(&bare).is_empty());
    }

    fn pod() -> Pod {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": "api-7d9f", "namespace": "shop", "uid": "u1",
                "labels": {"app.kubernetes.io/name": "api"}, "annotations": {"prometheus.io/scrape": "true"},
                "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "api-rs", "uid": "r", "controller": true}]},
            "spec": {"nodeName": "node-a", "containers": [
                {"name": "server", "image": "api:1", "ports": [{"name": "metrics", "containerPort": 9090, "protocol": "TCP"}, {"containerPort": 8080, "protocol": "TCP"}]},
                {"name": "sidecar", "image": "proxy:2"}]},
            "status": {"phase": "Running", "podIP": "10.0.0.7", "hostIP": "192.168.0.3",
                "conditions": [{"type": "Ready", "status": "True"}]}
        }))
        .unwrap()
    }

    #[test]
    fn pod_role_has_one_target_per_container_port_or_port_less_container() {
        let ts = pod_targets(&pod());
        assert_eq!(ts.len(), 3);
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
        // The port-less sidecar: one target at the pod IP, without port labels.
        assert_eq!(ts[2]["__address__"], "10.0.0.7");
        assert_eq!(ts[2]["__meta_kubernetes_pod_container_name"], "sidecar");
        assert!(!ts[2].contains_key("__meta_kubernetes_pod_container_port_number"));
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
        let p = Arc::new(pod());
        let ts = endpointslice_targets(&slice, Some(&svc), |ns, name| {
            (ns == "shop" && name == "api-7d9f").then(|| p.clone())
        });
        // The endpoint port, then the pod's container port 8080 no endpoint port covers.
        assert_eq!(ts.len(), 2);
        assert_eq!(ts[1]["__address__"], "10.0.0.7:8080");
        assert_eq!(ts[1]["__meta_kubernetes_pod_container_name"], "server");
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
            ("__meta_kubernetes_pod_container_name", "server"),
            ("__meta_kubernetes_pod_container_port_name", "metrics"),
            ("__meta_kubernetes_pod_container_init", "false"),
        ] {
            assert_eq!(t.get(k).map(String::as_str), Some(v), "{k}");
        }
    }
}
