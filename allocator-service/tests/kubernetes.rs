//! Kubernetes discovery against a fake API server on loopback (tests/mock_kube): collector pods
//! becoming ready, unready and deleted; ServiceMonitor / PodMonitor / ScrapeConfig added, changed
//! and removed; selector and namespace-selector matching; EndpointSlice changes; `410 Gone` with
//! a re-list and cut watches with reconnects. Every check reads the service's HTTP API.

mod common;
mod mock_kube;

use std::time::Duration;

use mock_kube::MockApi;
use serde_json::{json, Value};

async fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let a = common::get(addr, path).await;
    (a.status, a.body)
}

async fn json_of(addr: std::net::SocketAddr, path: &str) -> Value {
    common::json(addr, path).await
}

/// Poll `path` until `ok` holds (10 s at most).
async fn until(
    addr: std::net::SocketAddr,
    path: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    until_within(addr, path, what, Duration::from_secs(10), ok).await
}

/// [`until`] for at most `limit`.
async fn until_within(
    addr: std::net::SocketAddr,
    path: &str,
    what: &str,
    limit: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if get(addr, "/readyz").await.0 == 200 {
            let v = json_of(addr, path).await;
            if ok(&v) {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!(
        "timed out waiting for {what}: {}",
        json_of(addr, path).await
    );
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod(
    ns: &str,
    name: &str,
    labels: Value,
    ip: &str,
    node: &str,
    ready: bool,
    port: Option<(&str, u16)>,
) -> Value {
    let ports = port.map_or(json!([]), |(n, p)| json!([{"name": n, "containerPort": p}]));
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels, "uid": format!("uid-{name}")},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "img", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip,
            "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" },
                "lastTransitionTime": "2020-01-01T00:00:00Z"}]}})
}

fn service(ns: &str, name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"ports": [{"name": "metrics", "port": 9090}]}})
}

fn slice(ns: &str, name: &str, svc: &str, endpoints: &[(&str, &str)]) -> Value {
    let eps: Vec<Value> = endpoints
        .iter()
        .map(|(ip, pod)| {
            json!({"addresses": [ip], "conditions": {"ready": true},
            "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}})
        })
        .collect();
    json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": {"kubernetes.io/service-name": svc}},
        "addressType": "IPv4", "endpoints": eps,
        "ports": [{"name": "metrics", "port": 9090, "protocol": "TCP"}, {"name": "web", "port": 8080}]})
}

fn monitor(
    kind: &str,
    api_version: &str,
    ns: &str,
    name: &str,
    labels: Value,
    spec: Value,
) -> Value {
    json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec})
}

