//! A faithful fake of the Kubernetes API server on loopback for the resources the service
//! watches: lists with a resourceVersion, watches that replay events after the requested
//! version and then stream live ones, bookmarks when asked for, `410 Gone` on demand, and watch
//! streams that can be cut to force reconnects. And `coordination.k8s.io/v1` Leases for leader
//! election: get, create (`409 AlreadyExists` when taken) and replace, which checks the
//! `resourceVersion` it is given as the API server does (`409 Conflict` when it is not the
//! current one).

#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::broadcast;

/// (plural, apiVersion, list kind)
const KINDS: [(&str, &str, &str); 13] = [
    ("pods", "v1", "PodList"),
    ("nodes", "v1", "NodeList"),
    ("secrets", "v1", "SecretList"),
    ("configmaps", "v1", "ConfigMapList"),
    ("ingresses", "networking.k8s.io/v1", "IngressList"),
    ("services", "v1", "ServiceList"),
    ("namespaces", "v1", "NamespaceList"),
    ("endpointslices", "discovery.k8s.io/v1", "EndpointSliceList"),
    ("endpoints", "v1", "EndpointsList"),
    (
        "servicemonitors",
        "monitoring.coreos.com/v1",
        "ServiceMonitorList",
    ),
    ("podmonitors", "monitoring.coreos.com/v1", "PodMonitorList"),
    (
        "scrapeconfigs",
        "monitoring.coreos.com/v1alpha1",
        "ScrapeConfigList",
    ),
    ("probes", "monitoring.coreos.com/v1", "ProbeList"),
];

