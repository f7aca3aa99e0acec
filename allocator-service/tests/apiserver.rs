//! Kubernetes discovery against a real kube-apiserver (with etcd), started by
//! `tests/apiserver.sh`, which runs this #[ignore]d test with `--ignored` and passes the
//! kubeconfig (`KUBECONFIG_TEST`) and prometheus-operator's CRD folder (`CRD_DIR`). The test
//! applies the CRDs, then the fake server's scenarios (tests/kubernetes.rs) against the real
//! server: collector pods ready, unready and deleted; monitors added, changed and removed;
//! selectors and namespace selectors (a namespace relabelled); EndpointSlice changes. Every check
//! reads the service's HTTP API.
//!
//! Field selectors with the API server as the oracle (`field_selectors`): what it lists with
//! each, what it refuses, and the service's `kubernetes_sd_configs` jobs using them.
//!
//! And leader election of replicas on a real Lease, with the credentials of the `ta` service
//! account bound by `examples/k8s/01-rbac.yaml` (`RBAC_MANIFEST`): the Lease protocol (races,
//! renewals, take-over after expiry and not before, release), the replicas' scenario of
//! tests/replication.rs (one leader, followers with its digest, the leader killed → taken over
//! with the assignment kept), and that the account can do nothing else with Leases.

mod common;
mod field_selectors;
mod replicas;

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams,
};
use serde_json::{json, Value};

fn resource(plural: &str) -> (ApiResource, bool) {
    let (g, v, k, namespaced) = match plural {
        "namespaces" => ("", "v1", "Namespace", false),
        "pods" => ("", "v1", "Pod", true),
        "nodes" => ("", "v1", "Node", false),
        "endpoints" => ("", "v1", "Endpoints", true),
        "services" => ("", "v1", "Service", true),
        "endpointslices" => ("discovery.k8s.io", "v1", "EndpointSlice", true),
        "servicemonitors" => ("monitoring.coreos.com", "v1", "ServiceMonitor", true),
        "podmonitors" => ("monitoring.coreos.com", "v1", "PodMonitor", true),
        "probes" => ("monitoring.coreos.com", "v1", "Probe", true),
        "scrapeconfigs" => ("monitoring.coreos.com", "v1alpha1", "ScrapeConfig", true),
        "secrets" => ("", "v1", "Secret", true),
        other => panic!("unknown resource {other}"),
    };
    (
        ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(g, v, k), plural),
        namespaced,
    )
}

fn api(client: &kube::Client, plural: &str, ns: Option<&str>) -> Api<DynamicObject> {
    let (ar, namespaced) = resource(plural);
    match (namespaced, ns) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &ar),
        _ => Api::all_with(client.clone(), &ar),
    }
}

/// Server-side apply of `obj`, then its `status` (pods) through the status subresource.
async fn apply(client: &kube::Client, plural: &str, mut obj: Value) {
    let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
    let ns = obj["metadata"]["namespace"].as_str().map(str::to_owned);
    let a = api(client, plural, ns.as_deref());
    let status = obj.as_object_mut().unwrap().remove("status");
    let pp = PatchParams::apply("allocator-test").force();
    a.patch(&name, &pp, &Patch::Apply(&obj))
        .await
        .unwrap_or_else(|e| panic!("apply {plural} {name}: {e}"));
    if let Some(status) = status {
        a.patch_status(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": status})),
        )
        .await
        .unwrap_or_else(|e| panic!("status {plural} {name}: {e}"));
    }
}

async fn delete(client: &kube::Client, plural: &str, ns: &str, name: &str) {
    let dp = DeleteParams {
        grace_period_seconds: Some(0),
        ..Default::default()
    };
    api(client, plural, Some(ns))
        .delete(name, &dp)
        .await
        .unwrap_or_else(|e| panic!("delete {plural} {ns}/{name}: {e}"));
}

fn namespace(name: &str, labels: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}})
}

