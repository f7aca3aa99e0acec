//! Kubernetes discovery: kube-rs watchers and reflectors on pods, services, EndpointSlices,
//! namespaces, the Prometheus Operator resources, and Endpoints while a job uses that role, read
//! into caches the allocation loop turns into collectors and targets. A watch that falls behind or restarts re-lists (the watcher does
//! this on `410 Gone` and on reconnects) and its cache is replaced at once; the loop rebuilds the
//! full target and collector lists from the caches, and the allocator's listing diff reconciles
//! them, so nothing is allocated twice or lost.

mod backoff;
pub mod by_name;
pub mod client;
pub mod field_selector;
pub mod files;
pub mod lease;
pub mod meta;
pub mod monitors;
pub mod quantity;
pub mod selector;
pub mod support;
pub mod validate;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{
    ConfigMap, Endpoints, Namespace, Node, NodeCondition, NodeSpec, NodeStatus, Pod, Secret,
    Service,
};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher;

use backoff::Backoff;
use kube::Client;

use self::field_selector::Selectable;
use self::meta::Labels;
use self::monitors::{
    JobDef, PodMonitorSpec, ProbeSpec, ScrapeConfigSpec, ServiceMonitorSpec, Source,
};
use self::selector::{LabelSelector, ObjectSelector, RoleSelectors};
use crate::config::{KubernetesSdConfig, Loaded, PrometheusCr};
use crate::relabel::{Rule, RuleSpec};
use k8s_openapi::api::networking::v1::Ingress;

/// Every resource the watchers read, as (API group, resource): the RBAC rules of
/// `examples/k8s/01-rbac.yaml` must grant get, list and watch on each (a test checks).
pub const WATCHED: [(&str, &str); 13] = [
    ("", "pods"),
    // Their zone labels (when `zones` is configured) and the node metadata of generated jobs
    // with `attach_metadata.node` (when `prometheus_cr` is enabled).
    ("", "nodes"),
    // The credentials operator resources name (read only when `prometheus_cr` is enabled).
    ("", "secrets"),
    ("", "configmaps"),
    ("networking.k8s.io", "ingresses"),
    ("", "services"),
    ("", "namespaces"),
    ("discovery.k8s.io", "endpointslices"),
    // Only while a job discovers role `endpoints` (a `kubernetes_sd_configs` entry, a
    // ServiceMonitor's `serviceDiscoveryRole: Endpoints`, a ScrapeConfig's Kubernetes SD).
    ("", "endpoints"),
    ("monitoring.coreos.com", "servicemonitors"),
    ("monitoring.coreos.com", "podmonitors"),
    ("monitoring.coreos.com", "scrapeconfigs"),
    ("monitoring.coreos.com", "probes"),
];

/// A job generated from a Prometheus Operator resource.
pub struct GeneratedJob {
    pub name: String,
    pub interval: String,
    pub timeout: String,
    pub path: String,
    pub scheme: String,
    pub params: BTreeMap<String, Vec<String>>,
    pub rule_specs: Vec<RuleSpec>,
    pub rules: Vec<Rule>,
    pub groups: Vec<Labels>,
    /// TLS, authorization, metric relabelings, ... in Prometheus' spelling, credentials inline
    /// (what `/scrape_configs` adds to the job's entry).
    pub settings: serde_json::Map<String, serde_json::Value>,
}

struct Watched<K: 'static + kube::Resource + Clone>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    /// The cache holds a complete list (the first, or a later one; cleared when an optional
    /// kind becomes unavailable).
    synced: Arc<AtomicBool>,
    /// The last attempt to list or watch the kind was refused (403: the role does not grant
    /// it) or the API server does not serve it (404: its CRD is not installed); cleared by the
    /// next complete list.
    denied: Arc<AtomicBool>,
}

impl<K: 'static + kube::Resource + Clone> Watched<K>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    /// The cache holds a complete list.
    fn listed(&self) -> bool {
        self.synced.load(Ordering::Acquire)
    }

    /// A kind every answer needs (pods, services, ...): listed and not refused since. A
    /// refusal after a list keeps the cache (the last state stays served, as the Go allocator's
    /// informers keep theirs) but is reported, since a fresh process could not answer.
    fn current(&self) -> bool {
        self.listed() && !self.denied.load(Ordering::Acquire)
    }

    /// The first list completed, or the kind is unavailable (refused, or its CRD not installed):
    /// what the Go allocator reads of a kind it may go without (the operator's resources,
    /// Secrets, ConfigMaps, Ingresses) is then none, where it does not hold its answers back;
    /// so do we.
    fn listed_or_denied(&self) -> bool {
        self.listed() || self.denied.load(Ordering::Acquire)
    }

    /// The role may not list the kind, and it has not been listed since: objects of it are
    /// read by name ([`by_name`]).
    fn read_by_name(&self) -> bool {
        !self.listed() && self.denied.load(Ordering::Acquire)
    }
}

/// What an unavailable kind (403, or 404 for a CRD that is not installed) means for its cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Need {
    /// Every answer needs it: keep the last list, report it (readiness).
    Required,
    /// Read as none when unavailable, as a fresh process reads it: the cache is emptied.
    Optional,
}

/// What the nodes are read for.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeUse {
    /// Zone-aware allocation: the zones are node labels.
    pub zones: bool,
    /// A scrape class of `prometheus_cr` sets `attachMetadata.node`, so every resource that
    /// uses it adds node metadata to its targets.
    pub class_metadata: bool,
    /// A `kubernetes_sd_configs` entry of the configuration has role `node` or attaches node
    /// metadata.
    pub sd_configs: bool,
}

/// The Endpoints watch, started only while a job discovers role `endpoints`: a cluster-wide
/// cache of a deprecated kind that mostly repeats the EndpointSlices, which most roles (and
/// RBAC rules) have no use for.
struct EndpointsWatch {
    /// A `kubernetes_sd_configs` entry of the configuration has role `endpoints`.
    role: bool,
    client: Client,
    runtime: tokio::runtime::Handle,
    /// The running watch and its task (aborted when no job uses the role any more).
    running: parking_lot::Mutex<Option<(Watched<Endpoints>, tokio::task::JoinHandle<()>)>>,
    /// Whether a cached operator resource asks for the role, as of a cache generation.
    asked: parking_lot::Mutex<Option<(u64, bool)>>,
}

/// The caches of every watched resource, and a counter bumped on every change.
pub struct Cluster {
    pods: Watched<Pod>,
    services: Watched<Service>,
    slices: Watched<EndpointSlice>,
    ingresses: Watched<Ingress>,
    namespaces: Watched<Namespace>,
    service_monitors: Option<Watched<DynamicObject>>,
    pod_monitors: Option<Watched<DynamicObject>>,
    scrape_configs: Option<Watched<DynamicObject>>,
    probes: Option<Watched<DynamicObject>>,
    secrets: Option<Watched<Secret>>,
    config_maps: Option<Watched<ConfigMap>>,
    /// Secrets and ConfigMaps read by name, when the role may not list them.
    by_name: Option<Arc<by_name::ByName>>,
    /// Watched when zones are on (their labels name the zones) or the operator's resources are
    /// (`attachMetadata.node`).
    nodes: Option<Watched<Node>>,
    /// Why nodes are read: readiness waits for their first list only when something uses them.
    node_use: NodeUse,
    endpoints: EndpointsWatch,
    generation: Arc<AtomicU64>,
    /// ScrapeConfigs' `httpSDConfigs`: one fetcher per entry, named by the job and the entry's
    /// rendered settings (a changed entry gets a new fetcher; unused ones are stopped).
    http: parking_lot::Mutex<crate::discovery::http_sd::HttpSd>,
}

