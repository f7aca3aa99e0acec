//! The `allocate` tool as a library: [`run`] turns an input document into the output document.
//! The binary is a thin shell around it; the fuzz harness calls it directly.

mod input;

use std::collections::{BTreeMap, HashMap};

use allocator_core::{Allocator, CollectorSpec, Diff, KeyHasher, TargetKey, TargetSpec};
use serde::Serialize;

use input::Input;

#[derive(Serialize)]
struct Output<'a> {
    targets: Vec<TargetOut<'a>>,
    collectors: BTreeMap<&'a str, CollectorOut>,
}

#[derive(Serialize)]
struct TargetOut<'a> {
    job: &'a str,
    hash: String,
    collector: Option<&'a str>,
}

#[derive(Serialize)]
struct CollectorOut {
    targets: u32,
    weight: u64,
}

/// Allocate the targets of an input document (README: "The `allocate` tool") and return the
/// output document, or a message naming what is wrong with the input.
pub fn run(raw: &[u8]) -> Result<String, String> {
    let input: Input = serde_json::from_slice(raw).map_err(|e| format!("invalid input: {e}"))?;
    let config = input.config()?;
    let mut hasher = KeyHasher::new();
    let mut upsert = Vec::with_capacity(input.targets.len());
    // The same target listed twice is one target; with two different weights, which one counts
    // would be a silent choice, so it is an error naming both entries.
    let mut first: HashMap<TargetKey, usize> = HashMap::with_capacity(input.targets.len());
    for (i, t) in input.targets.iter().enumerate() {
        let labels = t.labels.0.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let spec = TargetSpec::from_labels_with(&mut hasher, labels, &t.job)
            .map_err(|e| format!("targets[{i}] (job {:?}): {e}", t.job))?;
        if let Some(&j) = first.get(&spec.key) {
            let w = input.targets[j].weight;
            if w != t.weight {
                return Err(format!(
                    "targets[{i}] (job {:?}) is the same target as targets[{j}] with a different weight ({} vs {w})",
                    t.job, t.weight
                ));
            }
        } else {
            first.insert(spec.key, i);
        }
        upsert.push(spec.with_weight(t.weight));
    }
    drop(first);
    let add_collectors = input
        .collectors
        .iter()
        .map(|c| CollectorSpec {
            name: &c.name,
            node: c.node.as_deref(),
        })
        .collect();
    let mut alloc = Allocator::new(config).map_err(|e| e.to_string())?;
    alloc
        .apply(&Diff {
            upsert: upsert.clone(),
            add_collectors,
            ..Diff::default()
        })
        .map_err(|e| e.to_string())?;

    let targets = input
        .targets
        .iter()
        .zip(&upsert)
        .map(|(t, spec)| TargetOut {
            job: &t.job,
            hash: spec.key.to_string(),
            collector: alloc
                .collector_of(spec.key)
                .and_then(|c| alloc.collector_name(c)),
        })
        .collect();
    let collectors = alloc
        .collectors()
        .map(|c| {
            (
                c.name,
                CollectorOut {
                    targets: c.targets,
                    weight: c.weight,
                },
            )
        })
        .collect();
    serde_json::to_string(&Output {
        targets,
        collectors,
    })
    .map_err(|e| e.to_string())
}
