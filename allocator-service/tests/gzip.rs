//! Compressed answers over a real connection: each large route answers gzip to a client whose
//! `Accept-Encoding` allows it (as Go's HTTP client sends by itself) and the plain JSON to one
//! that does not, and the gzip body decompresses to exactly the plain body.

use std::io::Read as _;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;

/// Status, lower-cased header block, and body bytes of one GET with the given extra header
/// lines.
async fn get(addr: std::net::SocketAddr, path: &str, headers: &str) -> (u16, String, Vec<u8>) {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{headers}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(buf[..end].to_vec())
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        !head.contains("transfer-encoding"),
        "{path}: answers carry a length"
    );
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, buf[end + 4..].to_vec())
}

fn gunzip(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(b)
        .read_to_end(&mut out)
        .unwrap();
    out
}

fn has(head: &str, line: &str) -> bool {
    head.lines().any(|l| l == line)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_is_served_to_clients_that_accept_it_and_decompresses_to_the_plain_answer() {
    let dir = std::env::temp_dir().join(format!("ta-gzip-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let groups: Vec<serde_json::Value> = (0..400)
        .map(|i| {
            serde_json::json!({
                "targets": [format!("10.0.{}.{}:9100", i >> 8, i & 255)],
                "labels": {"__meta_pod": format!("pod-{i}"), "team": "a \"quoted\" é"}
            })
        })
        .collect();
    std::fs::write(dir.join("pods.json"), serde_json::to_vec(&groups).unwrap()).unwrap();
    let yaml = "collectors: [c0, c1]\nconfig:\n  scrape_configs:\n    - job_name: pods\n      \
                file_sd_configs: [{files: [pods.json]}]\n";
    let cfg = allocator_service::parse(yaml, &dir).unwrap();
    let service = common::start(cfg, None).await;
    let addr = service.addr;
    for _ in 0..100 {
        let (status, _, body) = get(addr, "/jobs/pods/targets?collector_id=c0", "").await;
        if status == 200 && body.len() > 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let routes = [
        "/jobs/pods/targets?collector_id=c0",
        "/jobs/pods/targets?collector_id=c1",
        "/jobs/pods/targets",
        "/scrape_configs",
        "/jobs",
    ];
    for path in routes {
        let (status, head, plain) = get(addr, path, "").await;
        assert_eq!(status, 200, "{path}");
        assert!(
            !head.contains("content-encoding"),
            "{path}: no header, plain"
        );
        assert!(has(&head, "vary: accept-encoding"), "{path}: {head}");
        serde_json::from_slice::<serde_json::Value>(&plain).unwrap();
        let plain_elsewise = [
            "Accept-Encoding: gzip;q=0\r\n",
            "Accept-Encoding: br, identity\r\n",
            "Accept-Encoding: *;q=0\r\n",
        ];
        for h in plain_elsewise {
            let (_, head, body) = get(addr, path, h).await;
            assert!(!head.contains("content-encoding"), "{path} {h:?}");
            assert_eq!(body, plain, "{path} {h:?}");
        }
        // As Go's transport asks, and with weights.
        let gzip_ok = [
            "Accept-Encoding: gzip\r\n",
            "Accept-Encoding: br;q=1.0, gzip;q=0.5\r\n",
            "Accept-Encoding: identity, *;q=0.1\r\n",
        ];
        for h in gzip_ok {
            let (status, head, body) = get(addr, path, h).await;
            assert_eq!(status, 200);
            assert!(has(&head, "vary: accept-encoding"), "{path} {h:?}");
            if plain.len() >= allocator_service::answer::MIN_GZIP {
                assert!(has(&head, "content-encoding: gzip"), "{path} {h:?}: {head}");
                assert!(body.len() < plain.len(), "{path}: gzip is smaller");
                assert_eq!(gunzip(&body), plain, "{path} {h:?}");
            } else {
                assert!(!head.contains("content-encoding"), "{path}: small, plain");
                assert_eq!(body, plain, "{path}");
            }
        }
    }
    // The SD and listing answers here are large enough to be compressed.
    let (_, head, _) = get(
        addr,
        "/jobs/pods/targets?collector_id=c0",
        "Accept-Encoding: gzip\r\n",
    )
    .await;
    assert!(has(&head, "content-encoding: gzip"));
    // `/metrics` too, as the Go allocator's promhttp handler (its counters move between two
    // requests, so the two bodies are compared by their metric names).
    let (_, head, plain) = get(addr, "/metrics", "").await;
    assert!(!head.contains("content-encoding"), "{head}");
    let (_, head, packed) = get(addr, "/metrics", "Accept-Encoding: gzip\r\n").await;
    assert!(has(&head, "content-encoding: gzip"), "{head}");
    let names = |b: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(b)
            .lines()
            .filter(|l| l.starts_with("# TYPE"))
            .map(str::to_owned)
            .collect()
    };
    assert!(!names(&plain).is_empty());
    assert_eq!(names(&gunzip(&packed)), names(&plain));
    service.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
