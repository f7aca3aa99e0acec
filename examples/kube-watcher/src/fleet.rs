//! What the watcher knows of the cluster, turned into diffs for the allocator.

use std::collections::{BTreeMap, HashMap};

use allocator_core::{Allocator, CollectorSpec, Config, Diff, Error, Move, TargetKey, TargetSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;

/// The job every EndpointSlice target belongs to.
pub const JOB: &str = "kubernetes-endpoints";

/// One scrape target of an EndpointSlice: what its identity and placement are computed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub address: String,
    pub namespace: String,
    pub service: String,
}

impl Endpoint {
    /// Identity from the target's labels and the job (the Go allocator's item hash), placement
    /// from its address.
    fn spec(&self) -> Result<TargetSpec<'_>, Error> {
        let labels = [
            ("__address__", self.address.as_str()),
            ("namespace", self.namespace.as_str()),
            ("service", self.service.as_str()),
        ];
        TargetSpec::from_labels(labels, JOB)
    }
}

/// A collector pod counts once it is scheduled, running and ready: (name, node).
pub fn collector(pod: &Pod) -> Option<(String, String)> {
    let name = pod.metadata.name.clone()?;
    let node = pod.spec.as_ref()?.node_name.clone()?;
    let status = pod.status.as_ref()?;
    let ready = status.phase.as_deref() == Some("Running")
        && status
            .conditions
            .iter()
            .flatten()
            .any(|c| c.type_ == "Ready" && c.status == "True");
    ready.then_some((name, node))
}

/// Every ready address × port of a slice, as `host:port` targets.
pub fn endpoints(slice: &EndpointSlice) -> Vec<Endpoint> {
    let namespace = slice.metadata.namespace.clone().unwrap_or_default();
    let labels = slice.metadata.labels.as_ref();
    let service = labels
        .and_then(|l| l.get("kubernetes.io/service-name"))
        .cloned()
        .unwrap_or_default();
    let ports: Vec<i32> = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| p.port)
        .collect();
    let mut out = Vec::new();
    for ep in &slice.endpoints {
        if ep.conditions.as_ref().and_then(|c| c.ready) == Some(false) {
            continue;
        }
        for address in &ep.addresses {
            for port in &ports {
                out.push(Endpoint {
                    address: format!("{address}:{port}"),
                    namespace: namespace.clone(),
                    service: service.clone(),
                });
            }
        }
    }
    out
}

/// The allocator and the cluster state it was fed.
pub struct Fleet {
    alloc: Allocator,
    collectors: BTreeMap<String, String>,
    /// Targets per EndpointSlice (namespace/name).
    slices: HashMap<String, Vec<Endpoint>>,
}

/// A move, with names instead of ids, ready to print.
#[derive(Debug, PartialEq, Eq)]
pub struct NamedMove {
    pub key: TargetKey,
    pub from: Option<String>,
    pub to: Option<String>,
}

impl Fleet {
    pub fn new(config: Config) -> Result<Fleet, Error> {
        Ok(Fleet {
            alloc: Allocator::new(config)?,
            collectors: BTreeMap::new(),
            slices: HashMap::new(),
        })
    }

    pub fn allocator(&self) -> &Allocator {
        &self.alloc
    }

    /// A collector pod appeared or changed (`None` for `ready`: deleted or not ready).
    pub fn pod(&mut self, name: &str, ready: Option<String>) -> Result<Vec<NamedMove>, Error> {
        match ready {
            Some(node) => self.collectors.insert(name.to_owned(), node),
            None => self.collectors.remove(name),
        };
        let specs: Vec<CollectorSpec<'_>> = self
            .collectors
            .iter()
            .map(|(n, node)| CollectorSpec::on_node(n, node))
            .collect();
        let moves = self.alloc.set_collectors(&specs)?.to_vec();
        Ok(self.named(&moves))
    }

    /// A slice appeared, changed or was deleted (`endpoints` empty): one diff for its targets.
    pub fn slice(&mut self, id: &str, endpoints: Vec<Endpoint>) -> Result<Vec<NamedMove>, Error> {
        let old = self.slices.remove(id).unwrap_or_default();
        // Another slice may list the same address (one target, one identity): keep it.
        let elsewhere = |e: &Endpoint, slices: &HashMap<String, Vec<Endpoint>>| {
            slices.values().flatten().any(|x| x == e)
        };
        let remove = old
            .iter()
            .filter(|e| !endpoints.contains(e) && !elsewhere(e, &self.slices))
            .map(|e| e.spec().map(|s| s.key))
            .collect::<Result<Vec<TargetKey>, Error>>()?;
        let upsert = endpoints
            .iter()
            .filter(|e| !old.contains(e))
            .map(Endpoint::spec)
            .collect::<Result<Vec<TargetSpec<'_>>, Error>>()?;
        let moves = self
            .alloc
            .apply(&Diff {
                upsert,
                remove,
                ..Diff::default()
            })?
            .to_vec();
        if !endpoints.is_empty() {
            self.slices.insert(id.to_owned(), endpoints);
        }
        Ok(self.named(&moves))
    }

