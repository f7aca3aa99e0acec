//! Field selectors with the real kube-apiserver as the oracle: varied pods, services,
//! Endpoints, EndpointSlices and nodes; the API server lists each kind with a set of field
//! selectors (equality, `==`, `!=`, several terms, empty terms, escaped values, spaces, fields it
//! does not serve, strings that do not parse); our evaluation (`k8s::field_selector`) over the
//! same objects, as the API server returns them unfiltered, must select exactly the names it
//! lists, and refuse exactly the selectors it answers with 400 Bad Request. Then the service,
//! with `kubernetes_sd_configs` jobs using field selectors, serves exactly the selected objects'
//! targets (and none for a selector the API server refuses).

use std::collections::BTreeSet;
use std::fmt::Debug;

use allocator_service::k8s::field_selector::{FieldSelector, Selectable};
use k8s_openapi::api::core::v1::{Endpoints, Node, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;
use serde_json::{json, Value};

use super::{admin, apply, common, namespace};

/// Every object of this test is named or namespaced with this prefix (the API server is shared
/// with the other tests, which run at the same time).
const PREFIX: &str = "fsel-";

/// Selectors for every kind: on the object's metadata, with every operator, empty terms,
/// escapes and spaces, and strings the API server refuses (parse errors, unknown fields).
const COMMON: &[&str] = &[
    "",
    ",",
    "metadata.name=fsel-1",
    "metadata.name==fsel-1",
    "metadata.name!=fsel-1",
    "metadata.name=",
    "metadata.name!=",
    "metadata.namespace=fsel-b",
    "metadata.namespace!=fsel-b,metadata.name!=fsel-2",
    ",metadata.name=fsel-1,,",
    "metadata.name=fsel-1,metadata.name=fsel-2",
    "metadata.name==fsel-1,metadata.name!=fsel-2",
    "metadata.name=a\\,b",
    "metadata.name!=a\\=b\\\\c",
    "metadata.name= fsel-1",
    "metadata.name=fsel-1 ",
    "metadata.name=fsél",
    " metadata.name=fsel-1",
    "metadata.name",
    "metadata.name=a,b",
    "metadata.name=a=b",
    "metadata.name=a\\",
    "metadata.name=a\\x",
    "metadata.name=!=a",
    "metadata.name!=a!=b",
    "=fsel-1",
    "metadata.uid=x",
    "metadata.labels=x",
    "status.phase=Running\\,x",
    "metadata.name==,metadata.namespace!=",
];

const PODS: &[&str] = &[
    "spec.nodeName=fsel-n1",
    "spec.host=fsel-n1",
    "spec.nodeName=",
    "spec.nodeName!=,status.phase=Running",
    "spec.restartPolicy=Never",
    "spec.restartPolicy!=Always",
    "spec.schedulerName=default-scheduler",
    "spec.schedulerName!=default-scheduler",
    "spec.serviceAccountName=robot",
    "spec.serviceAccountName=",
    "spec.hostNetwork=true",
    "spec.hostNetwork=false",
    "spec.hostNetwork=",
    "status.phase!=Running",
    "status.phase=Succeeded,metadata.namespace=fsel-a",
    "status.podIP=10.20.0.5",
    "status.podIP=fd00::5",
    "status.podIP=",
    "status.podIPs=",
    "status.podIPs!=",
    "status.podIPs=10.20.0.5",
    "status.nominatedNodeName=fsel-n2",
    "status.nominatedNodeName!=",
    "spec.nodeName=fsel-n1,metadata.namespace=fsel-a,status.phase=Running",
    "status.hostIP=10.0.0.1",
    "spec.containers=x",
    "spec.nodeName=fsel-n1,status.hostIP=x",
];

const SERVICES: &[&str] = &[
    "spec.type=ClusterIP",
    "spec.type!=ClusterIP",
    "spec.type=ExternalName",
    "spec.clusterIP=None",
    "spec.clusterIP=",
    "spec.clusterIP!=None,spec.type=ClusterIP",
    "spec.externalName=example.org",
    "spec.selector=x",
];

const ENDPOINTS: &[&str] = &["subsets=x", "spec.nodeName=fsel-n1"];

const SLICES: &[&str] = &["addressType=IPv4", "metadata.labels=x"];

const NODES: &[&str] = &[
    "metadata.name=fsel-n1",
    "spec.unschedulable=true",
    "spec.unschedulable=false",
    "spec.unschedulable!=true,metadata.name!=fsel-n3",
    "spec.unschedulable=",
    "metadata.namespace=",
    "metadata.namespace=fsel-a",
    "spec.providerID=x",
];

/// An object as `namespace/name`, or `name` for a node.
fn key(m: &kube::api::ObjectMeta) -> String {
    let name = m.name.clone().unwrap_or_default();
    match &m.namespace {
        Some(ns) => format!("{ns}/{name}"),
        None => name,
    }
}

fn ours(m: &kube::api::ObjectMeta) -> bool {
    m.name.as_deref().is_some_and(|n| n.starts_with(PREFIX))
}

/// The objects the API server lists with `selector` (ours only), or its 400's message.
async fn listed<K>(api: &Api<K>, selector: &str) -> Result<BTreeSet<String>, String>
where
    K: kube::Resource + Clone + DeserializeOwned + Debug,
{
    match api.list(&ListParams::default().fields(selector)).await {
        Ok(list) => Ok(list
            .items
            .iter()
            .filter(|o| ours(o.meta()))
            .map(|o| key(o.meta()))
            .collect()),
        Err(kube::Error::Api(s)) if s.code == 400 => Err(s.message.clone()),
        Err(e) => panic!("listing with fieldSelector {selector:?}: {e}"),
    }
}

/// Each selector: the API server's answer and ours over the same objects must agree.
async fn compare<K>(api: Api<K>, selectors: &[&[&str]]) -> usize
where
    K: kube::Resource + Clone + DeserializeOwned + Debug + Selectable,
{
    let all: Vec<K> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|o| ours(kube::Resource::meta(o)))
        .collect();
    assert!(all.len() >= 3, "{}: {} objects", K::KIND, all.len());
    let mut selecting = 0;
    for &selector in selectors.iter().flat_map(|s| s.iter()) {
        let theirs = listed(&api, selector).await;
        let ours = FieldSelector::parse(selector)
            .and_then(|f| f.check(K::KIND).map(|()| f))
            .map(|f| {
                all.iter()
                    .filter(|o| f.matches(*o))
                    .map(|o| key(kube::Resource::meta(o)))
                    .collect::<BTreeSet<String>>()
            });
        match (&theirs, &ours) {
            (Ok(t), Ok(o)) => {
                assert_eq!(o, t, "{}: fieldSelector {selector:?}", K::KIND);
                if !t.is_empty() && t.len() < all.len() {
                    selecting += 1;
                }
            }
            (Err(_), Err(_)) => {}
            _ => panic!(
                "{}: fieldSelector {selector:?}: the API server answered {theirs:?}, we {ours:?}",
                K::KIND
            ),
        }
    }
    selecting
}