fn collectors_of(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn count(v: &Value) -> usize {
    v.as_object()
        .unwrap()
        .values()
        .map(|c| c["targets"].as_array().unwrap().len())
        .sum()
}

const CONFIG: &str = r#"
discovery: kubernetes
collector_namespace: observability
collector_selector:
  matchLabels: {app.kubernetes.io/component: opentelemetry-collector}
collector_not_ready_grace_period: 1s
prometheus_cr:
  enabled: true
  scrape_interval: 15s
  service_monitor_selector: {}
  service_monitor_namespace_selector:
    matchExpressions: [{key: team, operator: In, values: [shop]}]
  pod_monitor_selector:
    matchLabels: {release: otel}
  scrape_config_selector: {}
  probe_selector: {}
config:
  scrape_configs:
    - job_name: annotated-pods
      kubernetes_sd_configs: [{role: pod, namespaces: {names: [shop]}}]
      relabel_configs:
        - source_labels: [__meta_kubernetes_pod_annotation_prometheus_io_scrape]
          regex: "true"
          action: keep
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_changes_flow_through_discovery_into_assignments() {
    let api = MockApi::new();
    let collector = json!({"app.kubernetes.io/component": "opentelemetry-collector"});
    api.apply("namespaces", namespace("shop", json!({"team": "shop"})));
    api.apply("namespaces", namespace("other", json!({"team": "other"})));
    api.apply("namespaces", namespace("observability", json!({})));
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-0",
            collector.clone(),
            "10.9.0.1",
            "node-a",
            true,
            None,
        ),
    );
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-1",
            collector.clone(),
            "10.9.0.2",
            "node-b",
            true,
            None,
        ),
    );
    // Not ready since 2020: past the grace period, so not a collector.
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-2",
            collector.clone(),
            "10.9.0.3",
            "node-c",
            false,
            None,
        ),
    );
    // Matches the selector but in another namespace: not a collector.
    api.apply(
        "pods",
        pod(
            "shop",
            "otel-elsewhere",
            collector.clone(),
            "10.1.0.99",
            "node-a",
            true,
            None,
        ),
    );
    for i in 0..4 {
        let mut p = pod(
            "shop",
            &format!("api-{i}"),
            json!({"app": "api"}),
            &format!("10.1.0.{i}"),
            "node-a",
            true,
            Some(("metrics", 9090)),
        );
        if i < 2 {
            p["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true"});
        }
        api.apply("pods", p);
    }
    api.apply(
        "pods",
        pod(
            "other",
            "worker-0",
            json!({"app": "worker"}),
            "10.2.0.1",
            "node-b",
            true,
            Some(("metrics", 9100)),
        ),
    );
    api.apply("services", service("shop", "api", json!({"app": "api"})));
    api.apply("services", service("other", "api", json!({"app": "api"})));
    api.apply(
        "endpointslices",
        slice(
            "shop",
            "api-abc",
            "api",
            &[
                ("10.1.0.0", "api-0"),
                ("10.1.0.1", "api-1"),
                ("10.1.0.2", "api-2"),
            ],
        ),
    );
    api.apply(
        "endpointslices",
        slice("other", "api-xyz", "api", &[("10.2.0.9", "ghost")]),
    );
    let sm_spec =
        json!({"selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics"}]});
    api.apply(
        "servicemonitors",
        monitor(
            "ServiceMonitor",
            "monitoring.coreos.com/v1",
            "shop",
            "api",
            json!({}),
            sm_spec.clone(),
        ),
    );
    // Same monitor in a namespace the namespace selector does not pick.
    api.apply(
        "servicemonitors",
        monitor(
            "ServiceMonitor",
            "monitoring.coreos.com/v1",
            "other",
            "api",
            json!({}),
            sm_spec.clone(),
        ),
    );
    let pm_spec = json!({"selector": {"matchLabels": {"app": "worker"}}, "podMetricsEndpoints": [{"port": "metrics"}]});
    api.apply(
        "podmonitors",
        monitor(
            "PodMonitor",
            "monitoring.coreos.com/v1",
            "other",
            "workers",
            json!({"release": "otel"}),
            pm_spec.clone(),
        ),
    );
    // Not selected: lacks the release label.
    api.apply(
        "podmonitors",
        monitor(
            "PodMonitor",
            "monitoring.coreos.com/v1",
            "other",
            "unlabeled",
            json!({}),
            pm_spec.clone(),
        ),
    );
    api.apply("scrapeconfigs", monitor("ScrapeConfig", "monitoring.coreos.com/v1alpha1", "shop", "external", json!({}),
        json!({"staticConfigs": [{"targets": ["example.org:443", "example.net:443"], "labels": {"site": "public"}}]})));

    // The CRD defaults `prober.path` to /probe; a real API server fills it (tests/apiserver.rs).
    api.apply(
        "probes",
        monitor(
            "Probe",
            "monitoring.coreos.com/v1",
            "shop",
            "site",
            json!({}),
            json!({"prober": {"url": "blackbox-exporter.observability.svc:9115", "path": "/probe"}, "module": "http_2xx",
                "targets": {"staticConfig": {"static": ["https://shop.example", "https://api.shop.example"],
                    "labels": {"env": "prod"}}}}),
        ),
    );
    let service = start_on(&api).await;
    let addr = service.addr;

    // Jobs: the selected resources and the kubernetes_sd job; not the unselected ones.
    let jobs = until(addr, "/jobs", "the jobs", |v| {
        v.as_object().unwrap().len() == 5
    })
    .await;
    let mut names: Vec<&String> = jobs.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(
        names,
        [
            "annotated-pods",
            "podMonitor/other/workers/0",
            "probe/shop/site",
            "scrapeConfig/shop/external",
            "serviceMonitor/shop/api/0"
        ]
    );

    // Collectors: ready pods matching the selector in the collector namespace.
    let sm = json_of(addr, "/jobs/serviceMonitor%2Fshop%2Fapi%2F0/targets").await;
    assert_eq!(collectors_of(&sm), ["otel-0", "otel-1"]);
    // The ServiceMonitor's targets: the api slice's endpoints on the `metrics` port only.
    assert_eq!(count(&sm), 3);
    let group = sm
        .as_object()
        .unwrap()
        .values()
        .flat_map(|c| c["targets"].as_array().unwrap().clone())
        .next()
        .unwrap();
    assert_eq!(group["labels"]["__meta_kubernetes_service_name"], "api");
    assert_eq!(
        group["labels"]["__meta_kubernetes_endpointslice_port_name"],
        "metrics"
    );
    assert!(group["labels"]["__meta_kubernetes_pod_name"]
        .as_str()
        .unwrap()
        .starts_with("api-"));
    assert_eq!(
        count(&json_of(addr, "/jobs/annotated-pods/targets").await),
        2
    );
    assert_eq!(
        count(&json_of(addr, "/jobs/podMonitor%2Fother%2Fworkers%2F0/targets").await),
        1
    );
    assert_eq!(
        count(&json_of(addr, "/jobs/scrapeConfig%2Fshop%2Fexternal/targets").await),
        2
    );
    // The static Probe: one target per probed URL, labels as discovered; the scrape config
    // rewrites the address to the prober and passes the module.
    let probe = json_of(addr, "/jobs/probe%2Fshop%2Fsite/targets").await;
    assert_eq!(count(&probe), 2);
    let sc = json_of(addr, "/scrape_configs").await;
    let p = &sc["probe/shop/site"];
    assert_eq!(p["metrics_path"], "/probe");
    assert_eq!(p["params"]["module"][0], "http_2xx");
    assert!(p["relabel_configs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["target_label"] == "__address__"
            && r["replacement"] == "blackbox-exporter.observability.svc:9115"));
    // The generated scrape config carries the operator's target labels.
    let sc = json_of(addr, "/scrape_configs").await;
    let rules = sc["serviceMonitor/shop/api/0"]["relabel_configs"]
        .as_array()
        .unwrap();
    assert!(rules.iter().any(|r| r["target_label"] == "namespace"));
    assert_eq!(sc["serviceMonitor/shop/api/0"]["scrape_interval"], "15s");

    // Credentials: a ScrapeConfig naming a Secret that does not exist yet is rejected (the
    // operator rejects it too); once the Secret exists, the job is served with its
    // authorization, the token redacted on plain HTTP.
    api.apply(
        "scrapeconfigs",
        monitor(
            "ScrapeConfig",
            "monitoring.coreos.com/v1alpha1",
            "shop",
            "secured",
            json!({}),
            json!({"staticConfigs": [{"targets": ["10.1.9.9:9090"]}],
                "authorization": {"credentials": {"name": "scrape-token", "key": "token"}}}),
        ),
    );
    // Kubernetes SD with a field selector: the pods the API server would list with it (one
    // here: worker-0 on node-b in namespace other). A field the API server does not serve for
    // pods makes it refuse the list: Prometheus' discovery then finds nothing, and so does
    // ours (the job is served, without targets). A field selector that does not parse is
    // refused with the resource, as prometheus-operator refuses it.
    for (name, field) in [
        (
            "selective",
            "spec.nodeName=node-b,metadata.namespace==other",
        ),
        ("unservable", "status.hostIP=10.0.0.1"),
        ("unparsable", "spec.nodeName"),
    ] {
        api.apply(
            "scrapeconfigs",
            monitor(
                "ScrapeConfig",
                "monitoring.coreos.com/v1alpha1",
                "shop",
                name,
                json!({}),
                json!({"kubernetesSDConfigs": [{"role": "Pod", "selectors": [{"role": "Pod", "field": field}]}]}),
            ),
        );
    }
    api.apply(
        "scrapeconfigs",
        monitor(
            "ScrapeConfig",
            "monitoring.coreos.com/v1alpha1",
            "shop",
            "marker",
            json!({}),
            json!({"staticConfigs": [{"targets": ["10.1.9.8:9090"]}]}),
        ),
    );
    let sc = until(addr, "/scrape_configs", "the marker job", |v| {
        v.get("scrapeConfig/shop/marker").is_some()
    })
    .await;
    assert!(sc.get("scrapeConfig/shop/secured").is_none(), "{sc}");
    assert!(sc.get("scrapeConfig/shop/unparsable").is_none(), "{sc}");
    let selective = until(
        addr,
        "/jobs/scrapeConfig%2Fshop%2Fselective/targets",
        "the field-selected pod",
        |v| count(v) == 1,
    )
    .await;
    let targets = served_targets(&selective);
    assert_eq!(targets[0].1["__meta_kubernetes_pod_name"], "worker-0");
    assert!(sc.get("scrapeConfig/shop/unservable").is_some(), "{sc}");
    assert_eq!(
        count(&json_of(addr, "/jobs/scrapeConfig%2Fshop%2Funservable/targets").await),
        0
    );
    api.apply(
        "secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "scrape-token", "namespace": "shop"},
            "data": {"token": "czNjcjN0"}}),
    );
    let sc = until(
        addr,
        "/scrape_configs",
        "the job with its credentials",
        |v| v.get("scrapeConfig/shop/secured").is_some(),
    )
    .await;
    assert_eq!(
        sc["scrapeConfig/shop/secured"]["authorization"],
        json!({"type": "Bearer", "credentials": "<secret>"})
    );

    // A ScrapeConfig's httpSDConfigs: the allocator fetches the targets itself, with the
    // credentials of the resource's Secret, labelled with the URL.
    let sd = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let sd_addr = sd.local_addr().unwrap();
    let sd_app = axum::Router::new().route(
        "/sd",
        axum::routing::get(|headers: axum::http::HeaderMap| async move {
            let ok = headers
                .get("authorization")
                .is_some_and(|v| v == "Bearer s3cr3t");
            let body = if ok {
                r#"[{"targets":["10.7.0.1:9100","10.7.0.2:9100"],"labels":{"source":"sd"}}]"#
            } else {
                "[]"
            };
            ([("content-type", "application/json")], body)
        }),
    );
    tokio::spawn(async move { axum::serve(sd, sd_app).await.unwrap() });
    api.apply(
        "scrapeconfigs",
        monitor(
            "ScrapeConfig",
            "monitoring.coreos.com/v1alpha1",
            "shop",
            "from-http",
            json!({}),
            json!({"httpSDConfigs": [{"url": format!("http://{sd_addr}/sd"), "refreshInterval": "1s",
                "authorization": {"credentials": {"name": "scrape-token", "key": "token"}}}]}),
        ),
    );
    let t = until(
        addr,
        "/jobs/scrapeConfig%2Fshop%2Ffrom-http/targets",
        "HTTP SD targets",
        |v| count(v) == 2,
    )
    .await;
    let labels = t
        .as_object()
        .unwrap()
        .values()
        .flat_map(|c| c["targets"].as_array().unwrap().clone())
        .next()
        .unwrap()["labels"]
        .clone();
    assert_eq!(labels["__meta_url"], format!("http://{sd_addr}/sd"));
    assert_eq!(labels["source"], "sd");

    // A collector becomes ready, one is deleted: the collector set follows, targets move.
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-2",
            collector.clone(),
            "10.9.0.3",
            "node-c",
            true,
            None,
        ),
    );
    api.delete("pods", "observability", "otel-0");
    let sm = until(
        addr,
        "/jobs/serviceMonitor%2Fshop%2Fapi%2F0/targets",
        "otel-2 in, otel-0 out",
        |v| collectors_of(v) == ["otel-1", "otel-2"],
    )
    .await;
    assert_eq!(count(&sm), 3, "no target lost or doubled");
    // A collector turns unready (long ago): it leaves after the grace period.
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-1",
            collector.clone(),
            "10.9.0.2",
            "node-b",
            false,
            None,
        ),
    );
    until(
        addr,
        "/jobs/serviceMonitor%2Fshop%2Fapi%2F0/targets",
        "otel-1 unready",
        |v| collectors_of(v) == ["otel-2"],
    )
    .await;

    // Endpoint change: a fourth address joins the slice.
    api.apply(
        "endpointslices",
        slice(
            "shop",
            "api-abc",
            "api",
            &[
                ("10.1.0.0", "api-0"),
                ("10.1.0.1", "api-1"),
                ("10.1.0.2", "api-2"),
                ("10.1.0.3", "api-3"),
            ],
        ),
    );
    until(
        addr,
        "/jobs/serviceMonitor%2Fshop%2Fapi%2F0/targets",
        "a fourth endpoint",
        |v| count(v) == 4,
    )
    .await;

    // Monitor changed to select nothing, then the PodMonitor removed: their jobs go away.
    let none = json!({"selector": {"matchLabels": {"app": "nothing"}}, "endpoints": [{"port": "metrics"}]});
    api.apply(
        "servicemonitors",
        monitor(
            "ServiceMonitor",
            "monitoring.coreos.com/v1",
            "shop",
            "api",
            json!({}),
            none,
        ),
    );
    api.delete("podmonitors", "other", "workers");
    until(addr, "/jobs", "monitor jobs gone", |v| {
        let m = v.as_object().unwrap();
        !m.contains_key("serviceMonitor/shop/api/0")
            && !m.contains_key("podMonitor/other/workers/0")
    })
    .await;
    // The ServiceMonitor selects again.
    api.apply(
        "servicemonitors",
        monitor(
            "ServiceMonitor",
            "monitoring.coreos.com/v1",
            "shop",
            "api",
            json!({}),
            sm_spec.clone(),
        ),
    );
    until(
        addr,
        "/jobs/serviceMonitor%2Fshop%2Fapi%2F0/targets",
        "monitor back",
        |v| count(v) == 4,
    )
    .await;

    // 410 Gone: the pod watch's history is compacted and its watches cut; a pod added meanwhile
    // shows up after the re-list, and one deleted meanwhile disappears.
    let before = api.watch_count("pods");
    api.expire("pods");
    let mut p = pod(
        "shop",
        "api-9",
        json!({"app": "api"}),
        "10.1.0.9",
        "node-a",
        true,
        Some(("metrics", 9090)),
    );
    p["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true"});
    api.apply("pods", p);
    api.delete("pods", "shop", "api-0");
    let annotated = until(
        addr,
        "/jobs/annotated-pods/targets",
        "re-list after 410",
        |v| count(v) == 2 && v.to_string().contains("10.1.0.9"),
    )
    .await;
    assert!(
        !annotated.to_string().contains("\"10.1.0.0:9090\""),
        "{annotated}"
    );
    assert!(api.watch_count("pods") > before, "the watch reconnected");

    // A cut connection (no 410): the watcher resumes from its resourceVersion.
    api.cut("endpointslices");
    api.apply(
        "endpointslices",
        slice("shop", "api-abc", "api", &[("10.1.0.1", "api-1")]),
    );
    until(
        addr,
        "/jobs/serviceMonitor%2Fshop%2Fapi%2F0/targets",
        "resume after a cut",
        |v| count(v) == 1,
    )
    .await;

    let (_, metrics) = get(addr, "/metrics").await;
    assert!(
        metrics.contains("opentelemetry_allocator_events_total{source=\"kubernetes\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "opentelemetry_allocator_collectors_allocatable{strategy=\"consistent-hashing\"} 1"
        ),
        "{metrics}"
    );

    service.stop().await;
}

