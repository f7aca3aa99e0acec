//! The service against the Go Target Allocator's own answers: every golden under
//! `tests/conformance/golden/` was written by `testdata/conformance-gen` running the Operator's
//! config loader, discoverer, allocator and HTTP server on `tests/conformance/cases/<case>/`
//! (`make conformance` regenerates them). Each route is requested from our service running the
//! same case and compared on everything a receiver (or a person with curl) reads; the
//! deliberate differences are listed in the README's compatibility table and are the only
//! things skipped here.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;
mod common;
#[path = "conformance/pages.rs"]
mod pages;

#[derive(Deserialize)]
struct Golden {
    operator_commit: String,
    ring: String,
    routes: Vec<Route>,
    /// The HTML debug pages (`/` and `/debug/...`) as data.
    #[serde(default)]
    pages: Vec<pages::Page>,
}

#[derive(Deserialize)]
struct Route {
    path: String,
    #[serde(default)]
    accept: String,
    status: u16,
    content_type: String,
    body: String,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance")
}

fn parse(what: &str, body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {body}"))
}

/// An HTTP SD array as a multiset (the Go allocator lists a collector's targets in map order).
fn groups(v: &Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|g| g.to_string())
        .collect();
    out.sort();
    out
}

/// Compare one job's scrape config: every key the Go allocator writes must be ours with the
/// same value (a key left out would be read by the receiver as its own default, not as the
/// global setting the Go allocator applied), and ours has no other key.
fn compare_scrape_config(job: &str, go: &Value, ours: &Value, errors: &mut Vec<String>) {
    let (Some(go), Some(ours)) = (go.as_object(), ours.as_object()) else {
        errors.push(format!("/scrape_configs {job}: not objects"));
        return;
    };
    for (k, gv) in go {
        match ours.get(k) {
            Some(ov) if ov == gv => {}
            Some(ov) => errors.push(format!("/scrape_configs {job}.{k}: Go {gv}, ours {ov}")),
            None => errors.push(format!("/scrape_configs {job}.{k}: Go {gv}, ours absent")),
        }
    }
    for k in ours.keys() {
        if !go.contains_key(k) {
            errors.push(format!(
                "/scrape_configs {job}.{k}: ours {}, Go absent",
                ours[k]
            ));
        }
    }
}

/// Metric families in the text format: name → (type, label names, `le` bounds).
fn families(text: &str) -> BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> {
    let mut out: BTreeMap<String, (String, BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, ty) = rest.split_once(' ').unwrap();
            out.entry(name.to_owned()).or_default().0 = ty.to_owned();
        }
    }
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, _) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        let family = ["_bucket", "_sum", "_count", ""]
            .iter()
            .find_map(|s| {
                let f = name.strip_suffix(s)?;
                out.contains_key(f).then(|| f.to_owned())
            })
            .unwrap_or_else(|| name.to_owned());
        let entry = out.entry(family).or_default();
        for pair in labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
        {
            let (n, v) = pair.split_once('=').unwrap();
            if n == "le" {
                entry.2.insert(v.trim_matches('"').to_owned());
            } else {
                entry.1.insert(n.to_owned());
            }
        }
    }
    out
}

/// Labels the Go allocator's OpenTelemetry exporter adds to every series (scope identification),
/// which are not the allocator's own.
const OTEL_SCOPE_LABELS: &[&str] = &[
    "otel_scope_name",
    "otel_scope_version",
    "otel_scope_schema_url",
];

/// The series of the gauge families: series (name and labels, the exporter's scope labels
/// left out, sorted) → value.
fn gauge_values(text: &str) -> BTreeMap<String, String> {
    let fams = families(text);
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').unwrap();
        let (name, labels) = series.split_once('{').unwrap_or((series, ""));
        if fams.get(name).is_none_or(|f| f.0 != "gauge") {
            continue;
        }
        let mut pairs: Vec<&str> = labels
            .trim_end_matches('}')
            .split("\",")
            .filter(|p| !p.is_empty())
            .map(|p| p.trim_end_matches('"'))
            .filter(|p| {
                !OTEL_SCOPE_LABELS
                    .iter()
                    .any(|l| p.starts_with(&format!("{l}=")))
            })
            .collect();
        pairs.sort();
        out.insert(format!("{name}{{{}}}", pairs.join(",")), value.to_owned());
    }
    out
}

