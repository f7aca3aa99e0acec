//! File discovery under faults: rewrites that keep the modification time, a file that failed to
//! parse and is then fixed, a FIFO where a file should be, deeply nested YAML, a collectors file
//! with a name twice, and a collector list the ring refuses. The service must keep allocating,
//! see every change, and never report ready while it serves a wrong answer.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

fn dir(name: &str) -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("file-faults-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn config(dir: &Path, yaml: &str) -> allocator_service::Loaded {
    allocator_service::parse(yaml, dir).unwrap_or_else(|e| panic!("{e}"))
}

/// Poll `path` until `ok` holds (at most `limit`); the last JSON answer either way.
async fn until(
    addr: std::net::SocketAddr,
    path: &str,
    limit: Duration,
    ok: impl Fn(&Value) -> bool,
) -> (bool, Value) {
    let end = Instant::now() + limit;
    loop {
        let a = common::get(addr, path).await;
        let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
        if a.status == 200 && ok(&v) {
            return (true, v);
        }
        if Instant::now() >= end {
            return (false, v);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn addresses(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["targets"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t.as_str().map(str::to_owned))
        .collect();
    out.sort();
    out
}

fn set_mtime(path: &Path, t: std::time::SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

const ONE_COLLECTOR_FILE_SD: &str = r#"
collectors: [c0]
config:
  scrape_configs:
    - job_name: files
      file_sd_configs:
        - files: [targets.yaml]
          refresh_interval: 1s
"#;

/// A rewrite of the same size that puts the old modification time back is still seen.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_that_keeps_the_mtime_is_seen() {
    let d = dir("mtime");
    let file = d.join("targets.yaml");
    std::fs::write(&file, "- targets: ['10.0.0.1:80']\n").unwrap();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let s = common::start(config(&d, ONE_COLLECTOR_FILE_SD), None).await;
    let path = "/jobs/files/targets?collector_id=c0";
    let (ok, v) = until(s.addr, path, Duration::from_secs(10), |v| {
        addresses(v) == ["10.0.0.1:80"]
    })
    .await;
    assert!(ok, "first contents not served: {v}");
    std::fs::write(&file, "- targets: ['10.0.0.2:80']\n").unwrap();
    set_mtime(&file, mtime);
    let (ok, v) = until(s.addr, path, Duration::from_secs(5), |v| {
        addresses(v) == ["10.0.0.2:80"]
    })
    .await;
    assert!(ok, "a rewrite with the old mtime was not seen: {v}");
    s.stop().await;
}

/// A file that failed to parse is read again once it is fixed, even when the fix restores the
/// modification time the broken file had.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_failed_to_parse_is_retried() {
    let d = dir("retry");
    let file = d.join("targets.yaml");
    std::fs::write(&file, "- targets: ['10.0.0.1:80'\n").unwrap();
    let mtime = std::fs::metadata(&file).unwrap().modified().unwrap();
    let s = common::start(config(&d, ONE_COLLECTOR_FILE_SD), None).await;
    common::ready_within(s.addr, Duration::from_secs(10))
        .await
        .unwrap();
    std::fs::write(&file, "- targets: ['10.0.0.1:80']\n").unwrap();
    set_mtime(&file, mtime);
    let (ok, v) = until(
        s.addr,
        "/jobs/files/targets?collector_id=c0",
        Duration::from_secs(5),
        |v| addresses(v) == ["10.0.0.1:80"],
    )
    .await;
    assert!(ok, "the fixed file was never read: {v}");
    s.stop().await;
}

/// A FIFO where a file_sd file should be neither blocks allocation nor shutdown: the other
/// job's targets are served, ready, and the service stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifo_does_not_block_the_allocation_loop() {
    let d = dir("fifo");
    let fifo = d.join("targets.yaml");
    let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: mkfifo with a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o644) }, 0);
    let cfg = config(
        &d,
        r#"
collectors: [c0]
config:
  scrape_configs:
    - job_name: files
      file_sd_configs:
        - files: [targets.yaml]
    - job_name: static
      static_configs:
        - targets: ['10.9.9.9:80']
"#,
    );
    let s = common::start(cfg, None).await;
    common::ready_within(s.addr, Duration::from_secs(10))
        .await
        .expect("ready despite the FIFO");
    let v = common::json(s.addr, "/jobs/static/targets?collector_id=c0").await;
    assert_eq!(addresses(&v), ["10.9.9.9:80"]);
    s.stop().await;
}