    fn named(&self, moves: &[Move]) -> Vec<NamedMove> {
        let name = |c| self.alloc.collector_name(c).map(str::to_owned);
        moves
            .iter()
            .map(|m| NamedMove {
                key: m.key,
                from: m.from.and_then(name),
                to: m.to.and_then(name),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(address: &str) -> Endpoint {
        Endpoint {
            address: address.into(),
            namespace: "default".into(),
            service: "app".into(),
        }
    }

    #[test]
    fn a_new_slice_assigns_its_targets_and_a_scale_out_moves_some_to_the_new_collector() {
        let mut fleet = Fleet::new(Config::default()).unwrap();
        fleet.pod("otel-0", Some("n1".into())).unwrap();
        let targets: Vec<Endpoint> = (0..200)
            .map(|i| endpoint(&format!("10.0.0.{i}:8080")))
            .collect();
        let moves = fleet.slice("default/app-abc", targets.clone()).unwrap();
        assert_eq!(moves.len(), 200);
        assert!(moves
            .iter()
            .all(|m| m.from.is_none() && m.to.as_deref() == Some("otel-0")));

        let moves = fleet.pod("otel-1", Some("n2".into())).unwrap();
        assert!(!moves.is_empty() && moves.len() < 200);
        assert!(moves
            .iter()
            .all(|m| m.from.as_deref() == Some("otel-0") && m.to.as_deref() == Some("otel-1")));
        assert_eq!(fleet.allocator().len(), 200);

        // The slice shrinks: only the removed endpoints leave, each reported as unassigned.
        let moves = fleet
            .slice("default/app-abc", targets[..150].to_vec())
            .unwrap();
        assert_eq!(moves.len(), 50);
        assert!(moves.iter().all(|m| m.to.is_none()));
        assert_eq!(fleet.allocator().len(), 150);
    }

    #[test]
    fn an_address_listed_by_two_slices_stays_until_both_drop_it() {
        let mut fleet = Fleet::new(Config::default()).unwrap();
        fleet.pod("otel-0", Some("n1".into())).unwrap();
        fleet
            .slice("default/a", vec![endpoint("10.0.0.1:80")])
            .unwrap();
        fleet
            .slice("default/b", vec![endpoint("10.0.0.1:80")])
            .unwrap();
        assert!(fleet.slice("default/a", Vec::new()).unwrap().is_empty());
        assert_eq!(fleet.allocator().len(), 1);
        assert_eq!(fleet.slice("default/b", Vec::new()).unwrap().len(), 1);
        assert!(fleet.allocator().is_empty());
    }

    #[test]
    fn a_pod_is_a_collector_only_when_scheduled_running_and_ready() {
        let pod = pod_json;
        assert_eq!(
            collector(&pod("Running", "True", Some("n1"))),
            Some(("otel-0".into(), "n1".into()))
        );
        assert_eq!(collector(&pod("Running", "False", Some("n1"))), None);
        assert_eq!(collector(&pod("Pending", "True", Some("n1"))), None);
        assert_eq!(collector(&pod("Running", "True", None)), None);
    }

    #[test]
    fn a_slice_gives_one_target_per_ready_address_and_port() {
        let slice: EndpointSlice =
            k8s_openapi::serde_json::from_value(k8s_openapi::serde_json::json!({
                "metadata": {"name": "app-x", "namespace": "shop",
                             "labels": {"kubernetes.io/service-name": "app"}},
                "addressType": "IPv4",
                "ports": [{"port": 8080}, {"port": 9090}],
                "endpoints": [
                    {"addresses": ["10.0.0.1"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": false}},
                    {"addresses": ["10.0.0.3"]}
                ]
            }))
            .unwrap();
        let got: Vec<String> = endpoints(&slice).into_iter().map(|e| e.address).collect();
        assert_eq!(
            got,
            [
                "10.0.0.1:8080",
                "10.0.0.1:9090",
                "10.0.0.3:8080",
                "10.0.0.3:9090"
            ]
        );
        assert!(endpoints(&slice)
            .iter()
            .all(|e| e.namespace == "shop" && e.service == "app"));
    }

    fn pod_json(phase: &str, ready: &str, node: Option<&str>) -> Pod {
        k8s_openapi::serde_json::from_value(k8s_openapi::serde_json::json!({
            "metadata": {"name": "otel-0"},
            "spec": {"containers": [], "nodeName": node},
            "status": {"phase": phase, "conditions": [{"type": "Ready", "status": ready}]}
        }))
        .unwrap()
    }
}
