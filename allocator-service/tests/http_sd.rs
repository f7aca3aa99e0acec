//! HTTP service discovery (`http_sd_configs`) against an SD server on loopback: targets arrive
//! with `__meta_url`, follow the server's changes, survive a failing or malformed refresh, and
//! the request carries what Prometheus sends (Accept, the refresh-interval header, credentials
//! from a file read per request); over HTTPS the server is verified against `tls_config.ca_file`.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// What the SD server answers, and the requests it saw.
#[derive(Clone, Default)]
struct Sd {
    answer: Arc<Mutex<(StatusCode, &'static str, String)>>,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Sd {
    fn set(&self, status: StatusCode, content_type: &'static str, body: Value) {
        *self.answer.lock() = (status, content_type, body.to_string());
    }
}

fn app(sd: Sd) -> axum::Router {
    axum::Router::new()
        .route(
            "/targets",
            get(move |headers: HeaderMap| {
                let sd = sd.clone();
                async move {
                    sd.seen.lock().push(headers);
                    let (status, ct, body) = sd.answer.lock().clone();
                    (status, [("content-type", ct)], body).into_response()
                }
            }),
        )
        .route(
            "/moved",
            get(|| async { (StatusCode::FOUND, [("location", "/targets")]).into_response() }),
        )
}

async fn serve_plain(sd: Sd) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app(sd)).await.unwrap() });
    addr
}

