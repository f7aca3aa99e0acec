//! `/explain`: why a target is on its collector, or why it has none, as the core's
//! [`Allocator::explain`](allocator_core::Allocator::explain) says it.
//!
//! Handlers only read published views, and the allocator belongs to the allocation loop, so a
//! request is queued for the loop, which answers it at its next refresh (within
//! [`crate::REFRESH`] plus the time of a refresh in progress) from its current state.

use allocator_core::{Detail, Explanation, TargetKey, Unassigned};
use parking_lot::Mutex;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// What a request asks about.
enum Query {
    /// These targets.
    Keys(Vec<TargetKey>),
    /// Every target of a job at one address (found by the loop, which holds the targets).
    At { job: String, address: String },
}

/// One request, and where its explanations go.
type Request = (Query, oneshot::Sender<Vec<Value>>);

/// Explanations asked for, waiting for the loop.
#[derive(Default)]
pub struct Queue {
    waiting: Mutex<Vec<Request>>,
}

impl Queue {
    /// Ask for the explanations of `keys` (in order; `null` for a key the allocator no longer
    /// holds).
    pub fn ask(&self, keys: Vec<TargetKey>) -> oneshot::Receiver<Vec<Value>> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().push((Query::Keys(keys), tx));
        rx
    }

    /// Ask for the explanations of every target of `job` at `address`, each with `job` and
    /// `address` added (none: no such target is listed).
    pub fn ask_at(&self, job: String, address: String) -> oneshot::Receiver<Vec<Value>> {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().push((Query::At { job, address }, tx));
        rx
    }

    /// Answer every waiting request with `explain`, finding targets by address with `find`
    /// (the loop calls this once per refresh).
    pub fn answer(
        &self,
        explain: impl Fn(TargetKey) -> Option<Value>,
        find: impl Fn(&str, &str) -> Vec<TargetKey>,
    ) {
        let waiting = std::mem::take(&mut *self.waiting.lock());
        for (query, tx) in waiting {
            let answers = match query {
                Query::Keys(keys) => keys
                    .into_iter()
                    .map(|k| explain(k).unwrap_or(Value::Null))
                    .collect(),
                Query::At { job, address } => find(&job, &address)
                    .into_iter()
                    .map(|k| {
                        let mut e = explain(k).unwrap_or(Value::Null);
                        if let Value::Object(m) = &mut e {
                            m.insert("job".into(), Value::String(job.clone()));
                            m.insert("address".into(), Value::String(address.clone()));
                        }
                        e
                    })
                    .collect(),
            };
            let _ = tx.send(answers);
        }
    }
}

/// An explanation as JSON.
pub fn to_json(e: &Explanation<'_>) -> Value {
    let detail = match &e.detail {
        Detail::Partition { partition, owner } => {
            json!({"kind": "partition", "partition": partition, "owner": owner})
        }
        Detail::Node {
            node,
            node_collector,
        } => json!({"kind": "node", "node": node, "node_collector": node_collector}),
        Detail::Sticky { weighted } => json!({"kind": "sticky", "weighted": weighted}),
        Detail::Probes {
            candidates,
            cap,
            collector_weight,
        } => json!({"kind": "probes", "candidates": candidates, "cap": cap,
            "collector_weight": collector_weight}),
        Detail::Band {
            floor,
            cap,
            collector_weight,
            zone,
            collector_zone,
        } => json!({"kind": "band", "floor": floor, "cap": cap,
            "collector_weight": collector_weight, "zone": zone, "collector_zone": collector_zone}),
        Detail::NoRule => json!({"kind": "no-rule"}),
        other => json!({"kind": format!("{other:?}")}),
    };
    let unassigned = e.unassigned.map(|u| match u {
        Unassigned::NoCollectors => "there are no collectors".to_owned(),
        Unassigned::NoNode => "per-node without a fallback, and the target has no node".to_owned(),
        Unassigned::NoCollectorOnNode(n) => format!("no collector runs on node {n:?}"),
        Unassigned::OverCap(cap) => format!("it fits under the absolute cap {cap} on no collector"),
        Unassigned::Waiting => {
            "its rule has a collector for it, which it gets at the next collector change".to_owned()
        }
        other => format!("{other:?}"),
    });
    json!({
        "key": e.key.to_string(),
        "strategy": e.strategy.name(),
        "rule": e.rule.name(),
        "collector": e.collector,
        "detail": detail,
        "unassigned": unassigned,
    })
}
