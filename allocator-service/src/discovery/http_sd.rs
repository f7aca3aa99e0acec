//! HTTP service discovery (`http_sd_configs`), as Prometheus' `discovery/http` does it and the
//! Go allocator (which runs Prometheus' discovery manager) therefore does too:
//!
//! - a GET of the URL right away and then every `refresh_interval` (default 1m), with
//!   `Accept: application/json` and `X-Prometheus-Refresh-Interval-Seconds`, and the refresh
//!   interval as the whole request's timeout;
//! - the answer must be `200` with `Content-Type: application/json` (optionally
//!   `; charset=utf-8`), a JSON array of `{"targets": [...], "labels": {...}}` groups, no `null`;
//! - every group gets `__meta_url` = the URL;
//! - a failed refresh is logged and the previous groups stay.
//!
//! Each URL has a thread of its own with a small runtime for the request, like the file
//! watchers: a slow server never holds up allocation. Credentials come from the HTTP client
//! settings Prometheus accepts here (`authorization`, `basic_auth`, `bearer_token[_file]`,
//! `tls_config`, `follow_redirects`); a `*_file` credential is read for every request, so a
//! rotated token is used without a restart. Settings this allocator cannot honour (`oauth2`,
//! proxies, custom headers) are configuration errors rather than silently ignored.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty, Limited};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde_yaml::Value as Yaml;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use crate::config::StaticConfig;

/// Prometheus' default `refresh_interval` for HTTP SD.
pub const DEFAULT_REFRESH: Duration = Duration::from_secs(60);
/// Redirects followed before giving up, as Go's HTTP client does.
const MAX_REDIRECTS: usize = 10;

/// One `http_sd_configs` entry, checked.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub url: String,
    pub refresh: Duration,
    client: Client,
}

#[derive(Clone, Debug)]
enum Secret {
    Inline(String),
    /// Read for every request.
    File(PathBuf),
}

impl Secret {
    fn read(&self) -> Result<String, String> {
        match self {
            Secret::Inline(s) => Ok(s.clone()),
            Secret::File(p) => std::fs::read_to_string(p)
                .map(|s| s.trim().to_owned())
                .map_err(|e| format!("{}: {e}", p.display())),
        }
    }
}

#[derive(Clone, Debug)]
enum Auth {
    /// `Authorization: <type> <credentials>`.
    Header {
        kind: String,
        credentials: Secret,
    },
    Basic {
        username: String,
        password: Secret,
    },
}

#[derive(Clone, Debug)]
struct Client {
    auth: Option<Auth>,
    tls: Option<Arc<ClientConfig>>,
    server_name: Option<String>,
    follow_redirects: bool,
}