fn crd(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn spawn_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    generation: Arc<AtomicU64>,
    what: &'static str,
    need: Need,
) -> Watched<K>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    spawn_watch_kept(api, writer, generation, what, need, |_| {})
}

/// [`spawn_watch`] keeping of each object only what `keep` leaves of it (the cache holds every
/// object of the kind, cluster-wide).
fn spawn_watch_kept<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    generation: Arc<AtomicU64>,
    what: &'static str,
    need: Need,
    keep: fn(&mut K),
) -> Watched<K>
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let runtime = tokio::runtime::Handle::current();
    start_watch(&runtime, api, writer, generation, what, need, keep).0
}

/// [`spawn_watch_kept`] on `runtime`, with the handle of the watch's task.
fn start_watch<K>(
    runtime: &tokio::runtime::Handle,
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    generation: Arc<AtomicU64>,
    what: &'static str,
    need: Need,
    keep: fn(&mut K),
) -> (Watched<K>, tokio::task::JoinHandle<()>)
where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let watched = Watched {
        store: writer.as_reader(),
        synced: Arc::new(AtomicBool::new(false)),
        denied: Arc::new(AtomicBool::new(false)),
    };
    let flags = (watched.synced.clone(), watched.denied.clone());
    let task = runtime.spawn(watch(api, writer, flags, generation, what, need, keep));
    (watched, task)
}

/// Keep `writer`'s cache equal to the kind's objects: list, then watch; after an error, wait
/// ([`Backoff`]) and resume. A kind that becomes unavailable (403, 404) is listed again from
/// scratch by a new watcher (kube's would resume its old watch and never list again), and an
/// optional one's cache is emptied meanwhile.
async fn watch<K>(
    api: Api<K>,
    mut writer: reflector::store::Writer<K>,
    (synced, denied): (Arc<AtomicBool>, Arc<AtomicBool>),
    generation: Arc<AtomicU64>,
    what: &'static str,
    need: Need,
    keep: fn(&mut K),
) where
    K: kube::Resource
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone + Send + Sync,
{
    let mut backoff = Backoff::new();
    // When the current streak of refusals started, and how many attempts it holds (None: the
    // last attempt was not refused).
    let mut refused_since: Option<(std::time::Instant, u32)> = None;
    loop {
        let stream = watcher(api.clone(), watcher::Config::default());
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            let e = match event {
                Ok(event) => {
                    let event = event.modify(keep);
                    writer.apply_watcher_event(&event);
                    match event {
                        watcher::Event::Init => tracing::debug!(resource = what, "listing"),
                        watcher::Event::InitApply(_) => {}
                        watcher::Event::InitDone => {
                            backoff.reset();
                            refused_since = None;
                            synced.store(true, Ordering::Release);
                            if denied.swap(false, Ordering::AcqRel) {
                                tracing::info!(resource = what, "may be listed again");
                            }
                            generation.fetch_add(1, Ordering::AcqRel);
                            tracing::info!(resource = what, "listed");
                        }
                        watcher::Event::Apply(_) | watcher::Event::Delete(_) => {
                            backoff.reset();
                            refused_since = None;
                            generation.fetch_add(1, Ordering::AcqRel);
                        }
                    }
                    continue;
                }
                Err(e) => e,
            };
            let Some(why) = unavailable(&e) else {
                // The API server unreachable or restarting: what was listed stays, and the next
                // attempt comes soon (at most 5 s apart), so a restarted API server is read
                // again within seconds; a watch that expired (410) lists again at once, as
                // client-go's reflector does.
                let cap = if expired(&e) {
                    EXPIRED_PAUSE
                } else {
                    UNREACHABLE_PAUSE
                };
                let pause = backoff.step().min(cap);
                tracing::warn!(resource = what, error = %e, retry_in = ?pause, "watch error; retrying");
                tokio::time::sleep(pause).await;
                continue;
            };
            let pause = backoff.step();
            let (since, attempts) = refused_since.get_or_insert((std::time::Instant::now(), 0));
            *attempts += 1;
            // A kind listed before counts as unavailable only once the refusal persists, over
            // several attempts at most 2 s apart: an API server that has just started answers
            // 403 for a moment, before its authorizer has synced, and emptying the kind then
            // would serve every job of it as gone while ready. (Attempts far apart could meet
            // two such moments of two restarts.)
            if synced.load(Ordering::Acquire)
                && (since.elapsed() < REFUSAL_PERSISTS || *attempts < REFUSALS_TO_PERSIST)
            {
                let pause = pause.min(BRIEF_REFUSAL_PAUSE);
                tracing::debug!(resource = what, error = %e, retry_in = ?pause, "{why}; retrying before taking it as unavailable");
                tokio::time::sleep(pause).await;
                break;
            }
            if !denied.swap(true, Ordering::AcqRel) {
                generation.fetch_add(1, Ordering::AcqRel);
                match need {
                    Need::Optional => {
                        tracing::warn!(resource = what, error = %e, "{why}: none of it is read until it may be listed (retrying)")
                    }
                    Need::Required => {
                        tracing::warn!(resource = what, error = %e, "{why}: the last list stays, and the allocator is not ready until it may be listed again (retrying)")
                    }
                }
            }
            if need == Need::Optional && synced.swap(false, Ordering::AcqRel) {
                // What a fresh process would read: none of the kind.
                writer.apply_watcher_event(&watcher::Event::Init);
                writer.apply_watcher_event(&watcher::Event::InitDone);
                generation.fetch_add(1, Ordering::AcqRel);
            }
            tokio::time::sleep(pause).await;
            break;
        }
    }
}

/// How long a listed kind must stay refused (403, 404), over how many attempts at most
/// [`BRIEF_REFUSAL_PAUSE`] apart, before it is taken as unavailable.
const REFUSAL_PERSISTS: std::time::Duration = std::time::Duration::from_secs(10);
const REFUSALS_TO_PERSIST: u32 = 5;
const BRIEF_REFUSAL_PAUSE: std::time::Duration = std::time::Duration::from_secs(2);

/// The pause before listing again after a watch expired (410 Gone): at once, nearly.
const EXPIRED_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// The longest pause after a failure that is not a refusal (the API server unreachable).
const UNREACHABLE_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// Whether the watch's resource version expired (410 Gone): the watcher lists again.
fn expired(e: &watcher::Error) -> bool {
    match e {
        watcher::Error::WatchError(s) => s.code == 410,
        watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => s.code == 410,
        _ => false,
    }
}

/// Why a watch failed, when the kind is unavailable rather than the request failing: the API
/// server refused the service account (403), or does not serve the kind (404, a CRD that is not
/// installed; the Go allocator skips the informer of a CRD it does not find).
fn unavailable(e: &watcher::Error) -> Option<&'static str> {
    match e {
        watcher::Error::InitialListFailed(kube::Error::Api(s))
        | watcher::Error::WatchStartFailed(kube::Error::Api(s))
        | watcher::Error::WatchFailed(kube::Error::Api(s)) => {
            if s.is_forbidden() {
                Some("the role may not list this kind")
            } else if s.code == 404 || s.is_not_found() {
                Some("the API server does not serve this kind (its CRD is not installed)")
            } else {
                None
            }
        }
        _ => None,
    }
}

