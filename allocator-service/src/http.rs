//! The Go allocator's routes and JSON shapes (DESIGN.md §8.1), and the dashboard.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::body::Bytes;
use parking_lot::Mutex;

use axum::extract::{MatchedPath, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use serde_json::{json, Map, Value};

use crate::answer::{accepts_gzip, Answer, Part};
use crate::debug_pages;
use crate::state::{Shared, View};

/// Whether a request came over the TLS listener (secrets are shown only there).
#[derive(Clone, Copy)]
struct Secure(bool);

/// The routes; `secure` for the HTTPS listener.
pub fn router(shared: Arc<Shared>, secure: bool) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/debug/collector", get(debug_pages::collector_page))
        .route("/debug/job", get(debug_pages::job_page))
        .route("/debug/target", get(debug_pages::target_page))
        .route("/debug/targets", get(debug_pages::targets_page))
        .route(
            "/debug/scrape_configs",
            get(debug_pages::scrape_configs_page),
        )
        .route("/debug/jobs", get(debug_pages::jobs_page))
        .route("/jobs", get(jobs))
        .route("/jobs/{*rest}", get(job_targets))
        .route("/scrape_configs", get(scrape_configs))
        .route("/digest", get(digest))
        .route("/explain", get(explain))
        .route("/loads", post(loads))
        .route("/livez", get(|| async { StatusCode::OK }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(shared.clone(), timed))
        .layer(Extension(Secure(secure)))
        .with_state(shared)
}

/// `http_duration_seconds{path}` for every route (the route pattern, not the raw path).
async fn timed(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    // The Go allocator's gin route patterns (`c.FullPath()`, empty when nothing matched).
    let path = match req.extensions().get::<MatchedPath>().map(|p| p.as_str()) {
        Some("/jobs/{*rest}") if req.uri().path().ends_with("/targets") => "/jobs/:job_id/targets",
        Some("/jobs/{*rest}") | None => "",
        Some(p) => p,
    }
    .to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    s.metrics.http(&path).observe(start.elapsed().as_secs_f64());
    resp
}

/// Query-unescape (`+` is a space), as Go's `url.QueryUnescape`; invalid escapes stay as written.
pub fn query_unescape(s: &str) -> String {
    let bytes = unescape_bytes(s, false).expect("lenient unescaping does not fail");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Go's `url.QueryUnescape`, failing where it fails: a `%` not followed by two hex digits, or
/// bytes that are not UTF-8 (Go keeps those; a Rust string cannot).
pub fn query_unescape_strict(s: &str) -> Option<String> {
    String::from_utf8(unescape_bytes(s, true)?).ok()
}

/// `+` as a space and `%XX` as its byte; a `%` without two hex digits after it fails when
/// `strict`, and is kept as written otherwise.
fn unescape_bytes(s: &str, strict: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let hex = |i: usize| {
        b.get(i)
            .and_then(|&c| (c as char).to_digit(16))
            .map(|d| d as u8)
    };
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(i + 1), hex(i + 2)) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ if strict => return None,
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    Some(out)
}

/// Go's `url.QueryEscape`: letters, digits and `-_.~` as they are, a space as `+`, every other
/// byte `%XX`.
pub fn query_escape(text: &str) -> String {
    let mut s = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(b as char);
        } else if b == b' ' {
            s.push('+');
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s
}

fn link(job: &str) -> String {
    format!("/jobs/{}/targets", query_escape(job))
}

/// How long a `POST /loads` body may take to arrive.
const PUSH_BODY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `POST /loads`: observed series counts (see [`crate::loads`]); 202 with the number taken, 400
/// naming what is wrong with the body. Matching to targets happens in the allocation loop
/// (unknown targets are counted in `load_observations_total{result="unknown"}`).
async fn loads(State(s): State<Arc<Shared>>, req: Request) -> Response {
    let text =
        |code, msg: String| (code, [(header::CONTENT_TYPE, "text/plain")], msg).into_response();
    if !s.loads.push_enabled() {
        return text(
            StatusCode::NOT_FOUND,
            "pushing observed load is off (observed_load.push)\n".into(),
        );
    }
    let limit = crate::loads::MAX_PUSH_BYTES;
    let body = match tokio::time::timeout(
        PUSH_BODY_TIMEOUT,
        axum::body::to_bytes(req.into_body(), limit),
    )
    .await
    {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {limit} bytes or unreadable: {e}\n"),
            )
        }
        Err(_) => {
            return text(
                StatusCode::REQUEST_TIMEOUT,
                format!("the body did not arrive within {PUSH_BODY_TIMEOUT:?}\n"),
            )
        }
    };
    match crate::loads::parse_push(&body) {
        Ok(obs) => {
            let n = obs.len();
            match s.loads.put(obs) {
                Ok(()) => {
                    (StatusCode::ACCEPTED, axum::Json(json!({ "accepted": n }))).into_response()
                }
                Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{e}\n")),
            }
        }
        Err(e) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    }
}

