//! The connection layer under the routes: HTTP/1.1 with a header read timeout (which also ends
//! idle keep-alive connections), a write-stall timeout (a client that stops reading is dropped,
//! so a slow reader cannot pin memory), no request bodies (the API has none, so a body is never
//! read and cannot be trickled), a connection limit that evicts the longest-idle connection and
//! says so in the log, accept errors such as `EMFILE` logged and relieved the same way, and a
//! shutdown that drains for a bounded grace period, then closes whatever is left.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Request, Response, StatusCode};
use axum::Router;
use hyper::body::Incoming as RequestBody;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;

/// The server's limits; [`Limits::default`] is what the binary uses unless flags say otherwise.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Time a connection may take to send a complete request head, counted from the moment the
    /// server waits for one (so it also bounds keep-alive idleness).
    pub header_read_timeout: Duration,
    /// Time a response write may make no progress before the connection is dropped.
    pub write_stall_timeout: Duration,
    /// Open connections per listener; at the limit the longest-idle one is closed.
    pub max_connections: usize,
    /// How long shutdown waits for requests in flight before closing their connections.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            // The Go allocator's `ReadHeaderTimeout`. It also bounds keep-alive idleness here,
            // so it must outlast a collector's 30 s poll: with 10 s every poll reconnected (a
            // full mTLS handshake each time), and a client that reused a connection as it was
            // being closed saw it drop. Connections stuck in a request head are still evicted,
            // longest-idle first, at the connection limit.
            header_read_timeout: Duration::from_secs(90),
            write_stall_timeout: Duration::from_secs(15),
            max_connections: descriptor_budget(1024),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Descriptors kept free for everything that is not a client connection (discovery files, the
/// collectors file, certificates, the runtime's own).
const RESERVED_DESCRIPTORS: u64 = 32;

/// `wanted`, lowered so that connections cannot take the descriptors the rest of the process
/// needs (the soft `RLIMIT_NOFILE` minus a reserve; at least 8).
pub fn descriptor_budget(wanted: usize) -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the valid, exclusively borrowed `lim`.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0;
    if !ok || lim.rlim_cur == libc::RLIM_INFINITY {
        return wanted;
    }
    // rlim_t is u64 on Linux but not on every platform.
    #[allow(clippy::unnecessary_cast)]
    let budget = (lim.rlim_cur as u64)
        .saturating_sub(RESERVED_DESCRIPTORS)
        .max(8);
    wanted.min(usize::try_from(budget).unwrap_or(usize::MAX))
}

/// Something that yields client streams: a TCP listener, or the TLS listener's handshaken
/// streams.
pub trait Incoming: Send {
    type Io: AsyncRead + AsyncWrite + Unpin + Send + 'static;
    fn next(&mut self) -> impl Future<Output = io::Result<(Self::Io, SocketAddr)>> + Send;
}

impl Incoming for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn next(&mut self) -> io::Result<(Self::Io, SocketAddr)> {
        self.accept().await
    }
}

/// One open connection as the limit sees it.
struct Conn {
    /// When it last became idle (accepted, or its last answer returned); `None` while a request
    /// is being handled.
    idle_since: Mutex<Option<Instant>>,
    kill: Notify,
}

/// The open connections of one listener.
#[derive(Default)]
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Rate limit for the limit's log lines: last line and events since.
    log: Mutex<(Option<Instant>, u64)>,
}

impl Registry {
    fn add(&self) -> (u64, Arc<Conn>) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let c = Arc::new(Conn {
            idle_since: Mutex::new(Some(Instant::now())),
            kill: Notify::new(),
        });
        self.conns.lock().insert(id, c.clone());
        (id, c)
    }

    fn remove(&self, id: u64) {
        self.conns.lock().remove(&id);
    }

    fn len(&self) -> usize {
        self.conns.lock().len()
    }

    /// Close the connection that has been idle the longest; false when every one is busy.
    fn evict_idle(&self) -> bool {
        let conns = self.conns.lock();
        let oldest = conns
            .iter()
            .filter_map(|(id, c)| c.idle_since.lock().map(|t| (t, *id)))
            .min();
        match oldest.and_then(|(_, id)| conns.get(&id)) {
            Some(c) => {
                c.kill.notify_one();
                true
            }
            None => false,
        }
    }

    /// Log at most one line per 10 s per listener; the line counts what it stands for.
    fn warn(&self, what: &str, detail: &str) {
        let mut log = self.log.lock();
        log.1 += 1;
        if log.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(events = log.1, open = self.len(), "{what}: {detail}");
            *log = (Some(Instant::now()), 0);
        }
    }
}