fn spawn_dynamic(
    client: &Client,
    ar: ApiResource,
    generation: Arc<AtomicU64>,
    what: &'static str,
) -> Watched<DynamicObject> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    // The operator's kinds: a cluster may lack a CRD, or the role a kind.
    spawn_watch(
        api,
        reflector::store::Writer::new(ar),
        generation,
        what,
        Need::Optional,
    )
}

/// The `spec` of an operator resource; an unreadable one is logged and skipped.
fn spec_of<T: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Option<T> {
    let (name, ns) = name_ns(&obj.metadata);
    let kind = obj.types.as_ref().map_or("resource", |t| t.kind.as_str());
    serde_json::from_value(obj.data.get("spec").cloned().unwrap_or_default())
        .map_err(|e| tracing::warn!(%kind, object = %format!("{ns}/{name}"), error = %e, "unreadable spec; skipped"))
        .ok()
}

/// The `spec` of an operator resource of `kind`, when this allocator translates every field it
/// sets; a resource with other fields is refused (logged with the fields named), since serving
/// a job that differs from the generator's would be a wrong answer.
fn supported_spec<T: serde::de::DeserializeOwned>(kind: &str, obj: &DynamicObject) -> Option<T> {
    let (name, ns) = name_ns(&obj.metadata);
    let spec = obj.data.get("spec").cloned().unwrap_or_default();
    let fields = support::unsupported(kind, &spec);
    if !fields.is_empty() {
        tracing::warn!(%kind, object = %format!("{ns}/{name}"), fields = %fields.join(", "), "refused: sets fields this allocator does not support; no job is served for it");
        return None;
    }
    spec_of(obj)
}

/// Whether a resource passed the operator's checks (`validate`); a failure is logged.
fn valid(kind: &str, ns: &str, name: &str, checked: Result<(), String>) -> bool {
    match checked {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(%kind, object = %format!("{ns}/{name}"), error = %e, "rejected, as prometheus-operator rejects it");
            false
        }
    }
}

fn name_ns(m: &kube::api::ObjectMeta) -> (&str, &str) {
    (
        m.name.as_deref().unwrap_or_default(),
        m.namespace.as_deref().unwrap_or_default(),
    )
}

fn labels_of(m: &kube::api::ObjectMeta) -> BTreeMap<String, String> {
    m.labels.clone().unwrap_or_default()
}

/// The Go allocator's collector health check (`isPodUnhealthy`): off when the grace period is
/// zero; otherwise a pod is dropped when it has not been Running for longer than the grace
/// period since its `startTime` (none: it counts), or when its Ready condition is not True and
/// last changed longer ago than that (a condition without a time counts as long ago). A
/// Running pod without a Ready condition stays.
fn unhealthy_for_longer(
    status: Option<&k8s_openapi::api::core::v1::PodStatus>,
    grace: Duration,
    now: k8s_openapi::jiff::Timestamp,
) -> bool {
    if grace.is_zero() {
        return false;
    }
    let Some(status) = status else {
        return false;
    };
    let longer = |t: Option<&k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>| {
        t.is_none_or(|t| now.duration_since(t.0).as_secs_f64() > grace.as_secs_f64())
    };
    let not_running = status.phase.as_deref() != Some("Running")
        && status.start_time.is_some()
        && longer(status.start_time.as_ref());
    let not_ready = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Ready" && c.status != "True" && longer(c.last_transition_time.as_ref())
    });
    not_running || not_ready
}

impl Cluster {
    /// Start the watchers (on the current tokio runtime): the operator's resources when
    /// `cr_enabled`, with the reader of the Secrets and ConfigMaps they name (by name, as
    /// `reads` says, when the role may not list them); nodes when zone-aware allocation reads
    /// their labels or `cr_enabled` (node metadata for `attachMetadata.node`); Endpoints while
    /// a job discovers that role (`endpoints_role`: a `kubernetes_sd_configs` entry does).
    pub fn start(
        client: Client,
        cr_enabled: bool,
        node_use: NodeUse,
        endpoints_role: bool,
        reads: by_name::Settings,
    ) -> Cluster {
        let generation = Arc::new(AtomicU64::new(0));
        let g = || generation.clone();
        let pods = spawn_watch(
            Api::<Pod>::all(client.clone()),
            Default::default(),
            g(),
            "pods",
            Need::Required,
        );
        let services = spawn_watch(
            Api::<Service>::all(client.clone()),
            Default::default(),
            g(),
            "services",
            Need::Required,
        );
        let slices = spawn_watch(
            Api::<EndpointSlice>::all(client.clone()),
            Default::default(),
            g(),
            "endpointslices",
            Need::Required,
        );
        let ingresses = spawn_watch(
            Api::<Ingress>::all(client.clone()),
            Default::default(),
            g(),
            "ingresses",
            Need::Optional,
        );
        let namespaces = spawn_watch(
            Api::<Namespace>::all(client.clone()),
            Default::default(),
            g(),
            "namespaces",
            Need::Required,
        );
        let (service_monitors, pod_monitors, scrape_configs, probes) = if cr_enabled {
            (
                Some(spawn_dynamic(
                    &client,
                    crd(
                        "monitoring.coreos.com",
                        "v1",
                        "ServiceMonitor",
                        "servicemonitors",
                    ),
                    g(),
                    "servicemonitors",
                )),
                Some(spawn_dynamic(
                    &client,
                    crd("monitoring.coreos.com", "v1", "PodMonitor", "podmonitors"),
                    g(),
                    "podmonitors",
                )),
                Some(spawn_dynamic(
                    &client,
                    crd(
                        "monitoring.coreos.com",
                        "v1alpha1",
                        "ScrapeConfig",
                        "scrapeconfigs",
                    ),
                    g(),
                    "scrapeconfigs",
                )),
                Some(spawn_dynamic(
                    &client,
                    crd("monitoring.coreos.com", "v1", "Probe", "probes"),
                    g(),
                    "probes",
                )),
            )
        } else {
            (None, None, None, None)
        };
        let (secrets, config_maps) = if cr_enabled {
            (
                Some(spawn_watch(
                    Api::<Secret>::all(client.clone()),
                    Default::default(),
                    g(),
                    "secrets",
                    Need::Optional,
                )),
                Some(spawn_watch(
                    Api::<ConfigMap>::all(client.clone()),
                    Default::default(),
                    g(),
                    "configmaps",
                    Need::Optional,
                )),
            )
        } else {
            (None, None)
        };
        let by_name = cr_enabled.then(|| {
            by_name::ByName::start(
                client.clone(),
                reads.secret_namespaces,
                generation.clone(),
                reads.timing,
            )
        });
        // Nodes: their zone labels, and the node metadata a generated job's
        // `attach_metadata.node` adds to its targets.
        let nodes = (node_use.zones || node_use.sd_configs || cr_enabled).then(|| {
            spawn_watch_kept(
                Api::<Node>::all(client.clone()),
                Default::default(),
                g(),
                "nodes",
                Need::Optional,
                trim_node,
            )
        });
        let endpoints = EndpointsWatch {
            role: endpoints_role,
            client: client.clone(),
            runtime: tokio::runtime::Handle::current(),
            running: Default::default(),
            asked: Default::default(),
        };
        Cluster {
            endpoints,
            pods,
            services,
            slices,
            ingresses,
            namespaces,
            service_monitors,
            pod_monitors,
            scrape_configs,
            probes,
            secrets,
            config_maps,
            by_name,
            nodes,
            node_use,
            generation,
            http: Default::default(),
        }
    }

