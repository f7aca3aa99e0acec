//! A Target Allocator service on `allocator-core`: file discovery, Prometheus relabeling, the Go
//! allocator's HTTP API and metrics, and a server-rendered dashboard. See the README.

pub mod answer;
pub mod budget;
pub mod config;
pub mod debug_pages;
pub mod discovery;
pub mod explain;
pub mod flags;
pub mod handover;
pub mod http;
pub mod k8s;
pub mod limits;
pub mod loads;
pub mod metrics;
pub mod plain_get;
pub mod publish;
pub mod relabel;
pub mod replica;
pub mod scrape_defaults;
pub mod server;
pub mod state;
#[cfg(test)]
mod test_rng;
pub mod tls;
pub mod validate;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

pub use config::{load, load_with, parse, parse_with, Loaded};
use state::{Engine, Shared};

/// How often watched files are checked for changes.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Go's `:8080` means every interface.
pub fn bind_addr(addr: &str) -> String {
    if addr.starts_with(':') {
        format!("0.0.0.0{addr}")
    } else {
        addr.to_owned()
    }
}

/// Serve plain HTTP on `listener` (and HTTPS with client certificates on `tls`, when given) until
/// `shutdown` resolves, with the default [`server::Limits`].
pub async fn serve(
    cfg: Loaded,
    listener: tokio::net::TcpListener,
    tls: Option<tls::TlsListener>,
    kube: Option<kube::Client>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    serve_with(
        cfg,
        listener,
        tls,
        kube,
        shutdown,
        server::Limits::default(),
    )
    .await
}

/// [`serve`] with explicit limits: the allocation loop re-reads changed files every [`REFRESH`]
/// and publishes a new view; handlers read the latest view without waiting for it. Shutdown
/// drains connections for `limits.shutdown_grace` and waits as long for the allocation loop.
pub async fn serve_with(
    cfg: Loaded,
    listener: tokio::net::TcpListener,
    tls: Option<tls::TlsListener>,
    kube: Option<kube::Client>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: server::Limits,
) -> std::io::Result<()> {
    let mut shared = Shared::new(cfg.file.allow_insecure_auth_secrets);
    let replication = match (&cfg.replication, &kube) {
        (Some(settings), Some(client)) => {
            let url = settings
                .snapshot_url(listener.local_addr()?)
                .map_err(std::io::Error::other)?;
            let replica = Arc::new(replica::Replica::new(settings.clone()));
            replica.register(shared.metrics.registry_mut());
            Some((replica, client.clone(), url))
        }
        (Some(_), None) => {
            return Err(std::io::Error::other(
                "replication needs a Kubernetes client",
            ))
        }
        (None, _) => None,
    };
    let replica = replication.as_ref().map(|r| r.0.clone());
    let shared = Arc::new(shared);
    shared
        .loads
        .enable_push(cfg.loads.as_ref().is_some_and(|l| l.push));
    // Stops (at its next check) when this function returns.
    let _puller = match cfg.loads.as_ref().and_then(|l| l.pull.clone()) {
        Some(p) => Some(loads::Puller::start(p, shared.clone())?),
        None => None,
    };
    let cluster = match (cfg.kubernetes, kube) {
        (true, Some(client)) => {
            let cr = cfg.file.prometheus_cr.as_ref().filter(|c| c.enabled);
            let node_use = k8s::NodeUse {
                zones: cfg.zone_label.is_some(),
                class_metadata: cr.is_some_and(|c| {
                    c.scrape_classes.iter().any(|class| {
                        class.attach_metadata.as_ref().and_then(|a| a.node) == Some(true)
                    })
                }),
                sd_configs: cfg
                    .file
                    .config
                    .scrape_configs
                    .iter()
                    .any(|sc| sc.kubernetes_sd_configs.iter().any(|sd| sd.reads_nodes())),
            };
            let endpoints_role = cfg.file.config.scrape_configs.iter().any(|sc| {
                sc.kubernetes_sd_configs
                    .iter()
                    .any(|sd| sd.role == "endpoints")
            });
            Some(Arc::new(k8s::Cluster::start(
                client,
                cr.is_some(),
                node_use,
                endpoints_role,
                cfg.by_name.clone(),
            )))
        }
        (true, None) => {
            return Err(std::io::Error::other(
                "discovery: kubernetes needs a Kubernetes client",
            ))
        }
        (false, _) => None,
    };
    let mut engine = Engine::new(cfg, cluster).replicated(replica.clone());
    let loop_shared = shared.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    // A thread of its own: allocation is CPU work and must not stall the request handlers, and
    // shutdown must not wait on it forever (it is not joined if it overruns the grace period).
    std::thread::Builder::new()
        .name("allocation".into())
        .spawn({
            let stop = stop_rx.clone();
            move || {
                while !*stop.borrow() {
                    engine.tick(&loop_shared);
                    engine.wait(REFRESH);
                }
                let _ = done_tx.send(());
            }
        })?;
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let mut router = http::router(shared.clone(), false);
    if let Some(r) = &replica {
        router = router.merge(replica::routes(r.clone()));
    }
    let plain = server::run(listener, router, limits, stop_rx.clone());
    // Joined, not spawned: when the service's future is dropped, the election stops with it.
    let elect_stop = stop_rx.clone();
    let elect = async move {
        if let Some((r, client, url)) = replication {
            replica::run(r, client, url, elect_stop).await;
        }
    };
    match tls {
        Some(tls) => {
            let secure = server::run(tls, http::router(shared.clone(), true), limits, stop_rx);
            tokio::join!(plain, secure, elect);
        }
        None => {
            tokio::join!(plain, elect);
        }
    }
    if tokio::time::timeout(limits.shutdown_grace, done_rx)
        .await
        .is_err()
    {
        tracing::warn!(grace = ?limits.shutdown_grace, "the allocation loop did not stop within the grace period; exiting without it");
    }
    Ok(())
}
