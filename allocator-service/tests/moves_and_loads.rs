//! Issue 21 through the HTTP API with file discovery: the movement budget (moves trickle out at
//! the configured rate and end where the core says), the hand-over window, and weights from
//! observed load (pushed and pulled).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use allocator_core::{Allocator, CollectorSpec, Config, PlacementHash, Strategy, TargetKey};
use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("moves-and-loads-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn address(i: usize) -> String {
    format!("10.1.{}.{}:9100", i / 200, i % 200)
}

/// A file_sd file with `n` targets, one group each.
fn write_targets(path: &Path, n: usize) {
    let groups: Vec<Value> = (0..n)
        .map(|i| serde_json::json!({"targets": [address(i)], "labels": {"env": "test"}}))
        .collect();
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, serde_json::to_vec(&groups).unwrap()).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_collectors(path: &Path, names: &[&str]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, names.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// The service on a collectors file and one file_sd job `s`, with `extra` configuration.
fn config(dir: &Path, extra: &str) -> allocator_service::Loaded {
    let yaml = format!(
        "collectors_file: collectors.txt\n{extra}\nconfig:\n  scrape_configs:\n    - job_name: s\n      file_sd_configs: [{{files: [targets.json]}}]\n"
    );
    allocator_service::parse(&yaml, dir).unwrap_or_else(|e| panic!("{e}"))
}

/// `/jobs/s/targets` as address → collector (one view, so one consistent state).
async fn served(addr: std::net::SocketAddr) -> (Vec<String>, BTreeMap<String, Vec<String>>) {
    let v = common::json(addr, "/jobs/s/targets").await;
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let collectors: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
    for (c, entry) in v.as_object().unwrap() {
        for g in entry["targets"].as_array().unwrap() {
            for t in g["targets"].as_array().unwrap() {
                out.entry(t.as_str().unwrap().to_owned())
                    .or_default()
                    .push(c.clone());
            }
        }
    }
    (collectors, out)
}

/// A metric's value in `/metrics` (0 when absent).
async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let body = common::get(addr, "/metrics").await.body;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or(0.0)
}

/// Where consistent-hashing puts each address on these collectors, from a fresh core (the
/// placement is a function of the address and the collectors).
fn core_placement(n: usize, collectors: &[&str]) -> BTreeMap<String, String> {
    let mut a = Allocator::new(Config::with_strategy(Strategy::ConsistentHashing)).unwrap();
    let specs: Vec<CollectorSpec<'_>> = collectors.iter().map(|c| CollectorSpec::new(c)).collect();
    a.set_collectors(&specs).unwrap();
    let addrs: Vec<String> = (0..n).map(address).collect();
    let targets: Vec<_> = addrs
        .iter()
        .enumerate()
        .map(|(i, ad)| {
            allocator_core::TargetSpec::new(
                TargetKey(i as u64 + 1),
                PlacementHash::of_address(ad),
                "s",
            )
        })
        .collect();
    a.set_targets(&targets).unwrap();
    addrs
        .iter()
        .enumerate()
        .map(|(i, ad)| {
            let c = a.collector_of(TargetKey(i as u64 + 1)).unwrap();
            (ad.clone(), a.collector_name(c).unwrap().to_owned())
        })
        .collect()
}

/// Each target served by exactly one collector: address → collector.
fn single(m: &BTreeMap<String, Vec<String>>) -> BTreeMap<String, String> {
    m.iter()
        .map(|(a, cs)| {
            assert_eq!(cs.len(), 1, "{a} served by {cs:?}");
            (a.clone(), cs[0].clone())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn moves_beyond_the_budget_trickle_out_at_the_configured_rate() {
    const N: usize = 40;
    const MAX: usize = 3;
    let d = dir("budget");
    write_targets(&d.join("targets.json"), N);
    write_collectors(&d.join("collectors.txt"), &["c0", "c1"]);
    let svc = common::start(
        config(&d, "movement_budget: {max_moves: 3, interval: 1s}"),
        None,
    )
    .await;
    common::ready_within(svc.addr, Duration::from_secs(20))
        .await
        .unwrap();
    let before = core_placement(N, &["c0", "c1"]);
    let after = core_placement(N, &["c0", "c1", "c2", "c3"]);
    let moving = before.iter().filter(|(a, c)| after[*a] != **c).count();
    assert!(moving > 3 * MAX, "only {moving} targets move");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = served(svc.addr).await;
        if m.len() == N && single(&m) == before {
            break;
        }
        assert!(Instant::now() < end, "never served the first placement");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    write_collectors(&d.join("collectors.txt"), &["c0", "c1", "c2", "c3"]);
    let mut last = before.clone();
    let mut last_at = Instant::now();
    let mut steps = 0;
    let mut explained = false;
    let end = Instant::now() + Duration::from_secs(60);
    while last != after {
        assert!(Instant::now() < end, "moves did not finish: {last:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        let (_, m) = served(svc.addr).await;
        let now = single(&m);
        assert_eq!(now.len(), N);
        let changed: Vec<&String> = now.keys().filter(|a| now[*a] != last[*a]).collect();
        if changed.is_empty() {
            continue;
        }
        // Every change takes a target to where the core puts it, never elsewhere.
        for a in &changed {
            assert_eq!(now[*a], after[*a], "{a} moved off the core's placement");
        }
        // At most MAX per interval (allowing for a poll that was late by whole intervals).
        let intervals = 1 + last_at.elapsed().as_millis() as usize / 1000;
        assert!(
            changed.len() <= MAX * intervals,
            "{} moves in {intervals} interval(s)",
            changed.len()
        );
        steps += 1;
        // While moves wait, /explain says so for a waiting target.
        if !explained && now != after {
            let waiting = now.keys().find(|a| now[*a] != after[*a]).unwrap();
            let e = common::json(svc.addr, &format!("/explain?job=s&address={waiting}")).await;
            let e = &e[0];
            if e["budget"]["held"] == true {
                assert_eq!(e["collector"], after[waiting].as_str());
                assert_eq!(e["budget"]["served_by"], before[waiting].as_str());
                assert!(metric(svc.addr, "opentelemetry_allocator_moves_queued").await > 0.0);
                explained = true;
            }
        }
        last = now;
        last_at = Instant::now();
    }
    assert!(explained, "no /explain showed a held target");
    assert!(
        steps >= moving.div_ceil(MAX),
        "{moving} moves in only {steps} steps"
    );
    assert_eq!(
        metric(svc.addr, "opentelemetry_allocator_moves_queued").await,
        0.0
    );
    let deferred = metric(svc.addr, "opentelemetry_allocator_moves_deferred_total").await;
    let released = metric(svc.addr, "opentelemetry_allocator_moves_released_total").await;
    assert_eq!(deferred, (moving - MAX) as f64);
    assert_eq!(released, deferred);
    // Once nothing waits, what is served is what a replica without a budget serves.
    let digest = common::json(svc.addr, "/digest").await;
    let plain = common::start(config(&d, ""), None).await;
    common::ready_within(plain.addr, Duration::from_secs(20))
        .await
        .unwrap();
    assert_eq!(single(&served(plain.addr).await.1), after);
    assert_eq!(
        common::json(plain.addr, "/digest").await["digest"],
        digest["digest"]
    );
    assert_eq!(digest["assigned"], N);
    plain.stop().await;
    svc.stop().await;
}
