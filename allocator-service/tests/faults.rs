//! The service under hostile clients, as a child process on loopback: slowloris, descriptor
//! exhaustion, slow readers, SIGTERM under load. Each scenario is bounded in connections and time
//! (the whole file runs in well under a minute).

mod proc;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use proc::{closed_within, get, scratch, start};

const SMALL: &str = r#"
collectors: [c0, c1]
config:
  scrape_configs:
    - job_name: app
      static_configs:
        - targets: ["10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80"]
"#;

fn small_dir(name: &str) -> std::path::PathBuf {
    let dir = scratch(name);
    std::fs::write(dir.join("config.yaml"), SMALL).unwrap();
    dir
}

/// A job of `n` targets with a few long labels each, through file_sd: `/jobs/big/targets` is
/// about `n` × 330 bytes.
fn big_dir(name: &str, n: usize) -> std::path::PathBuf {
    let dir = scratch(name);
    let groups: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "targets": [format!("10.{}.{}.{}:9100", i >> 16, (i >> 8) & 255, i & 255)],
                "labels": {
                    "team": format!("team-{:0>60}", i % 17),
                    "service": format!("service-{:0>80}", i % 101),
                    "zone": format!("zone-{:0>40}", i % 3),
                }
            })
        })
        .collect();
    std::fs::write(dir.join("big.json"), serde_json::to_vec(&groups).unwrap()).unwrap();
    std::fs::write(
        dir.join("config.yaml"),
        r#"
collectors: [c0, c1]
config:
  scrape_configs:
    - job_name: big
      file_sd_configs:
        - files: [big.json]
"#,
    )
    .unwrap();
    dir
}

