//! The service on a loopback port with the sample configuration: every route's status and JSON
//! shape, then a file_sd change and a collector change seen through the API and metrics; and bad
//! configurations refused with errors that name the problem.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::json;

fn sample_copy(name: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = std::env::temp_dir().join(format!("ta-service-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::copy(src.join("config.yaml"), dir.join("config.yaml")).unwrap();
    for f in ["collectors.txt", "pods.json"] {
        std::fs::copy(src.join("data").join(f), dir.join("data").join(f)).unwrap();
    }
    dir
}

async fn get2(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let a = common::get(addr, path).await;
    (a.status, a.body)
}

async fn wait_for(
    addr: std::net::SocketAddr,
    what: &str,
    mut ok: impl FnMut(&Value) -> bool,
    path: &str,
) -> Value {
    for _ in 0..100 {
        let v = json(addr, path).await;
        if ok(&v) {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out waiting for {what}");
}

fn total_targets(by_collector: &Value) -> usize {
    by_collector
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["targets"].as_array().unwrap().len())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_with_the_go_allocators_shapes_and_follows_changes() {
    let dir = sample_copy("routes");
    let cfg = allocator_service::load(&dir.join("config.yaml")).unwrap();
    let service = common::start(cfg, None).await;
    let addr = service.addr;

    assert_eq!(get2(addr, "/livez").await.0, 200);
    wait_for(addr, "ready", |_| true, "/jobs").await;
    for _ in 0..50 {
        if get2(addr, "/readyz").await.0 == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(get2(addr, "/readyz").await.0, 200);

    // /jobs: job → {"_link": "/jobs/<job>/targets"}.
    let jobs = wait_for(
        addr,
        "two jobs",
        |v| v.as_object().unwrap().len() == 2,
        "/jobs",
    )
    .await;
    assert_eq!(
        jobs["node-exporter"]["_link"],
        "/jobs/node-exporter/targets"
    );
    assert_eq!(
        jobs["kubernetes-pods"]["_link"],
        "/jobs/kubernetes-pods/targets"
    );

    // /jobs/<job>/targets: every collector, each with its link and target groups; together they
    // hold every target once (24 pods, 4 with scrape=false dropped by the keep rule).
    let all = json(addr, "/jobs/kubernetes-pods/targets").await;
    let collectors: Vec<&String> = all.as_object().unwrap().keys().collect();
    assert_eq!(
        collectors,
        ["otel-collector-0", "otel-collector-1", "otel-collector-2"]
    );
    assert_eq!(
        all["otel-collector-1"]["_link"],
        "/jobs/kubernetes-pods/targets?collector_id=otel-collector-1"
    );
    assert_eq!(total_targets(&all), 20);

    // ?collector_id=: the HTTP SD array, labels before relabeling (no `namespace`, no `job`).
    let mine = json(
        addr,
        "/jobs/kubernetes-pods/targets?collector_id=otel-collector-1",
    )
    .await;
    let groups = mine.as_array().unwrap();
    assert_eq!(
        groups.len(),
        all["otel-collector-1"]["targets"].as_array().unwrap().len()
    );
    let g = &groups[0];
    assert_eq!(g["targets"].as_array().unwrap().len(), 1);
    assert_eq!(g["labels"]["__address__"], g["targets"][0]);
    assert!(g["labels"].get("__meta_kubernetes_pod_name").is_some());
    assert!(g["labels"].get("namespace").is_none() && g["labels"].get("job").is_none());
    // Unknown job or collector: [] with 200.
    assert_eq!(
        json(addr, "/jobs/nope/targets?collector_id=otel-collector-1").await,
        Value::Array(vec![])
    );
    assert_eq!(
        json(addr, "/jobs/kubernetes-pods/targets?collector_id=ghost").await,
        Value::Array(vec![])
    );

    // /scrape_configs: job → config with defaults filled.
    let sc = json(addr, "/scrape_configs").await;
    assert_eq!(sc["node-exporter"]["job_name"], "node-exporter");
    assert_eq!(sc["node-exporter"]["scrape_interval"], "30s");
    assert_eq!(sc["node-exporter"]["metrics_path"], "/metrics");
    assert_eq!(
        sc["kubernetes-pods"]["relabel_configs"][0]["action"],
        "keep"
    );

    // /metrics: the Go allocator's names.
    let (status, metrics) = get2(addr, "/metrics").await;
    assert_eq!(status, 200);
    for name in [
        "opentelemetry_allocator_targets{job_name=\"kubernetes-pods\"} 24",
        "opentelemetry_allocator_targets_per_collector{",
        "opentelemetry_allocator_collectors_allocatable{strategy=\"consistent-hashing\"} 3",
        "opentelemetry_allocator_time_to_allocate_count{method=\"SetTargets\"",
        "opentelemetry_allocator_targets_unassigned 0",
        "opentelemetry_allocator_process_targets_duration_seconds_count",
        "opentelemetry_allocator_process_target_groups_duration_seconds_count{job_name=\"kubernetes-pods\"}",
        "opentelemetry_allocator_http_duration_seconds_count{path=\"/jobs\"}",
        "opentelemetry_allocator_events_total{source=\"file\"}",
    ] {
        assert!(metrics.contains(name), "missing {name} in\n{metrics}");
    }

    // Dashboard: totals and per-collector numbers.
    let (status, html) = get2(addr, "/").await;
    assert_eq!(status, 200);
    assert!(html.contains("<td id=targets>24</td>"), "{html}");
    assert!(html.contains("<svg id=distribution"));

    // file_sd change: 8 pods left, all scraped.
    let pods: Vec<Value> = (0..8)
        .map(|i| serde_json::json!({"targets": [format!("10.9.0.{i}:8080")], "labels": {"__meta_kubernetes_pod_annotation_prometheus_io_scrape": "true"}}))
        .collect();
    std::thread::sleep(Duration::from_millis(20));
    std::fs::write(
        dir.join("data/pods.json"),
        serde_json::to_string(&pods).unwrap(),
    )
    .unwrap();
    wait_for(
        addr,
        "the file_sd change",
        |v| total_targets(v) == 8,
        "/jobs/kubernetes-pods/targets",
    )
    .await;

    // Collector change: a fourth collector takes some targets; moves show in the metrics.
    std::fs::write(
        dir.join("data/collectors.txt"),
        "otel-collector-0\notel-collector-1\notel-collector-2\notel-collector-3\n",
    )
    .unwrap();
    let all = wait_for(
        addr,
        "the fourth collector",
        |v| v.as_object().unwrap().len() == 4,
        "/jobs/node-exporter/targets",
    )
    .await;
    assert_eq!(total_targets(&all), 4);
    let (_, metrics) = get2(addr, "/metrics").await;
    assert!(metrics.contains("otel-collector-3"), "{metrics}");
    assert!(
        metrics.contains("opentelemetry_allocator_targets{job_name=\"kubernetes-pods\"} 8"),
        "the per-job gauge follows the file_sd change: {metrics}"
    );
    assert!(
        metrics.contains("opentelemetry_allocator_moves_total{kind=\"reassigned\"}"),
        "{metrics}"
    );

    // An unreadable file_sd file keeps the previous targets.
    std::fs::write(dir.join("data/pods.json"), "{ not json").unwrap();
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(
        total_targets(&json(addr, "/jobs/kubernetes-pods/targets").await),
        8
    );

    service.stop().await;
}

#[test]
fn bad_configurations_are_errors_that_name_the_problem() {
    let base = Path::new(".");
    let bad = |yaml: &str, needle: &str| {
        let err = match allocator_service::parse(yaml, base) {
            Ok(_) => panic!("accepted: {yaml}"),
            Err(e) => e,
        };
        assert!(err.contains(needle), "{err:?} should name {needle:?}");
    };
    bad("config: {scrape_configs: [}", "line");
    bad(
        "allocation_strategy: round-robin\nconfig: {}",
        "round-robin",
    );
    bad("colectors: [a]\nconfig: {}", "colectors");
    bad("config: {}\nunknown_key: 1", "line 2");
    bad(
        "config:\n  scrape_configs:\n    - job_name: j\n      relabel_configs: [{regex: '(', action: keep}]",
        "relabel_configs[0]",
    );
    bad(
        "config:\n  scrape_configs:\n    - job_name: j\n    - job_name: j",
        "used twice",
    );
    bad("https: {enabled: true}\nconfig: {}", "https.ca_file_path");
    bad(
        "allocation_strategy: bounded-hashing\nbounded: {epsilon: -1}\nconfig: {}",
        "epsilon",
    );
    assert!(
        allocator_service::parse("allocation_strategy: bounded-hashing\nconfig: {}", base).is_ok()
    );
}

/// One job `s` of `n` static targets (`10.0.0.1:80`, ...) on the listed collectors.
fn static_job(collectors: &str, n: usize) -> allocator_service::Loaded {
    let targets: Vec<String> = (1..=n).map(|i| format!("\"10.0.0.{i}:80\"")).collect();
    let yaml = format!(
        "collectors: [{collectors}]\nconfig:\n  scrape_configs:\n    - job_name: s\n      static_configs: [{{targets: [{}]}}]\n",
        targets.join(", ")
    );
    allocator_service::parse(&yaml, std::path::Path::new(".")).unwrap()
}

/// Two replicas of the same configuration publish the same assignment digest (route and
/// metric); a replica with another collector set publishes another.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_with_the_same_inputs_publish_the_same_digest() {
    let load = |c: &str| static_job(c, 5);
    let a = common::start(load("c0, c1, c2"), None).await;
    let b = common::start(load("c0, c1, c2"), None).await;
    let c = common::start(load("c0, c1"), None).await;
    let digest = |addr| async move {
        for _ in 0..100 {
            let v = common::json(addr, "/digest").await;
            if v["ready"] == true {
                return v;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("no ready view");
    };
    let (da, db, dc) = (
        digest(a.addr).await,
        digest(b.addr).await,
        digest(c.addr).await,
    );
    assert_eq!(da["digest"], db["digest"]);
    assert_eq!(da["assigned"], 5);
    assert_ne!(da["digest"], dc["digest"]);
    let metrics = common::get(a.addr, "/metrics").await.body;
    let line = format!(
        "opentelemetry_allocator_assignment_digest{{digest=\"{}\",strategy=\"consistent-hashing\"}} 1",
        da["digest"].as_str().unwrap()
    );
    assert!(metrics.contains(&line), "{line} not in {metrics}");
    for s in [a, b, c] {
        s.stop().await;
    }
}

/// `/explain` gives the core's account of a target: the collector it is served to, the rule
/// and what it looked at; without collectors, why it is unassigned; bad questions are named.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_why_a_target_is_where_it_is() {
    let load = |c: &str| static_job(c, 3);
    let svc = common::start(load("c0, c1"), None).await;
    common::ready_within(svc.addr, std::time::Duration::from_secs(10))
        .await
        .unwrap();
    let e = common::json(svc.addr, "/explain?job=s&address=10.0.0.2:80").await;
    let e = &e[0];
    assert_eq!(e["job"], "s");
    assert_eq!(e["rule"], "consistent-hashing");
    assert_eq!(e["detail"]["kind"], "partition");
    assert_eq!(e["detail"]["owner"], e["collector"]);
    assert!(e["unassigned"].is_null());
    // The collector named is the one whose HTTP SD answer lists the target.
    let c = e["collector"].as_str().unwrap();
    let served = common::get(svc.addr, &format!("/jobs/s/targets?collector_id={c}")).await;
    assert!(served.body.contains("10.0.0.2:80"), "{}", served.body);
    // The same by key.
    let key = e["key"].as_str().unwrap();
    let by_key = common::json(svc.addr, &format!("/explain?key={key}")).await;
    assert_eq!(by_key[0]["collector"], e["collector"]);
    assert_eq!(common::get(svc.addr, "/explain?job=s").await.status, 400);
    assert_eq!(common::get(svc.addr, "/explain?key=zz").await.status, 400);
    assert_eq!(
        common::get(svc.addr, "/explain?job=s&address=10.9.9.9:80")
            .await
            .status,
        404
    );
    svc.stop().await;

    let svc = common::start(load(""), None).await;
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let e = loop {
        let a = common::get(svc.addr, "/explain?job=s&address=10.0.0.1:80").await;
        if a.status == 200 {
            break serde_json::from_str::<serde_json::Value>(&a.body).unwrap();
        }
        assert!(std::time::Instant::now() < end, "{}", a.body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(e[0]["collector"].is_null());
    assert_eq!(e[0]["unassigned"], "there are no collectors");
    svc.stop().await;
}
