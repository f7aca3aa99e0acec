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

/// One request: the targets, and where their explanations go.
type Request = (Vec<TargetKey>, oneshot::Sender<Vec<Value>>);

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
        self.waiting.lock().push((keys, tx));
        rx
    }

    /// Answer every waiting request with `explain` (the loop calls this once per refresh).
    pub fn answer(&self, explain: impl Fn(TargetKey) -> Option<Value>) {
        let waiting = std::mem::take(&mut *self.waiting.lock());
        for (keys, tx) in waiting {
            let _ = tx.send(
                keys.into_iter()
                    .map(|k| explain(k).unwrap_or(Value::Null))
                    .collect(),
            );
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
