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
use axum::routing::get;
use axum::{Extension, Json, Router};
use serde_json::{json, Map, Value};

use crate::state::{Shared, View};

/// Whether a request came over the TLS listener (secrets are shown only there).
#[derive(Clone, Copy)]
struct Secure(bool);

/// The routes; `secure` for the HTTPS listener.
pub fn router(shared: Arc<Shared>, secure: bool) -> Router {
    Router::new()
        .route("/", get(dashboard))
        .route("/jobs", get(jobs))
        .route("/jobs/{*rest}", get(job_targets))
        .route("/scrape_configs", get(scrape_configs))
        .route("/livez", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .layer(middleware::from_fn_with_state(shared.clone(), timed))
        .layer(Extension(Secure(secure)))
        .with_state(shared)
}

/// `http_duration_seconds{path}` for every route (the route pattern, not the raw path).
async fn timed(State(s): State<Arc<Shared>>, req: Request, next: Next) -> Response {
    let path = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let start = Instant::now();
    let resp = next.run(req).await;
    s.metrics.http(&path).observe(start.elapsed().as_secs_f64());
    resp
}

/// Query-unescape (`+` is a space), as Go's `url.QueryUnescape`; invalid escapes stay as written.
pub fn query_unescape(s: &str) -> String {
    let b = s.as_bytes();
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn link(job: &str) -> String {
    let mut s = String::from("/jobs/");
    for b in job.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            s.push(b as char);
        } else if b == b' ' {
            s.push('+');
        } else {
            let _ = write!(s, "%{b:02X}");
        }
    }
    s.push_str("/targets");
    s
}

async fn jobs(State(s): State<Arc<Shared>>) -> Json<Value> {
    let v = s.view();
    let out: Map<String, Value> = v
        .jobs
        .iter()
        .filter(|(_, ts)| !ts.is_empty())
        .map(|(j, _)| (j.clone(), json!({ "_link": link(j) })))
        .collect();
    Json(Value::Object(out))
}

async fn job_targets(
    State(s): State<Arc<Shared>>,
    uri: Uri,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let raw = uri.path().trim_start_matches("/jobs/");
    let Some(job) = raw.strip_suffix("/targets") else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let job = query_unescape(job);
    let v = s.view();
    let resp = match q.get("collector_id") {
        // Unknown job or collector: an empty list with 200, never 404.
        Some(c) => (
            [(header::CONTENT_TYPE, "application/json")],
            v.sd_of(&job, c),
        )
            .into_response(),
        None if v.jobs.contains_key(&job) => {
            let body = v.answers.job_targets(&job, || all_targets(&v, &job));
            ([(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        None => (
            [(header::CONTENT_TYPE, "application/json")],
            all_targets(&v, &job),
        )
            .into_response(),
    };
    resp
}

/// `{"<collector>": {"_link": ..., "targets": [...]}}` for every collector, assembled from the
/// serialized per-collector answers.
fn all_targets(v: &View, job: &str) -> Bytes {
    let mut out = Vec::from(&b"{"[..]);
    for (i, (c, _)) in v.collectors.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        let link = format!("{}?collector_id={c}", link(job));
        out.extend_from_slice(&serde_json::to_vec(c).expect("a string"));
        out.extend_from_slice(b":{\"_link\":");
        out.extend_from_slice(&serde_json::to_vec(&link).expect("a string"));
        out.extend_from_slice(b",\"targets\":");
        out.extend_from_slice(&v.sd_of(job, c));
        out.push(b'}');
    }
    out.push(b'}');
    Bytes::from(out)
}

/// The large answers of one view, built by the first request that needs them and shared by every
/// later one: a client that reads slowly holds a reference, not a copy.
#[derive(Default)]
pub struct Answers {
    /// `/jobs/{job}/targets` without `collector_id`, per known job.
    job_targets: Mutex<HashMap<String, Bytes>>,
    /// `/scrape_configs` as JSON: redacted, and with secrets shown.
    scrape_configs: [OnceLock<Bytes>; 2],
}

impl Answers {
    fn job_targets(&self, job: &str, build: impl FnOnce() -> Bytes) -> Bytes {
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

    fn scrape_configs(&self, secrets_shown: bool, build: impl FnOnce() -> Bytes) -> Bytes {
        self.scrape_configs[usize::from(secrets_shown)]
            .get_or_init(build)
            .clone()
    }
}

/// Keys whose values Prometheus treats as secrets.
const SECRET_KEYS: [&str; 5] = [
    "password",
    "credentials",
    "bearer_token",
    "client_secret",
    "key",
];

fn redact(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if SECRET_KEYS.contains(&k.as_str()) && x.as_str().is_some_and(|s| !s.is_empty()) {
                    *x = Value::String("<secret>".into());
                } else {
                    redact(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(redact),
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
            redact(&mut body);
        }
        body
    };
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|a| a.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    if wants_html {
        let pretty = serde_json::to_string_pretty(&body()).expect("plain data");
        return Html(format!(
            "<!doctype html><html><head><meta charset=utf-8><title>Scrape configs</title></head>\
             <body><h1>Scrape configs</h1><pre>{}</pre></body></html>",
            esc(&pretty)
        ))
        .into_response();
    }
    let json = v.answers.scrape_configs(secrets_shown, || {
        Bytes::from(serde_json::to_vec(&body()).expect("plain data"))
    });
    ([(header::CONTENT_TYPE, "application/json")], json).into_response()
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    match s.not_ready() {
        None => (StatusCode::OK, "ok").into_response(),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why).into_response(),
    }
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let body = s.metrics.encode();
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

fn esc(s: &str) -> String {
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
async fn dashboard(State(s): State<Arc<Shared>>) -> Html<String> {
    let v = s.view();
    let targets: usize = v.jobs.values().map(Vec::len).sum();
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
    // One pass over the targets: each collector's jobs and (the first few of) its targets.
    const LISTED: usize = 200;
    let mut per: HashMap<&str, Owned<'_>> = HashMap::new();
    for (job, ts) in &v.jobs {
        for (t, owner) in ts {
            if let Some(owner) = owner {
                let entry = per.entry(owner.as_str()).or_default();
                entry.jobs.insert(job.as_str());
                if entry.listed.len() < LISTED {
                    entry.listed.push((job.as_str(), t.address.as_str()));
                }
            }
        }
    }
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
    for (job, ts) in &v.jobs {
        let _ = write!(
            h,
            "<tr><td><a href=\"{}\">{}</a></td><td>{}</td></tr>",
            esc(&link(job)),
            esc(job),
            ts.len()
        );
    }
    h.push_str("</table><h2>Targets by collector</h2>");
    for (name, n) in &v.collectors {
        let _ = write!(h, "<details><summary>{}</summary><ul>", esc(name));
        for (job, address) in per.get(name.as_str()).map_or(&[][..], |p| &p.listed[..]) {
            let _ = write!(h, "<li>{} — {}</li>", esc(job), esc(address));
        }
        if *n > LISTED {
            let _ = write!(h, "<li>… and {} more (see the JSON API)</li>", n - LISTED);
        }
        h.push_str("</ul></details>");
    }
    h.push_str("</body></html>");
    Html(h)
}