fn pod(ns: &str, name: &str, spec: Value, status: Value) -> Value {
    let mut spec = spec;
    spec["containers"] = json!([{"name": "main", "image": "img",
        "ports": [{"name": "metrics", "containerPort": 9090}]}]);
    json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": spec, "status": status})
}

fn running(ips: &[&str]) -> Value {
    let ips: Vec<Value> = ips.iter().map(|ip| json!({"ip": ip})).collect();
    json!({"phase": "Running", "podIP": ips[0]["ip"], "podIPs": ips,
        "conditions": [{"type": "Ready", "status": "True",
            "lastTransitionTime": "2020-01-01T00:00:00Z"}]})
}

async fn create_objects(client: &kube::Client) {
    for ns in ["fsel-a", "fsel-b", "fsel-otel"] {
        apply(client, "namespaces", namespace(ns, json!({}))).await;
    }
    for (name, unschedulable, ip) in [
        ("fsel-n1", Some(true), "10.21.0.1"),
        ("fsel-n2", Some(false), "10.21.0.2"),
        ("fsel-n3", None, "10.21.0.3"),
    ] {
        let mut node = json!({"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": name, "labels": {"fsel/zone": name}},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}}}});
        if let Some(u) = unschedulable {
            node["spec"] = json!({ "unschedulable": u });
        }
        apply(client, "nodes", node).await;
    }
    let pods = [
        pod(
            "fsel-a",
            "fsel-1",
            json!({"nodeName": "fsel-n1"}),
            running(&["10.20.0.1"]),
        ),
        pod("fsel-a", "fsel-2", json!({}), json!({"phase": "Pending"})),
        pod(
            "fsel-a",
            "fsel-3",
            json!({"nodeName": "fsel-n2", "restartPolicy": "Never",
                "schedulerName": "custom-scheduler", "serviceAccountName": "robot"}),
            json!({"phase": "Succeeded", "podIP": "10.20.0.3", "podIPs": [{"ip": "10.20.0.3"}]}),
        ),
        pod(
            "fsel-a",
            "fsel-4",
            json!({"nodeName": "fsel-n1", "hostNetwork": true}),
            {
                let mut s = running(&["10.20.0.4"]);
                s["nominatedNodeName"] = json!("fsel-n2");
                s
            },
        ),
        pod(
            "fsel-a",
            "fsel-5",
            json!({"nodeName": "fsel-n2", "restartPolicy": "OnFailure"}),
            running(&["10.20.0.5", "fd00::5"]),
        ),
        pod(
            "fsel-b",
            "fsel-1",
            json!({"nodeName": "fsel-n1"}),
            running(&["10.20.1.1"]),
        ),
        pod(
            "fsel-b",
            "fsel-6",
            json!({"nodeName": "fsel-n3", "serviceAccountName": "robot"}),
            running(&["10.20.1.6"]),
        ),
        // The collector, in its own namespace.
        {
            let mut p = pod(
                "fsel-otel",
                "fsel-otel-0",
                json!({"nodeName": "fsel-n1"}),
                running(&["10.20.9.1"]),
            );
            p["metadata"]["labels"] = json!({"app.kubernetes.io/component": "fsel-collector"});
            p
        },
    ];
    for p in pods {
        apply(client, "pods", p).await;
    }
    let port = json!([{"name": "metrics", "port": 9090}]);
    for (ns, name, spec) in [
        ("fsel-a", "fsel-1", json!({"ports": port})),
        (
            "fsel-a",
            "fsel-2",
            json!({"clusterIP": "None", "ports": port}),
        ),
        (
            "fsel-a",
            "fsel-3",
            json!({"type": "NodePort", "ports": port}),
        ),
        (
            "fsel-a",
            "fsel-4",
            json!({"type": "ExternalName", "externalName": "example.org"}),
        ),
        ("fsel-b", "fsel-1", json!({"ports": port})),
    ] {
        apply(
            client,
            "services",
            json!({"apiVersion": "v1", "kind": "Service",
                "metadata": {"name": name, "namespace": ns}, "spec": spec}),
        )
        .await;
    }
    for (ns, name) in [
        ("fsel-a", "fsel-1"),
        ("fsel-a", "fsel-2"),
        ("fsel-b", "fsel-1"),
    ] {
        apply(
            client,
            "endpoints",
            json!({"apiVersion": "v1", "kind": "Endpoints",
                "metadata": {"name": name, "namespace": ns},
                "subsets": [{"addresses": [{"ip": "10.20.0.1"}], "ports": [{"port": 9090}]}]}),
        )
        .await;
        apply(
            client,
            "endpointslices",
            json!({"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"name": name, "namespace": ns,
                    "labels": {"kubernetes.io/service-name": name}},
                "addressType": "IPv4", "endpoints": [{"addresses": ["10.20.0.1"]}],
                "ports": [{"name": "metrics", "port": 9090}]}),
        )
        .await;
    }
}