    /// Bumped on every change of any cache and every new HTTP SD answer.
    pub fn generation(&self) -> u64 {
        if self.http.lock().poll() {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
        self.generation.load(Ordering::Acquire)
    }

    /// The watched resources whose cache does not hold a current complete list (of those the
    /// served answers read now): empty when every answer can be computed. Starts the Endpoints
    /// watch when a job has come to use that role, and stops it when none does any more.
    pub fn not_listed(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.follow_endpoints_use() == Some(false) {
            missing.push("endpoints");
        }
        // Discovery and the collectors need these: without them no answer is right (but
        // Ingresses, read only by jobs of that role, as the Go allocator reads them).
        for (what, ok) in [
            ("pods", self.pods.current()),
            ("services", self.services.current()),
            ("endpointslices", self.slices.current()),
            ("namespaces", self.namespaces.current()),
            ("ingresses", self.ingresses.listed_or_denied()),
        ] {
            if !ok {
                missing.push(what);
            }
        }
        for (what, w) in [
            ("servicemonitors", &self.service_monitors),
            ("podmonitors", &self.pod_monitors),
            ("scrapeconfigs", &self.scrape_configs),
            ("probes", &self.probes),
        ] {
            if !w.as_ref().is_none_or(Watched::listed_or_denied) {
                missing.push(what);
            }
        }
        if !self.secrets.as_ref().is_none_or(Watched::listed_or_denied) {
            missing.push("secrets");
        }
        if !self
            .config_maps
            .as_ref()
            .is_none_or(Watched::listed_or_denied)
        {
            missing.push("configmaps");
        }
        // Listed first: the common case then skips the scan of the resources.
        if !self.nodes.as_ref().is_none_or(Watched::listed) && self.nodes_needed() {
            missing.push("nodes");
        }
        missing
    }

    /// Start or stop the Endpoints watch as jobs use the role (`endpoints_wanted`). None: not
    /// watched; else whether it has listed once or is refused (then read as none: the role's
    /// jobs have no targets, as in the Go allocator, and the others are served).
    fn follow_endpoints_use(&self) -> Option<bool> {
        let wanted = self.endpoints_wanted();
        let e = &self.endpoints;
        let mut running = e.running.lock();
        match (wanted, running.is_some()) {
            (true, false) => {
                tracing::info!("a job discovers role endpoints: watching Endpoints");
                *running = Some(start_watch(
                    &e.runtime,
                    Api::<Endpoints>::all(e.client.clone()),
                    Default::default(),
                    self.generation.clone(),
                    "endpoints",
                    // As Ingresses: read only by the jobs of the role, which go without targets
                    // when the role may not list them, as the Go allocator's discovery does
                    // (its other jobs are served, ready).
                    Need::Optional,
                    trim_endpoints,
                ));
            }
            (false, true) => {
                tracing::info!(
                    "no job discovers role endpoints any more: Endpoints no longer watched"
                );
                if let Some((_, task)) = running.take() {
                    task.abort();
                }
                self.generation.fetch_add(1, Ordering::AcqRel);
            }
            _ => {}
        }
        running.as_ref().map(|(w, _)| w.listed_or_denied())
    }

    /// Whether a job discovers role `endpoints`: a `kubernetes_sd_configs` entry, or a cached
    /// ServiceMonitor with `serviceDiscoveryRole: Endpoints` or ScrapeConfig with a Kubernetes
    /// SD entry of that role (selected or not, as for the node metadata: a resource that comes
    /// to be selected then finds the watch listed). Rescanned only when a cache changed.
    fn endpoints_wanted(&self) -> bool {
        if self.endpoints.role {
            return true;
        }
        let generation = self.generation.load(Ordering::Acquire);
        let mut asked = self.endpoints.asked.lock();
        if let Some((g, yes)) = *asked {
            if g == generation {
                return yes;
            }
        }
        fn spec_field<'a>(o: &'a DynamicObject, field: &str) -> Option<&'a serde_json::Value> {
            o.data.get("spec")?.get(field)
        }
        let cached = |w: &Option<Watched<DynamicObject>>| {
            w.as_ref().map(|w| w.store.state()).unwrap_or_default()
        };
        let monitors = cached(&self.service_monitors).iter().any(|o| {
            spec_field(o, "serviceDiscoveryRole").and_then(|r| r.as_str())
                == Some(monitors::ENDPOINTS_ROLE)
        });
        let yes = monitors
            || cached(&self.scrape_configs).iter().any(|o| {
                spec_field(o, "kubernetesSDConfigs")
                    .and_then(|k| k.as_array())
                    .is_some_and(|sds| {
                        sds.iter().any(|sd| {
                            sd.get("role")
                                .and_then(|r| r.as_str())
                                .is_some_and(|r| r.eq_ignore_ascii_case("endpoints"))
                        })
                    })
            });
        *asked = Some((generation, yes));
        yes
    }

    /// Whether what is served reads the nodes now: zones, or node metadata that a scrape class
    /// or a resource asks for. Otherwise a node watch that cannot list (RBAC without `nodes`,
    /// which the Go allocator needs only in the same cases) does not hold readiness back.
    fn nodes_needed(&self) -> bool {
        self.node_use.zones
            || self.node_use.class_metadata
            || self.node_use.sd_configs
            || self.resource_wants_node_metadata()
    }

    /// Whether a cached ServiceMonitor, PodMonitor or ScrapeConfig sets `attachMetadata.node`,
    /// or a ScrapeConfig discovers role `Node`.
    fn resource_wants_node_metadata(&self) -> bool {
        let node_on = |v: Option<&serde_json::Value>| {
            v.and_then(|a| a.get("node")).and_then(|n| n.as_bool()) == Some(true)
        };
        let monitors = [&self.service_monitors, &self.pod_monitors];
        let in_monitors = monitors.iter().filter_map(|w| w.as_ref()).any(|w| {
            w.store
                .state()
                .iter()
                .any(|o| node_on(o.data.get("spec").and_then(|s| s.get("attachMetadata"))))
        });
        in_monitors
            || self.scrape_configs.as_ref().is_some_and(|w| {
                w.store.state().iter().any(|o| {
                    o.data
                        .get("spec")
                        .and_then(|s| s.get("kubernetesSDConfigs"))
                        .and_then(|k| k.as_array())
                        .is_some_and(|sds| {
                            sds.iter().any(|sd| {
                                node_on(sd.get("attachMetadata"))
                                    || sd
                                        .get("role")
                                        .and_then(|r| r.as_str())
                                        .is_some_and(|r| r.eq_ignore_ascii_case("node"))
                            })
                        })
                })
            })
    }

    /// The node → zone table: every node with a non-empty `label`, as `(node, zone)` sorted by
    /// node (empty when nodes are not watched).
    pub fn node_zones(&self, label: &str) -> Vec<(String, String)> {
        let Some(nodes) = &self.nodes else {
            return Vec::new();
        };
        let mut table: Vec<(String, String)> = nodes
            .store
            .state()
            .iter()
            .filter_map(|n| {
                let zone = n.metadata.labels.as_ref()?.get(label)?;
                let name = n.metadata.name.clone()?;
                (!zone.is_empty()).then(|| (name, zone.clone()))
            })
            .collect();
        table.sort();
        table
    }

    /// Collector pods: in `namespace`, matching `selector`, scheduled; a pod not Running or not
    /// Ready counts until it has been so for `grace`. Returns (name, node), sorted by name.
    pub fn collectors(
        &self,
        namespace: &str,
        selector: &LabelSelector,
        grace: Duration,
    ) -> Vec<(String, Option<String>)> {
        let now = k8s_openapi::jiff::Timestamp::now();
        let mut out: Vec<(String, Option<String>)> = self
            .pods
            .store
            .state()
            .iter()
            .filter(|p| p.metadata.namespace.as_deref() == Some(namespace))
            // A terminating pod stays a collector until it is gone, as in the Go allocator
            // (its informer lists it until deleted; it still scrapes while it shuts down).
            .filter(|p| selector.matches(&labels_of(&p.metadata)))
            .filter_map(|p| {
                let node = p.spec.as_ref()?.node_name.clone()?;
                if node.is_empty() || unhealthy_for_longer(p.status.as_ref(), grace, now) {
                    return None;
                }
                Some((p.metadata.name.clone()?, Some(node)))
            })
            .collect();
        out.sort();
        out
    }

    // Lookups by name go through the reflector's own index (a hash map), not a scan: they run
    // once per endpoint and once per EndpointSlice.
    fn pod(&self, ns: &str, name: &str) -> Option<Arc<Pod>> {
        self.pods.store.get(&ObjectRef::<Pod>::new(name).within(ns))
    }

    fn service(&self, ns: &str, name: &str) -> Option<Arc<Service>> {
        self.services.store.get(&ObjectRef::new(name).within(ns))
    }

    /// Target groups of a `kubernetes_sd_configs` entry, for an allocator whose own namespace
    /// (`namespaces.own_namespace`) is `own_namespace`: the same discovery as a ScrapeConfig's
    /// Kubernetes SD (`role_targets`).
    pub fn sd_groups(&self, sd: &KubernetesSdConfig, own_namespace: &str) -> Vec<Labels> {
        // Checked when the configuration loaded.
        let Ok(selectors) = sd.role_selectors() else {
            return Vec::new();
        };
        let namespaces = sd.namespaces(own_namespace);
        let in_ns = |ns: &str| {
            namespaces
                .as_ref()
                .is_none_or(|n| n.iter().any(|x| x == ns))
        };
        self.role_targets(&sd.role, sd.attach_node(), &selectors, &in_ns)
    }

    fn selected(
        &self,
        cr: &PrometheusCr,
        watched: &Option<Watched<DynamicObject>>,
        selector: &Option<LabelSelector>,
        ns_selector: &Option<LabelSelector>,
    ) -> Vec<Arc<DynamicObject>> {
        let (Some(w), Some(sel)) = (watched, selector) else {
            return Vec::new();
        };
        let mut out: Vec<Arc<DynamicObject>> = w
            .store
            .state()
            .into_iter()
            .filter(|o| {
                let ns = name_ns(&o.metadata).1;
                let ns_labels = self
                    .namespaces
                    .store
                    .get(&ObjectRef::<Namespace>::new(ns))
                    .map(|n| labels_of(&n.metadata));
                resource_selected(
                    cr,
                    sel,
                    ns_selector,
                    &labels_of(&o.metadata),
                    ns,
                    ns_labels.as_ref(),
                )
            })
            .collect();
        out.sort_by(|a, b| {
            name_ns(&a.metadata)
                .1
                .cmp(name_ns(&b.metadata).1)
                .then(name_ns(&a.metadata).0.cmp(name_ns(&b.metadata).0))
        });
        out
    }

    /// Jobs generated from the selected Prometheus Operator resources, with their targets:
    /// every object of the job's discovery role in its namespaces, filtered afterwards by the
    /// generated relabelings (as the Go allocator does). Err: the Secrets and ConfigMaps
    /// (`Secret ns/name`) whose first read by name has not answered yet; the jobs are not
    /// computed then (a resource naming one would be neither served nor refused rightly), and
    /// the answer that lands bumps the generation.
    pub fn monitor_jobs(&self, cfg: &Loaded) -> Result<Vec<GeneratedJob>, Vec<String>> {
        let Some(cr) = cfg.file.prometheus_cr.as_ref().filter(|c| c.enabled) else {
            return Ok(Vec::new());
        };
        if let Some(b) = &self.by_name {
            b.begin();
        }
        let mut waiting: Vec<by_name::Key> = Vec::new();
        let classes = &cr.scrape_classes;
        let default_interval = cr.scrape_interval.as_deref().unwrap_or("30s");
        let mut defs: Vec<(JobDef, serde_json::Map<String, serde_json::Value>)> = Vec::new();
        for sm in self.selected(
            cr,
            &self.service_monitors,
            &cr.service_monitor_selector,
            &cr.service_monitor_namespace_selector,
        ) {
            let (name, ns) = name_ns(&sm.metadata);
            if let Some(spec) =
                supported_spec::<ServiceMonitorSpec>("ServiceMonitor", &sm).filter(|spec| {
                    valid(
                        "ServiceMonitor",
                        ns,
                        name,
                        validate::service_monitor(spec, classes, default_interval),
                    )
                })
            {
                let jobs = monitors::service_monitor_jobs(ns, name, &spec, classes);
                self.accept(&mut defs, &mut waiting, "ServiceMonitor", ns, name, jobs);
            }
        }
        for pm in self.selected(
            cr,
            &self.pod_monitors,
            &cr.pod_monitor_selector,
            &cr.pod_monitor_namespace_selector,
        ) {
            let (name, ns) = name_ns(&pm.metadata);
            if let Some(spec) = supported_spec::<PodMonitorSpec>("PodMonitor", &pm).filter(|spec| {
                valid(
                    "PodMonitor",
                    ns,
                    name,
                    validate::pod_monitor(spec, classes, default_interval),
                )
            }) {
                let jobs = monitors::pod_monitor_jobs(ns, name, &spec, classes);
                self.accept(&mut defs, &mut waiting, "PodMonitor", ns, name, jobs);
            }
        }
        for probe in self.selected(
            cr,
            &self.probes,
            &cr.probe_selector,
            &cr.probe_namespace_selector,
        ) {
            let (name, ns) = name_ns(&probe.metadata);
            if let Some(spec) = supported_spec::<ProbeSpec>("Probe", &probe).filter(|spec| {
                valid(
                    "Probe",
                    ns,
                    name,
                    validate::probe(spec, classes, default_interval),
                )
            }) {
                match monitors::probe_job(ns, name, &spec, classes) {
                    Some(def) => self.accept(&mut defs, &mut waiting, "Probe", ns, name, vec![def]),
                    None => {
                        tracing::info!(probe = %format!("{ns}/{name}"), "probe without static or ingress targets; skipped")
                    }
                }
            }
        }
        for sc in self.selected(
            cr,
            &self.scrape_configs,
            &cr.scrape_config_selector,
            &cr.scrape_config_namespace_selector,
        ) {
            let (name, ns) = name_ns(&sc.metadata);
            if let Some(spec) =
                supported_spec::<ScrapeConfigSpec>("ScrapeConfig", &sc).filter(|spec| {
                    valid(
                        "ScrapeConfig",
                        ns,
                        name,
                        validate::scrape_config(spec, classes, default_interval),
                    )
                })
            {
                let job =
                    monitors::scrape_config_job(ns, name, &spec, classes, &cfg.collector_namespace);
                self.accept(&mut defs, &mut waiting, "ScrapeConfig", ns, name, vec![job]);
            }
        }
        if !waiting.is_empty() {
            waiting.sort();
            waiting.dedup();
            return Err(waiting.iter().map(ToString::to_string).collect());
        }
        let mut by_role: BTreeMap<RoleKey, Vec<Labels>> = BTreeMap::new();
        let mut http_used = std::collections::BTreeSet::new();
        if cr.deny_fs_access_through_sms {
            defs.retain(|(def, settings)| match host_file_read(settings) {
                Some(reason) => {
                    tracing::warn!(job = %def.name, %reason, "dropped: the job reads a file of the collector's host (deny_fs_access_through_sms)");
                    false
                }
                None => true,
            });
        }
        let jobs = defs
            .into_iter()
            .filter_map(|(def, settings)| {
                let groups = def
                    .sources
                    .iter()
                    .enumerate()
                    .flat_map(|(k, src)| match src {
                        Source::Http(h) => self.http_groups(&def, k, h, &mut http_used),
                        _ => self.source_groups(cfg, src, &mut by_role),
                    })
                    .collect();
                finish_job(def, default_interval, groups, settings)
            })
            .collect();
        self.http.lock().retain(&http_used);
        if let Some(b) = &self.by_name {
            // Every name the resources use was looked up: the others are forgotten.
            b.end();
        }
        Ok(jobs)
    }

    /// The last groups an `httpSDConfigs` entry of a job served (starting its fetcher when new).
    fn http_groups(
        &self,
        def: &JobDef,
        k: usize,
        h: &monitors::CrHttpSd,
        used: &mut std::collections::BTreeSet<String>,
    ) -> Vec<Labels> {
        use crate::discovery::http_sd::{entry_id, Endpoint};
        use std::hash::{Hash, Hasher};
        let ns = &def.settings.namespace;
        let endpoint = client::http_sd_entry(ns, h, self).and_then(|y| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            serde_yaml::to_string(&y)
                .unwrap_or_default()
                .hash(&mut hasher);
            let id = format!("{}#{:016x}", entry_id(&def.name, k), hasher.finish());
            Endpoint::parse(&y, std::path::Path::new("/")).map(|e| (id, e))
        });
        let (id, endpoint) = match endpoint {
            Ok(x) => x,
            Err(e)
                if self
                    .by_name
                    .as_ref()
                    .is_some_and(|b| !b.take_waited().is_empty()) =>
            {
                // A credential's first read by name is in flight; its answer regenerates.
                tracing::debug!(job = %def.name, url = %h.url, error = %e, "httpSDConfigs entry waits for a read by name");
                return Vec::new();
            }
            Err(e) => {
                tracing::warn!(job = %def.name, url = %h.url, error = %e, "httpSDConfigs entry skipped");
                return Vec::new();
            }
        };
        let mut http = self.http.lock();
        http.watch(&id, &endpoint);
        used.insert(id.clone());
        crate::discovery::expand(http.groups(&id)).collect()
    }

    /// A resource's jobs with their settings rendered, credentials read from the cluster; none
    /// when any credential cannot be read (the operator rejects such a resource as a whole),
    /// or when one is still being read by name (added to `waiting`, not refused).
    fn accept(
        &self,
        out: &mut Vec<(JobDef, serde_json::Map<String, serde_json::Value>)>,
        waiting: &mut Vec<by_name::Key>,
        kind: &str,
        ns: &str,
        name: &str,
        jobs: Vec<JobDef>,
    ) {
        let rendered: Result<Vec<_>, String> = jobs
            .into_iter()
            .map(|def| client::render(&def.settings, self).map(|s| (def, s)))
            .collect();
        let pending = self
            .by_name
            .as_ref()
            .map(|b| b.take_waited())
            .unwrap_or_default();
        match rendered {
            Ok(jobs) => out.extend(jobs),
            Err(_) if !pending.is_empty() => waiting.extend(pending),
            Err(e) => {
                tracing::warn!(%kind, object = %format!("{ns}/{name}"), error = %e, "rejected: its credentials cannot be read")
            }
        }
    }

    /// The discovered targets of one source of a generated job.
    fn source_groups(
        &self,
        cfg: &Loaded,
        src: &Source,
        by_role: &mut BTreeMap<RoleKey, Vec<Labels>>,
    ) -> Vec<Labels> {
        match src {
            Source::Kubernetes {
                role,
                namespaces,
                attach_node,
                selectors,
            } => {
                let all = by_role
                    .entry((role.clone(), *attach_node, format!("{selectors:?}")))
                    .or_insert_with(|| self.role_targets(role, *attach_node, selectors, &|_| true));
                all.iter()
                    .filter(|l| {
                        // Nodes belong to no namespace: Prometheus ignores the list for them.
                        namespaces.is_empty()
                            || role == "node"
                            || l.get("__meta_kubernetes_namespace")
                                .is_some_and(|ns| namespaces.contains(ns))
                    })
                    .cloned()
                    .collect()
            }
            Source::Static(groups) => groups.clone(),
            Source::File(patterns) => patterns
                .iter()
                .flat_map(|p| files::read_groups(&cfg.resolve(std::path::Path::new(p))))
                .collect(),
            // Fetched by `http_groups`.
            Source::Http(_) => Vec::new(),
        }
    }

    /// Every target of a Kubernetes discovery role in the namespaces `in_ns` accepts, with
    /// `attach_metadata.node` when `attach_node` (and the nodes are watched).
    fn role_targets(
        &self,
        role: &str,
        attach_node: bool,
        sel: &RoleSelectors,
        in_ns: &dyn Fn(&str) -> bool,
    ) -> Vec<Labels> {
        if let Some(e) = sel.refused(role, attach_node) {
            tracing::warn!(
                role,
                error = %e,
                "a Kubernetes discovery's selector is one the API server refuses: no targets, as \
                 Prometheus' discovery (whose list fails) finds none"
            );
            return Vec::new();
        }
        let attach_node = attach_node && self.nodes.is_some();
        fn selects<O: Selectable>(s: &Option<ObjectSelector>, o: &O) -> bool {
            RoleSelectors::selects(s, o)
        }
        // The node metadata of a node the node selector selects (Prometheus' node informer
        // lists only those).
        let node_labels = |n: &str| {
            let nodes = self.nodes.as_ref()?;
            let node = nodes.store.get(&ObjectRef::<Node>::new(n))?;
            selects(&sel.node, &*node).then(|| meta::node_labels(&node))
        };
        // The endpoints and endpointslice roles' targets with their node's metadata, when asked.
        let with_nodes = |mut targets: Vec<Labels>| {
            if attach_node {
                for t in &mut targets {
                    attach_endpoint_node(t, node_labels);
                }
            }
            targets
        };
        match role {
            "pod" => self
                .pods
                .store
                .state()
                .iter()
                .filter(|p| in_ns(name_ns(&p.metadata).1) && selects(&sel.pod, &**p))
                .flat_map(|p| match attach_node {
                    true => meta::pod_targets_on_nodes(p, node_labels),
                    false => meta::pod_targets(p),
                })
                .collect(),
            "service" => self
                .services
                .store
                .state()
                .iter()
                .filter(|s| in_ns(name_ns(&s.metadata).1) && selects(&sel.service, &**s))
                .flat_map(|s| meta::service_targets(s))
                .collect(),
            "node" => self
                .nodes
                .iter()
                .flat_map(|w| w.store.state())
                .filter(|n| selects(&sel.node, &**n))
                .flat_map(|n| meta::node_targets(&n))
                .collect(),
            "ingress" => self
                .ingresses
                .store
                .state()
                .iter()
                .filter(|i| in_ns(name_ns(&i.metadata).1))
                .flat_map(|i| meta::ingress_targets(i))
                .collect(),
            "endpoints" => {
                // Not watched yet: `not_listed` starts the watch and holds readiness back until
                // it has listed.
                let Some(store) = self
                    .endpoints
                    .running
                    .lock()
                    .as_ref()
                    .map(|(w, _)| w.store.clone())
                else {
                    return Vec::new();
                };
                store
                    .state()
                    .iter()
                    .filter(|e| in_ns(name_ns(&e.metadata).1) && selects(&sel.endpoints, &**e))
                    .flat_map(|eps| {
                        // The service of the same name.
                        let (name, ns) = name_ns(&eps.metadata);
                        let svc = self
                            .service(ns, name)
                            .filter(|s| selects(&sel.service, &**s));
                        with_nodes(meta::endpoints_targets(eps, svc.as_deref(), |ns, name| {
                            self.pod(ns, name).filter(|p| selects(&sel.pod, &**p))
                        }))
                    })
                    .collect()
            }
            "endpointslice" => self
                .slices
                .store
                .state()
                .iter()
                .filter(|s| in_ns(name_ns(&s.metadata).1) && selects(&sel.endpointslice, &**s))
                .flat_map(|slice| {
                    let ns = name_ns(&slice.metadata).1;
                    let svc = meta::slice_service(slice)
                        .and_then(|n| self.service(ns, n))
                        .filter(|s| selects(&sel.service, &**s));
                    with_nodes(meta::endpointslice_targets(
                        slice,
                        svc.as_deref(),
                        |ns, name| self.pod(ns, name).filter(|p| selects(&sel.pod, &**p)),
                    ))
                })
                .collect(),
            other => {
                tracing::warn!(
                    role = other,
                    "unsupported Kubernetes discovery role; no targets"
                );
                Vec::new()
            }
        }
    }
}