/// The keys of an `http_sd_configs` entry this allocator reads.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    url: Option<String>,
    refresh_interval: Option<String>,
    authorization: Option<RawAuthorization>,
    basic_auth: Option<RawBasic>,
    bearer_token: Option<String>,
    bearer_token_file: Option<String>,
    tls_config: Option<RawTls>,
    follow_redirects: Option<bool>,
    /// Accepted; requests are HTTP/1.1 either way.
    #[allow(dead_code)]
    enable_http2: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAuthorization {
    #[serde(rename = "type")]
    kind: Option<String>,
    credentials: Option<String>,
    credentials_file: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawBasic {
    username: Option<String>,
    password: Option<String>,
    password_file: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTls {
    /// Inline PEM (what a ScrapeConfig's Secrets give), or a file.
    ca: Option<String>,
    ca_file: Option<String>,
    cert: Option<String>,
    cert_file: Option<String>,
    key: Option<String>,
    key_file: Option<String>,
    server_name: Option<String>,
    #[serde(default)]
    insecure_skip_verify: bool,
    /// `TLS12` or `TLS13`.
    min_version: Option<String>,
    max_version: Option<String>,
}

/// PEM from inline text or a file, whichever is set (both is an error, as Prometheus says).
fn pem_source(
    inline: &Option<String>,
    file: &Option<String>,
    base: &Path,
    what: &str,
) -> Result<Option<Vec<u8>>, String> {
    match (
        inline.as_deref().filter(|s| !s.is_empty()),
        file.as_deref().filter(|s| !s.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(format!(
            "tls_config: at most one of {what} and {what}_file must be configured"
        )),
        (Some(text), None) => Ok(Some(text.as_bytes().to_vec())),
        (None, Some(f)) => std::fs::read(base.join(f))
            .map(Some)
            .map_err(|e| format!("tls_config.{what}_file: {f}: {e}")),
        (None, None) => Ok(None),
    }
}

fn pem_certs(
    pem: &[u8],
    what: &str,
) -> Result<Vec<rustls_pki_types::CertificateDer<'static>>, String> {
    crate::tls::certs_of_pem(pem).map_err(|e| format!("tls_config.{what}: {e}"))
}

fn tls_version(v: &str) -> Result<&'static rustls::SupportedProtocolVersion, String> {
    match v {
        "TLS12" => Ok(&rustls::version::TLS12),
        "TLS13" => Ok(&rustls::version::TLS13),
        other => Err(format!(
            "tls_config: unsupported TLS version {other:?} (TLS12 or TLS13)"
        )),
    }
}

fn secret(
    inline: Option<String>,
    file: Option<String>,
    base: &Path,
    what: &str,
) -> Result<Option<Secret>, String> {
    match (
        inline.filter(|s| !s.is_empty()),
        file.filter(|s| !s.is_empty()),
    ) {
        (Some(_), Some(_)) => Err(format!(
            "at most one of {what} and {what}_file must be configured"
        )),
        (Some(s), None) => Ok(Some(Secret::Inline(s))),
        (None, Some(f)) => Ok(Some(Secret::File(base.join(f)))),
        (None, None) => Ok(None),
    }
}

impl Endpoint {
    /// Check one entry as Prometheus' loader checks it; relative files are resolved against
    /// `base` (the configuration file's directory).
    pub fn parse(v: &Yaml, base: &Path) -> Result<Endpoint, String> {
        let raw: Raw = serde_yaml::from_value(v.clone()).map_err(|e| {
            let e = e.to_string();
            if e.contains("unknown field") {
                format!("{e} (this allocator reads url, refresh_interval, authorization, basic_auth, bearer_token, bearer_token_file, tls_config and follow_redirects)")
            } else {
                e
            }
        })?;
        let url = raw.url.filter(|u| !u.is_empty()).ok_or("URL is missing")?;
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        if !matches!(scheme.as_deref(), Some("http" | "https")) {
            return Err("URL scheme must be 'http' or 'https'".into());
        }
        let uri: Uri = url.parse().map_err(|e| format!("url {url:?}: {e}"))?;
        if uri.host().is_none_or(str::is_empty) {
            return Err("host is missing in URL".into());
        }
        let refresh = match &raw.refresh_interval {
            Some(r) => crate::config::duration(r).map_err(|e| format!("refresh_interval: {e}"))?,
            None => DEFAULT_REFRESH,
        };
        if refresh.is_zero() {
            return Err("refresh_interval: must be greater than 0".into());
        }
        let bearer = secret(
            raw.bearer_token,
            raw.bearer_token_file,
            base,
            "bearer_token",
        )?;
        let auth = match (raw.authorization, raw.basic_auth, bearer) {
            (Some(_), _, Some(_)) => return Err(
                "at most one of bearer_token, bearer_token_file & authorization must be configured"
                    .into(),
            ),
            (Some(_), Some(_), _) | (None, Some(_), Some(_)) => {
                return Err(
                    "at most one of basic_auth, bearer_token & authorization must be configured"
                        .into(),
                )
            }
            (Some(a), None, None) => {
                let kind = a
                    .kind
                    .filter(|k| !k.is_empty())
                    .unwrap_or_else(|| "Bearer".into());
                if kind.eq_ignore_ascii_case("basic") {
                    return Err(
                        "authorization type cannot be set to \"basic\", use \"basic_auth\" instead"
                            .into(),
                    );
                }
                let credentials = secret(
                    a.credentials,
                    a.credentials_file,
                    base,
                    "authorization.credentials",
                )?
                .unwrap_or(Secret::Inline(String::new()));
                Some(Auth::Header { kind, credentials })
            }
            (None, Some(b), None) => Some(Auth::Basic {
                username: b.username.unwrap_or_default(),
                password: secret(b.password, b.password_file, base, "basic_auth.password")?
                    .unwrap_or(Secret::Inline(String::new())),
            }),
            (None, None, Some(t)) => Some(Auth::Header {
                kind: "Bearer".into(),
                credentials: t,
            }),
            (None, None, None) => None,
        };
        let (tls, server_name) = match (&raw.tls_config, uri.scheme_str()) {
            (Some(t), _) => (Some(tls_config(t, base)?), t.server_name.clone()),
            (None, Some("https")) => (Some(tls_config(&RawTls::default(), base)?), None),
            (None, _) => (None, None),
        };
        Ok(Endpoint {
            url,
            refresh,
            client: Client {
                auth,
                tls,
                server_name,
                follow_redirects: raw.follow_redirects.unwrap_or(true),
            },
        })
    }
}

/// The client side of `tls_config`: the CA (else the system's roots), an optional client
/// certificate, the protocol versions, and `insecure_skip_verify`.
fn tls_config(t: &RawTls, base: &Path) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let min = t.min_version.as_deref().map(tls_version).transpose()?;
    let max = t.max_version.as_deref().map(tls_version).transpose()?;
    let versions: Vec<&'static rustls::SupportedProtocolVersion> =
        [&rustls::version::TLS12, &rustls::version::TLS13]
            .into_iter()
            .filter(|v| {
                let at = u16::from(v.version);
                min.is_none_or(|m| at >= u16::from(m.version))
                    && max.is_none_or(|m| at <= u16::from(m.version))
            })
            .collect();
    if versions.is_empty() {
        return Err("tls_config: min_version is above max_version".into());
    }
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| e.to_string())?;
    let builder = if t.insecure_skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerification(provider)))
    } else {
        let mut roots = RootCertStore::empty();
        match pem_source(&t.ca, &t.ca_file, base, "ca")? {
            Some(pem) => {
                for c in pem_certs(&pem, "ca")? {
                    roots.add(c).map_err(|e| format!("tls_config.ca: {e}"))?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
            }
        }
        builder.with_root_certificates(roots)
    };
    let cert = pem_source(&t.cert, &t.cert_file, base, "cert")?;
    let key = pem_source(&t.key, &t.key_file, base, "key")?;
    let config = match (cert, key) {
        (Some(cert), Some(key)) => {
            use rustls_pki_types::pem::PemObject;
            let certs = pem_certs(&cert, "cert")?;
            let key = rustls_pki_types::PrivateKeyDer::from_pem_slice(&key)
                .map_err(|e| format!("tls_config.key: {e}"))?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|e| format!("tls_config: {e}"))?
        }
        (None, None) => builder.with_no_client_auth(),
        _ => return Err("tls_config: a client certificate needs both cert and key".into()),
    };
    Ok(Arc::new(config))
}