/// The pods (`namespace/name`) of a job's targets.
async fn job_pods(addr: std::net::SocketAddr, job: &str) -> BTreeSet<String> {
    let v = common::json(addr, &format!("/jobs/{job}/targets")).await;
    v.as_object()
        .unwrap()
        .values()
        .flat_map(|c| c["targets"].as_array().unwrap().clone())
        .map(|g| {
            let l = &g["labels"];
            format!(
                "{}/{}",
                l["__meta_kubernetes_namespace"].as_str().unwrap(),
                l["__meta_kubernetes_pod_name"].as_str().unwrap()
            )
        })
        .collect()
}

/// The values of `label` over a job's targets, from its per-collector answer.
async fn job_labels(addr: std::net::SocketAddr, job: &str, label: &str) -> BTreeSet<String> {
    let v = common::json(addr, &format!("/jobs/{job}/targets")).await;
    v.as_object()
        .unwrap()
        .values()
        .flat_map(|c| c["targets"].as_array().unwrap().clone())
        .filter_map(|g| g["labels"][label].as_str().map(str::to_owned))
        .collect()
}

pub async fn field_selectors_select_what_the_api_server_lists() {
    let (client, _) = admin().await;
    create_objects(&client).await;

    // The oracle: each kind listed with every selector.
    let mut selecting = 0;
    selecting += compare(Api::<Pod>::all(client.clone()), &[COMMON, PODS]).await;
    selecting += compare(Api::<Service>::all(client.clone()), &[COMMON, SERVICES]).await;
    selecting += compare(Api::<Endpoints>::all(client.clone()), &[COMMON, ENDPOINTS]).await;
    selecting += compare(Api::<EndpointSlice>::all(client.clone()), &[COMMON, SLICES]).await;
    selecting += compare(Api::<Node>::all(client.clone()), &[COMMON, NODES]).await;
    // Many selectors select some objects and not others: the comparison is not vacuous.
    eprintln!("field selectors: {selecting} of them select some objects, not all");
    assert!(selecting >= 40, "only {selecting} selectors select a part");

    // The service: kubernetes_sd_configs jobs with field selectors (and one the API server
    // refuses, which gets no targets), node metadata in the collector's own namespace.
    let running_elsewhere = "status.phase=Running,spec.nodeName!=fsel-n2";
    let unschedulable = "spec.unschedulable!=true";
    let refused = "status.hostIP!=x";
    let config = format!(
        r#"
discovery: kubernetes
collector_namespace: fsel-otel
collector_selector:
  matchLabels: {{app.kubernetes.io/component: fsel-collector}}
config:
  scrape_configs:
    - job_name: fsel-pods
      kubernetes_sd_configs:
        - role: pod
          namespaces: {{names: [fsel-a, fsel-b]}}
          selectors: [{{role: pod, field: "{running_elsewhere}"}}]
    - job_name: fsel-nodes
      kubernetes_sd_configs: [{{role: node, selectors: [{{role: node, field: "{unschedulable}"}}]}}]
    - job_name: fsel-refused
      kubernetes_sd_configs:
        - role: endpointslice
          namespaces: {{names: [fsel-a]}}
          selectors: [{{role: pod, field: "{refused}"}}]
    - job_name: fsel-slices
      kubernetes_sd_configs:
        - role: endpointslice
          namespaces: {{names: [fsel-a]}}
    - job_name: fsel-own
      kubernetes_sd_configs:
        - role: pod
          namespaces: {{own_namespace: true}}
          attach_metadata: {{node: true}}
          selectors: [{{role: node, field: metadata.name=fsel-n1}}]
"#
    );
    let cfg = allocator_service::parse(&config, std::path::Path::new(".")).unwrap();
    let service = common::start(cfg, Some(client.clone())).await;
    let addr = service.addr;
    let mut want_pods = BTreeSet::new();
    for ns in ["fsel-a", "fsel-b"] {
        let pods: Api<Pod> = Api::namespaced(client.clone(), ns);
        want_pods.extend(listed(&pods, running_elsewhere).await.unwrap());
    }
    assert!(want_pods.len() >= 3, "{want_pods:?}");
    let want_nodes = listed(&Api::<Node>::all(client.clone()), unschedulable)
        .await
        .unwrap();
    assert!(
        !want_nodes.is_empty() && want_nodes.len() < 3,
        "{want_nodes:?}"
    );
    let mut last = (BTreeSet::new(), BTreeSet::new());
    for _ in 0..300 {
        if common::get(addr, "/readyz").await.status == 200 {
            last = (
                job_pods(addr, "fsel-pods").await,
                job_labels(addr, "fsel-nodes", "__meta_kubernetes_node_name")
                    .await
                    .into_iter()
                    .filter(|n| n.starts_with(PREFIX))
                    .collect(),
            );
            if last == (want_pods.clone(), want_nodes.clone()) {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(last.0, want_pods, "fsel-pods");
    assert_eq!(last.1, want_nodes, "fsel-nodes");
    // The API server refuses the pods' list with status.hostIP: Prometheus' endpointslice
    // discoverer, which waits for its pod informer, sends nothing; nor does ours, while the
    // same discovery without that selector has the slices' targets.
    let pods: Api<Pod> = Api::namespaced(client.clone(), "fsel-a");
    assert!(listed(&pods, refused).await.is_err());
    assert!(
        !job_labels(addr, "fsel-slices", "__meta_kubernetes_endpointslice_name")
            .await
            .is_empty()
    );
    let refused = common::json(addr, "/jobs/fsel-refused/targets").await;
    assert_eq!(
        refused.as_object().map(|c| c
            .values()
            .map(|c| c["targets"].as_array().map_or(0, Vec::len))
            .sum::<usize>()),
        Some(0),
        "{refused}"
    );
    // The own namespace's pod, with the metadata of its node (selected by name).
    assert_eq!(
        job_labels(addr, "fsel-own", "__meta_kubernetes_pod_name").await,
        BTreeSet::from(["fsel-otel-0".to_owned()])
    );
    assert_eq!(
        job_labels(addr, "fsel-own", "__meta_kubernetes_node_label_fsel_zone").await,
        BTreeSet::from(["fsel-n1".to_owned()])
    );
    service.stop().await;
}