/// The setting by which a generated job's scrapes would read a file of the collector's host
/// (`authorization.credentials_file`, `tls_config.ca_file`, `cert_file`, `key_file`, in that
/// order, as the Go allocator checks them), if any.
fn host_file_read(settings: &serde_json::Map<String, serde_json::Value>) -> Option<String> {
    let file = |section: &str, key: &str| {
        settings
            .get(section)
            .and_then(|s| s.get(key))
            .and_then(|v| v.as_str())
            .filter(|f| !f.is_empty())
            .map(|f| format!("{section}.{key}: {f}"))
    };
    file("authorization", "credentials_file")
        .or_else(|| file("tls_config", "ca_file"))
        .or_else(|| file("tls_config", "cert_file"))
        .or_else(|| file("tls_config", "key_file"))
}

/// The targets of one discovery, kept for every job that uses the same (role, node metadata,
/// selectors).
type RoleKey = (String, bool, String);

/// What the node cache keeps of a node: what the zones, node metadata, the `node` role and
/// field selectors read (name, labels, annotations, provider id, unschedulable, addresses,
/// conditions' type and status, the kubelet's port). The rest of the spec and status (image
/// lists of tens of KB) would be most of the cache.
pub fn trim_node(n: &mut Node) {
    // `unschedulable`: a field selector of the node role or of node metadata may read it.
    n.spec = n.spec.take().and_then(|s| {
        (s.provider_id.is_some() || s.unschedulable.is_some()).then(|| NodeSpec {
            provider_id: s.provider_id,
            unschedulable: s.unschedulable,
            ..Default::default()
        })
    });
    n.status = n.status.take().map(|s| NodeStatus {
        addresses: s.addresses,
        conditions: s.conditions.map(|cs| {
            cs.into_iter()
                .map(|c| NodeCondition {
                    type_: c.type_,
                    status: c.status,
                    ..Default::default()
                })
                .collect()
        }),
        daemon_endpoints: s.daemon_endpoints,
        ..Default::default()
    });
    n.metadata.managed_fields = None;
}