#[test]
fn kubernetes_configuration_errors_name_the_problem() {
    let base = std::path::Path::new(".");
    let bad = |yaml: &str, needle: &str| {
        let err = allocator_service::parse(yaml, base)
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"));
        assert!(err.contains(needle), "{err:?} should name {needle:?}");
    };
    bad("discovery: kubernetes\nconfig: {}", "collector_namespace");
    bad("discovery: kubernetes\ncollector_namespace: o\ncollector_selector: {matchExpressions: [{key: a, operator: Near}]}\nconfig: {}", "collector_selector");
    bad("discovery: kubernetes\ncollector_namespace: o\nprometheus_cr: {enabled: true, allow_namespaces: [a], deny_namespaces: [b]}\nconfig: {}", "exclusive");
    bad(
        "prometheus_cr: {enabled: true}\nconfig: {}",
        "discovery: kubernetes",
    );
    let cr = |keys: &str| {
        format!("discovery: kubernetes\ncollector_namespace: o\nprometheus_cr: {{enabled: true, {keys}}}\nconfig: {{}}")
    };
    bad(
        &cr("scrape_protocols: [PrometheusText0.0.5]"),
        "prometheus_cr.scrape_protocols: unknown scrape protocol \"PrometheusText0.0.5\"",
    );
    bad(
        &cr("scrape_protocols: [PrometheusProto, PrometheusProto]"),
        "prometheus_cr.scrape_protocols: duplicated protocol",
    );
    bad(
        &cr("evaluation_interval: 1 minute"),
        "prometheus_cr.evaluation_interval",
    );
    allocator_service::parse(
        &cr("evaluation_interval: 1m, scrape_protocols: [PrometheusProto], deny_fs_access_through_sms: true"),
        base,
    )
    .unwrap();
    bad(
        "config: {scrape_configs: [{job_name: j, kubernetes_sd_configs: [{role: pod}]}]}",
        "discovery: kubernetes",
    );
    bad("discovery: kubernetes\ncollector_namespace: o\nconfig: {scrape_configs: [{job_name: j, kubernetes_sd_configs: [{role: dns}]}]}", "role: \"dns\" is not supported");
    // Only the in-cluster API server: another one, and HTTP client settings (which Prometheus
    // takes only with api_server), are refused naming the key; the defaults Prometheus writes
    // back load.
    let sd = |entry: &str| {
        format!("discovery: kubernetes\ncollector_namespace: o\nconfig: {{scrape_configs: [{{job_name: j, kubernetes_sd_configs: [{entry}]}}]}}")
    };
    for (entry, key) in [
        ("{role: pod, api_server: 'https://k8s:6443'}", "api_server"),
        ("{role: pod, kubeconfig_file: /k}", "kubeconfig_file"),
        (
            "{role: pod, tls_config: {insecure_skip_verify: true}}",
            "tls_config",
        ),
        ("{role: pod, bearer_token_file: /t}", "bearer_token_file"),
        ("{role: pod, follow_redirects: false}", "follow_redirects"),
    ] {
        let err = allocator_service::parse(&sd(entry), base)
            .err()
            .unwrap_or_else(|| panic!("accepted: {entry}"));
        assert!(
            err.contains(&format!("kubernetes_sd_configs[0].{key}: "))
                && err.contains("in-cluster API server"),
            "{entry}: {err}"
        );
    }
    bad(
        &sd("{role: pod, attach_metadata: {namespace: true}}"),
        "attach_metadata.namespace",
    );
    bad(
        &sd("{role: pod, scrape_everything: true}"),
        "unknown field \"scrape_everything\"",
    );
    bad(
        &sd("{role: pod, selectors: [{role: Pod, label: a}]}"),
        "selectors[0].role",
    );
    bad(
        &sd("{role: service, selectors: [{role: pod, label: a}]}"),
        "selectors[0].role",
    );
    bad(
        &sd("{role: pod, selectors: [{role: pod, field: 'spec.nodeName=a=b'}]}"),
        "selectors[0].field",
    );
    // Selectors (label and field), node metadata and the own namespace load; so does a field
    // the API server refuses for the kind (the discovery finds nothing, as Prometheus').
    allocator_service::parse(
        &sd("{role: endpointslice, kubeconfig_file: '', follow_redirects: true, enable_http2: true, \
             namespaces: {own_namespace: true, names: [a]}, attach_metadata: {node: true, namespace: false}, \
             selectors: [{role: pod, label: 'app in (a,b)', field: 'spec.nodeName!=n\\,1'}, {role: service, field: 'spec.foo=x'}]}"),
        base,
    )
    .unwrap();
    // Prometheus' endpoints role loads (its discovery is tested against the mock API server).
    allocator_service::parse(
        "discovery: kubernetes\ncollector_namespace: o\nconfig: {scrape_configs: [{job_name: j, kubernetes_sd_configs: [{role: endpoints, namespaces: {names: [a]}}]}]}",
        base,
    )
    .unwrap();
    bad("discovery: kubernetes\ncollector_namespace: o\ncollector_not_ready_grace_period: soon\nconfig: {}", "collector_not_ready_grace_period");
    bad("discovery: cloud\nconfig: {}", "cloud");
    // A Go duration (time.ParseDuration), as the Go allocator reads this field: no `y` unit,
    // at most an int64 of nanoseconds.
    bad("discovery: kubernetes\ncollector_namespace: o\ncollector_not_ready_grace_period: 2y\nconfig: {}", "unknown unit \"y\"");
    bad("discovery: kubernetes\ncollector_namespace: o\ncollector_not_ready_grace_period: 9999999999h\nconfig: {}", "too long");
}

