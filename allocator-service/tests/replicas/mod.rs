//! What the replication tests share (tests/replication.rs on the fake API server,
//! tests/apiserver.rs on a real one): inputs on disk, replicas on loopback, their answers and
//! metrics, and the two scenarios run against both servers.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use allocator_service::k8s::lease::{Elector, LeaseSettings, Round};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;
use serde_json::{json, Value};

use crate::common;

pub fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ta-replication-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write the inputs: `collectors` collectors `c0..`, targets `10.0.<i/200>.<i%200>:9100` for
/// `i < targets`, one group per ten targets (a replace through a rename, as a watcher sees a
/// whole file).
pub fn inputs(d: &Path, collectors: usize, targets: usize) {
    let names: Vec<String> = (0..collectors).map(|i| format!("c{i}")).collect();
    let tmp = d.join("collectors.tmp");
    std::fs::write(&tmp, names.join("\n") + "\n").unwrap();
    std::fs::rename(&tmp, d.join("collectors.txt")).unwrap();
    let groups: Vec<Value> = (0..targets)
        .collect::<Vec<_>>()
        .chunks(10)
        .map(|c| {
            let ts: Vec<String> = c
                .iter()
                .map(|i| format!("10.0.{}.{}:9100", i / 200, i % 200))
                .collect();
            json!({"targets": ts, "labels": {"group": format!("g{}", c[0] / 10)}})
        })
        .collect();
    let tmp = d.join("targets.tmp");
    std::fs::write(&tmp, serde_json::to_vec(&groups).unwrap()).unwrap();
    std::fs::rename(&tmp, d.join("targets.json")).unwrap();
}

/// The configuration of one replica on the inputs in `d`; `replication` is the block's body
/// (none when empty).
pub fn config(d: &Path, strategy: &str, replication: &str) -> allocator_service::Loaded {
    let mut text = format!(
        "allocation_strategy: {strategy}\ncollectors_file: collectors.txt\n\
         config:\n  scrape_configs:\n    - job_name: app\n      file_sd_configs:\n        - files: [targets.json]\n"
    );
    if !replication.is_empty() {
        text.push_str("replication:\n");
        for line in replication.lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    allocator_service::parse(&text, d).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

pub fn replication(identity: &str) -> String {
    format!(
        "lease_name: ta\nlease_namespace: observability\nidentity: {identity}\n\
         lease_duration: 2s\nrenew_deadline: 1s\nretry_period: 200ms"
    )
}

pub const LEASE: Duration = Duration::from_secs(2);

pub async fn digest(addr: std::net::SocketAddr) -> Value {
    common::json(addr, "/digest").await
}

/// Wait until `addr` is ready and shows `targets` assigned targets on `collectors` collectors.
pub async fn settled(addr: std::net::SocketAddr, collectors: usize, targets: usize) -> Value {
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if common::get(addr, "/readyz").await.status == 200 {
            let d = digest(addr).await;
            if d["collectors"] == collectors && d["assigned"] == targets {
                return d;
            }
        }
        assert!(
            Instant::now() < end,
            "{addr}: not settled on {collectors} collectors and {targets} targets: {} / {}",
            digest(addr).await,
            common::get(addr, "/readyz").await.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every answer a collector or a person reads, by path.
pub async fn answers(addr: std::net::SocketAddr, collectors: usize) -> Vec<(String, String)> {
    let mut paths = vec![
        "/jobs".to_owned(),
        "/jobs/app/targets".to_owned(),
        "/scrape_configs".to_owned(),
    ];
    paths.extend((0..collectors).map(|i| format!("/jobs/app/targets?collector_id=c{i}")));
    let mut out = Vec::new();
    for p in paths {
        let a = common::get(addr, &p).await;
        assert_eq!(a.status, 200, "{p}: {}", a.body);
        out.push((p, a.body));
    }
    out
}

pub async fn assert_same_answers(
    a: std::net::SocketAddr,
    b: std::net::SocketAddr,
    collectors: usize,
) {
    let (x, y) = (answers(a, collectors).await, answers(b, collectors).await);
    for ((p, ours), (_, theirs)) in x.iter().zip(&y) {
        assert!(ours == theirs, "{p} differs:\n{ours}\n---\n{theirs}");
    }
    // Not a comparison of empty answers. (least-weighted may leave a collector empty: one
    // added after the targets gets none of them.)
    let filled = x
        .iter()
        .filter(|(p, body)| p.contains("collector_id") && body.contains("10.0."))
        .count();
    assert!(filled >= 2, "{x:?}");
}

/// One GET with extra header lines; status, head and the raw body (`Content-Length` framed).
pub async fn raw_get(
    addr: std::net::SocketAddr,
    path: &str,
    extra: &str,
) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut buf))
        .await
        .expect("an answer within 30 s")
        .unwrap();
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(buf[..end].to_vec()).unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head, buf[end + 4..].to_vec())
}