/// `insecure_skip_verify`: any server certificate is accepted (signatures are still checked).
#[derive(Debug)]
struct NoVerification(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerification {
    fn verify_server_cert(
        &self,
        _: &rustls_pki_types::CertificateDer<'_>,
        _: &[rustls_pki_types::CertificateDer<'_>],
        _: &rustls_pki_types::ServerName<'_>,
        _: &[u8],
        _: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// One group of an HTTP SD answer (unknown fields ignored, as Go's JSON decoder does).
#[derive(Deserialize)]
struct Group {
    #[serde(default)]
    targets: Vec<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The groups of an answer's body, each labelled with the URL.
pub(crate) fn groups_of(url: &str, body: &[u8]) -> Result<Vec<StaticConfig>, String> {
    let groups: Vec<Option<Group>> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    groups
        .into_iter()
        .map(|g| {
            let mut g = g.ok_or("nil target group item found")?;
            for name in g.labels.keys() {
                crate::validate::label_name(name)?;
            }
            g.labels.insert("__meta_url".into(), url.to_owned());
            Ok(StaticConfig {
                targets: g.targets,
                labels: g.labels,
            })
        })
        .collect()
}

/// `^(?i:application/json(;\s*charset=("utf-8"|utf-8))?)$`, the content types Prometheus
/// accepts (after trimming).
fn json_content_type(ct: &str) -> bool {
    let ct = ct.trim();
    let Some(head) = ct.get(..16) else {
        return false;
    };
    if !head.eq_ignore_ascii_case("application/json") {
        return false;
    }
    let rest = &ct[16..];
    if rest.is_empty() {
        return true;
    }
    let Some(params) = rest.strip_prefix(';') else {
        return false;
    };
    let params = params.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let Some(charset) = params
        .get(..8)
        .filter(|h| h.eq_ignore_ascii_case("charset="))
    else {
        return false;
    };
    let value = &params[charset.len()..];
    value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("\"utf-8\"")
}

/// `X-Prometheus-Refresh-Interval-Seconds` as Go's `FormatFloat(s, 'f', -1, 64)` writes it.
fn seconds_header(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s}")
    }
}

impl Endpoint {
    /// One refresh: the groups the URL serves now.
    pub(crate) async fn fetch(&self) -> Result<Vec<StaticConfig>, String> {
        let mut uri: Uri = self.url.parse().map_err(|e| format!("{e}"))?;
        for _ in 0..=MAX_REDIRECTS {
            let (status, location, content_type, body) = self.get(&uri).await?;
            if status.is_redirection() && self.client.follow_redirects {
                if let Some(loc) = location {
                    uri = redirect(&uri, &loc)?;
                    continue;
                }
            }
            if status != StatusCode::OK {
                return Err(format!("server returned HTTP status {status}"));
            }
            if !json_content_type(&content_type) {
                return Err(format!("unsupported content type {content_type:?}"));
            }
            return groups_of(&self.url, &body);
        }
        Err(format!("stopped after {MAX_REDIRECTS} redirects"))
    }

    /// One GET: status, `Location`, `Content-Type` and body (within the file_sd size limit).
    async fn get(&self, uri: &Uri) -> Result<(StatusCode, Option<String>, String, Bytes), String> {
        let host = uri.host().ok_or("host is missing in URL")?.to_owned();
        let https = uri.scheme_str() == Some("https");
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        // An IPv6 literal comes bracketed in the URI.
        let bare = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let tcp = tokio::net::TcpStream::connect((bare.as_str(), port))
            .await
            .map_err(|e| format!("connect {host}:{port}: {e}"))?;
        let mut req = Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
            .header(
                hyper::header::HOST,
                uri.authority().map_or(host.as_str(), |a| a.as_str()),
            )
            .header(hyper::header::ACCEPT, "application/json")
            .header(
                hyper::header::USER_AGENT,
                concat!("target-allocator-rs/", env!("CARGO_PKG_VERSION")),
            )
            .header(
                "X-Prometheus-Refresh-Interval-Seconds",
                seconds_header(self.refresh),
            );
        match &self.client.auth {
            Some(Auth::Header { kind, credentials }) => {
                req = req.header(
                    hyper::header::AUTHORIZATION,
                    format!("{kind} {}", credentials.read()?),
                );
            }
            Some(Auth::Basic { username, password }) => {
                req = req.header(
                    hyper::header::AUTHORIZATION,
                    basic_auth_header(username, &password.read()?),
                );
            }
            None => {}
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let resp = if https {
            // An http URL redirected to https has no TLS settings of its own: system roots.
            let config = match self.client.tls.clone() {
                Some(c) => c,
                None => tls_config(&RawTls::default(), Path::new("/"))?,
            };
            let name = self.client.server_name.clone().unwrap_or(bare);
            let name = rustls_pki_types::ServerName::try_from(name)
                .map_err(|e| format!("tls server name: {e}"))?;
            let tls = tokio_rustls::TlsConnector::from(config)
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
            send(TokioIo::new(tls), req).await?
        } else {
            send(TokioIo::new(tcp), req).await?
        };
        let status = resp.status();
        let header = |h: hyper::header::HeaderName| {
            resp.headers()
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let location = header(hyper::header::LOCATION);
        let content_type = header(hyper::header::CONTENT_TYPE).unwrap_or_default();
        let limit = crate::limits::MAX_FILE_SD_BYTES as usize;
        let body = Limited::new(resp.into_body(), limit)
            .collect()
            .await
            .map_err(|e| format!("reading the answer (at most {limit} bytes): {e}"))?
            .to_bytes();
        Ok((status, location, content_type, body))
    }
}

async fn send<T>(
    io: T,
    req: Request<Empty<Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}

/// Where a redirect leads: an absolute URL, or a path on the same server.
fn redirect(from: &Uri, location: &str) -> Result<Uri, String> {
    let to: Uri = location
        .parse()
        .map_err(|e| format!("redirect to {location:?}: {e}"))?;
    if to.scheme().is_some() {
        return Ok(to);
    }
    let mut parts = from.clone().into_parts();
    parts.path_and_query = to.path_and_query().cloned();
    Uri::from_parts(parts).map_err(|e| format!("redirect to {location:?}: {e}"))
}

/// `Authorization: Basic ...` as Go's `SetBasicAuth` writes it (standard base64 with padding).
fn basic_auth_header(username: &str, password: &str) -> String {
    use base64::Engine as _;
    let pair = format!("{username}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

/// A fetcher's report: new groups of an entry.
struct Fetched {
    id: String,
    groups: Vec<StaticConfig>,
}

/// What the discovery loop sees of one fetcher thread: whether it has tried once, and how to
/// stop it.
struct Fetcher {
    tried: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
}

/// Every HTTP SD entry's last good groups, fed by one thread per entry. Entries are named by
/// their place in the configuration ([`entry_id`]): two jobs may ask the same URL with
/// different credentials or trust.
#[derive(Default)]
pub struct HttpSd {
    groups: BTreeMap<String, Vec<StaticConfig>>,
    fetchers: BTreeMap<String, Fetcher>,
    updates: Option<mpsc::Receiver<Fetched>>,
    sender: Option<mpsc::Sender<Fetched>>,
}

impl Drop for HttpSd {
    fn drop(&mut self) {
        for f in self.fetchers.values() {
            f.stop.store(true, Ordering::Relaxed);
        }
    }
}

impl HttpSd {
    /// Start a fetcher for the entry `id` (once).
    pub fn watch(&mut self, id: &str, e: &Endpoint) {
        if self.fetchers.contains_key(id) {
            return;
        }
        if self.sender.is_none() {
            let (tx, rx) = mpsc::channel();
            self.sender = Some(tx);
            self.updates = Some(rx);
        }
        let tried = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let run = Run {
            id: id.to_owned(),
            endpoint: e.clone(),
            tx: self.sender.clone().expect("set above"),
            stop: stop.clone(),
            tried: tried.clone(),
        };
        if let Err(err) = std::thread::Builder::new()
            .name("http-sd".into())
            .spawn(move || run.run())
        {
            tracing::error!(url = %e.url, error = %err, "cannot start an HTTP SD fetcher");
            tried.store(true, Ordering::Release);
        }
        self.fetchers.insert(id.to_owned(), Fetcher { tried, stop });
    }

    /// Take in what the fetchers found; true when any groups changed. Never blocks.
    pub fn poll(&mut self) -> bool {
        let mut changed = false;
        if let Some(rx) = &self.updates {
            while let Ok(f) = rx.try_recv() {
                // A late report of a fetcher stopped by `retain` is dropped.
                if self.fetchers.contains_key(&f.id) {
                    self.groups.insert(f.id, f.groups);
                    changed = true;
                }
            }
        }
        changed
    }

    /// Stop the fetchers of entries not in `keep` (their resource is gone or changed) and
    /// forget their groups.
    pub fn retain(&mut self, keep: &std::collections::BTreeSet<String>) {
        self.fetchers.retain(|id, f| {
            let kept = keep.contains(id);
            if !kept {
                f.stop.store(true, Ordering::Relaxed);
            }
            kept
        });
        self.groups.retain(|id, _| keep.contains(id));
    }

    /// Whether every fetcher has tried once (read before [`HttpSd::poll`], so what a fetcher
    /// sent before saying it tried is taken in).
    pub fn all_tried(&self) -> bool {
        self.fetchers
            .values()
            .all(|f| f.tried.load(Ordering::Acquire))
    }

    /// The last good groups of the entry `id`.
    pub fn groups(&self, id: &str) -> &[StaticConfig] {
        self.groups.get(id).map_or(&[], Vec::as_slice)
    }
}

/// The name of the `k`th `http_sd_configs` entry of a job.
pub fn entry_id(job: &str, k: usize) -> String {
    format!("{job}/http_sd_configs[{k}]")
}

/// One fetcher thread.
struct Run {
    id: String,
    endpoint: Endpoint,
    tx: mpsc::Sender<Fetched>,
    stop: Arc<AtomicBool>,
    tried: Arc<AtomicBool>,
}

impl Run {
    fn run(self) {
        let rt = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt,
            Err(err) => {
                tracing::error!(url = %self.endpoint.url, error = %err, "cannot start an HTTP SD fetcher's runtime");
                self.tried.store(true, Ordering::Release);
                return;
            }
        };
        let e = &self.endpoint;
        let mut last: Option<u64> = None;
        while !self.stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            // The refresh interval bounds the whole request, as Prometheus sets the client's
            // timeout to it.
            let refresh = async {
                tokio::time::timeout(e.refresh, e.fetch())
                    .await
                    .unwrap_or_else(|_| Err(format!("no complete answer within {:?}", e.refresh)))
            };
            // A panic in a refresh (a bug) is reported like a failed refresh, not the end of
            // discovery for this URL.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(refresh)))
                    .unwrap_or_else(|_| Err("the refresh panicked (a bug)".into()));
            match result {
                Ok(groups) => {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    for g in &groups {
                        g.targets.hash(&mut h);
                        g.labels.hash(&mut h);
                    }
                    let hash = h.finish();
                    if last != Some(hash) {
                        last = Some(hash);
                        tracing::info!(url = %e.url, groups = groups.len(), "HTTP SD answer taken in");
                        if self
                            .tx
                            .send(Fetched {
                                id: self.id.clone(),
                                groups,
                            })
                            .is_err()
                        {
                            return;
                        }
                    }
                }
                Err(err) => {
                    tracing::warn!(url = %e.url, error = %err, "HTTP SD refresh failed; keeping the previous targets");
                }
            }
            self.tried.store(true, Ordering::Release);
            while started.elapsed() < e.refresh && !self.stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100).min(e.refresh));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types_as_prometheus_accepts_them() {
        for ok in [
            "application/json",
            "Application/JSON",
            " application/json ",
            "application/json; charset=utf-8",
            "application/json;charset=\"utf-8\"",
            "application/json;  CHARSET=UTF-8",
        ] {
            assert!(json_content_type(ok), "{ok:?} refused");
        }
        for bad in [
            "",
            "text/plain",
            "application/jsonx",
            "application/json; charset=latin1",
            "application/json, text/plain",
            "application/json;",
        ] {
            assert!(!json_content_type(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn entries_are_checked_as_prometheus_loader_checks_them() {
        let parse = |y: &str| Endpoint::parse(&serde_yaml::from_str(y).unwrap(), Path::new("/etc"));
        assert_eq!(
            parse("{refresh_interval: 1m}").unwrap_err(),
            "URL is missing"
        );
        assert_eq!(
            parse("{url: 'ftp://x/y'}").unwrap_err(),
            "URL scheme must be 'http' or 'https'"
        );
        assert!(parse("{url: 'http://sd/targets', oauth2: {client_id: a}}")
            .unwrap_err()
            .contains("unknown field `oauth2`"));
        assert!(
            parse("{url: 'http://sd', bearer_token: a, authorization: {credentials: b}}")
                .unwrap_err()
                .contains("at most one of")
        );
        let e =
            parse("{url: 'http://sd/t', refresh_interval: 30s, bearer_token_file: tok}").unwrap();
        assert_eq!(e.refresh, Duration::from_secs(30));
        assert!(
            matches!(e.client.auth, Some(Auth::Header { credentials: Secret::File(ref p), .. }) if p == Path::new("/etc/tok"))
        );
        assert_eq!(
            parse("{url: 'http://sd/t'}").unwrap().refresh,
            DEFAULT_REFRESH
        );
    }

    #[test]
    fn answers_become_groups_labelled_with_the_url() {
        let g = groups_of(
            "http://sd/t",
            br#"[{"targets":["a:1"],"labels":{"x":"1"},"extra":0},{"targets":[]}]"#,
        )
        .unwrap();
        assert_eq!(g.len(), 2);
        assert_eq!(g[0].labels["__meta_url"], "http://sd/t");
        assert_eq!(g[0].labels["x"], "1");
        assert_eq!(g[1].labels.len(), 1);
        assert_eq!(
            groups_of("u", b"[null]").unwrap_err(),
            "nil target group item found"
        );
        assert!(groups_of("u", br#"{"targets":[]}"#).is_err());
    }

    #[test]
    fn headers_are_written_as_go_writes_them() {
        assert_eq!(seconds_header(Duration::from_secs(60)), "60");
        assert_eq!(seconds_header(Duration::from_millis(1500)), "1.5");
        assert_eq!(
            basic_auth_header("admin", "hunter2"),
            "Basic YWRtaW46aHVudGVyMg=="
        );
        assert_eq!(basic_auth_header("a", ""), "Basic YTo=");
        assert_eq!(basic_auth_header("", ""), "Basic Og==");
    }
}