const ZONES_CONFIG: &str = r#"
discovery: kubernetes
allocation_strategy: rebalancing
zones:
  max_skew: 0.5
collector_namespace: observability
collector_selector:
  matchLabels: {app.kubernetes.io/component: opentelemetry-collector}
collector_not_ready_grace_period: 1s
config:
  scrape_configs:
    - job_name: pods
      kubernetes_sd_configs: [{role: pod, namespaces: {names: [shop]}}]
"#;

fn node(name: &str, zone: Option<&str>) -> Value {
    let labels = match zone {
        Some(z) => json!({"topology.kubernetes.io/zone": z, "kubernetes.io/hostname": name}),
        None => json!({"kubernetes.io/hostname": name}),
    };
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}})
}

/// Address → collector, from one job's per-collector answers.
fn owners(v: &Value) -> std::collections::BTreeMap<String, String> {
    let mut out = std::collections::BTreeMap::new();
    for (collector, c) in v.as_object().unwrap() {
        for group in c["targets"].as_array().unwrap() {
            for t in group["targets"].as_array().unwrap() {
                out.insert(t.as_str().unwrap().to_owned(), collector.clone());
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zones_keep_targets_on_collectors_of_their_zone() {
    let api = MockApi::new();
    let collector = json!({"app.kubernetes.io/component": "opentelemetry-collector"});
    api.apply("namespaces", namespace("shop", json!({})));
    api.apply("namespaces", namespace("observability", json!({})));
    for (n, z) in [
        ("node-a", "zone-a"),
        ("node-b", "zone-a"),
        ("node-c", "zone-b"),
    ] {
        api.apply("nodes", node(n, Some(z)));
    }
    api.apply("nodes", node("node-d", None));
    for (name, ip, n) in [
        ("otel-a0", "10.9.0.1", "node-a"),
        ("otel-a1", "10.9.0.2", "node-b"),
        ("otel-b0", "10.9.0.3", "node-c"),
    ] {
        api.apply(
            "pods",
            pod("observability", name, collector.clone(), ip, n, true, None),
        );
    }
    // Six targets in zone-a (node-a), three in zone-b (node-c).
    let mut zone_of_target = std::collections::BTreeMap::new();
    for i in 0..9 {
        let (n, z) = if i < 6 {
            ("node-a", "zone-a")
        } else {
            ("node-c", "zone-b")
        };
        let ip = format!("10.1.0.{i}");
        api.apply(
            "pods",
            pod(
                "shop",
                &format!("app-{i}"),
                json!({"app": "app"}),
                &ip,
                n,
                true,
                Some(("metrics", 9090)),
            ),
        );
        zone_of_target.insert(format!("{ip}:9090"), z);
    }
    let mock = api.clone().serve().await;
    let cfg = allocator_service::parse(ZONES_CONFIG, std::path::Path::new(".")).unwrap();
    let service = common::start(cfg, Some(mock_kube::client(mock))).await;
    let addr = service.addr;
    let zone_of_collector = |c: &str| {
        if c.starts_with("otel-a") {
            "zone-a"
        } else {
            "zone-b"
        }
    };
    let path = "/jobs/pods/targets";

    // W = 9 on 3 collectors, skew 0.5: cap ⌈1.5 · 3⌉ = 5, and each zone's targets fit at home.
    let v = until(addr, path, "every target in its zone", |v| {
        let o = owners(v);
        o.len() == 9
            && o.iter()
                .all(|(t, c)| zone_of_target[t] == zone_of_collector(c))
    })
    .await;
    assert_eq!(collectors_of(&v), ["otel-a0", "otel-a1", "otel-b0"]);
    let why = json_of(addr, "/explain?job=pods&address=10.1.0.7:9090").await;
    assert_eq!(why[0]["detail"]["zone"], "zone-b", "{why}");
    assert_eq!(why[0]["detail"]["collector_zone"], "zone-b", "{why}");

    // zone-b's only collector leaves: its targets go to zone-a's collectors (nowhere else)...
    api.delete("pods", "observability", "otel-b0");
    until(addr, path, "zone-b's targets on zone-a", |v| {
        let o = owners(v);
        o.len() == 9 && o.values().all(|c| c.starts_with("otel-a"))
    })
    .await;
    // ... and come home when a zone-b collector comes back.
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-b1",
            collector.clone(),
            "10.9.0.4",
            "node-c",
            true,
            None,
        ),
    );
    until(addr, path, "zone-b's targets home again", |v| {
        let o = owners(v);
        o.len() == 9
            && o.iter()
                .all(|(t, c)| zone_of_target[t] == zone_of_collector(c))
    })
    .await;

    // node-c changes zone: its targets and its collector are now in zone-a, all of one zone.
    api.apply("nodes", node("node-c", Some("zone-a")));
    let why = until(
        addr,
        "/explain?job=pods&address=10.1.0.7:9090",
        "node-c in zone-a",
        |v| v[0]["detail"]["zone"] == "zone-a",
    )
    .await;
    assert_eq!(why[0]["detail"]["collector_zone"], "zone-a", "{why}");
    service.stop().await;
}

#[test]
fn zones_configuration_errors_name_the_problem() {
    let base = std::path::Path::new(".");
    let err = allocator_service::parse(
        &ZONES_CONFIG.replace(
            "allocation_strategy: rebalancing",
            "allocation_strategy: consistent-hashing",
        ),
        base,
    )
    .err()
    .unwrap();
    assert!(
        err.contains("zones: only the rebalancing strategy"),
        "{err}"
    );
    let err =
        allocator_service::parse(&ZONES_CONFIG.replace("max_skew: 0.5", "max_skew: -1"), base)
            .err()
            .unwrap();
    assert!(
        err.contains("zones.max_skew must be a finite number"),
        "{err}"
    );
    let err = allocator_service::parse(&ZONES_CONFIG.replace("max_skew: 0.5", "label: \"\""), base)
        .err()
        .unwrap();
    assert!(err.contains("zones.label must not be empty"), "{err}");
    let file_mode = "allocation_strategy: rebalancing\nzones: {max_skew: 0.2}\ncollectors: [a]\nconfig: {scrape_configs: []}\n";
    let err = allocator_service::parse(file_mode, base).err().unwrap();
    assert!(err.contains("zones needs discovery: kubernetes"), "{err}");
}

/// Namespaces `shop` (team shop) and `observability`, one ready collector there, and in `shop`
/// the Service `api` (app=api) with one endpoint.
fn one_collector_and_the_api_service(api: &MockApi) {
    let collector = json!({"app.kubernetes.io/component": "opentelemetry-collector"});
    api.apply("namespaces", namespace("shop", json!({"team": "shop"})));
    api.apply("namespaces", namespace("observability", json!({})));
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-0",
            collector,
            "10.9.0.1",
            "node-a",
            true,
            None,
        ),
    );
    api.apply("services", service("shop", "api", json!({"app": "api"})));
    api.apply(
        "endpointslices",
        slice("shop", "api-abc", "api", &[("10.1.0.1", "api-0")]),
    );
}

