//! Several replicas of the service, for availability (DESIGN.md §8, issue 21 item 7).
//!
//! Pure-function strategies (consistent-hashing, per-node without a history-dependent fallback,
//! bounded-hashing) need nothing here: every replica computes the same assignment from the same
//! discovery, and `/digest` shows it. History-dependent ones (least-weighted, rebalancing, and
//! per-node with a least-weighted fallback) depend on the order of past diffs, which replicas
//! do not share; for them one replica leads, elected through a `coordination.k8s.io/v1` Lease
//! ([`crate::k8s::lease`]), and the others serve its assignment:
//!
//! - The leader allocates as a single replica does, and after a refresh that changed its state
//!   serves the core's snapshot (`Allocator::snapshot`) on `GET /internal/snapshot` (at most once
//!   per retry period, with an `ETag`). A route and not a ConfigMap: a snapshot is 32 bytes per
//!   target (32 MB at a million, benches/README.md), over the 1 MiB limit of a Kubernetes
//!   object, and writing it through the API server at every change would load etcd with data
//!   only the followers read.
//! - Followers find the leader's URL in an annotation of the Lease, poll the route every retry
//!   period (`If-None-Match`: an unchanged snapshot costs a `304`), restore each new snapshot
//!   into their allocator and apply their own discovery on top: with the same discovery that is
//!   no change, so they publish answers byte-equal to the leader's, with the same digest.
//! - Readiness: a follower is not ready until it has restored a snapshot of the current leader,
//!   and stops being ready when the leader has not confirmed it for `snapshot_max_age` (default
//!   twice the lease duration, so a normal failover does not take every follower out of the
//!   Service). Meanwhile it serves the last snapshot, and `snapshot_age_seconds` says how old.
//!   A leader that stops leading serves the state it led with on the same terms, from its last
//!   renewal.
//! - Failover: when the leader stops renewing, a follower takes the Lease once it has not
//!   changed for the lease duration, keeps the allocator it restored (nothing reshuffles) and
//!   leads. A replica that never restored a snapshot (a new pod in a rollout) contends only after
//!   the Lease has been vacant for one more lease duration, so one that has the state wins.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use allocator_core::{Allocator, Config, Strategy};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Deserialize;
use tokio::sync::watch;

use crate::k8s::lease::{Elector, LeaseSettings, Round};

/// The route the leader serves its snapshot on.
pub const SNAPSHOT_PATH: &str = "/internal/snapshot";

/// The largest snapshot a follower accepts (about 25 million targets).
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

/// How long one snapshot download may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(60);

/// The `replication:` block as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationFile {
    /// The Lease's name (default `target-allocator`).
    #[serde(default)]
    pub lease_name: Option<String>,
    /// The Lease's namespace (default: env `POD_NAMESPACE`, else `collector_namespace`).
    #[serde(default)]
    pub lease_namespace: Option<String>,
    /// This replica's identity (default: env `POD_NAME`, else the host name).
    #[serde(default)]
    pub identity: Option<String>,
    /// Where followers fetch this replica's snapshot while it leads (default
    /// `http://$POD_IP:<listen port>`, else the listener's own address).
    #[serde(default)]
    pub advertise_url: Option<String>,
    #[serde(default)]
    pub lease_duration: Option<String>,
    #[serde(default)]
    pub renew_deadline: Option<String>,
    #[serde(default)]
    pub retry_period: Option<String>,
    #[serde(default)]
    pub snapshot_max_age: Option<String>,
}

/// The checked replication settings.
#[derive(Debug, Clone)]
pub struct Replication {
    pub lease_name: String,
    pub lease_namespace: String,
    pub identity: String,
    pub advertise_url: Option<String>,
    /// How long a Lease that stopped changing stays its holder's (client-go default 15 s).
    pub lease_duration: Duration,
    /// How long the leader keeps leading while its renewals fail (10 s).
    pub renew_deadline: Duration,
    /// Time between election rounds and between snapshot polls (2 s).
    pub retry_period: Duration,
    /// A follower whose snapshot the leader has not confirmed for this long is not ready.
    pub snapshot_max_age: Duration,
}

