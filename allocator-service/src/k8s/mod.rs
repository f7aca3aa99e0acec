//! Kubernetes discovery: kube-rs watchers and reflectors on pods, services, EndpointSlices,
//! namespaces and the Prometheus Operator resources, read into caches the allocation loop turns
//! into collectors and targets. A watch that falls behind or restarts re-lists (the watcher does
//! this on `410 Gone` and on reconnects) and its cache is replaced at once; the loop rebuilds the
//! full target and collector lists from the caches, and the allocator's listing diff reconciles
//! them, so nothing is allocated twice or lost.

pub mod meta;
pub mod monitors;
pub mod selector;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;

use self::meta::Labels;
use self::monitors::{PodMonitorSpec, ProbeSpec, ScrapeConfigSpec, ServiceMonitorSpec};
use self::selector::LabelSelector;
use crate::config::{KubernetesSdConfig, Loaded, PrometheusCr};
use crate::relabel::{Rule, RuleSpec};

/// Every resource the watchers read, as (API group, resource): the RBAC rules of
/// `examples/k8s/01-rbac.yaml` must grant get, list and watch on each (a test checks).
pub const WATCHED: [(&str, &str); 8] = [
    ("", "pods"),
    ("", "services"),
    ("", "namespaces"),
    ("discovery.k8s.io", "endpointslices"),
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
}

struct Watched<K: 'static + kube::Resource + Clone>
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    store: Store<K>,
    synced: Arc<AtomicBool>,
}

/// The caches of every watched resource, and a counter bumped on every change.
pub struct Cluster {
    pods: Watched<Pod>,
    services: Watched<Service>,
    slices: Watched<EndpointSlice>,
    namespaces: Watched<Namespace>,
    service_monitors: Option<Watched<DynamicObject>>,
    pod_monitors: Option<Watched<DynamicObject>>,
    scrape_configs: Option<Watched<DynamicObject>>,
    probes: Option<Watched<DynamicObject>>,
    generation: Arc<AtomicU64>,
}

fn crd(group: &str, version: &str, kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

fn spawn_watch<K>(
    api: Api<K>,
    writer: reflector::store::Writer<K>,
    generation: Arc<AtomicU64>,
    what: &'static str,
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
    let store = writer.as_reader();
    let synced = Arc::new(AtomicBool::new(false));
    let flag = synced.clone();
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .reflect(writer);
    tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(watcher::Event::InitDone) => {
                    flag.store(true, Ordering::Release);
                    generation.fetch_add(1, Ordering::AcqRel);
                    tracing::info!(resource = what, "listed");
                }
                Ok(watcher::Event::Init) => tracing::info!(resource = what, "re-listing"),
                Ok(_) => {
                    generation.fetch_add(1, Ordering::AcqRel);
                }
                Err(e) => tracing::warn!(resource = what, error = %e, "watch error; retrying"),
            }
        }
    });
    Watched { store, synced }
}

fn spawn_dynamic(
    client: &Client,
    ar: ApiResource,
    generation: Arc<AtomicU64>,
    what: &'static str,
) -> Watched<DynamicObject> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &ar);
    spawn_watch(api, reflector::store::Writer::new(ar), generation, what)
}