/// What the Endpoints cache keeps of an object: all but its managed fields.
fn trim_endpoints(e: &mut Endpoints) {
    e.metadata.managed_fields = None;
}

/// Prometheus' `attach_metadata.node` for one target of the endpointslice or endpoints role
/// (`addNodeLabels`): the labels of the node the endpoint is on, from `node`; nothing when the
/// node is unknown. The roles name it in opposite orders: an EndpointSlice endpoint the node it
/// targets directly, else its `nodeName`; an Endpoints address its `nodeName` when set, else
/// the node it targets directly. (The pod role's is `meta::pod_targets_on_nodes`, which also
/// drops pods on unknown nodes.)
pub fn attach_endpoint_node(target: &mut Labels, node: impl Fn(&str) -> Option<Labels>) {
    // Only an Endpoints target has `__meta_kubernetes_endpoint_ready`.
    let endpoints = target.contains_key("__meta_kubernetes_endpoint_ready");
    let [kind, name, node_name] = if endpoints {
        [
            "__meta_kubernetes_endpoint_address_target_kind",
            "__meta_kubernetes_endpoint_address_target_name",
            "__meta_kubernetes_endpoint_node_name",
        ]
    } else {
        [
            "__meta_kubernetes_endpointslice_address_target_kind",
            "__meta_kubernetes_endpointslice_address_target_name",
            "__meta_kubernetes_endpointslice_endpoint_node_name",
        ]
    };
    let direct = target
        .get(kind)
        .is_some_and(|k| k == "Node")
        .then(|| target.get(name))
        .flatten();
    let by_node_name = target.get(node_name);
    let name = if endpoints {
        by_node_name.or(direct)
    } else {
        direct.or(by_node_name)
    };
    if let Some(labels) = name.and_then(|n| node(n)) {
        target.extend(labels);
    }
}

