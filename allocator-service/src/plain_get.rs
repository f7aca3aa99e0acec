//! One plain-HTTP GET for the service's own fetches between its parts (a follower asking the
//! leader for its snapshot, the observed-load puller asking a Prometheus query API): one
//! connection per request, the answer read up to a limit. HTTP SD, which talks to arbitrary
//! servers with TLS and credentials, has its own client (`discovery::http_sd`).

use axum::body::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::header::{HeaderName, HOST};
use hyper::{StatusCode, Uri};

/// What came back: the status and at most `limit` bytes of body.
pub struct Got {
    pub status: StatusCode,
    pub body: Bytes,
}

/// GET `uri` (http only) with `headers`; the body is read up to `limit` bytes (more is an error
/// naming the limit).
pub async fn get(uri: &Uri, headers: &[(HeaderName, &str)], limit: usize) -> Result<Got, String> {
    let host = uri.host().ok_or_else(|| format!("{uri}: no host"))?;
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let tcp = tokio::net::TcpStream::connect((bare, port))
        .await
        .map_err(|e| format!("connect {host}:{port}: {e}"))?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let mut req = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(HOST, uri.authority().map_or(host, |a| a.as_str()));
    for (name, value) in headers {
        req = req.header(name, *value);
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = Limited::new(resp.into_body(), limit)
        .collect()
        .await
        .map_err(|e| format!("reading the answer (at most {limit} bytes): {e}"))?
        .to_bytes();
    Ok(Got { status, body })
}

/// The start of a failed answer's body, for an error message.
pub fn excerpt(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)])
        .trim()
        .to_owned()
}

/// Percent-encode a path segment or query parameter value: every byte but the unreserved
/// characters (RFC 3986 §2.3) as `%XX`.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
