//! The `allocate` tool as a library: [`run`] turns an input document into the output document.
//! The binary is a thin shell around it; the fuzz harness calls it directly.

mod columns;
mod input;

use std::collections::BTreeMap;
use std::io::Write as _;

use allocator_core::{Allocator, BatchDiff, CollectorSpec, TargetKey};
use serde::Serialize;

use input::Input;

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
    let targets = &input.targets;
    if let Some(e) = &targets.error {
        return Err(e.clone());
    }
    let add_collectors: Vec<CollectorSpec<'_>> = input
        .collectors
        .iter()
        .map(|c| CollectorSpec {
            name: &c.name,
            node: c.node.as_deref(),
        })
        .collect();
    let names = targets.names();
    let mut alloc = Allocator::new(config).map_err(|e| e.to_string())?;
    // The table first, so that the targets are placed by zone from the start.
    if let Some(table) = &input.node_zones {
        alloc
            .set_node_zones(&table.rows())
            .map_err(|e| format!("\"node_zones\": {e}"))?;
    }
    alloc
        .apply_batch(&BatchDiff {
            upsert: targets.batch(&names),
            add_collectors: &add_collectors,
            ..BatchDiff::default()
        })
        .map_err(|e| e.to_string())?;

    // Written by hand, in the layout serde_json gives the contract's structs, so that no
    // per-target strings are built: {"targets":[{"job":..,"hash":..,"collector":..}],...}.
    let mut out: Vec<u8> = Vec::with_capacity(targets.keys.len() * 64 + 64);
    out.extend_from_slice(b"{\"targets\":[");
    for (row, (&key, &job)) in targets.keys.iter().zip(&targets.jobs).enumerate() {
        if row > 0 {
            out.push(b',');
        }
        out.extend_from_slice(b"{\"job\":");
        serde_json::to_writer(&mut out, &targets.job_names[job as usize])
            .map_err(|e| e.to_string())?;
        let _ = write!(out, ",\"hash\":\"{}\",\"collector\":", TargetKey(key));
        match alloc
            .collector_of(TargetKey(key))
            .and_then(|c| alloc.collector_name(c))
        {
            Some(name) => serde_json::to_writer(&mut out, name).map_err(|e| e.to_string())?,
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
    }
    out.extend_from_slice(b"],\"collectors\":");
    let collectors: BTreeMap<&str, CollectorOut> = alloc
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
    serde_json::to_writer(&mut out, &collectors).map_err(|e| e.to_string())?;
    out.push(b'}');
    String::from_utf8(out).map_err(|e| e.to_string())
}