/// Whether `prometheus_cr` selects a resource with `labels` living in `ns` (whose labels are
/// `ns_labels`, None when the namespace is unknown): the resource selector, the allow/deny lists
/// and the namespace selector (absent: every namespace).
pub fn resource_selected(
    cr: &PrometheusCr,
    selector: &LabelSelector,
    ns_selector: &Option<LabelSelector>,
    labels: &BTreeMap<String, String>,
    ns: &str,
    ns_labels: Option<&BTreeMap<String, String>>,
) -> bool {
    if !selector.matches(labels) {
        return false;
    }
    if !cr.allow_namespaces.is_empty() && !cr.allow_namespaces.iter().any(|a| a == ns) {
        return false;
    }
    if cr.deny_namespaces.iter().any(|d| d == ns) {
        return false;
    }
    match ns_selector {
        None => true,
        Some(sel) => ns_labels.is_some_and(|l| sel.matches(l)),
    }
}

/// A job with its defaults filled as Prometheus' config loader fills them (interval from the
/// operator's global, timeout = min(10s, interval) when unset, durations in Prometheus' form)
/// and its rules compiled, wrapped the way the Go allocator wraps them.
pub fn finish_job(
    def: JobDef,
    default_interval: &str,
    groups: Vec<Labels>,
    settings: serde_json::Map<String, serde_json::Value>,
) -> Option<GeneratedJob> {
    // As Prometheus' loader resolves the generated job (`ScrapeConfig.Validate`), the Go
    // allocator serves it and seeds `__scrape_interval__`/`__scrape_timeout__`: an unset or zero
    // interval ("0s", "0m", "0ms", "0") is the global one (the operator writes
    // `prometheus_cr.scrape_interval` there and no global timeout, so that is min(10s, global
    // interval)); an unset or zero timeout is min(global timeout, interval).
    let global_ms = match crate::config::duration(default_interval) {
        // Zero there too is unset: `GlobalConfig` makes it 1m.
        Ok(d) if d.is_zero() => 60_000,
        Ok(d) => d.as_millis() as u64,
        Err(e) => {
            tracing::warn!(job = %def.name, error = %e, "skipping a job: invalid prometheus_cr.scrape_interval");
            return None;
        }
    };
    let parse = |what: &str, v: Option<&str>| match v.map(crate::config::prom_duration_ms) {
        None => Some(0),
        Some(Ok(ms)) => Some(ms),
        Some(Err(e)) => {
            tracing::warn!(job = %def.name, error = %e, "skipping a job with an invalid {what}");
            None
        }
    };
    let mut interval_ms = parse("interval", def.interval.as_deref())?;
    if interval_ms == 0 {
        interval_ms = global_ms;
    }
    let mut timeout_ms = parse("timeout", def.timeout.as_deref())?;
    if timeout_ms > interval_ms {
        tracing::warn!(job = %def.name, "skipping a job whose scrape timeout is greater than its interval");
        return None;
    }
    if timeout_ms == 0 {
        timeout_ms = global_ms.min(10_000).min(interval_ms);
    }
    let wrapped = monitors::without_sharding(&def.rules);
    let rules: Result<Vec<Rule>, String> = wrapped.iter().map(Rule::compile).collect();
    let rules = match rules {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(job = %def.name, error = %e, "skipping a job with an invalid relabeling");
            return None;
        }
    };
    let mut settings = settings;
    if def.path.as_deref() == Some("") {
        // An empty `metrics_path` (a Probe without `prober.path`, a ScrapeConfig's
        // `metricsPath: ""`): the Go allocator seeds no `__metrics_path__` for the targets, and
        // serves the job without the field (`omitempty`), which a collector loads as `/metrics`.
        // The served entry's fields are overridden by the settings, so it says so explicitly.
        settings.insert("metrics_path".into(), "/metrics".into());
    }
    Some(GeneratedJob {
        interval: crate::config::format_duration_ms(interval_ms),
        timeout: crate::config::format_duration_ms(timeout_ms),
        path: def.path.unwrap_or_else(|| "/metrics".into()),
        scheme: def
            .scheme
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "http".into()),
        params: def.params,
        rule_specs: def.rules,
        rules,
        groups,
        settings,
        name: def.name,
    })
}

