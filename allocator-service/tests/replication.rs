//! Several replicas of the service (issue 21 item 7), on loopback, with Leases on the fake API
//! server (tests/mock_kube):
//! - pure-function strategies agree without coordination: replicas with different histories
//!   (one saw the inputs change, one started on the final inputs) publish the same digest and
//!   byte-equal answers, where least-weighted's do not;
//! - least-weighted with replication: one leader, a follower serving byte-equal answers with the
//!   leader's digest (unlike a replica computing alone on the same inputs); the leader killed →
//!   the follower takes the Lease within the lease duration and keeps the assignment; a new
//!   replica follows the new leader; a graceful stop releases the Lease at once;
//! - the Lease protocol itself: one winner of a race, no takeover before expiry, takeover after.

mod common;
mod mock_kube;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use allocator_service::k8s::lease::{Elector, LeaseSettings, Round};
use common::Running;
use mock_kube::MockApi;
use serde_json::{json, Value};

fn dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("ta-replication-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Write the inputs: `collectors` collectors `c0..`, targets `10.0.<i/200>.<i%200>:9100` for
/// `i < targets`, one group per ten targets (a replace through a rename, as a watcher sees a
/// whole file).
fn inputs(d: &Path, collectors: usize, targets: usize) {
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
fn config(d: &Path, strategy: &str, replication: &str) -> allocator_service::Loaded {
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

fn replication(identity: &str) -> String {
    format!(
        "lease_name: ta\nlease_namespace: observability\nidentity: {identity}\n\
         lease_duration: 2s\nrenew_deadline: 1s\nretry_period: 200ms"
    )
}

const LEASE: Duration = Duration::from_secs(2);

async fn digest(addr: std::net::SocketAddr) -> Value {
    common::json(addr, "/digest").await
}

/// Wait until `addr` is ready and shows `targets` assigned targets on `collectors` collectors.
async fn settled(addr: std::net::SocketAddr, collectors: usize, targets: usize) -> Value {
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
async fn answers(addr: std::net::SocketAddr, collectors: usize) -> Vec<(String, String)> {
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

async fn assert_same_answers(a: std::net::SocketAddr, b: std::net::SocketAddr, collectors: usize) {
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
async fn raw_get(addr: std::net::SocketAddr, path: &str, extra: &str) -> (u16, String, Vec<u8>) {
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

fn header(head: &str, name: &str) -> String {
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
async fn metric(addr: std::net::SocketAddr, name: &str) -> f64 {
    let body = common::get(addr, "/metrics").await.body;
    body.lines()
        .find_map(|l| {
            let (n, v) = l.rsplit_once(' ')?;
            (n == name).then(|| v.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("{name} not in /metrics:\n{body}"))
}

async fn until_leader(addr: std::net::SocketAddr, limit: Duration) -> Duration {
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

/// The same final inputs, reached through different histories: the first replica sees 2
/// collectors and 100 targets, then 3 and 200; the second starts on 3 and 200.
async fn two_histories(name: &str, strategy: &str) -> (Value, Value, Running, Running) {
    let (d1, d2) = (dir(&format!("{name}-1")), dir(&format!("{name}-2")));
    inputs(&d1, 2, 100);
    let first = common::start(config(&d1, strategy, ""), None).await;
    settled(first.addr, 2, 100).await;
    inputs(&d1, 3, 200);
    let a = settled(first.addr, 3, 200).await;
    inputs(&d2, 3, 200);
    let second = common::start(config(&d2, strategy, ""), None).await;
    let b = settled(second.addr, 3, 200).await;
    (a, b, first, second)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pure_function_strategies_agree_without_coordination() {
    for strategy in ["consistent-hashing", "bounded-hashing"] {
        let (a, b, first, second) = two_histories(strategy, strategy).await;
        assert_eq!(a, b, "{strategy}: the digests differ");
        assert_same_answers(first.addr, second.addr, 3).await;
        first.stop().await;
        second.stop().await;
    }
    // The control: least-weighted depends on the history, so the same check fails for it (the
    // reason it needs a leader).
    let (a, b, first, second) = two_histories("least-weighted", "least-weighted").await;
    assert_ne!(
        a["digest"], b["digest"],
        "least-weighted agreed across histories: this test would not see a disagreement"
    );
    first.stop().await;
    second.stop().await;
}

#[test]
fn replication_is_refused_where_it_is_not_needed_or_cannot_work() {
    let d = dir("config");
    inputs(&d, 1, 1);
    let bad = |strategy: &str, block: &str| {
        let mut text = format!(
            "allocation_strategy: {strategy}\ncollectors_file: collectors.txt\nconfig: {{scrape_configs: []}}\nreplication:\n"
        );
        for line in block.lines() {
            text.push_str(&format!("  {line}\n"));
        }
        match allocator_service::parse(&text, &d) {
            Ok(_) => panic!("accepted:\n{text}"),
            Err(e) => e,
        }
    };
    let base = "lease_namespace: ns\nidentity: a";
    assert!(bad("consistent-hashing", base).contains("replicas agree without a leader"));
    assert!(bad("bounded-hashing", base).contains("replicas agree without a leader"));
    assert!(
        bad("least-weighted", &format!("{base}\nrenew_deadline: 20s")).contains("renew_deadline")
    );
    assert!(
        bad("rebalancing", &format!("{base}\nlease_duration: 1500ms"))
            .contains("whole number of seconds")
    );
    assert!(
        bad("least-weighted", &format!("{base}\nsnapshot_max_age: 10s"))
            .contains("snapshot_max_age")
    );
    assert!(
        bad("least-weighted", "lease_namespace: Not_A_Name\nidentity: a")
            .contains("lease_namespace")
    );
    assert!(bad("least-weighted", &format!("{base}\nleader: x")).contains("unknown field"));
    assert!(bad("least-weighted", &format!("{base}\nadvertise_url: ftp://x")).contains("http://"));
    // per-node is history-dependent only through a least-weighted fallback.
    assert!(bad("per-node", base).contains("replicas agree without a leader"));
    let text = "allocation_strategy: per-node\nallocation_fallback_strategy: least-weighted\n\
         collectors_file: collectors.txt\nconfig: {scrape_configs: []}\nreplication:\n  lease_namespace: ns\n  identity: a\n";
    let ok = allocator_service::parse(text, &d).unwrap();
    let r = ok.replication.unwrap();
    assert_eq!(
        (
            r.lease_duration,
            r.renew_deadline,
            r.retry_period,
            r.snapshot_max_age
        ),
        (
            Duration::from_secs(15),
            Duration::from_secs(10),
            Duration::from_secs(2),
            Duration::from_secs(30)
        ),
        "client-go's defaults, and twice the lease duration"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_serves_the_leaders_assignment_and_takes_over_when_it_dies() {
    let api = MockApi::new();
    let kube_addr = api.clone().serve().await;
    let d = dir("failover");
    inputs(&d, 2, 100);
    let a = common::start(
        config(&d, "least-weighted", &replication("replica-a")),
        Some(mock_kube::client(kube_addr)),
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
        Some(mock_kube::client(kube_addr)),
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
    let lease = api.lease("observability", "ta").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
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
        Some(mock_kube::client(kube_addr)),
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

fn settings(identity: &str, lease: &str) -> LeaseSettings {
    LeaseSettings {
        name: lease.into(),
        namespace: "observability".into(),
        identity: identity.into(),
        lease_duration: Duration::from_secs(1),
        snapshot_url: format!("http://{identity}.test:8080"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lease_has_one_holder_and_changes_hands_only_after_it_expires() {
    let api = MockApi::new();
    let addr = api.clone().serve().await;
    let elector =
        |id: &str, lease: &str| Elector::new(mock_kube::client(addr), settings(id, lease));

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
    let lease = api.lease("observability", "held").unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "f");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    // The old holder sees it lost the Lease; a non-contender does not take a vacant one.
    assert!(matches!(
        l.round(true).await.unwrap(),
        Round::Follower { .. }
    ));
    assert!(f.release().await.unwrap());
    assert_eq!(
        api.lease("observability", "held").unwrap()["spec"]["holderIdentity"],
        Value::Null
    );
    assert_eq!(l.round(false).await.unwrap(), Round::Vacant);
    assert_eq!(l.round(true).await.unwrap(), Round::Leader);
}