/// What gin answers for a path no route matches.
async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(header::CONTENT_TYPE, "text/plain")],
        "404 page not found",
    )
        .into_response()
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"))
}

async fn jobs(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let v = s.view();
    if !wants_html(&headers) {
        let answer = v.answers.jobs.get_or_init(|| {
            let out: Map<String, Value> = v
                .jobs
                .iter()
                .filter(|(_, &n)| n > 0)
                .map(|(j, _)| (j.clone(), json!({ "_link": link(j) })))
                .collect();
            Answer::new(Bytes::from(serde_json::to_vec(&out).expect("plain data")))
        });
        return answer.respond(accepts_gzip(&headers), JSON);
    }
    let mut h = String::from(
        "<!doctype html><html><head><meta charset=utf-8><title>Jobs</title></head><body>\
         <h1>Jobs</h1><table><tr><th>job</th><th>targets</th></tr>",
    );
    for (job, n) in v.jobs.iter().filter(|(_, &n)| n > 0) {
        let _ = write!(
            h,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
            esc(&link(job)),
            esc(job),
            n
        );
    }
    h.push_str("</table></body></html>");
    html_page(h)
}

/// An HTML answer, with `nosniff` as the Go allocator's HTML handlers send it.
fn html_page(h: String) -> Response {
    ([(header::X_CONTENT_TYPE_OPTIONS, "nosniff")], Html(h)).into_response()
}