/// Whether replicas running `core` can disagree: the strategy depends on the order of past
/// diffs, not on the current state alone.
pub fn history_dependent(core: &Config) -> bool {
    let dependent = |s: Strategy| matches!(s, Strategy::LeastWeighted | Strategy::Rebalancing);
    dependent(core.strategy)
        || (core.strategy == Strategy::PerNode && core.fallback.is_some_and(dependent))
}

fn host_name() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}

/// A Lease name or namespace: a lowercase RFC 1123 subdomain, as the API server checks it.
fn dns_subdomain(what: &str, s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "replication.{what}: {s:?} is not a lowercase RFC 1123 name"
        ))
    }
}

impl Replication {
    /// Check the block; `collector_namespace` is the Lease's namespace of last resort.
    pub fn from_file(
        f: &ReplicationFile,
        core: &Config,
        collector_namespace: &str,
    ) -> Result<Replication, String> {
        if !history_dependent(core) {
            return Err(format!(
                "replication: {} is a function of the discovered state, so replicas agree \
                 without a leader (compare their /digest); remove the replication block",
                core.strategy.name()
            ));
        }
        let dur = |key: &str, v: &Option<String>, default: u64| -> Result<Duration, String> {
            match v {
                None => Ok(Duration::from_secs(default)),
                Some(v) => match crate::config::duration(v) {
                    Ok(d) if !d.is_zero() => Ok(d),
                    Ok(_) => Err(format!("replication.{key}: must be more than 0")),
                    Err(e) => Err(format!("replication.{key}: {e}")),
                },
            }
        };
        let lease_duration = dur("lease_duration", &f.lease_duration, 15)?;
        let renew_deadline = dur("renew_deadline", &f.renew_deadline, 10)?;
        let retry_period = dur("retry_period", &f.retry_period, 2)?;
        if lease_duration.subsec_nanos() != 0 {
            return Err(format!(
                "replication.lease_duration: {lease_duration:?} is not a whole number of seconds \
                 (the Lease stores seconds)"
            ));
        }
        // client-go's checks: the leader must give up before the others may take over, and
        // get more than one try before it gives up.
        if renew_deadline >= lease_duration {
            return Err(format!(
                "replication: renew_deadline ({renew_deadline:?}) must be less than \
                 lease_duration ({lease_duration:?})"
            ));
        }
        if renew_deadline.as_secs_f64() <= 1.2 * retry_period.as_secs_f64() {
            return Err(format!(
                "replication: renew_deadline ({renew_deadline:?}) must be more than 1.2 × \
                 retry_period ({retry_period:?})"
            ));
        }
        let snapshot_max_age = match &f.snapshot_max_age {
            None => 2 * lease_duration,
            Some(_) => dur("snapshot_max_age", &f.snapshot_max_age, 0)?,
        };
        if snapshot_max_age <= lease_duration + retry_period {
            return Err(format!(
                "replication.snapshot_max_age ({snapshot_max_age:?}) must be more than \
                 lease_duration + retry_period ({:?}), or every failover makes the followers \
                 unready",
                lease_duration + retry_period
            ));
        }
        let lease_name = f
            .lease_name
            .clone()
            .unwrap_or_else(|| "target-allocator".into());
        dns_subdomain("lease_name", &lease_name)?;
        let lease_namespace = f
            .lease_namespace
            .clone()
            .or_else(|| std::env::var("POD_NAMESPACE").ok())
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| collector_namespace.to_owned());
        if lease_namespace.is_empty() {
            return Err("replication.lease_namespace (or env POD_NAMESPACE, or \
                        collector_namespace) is required"
                .into());
        }
        dns_subdomain("lease_namespace", &lease_namespace)?;
        let identity = f
            .identity
            .clone()
            .or_else(|| std::env::var("POD_NAME").ok())
            .filter(|n| !n.is_empty())
            .or_else(host_name)
            .ok_or("replication.identity: not set, and neither env POD_NAME nor a host name")?;
        if let Some(u) = &f.advertise_url {
            check_url(u).map_err(|e| format!("replication.advertise_url: {e}"))?;
        }
        Ok(Replication {
            lease_name,
            lease_namespace,
            identity,
            advertise_url: f.advertise_url.clone(),
            lease_duration,
            renew_deadline,
            retry_period,
            snapshot_max_age,
        })
    }

    /// Where this replica serves its snapshot, listening on `local`.
    pub fn snapshot_url(&self, local: std::net::SocketAddr) -> Result<String, String> {
        if let Some(u) = &self.advertise_url {
            return Ok(u.trim_end_matches('/').to_owned());
        }
        let ip: std::net::IpAddr = match std::env::var("POD_IP") {
            Ok(ip) if !ip.is_empty() => ip
                .parse()
                .map_err(|e| format!("replication: env POD_IP {ip:?}: {e}"))?,
            _ if !local.ip().is_unspecified() => local.ip(),
            _ => {
                return Err(format!(
                    "replication: this replica listens on {local}, which is no address others \
                     can reach; set env POD_IP (the downward API's status.podIP) or \
                     replication.advertise_url"
                ))
            }
        };
        Ok(format!(
            "http://{}",
            std::net::SocketAddr::new(ip, local.port())
        ))
    }

    fn lease(&self, snapshot_url: String) -> LeaseSettings {
        LeaseSettings {
            name: self.lease_name.clone(),
            namespace: self.lease_namespace.clone(),
            identity: self.identity.clone(),
            lease_duration: self.lease_duration,
            snapshot_url,
        }
    }
}

