//! A Target Allocator service on `allocator-core`: file discovery, Prometheus relabeling, the Go
//! allocator's HTTP API and metrics, and a server-rendered dashboard. See the README.

pub mod config;
pub mod discovery;
pub mod http;
pub mod metrics;
pub mod relabel;
pub mod state;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

pub use config::{load, parse, Loaded};
use state::{Engine, Shared, View};

/// How often watched files are checked for changes.
pub const REFRESH: Duration = Duration::from_millis(500);

/// Serve on `listener` until `shutdown` resolves: the allocation loop re-reads changed files every
/// [`REFRESH`] and publishes a new view; handlers read the latest view without waiting for it.
pub async fn serve(
    cfg: Loaded,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shared = Arc::new(Shared {
        view: RwLock::new(Arc::new(View::default())),
        metrics: metrics::Metrics::new(),
    });
    let mut engine = Engine::new(cfg);
    let loop_shared = shared.clone();
    let allocation = tokio::task::spawn_blocking(move || {
        // A blocking thread: allocation is CPU work and must not stall the request handlers.
        while Arc::strong_count(&loop_shared) > 1 {
            engine.tick(&loop_shared);
            std::thread::sleep(REFRESH);
        }
    });
    let app = http::router(shared.clone());
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await;
    drop(shared);
    let _ = allocation.await;
    result
}
