//! `allocate`: read targets and collectors as JSON on stdin, print each target's collector.
//!
//! ```text
//! cargo run -q --release --bin allocate < examples/allocate/sample.json
//! cargo run -q --release --bin allocate -- --strategies
//! ```
//! The input and output documents are a stable contract, described in the repository README.

mod input;

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::process::ExitCode;

use allocator_core::{Allocator, CollectorSpec, Diff, KeyHasher, Strategy, TargetSpec};
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

const USAGE: &str = "usage: allocate < input.json   (assignments as JSON on stdout)
       allocate --strategies  (the strategy names, one per line)";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] => {}
        ["--strategies"] => {
            let mut out = io::stdout().lock();
            for s in Strategy::ALL {
                let _ = writeln!(out, "{s}");
            }
            return ExitCode::SUCCESS;
        }
        ["-h" | "--help"] => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("allocate: unexpected arguments {args:?}\n{USAGE}");
            return ExitCode::from(2);
        }
    }
    let mut raw = Vec::new();
    if let Err(e) = io::stdin().read_to_end(&mut raw) {
        eprintln!("allocate: cannot read stdin: {e}");
        return ExitCode::FAILURE;
    }
    match run(&raw) {
        Ok(json) => {
            let mut out = io::stdout().lock();
            if out
                .write_all(json.as_bytes())
                .and_then(|_| out.write_all(b"\n"))
                .is_err()
            {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("allocate: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(raw: &[u8]) -> Result<String, String> {
    let input: Input = serde_json::from_slice(raw).map_err(|e| format!("invalid input: {e}"))?;
    let config = input.config()?;
    let mut hasher = KeyHasher::new();
    let mut upsert = Vec::with_capacity(input.targets.len());
    for (i, t) in input.targets.iter().enumerate() {
        let labels = t.labels.0.iter().map(|(n, v)| (n.as_str(), v.as_str()));
        let spec = TargetSpec::from_labels_with(&mut hasher, labels, &t.job)
            .map_err(|e| format!("targets[{i}] (job {:?}): {e}", t.job))?;
        upsert.push(spec.with_weight(t.weight));
    }
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
