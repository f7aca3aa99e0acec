//! A Rust program that embeds the allocation engine the way a Rust service would: it watches the
//! collector pods and every EndpointSlice of a cluster with kube, turns each event into one diff
//! for `allocator-core`, and prints the moves that diff caused.
//!
//! ```sh
//! cargo run -p kube-watcher -- NAMESPACE SELECTOR
//! cargo run -p kube-watcher -- observability app.kubernetes.io/component=opentelemetry-collector
//! ```
//!
//! Credentials come from the usual places (in-cluster, then `KUBECONFIG` / `~/.kube/config`).
//! The full service (`allocator-service`) adds what this leaves out on purpose: relabeling, the
//! Prometheus Operator's resources, a grace period for unready pods, the HTTP API.

mod fleet;

use std::process::ExitCode;

use allocator_core::Config;
use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, ResourceExt};

use fleet::{Fleet, NamedMove};

/// One event of either watch, boxed: the objects are large and the stream moves its items.
enum Change {
    Pod(Box<Event<Pod>>),
    Slice(Box<Event<EndpointSlice>>),
}

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [namespace, selector] = args.as_slice() else {
        eprintln!("usage: kube-watcher NAMESPACE COLLECTOR_LABEL_SELECTOR");
        return ExitCode::from(2);
    };
    match run(namespace, selector).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kube-watcher: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(namespace: &str, selector: &str) -> Result<(), Box<dyn std::error::Error>> {
    let client = Client::try_default().await?;
    let pods = watcher::watcher(
        Api::<Pod>::namespaced(client.clone(), namespace),
        watcher::Config::default().labels(selector),
    )
    .map(|e| e.map(|e| Change::Pod(Box::new(e))));
    let slices = watcher::watcher(
        Api::<EndpointSlice>::all(client),
        watcher::Config::default(),
    )
    .map(|e| e.map(|e| Change::Slice(Box::new(e))));
    let mut changes = std::pin::pin!(stream::select(pods, slices));

    let mut fleet = Fleet::new(Config::default())?;
    // The watcher retries on its own after an error; a re-list arrives as Init..InitDone, and
    // each object of it as an InitApply that reconciles like any other change.
    while let Some(change) = changes.next().await {
        let change = match change {
            Ok(change) => change,
            Err(e) => {
                eprintln!("kube-watcher: watch error (retrying): {e}");
                continue;
            }
        };
        let moves = match change {
            Change::Pod(event) => match *event {
                Event::Apply(p) | Event::InitApply(p) => {
                    fleet.pod(&p.name_any(), fleet::collector(&p).map(|(_, node)| node))?
                }
                Event::Delete(p) => fleet.pod(&p.name_any(), None)?,
                Event::Init | Event::InitDone => continue,
            },
            Change::Slice(event) => match *event {
                Event::Apply(s) | Event::InitApply(s) => {
                    fleet.slice(&slice_id(&s), fleet::endpoints(&s))?
                }
                Event::Delete(s) => fleet.slice(&slice_id(&s), Vec::new())?,
                Event::Init | Event::InitDone => continue,
            },
        };
        print_moves(&moves);
        if !moves.is_empty() {
            let summary = fleet.allocator().summary();
            println!(
                "({} moves; {} targets on {} collectors, busiest at {:.2}x the mean)",
                moves.len(),
                summary.targets,
                summary.collectors,
                summary.max_over_mean()
            );
        }
    }
    Ok(())
}

fn slice_id(s: &EndpointSlice) -> String {
    format!("{}/{}", s.namespace().unwrap_or_default(), s.name_any())
}

fn print_moves(moves: &[NamedMove]) {
    let show = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".into());
    for m in moves {
        println!("{} {} -> {}", m.key, show(&m.from), show(&m.to));
    }
}