async fn job_targets(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    Query(q): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Response {
    let raw = uri.path().trim_start_matches("/jobs/");
    // One path segment, as the Go route `/jobs/:job_id/targets` matches: a slash in a job name
    // arrives escaped (`%2F`, as `/jobs` links it).
    let Some(job) = raw.strip_suffix("/targets").filter(|j| !j.contains('/')) else {
        return not_found().await;
    };
    let job = query_unescape(job);
    let v = s.view();
    // A repeated `collector_id`: the first counts, as in Go.
    let collector = q.iter().find(|(k, _)| k == "collector_id").map(|(_, c)| c);
    let gzip = accepts_gzip(&headers);
    match collector {
        // Unknown job or collector: an empty list with 200, never 404.
        Some(c) => v.sd_of(&job, c).respond(gzip, JSON),
        None if v.jobs.contains_key(&job) => v
            .answers
            .job_targets(&job, || all_targets(&v, &job))
            .respond(gzip, JSON),
        None => all_targets(&v, &job).respond(gzip, JSON),
    }
}

/// The content type of every JSON answer.
const JSON: &str = "application/json";

/// The fields prometheus/common and Prometheus' service discovery declare as `config.Secret`,
/// by the key of the object that holds them: redaction follows the Go types, never key names
/// alone (an `oauth2.endpoint_params` entry named `password` is an ordinary string).
fn secret_field(parent: &str, key: &str) -> bool {
    match parent {
        "basic_auth" => key == "password",
        "authorization" => key == "credentials",
        "oauth2" => matches!(key, "client_secret" | "client_certificate_key"),
        "tls_config" => key == "key",
        // HTTPClientConfig.bearer_token, inline in a scrape config and in SD configs.
        "scrape_config" => key == "bearer_token",
        sd if sd.ends_with("_sd_configs") => {
            key == "bearer_token"
                || match sd {
                    "ec2_sd_configs"
                    | "lightsail_sd_configs"
                    | "scaleway_sd_configs"
                    | "outscale_sd_configs"
                    | "aws_sd_configs" => key == "secret_key",
                    "consul_sd_configs" => matches!(key, "token" | "password"),
                    "openstack_sd_configs" => {
                        matches!(key, "password" | "application_credential_secret")
                    }
                    "ovhcloud_sd_configs" => matches!(key, "application_secret" | "consumer_key"),
                    "stackit_sd_configs" => matches!(key, "service_account_key" | "private_key"),
                    "marathon_sd_configs" => key == "auth_token",
                    "uyuni_sd_configs" => key == "password",
                    "azure_sd_configs" => key == "client_secret",
                    "oci_sd_configs" => key == "key_passphrase",
                    _ => false,
                }
        }
        _ => false,
    }
}

/// `{"<collector>": {"_link": ..., "targets": [...]}}` for every collector, made of the
/// per-collector answers' parts (shared, not copied: at a million targets this answer is
/// hundreds of megabytes of JSON, and each view keeps it once asked for) between the few bytes
/// around them.
fn all_targets(v: &View, job: &str) -> Arc<Answer> {
    let mut parts = Vec::new();
    let mut out = Vec::from(&b"{"[..]);
    for (i, (c, _)) in v.collectors.iter().enumerate() {
        if i > 0 {
            out.extend_from_slice(b"},");
        }
        let link = format!("{}?collector_id={c}", link(job));
        out.extend_from_slice(&serde_json::to_vec(c).expect("a string"));
        out.extend_from_slice(b":{\"_link\":");
        out.extend_from_slice(&serde_json::to_vec(&link).expect("a string"));
        out.extend_from_slice(b",\"targets\":");
        parts.push(Part::new(Bytes::from(std::mem::take(&mut out))));
        parts.extend(v.sd_of(job, c).parts().iter().cloned());
    }
    if !v.collectors.is_empty() {
        out.push(b'}');
    }
    out.push(b'}');
    parts.push(Part::new(Bytes::from(out)));
    Answer::concat(parts)
}

/// The large answers of one view, built by the first request that needs them and shared by every
/// later one (their gzip forms too): a client that reads slowly holds a reference, not a copy.
#[derive(Default)]
pub struct Answers {
    /// `/jobs/{job}/targets` without `collector_id`, per known job.
    job_targets: Mutex<HashMap<String, Arc<Answer>>>,
    /// `/scrape_configs` as JSON: redacted, and with secrets shown.
    scrape_configs: [OnceLock<Arc<Answer>>; 2],
    /// `/jobs` as JSON.
    jobs: OnceLock<Arc<Answer>>,
}

impl Answers {
    fn job_targets(&self, job: &str, build: impl FnOnce() -> Arc<Answer>) -> Arc<Answer> {
        if let Some(b) = self.job_targets.lock().get(job) {
            return b.clone();
        }
        // Built outside the lock; two first requests may both build it, the answer is the same.
        let b = build();
        self.job_targets
            .lock()
            .entry(job.to_owned())
            .or_insert(b)
            .clone()
    }

    fn scrape_configs(
        &self,
        secrets_shown: bool,
        build: impl FnOnce() -> Arc<Answer>,
    ) -> Arc<Answer> {
        self.scrape_configs[usize::from(secrets_shown)]
            .get_or_init(build)
            .clone()
    }
}

/// A non-empty secret string becomes `<secret>`, as `config.Secret.MarshalYAML` writes it.
fn hide(v: &mut Value) {
    if v.as_str().is_some_and(|s| !s.is_empty()) {
        *v = Value::String("<secret>".into());
    }
}

/// Redact the `Secret` fields of one job's `/scrape_configs` entry, as the Go allocator serves
/// it without mTLS (`<secret>` for every non-empty secret).
pub fn redact_scrape_config(job: &mut Value) {
    redact(job, "scrape_config");
}

/// Redact the `Secret` fields of a value found under `parent`.
fn redact(v: &mut Value, parent: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if secret_field(parent, k) {
                    hide(x);
                    continue;
                }
                match k.as_str() {
                    // `http_headers: {Name: {values, secrets, files}}`: `secrets` are Secrets.
                    "http_headers" => {
                        for header in x.as_object_mut().into_iter().flat_map(|h| h.values_mut()) {
                            if let Some(secrets) = header.get_mut("secrets") {
                                secrets.as_array_mut().into_iter().flatten().for_each(hide);
                            }
                        }
                    }
                    // `ProxyHeader` is map[string][]Secret.
                    "proxy_connect_header" => {
                        for values in x.as_object_mut().into_iter().flat_map(|h| h.values_mut()) {
                            values.as_array_mut().into_iter().flatten().for_each(hide);
                        }
                    }
                    // map[string]string: nothing inside is a Secret.
                    "endpoint_params" | "params" | "labels" => {}
                    _ => redact(x, k),
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| redact(x, parent)),
        _ => {}
    }
}