/// 200 KB of deeply nested YAML (quadratic in libyaml) is refused at once, not parsed for most
/// of a minute while the service claims to be ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deeply_nested_yaml_is_refused_quickly() {
    let d = dir("nested");
    std::fs::write(d.join("targets.yaml"), "{a: ".repeat(50_000)).unwrap();
    std::fs::write(d.join("good.yaml"), "- targets: ['10.0.0.5:80']\n").unwrap();
    let cfg = config(
        &d,
        r#"
collectors: [c0]
config:
  scrape_configs:
    - job_name: files
      file_sd_configs:
        - files: [targets.yaml, good.yaml]
"#,
    );
    let start = Instant::now();
    let s = common::start(cfg, None).await;
    common::ready_within(s.addr, Duration::from_secs(5))
        .await
        .expect("ready within 5 s");
    let v = common::json(s.addr, "/jobs/files/targets?collector_id=c0").await;
    assert_eq!(addresses(&v), ["10.0.0.5:80"]);
    assert!(start.elapsed() < Duration::from_secs(5));
    s.stop().await;
}

/// A collectors file that names a collector twice is refused and `/readyz` shows why, at
/// start (not ready with no collectors) and after an edit (not ready while the previous list,
/// with a collector the file no longer names, is what is served). Fixing the file makes it
/// ready.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collectors_file_with_a_name_twice_is_not_ready() {
    let d = dir("dupcollectors");
    std::fs::write(d.join("collectors.txt"), "c0\nc0\nc1\n").unwrap();
    let cfg = config(
        &d,
        r#"
collectors_file: collectors.txt
config:
  scrape_configs:
    - job_name: static
      static_configs:
        - targets: ['10.9.9.9:80']
"#,
    );
    let s = common::start(cfg, None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = common::get(s.addr, "/readyz").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("duplicate collector \"c0\""), "{}", a.body);
    std::fs::write(d.join("collectors.txt"), "c0\nc1\n").unwrap();
    common::ready_within(s.addr, Duration::from_secs(5))
        .await
        .unwrap();
    // An edit that drops c1 and names c0 twice: refused, not ready.
    std::fs::write(d.join("collectors.txt"), "c0\nc0\n").unwrap();
    let mut refused = false;
    for _ in 0..100 {
        let a = common::get(s.addr, "/readyz").await;
        if a.status == 503 {
            assert!(a.body.contains("duplicate collector \"c0\""), "{}", a.body);
            refused = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refused,
        "a collectors file naming c0 twice was served as ready"
    );
    s.stop().await;
}

/// 2,000 collectors on the default ring (v0.10.0: 1,061 partitions cannot be placed): not
/// ready, with the core's reason; never "ready with 0 collectors".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collector_list_the_ring_refuses_is_not_ready() {
    let d = dir("ringrefuses");
    let names: Vec<String> = (0..2000).map(|i| format!("c{i}")).collect();
    let cfg = config(
        &d,
        &format!(
            "collectors: [{}]\nconfig:\n  scrape_configs:\n    - job_name: static\n      static_configs:\n        - targets: ['10.9.9.9:80']\n",
            names.join(", ")
        ),
    );
    let s = common::start(cfg, None).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = common::get(s.addr, "/readyz").await;
    assert_eq!(a.status, 503, "{}", a.body);
    assert!(a.body.contains("collector list refused"), "{}", a.body);
    assert!(a.body.contains("cannot place"), "{}", a.body);
    s.stop().await;
}