/// `http://host:port[/path]`: the snapshot is fetched over plain HTTP inside the cluster.
fn check_url(u: &str) -> Result<(), String> {
    let uri: hyper::Uri = u.parse().map_err(|e| format!("{u:?}: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.host().is_none() {
        return Err(format!("{u:?}: expected http://host:port"));
    }
    Ok(())
}

/// A snapshot with its entity tag (XXH3 of the bytes).
#[derive(Clone)]
pub struct Snapshot {
    pub bytes: Bytes,
    pub etag: String,
}

impl Snapshot {
    pub fn new(bytes: Vec<u8>) -> Snapshot {
        let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(&bytes));
        Snapshot {
            bytes: Bytes::from(bytes),
            etag,
        }
    }
}

/// What the election and the snapshot exchange share with the allocation loop and the route.
#[derive(Default)]
struct Inner {
    /// At least one election round has finished.
    elected: bool,
    /// The holder of the Lease and its snapshot URL (another replica), when there is one.
    holder: Option<String>,
    leader_url: Option<String>,
    /// Leader: the snapshot served, when it was made, and whether the state changed since.
    published: Option<Snapshot>,
    made: Option<Instant>,
    pending: bool,
    /// Follower: fetched and not yet restored.
    offer: Option<Snapshot>,
    /// Follower: the entity tag of the last snapshot fetched (for `If-None-Match`).
    fetched_etag: Option<String>,
    /// Follower: a snapshot of the current leader has been restored and is served.
    adopted: bool,
    /// When the leader last said the follower's snapshot is its current one.
    confirmed: Option<Instant>,
    /// Why the last snapshot could not be fetched or restored.
    trouble: Option<String>,
    /// This replica has state worth keeping: it led, or restored a leader's snapshot.
    seasoned: bool,
    /// Leader: when it last renewed the Lease.
    renewed: Option<Instant>,
}

struct ReplicaMetrics {
    is_leader: Gauge,
    transitions: Counter,
    snapshot_age: Gauge<f64, std::sync::atomic::AtomicU64>,
}

/// One replica's replication state.
pub struct Replica {
    pub settings: Replication,
    leader: AtomicBool,
    inner: Mutex<Inner>,
    metrics: ReplicaMetrics,
    started: Instant,
}

impl Replica {
    pub fn new(settings: Replication) -> Replica {
        Replica {
            settings,
            leader: AtomicBool::new(false),
            inner: Mutex::new(Inner::default()),
            metrics: ReplicaMetrics {
                is_leader: Gauge::default(),
                transitions: Counter::default(),
                snapshot_age: Gauge::default(),
            },
            started: Instant::now(),
        }
    }