async fn scrape_configs(
    State(s): State<Arc<Shared>>,
    Extension(Secure(secure)): Extension<Secure>,
    headers: HeaderMap,
) -> Response {
    let v = s.view();
    let secrets_shown = secure || s.allow_insecure_secrets;
    let body = || {
        let mut body = Value::Object(v.scrape_configs.clone());
        if !secrets_shown {
            for job in body.as_object_mut().expect("an object").values_mut() {
                redact_scrape_config(job);
            }
        }
        body
    };
    if wants_html(&headers) {
        // Redacted whatever the connection, as the Go allocator's HTML page is: a page is for
        // a browser, the collector reads the JSON.
        let mut redacted = Value::Object(v.scrape_configs.clone());
        for job in redacted.as_object_mut().expect("an object").values_mut() {
            redact_scrape_config(job);
        }
        let pretty = serde_json::to_string_pretty(&redacted).expect("plain data");
        return html_page(format!(
            "<!doctype html><html><head><meta charset=utf-8><title>Scrape configs</title></head>\
             <body><h1>Scrape configs</h1><pre>{}</pre></body></html>",
            esc(&pretty)
        ));
    }
    v.answers
        .scrape_configs(secrets_shown, || {
            Answer::new(Bytes::from(
                serde_json::to_vec(&body()).expect("plain data"),
            ))
        })
        .respond(accepts_gzip(&headers), JSON)
}

/// The digest of the published assignment, with what it covers: replicas (or a collector that
/// computes the same pure-function strategy itself) compare it to show they agree.
async fn digest(State(s): State<Arc<Shared>>) -> Response {
    let v = s.view();
    let assigned: usize = v.collectors.iter().map(|c| c.1).sum();
    axum::Json(serde_json::json!({
        "digest": format!("{:016x}", v.digest),
        "strategy": v.strategy,
        "collectors": v.collectors.len(),
        "assigned": assigned,
        "unassigned": v.unassigned,
        "ready": v.ready,
    }))
    .into_response()
}

/// `/explain?job=<job>&address=<__address__>` (every target of the job at that address) or
/// `?key=<16 hex digits>`: the core's account of why each is on its collector or has none.
async fn explain(State(s): State<Arc<Shared>>, Query(q): Query<Vec<(String, String)>>) -> Response {
    let param = |name: &str| q.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let bad = |why: &str| (StatusCode::BAD_REQUEST, format!("{why}\n")).into_response();
    let rx = match (param("key"), param("job"), param("address")) {
        (Some(k), None, None) => match u64::from_str_radix(k, 16) {
            Ok(k) if k != 0 => s.explain.ask(vec![allocator_core::TargetKey(k)]),
            _ => return bad("key: expected 16 hex digits"),
        },
        // The loop finds the job's targets at that address (it holds the targets).
        (None, Some(job), Some(address)) => s.explain.ask_at(job.to_owned(), address.to_owned()),
        _ => return bad("ask with ?job=<job>&address=<__address__> or ?key=<target key>"),
    };
    let Ok(Ok(out)) = tokio::time::timeout(std::time::Duration::from_secs(10), rx).await else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "the allocation loop did not answer within 10 s\n",
        )
            .into_response();
    };
    if out.is_empty() {
        return (
            StatusCode::NOT_FOUND,
            "no such target in the published view\n",
        )
            .into_response();
    }
    axum::Json(out).into_response()
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    // Ready: status only, no body, as the Go allocator answers. Not ready: the reasons, for
    // whoever looks (the Go allocator's 503 has no body; probes read only the status).
    match s.not_ready() {
        None => StatusCode::OK.into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics(State(s): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    // Compressed when the client accepts it, as the Go allocator's promhttp handler does.
    Answer::new(Bytes::from(s.metrics.encode())).respond(
        accepts_gzip(&headers),
        "text/plain; version=0.0.4; charset=utf-8; escaping=underscores",
    )
}

/// Escape text for HTML (element content and double-quoted attribute values).
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// What the dashboard shows of one collector: its jobs and the first of its targets.
#[derive(Default)]
struct Owned<'a> {
    jobs: std::collections::BTreeSet<&'a str>,
    listed: Vec<(&'a str, &'a str)>,
}