/// Connections that send part of a request head and then nothing, or a byte at a time, are
/// closed once the header read timeout passes, and other clients are served meanwhile.
#[test]
fn slowloris_connections_are_closed_and_others_served() {
    let dir = small_dir("slowloris");
    let p = start(&dir, &["--header-read-timeout", "1s"], None);
    let mut idle: Vec<TcpStream> = (0..100)
        .map(|_| {
            let mut s = TcpStream::connect(p.addr).unwrap();
            s.write_all(b"GET /jobs HTTP/1.1\r\nHost: x\r\n").unwrap();
            s
        })
        .collect();
    // Trickling clients: one header byte every 100 ms for 3 s.
    let tricklers: Vec<_> = (0..10)
        .map(|_| {
            let addr = p.addr;
            std::thread::spawn(move || {
                let mut s = TcpStream::connect(addr).unwrap();
                let start = Instant::now();
                for b in b"GET /jobs HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" {
                    if s.write_all(&[*b]).is_err() {
                        return Some(start.elapsed());
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                None
            })
        })
        .collect();
    for _ in 0..10 {
        let a = get(p.addr, "/jobs", Duration::from_secs(1)).expect("served within 1 s");
        assert_eq!(a.status, 200);
    }
    for s in &mut idle {
        assert!(
            closed_within(s, Duration::from_secs(4)),
            "a half-sent request head was not closed"
        );
    }
    for t in tricklers {
        let cut = t.join().unwrap();
        assert!(
            cut.is_some_and(|d| d < Duration::from_secs(4)),
            "a trickling client was not cut off: {cut:?}"
        );
    }
}

/// A request that announces a body is answered 413 at once and its connection closed: the
/// body is never waited for, so it cannot be trickled to hold the connection.
#[test]
fn a_request_body_is_refused_not_waited_for() {
    let dir = small_dir("body");
    let p = start(&dir, &[], None);
    let mut s = TcpStream::connect(p.addr).unwrap();
    s.write_all(b"GET /jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\nab")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut head = [0u8; 12];
    std::io::Read::read_exact(&mut s, &mut head).expect("an answer within 2 s");
    assert_eq!(&head, b"HTTP/1.1 413");
    assert!(
        closed_within(&mut s, Duration::from_secs(2)),
        "connection kept open"
    );
}

/// Under `ulimit -n 64`, 150 idle connections do not lock normal clients out: the connection
/// limit (descriptors minus a reserve) closes the longest-idle connection, and the log says so.
#[test]
fn descriptor_exhaustion_keeps_serving_and_logs() {
    let dir = small_dir("nofile");
    let p = start(&dir, &["--header-read-timeout", "30s"], Some(64));
    let idle: Vec<TcpStream> = (0..150)
        .map(|_| TcpStream::connect(p.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    for i in 0..20 {
        let a = get(
            p.addr,
            "/jobs/app/targets?collector_id=c0",
            Duration::from_secs(3),
        )
        .unwrap_or_else(|e| panic!("request {i} under descriptor pressure: {e}"));
        assert_eq!(a.status, 200);
    }
    drop(idle);
    let log = p.log_text();
    assert!(
        log.contains("connection limit reached"),
        "no log line about the limit: {log}"
    );
}

/// 40 clients that request a large answer and never read it neither copy it 40 times nor keep
/// their connections: the answer is shared, and a write that stalls is dropped.
#[test]
fn slow_readers_share_the_answer_and_are_dropped() {
    let dir = big_dir("slowreaders", 24_000);
    let p = start(&dir, &["--write-stall-timeout", "4s"], None);
    let full = get(p.addr, "/jobs/big/targets", Duration::from_secs(30)).unwrap();
    assert_eq!(full.status, 200);
    let size = full.body.len();
    assert!(size > 7_000_000, "answer of {size} bytes");
    let before = p.rss_kib();
    let mut readers: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut s = proc::connect_small_window(p.addr);
            s.write_all(b"GET /jobs/big/targets HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    // Long enough for every answer to be built and stuck, short of the write-stall timeout.
    std::thread::sleep(Duration::from_millis(2500));
    let during = p.rss_kib();
    let growth = during.saturating_sub(before) * 1024;
    // One shared copy is at most `size`; 40 copies would be 40 × `size`.
    assert!(
        growth < (size as u64) * 4,
        "memory grew by {growth} bytes for 40 readers of a {size}-byte answer"
    );
    // Past the write-stall timeout (4 s) with nobody reading: every connection must be gone.
    // (Reading earlier would let the writes progress again.) What the kernel had buffered is
    // still delivered, then the end of the stream.
    std::thread::sleep(Duration::from_millis(3500));
    for s in &mut readers {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "a reader that stopped reading kept its connection"
        );
    }
    let again = get(p.addr, "/jobs/big/targets", Duration::from_secs(30)).unwrap();
    assert_eq!(again.body, full.body);
}

/// SIGTERM while clients hold half-sent requests, do not read a large answer, and poll: the
/// process exits with status 0 within the grace period (2 s here) plus a margin.
#[test]
fn sigterm_under_load_exits_within_the_grace_period() {
    let dir = big_dir("sigterm", 12_000);
    let mut p = start(&dir, &["--shutdown-grace", "2s"], None);
    let half: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(p.addr).unwrap();
            s.write_all(b"GET /jobs HTTP/1.1\r\nHo").unwrap();
            s
        })
        .collect();
    let unread: Vec<TcpStream> = (0..20)
        .map(|_| {
            let mut s = TcpStream::connect(p.addr).unwrap();
            s.write_all(b"GET /jobs/big/targets HTTP/1.1\r\nHost: x\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let pollers: Vec<_> = (0..4)
        .map(|_| {
            let (addr, stop) = (p.addr, stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = get(
                        addr,
                        "/jobs/big/targets?collector_id=c0",
                        Duration::from_secs(2),
                    );
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let sent = Instant::now();
    p.signal(libc::SIGTERM);
    let status = p.wait_for(Duration::from_secs(6));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in pollers {
        t.join().unwrap();
    }
    drop((half, unread));
    let status =
        status.unwrap_or_else(|| panic!("still running 6 s after SIGTERM: {}", p.log_text()));
    assert!(status.success(), "exit status {status}: {}", p.log_text());
    assert!(sent.elapsed() < Duration::from_secs(6));
}