    /// Add the replication metrics to the service's registry.
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "is_leader",
            "Whether this replica holds the allocation Lease (1) or follows (0)",
            self.metrics.is_leader.clone(),
        );
        r.register(
            "leader_transitions",
            "Times this replica became leader or stopped being leader",
            self.metrics.transitions.clone(),
        );
        r.register(
            "snapshot_age_seconds",
            "Follower: seconds since the leader last confirmed the snapshot this replica serves (since start when it has none); 0 on the leader",
            self.metrics.snapshot_age.clone(),
        );
    }

    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire)
    }

    fn set_leader(&self, leader: bool) {
        if self.leader.swap(leader, Ordering::AcqRel) != leader {
            self.metrics.transitions.inc();
            self.metrics.is_leader.set(i64::from(leader));
            let mut g = self.inner.lock();
            if leader {
                tracing::info!(identity = %self.settings.identity, "leading: serving this replica's assignment and its snapshot");
                g.seasoned = true;
                g.holder = None;
                g.leader_url = None;
                g.offer = None;
            } else {
                tracing::warn!(identity = %self.settings.identity, "no longer leading: serving the last assignment it led with until a leader's snapshot replaces it");
                g.published = None;
                g.pending = false;
                // Its own state counts as a snapshot confirmed at its last renewal: served, as a
                // follower serves the last snapshot it has, for `snapshot_max_age`.
                g.adopted = g.renewed.is_some();
                g.confirmed = g.renewed.take();
                g.fetched_etag = None;
            }
        }
    }

    /// Another replica leads (or nobody does: `holder` None).
    fn follow(&self, holder: Option<String>, url: Option<String>) {
        self.set_leader(false);
        let mut g = self.inner.lock();
        if g.holder != holder {
            // The snapshot held stays served: a new leader that took over from it serves the
            // same bytes (its `ETag` then confirms it with a `304`).
            tracing::info!(leader = ?holder, url = ?url, "following");
        }
        g.holder = holder;
        g.leader_url = url;
    }

    /// Why `/readyz` must answer 503 on this replica's account, or `None`.
    pub fn problem(&self) -> Option<String> {
        let g = self.inner.lock();
        if self.is_leader() {
            self.metrics.snapshot_age.set(0.0);
            return None;
        }
        let age = g.confirmed.unwrap_or(self.started).elapsed();
        self.metrics.snapshot_age.set(age.as_secs_f64());
        let leader = g.holder.as_deref().unwrap_or("none");
        if !g.elected {
            return Some("replication: leader election has not run yet".into());
        }
        if let Some(t) = &g.trouble {
            if !g.adopted {
                return Some(format!(
                    "replication: no snapshot from the leader ({leader}): {t}"
                ));
            }
        }
        if !g.adopted {
            return Some(format!(
                "replication: no snapshot from the leader ({leader}) restored yet"
            ));
        }
        if age > self.settings.snapshot_max_age {
            return Some(format!(
                "replication: the leader ({leader}) last confirmed this replica's snapshot {} s ago (limit {} s){}",
                age.as_secs(),
                self.settings.snapshot_max_age.as_secs(),
                g.trouble.as_deref().map(|t| format!(": {t}")).unwrap_or_default()
            ));
        }
        None
    }

    /// Allocation loop, follower: the newest fetched snapshot, to restore.
    pub fn take_offer(&self) -> Option<Snapshot> {
        self.inner.lock().offer.take()
    }

    /// Allocation loop: restore `offer` when its configuration is this replica's.
    pub fn restore(&self, offer: &Snapshot, core: &Config) -> Option<Allocator> {
        let result = Allocator::restore(&offer.bytes)
            .map_err(|e| e.to_string())
            .and_then(|a| {
                // Our configuration as a snapshot stores it (slacks in millionths), so that every
                // field, present and future, is compared as restore reads it.
                let ours = Allocator::new(*core)
                    .and_then(|empty| Allocator::restore(&empty.snapshot()))
                    .map(|empty| *empty.config())
                    .map_err(|e| format!("this replica's configuration: {e}"))?;
                if *a.config() == ours {
                    Ok(a)
                } else {
                    Err(format!(
                        "the leader allocates with {:?}, this replica is configured with {ours:?}",
                        a.config()
                    ))
                }
            });
        let mut g = self.inner.lock();
        match result {
            Ok(a) => {
                g.adopted = true;
                g.seasoned = true;
                g.trouble = None;
                Some(a)
            }
            Err(e) => {
                tracing::error!(error = %e, "the leader's snapshot cannot be served by this replica; not ready");
                g.trouble = Some(format!("snapshot refused: {e}"));
                None
            }
        }
    }

    /// Allocation loop, after a refresh (`changed`: it applied a diff or restored a
    /// snapshot): whether the leader should make a new snapshot now. At most one per retry
    /// period; the first right away.
    pub fn wants_snapshot(&self, changed: bool) -> bool {
        if !self.is_leader() {
            return false;
        }
        let mut g = self.inner.lock();
        g.pending |= changed;
        g.published.is_none()
            || (g.pending
                && g.made
                    .is_none_or(|t| t.elapsed() >= self.settings.retry_period))
    }

    /// Allocation loop, leader: serve `bytes` as the current snapshot.
    pub fn publish(&self, bytes: Vec<u8>) {
        let s = Snapshot::new(bytes);
        let mut g = self.inner.lock();
        if !self.is_leader() {
            return;
        }
        tracing::debug!(bytes = s.bytes.len(), etag = %s.etag, "snapshot published");
        g.published = Some(s);
        g.made = Some(Instant::now());
        g.pending = false;
    }

    fn served(&self) -> Result<Snapshot, String> {
        let g = self.inner.lock();
        if !self.is_leader() {
            return Err(format!(
                "not the leader (leader: {})",
                g.holder.as_deref().unwrap_or("none")
            ));
        }
        g.published
            .clone()
            .ok_or_else(|| "the leader has no snapshot yet".to_owned())
    }

    /// Fetch loop: the leader's URL and the entity tag we hold, when following a leader.
    fn fetch_target(&self) -> Option<(String, Option<String>)> {
        if self.is_leader() {
            return None;
        }
        let g = self.inner.lock();
        Some((g.leader_url.clone()?, g.fetched_etag.clone()))
    }

    fn fetched(&self, from: &str, result: Result<Option<Snapshot>, String>) {
        let mut g = self.inner.lock();
        // The leader changed while the request was in flight: drop the answer.
        if self.is_leader() || g.leader_url.as_deref() != Some(from) {
            return;
        }
        match result {
            Ok(Some(s)) => {
                g.fetched_etag = Some(s.etag.clone());
                g.offer = Some(s);
                g.confirmed = Some(Instant::now());
            }
            Ok(None) => g.confirmed = Some(Instant::now()),
            Err(e) => {
                if g.trouble.as_deref() != Some(e.as_str()) {
                    tracing::warn!(leader = from, error = %e, "cannot fetch the leader's snapshot; retrying");
                }
                g.trouble = Some(e);
                return;
            }
        }
        if g.trouble
            .as_deref()
            .is_some_and(|t| !t.starts_with("snapshot refused"))
        {
            g.trouble = None;
        }
    }
}