fn pod(ns: &str, name: &str, labels: Value, ip: &str, node: &str, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "img",
            "ports": [{"name": "metrics", "containerPort": 9090}]}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}],
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
        "ports": [{"name": "metrics", "port": 9090, "protocol": "TCP"}]})
}

fn cr(kind: &str, version: &str, ns: &str, name: &str, labels: Value, spec: Value) -> Value {
    json!({"apiVersion": format!("monitoring.coreos.com/{version}"), "kind": kind,
        "metadata": {"name": name, "namespace": ns, "labels": labels}, "spec": spec})
}

/// Poll `path` until `ok` holds (30 s at most: a real server and 5 s processing passes).
async fn until(
    addr: std::net::SocketAddr,
    path: &str,
    what: &str,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    for _ in 0..300 {
        if common::get(addr, "/readyz").await.status == 200 {
            let v = common::json(addr, path).await;
            if ok(&v) {
                return v;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "timed out waiting for {what}: {}",
        common::json(addr, path).await
    );
}

fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().cloned().collect()
}

fn count(v: &Value) -> usize {
    v.as_object()
        .unwrap()
        .values()
        .map(|c| c["targets"].as_array().unwrap().len())
        .sum()
}

/// prometheus-operator's CRDs, as users install them (established when this returns).
async fn install_crds(client: &kube::Client, crd_dir: &str) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for plural in ["servicemonitors", "podmonitors", "probes", "scrapeconfigs"] {
        let text =
            std::fs::read_to_string(format!("{crd_dir}/monitoring.coreos.com_{plural}.yaml"))
                .unwrap();
        let crd: Value = serde_yaml::from_str(&text).unwrap();
        let name = crd["metadata"]["name"].as_str().unwrap().to_owned();
        crds.patch(
            &name,
            &PatchParams::apply("allocator-test").force(),
            &Patch::Apply(&crd),
        )
        .await
        .unwrap_or_else(|e| panic!("CRD {name}: {e}"));
        for _ in 0..100 {
            let c = crds.get(&name).await.unwrap();
            let established = c.status.and_then(|s| s.conditions).is_some_and(|cs| {
                cs.iter()
                    .any(|c| c.type_ == "Established" && c.status == "True")
            });
            if established {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
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
  scrape_configs: []
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: run allocator-service/tests/apiserver.sh"]
async fn real_api_server_changes_flow_through_discovery_into_assignments() {
    let kubeconfig = std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST (apiserver.sh)");
    let crd_dir = std::env::var("CRD_DIR").expect("CRD_DIR (apiserver.sh)");
    let kc = kube::config::Kubeconfig::read_from(&kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    let client = kube::Client::try_from(config).unwrap();
    install_crds(&client, &crd_dir).await;

    let collector = json!({"app.kubernetes.io/component": "opentelemetry-collector"});
    apply(
        &client,
        "namespaces",
        namespace("shop", json!({"team": "shop"})),
    )
    .await;
    apply(
        &client,
        "namespaces",
        namespace("other", json!({"team": "other"})),
    )
    .await;
    apply(&client, "namespaces", namespace("observability", json!({}))).await;
    for (name, ip, ready) in [
        ("otel-0", "10.9.0.1", true),
        ("otel-1", "10.9.0.2", true),
        ("otel-2", "10.9.0.3", false),
    ] {
        apply(
            &client,
            "pods",
            pod(
                "observability",
                name,
                collector.clone(),
                ip,
                "node-a",
                ready,
            ),
        )
        .await;
    }
    for i in 0..3 {
        apply(
            &client,
            "pods",
            pod(
                "shop",
                &format!("api-{i}"),
                json!({"app": "api"}),
                &format!("10.1.0.{i}"),
                "node-a",
                true,
            ),
        )
        .await;
    }
    apply(
        &client,
        "pods",
        pod(
            "other",
            "worker-0",
            json!({"app": "worker"}),
            "10.2.0.1",
            "node-b",
            true,
        ),
    )
    .await;
    apply(
        &client,
        "services",
        service("shop", "api", json!({"app": "api"})),
    )
    .await;
    apply(
        &client,
        "services",
        service("other", "api", json!({"app": "api"})),
    )
    .await;
    apply(
        &client,
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
    )
    .await;
    apply(
        &client,
        "endpointslices",
        slice("other", "api-xyz", "api", &[("10.2.0.9", "ghost")]),
    )
    .await;
    let sm_spec =
        json!({"selector": {"matchLabels": {"app": "api"}}, "endpoints": [{"port": "metrics"}]});
    apply(
        &client,
        "servicemonitors",
        cr(
            "ServiceMonitor",
            "v1",
            "shop",
            "api",
            json!({}),
            sm_spec.clone(),
        ),
    )
    .await;
    apply(
        &client,
        "servicemonitors",
        cr(
            "ServiceMonitor",
            "v1",
            "other",
            "api",
            json!({}),
            sm_spec.clone(),
        ),
    )
    .await;
    let pm_spec = json!({"selector": {"matchLabels": {"app": "worker"}}, "podMetricsEndpoints": [{"port": "metrics"}]});
    apply(
        &client,
        "podmonitors",
        cr(
            "PodMonitor",
            "v1",
            "other",
            "workers",
            json!({"release": "otel"}),
            pm_spec.clone(),
        ),
    )
    .await;
    apply(
        &client,
        "podmonitors",
        cr("PodMonitor", "v1", "other", "unlabeled", json!({}), pm_spec),
    )
    .await;
    apply(&client, "scrapeconfigs", cr("ScrapeConfig", "v1alpha1", "shop", "external", json!({}),
        json!({"staticConfigs": [{"targets": ["example.org:443", "example.net:443"], "labels": {"site": "public"}}]}))).await;
    apply(&client, "probes", cr("Probe", "v1", "shop", "site", json!({}),
        json!({"prober": {"url": "blackbox-exporter.observability.svc:9115"}, "module": "http_2xx",
            "targets": {"staticConfig": {"static": ["https://shop.example"]}}}))).await;

    let cfg = allocator_service::parse(CONFIG, std::path::Path::new(".")).unwrap();
    let service = common::start(cfg, Some(client.clone())).await;
    let addr = service.addr;

    let jobs = until(addr, "/jobs", "the jobs", |v| {
        v.as_object().unwrap().len() == 4
    })
    .await;
    assert_eq!(
        keys(&jobs),
        [
            "podMonitor/other/workers/0",
            "probe/shop/site",
            "scrapeConfig/shop/external",
            "serviceMonitor/shop/api/0"
        ]
    );
    let sm_path = "/jobs/serviceMonitor%2Fshop%2Fapi%2F0/targets";
    let sm = until(addr, sm_path, "collectors", |v| count(v) == 3).await;
    assert_eq!(
        keys(&sm),
        ["otel-0", "otel-1"],
        "ready collectors in the namespace only"
    );
    // The CRD's default prober path reaches the served scrape config.
    let configs = common::json(addr, "/scrape_configs").await;
    assert_eq!(configs["probe/shop/site"]["metrics_path"], "/probe");

    // A collector becomes unready (since long ago): it leaves; a new one joins; one is deleted.
    apply(
        &client,
        "pods",
        pod(
            "observability",
            "otel-1",
            collector.clone(),
            "10.9.0.2",
            "node-a",
            false,
        ),
    )
    .await;
    until(addr, sm_path, "otel-1 unready", |v| keys(v) == ["otel-0"]).await;
    apply(
        &client,
        "pods",
        pod(
            "observability",
            "otel-3",
            collector.clone(),
            "10.9.0.4",
            "node-b",
            true,
        ),
    )
    .await;
    delete(&client, "pods", "observability", "otel-0").await;
    let sm = until(addr, sm_path, "otel-0 deleted, otel-3 added", |v| {
        keys(v) == ["otel-3"]
    })
    .await;
    assert_eq!(count(&sm), 3, "every target is on the remaining collector");

    // Endpoint changes.
    apply(
        &client,
        "endpointslices",
        slice(
            "shop",
            "api-abc",
            "api",
            &[("10.1.0.0", "api-0"), ("10.1.0.2", "api-2")],
        ),
    )
    .await;
    until(addr, sm_path, "an endpoint removed", |v| count(v) == 2).await;

    // A namespace relabelled into the namespace selector: its monitor is selected.
    apply(
        &client,
        "namespaces",
        namespace("other", json!({"team": "shop"})),
    )
    .await;
    until(addr, "/jobs", "other/api selected", |v| {
        v.get("serviceMonitor/other/api/0").is_some()
    })
    .await;

    // A monitor changed to select nothing, then removed.
    apply(&client, "servicemonitors", cr("ServiceMonitor", "v1", "shop", "api", json!({}),
        json!({"selector": {"matchLabels": {"app": "none"}}, "endpoints": [{"port": "metrics"}]}))).await;
    until(addr, "/jobs", "shop/api selects nothing", |v| {
        v.get("serviceMonitor/shop/api/0").is_none()
    })
    .await;
    let configs = common::json(addr, "/scrape_configs").await;
    assert!(
        configs.get("serviceMonitor/shop/api/0").is_some(),
        "a job without targets keeps its scrape config"
    );
    delete(&client, "servicemonitors", "shop", "api").await;
    until(addr, "/scrape_configs", "shop/api removed", |v| {
        v.get("serviceMonitor/shop/api/0").is_none()
    })
    .await;

    // A PodMonitor loses the release label: deselected.
    apply(&client, "podmonitors", cr("PodMonitor", "v1", "other", "workers", json!({}),
        json!({"selector": {"matchLabels": {"app": "worker"}}, "podMetricsEndpoints": [{"port": "metrics"}]}))).await;
    until(addr, "/scrape_configs", "workers deselected", |v| {
        v.get("podMonitor/other/workers/0").is_none()
    })
    .await;

    service.stop().await;
}

/// A client with the admin credentials of `KUBECONFIG_TEST`, and that kubeconfig as YAML.
async fn admin() -> (kube::Client, Value) {
    let kubeconfig = std::env::var("KUBECONFIG_TEST").expect("KUBECONFIG_TEST (apiserver.sh)");
    let text = std::fs::read_to_string(&kubeconfig).unwrap();
    let kc: kube::config::Kubeconfig = serde_yaml::from_str(&text).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    (
        kube::Client::try_from(config).unwrap(),
        serde_yaml::from_str(&text).unwrap(),
    )
}

/// Server-side apply of every object of a manifest file.
async fn apply_manifest(client: &kube::Client, path: &str) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let obj: Value = serde::Deserialize::deserialize(doc).unwrap();
        apply_object(client, &obj).await;
    }
}

/// Server-side apply of one object of any kind.
async fn apply_object(client: &kube::Client, obj: &Value) {
    let (group, version) = match obj["apiVersion"].as_str().unwrap().split_once('/') {
        Some((g, v)) => (g.to_owned(), v.to_owned()),
        None => (
            String::new(),
            obj["apiVersion"].as_str().unwrap().to_owned(),
        ),
    };
    let gvk = GroupVersionKind::gvk(&group, &version, obj["kind"].as_str().unwrap());
    let ar = ApiResource::from_gvk(&gvk);
    let name = obj["metadata"]["name"].as_str().unwrap();
    let api: Api<DynamicObject> = match obj["metadata"]["namespace"].as_str() {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &ar),
        None => Api::all_with(client.clone(), &ar),
    };
    api.patch(
        name,
        &PatchParams::apply("allocator-test").force(),
        &Patch::Apply(obj),
    )
    .await
    .unwrap_or_else(|e| panic!("apply {} {name}: {e}", obj["kind"]));
}

/// A client authenticated as the service account `observability/ta`, through a token the
/// TokenRequest API issues.
async fn ta_client(admin: &kube::Client, kubeconfig: Value) -> kube::Client {
    account_client(admin, kubeconfig, "observability", "ta").await
}

/// A client authenticated as the service account `ns/account`.
async fn account_client(
    admin: &kube::Client,
    mut kubeconfig: Value,
    ns: &str,
    account: &str,
) -> kube::Client {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let accounts: Api<ServiceAccount> = Api::namespaced(admin.clone(), ns);
    let request = TokenRequest {
        spec: TokenRequestSpec {
            audiences: vec![],
            expiration_seconds: Some(3600),
            ..Default::default()
        },
        ..Default::default()
    };
    let token = accounts
        .create_token_request(account, &Default::default(), &request)
        .await
        .unwrap_or_else(|e| panic!("a token for {ns}/{account}: {e}"))
        .status
        .unwrap()
        .token;
    kubeconfig["users"][0]["user"] = json!({ "token": token });
    let kc: kube::config::Kubeconfig = serde_json::from_value(kubeconfig).unwrap();
    let config = kube::Config::from_custom_kubeconfig(kc, &Default::default())
        .await
        .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: run allocator-service/tests/apiserver.sh"]
async fn real_api_server_elects_one_leader_through_a_lease_with_the_manifests_rbac() {
    use k8s_openapi::api::coordination::v1::Lease;
    let rbac = std::env::var("RBAC_MANIFEST").expect("RBAC_MANIFEST (apiserver.sh)");
    let (admin, kubeconfig) = admin().await;
    apply(&admin, "namespaces", namespace("observability", json!({}))).await;
    apply_manifest(&admin, &rbac).await;
    let ta = ta_client(&admin, kubeconfig).await;

    // Least privilege: the account cannot write Leases elsewhere, nor delete its own.
    let elsewhere: Api<Lease> = Api::namespaced(ta.clone(), "default");
    let lease: Lease = serde_json::from_value(
        json!({"metadata": {"name": "not-ours"}, "spec": {"holderIdentity": "x"}}),
    )
    .unwrap();
    match elsewhere.create(&Default::default(), &lease).await {
        Err(kube::Error::Api(s)) if s.is_forbidden() => {}
        other => panic!("a Lease in namespace default: {other:?}"),
    }

    replicas::lease_protocol(ta.clone()).await;
    let ours: Api<Lease> = Api::namespaced(ta.clone(), "observability");
    match ours.delete("held", &Default::default()).await {
        Err(kube::Error::Api(s)) if s.is_forbidden() => {}
        other => panic!("deleting a Lease: {other:?}"),
    }

    replicas::failover("apiserver-failover", || ta.clone()).await;
}

/// The Operator's documented RBAC for the Go allocator's mTLS setup: `get` on the Secrets the
/// monitors name, `list` and `watch` on Secrets only in the collector namespace (the Go
/// allocator's secrets informer there), nothing on ConfigMaps. The Go allocator GETs the Secret
/// a ServiceMonitor's `basicAuth` names and serves it inline; so must this allocator, and serve
/// a changed Secret changed (its periodic re-read, shortened to 1 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: run allocator-service/tests/apiserver.sh"]
async fn real_api_server_serves_monitors_whose_secrets_the_role_may_only_get() {
    let crd_dir = std::env::var("CRD_DIR").expect("CRD_DIR (apiserver.sh)");
    let (admin, kubeconfig) = admin().await;
    install_crds(&admin, &crd_dir).await;
    for ns in ["getonly", "billing"] {
        apply(&admin, "namespaces", namespace(ns, json!({}))).await;
    }
    let rules = json!([
        {"apiGroups": [""], "resources": ["pods", "nodes", "services", "namespaces"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["networking.k8s.io"], "resources": ["ingresses"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": ["monitoring.coreos.com"],
         "resources": ["servicemonitors", "podmonitors", "probes", "scrapeconfigs"],
         "verbs": ["get", "list", "watch"]},
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}
    ]);
    let subject = json!([{"kind": "ServiceAccount", "name": "ta-get", "namespace": "getonly"}]);
    for obj in [
        json!({"apiVersion": "v1", "kind": "ServiceAccount",
            "metadata": {"name": "ta-get", "namespace": "getonly"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "ta-get"}, "rules": rules}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
            "metadata": {"name": "ta-get"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "ta-get"}}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "ta-get-secrets", "namespace": "getonly"},
            "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": "ta-get-secrets", "namespace": "getonly"}, "subjects": subject,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "ta-get-secrets"}}),
    ] {
        apply_object(&admin, &obj).await;
    }
    let ta = account_client(&admin, kubeconfig, "getonly", "ta-get").await;
    // The account may not list Secrets cluster-wide: what follows goes through GETs.
    let all: Api<k8s_openapi::api::core::v1::Secret> = Api::all(ta.clone());
    match all.list(&Default::default()).await {
        Err(kube::Error::Api(s)) if s.is_forbidden() => {}
        other => panic!("listing Secrets cluster-wide: {other:?}"),
    }

    let collector = json!({"app.kubernetes.io/component": "opentelemetry-collector"});
    apply(
        &admin,
        "pods",
        pod("getonly", "otel-g", collector, "10.8.0.1", "node-a", true),
    )
    .await;
    apply(
        &admin,
        "pods",
        pod(
            "billing",
            "billing-0",
            json!({"app": "billing"}),
            "10.8.1.1",
            "node-a",
            true,
        ),
    )
    .await;
    apply(
        &admin,
        "services",
        service("billing", "billing", json!({"app": "billing"})),
    )
    .await;
    apply(
        &admin,
        "endpointslices",
        slice(
            "billing",
            "billing-abc",
            "billing",
            &[("10.8.1.1", "billing-0")],
        ),
    )
    .await;
    let secret = |password: &str| {
        use base64::Engine as _;
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "billing-auth", "namespace": "billing"},
            "data": {"user": b64("carol"), "password": b64(password)}})
    };
    apply(&admin, "secrets", secret("pw-1")).await;
    apply(&admin, "servicemonitors", cr("ServiceMonitor", "v1", "billing", "billing", json!({}),
        json!({"selector": {"matchLabels": {"app": "billing"}}, "endpoints": [{"port": "metrics",
            "basicAuth": {"username": {"name": "billing-auth", "key": "user"},
                          "password": {"name": "billing-auth", "key": "password"}}}]}))).await;

    let text = "discovery: kubernetes\ncollector_namespace: getonly\nallow_insecure_auth_secrets: true\n\
        collector_selector:\n  matchLabels: {app.kubernetes.io/component: opentelemetry-collector}\n\
        prometheus_cr:\n  enabled: true\n  service_monitor_selector: {}\nconfig:\n  scrape_configs: []\n";
    let mut cfg = allocator_service::parse(text, std::path::Path::new(".")).unwrap();
    cfg.by_name.timing.refresh = Duration::from_secs(1);
    let service = common::start(cfg, Some(ta)).await;
    let addr = service.addr;
    let job = "serviceMonitor/billing/billing/0";
    let sc = until(
        addr,
        "/scrape_configs",
        "the monitor with its Secret",
        |v| v.get(job).is_some(),
    )
    .await;
    assert_eq!(
        sc[job]["basic_auth"],
        json!({"username": "carol", "password": "pw-1"})
    );
    let targets = until(
        addr,
        &format!("/jobs/{}/targets", job.replace('/', "%2F")),
        "its target",
        |v| count(v) == 1,
    )
    .await;
    assert_eq!(count(&targets), 1);

    apply(&admin, "secrets", secret("pw-2")).await;
    until(addr, "/scrape_configs", "the changed password", |v| {
        v[job]["basic_auth"]["password"] == "pw-2"
    })
    .await;
    service.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs a real API server: run allocator-service/tests/apiserver.sh"]
async fn real_api_server_field_selectors_select_what_it_lists() {
    field_selectors::field_selectors_select_what_the_api_server_lists().await;
}