/// A role like the Operator documentation's minimal one for the Go allocator with
/// `prometheusCR`: no `nodes` list here, no ScrapeConfigs, Probes, Secrets or ConfigMaps list.
/// The Go allocator serves what it may read; so must we, rather than stay unready. Nodes are
/// watched for `attachMetadata.node`: while nothing asks for node metadata their watch must not
/// hold readiness back; once a resource asks for it, targets without their node's labels would
/// be wrong, so the allocator waits (not ready) rather than serve them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forbidden_kinds_hold_readiness_only_when_an_answer_needs_them() {
    let api = MockApi::new();
    for kind in ["nodes", "scrapeconfigs", "probes", "secrets", "configmaps"] {
        api.forbid(kind);
    }
    one_collector_and_the_api_service(&api);
    let sm_spec =
        json!({"selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics"}]});
    let sm = |name: &str, spec: Value| {
        monitor(
            "ServiceMonitor",
            "monitoring.coreos.com/v1",
            "shop",
            name,
            json!({}),
            spec,
        )
    };
    api.apply("servicemonitors", sm("api", sm_spec.clone()));
    let service = start_on(&api).await;
    let addr = service.addr;

    until(addr, "/jobs", "the monitor's job", |v| {
        v.as_object()
            .unwrap()
            .contains_key("serviceMonitor/shop/api/0")
    })
    .await;

    let mut with_node = sm_spec;
    with_node["attachMetadata"] = json!({"node": true});
    api.apply("servicemonitors", sm("api-nodes", with_node));
    let mut readiness = (200, String::new());
    for _ in 0..100 {
        readiness = get(addr, "/readyz").await;
        if readiness.0 != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        readiness.0, 503,
        "node metadata asked for while nodes cannot be listed"
    );
    assert!(
        readiness.1.contains("complete list of nodes"),
        "{}",
        readiness.1
    );
}

/// The Go allocator's `prometheus_cr` keys that shape the generated jobs: they inherit the
/// generated configuration's global section (its scrape protocols from
/// `prometheus_cr.scrape_protocols`), not `config.global`; `deny_fs_access_through_sms` drops a
/// generated job that would read a file of the collector's host; `evaluation_interval` is
/// accepted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_cr_protocols_global_and_host_file_jobs() {
    let api = MockApi::new();
    one_collector_and_the_api_service(&api);
    let mut annotated = pod(
        "shop",
        "web-0",
        json!({"app": "web"}),
        "10.1.1.1",
        "node-a",
        true,
        Some(("metrics", 8080)),
    );
    annotated["metadata"]["annotations"] = json!({"prometheus.io/scrape": "true"});
    api.apply("pods", annotated);
    let sm = |name: &str, endpoint: Value| {
        let spec = json!({"selector": {"matchLabels": {"app": "api"}}, "endpoints": [endpoint]});
        monitor(
            "ServiceMonitor",
            "monitoring.coreos.com/v1",
            "shop",
            name,
            json!({}),
            spec,
        )
    };
    api.apply("servicemonitors", sm("plain", json!({"port": "metrics"})));
    api.apply(
        "servicemonitors",
        sm(
            "token-file",
            json!({"port": "metrics", "bearerTokenFile": "/var/run/secrets/kubernetes.io/serviceaccount/token"}),
        ),
    );
    api.apply(
        "servicemonitors",
        sm(
            "ca-file",
            json!({"port": "metrics", "scheme": "https", "tlsConfig": {"caFile": "/etc/ca.pem"}}),
        ),
    );
    let mock = api.clone().serve().await;
    let config = CONFIG
        .replace(
            "  scrape_interval: 15s\n",
            "  scrape_interval: 15s\n  evaluation_interval: 1m\n  scrape_protocols: [PrometheusText0.0.4]\n  deny_fs_access_through_sms: true\n",
        )
        .replace("config:\n", "config:\n  global: {sample_limit: 5}\n");
    let cfg = allocator_service::parse(&config, std::path::Path::new(".")).unwrap();
    let service = common::start(cfg, Some(mock_kube::client(mock))).await;
    let addr = service.addr;

    let jobs = until(addr, "/jobs", "the jobs", |v| {
        let o = v.as_object().unwrap();
        o.contains_key("serviceMonitor/shop/plain/0") && o.contains_key("annotated-pods")
    })
    .await;
    let mut names: Vec<&String> = jobs.as_object().unwrap().keys().collect();
    names.sort();
    assert_eq!(names, ["annotated-pods", "serviceMonitor/shop/plain/0"]);
    let configs = json_of(addr, "/scrape_configs").await;
    let generated = &configs["serviceMonitor/shop/plain/0"];
    assert_eq!(
        generated["scrape_protocols"],
        json!(["PrometheusText0.0.4"])
    );
    assert!(generated.get("sample_limit").is_none(), "{generated}");
    let own = &configs["annotated-pods"];
    assert_eq!(own["sample_limit"], json!(5));
    assert_eq!(
        own["scrape_protocols"],
        json!([
            "OpenMetricsText1.0.0",
            "OpenMetricsText0.0.1",
            "PrometheusText1.0.0",
            "PrometheusText0.0.4"
        ])
    );
}

/// A Secret's `data` entry: standard base64 of the text.
fn b64(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}

fn basic_auth_secret(ns: &str, name: &str, user: &str, password: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": ns},
        "data": {"user": b64(user), "password": b64(password)}})
}

/// A ServiceMonitor of the `api` Service whose endpoint authenticates with the Secret `secret`
/// of its namespace.
fn basic_auth_monitor(name: &str, secret: &str) -> Value {
    monitor(
        "ServiceMonitor",
        "monitoring.coreos.com/v1",
        "shop",
        name,
        json!({}),
        json!({"selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics",
            "basicAuth": {"username": {"name": secret, "key": "user"},
                          "password": {"name": secret, "key": "password"}}}]}),
    )
}

/// The by-name tests' cluster: a role that may not list Secrets or ConfigMaps, one collector,
/// the `api` Service, and its ServiceMonitor `api` authenticating with the Secret `shop/creds`
/// (alice, pw1).
fn by_name_cluster(api: &MockApi) {
    api.forbid("secrets");
    api.forbid("configmaps");
    one_collector_and_the_api_service(api);
    api.apply(
        "secrets",
        basic_auth_secret("shop", "creds", "alice", "pw1"),
    );
    api.apply("servicemonitors", basic_auth_monitor("api", "creds"));
}

/// The configuration of the by-name tests: secrets shown on plain HTTP (to compare them),
/// `extra` under `prometheus_cr`.
fn by_name_config(extra: &str) -> allocator_service::Loaded {
    let text = format!(
        "config: {{}}\ndiscovery: kubernetes\ncollector_namespace: observability\n\
         allow_insecure_auth_secrets: true\n\
         collector_selector:\n  matchLabels: {{app.kubernetes.io/component: opentelemetry-collector}}\n\
         prometheus_cr:\n  enabled: true\n  service_monitor_selector: {{}}\n{extra}"
    );
    allocator_service::parse(&text, std::path::Path::new(".")).unwrap()
}

/// The served `basic_auth` of the first job of ServiceMonitor `shop/name`.
fn served_basic_auth(sc: &Value, name: &str) -> Value {
    sc[format!("serviceMonitor/shop/{name}/0")]["basic_auth"].clone()
}

/// The Operator documentation's RBAC for the Go allocator: `get` on Secrets, `list` and
/// `watch` only in the collector namespace, nothing on ConfigMaps but `get`. prometheus-
/// operator's assets store reads a Secret a monitor names with a GET and keeps it; a GET that
/// fails (403, 404) rejects the monitor, and the next read that succeeds brings it back. So:
/// served with the Secret's value; a changed Secret is served changed (here within the
/// periodic re-read, shortened to 300 ms); a Secret that is missing, or that the role may not
/// get, refuses its monitor only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_are_read_by_name_when_the_role_may_only_get_them() {
    let api = MockApi::new();
    by_name_cluster(&api);
    api.allow_in("secrets", "observability");
    api.apply("servicemonitors", basic_auth_monitor("orphan", "absent"));
    let mock = api.clone().serve().await;
    let mut cfg = by_name_config("");
    assert_eq!(cfg.by_name.secret_namespaces, ["observability"]);
    cfg.by_name.timing.refresh = Duration::from_millis(300);
    let service = common::start(cfg, Some(mock_kube::client(mock))).await;
    let addr = service.addr;

    let sc = until(
        addr,
        "/scrape_configs",
        "the monitor with its Secret",
        |v| v.get("serviceMonitor/shop/api/0").is_some(),
    )
    .await;
    assert_eq!(
        served_basic_auth(&sc, "api"),
        json!({"username": "alice", "password": "pw1"})
    );
    // The Secret that does not exist (404): its monitor is refused, the other served.
    assert!(sc.get("serviceMonitor/shop/orphan/0").is_none(), "{sc}");
    assert!(api.get_count("secrets") >= 2);

    api.apply(
        "secrets",
        basic_auth_secret("shop", "creds", "alice", "pw2"),
    );
    until(addr, "/scrape_configs", "the changed password", |v| {
        served_basic_auth(v, "api")["password"] == "pw2"
    })
    .await;

    // The role loses `get`: the monitor is refused once a re-read is refused.
    api.forbid_get("secrets", true);
    until(addr, "/jobs", "the monitor refused", |v| {
        !v.as_object()
            .unwrap()
            .contains_key("serviceMonitor/shop/api/0")
    })
    .await;
    // And served again after a read succeeds; the missing Secret, once created, too.
    api.forbid_get("secrets", false);
    api.apply("secrets", basic_auth_secret("shop", "absent", "bob", "pw3"));
    let sc = until(addr, "/scrape_configs", "both monitors back", |v| {
        v.get("serviceMonitor/shop/api/0").is_some()
            && v.get("serviceMonitor/shop/orphan/0").is_some()
    })
    .await;
    assert_eq!(
        served_basic_auth(&sc, "orphan"),
        json!({"username": "bob", "password": "pw3"})
    );
}