/// Credentials from the watched Secrets and ConfigMaps, or read by name when the role may not
/// list them.
impl client::Assets for Cluster {
    fn secret(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let watched = self.secrets.as_ref()?;
        if watched.read_by_name() {
            return self.by_name_value(by_name::Kind::Secret, namespace, name, key);
        }
        let s = watched.store.get(&ObjectRef::new(name).within(namespace))?;
        if let Some(v) = s.data.as_ref().and_then(|d| d.get(key)) {
            return String::from_utf8(v.0.clone()).ok();
        }
        s.string_data.as_ref()?.get(key).cloned()
    }

    fn config_map(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let watched = self.config_maps.as_ref()?;
        if watched.read_by_name() {
            return self.by_name_value(by_name::Kind::ConfigMap, namespace, name, key);
        }
        let c = watched.store.get(&ObjectRef::new(name).within(namespace))?;
        c.data.as_ref()?.get(key).cloned()
    }

    fn why_unreadable(&self, kind: &str, namespace: &str, name: &str) -> Option<String> {
        let (kind, by_name) = match kind {
            "Secret" => (by_name::Kind::Secret, self.secrets.as_ref()?.read_by_name()),
            "ConfigMap" => (
                by_name::Kind::ConfigMap,
                self.config_maps.as_ref()?.read_by_name(),
            ),
            _ => return None,
        };
        if !by_name {
            return None;
        }
        self.by_name.as_ref()?.why_unreadable(&by_name::Key {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })
    }
}

impl Cluster {
    fn by_name_value(
        &self,
        kind: by_name::Kind,
        namespace: &str,
        name: &str,
        key: &str,
    ) -> Option<String> {
        let k = by_name::Key {
            kind,
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        };
        match self.by_name.as_ref()?.lookup(k, key) {
            by_name::Lookup::Read(v) => v,
            by_name::Lookup::Failed(_) | by_name::Lookup::Pending => None,
        }
    }
}

/// A client for the cluster: the configured kubeconfig, else in-cluster, else the usual
/// kubeconfig.
pub async fn client(cfg: &Loaded) -> Result<Client, String> {
    let config = match &cfg.file.kube_config_file_path {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(cfg.resolve(path))
                .map_err(|e| format!("kube_config_file_path: {e}"))?;
            kube::Config::from_custom_kubeconfig(kc, &Default::default())
                .await
                .map_err(|e| format!("kube_config_file_path: {e}"))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| format!("kubernetes credentials: {e}"))?,
    };
    Client::try_from(config).map_err(|e| format!("kubernetes client: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{PodCondition, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};

    fn at(now: Timestamp, ago: Duration) -> Time {
        Time(now - SignedDuration::try_from(ago).unwrap())
    }

    /// The cases of the Go allocator's `Test_gracePeriodWithNonRunningPodPhase` and
    /// `Test_gracePeriodWithNonReadyPodCondition` (collector_test.go): pods with a phase and a
    /// start time only, and pods with a Ready condition only (no phase).
    #[test]
    fn collector_health_is_the_go_allocators() {
        let now = Timestamp::now();
        let grace = Duration::from_secs(30);
        let phase = |phase: &str, started: Duration| PodStatus {
            phase: Some(phase.into()),
            start_time: Some(at(now, started)),
            ..Default::default()
        };
        let ready = |status: &str, changed: Duration| PodStatus {
            conditions: Some(vec![PodCondition {
                type_: "Ready".into(),
                status: status.into(),
                last_transition_time: Some(at(now, changed)),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let cases = [
            ("running", phase("Running", Duration::ZERO), false),
            (
                "unknown within the grace period",
                phase("Unknown", grace / 2),
                false,
            ),
            (
                "pending over the grace period",
                phase("Pending", grace * 3 / 2),
                true,
            ),
            ("ready", ready("True", Duration::ZERO), false),
            (
                "not ready within the grace period",
                ready("False", grace / 2),
                false,
            ),
            (
                "not ready over the grace period",
                ready("False", grace * 3 / 2),
                true,
            ),
        ];
        for (what, status, dropped) in &cases {
            assert_eq!(
                unhealthy_for_longer(Some(status), grace, now),
                *dropped,
                "{what}"
            );
            // "collector healthiness check disabled": a zero grace period keeps every pod.
            assert!(
                !unhealthy_for_longer(Some(status), Duration::ZERO, now),
                "{what}"
            );
        }
        // No status yet (a pod just created): kept.
        assert!(!unhealthy_for_longer(None, grace, now));
    }
}
