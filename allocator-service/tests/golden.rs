//! Golden answers: the JSON shapes of DESIGN.md §8.1 for a one-collector configuration (so no
//! answer depends on hashing), compared as JSON values with `tests/golden/*.json`.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
mod common;

async fn body(addr: std::net::SocketAddr, path: &str) -> Value {
    let a = common::get(addr, path).await;
    assert_eq!(a.status, 200, "{path}: {}", a.head);
    assert!(
        a.head
            .to_ascii_lowercase()
            .contains("content-type: application/json"),
        "{path}: {}",
        a.head
    );
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", a.body))
}

fn golden(name: &str) -> Value {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_golden_shapes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden");
    let cfg = allocator_service::load(&dir.join("config.yaml")).unwrap();
    let service = common::start(cfg, None).await;
    let addr = service.addr;
    for _ in 0..50 {
        if body(addr, "/jobs")
            .await
            .as_object()
            .is_some_and(|m| m.len() == 2)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(body(addr, "/jobs").await, golden("jobs.json"));
    // The job segment is query-unescaped: `+` and `%20` are both a space.
    for path in [
        "/jobs/node+exporter/targets?collector_id=otel-collector-0",
        "/jobs/node%20exporter/targets?collector_id=otel-collector-0",
    ] {
        assert_eq!(
            body(addr, path).await,
            golden("node-exporter-targets-collector.json"),
            "{path}"
        );
    }
    assert_eq!(
        body(addr, "/jobs/blackbox/targets").await,
        golden("blackbox-targets.json")
    );
    // `/scrape_configs` of this configuration is compared with the Go allocator's own answer in
    // tests/conformance.rs (case `golden-shapes`).
    service.stop().await;
}
