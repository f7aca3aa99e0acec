//! What the service tests share: a minimal HTTP/1.1 client for loopback.
#![allow(dead_code)]

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A response: status, header block, body (de-chunked).
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: String,
}

/// One GET on a fresh connection (`Connection: close`).
pub async fn get(addr: std::net::SocketAddr, path: &str) -> Answer {
    get_accept(addr, path, "").await
}

/// How long one test request may take: a service that stops answering fails the test with the
/// path named instead of hanging it.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// One GET with an `Accept` header (none when empty).
pub async fn get_accept(addr: std::net::SocketAddr, path: &str, accept: &str) -> Answer {
    tokio::time::timeout(REQUEST_TIMEOUT, get_accept_once(addr, path, accept))
        .await
        .unwrap_or_else(|_| panic!("GET {path}: no complete answer within {REQUEST_TIMEOUT:?}"))
}

async fn get_accept_once(addr: std::net::SocketAddr, path: &str, accept: &str) -> Answer {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let accept = if accept.is_empty() {
        String::new()
    } else {
        format!("Accept: {accept}\r\n")
    };
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{accept}Connection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8(buf).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Answer {
        status: head.split(' ').nth(1).unwrap().parse().unwrap(),
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap();
        if n == 0 {
            break;
        }
        out.push_str(&tail[..n]);
        rest = &tail[n + 2..];
    }
    out
}

/// GET a JSON answer; it must be 200.
pub async fn json(addr: std::net::SocketAddr, path: &str) -> Value {
    let a = get(addr, path).await;
    assert_eq!(a.status, 200, "{path}: {}", a.body);
    serde_json::from_str(&a.body).unwrap_or_else(|e| panic!("{path}: {e}: {}", a.body))
}

/// Poll `/readyz` until it answers 200 (at most `limit`); the last not-ready body otherwise.
pub async fn ready_within(
    addr: std::net::SocketAddr,
    limit: std::time::Duration,
) -> Result<(), String> {
    let end = std::time::Instant::now() + limit;
    loop {
        let a = get(addr, "/readyz").await;
        if a.status == 200 {
            return Ok(());
        }
        if std::time::Instant::now() >= end {
            return Err(a.body);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The service running on a loopback port.
pub struct Running {
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serve `cfg` on 127.0.0.1 (plain HTTP; Kubernetes discovery through `kube` when given).
pub async fn start(cfg: allocator_service::Loaded, kube: Option<kube::Client>) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(allocator_service::serve(cfg, listener, None, kube, async {
        let _ = rx.await;
    }));
    Running { addr, stop, task }
}

impl Answer {
    /// The value of a header (case-insensitive name), if present.
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

impl Running {
    /// End the service at once, as a crash would: nothing shuts down gracefully (a Lease it
    /// holds is not released). The task is cancelled before the stop signal's sender is
    /// dropped, so the service never sees a shutdown.
    pub async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
        drop(self.stop);
    }

    /// Shut down gracefully; the service must end cleanly within 10 s.
    pub async fn stop(self) {
        self.stop.send(()).unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), self.task)
            .await
            .expect("the service stops within 10 s")
            .unwrap()
            .unwrap();
    }
}
