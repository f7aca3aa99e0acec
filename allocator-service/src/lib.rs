//! A Target Allocator service on `allocator-core`: file discovery, Prometheus relabeling, the Go
//! allocator's HTTP API and metrics, and a server-rendered dashboard. See the README.

pub mod config;
pub mod discovery;
pub mod http;
pub mod k8s;
pub mod metrics;
pub mod relabel;
pub mod state;
pub mod tls;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

pub use config::{load, parse, Loaded};
use state::{Engine, Shared, View};

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
/// `shutdown` resolves: the allocation loop re-reads changed files every [`REFRESH`] and
/// publishes a new view; handlers read the latest view without waiting for it.
pub async fn serve(
    cfg: Loaded,
    listener: tokio::net::TcpListener,
    tls: Option<tls::TlsListener>,
    kube: Option<kube::Client>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        view: RwLock::new(Arc::new(View::default())),
        metrics: metrics::Metrics::new(),
        allow_insecure_secrets: cfg.file.allow_insecure_auth_secrets,
    });
    let cluster = match (cfg.kubernetes, kube) {
        (true, Some(client)) => {
            let cr = cfg.file.prometheus_cr.as_ref().is_some_and(|c| c.enabled);
            Some(Arc::new(k8s::Cluster::start(client, cr)))
        }
        (true, None) => {
            return Err(std::io::Error::other(
                "discovery: kubernetes needs a Kubernetes client",
            ))
        }
        (false, _) => None,
    };
    let mut engine = Engine::new(cfg, cluster);
    let loop_shared = shared.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let allocation = tokio::task::spawn_blocking({
        let stop = stop_rx.clone();
        move || {
            // A blocking thread: allocation is CPU work and must not stall the request handlers.
            while !*stop.borrow() {
                engine.tick(&loop_shared);
                std::thread::sleep(REFRESH);
            }
        }
    });
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let plain = axum::serve(listener, http::router(shared.clone(), false))
        .with_graceful_shutdown(stopped(stop_rx.clone()));
    let result = match tls {
        Some(tls) => {
            let secure = axum::serve(tls, http::router(shared.clone(), true))
                .with_graceful_shutdown(stopped(stop_rx.clone()));
            let (a, b) = tokio::join!(plain, secure);
            a.and(b)
        }
        None => plain.await,
    };
    let _ = allocation.await;
    result
}