/// `prometheus_cr.secret_namespaces`: the Go allocator watches the Secrets' metadata there and
/// reads a cached Secret again when it changes. With the periodic re-read far away (10 min),
/// a change of a Secret in `shop` is served within the test's 10 s only through that watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secret_namespaces_have_changed_secrets_read_again_at_once() {
    let api = MockApi::new();
    by_name_cluster(&api);
    api.allow_in("secrets", "shop");
    let mock = api.clone().serve().await;
    let mut cfg = by_name_config("  secret_namespaces: [shop, elsewhere]\n");
    assert_eq!(cfg.by_name.secret_namespaces, ["shop", "elsewhere"]);
    cfg.by_name.timing.refresh = Duration::from_secs(600);
    let service = common::start(cfg, Some(mock_kube::client(mock))).await;
    let addr = service.addr;
    until(
        addr,
        "/scrape_configs",
        "the monitor with its Secret",
        |v| served_basic_auth(v, "api")["password"] == "pw1",
    )
    .await;
    // Let the watch list before the change (a change before its list is read on its list).
    tokio::time::sleep(Duration::from_millis(500)).await;
    api.apply(
        "secrets",
        basic_auth_secret("shop", "creds", "alice", "pw2"),
    );
    until(addr, "/scrape_configs", "the changed password", |v| {
        served_basic_auth(v, "api")["password"] == "pw2"
    })
    .await;
    // Deleted: read again, 404, refused (the Go allocator drops it from its store and its
    // next GET fails).
    api.delete("secrets", "shop", "creds");
    until(addr, "/jobs", "the monitor refused", |v| {
        !v.as_object()
            .unwrap()
            .contains_key("serviceMonitor/shop/api/0")
    })
    .await;
}

/// The first read of a Secret is awaited: not ready (naming it) rather than serving its monitor
/// as refused; a read that does not answer is given up after the timeout (1 s here), the
/// monitor refused and the rest served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_first_read_holds_readiness_and_a_hung_one_times_out() {
    let api = MockApi::new();
    by_name_cluster(&api);
    api.delay_get("secrets", Some(Duration::from_secs(3)));
    let mock = api.clone().serve().await;
    let service = common::start(by_name_config(""), Some(mock_kube::client(mock))).await;
    let addr = service.addr;
    let mut seen = None;
    for _ in 0..100 {
        let (code, body) = get(addr, "/readyz").await;
        assert_ne!(code, 200, "ready before the Secret was read");
        if body.contains("first read by name of Secret shop/creds") {
            seen = Some(body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(seen.is_some(), "{:?}", get(addr, "/readyz").await);
    let sc = until(addr, "/scrape_configs", "the monitor", |v| {
        v.get("serviceMonitor/shop/api/0").is_some()
    })
    .await;
    assert_eq!(served_basic_auth(&sc, "api")["password"], "pw1");
    drop(service);

    // A GET that hangs: given up after the timeout, the monitor refused, the rest served.
    api.delay_get("secrets", Some(Duration::from_secs(3600)));
    api.apply("servicemonitors", basic_auth_monitor("hung", "other"));
    api.apply(
        "servicemonitors",
        monitor(
            "ServiceMonitor",
            "monitoring.coreos.com/v1",
            "shop",
            "plain",
            json!({}),
            json!({"selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics"}]}),
        ),
    );
    api.delete("servicemonitors", "shop", "api");
    let mock = api.clone().serve().await;
    let mut cfg = by_name_config("");
    cfg.by_name.timing.timeout = Duration::from_secs(1);
    let started = std::time::Instant::now();
    let service = common::start(cfg, Some(mock_kube::client(mock))).await;
    let jobs = until(service.addr, "/jobs", "the plain monitor", |v| {
        v.as_object()
            .unwrap()
            .contains_key("serviceMonitor/shop/plain/0")
    })
    .await;
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "ready before the timeout"
    );
    assert!(
        !jobs
            .as_object()
            .unwrap()
            .contains_key("serviceMonitor/shop/hung/0"),
        "{jobs}"
    );
}

/// After the first view, a first read in flight holds back only the resources' jobs: they stay
/// as last computed (the Go allocator serves its last configuration while its GET runs) while
/// the rest of discovery flows — a collector that joins is counted and given work before the
/// read answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_read_after_the_first_view_holds_back_only_the_resources_jobs() {
    let api = MockApi::new();
    by_name_cluster(&api);
    api.apply("secrets", basic_auth_secret("shop", "late", "bob", "pw2"));
    let mock = api.clone().serve().await;
    let service = common::start(by_name_config(""), Some(mock_kube::client(mock))).await;
    let addr = service.addr;
    until(addr, "/scrape_configs", "the first monitor", |v| {
        v.get("serviceMonitor/shop/api/0").is_some()
    })
    .await;

    api.delay_get("secrets", Some(Duration::from_secs(6)));
    api.apply("servicemonitors", basic_auth_monitor("late", "late"));
    let started = std::time::Instant::now();
    api.apply(
        "pods",
        pod(
            "observability",
            "otel-1",
            json!({"app.kubernetes.io/component": "opentelemetry-collector"}),
            "10.9.0.2",
            "node-a",
            true,
            None,
        ),
    );
    let mut counted = false;
    while started.elapsed() < Duration::from_secs(5) {
        let (_, metrics) = get(addr, "/metrics").await;
        if metrics
            .lines()
            .any(|l| l == "opentelemetry_allocator_collectors_discovered 2")
        {
            counted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(counted, "the new collector waited for the Secret's read");
    let (code, _) = get(addr, "/readyz").await;
    assert_eq!(code, 200, "ready with the last configuration");
    let jobs = json_of(addr, "/jobs").await;
    assert!(
        jobs.get("serviceMonitor/shop/api/0").is_some()
            && jobs.get("serviceMonitor/shop/late/0").is_none(),
        "{jobs}"
    );
    let sc = until(addr, "/scrape_configs", "the late monitor once read", |v| {
        v.get("serviceMonitor/shop/late/0").is_some()
    })
    .await;
    assert_eq!(served_basic_auth(&sc, "late")["password"], "pw2");
}

/// A Probe of two static targets (the CRD defaults `prober.path`; a real API server fills it).
fn site_probe(name: &str) -> Value {
    monitor(
        "Probe",
        "monitoring.coreos.com/v1",
        "shop",
        name,
        json!({}),
        json!({"prober": {"url": "blackbox-exporter.observability.svc:9115", "path": "/probe"}, "module": "http_2xx",
            "targets": {"staticConfig": {"static": ["https://shop.example"]}}}),
    )
}

/// The service with [`CONFIG`] on the mock API server `api` (served from now on).
async fn start_on(api: &MockApi) -> common::Running {
    let mock = api.clone().serve().await;
    let cfg = allocator_service::parse(CONFIG, std::path::Path::new(".")).unwrap();
    common::start(cfg, Some(mock_kube::client(mock))).await
}

/// The ServiceMonitor `shop/api` of the `api` Service's `metrics` port.
fn api_monitor() -> Value {
    monitor(
        "ServiceMonitor",
        "monitoring.coreos.com/v1",
        "shop",
        "api",
        json!({}),
        json!({"selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics"}]}),
    )
}

