//! What the service's benchmarks share: Kubernetes-like pod targets.

use std::collections::BTreeMap;

use allocator_service::discovery::Target;

/// Jobs the targets are spread over (`n % JOBS`).
pub const JOBS: usize = 10;

/// A pod target as Kubernetes discovery reports it: the identity labels plus `__meta_*` ones.
pub fn target(n: usize, revision: usize) -> Target {
    let job = format!("job-{}", n % JOBS);
    let ip = format!("10.{}.{}.{}", n >> 16, (n >> 8) & 255, n & 255);
    let address = format!("{ip}:8080");
    let mut labels = BTreeMap::new();
    let mut l = |k: &str, v: String| labels.insert(k.to_owned(), v);
    l("__address__", address.clone());
    l("__meta_kubernetes_namespace", format!("team-{}", n % 37));
    l(
        "__meta_kubernetes_pod_name",
        format!("app-{}-7f9c8d6b5-x{n:05}", n % 500),
    );
    l("__meta_kubernetes_pod_ip", ip);
    l(
        "__meta_kubernetes_pod_node_name",
        format!("node-{}", n % 200),
    );
    l("__meta_kubernetes_pod_container_name", "app".into());
    l("__meta_kubernetes_pod_container_port_number", "8080".into());
    l(
        "__meta_kubernetes_pod_label_app",
        format!("app-{}", n % 500),
    );
    l("__meta_kubernetes_pod_ready", "true".into());
    l(
        "__meta_kubernetes_pod_annotation_revision",
        revision.to_string(),
    );
    l("__metrics_path__", "/metrics".into());
    Target::unrelabeled(&labels, &job).expect("valid labels with an address")
}
