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

/// A test directory `name` with `n` targets and a collectors file naming `collectors`.
fn setup(name: &str, n: usize, collectors: &[&str]) -> PathBuf {
    let d = dir(name);
    write_targets(&d.join("targets.json"), n);
    write_collectors(&d.join("collectors.txt"), collectors);
    d
}

/// The service on `d` with `extra` configuration, once it is ready.
async fn start_ready(d: &Path, extra: &str) -> common::Running {
    let svc = common::start(config(d, extra), None).await;
    common::ready_within(svc.addr, Duration::from_secs(20))
        .await
        .unwrap();
    svc
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
    let d = setup("budget", N, &["c0", "c1"]);
    let svc = start_ready(&d, "movement_budget: {max_moves: 3, interval: 1s}").await;
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
    let plain = start_ready(&d, "").await;
    assert_eq!(single(&served(plain.addr).await.1), after);
    assert_eq!(
        common::json(plain.addr, "/digest").await["digest"],
        digest["digest"]
    );
    assert_eq!(digest["assigned"], N);
    plain.stop().await;
    svc.stop().await;
}

/// One POST with a JSON body on a fresh connection: status and body.
async fn post(addr: std::net::SocketAddr, path: &str, body: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(common::REQUEST_TIMEOUT, s.read_to_end(&mut buf))
        .await
        .expect("an answer")
        .unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head.split(' ').nth(1).unwrap().parse().unwrap(),
        body.to_owned(),
    )
}