fn has_job(v: &Value, job: &str) -> bool {
    v.as_object().unwrap().contains_key(job)
}

/// Many clusters install only some of prometheus-operator's CRDs. The Go allocator skips the
/// informer of a CRD it does not find and serves the rest; so must we (a 404 on the kind), not
/// stay unready. A CRD installed later is picked up; one deleted (its objects with it) is read
/// as none again, while ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_crd_is_read_as_none_and_picked_up_once_installed() {
    let api = MockApi::new();
    one_collector_and_the_api_service(&api);
    api.installed("scrapeconfigs", false);
    api.installed("probes", false);
    api.apply("servicemonitors", api_monitor());
    let service = start_on(&api).await;
    let addr = service.addr;
    until(
        addr,
        "/jobs",
        "the monitor's job without the other CRDs",
        |v| has_job(v, "serviceMonitor/shop/api/0"),
    )
    .await;
    assert_eq!(get(addr, "/readyz").await.0, 200);

    api.installed("probes", true);
    api.apply("probes", site_probe("site"));
    until(addr, "/jobs", "the probe once its CRD is installed", |v| {
        has_job(v, "probe/shop/site")
    })
    .await;

    // The CRD deleted, with its objects; the watch breaks and the kind answers 404.
    api.installed("probes", false);
    api.cut("probes");
    // Taken as gone once the 404 has lasted 10 s (then at the next attempt, ~12 s).
    until_within(
        addr,
        "/jobs",
        "the probe gone with its CRD",
        Duration::from_secs(30),
        |v| !has_job(v, "probe/shop/site") && has_job(v, "serviceMonitor/shop/api/0"),
    )
    .await;
    assert_eq!(get(addr, "/readyz").await.0, 200);
}

/// The role changes after the first lists. A kind the allocator may go without is then read as
/// none, as a fresh process with that role reads it (not its last list, served forever), and
/// comes back when granted again. A kind every answer needs keeps its last list but makes the
/// allocator not ready, naming it, until it is listed again. Both once the refusal has lasted
/// 10 s; a shorter one changes nothing (see the next test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kinds_refused_after_their_list_are_read_as_none_or_reported() {
    let api = MockApi::new();
    one_collector_and_the_api_service(&api);
    api.apply("servicemonitors", api_monitor());
    let service = start_on(&api).await;
    let addr = service.addr;
    until(addr, "/jobs", "the monitor's job", |v| {
        has_job(v, "serviceMonitor/shop/api/0")
    })
    .await;

    api.forbid("servicemonitors");
    api.cut("servicemonitors");
    // Taken as refused once the 403 has lasted 10 s (then at the next attempt, ~12 s).
    until_within(
        addr,
        "/jobs",
        "the monitor gone with the role's grant",
        Duration::from_secs(30),
        |v| !has_job(v, "serviceMonitor/shop/api/0"),
    )
    .await;
    assert_eq!(get(addr, "/readyz").await.0, 200);
    // Retried with a pause doubling to 30 s while refused: back at the next attempt.
    api.permit("servicemonitors");
    until_within(
        addr,
        "/jobs",
        "the monitor back",
        Duration::from_secs(40),
        |v| has_job(v, "serviceMonitor/shop/api/0"),
    )
    .await;

    api.forbid("pods");
    api.cut("pods");
    // Taken as lost once the refusal has lasted 10 s (a restarting API server refuses for a
    // moment), then reported.
    let mut readiness = (200, String::new());
    for _ in 0..1000 {
        readiness = get(addr, "/readyz").await;
        if readiness.0 != 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(readiness.0, 503, "pods refused, still ready");
    assert!(readiness.1.contains("list of pods"), "{}", readiness.1);
    // The last state stays served meanwhile.
    assert!(has_job(
        &json_of(addr, "/jobs").await,
        "serviceMonitor/shop/api/0"
    ));
    api.permit("pods");
    for _ in 0..1600 {
        if get(addr, "/readyz").await.0 == 200 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "not ready again after pods were granted: {:?}",
        get(addr, "/readyz").await
    );
}

/// A kind that cannot be listed is retried with a growing pause (client-go's 800 ms doubling
/// to 30 s), not about once a second forever: over 8 s, at most the lists at 0, 0.8, 2.4 and
/// 5.6 s (and one more for a slow start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_kind_is_retried_with_a_growing_pause() {
    let api = MockApi::new();
    one_collector_and_the_api_service(&api);
    api.forbid("ingresses");
    let service = start_on(&api).await;
    let started = std::time::Instant::now();
    until(service.addr, "/jobs", "ready", |_| true).await;
    tokio::time::sleep(Duration::from_secs(8).saturating_sub(started.elapsed())).await;
    let lists = api.list_count("ingresses");
    assert!(
        (2..=5).contains(&lists),
        "{lists} lists of a refused kind in 8 s"
    );
}