fn compare_metrics(go_text: &str, ours_text: &str, errors: &mut Vec<String>) {
    // Gauge values (targets per job and per collector, unassigned, collectors): the Go
    // allocator's series with its values; a series only ours has must be 0.
    let (gv, ov) = (gauge_values(go_text), gauge_values(ours_text));
    for (series, value) in gv
        .iter()
        .filter(|(s, _)| s.starts_with("opentelemetry_allocator_"))
    {
        match ov.get(series) {
            Some(o) if o == value => {}
            Some(o) => errors.push(format!("/metrics {series}: Go {value}, ours {o}")),
            None => errors.push(format!("/metrics {series}: Go {value}, ours absent")),
        }
    }
    for (series, value) in ov.iter().filter(|(s, v)| {
        s.starts_with("opentelemetry_allocator_") && !gv.contains_key(*s) && v.as_str() != "0"
    }) {
        let family = series.split('{').next().unwrap_or_default();
        if gv.keys().any(|s| s.split('{').next() == Some(family)) {
            errors.push(format!("/metrics {series}: ours {value}, Go absent"));
        }
    }
    let go = families(go_text);
    let ours = families(ours_text);
    for (name, (ty, labels, le)) in go
        .iter()
        .filter(|(n, _)| n.starts_with("opentelemetry_allocator_"))
    {
        let Some((oty, olabels, ole)) = ours.get(name) else {
            // Series the Go allocator only writes once the event happened in its process.
            errors.push(format!("/metrics: {name} missing"));
            continue;
        };
        if ty != oty {
            errors.push(format!("/metrics {name}: type Go {ty}, ours {oty}"));
        }
        let labels: BTreeSet<_> = labels
            .iter()
            .filter(|l| !OTEL_SCOPE_LABELS.contains(&l.as_str()))
            .cloned()
            .collect();
        if &labels != olabels {
            errors.push(format!(
                "/metrics {name}: labels Go {labels:?}, ours {olabels:?}"
            ));
        }
        if le != ole {
            errors.push(format!("/metrics {name}: buckets Go {le:?}, ours {ole:?}"));
        }
    }
}

/// What a route's answer is compared on.
async fn compare(addr: std::net::SocketAddr, r: &Route, errors: &mut Vec<String>) {
    // Sent as Go's client sends it: spaces and non-ASCII bytes percent-encoded.
    let mut sent = String::new();
    for b in r.path.bytes() {
        if b == b' ' || b >= 0x80 {
            sent.push_str(&format!("%{b:02X}"));
        } else {
            sent.push(b as char);
        }
    }
    let a = common::get_accept(addr, &sent, &r.accept).await;
    let what = format!("{} (Accept {:?})", r.path, r.accept);
    if a.status != r.status {
        errors.push(format!("{what}: status Go {}, ours {}", r.status, a.status));
        return;
    }
    let ct = a.header("content-type").unwrap_or_default();
    if r.accept == "text/html" {
        if !ct.starts_with("text/html") {
            errors.push(format!(
                "{what}: content type {ct:?}, Go {:?}",
                r.content_type
            ));
        }
        return;
    }
    let path = r.path.split('?').next().unwrap();
    if path == "/metrics" {
        if ct != r.content_type {
            errors.push(format!(
                "{what}: content type Go {:?}, ours {ct:?}",
                r.content_type
            ));
        }
        compare_metrics(&r.body, &a.body, errors);
        return;
    }
    if ct != r.content_type {
        errors.push(format!(
            "{what}: content type Go {:?}, ours {ct:?}",
            r.content_type
        ));
    }
    if r.status != 200 || !r.content_type.starts_with("application/json") {
        if a.body != r.body {
            errors.push(format!("{what}: body Go {:?}, ours {:?}", r.body, a.body));
        }
        return;
    }
    let go = parse(&what, &r.body);
    let ours = parse(&what, &a.body);
    if path == "/scrape_configs" {
        let (gm, om) = (go.as_object().unwrap(), ours.as_object().unwrap());
        let gk: BTreeSet<_> = gm.keys().collect();
        let ok: BTreeSet<_> = om.keys().collect();
        if gk != ok {
            errors.push(format!("{what}: jobs Go {gk:?}, ours {ok:?}"));
        }
        for (job, gv) in gm {
            if let Some(ov) = om.get(job) {
                compare_scrape_config(job, gv, ov, errors);
            }
        }
    } else if r.path.contains("collector_id=") {
        if groups(&go) != groups(&ours) {
            errors.push(format!("{what}: Go {go}, ours {ours}"));
        }
    } else if path.starts_with("/jobs/") {
        // {"<collector>": {"_link", "targets"}}: the same collectors and targets. The `_link`
        // differs by decision (ours points at the working HTTP SD route; see the README).
        let (gm, om) = (go.as_object().unwrap(), ours.as_object().unwrap());
        let gk: BTreeSet<_> = gm.keys().collect();
        let ok: BTreeSet<_> = om.keys().collect();
        if gk != ok {
            errors.push(format!("{what}: collectors Go {gk:?}, ours {ok:?}"));
        }
        for (c, gv) in gm {
            if let Some(ov) = om.get(c) {
                if groups(&gv["targets"]) != groups(&ov["targets"]) {
                    errors.push(format!(
                        "{what} {c}: Go {}, ours {}",
                        gv["targets"], ov["targets"]
                    ));
                }
            }
        }
    } else if go != ours {
        errors.push(format!("{what}: Go {go}, ours {ours}"));
    }
}