/// Server-rendered dashboard: totals, per-collector bar chart (inline SVG), jobs, and each
/// collector's targets. No JavaScript.
async fn dashboard(State(s): State<Arc<Shared>>) -> Response {
    let v = s.view();
    let targets: usize = v.jobs.values().sum();
    let mut h = String::new();
    let _ = write!(
        h,
        "<!doctype html><html><head><meta charset=utf-8><title>Target Allocator</title>\
         <style>body{{font-family:sans-serif;margin:2em}}td,th{{padding:2px 8px;text-align:left}}</style></head><body>\
         <h1>Target Allocator</h1><p>strategy <b id=strategy>{}</b></p>\
         <table><tr><th>scrape configs</th><td id=scrape-configs>{}</td></tr>\
         <tr><th>jobs</th><td id=jobs>{}</td></tr><tr><th>targets</th><td id=targets>{targets}</td></tr>\
         <tr><th>collectors</th><td id=collectors>{}</td></tr><tr><th>unassigned</th><td id=unassigned>{}</td></tr>\
         <tr><th>moves</th><td id=moves>{}</td></tr></table>",
        esc(&v.strategy),
        v.scrape_configs.len(),
        v.jobs.len(),
        v.collectors.len(),
        v.unassigned,
        v.moves_total
    );
    // The Go allocator's index (its navigation and its two tables), so that every link a Go
    // user follows from `/` leads where it did.
    h.push_str("<h2>Debug pages</h2>");
    debug_pages::nav(&mut h);
    debug_pages::index_tables(&mut h, &v);
    let max = v.collectors.iter().map(|c| c.1).max().unwrap_or(0).max(1);
    let bar_h = 22;
    let _ = write!(
        h,
        "<h2>Targets per collector</h2><svg id=distribution width=640 height={} role=img>",
        v.collectors.len() * bar_h + 4
    );
    for (i, (name, n)) in v.collectors.iter().enumerate() {
        let w = 400 * n / max;
        let y = i * bar_h;
        let _ = write!(
            h,
            "<text x=0 y={} font-size=12>{}</text><rect x=180 y={} width={w} height={} fill=#4c78a8></rect>\
             <text class=count data-collector=\"{}\" x={} y={} font-size=12>{n}</text>",
            y + 15,
            esc(name),
            y + 3,
            bar_h - 6,
            esc(name),
            185 + w,
            y + 15
        );
    }
    // Each collector's jobs from the answers' pairs, and the first of its targets as the
    // loop listed them for this view (at most 200 per collector, 2,000 in all): at a million
    // targets it stays a page, and the JSON API has the rest.
    let mut per: HashMap<&str, Owned<'_>> = HashMap::new();
    for (job, c) in v.sd.keys() {
        per.entry(c.as_str()).or_default().jobs.insert(job.as_str());
    }
    for (c, first) in &v.first {
        per.entry(c.as_str())
            .or_default()
            .listed
            .extend(first.iter().map(|(j, a)| (&**j, &**a)));
    }
    let listed = crate::state::listed_per_collector(v.collectors.len());
    h.push_str("</svg><h2>Collectors</h2><table id=collector-table><tr><th>collector</th><th>status</th><th>jobs</th><th>targets</th></tr>");
    for (name, n) in &v.collectors {
        let jobs = per.get(name.as_str()).map_or(0, |p| p.jobs.len());
        let _ = write!(
            h,
            "<tr><td>{}</td><td>ready</td><td>{jobs}</td><td class=targets>{n}</td></tr>",
            esc(name)
        );
    }
    h.push_str("</table><h2>Jobs</h2><table><tr><th>job</th><th>targets</th></tr>");
    for (job, n) in &v.jobs {
        let _ = write!(
            h,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
            esc(&link(job)),
            esc(job),
            n
        );
    }
    h.push_str("</table><h2>Targets by collector</h2>");
    for (name, n) in &v.collectors {
        let _ = write!(h, "<details><summary>{}</summary><ul>", esc(name));
        for (job, address) in per.get(name.as_str()).map_or(&[][..], |p| &p.listed[..]) {
            let _ = write!(h, "<li>{} — {}</li>", esc(job), esc(address));
        }
        if *n > listed {
            let _ = write!(
                h,
                "<li class=more>… and {} more (the page lists {listed} per collector; \
                 see <code>/jobs/&lt;job&gt;/targets?collector_id={}</code>)</li>",
                n - listed,
                esc(name)
            );
        }
        h.push_str("</ul></details>");
    }
    h.push_str("</body></html>");
    // `text/html` without a charset, as the Go allocator's index (the page declares UTF-8).
    ([(header::CONTENT_TYPE, "text/html")], h).into_response()
}