/// An API server that has just restarted refuses lists for a moment (its authorizer not yet
/// synced). A refusal that short must not read a listed kind as none (every job of it gone
/// while ready) nor make the allocator not ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_brief_refusal_after_the_list_changes_nothing() {
    let api = MockApi::new();
    one_collector_and_the_api_service(&api);
    api.apply("servicemonitors", api_monitor());
    let service = start_on(&api).await;
    let addr = service.addr;
    until(addr, "/jobs", "the monitor's job", |v| {
        has_job(v, "serviceMonitor/shop/api/0")
    })
    .await;
    for kind in ["servicemonitors", "pods"] {
        api.forbid(kind);
        api.cut(kind);
    }
    let started = std::time::Instant::now();
    let mut permitted = false;
    while started.elapsed() < Duration::from_secs(5) {
        if !permitted && started.elapsed() >= Duration::from_secs(2) {
            api.permit("servicemonitors");
            api.permit("pods");
            permitted = true;
        }
        let (code, body) = get(addr, "/readyz").await;
        assert_eq!(code, 200, "not ready after a brief refusal: {body}");
        assert!(
            has_job(&json_of(addr, "/jobs").await, "serviceMonitor/shop/api/0"),
            "the monitor's job gone after a brief refusal"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A v1 Endpoints object `ns/name` with one subset: `ready` and `not_ready` addresses (IP, pod
/// name), ports `metrics` 9090 and `web` 8080.
fn endpoints(ns: &str, name: &str, ready: &[(&str, &str)], not_ready: &[(&str, &str)]) -> Value {
    let addresses = |list: &[(&str, &str)]| -> Vec<Value> {
        list.iter()
            .map(|(ip, pod)| {
                json!({"ip": ip, "nodeName": "node-a",
                    "targetRef": {"kind": "Pod", "name": pod, "namespace": ns}})
            })
            .collect()
    };
    json!({"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns},
        "subsets": [{"addresses": addresses(ready), "notReadyAddresses": addresses(not_ready),
            "ports": [{"name": "metrics", "port": 9090, "protocol": "TCP"}, {"name": "web", "port": 8080}]}]})
}

/// Every (address, labels) a job's `/targets` answer serves, sorted by address.
fn served_targets(v: &Value) -> Vec<(String, Value)> {
    let mut out: Vec<(String, Value)> = v
        .as_object()
        .unwrap()
        .values()
        .flat_map(|c| c["targets"].as_array().unwrap().clone())
        .flat_map(|g| {
            let labels = g["labels"].clone();
            g["targets"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| (a.as_str().unwrap().to_owned(), labels.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// The api Service's pods `api-0` (ready) and `api-1` (not ready) behind its Endpoints.
fn api_endpoints(api: &MockApi) {
    for (name, ip, ready) in [("api-0", "10.1.0.1", true), ("api-1", "10.1.0.2", false)] {
        let p = pod(
            "shop",
            name,
            json!({"app": "api"}),
            ip,
            "node-a",
            ready,
            Some(("metrics", 9090)),
        );
        api.apply("pods", p);
    }
    api.apply(
        "endpoints",
        endpoints(
            "shop",
            "api",
            &[("10.1.0.1", "api-0")],
            &[("10.1.0.2", "api-1")],
        ),
    );
}

/// Readiness after at most 10 s of polling for 200.
async fn readiness_turns_good(addr: std::net::SocketAddr) -> (u16, String) {
    let mut readiness = (0, String::new());
    for _ in 0..200 {
        readiness = get(addr, "/readyz").await;
        if readiness.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    readiness
}

/// A `kubernetes_sd_configs` job of role `endpoints`: the Endpoints watch starts with the
/// service; while the role may not list them the job has no targets and the allocator is ready
/// (as the Go allocator, whose discovery for that job fails alone); then the targets carry
/// Prometheus' endpoints-role labels: one per address and port, ready and not-ready
/// addresses, the service's and the pod's labels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kubernetes_sd_job_of_role_endpoints() {
    let api = MockApi::new();
    api.forbid("endpoints");
    one_collector_and_the_api_service(&api);
    api_endpoints(&api);
    let config = r#"
discovery: kubernetes
collector_namespace: observability
collector_selector:
  matchLabels: {app.kubernetes.io/component: opentelemetry-collector}
config:
  scrape_configs:
    - job_name: eps
      kubernetes_sd_configs: [{role: endpoints, namespaces: {names: [shop]}}]
"#;
    let mock = api.clone().serve().await;
    let cfg = allocator_service::parse(config, std::path::Path::new(".")).unwrap();
    let service = common::start(cfg, Some(mock_kube::client(mock))).await;
    let addr = service.addr;
    let readiness = readiness_turns_good(addr).await;
    assert_eq!(readiness.0, 200, "{}", readiness.1);
    assert!(
        api.list_count("endpoints") >= 1,
        "the role's list was tried"
    );
    let (_, none) = get(addr, "/jobs/eps/targets").await;
    assert!(
        !none.contains("10.1.0."),
        "targets without the list: {none}"
    );

    api.permit("endpoints");
    let v = until_within(
        addr,
        "/jobs/eps/targets",
        "the Endpoints' targets",
        Duration::from_secs(30),
        |v| count(v) == 4,
    )
    .await;
    let targets = served_targets(&v);
    let addresses: Vec<&str> = targets.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        addresses,
        [
            "10.1.0.1:8080",
            "10.1.0.1:9090",
            "10.1.0.2:8080",
            "10.1.0.2:9090"
        ]
    );
    let (_, metrics) = &targets[1];
    for (k, v) in [
        ("__meta_kubernetes_namespace", "shop"),
        ("__meta_kubernetes_endpoints_name", "api"),
        ("__meta_kubernetes_service_name", "api"),
        ("__meta_kubernetes_service_label_app", "api"),
        ("__meta_kubernetes_endpoint_port_name", "metrics"),
        ("__meta_kubernetes_endpoint_port_protocol", "TCP"),
        ("__meta_kubernetes_endpoint_ready", "true"),
        ("__meta_kubernetes_endpoint_node_name", "node-a"),
        ("__meta_kubernetes_endpoint_address_target_kind", "Pod"),
        ("__meta_kubernetes_endpoint_address_target_name", "api-0"),
        ("__meta_kubernetes_pod_name", "api-0"),
        ("__meta_kubernetes_pod_container_port_name", "metrics"),
    ] {
        assert_eq!(metrics[k], v, "{k}: {metrics}");
    }
    assert_eq!(targets[3].1["__meta_kubernetes_endpoint_ready"], "false");
    assert_eq!(targets[3].1["__meta_kubernetes_pod_name"], "api-1");
    // The port without a protocol: its label is there, empty.
    assert_eq!(targets[0].1["__meta_kubernetes_endpoint_port_protocol"], "");
}

/// A ServiceMonitor with `serviceDiscoveryRole: Endpoints` is served as prometheus-operator
/// generates it (its port kept by `__meta_kubernetes_endpoint_port_name`, its pod from the
/// address's target). The Endpoints are watched only while such a job exists (the
/// ServiceMonitor's, a ScrapeConfig's of role Endpoints): not before, and not after the last is
/// gone (an expired watch would list again); while they cannot be listed, the job has no
/// targets and the allocator stays ready, as the Go allocator.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoints_are_watched_only_while_a_resource_uses_the_role() {
    let api = MockApi::new();
    one_collector_and_the_api_service(&api);
    api_endpoints(&api);
    api.apply("servicemonitors", api_monitor());
    let service = start_on(&api).await;
    let addr = service.addr;
    until(addr, "/jobs", "the EndpointSlice monitor's job", |v| {
        has_job(v, "serviceMonitor/shop/api/0")
    })
    .await;
    assert_eq!(
        api.list_count("endpoints"),
        0,
        "listed while no job uses the role"
    );

    let eps_monitor = monitor(
        "ServiceMonitor",
        "monitoring.coreos.com/v1",
        "shop",
        "api-eps",
        json!({}),
        json!({"serviceDiscoveryRole": "Endpoints", "selector": {"matchLabels": {"app": "api"}},
            "endpoints": [{"port": "metrics"}]}),
    );
    api.apply("servicemonitors", eps_monitor.clone());
    let path = "/jobs/serviceMonitor%2Fshop%2Fapi-eps%2F0/targets";
    until(addr, "/jobs", "the Endpoints monitor's job", |v| {
        has_job(v, "serviceMonitor/shop/api-eps/0")
    })
    .await;
    let v = until(addr, path, "its targets", |v| count(v) == 2).await;
    let targets = served_targets(&v);
    assert_eq!(targets[0].0, "10.1.0.1:9090");
    assert_eq!(targets[1].0, "10.1.0.2:9090");
    for (t, pod) in targets.iter().zip(["api-0", "api-1"]) {
        assert_eq!(t.1["__meta_kubernetes_endpoint_port_name"], "metrics");
        assert_eq!(t.1["__meta_kubernetes_pod_name"], pod);
    }
    assert!(api.list_count("endpoints") >= 1);

    // No job of the role any more: the watch ends, so an expired watch lists nothing again.
    api.delete("servicemonitors", "shop", "api-eps");
    until(addr, "/jobs", "the Endpoints monitor's job gone", |v| {
        !has_job(v, "serviceMonitor/shop/api-eps/0")
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lists = api.list_count("endpoints");
    api.expire("endpoints");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        api.list_count("endpoints"),
        lists,
        "the Endpoints watch still runs"
    );

    // Asked for again while the role may not list them: the job without targets, ready; then
    // served once it may.
    api.forbid("endpoints");
    let tried = api.list_count("endpoints");
    api.apply("servicemonitors", eps_monitor);
    let started = std::time::Instant::now();
    while api.list_count("endpoints") == tried && started.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        api.list_count("endpoints") > tried,
        "the watch started again"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, none) = get(addr, path).await;
    assert!(
        !none.contains("10.1.0."),
        "targets without the list: {none}"
    );
    let readiness = readiness_turns_good(addr).await;
    assert_eq!(readiness.0, 200, "{}", readiness.1);
    api.permit("endpoints");
    until_within(
        addr,
        "/jobs",
        "the job again",
        Duration::from_secs(30),
        |v| has_job(v, "serviceMonitor/shop/api-eps/0"),
    )
    .await;
    until(addr, path, "its targets again", |v| count(v) == 2).await;

    // A ScrapeConfig of role Endpoints keeps the watch when the ServiceMonitor goes.
    let sc = monitor(
        "ScrapeConfig",
        "monitoring.coreos.com/v1alpha1",
        "shop",
        "eps",
        json!({}),
        json!({"kubernetesSDConfigs": [{"role": "Endpoints"}]}),
    );
    api.apply("scrapeconfigs", sc);
    until(
        addr,
        "/jobs/scrapeConfig%2Fshop%2Feps/targets",
        "the ScrapeConfig's targets",
        |v| count(v) == 4,
    )
    .await;
    api.delete("servicemonitors", "shop", "api-eps");
    until(
        addr,
        "/jobs",
        "the Endpoints monitor's job gone again",
        |v| !has_job(v, "serviceMonitor/shop/api-eps/0"),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let lists = api.list_count("endpoints");
    api.expire("endpoints");
    let started = std::time::Instant::now();
    while api.list_count("endpoints") == lists && started.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        api.list_count("endpoints") > lists,
        "the ScrapeConfig's watch ended with the ServiceMonitor"
    );
}