/// Serve `router` on `incoming` until `stop` turns true, then drain for the grace period.
pub async fn run<I: Incoming>(
    mut incoming: I,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let registry = Arc::new(Registry::default());
    let mut tasks = JoinSet::new();
    let conn_stop = stop.clone();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = incoming.next() => match accepted {
                Ok((io, _addr)) => {
                    if registry.len() >= limits.max_connections {
                        if registry.evict_idle() {
                            registry.warn(
                                "connection limit reached",
                                &format!("{} connections; closing the longest-idle one", limits.max_connections),
                            );
                        } else {
                            registry.warn(
                                "connection limit reached",
                                &format!("{} connections, all busy; refusing a new one", limits.max_connections),
                            );
                            drop(io);
                            continue;
                        }
                    }
                    let (id, conn) = registry.add();
                    let registry = registry.clone();
                    let router = router.clone();
                    let stop = conn_stop.clone();
                    tasks.spawn(async move {
                        connection(io, router, limits, conn, stop).await;
                        registry.remove(id);
                    });
                }
                Err(e) if is_descriptor_exhaustion(&e) => {
                    // Out of descriptors: free one (the longest-idle connection) and retry soon.
                    registry.evict_idle();
                    registry.warn("cannot accept a connection", &format!("{e}; closing the longest-idle connection"));
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) if is_connection_error(&e) => {}
                Err(e) => {
                    registry.warn("cannot accept a connection", &e.to_string());
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(incoming);
    let open = tasks.len();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open = tasks.len(),
            of = open,
            grace = ?limits.shutdown_grace,
            "connections still open after the shutdown grace period; closing them"
        );
        tasks.shutdown().await;
    }
}

/// Resolves once `stop` is true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn is_descriptor_exhaustion(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serve one connection until it ends, is evicted, or shutdown drains it.
async fn connection<T: AsyncRead + AsyncWrite + Unpin + Send + 'static>(
    io: T,
    router: Router,
    limits: Limits,
    conn: Arc<Conn>,
    mut stop: watch::Receiver<bool>,
) {
    let svc = TowerToHyperService::new(router);
    let state = conn.clone();
    let service = hyper::service::service_fn(move |req: Request<RequestBody>| {
        *state.idle_since.lock() = None;
        let call = if has_body(&req) && !pushes_load(&req) {
            None
        } else {
            Some(hyper::service::Service::call(&svc, req))
        };
        let state = state.clone();
        async move {
            let resp = match call {
                Some(call) => call.await,
                None => Ok(body_refused()),
            };
            *state.idle_since.lock() = Some(Instant::now());
            resp
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let served = builder.serve_connection(
        TokioIo::new(WriteStall::new(io, limits.write_stall_timeout)),
        service,
    );
    tokio::pin!(served);
    let mut draining = false;
    loop {
        tokio::select! {
            _ = served.as_mut() => return,
            _ = conn.kill.notified() => return,
            _ = stopped(&mut stop), if !draining => {
                served.as_mut().graceful_shutdown();
                draining = true;
            }
        }
    }
}

/// The API is GET-only: a request that announces a body is answered 413 and the connection
/// closed, so a body is never read (and cannot be trickled to hold the connection).
fn has_body(req: &Request<RequestBody>) -> bool {
    let h = req.headers();
    h.contains_key(header::TRANSFER_ENCODING)
        || h.get(header::CONTENT_LENGTH)
            .is_some_and(|v| v.as_bytes() != b"0")
}

/// `POST /loads` is the one route that reads a body (bounded in size and time by its handler).
fn pushes_load(req: &Request<RequestBody>) -> bool {
    req.method() == hyper::Method::POST && req.uri().path() == "/loads"
}

fn body_refused() -> Response<Body> {
    let mut r = Response::new(Body::from("request bodies are not accepted\n"));
    *r.status_mut() = StatusCode::PAYLOAD_TOO_LARGE;
    r.headers_mut().insert(
        header::CONNECTION,
        header::HeaderValue::from_static("close"),
    );
    r
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for `limit`.
pub struct WriteStall<T> {
    io: T,
    limit: Duration,
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> WriteStall<T> {
    pub fn new(io: T, limit: Duration) -> Self {
        WriteStall {
            io,
            limit,
            stalled: None,
        }
    }

    /// After a write poll: progress resets the clock; `Pending` starts it or checks it.
    fn check<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Pending => {
                let limit = self.limit;
                let timer = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
                if timer.as_mut().poll(cx).is_ready() {
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "the client stopped reading",
                    )));
                }
                Poll::Pending
            }
            done => {
                self.stalled = None;
                done
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteStall<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteStall<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.check(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        // Vectored writes let hyper queue shared answer buffers instead of copying them.
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.check(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}