/// `GET /internal/snapshot` (plain listener only): the leader's snapshot, `304` when the
/// client's `If-None-Match` names it, `503` on a follower.
pub fn routes(r: Arc<Replica>) -> Router {
    Router::new()
        .route(SNAPSHOT_PATH, get(snapshot))
        .with_state(r)
}

async fn snapshot(State(r): State<Arc<Replica>>, headers: HeaderMap) -> Response {
    let s = match r.served() {
        Ok(s) => s,
        Err(why) => return (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")).into_response(),
    };
    let etag = s.etag.clone();
    let known = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    if known {
        return (StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response();
    }
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::ETAG, etag),
        ],
        s.bytes,
    )
        .into_response()
}

/// GET the leader's snapshot: `Ok(None)` when it is the one we hold (`etag`).
async fn fetch(url: &str, etag: Option<&str>) -> Result<Option<Snapshot>, String> {
    let uri: hyper::Uri = format!("{url}{SNAPSHOT_PATH}")
        .parse()
        .map_err(|e| format!("leader URL {url:?}: {e}"))?;
    let agent = concat!("target-allocator-rs/", env!("CARGO_PKG_VERSION"));
    let mut headers = vec![(header::USER_AGENT, agent)];
    if let Some(e) = etag {
        headers.push((header::IF_NONE_MATCH, e));
    }
    let got = crate::plain_get::get(&uri, &headers, MAX_SNAPSHOT_BYTES).await?;
    match got.status {
        StatusCode::NOT_MODIFIED => Ok(None),
        StatusCode::OK => Ok(Some(Snapshot::new(got.body.to_vec()))),
        status => Err(format!(
            "{uri}: {status}: {}",
            crate::plain_get::excerpt(&got.body)
        )),
    }
}