/// The `spec` of an operator resource; an unreadable one is logged and skipped.
fn spec_of<T: serde::de::DeserializeOwned>(obj: &DynamicObject) -> Option<T> {
    let (name, ns) = name_ns(&obj.metadata);
    let kind = obj.types.as_ref().map_or("resource", |t| t.kind.as_str());
    serde_json::from_value(obj.data.get("spec").cloned().unwrap_or_default())
        .map_err(|e| tracing::warn!(%kind, object = %format!("{ns}/{name}"), error = %e, "unreadable spec; skipped"))
        .ok()
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

impl Cluster {
    /// Start the watchers (on the current tokio runtime).
    pub fn start(client: Client, cr_enabled: bool) -> Cluster {
        let generation = Arc::new(AtomicU64::new(0));
        let g = || generation.clone();
        let pods = spawn_watch(
            Api::<Pod>::all(client.clone()),
            Default::default(),
            g(),
            "pods",
        );
        let services = spawn_watch(
            Api::<Service>::all(client.clone()),
            Default::default(),
            g(),
            "services",
        );
        let slices = spawn_watch(
            Api::<EndpointSlice>::all(client.clone()),
            Default::default(),
            g(),
            "endpointslices",
        );
        let namespaces = spawn_watch(
            Api::<Namespace>::all(client.clone()),
            Default::default(),
            g(),
            "namespaces",
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
        Cluster {
            pods,
            services,
            slices,
            namespaces,
            service_monitors,
            pod_monitors,
            scrape_configs,
            probes,
            generation,
        }
    }

    /// Bumped on every change of any cache.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Every cache has completed its first list.
    pub fn synced(&self) -> bool {
        let base = [
            &self.pods.synced,
            &self.services.synced,
            &self.slices.synced,
            &self.namespaces.synced,
        ];
        base.iter().all(|f| f.load(Ordering::Acquire))
            && [
                &self.service_monitors,
                &self.pod_monitors,
                &self.scrape_configs,
                &self.probes,
            ]
            .iter()
            .all(|w| w.as_ref().is_none_or(|w| w.synced.load(Ordering::Acquire)))
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
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| selector.matches(&labels_of(&p.metadata)))
            .filter_map(|p| {
                let node = p.spec.as_ref()?.node_name.clone()?;
                let status = p.status.as_ref();
                let running = status.and_then(|s| s.phase.as_deref()) == Some("Running");
                let ready = status
                    .and_then(|s| s.conditions.as_ref())
                    .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
                let healthy = running && ready.is_some_and(|c| c.status == "True");
                if !healthy {
                    // Unhealthy since the Ready condition last changed (or since creation).
                    let since = ready
                        .and_then(|c| c.last_transition_time.as_ref())
                        .or(p.metadata.creation_timestamp.as_ref())
                        .map(|t| t.0);
                    let expired = since
                        .is_none_or(|t| now.duration_since(t).as_secs_f64() > grace.as_secs_f64());
                    if expired {
                        return None;
                    }
                }
                Some((p.metadata.name.clone()?, Some(node)))
            })
            .collect();
        out.sort();
        out
    }

    // Lookups by name go through the reflector's own index (a hash map), not a scan: they run
    // once per endpoint and once per EndpointSlice.
    fn pod_labels_of(&self, ns: &str, name: &str) -> Option<Labels> {
        let key = ObjectRef::<Pod>::new(name).within(ns);
        self.pods.store.get(&key).map(|p| meta::pod_labels(&p))
    }

    fn service(&self, ns: &str, name: &str) -> Option<Arc<Service>> {
        self.services.store.get(&ObjectRef::new(name).within(ns))
    }

    /// Target groups of a `kubernetes_sd_configs` entry.
    pub fn sd_groups(&self, sd: &KubernetesSdConfig) -> Vec<Labels> {
        let in_ns = |ns: &str| {
            sd.namespaces
                .as_ref()
                .is_none_or(|n| n.names.is_empty() || n.names.iter().any(|x| x == ns))
        };
        let pods = self.pods.store.state();
        match sd.role.as_str() {
            "pod" => pods
                .iter()
                .filter(|p| in_ns(name_ns(&p.metadata).1))
                .flat_map(|p| meta::pod_targets(p))
                .collect(),
            "service" => self
                .services
                .store
                .state()
                .iter()
                .filter(|s| in_ns(name_ns(&s.metadata).1))
                .flat_map(|s| meta::service_targets(s))
                .collect(),
            _ => self
                .slices
                .store
                .state()
                .iter()
                .filter(|s| in_ns(name_ns(&s.metadata).1))
                .flat_map(|slice| {
                    let ns = name_ns(&slice.metadata).1;
                    let svc = meta::slice_service(slice).and_then(|n| self.service(ns, n));
                    meta::endpointslice_targets(slice, svc.as_deref(), |ns, name| {
                        self.pod_labels_of(ns, name)
                    })
                })
                .collect(),
        }
    }

    /// Whether a resource in `ns` passes `prometheus_cr`'s namespace rules.
    fn namespace_allowed(
        &self,
        cr: &PrometheusCr,
        ns: &str,
        selector: &Option<LabelSelector>,
    ) -> bool {
        if !cr.allow_namespaces.is_empty() && !cr.allow_namespaces.iter().any(|a| a == ns) {
            return false;
        }
        if cr.deny_namespaces.iter().any(|d| d == ns) {
            return false;
        }
        match selector {
            None => true,
            Some(sel) => self
                .namespaces
                .store
                .get(&ObjectRef::<Namespace>::new(ns))
                .is_some_and(|n| sel.matches(&labels_of(&n.metadata))),
        }
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
            .filter(|o| sel.matches(&labels_of(&o.metadata)))
            .filter(|o| self.namespace_allowed(cr, name_ns(&o.metadata).1, ns_selector))
            .collect();
        out.sort_by(|a, b| {
            name_ns(&a.metadata)
                .1
                .cmp(name_ns(&b.metadata).1)
                .then(name_ns(&a.metadata).0.cmp(name_ns(&b.metadata).0))
        });
        out
    }

    /// Jobs generated from the selected Prometheus Operator resources.
    pub fn monitor_jobs(&self, cfg: &Loaded) -> Vec<GeneratedJob> {
        let Some(cr) = cfg.file.prometheus_cr.as_ref().filter(|c| c.enabled) else {
            return Vec::new();
        };
        let default_interval = cr.scrape_interval.clone().unwrap_or_else(|| "30s".into());
        let global_timeout = cfg.file.config.global.scrape_timeout.clone();
        let mut jobs = Vec::new();
        let mut push = |name: String,
                        ep_interval: Option<&String>,
                        ep_timeout: Option<&String>,
                        path: Option<&String>,
                        scheme: Option<&String>,
                        params: &BTreeMap<String, Vec<String>>,
                        rule_specs: Vec<RuleSpec>,
                        groups: Vec<Labels>| {
            let rules: Result<Vec<Rule>, String> = rule_specs.iter().map(Rule::compile).collect();
            // Prometheus' loader semantics: an unset timeout is min(global timeout, interval).
            let timing = crate::config::resolve_timing(
                ep_interval.map(String::as_str),
                ep_timeout.map(String::as_str),
                &crate::config::Global {
                    scrape_interval: default_interval.clone(),
                    scrape_timeout: global_timeout.clone(),
                    ..Default::default()
                },
            );
            match rules.and_then(|r| timing.map(|t| (r, t))) {
                Ok((rules, (interval, timeout))) => jobs.push(GeneratedJob {
                    name,
                    interval,
                    timeout,
                    path: path.cloned().unwrap_or_else(|| "/metrics".into()),
                    scheme: scheme.cloned().unwrap_or_else(|| "http".into()),
                    params: params.clone(),
                    rule_specs,
                    rules,
                    groups,
                }),
                Err(e) => {
                    tracing::warn!(job = %name, error = %e, "skipping a job with an invalid relabeling or duration")
                }
            }
        };
        let slices = self.slices.store.state();
        for sm in self.selected(
            cr,
            &self.service_monitors,
            &cr.service_monitor_selector,
            &cr.service_monitor_namespace_selector,
        ) {
            let (name, ns) = name_ns(&sm.metadata);
            let Some(spec) = spec_of::<ServiceMonitorSpec>(&sm) else {
                continue;
            };
            for (i, ep) in spec.endpoints.iter().enumerate() {
                let mut groups = Vec::new();
                for slice in slices.iter() {
                    let slice_ns = name_ns(&slice.metadata).1;
                    if !spec.namespace_selector.selects(ns, slice_ns) {
                        continue;
                    }
                    let Some(svc) =
                        meta::slice_service(slice).and_then(|n| self.service(slice_ns, n))
                    else {
                        continue;
                    };
                    if !spec.selector.matches(&labels_of(&svc.metadata)) {
                        continue;
                    }
                    groups.extend(
                        meta::endpointslice_targets(slice, Some(&svc), |ns, name| {
                            self.pod_labels_of(ns, name)
                        })
                        .into_iter()
                        .filter(|l| {
                            monitors::port_matches(
                                ep,
                                l.get("__meta_kubernetes_endpointslice_port_name")
                                    .map_or("", String::as_str),
                                l.get("__meta_kubernetes_endpointslice_port")
                                    .map_or("", String::as_str),
                            )
                        }),
                    );
                }
                push(
                    format!("serviceMonitor/{ns}/{name}/{i}"),
                    ep.interval.as_ref(),
                    ep.scrape_timeout.as_ref(),
                    ep.path.as_ref(),
                    ep.scheme.as_ref(),
                    &ep.params,
                    monitors::service_monitor_rules(&spec, ep),
                    groups,
                );
            }
        }
        let pods = self.pods.store.state();
        for pm in self.selected(
            cr,
            &self.pod_monitors,
            &cr.pod_monitor_selector,
            &cr.pod_monitor_namespace_selector,
        ) {
            let (name, ns) = name_ns(&pm.metadata);
            let Some(spec) = spec_of::<PodMonitorSpec>(&pm) else {
                continue;
            };
            for (i, ep) in spec.pod_metrics_endpoints.iter().enumerate() {
                let groups: Vec<Labels> = pods
                    .iter()
                    .filter(|p| spec.namespace_selector.selects(ns, name_ns(&p.metadata).1))
                    .filter(|p| spec.selector.matches(&labels_of(&p.metadata)))
                    .flat_map(|p| meta::pod_targets(p))
                    .filter(|l| {
                        ep.port.as_ref().is_none_or(|port| {
                            l.get("__meta_kubernetes_pod_container_port_name") == Some(port)
                        })
                    })
                    .collect();
                push(
                    format!("podMonitor/{ns}/{name}/{i}"),
                    ep.interval.as_ref(),
                    ep.scrape_timeout.as_ref(),
                    ep.path.as_ref(),
                    ep.scheme.as_ref(),
                    &ep.params,
                    monitors::pod_monitor_rules(ns, name, &spec, ep),
                    groups,
                );
            }
        }
        for sc in self.selected(
            cr,
            &self.scrape_configs,
            &cr.scrape_config_selector,
            &cr.scrape_config_namespace_selector,
        ) {
            let (name, ns) = name_ns(&sc.metadata);
            let Some(spec) = spec_of::<ScrapeConfigSpec>(&sc) else {
                continue;
            };
            let groups = spec
                .static_configs
                .iter()
                .flat_map(|g| {
                    g.targets.iter().map(move |t| {
                        let mut l = g.labels.clone();
                        l.insert("__address__".into(), t.clone());
                        l
                    })
                })
                .collect();
            let rules = spec.relabelings.iter().map(RuleSpec::from).collect();
            push(
                format!("scrapeConfig/{ns}/{name}"),
                spec.scrape_interval.as_ref(),
                spec.scrape_timeout.as_ref(),
                spec.metrics_path.as_ref(),
                spec.scheme.as_ref(),
                &spec.params,
                rules,
                groups,
            );
        }
        for probe in self.selected(
            cr,
            &self.probes,
            &cr.probe_selector,
            &cr.probe_namespace_selector,
        ) {
            let (name, ns) = name_ns(&probe.metadata);
            let Some(spec) = spec_of::<ProbeSpec>(&probe) else {
                continue;
            };
            let Some(statics) = &spec.targets.static_config else {
                tracing::info!(probe = %format!("{ns}/{name}"), "only static probe targets are supported; skipped");
                continue;
            };
            let groups = statics
                .targets
                .iter()
                .map(|t| {
                    let mut l = statics.labels.clone();
                    l.insert("namespace".into(), ns.to_owned());
                    l.insert("__address__".into(), t.clone());
                    l
                })
                .collect();
            let mut params = BTreeMap::new();
            if let Some(module) = &spec.module {
                params.insert("module".to_owned(), vec![module.clone()]);
            }
            push(
                format!("probe/{ns}/{name}"),
                spec.interval.as_ref(),
                spec.scrape_timeout.as_ref(),
                Some(&spec.prober.path.clone().unwrap_or_else(|| "/probe".into())),
                spec.prober.scheme.as_ref(),
                &params,
                monitors::probe_rules(&spec),
                groups,
            );
        }
        jobs
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