pub fn header(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} in {head}"))
}

/// A metric's value (the first series of that name).
pub async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let body = common::get(addr, "/metrics").await.body;
    body.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
}

pub async fn until_leader(addr: std::net::SocketAddr, limit: Duration) -> Duration {
    let start = Instant::now();
    while metric(addr, "opentelemetry_allocator_is_leader").await != 1.0 {
        assert!(
            start.elapsed() < limit,
            "{addr} did not lead within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

/// Two, then three replicas with least-weighted on the same inputs, their Lease through
/// `client()`: one leader, followers with its digest and byte-equal answers (unlike a replica
/// alone); the leader killed → the follower leads within the lease duration with the same
/// assignment; a new replica follows the new leader; a graceful stop hands over at once.
pub async fn failover(name: &str, client: impl Fn() -> kube::Client) {
    let leases: Api<Lease> = Api::namespaced(client(), "observability");
    let d = dir(name);
    inputs(&d, 2, 100);
    let a = common::start(
        config(&d, "least-weighted", &replication("replica-a")),
        Some(client()),
    )
    .await;
    // Nobody has state: the first replica takes the vacant Lease after one lease duration.
    until_leader(a.addr, LEASE * 5).await;
    settled(a.addr, 2, 100).await;
    // A history: least-weighted keeps the first 100 where they are and fills the new collector
    // with new targets only.
    inputs(&d, 3, 200);
    let leader_digest = settled(a.addr, 3, 200).await;

    let b = common::start(
        config(&d, "least-weighted", &replication("replica-b")),
        Some(client()),
    )
    .await;
    let follower_digest = settled(b.addr, 3, 200).await;
    assert_eq!(follower_digest, leader_digest);
    assert_same_answers(a.addr, b.addr, 3).await;
    assert_eq!(
        metric(b.addr, "opentelemetry_allocator_is_leader").await,
        0.0
    );
    assert!(metric(b.addr, "opentelemetry_allocator_snapshot_age_seconds").await < 2.0);
    // A replica computing alone on the same inputs does not agree: the follower's answers are
    // the leader's, not a coincidence.
    let alone = common::start(config(&d, "least-weighted", ""), None).await;
    let alone_digest = settled(alone.addr, 3, 200).await;
    assert_ne!(alone_digest["digest"], leader_digest["digest"]);
    alone.stop().await;
    // The leader's snapshot route: the core's snapshot format, 304 for the tag a follower
    // holds; 503 on a follower.
    let (status, head, body) = raw_get(a.addr, "/internal/snapshot", "").await;
    assert_eq!(status, 200, "{head}");
    assert!(body.starts_with(b"TALLOCSN"), "{head}");
    let tag = header(&head, "etag");
    let (status, _, body) = raw_get(
        a.addr,
        "/internal/snapshot",
        &format!("If-None-Match: {tag}\r\n"),
    )
    .await;
    assert_eq!((status, body.len()), (304, 0));
    assert_eq!(raw_get(b.addr, "/internal/snapshot", "").await.0, 503);

    // A change the leader applies reaches the follower.
    inputs(&d, 3, 210);
    let leader_digest = settled(a.addr, 3, 210).await;
    assert_eq!(settled(b.addr, 3, 210).await, leader_digest);
    assert_same_answers(a.addr, b.addr, 3).await;
    let (_, head, _) = raw_get(a.addr, "/internal/snapshot", "").await;
    assert_ne!(header(&head, "etag"), tag);

    // The leader dies without releasing the Lease: the follower takes it once it expires and
    // serves the same assignment.
    let killed = Instant::now();
    a.kill().await;
    until_leader(b.addr, LEASE * 3).await;
    let took = killed.elapsed();
    assert!(
        took <= LEASE + Duration::from_millis(1500),
        "takeover after {took:?} (lease {LEASE:?})"
    );
    let lease = leases.get("ta").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("replica-b"));
    assert_eq!(lease.lease_transitions, Some(1));
    assert_eq!(settled(b.addr, 3, 210).await, leader_digest);
    assert_eq!(
        metric(b.addr, "opentelemetry_allocator_leader_transitions_total").await,
        1.0
    );
    println!("takeover {took:?} after the leader was killed (lease duration {LEASE:?})");

    // The new leader applies changes and a new replica follows it.
    inputs(&d, 4, 230);
    let new_digest = settled(b.addr, 4, 230).await;
    let c = common::start(
        config(&d, "least-weighted", &replication("replica-c")),
        Some(client()),
    )
    .await;
    assert_eq!(settled(c.addr, 4, 230).await, new_digest);
    assert_same_answers(b.addr, c.addr, 4).await;

    // A graceful stop releases the Lease: the follower leads well before it would expire.
    let stopped = Instant::now();
    b.stop().await;
    until_leader(c.addr, LEASE * 3).await;
    let took = stopped.elapsed();
    assert!(took < LEASE, "takeover after a release took {took:?}");
    assert_eq!(settled(c.addr, 4, 230).await, new_digest);
    c.stop().await;
}

pub fn settings(identity: &str, lease: &str) -> LeaseSettings {
    LeaseSettings {
        name: lease.into(),
        namespace: "observability".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(1),
        snapshot_url: format!("http://{identity}.test:8080"),
    }
}

/// The Lease protocol through `client`: one winner of a race for a new and for an expired
/// Lease, a renewed Lease never taken, one that stopped changing taken after its duration and
/// not before, the loser told so, a release that frees it at once.
pub async fn lease_protocol(client: kube::Client) {
    let leases: Api<Lease> = Api::namespaced(client.clone(), "observability");
    let elector = |id: &str, lease: &str| Elector::new(client.clone(), settings(id, lease));

    // Races: for a Lease that does not exist, and for one that expired, exactly one wins.
    for i in 0..5 {
        let lease = format!("race-{i}");
        let (mut x, mut y) = (elector("x", &lease), elector("y", &lease));
        let (rx, ry) = tokio::join!(x.round(true), y.round(true));
        let wins = [&rx, &ry]
            .iter()
            .filter(|r| matches!(r, Ok(Round::Leader)))
            .count();
        assert_eq!(wins, 1, "{rx:?} {ry:?}");
        let (mut p, mut q) = (elector("p", &lease), elector("q", &lease));
        let _ = tokio::join!(p.round(true), q.round(true));
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (rp, rq) = tokio::join!(p.round(true), q.round(true));
        let wins = [&rp, &rq]
            .iter()
            .filter(|r| matches!(r, Ok(Round::Leader)))
            .count();
        assert_eq!(wins, 1, "after expiry: {rp:?} {rq:?}");
    }

    // A renewed Lease is never taken; one that stopped changing is, after its duration.
    let (mut l, mut f) = (elector("l", "held"), elector("f", "held"));
    assert_eq!(l.round(true).await.unwrap(), Round::Leader);
    let until = Instant::now() + Duration::from_secs(3);
    let mut last_renewal = Instant::now();
    while Instant::now() < until {
        assert_eq!(l.round(true).await.unwrap(), Round::Leader);
        last_renewal = Instant::now();
        assert_eq!(
            f.round(true).await.unwrap(),
            Round::Follower {
                holder: "l".into(),
                url: Some("http://l.test:8080".into())
            }
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let taken = loop {
        match f.round(true).await.unwrap() {
            Round::Leader => break last_renewal.elapsed(),
            Round::Follower { .. } => {}
            Round::Vacant => panic!("a held Lease seen vacant"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        taken >= Duration::from_secs(1),
        "taken over {taken:?} after the last renewal"
    );
    let lease = leases.get("held").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity.as_deref(), Some("f"));
    assert_eq!(lease.lease_transitions, Some(1));
    // A fresh process with the holder's identity (a restarted container) does not renew it
    // unless it contends: it has lost the state it led with.
    let mut restarted = elector("f", "held");
    let version = |l: Lease| l.metadata.resource_version.unwrap();
    let before = version(leases.get("held").await.unwrap());
    assert_eq!(restarted.round(false).await.unwrap(), Round::Vacant);
    assert_eq!(version(leases.get("held").await.unwrap()), before);
    // The old holder sees it lost the Lease; a non-contender does not take a vacant one.
    assert!(matches!(
        l.round(true).await.unwrap(),
        Round::Follower { .. }
    ));
    assert!(f.release().await.unwrap());
    let lease = leases.get("held").await.unwrap().spec.unwrap();
    assert_eq!(lease.holder_identity, None);
    assert_eq!(l.round(false).await.unwrap(), Round::Vacant);
    assert_eq!(l.round(true).await.unwrap(), Round::Leader);
}