fn dir(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("http-sd-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The addresses of one job on the only collector, polled until `ok` (at most 10 s).
async fn until(addr: std::net::SocketAddr, ok: impl Fn(&[String]) -> bool) -> Vec<String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let a = common::get(addr, "/jobs/sd/targets?collector_id=c0").await;
        let v: Value = serde_json::from_str(&a.body).unwrap_or(Value::Null);
        let mut got: Vec<String> = v
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["targets"].as_array().cloned().unwrap_or_default())
            .map(|t| t.as_str().unwrap().to_owned())
            .collect();
        got.sort();
        if a.status == 200 && ok(&got) {
            return got;
        }
        assert!(Instant::now() < end, "timed out; last answer {}", a.body);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_follow_the_sd_server_and_survive_its_failures() {
    let sd = Sd::default();
    sd.set(
        StatusCode::OK,
        "application/json",
        json!([{"targets": ["10.0.0.1:9090", "10.0.0.2:9090"], "labels": {"team": "a"}}]),
    );
    let server = serve_plain(sd.clone()).await;
    let d = dir("plain");
    std::fs::write(d.join("token"), "s3cr3t\n").unwrap();
    let cfg = allocator_service::parse(
        &format!(
            "collectors: [c0]\nconfig:\n  scrape_configs:\n    - job_name: sd\n      http_sd_configs:\n        - url: http://{server}/moved\n          refresh_interval: 500ms\n          authorization: {{credentials_file: token}}\n"
        ),
        &d,
    )
    .unwrap();
    let svc = common::start(cfg, None).await;
    let got = until(svc.addr, |t| t.len() == 2).await;
    assert_eq!(got, ["10.0.0.1:9090", "10.0.0.2:9090"]);
    // The discovered labels the collector reads carry the URL (the configured one, not where
    // the redirect led) and the group's labels.
    let a = common::json(svc.addr, "/jobs/sd/targets?collector_id=c0").await;
    assert_eq!(
        a[0]["labels"]["__meta_url"],
        format!("http://{server}/moved")
    );
    assert_eq!(a[0]["labels"]["team"], "a");
    {
        let seen = sd.seen.lock();
        let h = seen.last().expect("a request");
        assert_eq!(h["accept"], "application/json");
        assert_eq!(h["x-prometheus-refresh-interval-seconds"], "0.5");
        assert_eq!(h["authorization"], "Bearer s3cr3t");
    }
    // A rotated token is used at the next refresh without a restart.
    std::fs::write(d.join("token"), "rotated").unwrap();
    let end = Instant::now() + Duration::from_secs(10);
    while sd.seen.lock().last().unwrap()["authorization"] != "Bearer rotated" {
        assert!(Instant::now() < end, "the rotated token was never sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Changes are followed.
    sd.set(
        StatusCode::OK,
        "application/json; charset=utf-8",
        json!([{"targets": ["10.0.0.3:9090"]}, {"targets": ["10.0.0.1:9090"]}]),
    );
    let got = until(svc.addr, |t| t.len() == 2 && t[1] == "10.0.0.3:9090").await;
    assert_eq!(got, ["10.0.0.1:9090", "10.0.0.3:9090"]);

    // Failures keep the previous targets: a 500, a wrong content type, a null group.
    let requests = sd.seen.lock().len();
    for (status, ct, body) in [
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "application/json",
            json!([]),
        ),
        (StatusCode::OK, "text/plain", json!([])),
        (StatusCode::OK, "application/json", json!([null])),
    ] {
        sd.set(status, ct, body);
        let seen_before = sd.seen.lock().len();
        let end = Instant::now() + Duration::from_secs(10);
        while sd.seen.lock().len() < seen_before + 2 {
            assert!(Instant::now() < end, "no refresh");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let got = until(svc.addr, |_| true).await;
        assert_eq!(
            got,
            ["10.0.0.1:9090", "10.0.0.3:9090"],
            "after {status} {ct}"
        );
    }
    assert!(sd.seen.lock().len() > requests);
    // An empty list empties the job.
    sd.set(StatusCode::OK, "application/json", json!([]));
    until(svc.addr, |t| t.is_empty()).await;
    svc.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_sd_servers_are_verified_against_the_ca_file() {
    // A CA and a server certificate for 127.0.0.1.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let server_key = rcgen::KeyPair::generate().unwrap();
    let server_cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca, &ca_key)
        .unwrap();
    let d = dir("tls");
    std::fs::write(d.join("ca.pem"), ca.pem()).unwrap();
    let other_key = rcgen::KeyPair::generate().unwrap();
    let mut other = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    other.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    std::fs::write(
        d.join("other-ca.pem"),
        other.self_signed(&other_key).unwrap().pem(),
    )
    .unwrap();

    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![server_cert.der().clone()],
        rustls_pki_types::PrivateKeyDer::Pkcs8(server_key.serialize_der().into()),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let sd = Sd::default();
    sd.set(
        StatusCode::OK,
        "application/json",
        json!([{"targets": ["10.1.0.1:9090"]}]),
    );
    let router = app(sd.clone());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let router = router.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper_util::service::TowerToHyperService::new(router);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });

    let job = |ca: &str, name: &str| {
        format!("    - job_name: {name}\n      http_sd_configs:\n        - url: https://{server}/targets\n          refresh_interval: 500ms\n          tls_config: {{ca_file: {ca}}}\n")
    };
    let cfg = allocator_service::parse(
        &format!(
            "collectors: [c0]\nconfig:\n  scrape_configs:\n{}{}",
            job("ca.pem", "sd"),
            job("other-ca.pem", "untrusted")
        ),
        &d,
    )
    .unwrap();
    let svc = common::start(cfg, None).await;
    assert_eq!(until(svc.addr, |t| t.len() == 1).await, ["10.1.0.1:9090"]);
    // The server's certificate does not chain to the other CA: nothing is discovered there.
    let other = common::json(svc.addr, "/jobs/untrusted/targets?collector_id=c0").await;
    assert_eq!(other, json!([]));
    svc.stop().await;
}

#[test]
fn bad_http_sd_configs_are_named() {
    let bad = |yaml: &str, want: &str| {
        let e = allocator_service::parse(yaml, std::path::Path::new("."))
            .err()
            .unwrap_or_else(|| panic!("accepted: {yaml}"));
        assert!(e.contains(want), "{e:?} lacks {want:?}");
    };
    let job = |sd: &str| {
        format!("config: {{scrape_configs: [{{job_name: j, http_sd_configs: [{sd}]}}]}}")
    };
    bad(
        &job("{refresh_interval: 1m}"),
        "http_sd_configs[0]: URL is missing",
    );
    bad(
        &job("{url: 'file:///x'}"),
        "URL scheme must be 'http' or 'https'",
    );
    bad(
        &job("{url: 'http://x', oauth2: {}}"),
        "unknown field `oauth2`",
    );
    bad(
        &job("{url: 'http://x', refresh_interval: 1x}"),
        "refresh_interval",
    );
}