/// Resolve when `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow_and_update() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Sleep `d`; false when `stop` turned true first.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = stopped(stop) => false,
    }
}

/// The election and the snapshot exchange, until `stop`; then the Lease is released if held.
pub async fn run(
    r: Arc<Replica>,
    client: kube::Client,
    snapshot_url: String,
    stop: watch::Receiver<bool>,
) {
    let elector = Elector::new(client, r.settings.lease(snapshot_url));
    tokio::join!(elect(r.clone(), elector, stop.clone()), poll(r, stop));
}

async fn elect(r: Arc<Replica>, mut elector: Elector, mut stop: watch::Receiver<bool>) {
    let s = r.settings.clone();
    let mut vacant_since: Option<Instant> = None;
    let mut renewed: Option<Instant> = None;
    let mut last_error: Option<String> = None;
    tracing::info!(identity = %s.identity, lease = %format!("{}/{}", s.lease_namespace, s.lease_name), url = %elector.settings().snapshot_url, "leader election");
    loop {
        let seasoned = r.inner.lock().seasoned;
        let contend = seasoned || vacant_since.is_some_and(|t| t.elapsed() >= s.lease_duration);
        let round = tokio::time::timeout(s.renew_deadline, elector.round(contend))
            .await
            .unwrap_or_else(|_| Err(kube::Error::Service("election round timed out".into())));
        let failed = match round {
            Ok(Round::Leader) => {
                renewed = Some(Instant::now());
                r.inner.lock().renewed = renewed;
                vacant_since = None;
                last_error = None;
                r.set_leader(true);
                false
            }
            Ok(Round::Follower { holder, url }) => {
                vacant_since = None;
                last_error = None;
                r.follow(Some(holder), url);
                false
            }
            Ok(Round::Vacant) => {
                vacant_since.get_or_insert_with(Instant::now);
                last_error = None;
                if !r.is_leader() {
                    r.follow(None, None);
                }
                r.is_leader()
            }
            Err(e) => {
                let e = e.to_string();
                if last_error.as_deref() != Some(e.as_str()) {
                    tracing::warn!(error = %e, "leader election round failed; retrying");
                }
                last_error = Some(e);
                true
            }
        };
        // A leader that could not renew for the renew deadline steps down before anyone may
        // take the Lease over (lease duration > renew deadline).
        if failed && r.is_leader() && renewed.is_none_or(|t| t.elapsed() >= s.renew_deadline) {
            tracing::error!(deadline = ?s.renew_deadline, "could not renew the Lease within the renew deadline");
            r.follow(None, None);
        }
        r.inner.lock().elected = true;
        if !pause(s.retry_period, &mut stop).await {
            break;
        }
    }
    if r.is_leader() {
        r.set_leader(false);
        match tokio::time::timeout(s.renew_deadline, elector.release()).await {
            Ok(Ok(true)) => tracing::info!("Lease released"),
            Ok(Ok(false)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "could not release the Lease; it expires"),
            Err(_) => tracing::warn!("releasing the Lease timed out; it expires"),
        }
    }
}

async fn poll(r: Arc<Replica>, mut stop: watch::Receiver<bool>) {
    loop {
        if let Some((url, etag)) = r.fetch_target() {
            let result = tokio::time::timeout(FETCH_TIMEOUT, fetch(&url, etag.as_deref()))
                .await
                .unwrap_or_else(|_| Err(format!("no snapshot within {FETCH_TIMEOUT:?}")));
            r.fetched(&url, result);
        }
        if !pause(r.settings.retry_period, &mut stop).await {
            return;
        }
    }
}