/// Cases whose placement depends on the order the Go allocator visits targets in (a random map
/// order for least-weighted): only the per-collector counts compare.
fn order_dependent(golden: &Golden) -> bool {
    golden
        .routes
        .iter()
        .any(|r| r.path == "/metrics" && r.body.contains("strategy=\"least-weighted\""))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_answers_as_the_go_allocator_does() {
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir().join("golden"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    names.sort();
    assert!(names.len() >= 9, "goldens missing: {names:?}");
    let mut errors = Vec::new();
    let mut compared = 0;
    let mut compared_pages = 0;
    let mut commits = BTreeSet::new();
    for path in &names {
        let case = path.file_stem().unwrap().to_str().unwrap().to_owned();
        let golden: Golden = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        commits.insert(golden.operator_commit.clone());
        let cfg = allocator_service::load(&dir().join("cases").join(&case).join("config.yaml"))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_eq!(
            cfg.core.ring.version.name(),
            golden.ring,
            "{case}: ring version"
        );
        let service = common::start(cfg, None).await;
        for _ in 0..100 {
            if common::get(service.addr, "/readyz").await.status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut case_errors = Vec::new();
        if order_dependent(&golden) {
            compare_counts(service.addr, &golden, &mut case_errors).await;
        } else {
            for r in &golden.routes {
                compare(service.addr, r, &mut case_errors).await;
                compared += 1;
            }
        }
        compared_pages += compare_pages(service.addr, &golden, &mut case_errors).await;
        errors.extend(case_errors.into_iter().map(|e| format!("{case}: {e}")));
        service.stop().await;
    }
    eprintln!(
        "conformance: {} cases, {compared} routes and {compared_pages} pages compared, {} mismatches, operator {commits:?}",
        names.len(),
        errors.len()
    );
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

/// least-weighted: every target placed once and the same per-collector counts.
async fn compare_counts(addr: std::net::SocketAddr, golden: &Golden, errors: &mut Vec<String>) {
    for r in golden
        .routes
        .iter()
        .filter(|r| r.path.contains("collector_id=") && r.status == 200)
    {
        let go = parse(&r.path, &r.body);
        let ours = common::json(addr, &r.path).await;
        let (g, o) = (
            go.as_array().map_or(0, Vec::len),
            ours.as_array().map_or(0, Vec::len),
        );
        if g != o {
            errors.push(format!("{}: Go {g} targets, ours {o}", r.path));
        }
    }
}

/// The HTML debug pages: status, content type, `X-Content-Type-Options`, title, headings,
/// paragraphs, navigation and every table cell (text and link) as the Go pages show them, the
/// deliberate differences aside: `/` is our dashboard with the Go index's navigation and
/// tables inside it (only those are compared there); a scrape configuration cell is compared as the YAML
/// (JSON) it holds, with `compare_scrape_config`, not as text. Returns how many pages were
/// compared.
async fn compare_pages(
    addr: std::net::SocketAddr,
    golden: &Golden,
    errors: &mut Vec<String>,
) -> usize {
    assert!(
        !golden.pages.is_empty(),
        "a golden without pages: regenerate"
    );
    let masked = golden.pages.iter().any(|p| !p.masked.is_empty());
    let mut compared = 0;
    for go in &golden.pages {
        let path = go.path.split('?').next().unwrap_or_default().to_owned();
        let a = common::get(addr, &go.path).await;
        let mut ours = pages::extract(&a.body);
        ours.path = go.path.clone();
        ours.status = a.status;
        ours.content_type = a.header("content-type").unwrap_or_default();
        ours.x_content_type_options = a.header("x-content-type-options").unwrap_or_default();
        if masked {
            pages::mask(&mut ours);
        }
        let what = format!("page {}", go.path);
        compared += 1;
        for (field, g, o) in [
            ("status", go.status.to_string(), ours.status.to_string()),
            (
                "content type",
                go.content_type.clone(),
                ours.content_type.clone(),
            ),
            (
                "X-Content-Type-Options",
                go.x_content_type_options.clone(),
                ours.x_content_type_options.clone(),
            ),
        ] {
            if g != o {
                errors.push(format!("{what}: {field} Go {g:?}, ours {o:?}"));
            }
        }
        if go.nav != ours.nav {
            errors.push(format!("{what}: nav Go {:?}, ours {:?}", go.nav, ours.nav));
        }
        if path == "/" {
            for t in &go.tables {
                match ours.tables.iter().find(|o| o.headers == t.headers) {
                    Some(o) if o.rows == t.rows => {}
                    Some(o) => errors.push(format!(
                        "{what}: table {:?}: Go {:?}, ours {:?}",
                        t.headers, t.rows, o.rows
                    )),
                    None => errors.push(format!("{what}: no table {:?}", t.headers)),
                }
            }
            continue;
        }
        for (field, g, o) in [
            ("title", vec![go.title.clone()], vec![ours.title.clone()]),
            ("headings", go.headings.clone(), ours.headings.clone()),
            ("paragraphs", go.paragraphs.clone(), ours.paragraphs.clone()),
        ] {
            if g != o {
                errors.push(format!("{what}: {field} Go {g:?}, ours {o:?}"));
            }
        }
        if path == "/debug/scrape_configs" {
            compare_scrape_config_tables(&what, &go.tables, &ours.tables, errors);
        } else if go.tables != ours.tables {
            errors.push(format!(
                "{what}: tables Go {:?}, ours {:?}",
                go.tables, ours.tables
            ));
        }
    }
    compared
}

/// `/debug/scrape_configs`: the same headers and job cells; each configuration cell read as
/// YAML (the Go page writes indented JSON, `<` as `\u003c`) and compared as `/scrape_configs`
/// is.
fn compare_scrape_config_tables(
    what: &str,
    go: &[pages::Table],
    ours: &[pages::Table],
    errors: &mut Vec<String>,
) {
    let (Some(g), Some(o), 1, 1) = (go.first(), ours.first(), go.len(), ours.len()) else {
        errors.push(format!("{what}: tables Go {go:?}, ours {ours:?}"));
        return;
    };
    if g.headers != o.headers || g.rows.len() != o.rows.len() {
        errors.push(format!("{what}: Go {g:?}, ours {o:?}"));
        return;
    }
    for (gr, or) in g.rows.iter().zip(&o.rows) {
        if gr[0] != or[0] {
            errors.push(format!("{what}: job cell Go {:?}, ours {:?}", gr[0], or[0]));
            continue;
        }
        let yaml = |text: &str| -> Value {
            serde_yaml::from_str(text).unwrap_or_else(|e| panic!("{what}: not YAML ({e}): {text}"))
        };
        let job = format!("{what} {}", gr[0].text);
        compare_scrape_config(&job, &yaml(&gr[1].text), &yaml(&or[1].text), errors);
    }
}