#[derive(Default)]
struct Kind {
    objects: BTreeMap<(String, String), Value>,
    log: Vec<(u64, &'static str, Value)>,
    gone_next: bool,
    /// Lists and watches answer 403, as for a service account without RBAC on the resource.
    forbidden: bool,
    /// Lists and watches answer 404, as for a CRD that is not installed.
    absent: bool,
    /// Lists served or refused (not watches).
    lists: usize,
    /// Namespaces where lists and watches are allowed even when `forbidden` (a Role there).
    allowed_in: Vec<String>,
    /// GETs by name answer 403 (the role does not grant `get` either).
    get_forbidden: bool,
    /// GETs by name answer only after this long.
    get_delay: Option<Duration>,
    /// GETs by name served.
    gets: usize,
}

struct Inner {
    rv: u64,
    kinds: HashMap<&'static str, Kind>,
    /// Leases by (namespace, name).
    leases: BTreeMap<(String, String), Value>,
    /// Lease requests answer 503 (the API server unreachable for them).
    leases_down: bool,
}

#[derive(Clone)]
pub struct MockApi {
    inner: Arc<Mutex<Inner>>,
    events: broadcast::Sender<(&'static str, u64)>,
    cut: broadcast::Sender<&'static str>,
    pub watches: Arc<Mutex<HashMap<String, usize>>>,
}

fn plural_of(p: &str) -> &'static str {
    KINDS
        .iter()
        .find(|k| k.0 == p)
        .map(|k| k.0)
        .unwrap_or("unknown")
}

impl MockApi {
    pub fn new() -> MockApi {
        let kinds = KINDS.iter().map(|k| (k.0, Kind::default())).collect();
        MockApi {
            inner: Arc::new(Mutex::new(Inner {
                rv: 1,
                kinds,
                leases: BTreeMap::new(),
                leases_down: false,
            })),
            events: broadcast::channel(4096).0,
            cut: broadcast::channel(64).0,
            watches: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Create or replace an object (ADDED or MODIFIED).
    pub fn apply(&self, plural: &str, mut obj: Value) {
        let plural = plural_of(plural);
        let mut g = self.inner.lock();
        g.rv += 1;
        let rv = g.rv;
        obj["metadata"]["resourceVersion"] = json!(rv.to_string());
        let key = (
            obj["metadata"]["namespace"]
                .as_str()
                .unwrap_or("")
                .to_owned(),
            obj["metadata"]["name"].as_str().unwrap().to_owned(),
        );
        let kind = g.kinds.get_mut(plural).unwrap();
        let ty = if kind.objects.insert(key, obj.clone()).is_some() {
            "MODIFIED"
        } else {
            "ADDED"
        };
        kind.log.push((rv, ty, obj));
        drop(g);
        let _ = self.events.send((plural, rv));
    }

    pub fn delete(&self, plural: &str, ns: &str, name: &str) {
        let plural = plural_of(plural);
        let mut g = self.inner.lock();
        g.rv += 1;
        let rv = g.rv;
        let kind = g.kinds.get_mut(plural).unwrap();
        if let Some(mut obj) = kind.objects.remove(&(ns.to_owned(), name.to_owned())) {
            obj["metadata"]["resourceVersion"] = json!(rv.to_string());
            kind.log.push((rv, "DELETED", obj));
        }
        drop(g);
        let _ = self.events.send((plural, rv));
    }

    /// The next watch of `plural` answers 410 Gone (its history is "compacted"), and every open
    /// watch of it is cut: the client must re-list.
    pub fn expire(&self, plural: &str) {
        let plural = plural_of(plural);
        let mut g = self.inner.lock();
        let kind = g.kinds.get_mut(plural).unwrap();
        kind.gone_next = true;
        kind.log.clear();
        drop(g);
        let _ = self.cut.send(plural);
    }

    /// Answer every list and watch of `plural` with 403 Forbidden (RBAC without it).
    pub fn forbid(&self, plural: &str) {
        let plural = plural_of(plural);
        self.inner.lock().kinds.get_mut(plural).unwrap().forbidden = true;
    }

    /// Serve lists and watches of `plural` again after [`MockApi::forbid`] (the role granted).
    pub fn permit(&self, plural: &str) {
        let plural = plural_of(plural);
        self.inner.lock().kinds.get_mut(plural).unwrap().forbidden = false;
    }

    /// Answer lists and watches of `plural` with 404 (`true`: its CRD is not installed, or was
    /// deleted, with its objects) or serve them again (installed).
    pub fn installed(&self, plural: &str, installed: bool) {
        let plural = plural_of(plural);
        let mut g = self.inner.lock();
        let kind = g.kinds.get_mut(plural).unwrap();
        kind.absent = !installed;
        if !installed {
            kind.objects.clear();
        }
    }

    /// How many lists of `plural` were answered (served or refused).
    pub fn list_count(&self, plural: &str) -> usize {
        self.inner.lock().kinds[plural_of(plural)].lists
    }

    /// Allow lists and watches of `plural` in namespace `ns` even when it is forbidden
    /// cluster-wide (a Role there).
    pub fn allow_in(&self, plural: &str, ns: &str) {
        let plural = plural_of(plural);
        let mut g = self.inner.lock();
        g.kinds
            .get_mut(plural)
            .unwrap()
            .allowed_in
            .push(ns.to_owned());
    }

    /// Answer GETs by name of `plural` with 403 Forbidden (`true`) or serve them again.
    pub fn forbid_get(&self, plural: &str, forbidden: bool) {
        let plural = plural_of(plural);
        self.inner
            .lock()
            .kinds
            .get_mut(plural)
            .unwrap()
            .get_forbidden = forbidden;
    }

    /// Answer GETs by name of `plural` only after `delay` (None: at once).
    pub fn delay_get(&self, plural: &str, delay: Option<Duration>) {
        let plural = plural_of(plural);
        self.inner.lock().kinds.get_mut(plural).unwrap().get_delay = delay;
    }

    /// How many GETs by name of `plural` were answered or are being answered.
    pub fn get_count(&self, plural: &str) -> usize {
        self.inner.lock().kinds[plural_of(plural)].gets
    }

    /// Cut the open watches of `plural` (a network drop); the client reconnects and resumes.
    pub fn cut(&self, plural: &str) {
        let _ = self.cut.send(plural_of(plural));
    }

    pub fn watch_count(&self, plural: &str) -> usize {
        self.watches.lock().get(plural).copied().unwrap_or(0)
    }

    /// Make every Lease request fail with 503 (`true`) or work again.
    pub fn leases_down(&self, down: bool) {
        self.inner.lock().leases_down = down;
    }

    /// The Lease `namespace/name`, as stored.
    pub fn lease(&self, ns: &str, name: &str) -> Option<Value> {
        self.inner
            .lock()
            .leases
            .get(&(ns.to_owned(), name.to_owned()))
            .cloned()
    }

    pub async fn serve(self) -> std::net::SocketAddr {
        let app = Router::new()
            .route("/api/v1/{plural}", get(handle_core))
            .route("/apis/{group}/{version}/{plural}", get(handle_group))
            .route(
                "/api/v1/namespaces/{ns}/{plural}",
                get(handle_core_namespaced),
            )
            .route("/api/v1/namespaces/{ns}/{plural}/{name}", get(get_core))
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases",
                axum::routing::post(create_lease),
            )
            .route(
                "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases/{name}",
                get(get_lease).put(replace_lease),
            )
            .with_state(self);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        addr
    }
}

async fn handle_core(
    State(api): State<MockApi>,
    Path(plural): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    handle(api, plural, q).await
}

async fn handle_core_namespaced(
    State(api): State<MockApi>,
    Path((ns, plural)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    handle_in(api, plural, Some(ns), q).await
}

/// A GET by name, as RBAC's `get` verb allows it.
async fn get_core(
    State(api): State<MockApi>,
    Path((ns, plural, name)): Path<(String, String, String)>,
) -> Response {
    let plural = plural_of(&plural);
    if plural == "unknown" {
        return (axum::http::StatusCode::NOT_FOUND, "no such resource").into_response();
    }
    let (forbidden, delay) = {
        let mut g = api.inner.lock();
        let kind = g.kinds.get_mut(plural).unwrap();
        kind.gets += 1;
        (kind.get_forbidden, kind.get_delay)
    };
    if let Some(d) = delay {
        tokio::time::sleep(d).await;
    }
    if forbidden {
        return status(
            403,
            "Forbidden",
            format!("{plural} \"{name}\" is forbidden: User \"system:serviceaccount:observability:ta\" cannot get resource \"{plural}\" in API group \"\" in the namespace \"{ns}\""),
        );
    }
    let found = api.inner.lock().kinds[plural]
        .objects
        .get(&(ns.clone(), name.clone()))
        .cloned();
    match found {
        Some(o) => object(&o),
        None => status(404, "NotFound", format!("{plural} \"{name}\" not found")),
    }
}

async fn handle_group(
    State(api): State<MockApi>,
    Path((_g, _v, plural)): Path<(String, String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    handle(api, plural, q).await
}

/// A `Status` failure as the API server writes it.
fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code});
    (
        axum::http::StatusCode::from_u16(code).unwrap(),
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn object(v: &Value) -> Response {
    ([("content-type", "application/json")], v.to_string()).into_response()
}

async fn get_lease(
    State(api): State<MockApi>,
    Path((ns, name)): Path<(String, String)>,
) -> Response {
    if api.inner.lock().leases_down {
        return status(503, "ServiceUnavailable", "leases are down".into());
    }
    match api.lease(&ns, &name) {
        Some(l) => object(&l),
        None => status(
            404,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        ),
    }
}

async fn create_lease(State(api): State<MockApi>, Path(ns): Path<String>, body: Bytes) -> Response {
    let mut lease: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", e.to_string()),
    };
    let name = lease["metadata"]["name"].as_str().unwrap_or("").to_owned();
    let mut g = api.inner.lock();
    if g.leases_down {
        return status(503, "ServiceUnavailable", "leases are down".into());
    }
    let key = (ns.clone(), name.clone());
    if g.leases.contains_key(&key) {
        return status(
            409,
            "AlreadyExists",
            format!("leases.coordination.k8s.io \"{name}\" already exists"),
        );
    }
    g.rv += 1;
    lease["metadata"]["resourceVersion"] = json!(g.rv.to_string());
    lease["metadata"]["namespace"] = json!(ns);
    lease["apiVersion"] = json!("coordination.k8s.io/v1");
    lease["kind"] = json!("Lease");
    g.leases.insert(key, lease.clone());
    object(&lease)
}

async fn replace_lease(
    State(api): State<MockApi>,
    Path((ns, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut lease: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return status(400, "BadRequest", e.to_string()),
    };
    let mut g = api.inner.lock();
    if g.leases_down {
        return status(503, "ServiceUnavailable", "leases are down".into());
    }
    let key = (ns.clone(), name.clone());
    let Some(current) = g.leases.get(&key) else {
        return status(
            404,
            "NotFound",
            format!("leases.coordination.k8s.io \"{name}\" not found"),
        );
    };
    let given = lease["metadata"]["resourceVersion"].as_str().unwrap_or("");
    if given.is_empty() {
        return status(
            422,
            "Invalid",
            "metadata.resourceVersion: must be specified for an update".into(),
        );
    }
    if Some(given) != current["metadata"]["resourceVersion"].as_str() {
        return status(
            409,
            "Conflict",
            format!(
                "Operation cannot be fulfilled on leases.coordination.k8s.io \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
            ),
        );
    }
    g.rv += 1;
    lease["metadata"]["resourceVersion"] = json!(g.rv.to_string());
    g.leases.insert(key, lease.clone());
    object(&lease)
}

fn line(v: &Value) -> Bytes {
    let mut b = serde_json::to_vec(v).unwrap();
    b.push(b'\n');
    Bytes::from(b)
}

async fn handle(api: MockApi, plural: String, q: HashMap<String, String>) -> Response {
    handle_in(api, plural, None, q).await
}

/// A list or watch, of every namespace (`ns` None) or of one.
async fn handle_in(
    api: MockApi,
    plural: String,
    ns: Option<String>,
    q: HashMap<String, String>,
) -> Response {
    let plural = plural_of(&plural);
    let in_ns = {
        let ns = ns.clone();
        move |o: &Value| {
            ns.as_deref()
                .is_none_or(|n| o["metadata"]["namespace"].as_str() == Some(n))
        }
    };
    if plural == "unknown" {
        return (axum::http::StatusCode::NOT_FOUND, "no such resource").into_response();
    }
    let (_, api_version, list_kind) = *KINDS.iter().find(|k| k.0 == plural).unwrap();
    let allowed_here = ns.as_ref().is_some_and(|n| {
        api.inner.lock().kinds[plural]
            .allowed_in
            .iter()
            .any(|a| a == n)
    });
    let watching = matches!(q.get("watch").map(String::as_str), Some("true") | Some("1"));
    if !watching {
        api.inner.lock().kinds.get_mut(plural).unwrap().lists += 1;
    }
    if api.inner.lock().kinds[plural].absent {
        // What the API server answers for a resource of a group version it does not serve.
        return (axum::http::StatusCode::NOT_FOUND, "404 page not found").into_response();
    }
    if api.inner.lock().kinds[plural].forbidden && !allowed_here {
        return status(
            403,
            "Forbidden",
            format!("{plural} is forbidden: User \"system:serviceaccount:observability:ta\" cannot list resource \"{plural}\" at the cluster scope"),
        );
    }
    if !watching {
        let g = api.inner.lock();
        let items: Vec<Value> = g.kinds[plural]
            .objects
            .values()
            .filter(|o| in_ns(o))
            .cloned()
            .collect();
        let body = json!({"apiVersion": api_version, "kind": list_kind,
            "metadata": {"resourceVersion": g.rv.to_string()}, "items": items});
        return ([("content-type", "application/json")], body.to_string()).into_response();
    }
    *api.watches.lock().entry(plural.to_owned()).or_default() += 1;
    let from: u64 = q
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = q.get("allowWatchBookmarks").is_some_and(|v| v == "true");
    let mut events = api.events.subscribe();
    let mut cut = api.cut.subscribe();
    let (replay, gone) = {
        let mut g = api.inner.lock();
        let kind = g.kinds.get_mut(plural).unwrap();
        let gone = std::mem::take(&mut kind.gone_next);
        let replay: Vec<Value> = kind
            .log
            .iter()
            .filter(|(rv, _, o)| *rv > from && in_ns(o))
            .map(|(_, ty, o)| json!({"type": ty, "object": o}))
            .collect();
        (replay, gone)
    };
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, Infallible>>(256);
    tokio::spawn(async move {
        if gone {
            let status = json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {},
                "status": "Failure", "message": "too old resource version", "reason": "Expired", "code": 410}});
            let _ = tx.send(Ok(line(&status))).await;
            return;
        }
        for ev in replay {
            if tx.send(Ok(line(&ev))).await.is_err() {
                return;
            }
        }
        let mut last = from;
        let mut tick = tokio::time::interval(Duration::from_millis(300));
        loop {
            tokio::select! {
                ev = events.recv() => {
                    let Ok((p, rv)) = ev else { return };
                    if p != plural || rv <= last { continue; }
                    let found = {
                        let g = api.inner.lock();
                        g.kinds[plural].log.iter().find(|(r, _, o)| *r == rv && in_ns(o)).map(|(_, ty, o)| json!({"type": ty, "object": o}))
                    };
                    if let Some(ev) = found {
                        last = rv;
                        if tx.send(Ok(line(&ev))).await.is_err() { return; }
                    }
                }
                c = cut.recv() => {
                    if c.map_or(true, |p| p == plural) { return; }
                }
                _ = tick.tick() => {
                    if bookmarks {
                        let rv = api.inner.lock().rv;
                        let kind = plural_kind(plural);
                        let bm = json!({"type": "BOOKMARK", "object": {"kind": kind, "apiVersion": api_version,
                            "metadata": {"resourceVersion": rv.to_string()}}});
                        if tx.send(Ok(line(&bm))).await.is_err() { return; }
                    }
                }
            }
        }
    });
    let stream =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) });
    (
        [("content-type", "application/json")],
        Body::from_stream(stream),
    )
        .into_response()
}

fn plural_kind(plural: &str) -> &'static str {
    match plural {
        "pods" => "Pod",
        "nodes" => "Node",
        "secrets" => "Secret",
        "configmaps" => "ConfigMap",
        "services" => "Service",
        "namespaces" => "Namespace",
        "endpointslices" => "EndpointSlice",
        "servicemonitors" => "ServiceMonitor",
        "podmonitors" => "PodMonitor",
        "probes" => "Probe",
        _ => "ScrapeConfig",
    }
}

/// A client of the mock.
pub fn client(addr: std::net::SocketAddr) -> kube::Client {
    let config = kube::Config::new(format!("http://{addr}").parse().unwrap());
    kube::Client::try_from(config).unwrap()
}