/// Wait until `name` reaches at least `value`.
async fn metric_reaches(addr: std::net::SocketAddr, name: &str, value: f64) {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let v = metric(addr, name).await;
        if v >= value {
            return;
        }
        assert!(Instant::now() < end, "{name} stayed at {v}, below {value}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn push_body(series: &BTreeMap<String, f64>) -> String {
    let entries: Vec<Value> = series
        .iter()
        .map(|(a, s)| serde_json::json!({"job": "s", "address": a, "series": s}))
        .collect();
    serde_json::to_string(&entries).unwrap()
}

const MATCHED: &str = "opentelemetry_allocator_load_observations_total{result=\"matched\"}";
const UNKNOWN: &str = "opentelemetry_allocator_load_observations_total{result=\"unknown\"}";
const REASSIGNED: &str = "opentelemetry_allocator_moves_total{kind=\"reassigned\"}";
const WEIGHT_CHANGES: &str = "opentelemetry_allocator_weight_changes_total";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_loads_weigh_targets_noise_moves_nothing_and_bad_pushes_are_named() {
    const N: usize = 8;
    let d = setup("push", N, &["c0", "c1"]);
    let svc = start_ready(&d, "allocation_strategy: rebalancing\nobserved_load: {push: true, band_percent: 25, consecutive: 2}").await;
    let end = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let (_, m) = served(svc.addr).await;
        if m.len() == N {
            break single(&m);
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(first.values().filter(|c| *c == "c0").count(), N / 2);

    // Bad pushes: 400 naming the problem; nothing taken.
    for (body, names) in [
        ("{}", "expected a JSON array"),
        ("[{\"job\":\"s\",\"series\":1}]", "missing address"),
        (
            "[{\"job\":\"s\",\"address\":\"x\",\"series\":-5}]",
            "series must be",
        ),
    ] {
        let (status, text) = post(svc.addr, "/loads", body).await;
        assert_eq!(status, 400, "{body}: {text}");
        assert!(text.contains(names), "{body}: {text}");
    }
    assert_eq!(common::get(svc.addr, "/loads").await.status, 405);

    // Every target weighs ~100: equal weights, nothing moves.
    let all = |s: f64| -> BTreeMap<String, f64> { first.keys().map(|a| (a.clone(), s)).collect() };
    let (status, text) = post(svc.addr, "/loads", &push_body(&all(100.0))).await;
    assert_eq!((status, text.as_str()), (202, "{\"accepted\":8}"));
    metric_reaches(svc.addr, MATCHED, N as f64).await;
    metric_reaches(svc.addr, WEIGHT_CHANGES, N as f64).await;
    // The loop publishes after taking the observations; wait for the view with the weights.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let digest = common::json(svc.addr, "/digest").await["digest"].clone();
    let reassigned = metric(svc.addr, REASSIGNED).await;
    assert_eq!(single(&served(svc.addr).await.1), first);

    // Noise: ±20% around 100, many times, and an unknown target.
    let mut matched = N as f64;
    for (round, s) in [120.0, 80.0, 115.0, 85.0, 110.0, 90.0]
        .into_iter()
        .enumerate()
    {
        let mut loads = all(s);
        loads.insert("10.9.9.9:1".into(), 5000.0);
        let (status, _) = post(svc.addr, "/loads", &push_body(&loads)).await;
        assert_eq!(status, 202);
        matched += N as f64;
        metric_reaches(svc.addr, MATCHED, matched).await;
        metric_reaches(svc.addr, UNKNOWN, round as f64 + 1.0).await;
    }
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(metric(svc.addr, WEIGHT_CHANGES).await, N as f64);
    assert_eq!(common::json(svc.addr, "/digest").await["digest"], digest);
    assert_eq!(metric(svc.addr, REASSIGNED).await, reassigned);
    assert_eq!(single(&served(svc.addr).await.1), first);

    // A real change, twice in a row (consecutive: 2): c0's targets weigh 1000, c1's 10.
    let loads: BTreeMap<String, f64> = first
        .iter()
        .map(|(a, c)| (a.clone(), if c == "c0" { 1000.0 } else { 10.0 }))
        .collect();
    for _ in 0..2 {
        assert_eq!(post(svc.addr, "/loads", &push_body(&loads)).await.0, 202);
        matched += N as f64;
        metric_reaches(svc.addr, MATCHED, matched).await;
    }
    metric_reaches(svc.addr, WEIGHT_CHANGES, (2 * N) as f64).await;
    metric_reaches(svc.addr, REASSIGNED, reassigned + 1.0).await;
    // Rebalanced by weight: each collector has two of the heavy targets.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = single(&served(svc.addr).await.1);
        let heavy_on_c0 = now
            .iter()
            .filter(|(a, c)| *c == "c0" && loads[*a] == 1000.0)
            .count();
        if heavy_on_c0 == 2 {
            break;
        }
        assert!(Instant::now() < end, "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_ne!(common::json(svc.addr, "/digest").await["digest"], digest);
    svc.stop().await;
}

/// A Prometheus query API on loopback: answers every request with `body`, and records the
/// request lines.
async fn query_api(
    body: String,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<parking_lot::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(parking_lot::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let mut buf = vec![0u8; 4096];
            let n = s.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            log.lock()
                .push(head.lines().next().unwrap_or("").to_owned());
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        }
    });
    (addr, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulled_loads_from_a_query_api_weigh_targets() {
    const N: usize = 8;
    let d = setup("pull", N, &["c0", "c1"]);
    // Placement first, without loads, to know which targets c0 holds.
    let probe = start_ready(&d, "allocation_strategy: rebalancing").await;
    let end = Instant::now() + Duration::from_secs(20);
    let first = loop {
        let (_, m) = served(probe.addr).await;
        if m.len() == N {
            break single(&m);
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    probe.stop().await;
    // What Prometheus answers to scrape_samples_scraped: c0's targets scrape 1000 samples, the
    // others 10; one series of another job and one with an unparsable value are ignored.
    let mut result: Vec<Value> = first
        .iter()
        .map(|(a, c)| {
            let v = if c == "c0" { "1000" } else { "10" };
            serde_json::json!({"metric": {"__name__": "scrape_samples_scraped", "job": "s", "instance": a},
                               "value": [1_700_000_000.5, v]})
        })
        .collect();
    result.push(
        serde_json::json!({"metric": {"job": "other", "instance": "h:1"}, "value": [1.0, "3"]}),
    );
    let body = serde_json::json!({"status": "success", "data": {"resultType": "vector", "result": result}});
    let (api, seen) = query_api(body.to_string()).await;
    let svc = start_ready(&d, &format!(
                "allocation_strategy: rebalancing\nobserved_load: {{pull: {{url: 'http://{api}/prom', interval: 200ms}}, consecutive: 1}}"
            )).await;
    metric_reaches(svc.addr, MATCHED, N as f64).await;
    metric_reaches(svc.addr, UNKNOWN, 1.0).await;
    metric_reaches(svc.addr, WEIGHT_CHANGES, N as f64).await;
    // Heavy targets end up two on each collector.
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let now = single(&served(svc.addr).await.1);
        let heavy_on_c0 = now
            .iter()
            .filter(|(a, c)| *c == "c0" && first[*a] == "c0")
            .count();
        if now.len() == N && heavy_on_c0 == 2 {
            break;
        }
        assert!(Instant::now() < end, "{now:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let line = seen.lock()[0].clone();
    assert_eq!(
        line,
        "GET /prom/api/v1/query?query=scrape_samples_scraped HTTP/1.1"
    );
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_target_is_served_to_both_collectors_until_seen_on_the_new_one() {
    const N: usize = 30;
    let d = setup("handover", N, &["c0", "c1"]);
    let svc = start_ready(
        &d,
        "handover: {max_window: 4s}\nobserved_load: {push: true}",
    )
    .await;
    let before = core_placement(N, &["c0", "c1"]);
    let after = core_placement(N, &["c0", "c1", "c2"]);
    let moving: Vec<String> = before
        .keys()
        .filter(|a| before[*a] != after[*a])
        .cloned()
        .collect();
    assert!(moving.len() >= 2);
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, m) = served(svc.addr).await;
        if m.len() == N && single(&m) == before {
            break;
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    write_collectors(&d.join("collectors.txt"), &["c0", "c1", "c2"]);
    let changed = Instant::now();
    // Moved targets are served by both; the others by one.
    let end = Instant::now() + Duration::from_secs(20);
    let both = loop {
        let (collectors, m) = served(svc.addr).await;
        if collectors.len() == 3 {
            break m;
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        changed.elapsed() < Duration::from_secs(4),
        "too slow to see the window"
    );
    for (a, cs) in &both {
        let mut want = vec![after[a].clone()];
        if moving.contains(a) {
            want.push(before[a].clone());
        }
        want.sort();
        assert_eq!(*cs, want, "{a}");
    }
    let e = common::json(svc.addr, &format!("/explain?job=s&address={}", moving[0])).await;
    assert_eq!(
        e[0]["handover"]["also_served_by"],
        before[&moving[0]].as_str()
    );
    // The first moved target is seen on its new collector: served there only.
    let seen = serde_json::json!([{"job": "s", "address": moving[0], "series": 10,
                                   "collector": after[&moving[0]]}]);
    assert_eq!(post(svc.addr, "/loads", &seen.to_string()).await.0, 202);
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = served(svc.addr).await;
        if m[&moving[0]] == vec![after[&moving[0]].clone()] {
            if changed.elapsed() < Duration::from_secs(4) {
                // Still within the window: the others are still served twice.
                assert_eq!(m[&moving[1]].len(), 2);
            }
            break;
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The window passes: every target on its new collector only.
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, m) = served(svc.addr).await;
        if m.values().all(|c| c.len() == 1) {
            assert_eq!(single(&m), after);
            break;
        }
        assert!(Instant::now() < end);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        metric(
            svc.addr,
            "opentelemetry_allocator_handovers_closed_total{reason=\"scraped\"}"
        )
        .await,
        1.0
    );
    assert_eq!(
        metric(
            svc.addr,
            "opentelemetry_allocator_handovers_closed_total{reason=\"window\"}"
        )
        .await,
        (moving.len() - 1) as f64
    );
    svc.stop().await;
}
