//! The Go allocator's HTML debug pages: `/debug/collector?collector_id=`, `/debug/job?job_id=`,
//! `/debug/target?target_hash=`, `/debug/targets`, `/debug/jobs`, `/debug/scrape_configs`, and
//! the two tables of its index (added to our dashboard at `/`). Same routes, parameters, status
//! codes, titles, tables, cell texts and links as the Operator's `internal/server` handlers and
//! templates (`tests/conformance.rs` compares them with pages the Go code served).
//!
//! Everything is read from the published view: counts from `View::jobs` and
//! `View::collectors`, the targets from the HTTP SD answers and, for targets without a
//! collector (listed with an empty one, as in Go), from `View::unassigned_targets` (each chunk
//! knows the keys of its fragments, see [`crate::answer::Members`]). Nothing here waits for the
//! allocation loop.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;

use crate::http::{esc, query_escape, query_unescape_strict, redact_scrape_config};
use crate::state::{Shared, View};

/// One cell of a table, as the Go template writes it: a link, preformatted text, or text.
pub struct Cell {
    text: String,
    link: Option<String>,
    pre: bool,
}

fn text(s: impl Into<String>) -> Cell {
    Cell {
        text: s.into(),
        link: None,
        pre: false,
    }
}

fn linked(s: &str, link: String) -> Cell {
    Cell {
        text: s.to_owned(),
        link: Some(link),
        pre: false,
    }
}

fn job_link(job: &str) -> Cell {
    linked(job, format!("/debug/job?job_id={}", query_escape(job)))
}

fn collector_link(collector: &str) -> Cell {
    linked(
        collector,
        format!("/debug/collector?collector_id={}", query_escape(collector)),
    )
}

fn target_link(t: &Target) -> Cell {
    linked(&t.address, format!("/debug/target?target_hash={}", t.key))
}

/// The page header: title, heading and the navigation every Go page carries.
pub fn header(h: &mut String, title: &str) {
    let _ = write!(
        h,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\
         <link rel=\"shortcut icon\" href=\"https://opentelemetry.io/favicons/favicon.ico\"/>\
         </head><body><h1>{t}</h1>",
        t = esc(title)
    );
    nav(h);
}

/// The Go pages' navigation links.
pub fn nav(h: &mut String) {
    h.push_str(
        "<nav><ul><li><a href=\"/\">Home</a></li>\
         <li><a href=\"/debug/scrape_configs\">Scrape Configs</a></li>\
         <li><a href=\"/debug/jobs\">Jobs</a></li>\
         <li><a href=\"/debug/targets\">Targets</a></li></ul></nav>",
    );
}

/// A table as the Go `properties_table` template writes it: header cells in `<thead>`, rows
/// striped.
pub fn table(h: &mut String, headers: &[&str], rows: impl IntoIterator<Item = Vec<Cell>>) {
    h.push_str("<table><thead>");
    for name in headers {
        let _ = write!(h, "<td>{}</td>", esc(name));
    }
    h.push_str("</thead>");
    // Rows are made one at a time: `/debug/targets` at a million targets is a million rows.
    for (i, row) in rows.into_iter().enumerate() {
        h.push_str(if i % 2 == 0 {
            "<tr style=\"background: #eee\">"
        } else {
            "<tr>"
        });
        for c in &row {
            h.push_str("<td style=\"vertical-align: top;\">");
            match (&c.link, c.pre) {
                (Some(l), _) => {
                    let _ = write!(h, "<a href=\"{}\">{}</a>", esc(l), esc(&c.text));
                }
                (None, true) => {
                    let _ = write!(h, "<pre>{}</pre>", esc(&c.text));
                }
                (None, false) => h.push_str(&esc(&c.text)),
            }
            h.push_str("</td>");
        }
        h.push_str("</tr>");
    }
    h.push_str("</table>");
}

fn footer(h: &mut String) {
    h.push_str("</body></html>");
}

fn bad_request(h: &mut String, error: &str, example: &str) {
    let _ = write!(
        h,
        "<html><body><h1>Bad Request</h1><p>{}</p><p>Example: {}</p></body></html>",
        esc(error),
        esc(example)
    );
}

fn not_found(h: &mut String, kind: &str, name: &str) {
    let _ = write!(
        h,
        "<html><body><h1>Unknown {}: {}</h1></body></html>",
        esc(kind),
        esc(name)
    );
}

/// A debug page's answer: the headers every Go debug handler sets.
fn page(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

/// The query's pairs as Go's `url.ParseQuery` reads them: `&`-separated, a pair with `;` or an
/// invalid escape left out.
fn query(uri: &Uri) -> Vec<(String, String)> {
    let Some(raw) = uri.query() else {
        return Vec::new();
    };
    raw.split('&')
        .filter(|p| !p.is_empty() && !p.contains(';'))
        .filter_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((query_unescape_strict(k)?, query_unescape_strict(v)?))
        })
        .collect()
}

fn values<'q>(q: &'q [(String, String)], name: &str) -> Vec<&'q str> {
    q.iter()
        .filter(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
        .collect()
}

/// One target of the view, read from its HTTP SD fragment.
pub struct Target {
    pub key: u64,
    pub job: String,
    pub collector: String,
    pub address: String,
    /// Discovered labels, sorted by name (`__address__` included).
    pub labels: Vec<(String, String)>,
}

#[derive(Deserialize)]
struct Fragment {
    labels: BTreeMap<String, String>,
    targets: Vec<String>,
}

/// Each fragment of an answer with its key, owners only (a second owner's copy during a
/// hand-over is the other collector's target): `(key, fragment bytes)`.
fn fragments(answer: &crate::answer::Answer, only: Option<u64>, mut each: impl FnMut(u64, &[u8])) {
    for part in answer.parts() {
        let m = part.members();
        // Looking for one key: only the chunk that holds it is inflated.
        if m.keys.is_empty() || only.is_some_and(|k| !m.keys.contains(&k)) {
            continue;
        }
        let plain = part.plain();
        let mut at = 0;
        for (i, &key) in m.keys.iter().enumerate() {
            let end = crate::publish::object_end(&plain, at);
            if !m.seconds.contains(&(i as u32)) {
                each(key, &plain[at..end]);
            }
            at = end + 1; // the `,` between fragments
        }
    }
}

fn target(job: &str, collector: &str, key: u64, bytes: &[u8]) -> Option<Target> {
    let f: Fragment = serde_json::from_slice(bytes).ok()?;
    Some(Target {
        key,
        job: job.to_owned(),
        collector: collector.to_owned(),
        address: f.targets.into_iter().next().unwrap_or_default(),
        labels: f.labels.into_iter().collect(),
    })
}

/// Every (job, collector, answer) of the view; `""` for targets without a collector.
fn pairs(v: &View) -> impl Iterator<Item = (&str, &str, &crate::answer::Answer)> {
    let served =
        v.sd.iter()
            .map(|((j, c), a)| (j.as_str(), c.as_str(), &**a));
    let loose = v
        .unassigned_targets
        .iter()
        .map(|(j, a)| (j.as_str(), "", &**a));
    served.chain(loose)
}

/// The view's targets (of one collector, or all), sorted by key as the Go pages list them.
fn targets(v: &View, only: Option<&str>) -> Vec<Target> {
    let mut out = Vec::new();
    for (job, collector, answer) in pairs(v) {
        if only.is_some_and(|c| c != collector) {
            continue;
        }
        fragments(answer, None, |key, b| {
            // A list keeps of the labels only what it shows.
            out.extend(target(job, collector, key, b).map(|mut t| {
                t.labels.retain(|(n, _)| n == ENDPOINT_SLICE);
                t
            }))
        });
    }
    out.sort_by_key(|t| t.key);
    out
}

/// Targets of `job` on each collector (owners only).
fn job_counts(v: &View, job: &str) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for ((j, c), answer) in &v.sd {
        if j == job {
            let n: usize = answer
                .parts()
                .iter()
                .map(|p| p.members().keys.len() - p.members().seconds.len())
                .sum();
            *out.entry(c.clone()).or_default() += n;
        }
    }
    out
}

/// The index's two tables (`/` in the Go allocator), for our dashboard.
pub fn index_tables(h: &mut String, v: &View) {
    let targets: usize = v.jobs.values().sum();
    let jobs = v.jobs.values().filter(|&&n| n > 0).count();
    let rows = vec![
        vec![
            linked("Scrape Configs", "/scrape_configs".into()),
            text(v.scrape_configs.len().to_string()),
        ],
        vec![linked("Jobs", "/debug/jobs".into()), text(jobs.to_string())],
        vec![
            linked("Targets", "/debug/targets".into()),
            text(targets.to_string()),
        ],
    ];
    table(h, &["Category", "Count"], rows);
    let mut per: BTreeMap<&str, usize> = BTreeMap::new();
    for ((_, c), answer) in &v.sd {
        let owned = answer
            .parts()
            .iter()
            .any(|p| p.members().keys.len() > p.members().seconds.len());
        if owned {
            *per.entry(c.as_str()).or_default() += 1;
        }
    }
    let rows: Vec<Vec<Cell>> = v
        .collectors
        .iter()
        .map(|(c, n)| {
            let jobs = per.get(c.as_str()).copied().unwrap_or(0);
            vec![
                collector_link(c),
                text(jobs.to_string()),
                text(n.to_string()),
            ]
        })
        .collect();
    table(h, &["Collector", "Job Count", "Target Count"], rows);
}

/// Free a page's targets and give the heap's free pages back to the system (off this task):
/// at a million targets the list is hundreds of megabytes of small allocations, which would
/// otherwise stay resident until the next publish trims.
fn release(list: Vec<Target>) {
    drop(list);
    tokio::task::spawn_blocking(crate::publish::trim);
}

/// `/debug/targets`: every target with its job, collector and endpoint slice, by key.
pub async fn targets_page(State(s): State<Arc<Shared>>) -> Response {
    let v = s.view();
    let mut h = String::new();
    header(&mut h, "OpenTelemetry Target Allocator - Targets");
    let list = targets(&v, None);
    let rows = list.iter().map(|t| {
        vec![
            job_link(&t.job),
            target_link(t),
            collector_link(&t.collector),
            text(label(t, ENDPOINT_SLICE)),
        ]
    });
    table(
        &mut h,
        &["Job", "Target", "Collector", "Endpoint Slice"],
        rows,
    );
    release(list);
    footer(&mut h);
    page(StatusCode::OK, h)
}

/// `/debug/jobs`: jobs with targets, by name, with their counts.
pub async fn jobs_page(State(s): State<Arc<Shared>>) -> Response {
    let v = s.view();
    let mut h = String::new();
    header(&mut h, "OpenTelemetry Target Allocator - Jobs");
    let rows: Vec<Vec<Cell>> = v
        .jobs
        .iter()
        .filter(|(_, &n)| n > 0)
        .map(|(j, n)| vec![job_link(j), text(n.to_string())])
        .collect();
    table(&mut h, &["Job", "Target Count"], rows);
    footer(&mut h);
    page(StatusCode::OK, h)
}

/// `/debug/job?job_id=`: the job's targets per collector (every collector, by name). Exactly
/// one `job_id`, else 400 with no body; an unknown job is listed with zeros, as in Go.
pub async fn job_page(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let q = query(&uri);
    let ids = values(&q, "job_id");
    let [job] = ids[..] else {
        return page(StatusCode::BAD_REQUEST, String::new());
    };
    let v = s.view();
    let counts = job_counts(&v, job);
    let mut h = String::new();
    header(&mut h, &format!("Job: {job}"));
    let rows: Vec<Vec<Cell>> = v
        .collectors
        .iter()
        .map(|(c, _)| {
            let n = counts.get(c).copied().unwrap_or(0);
            vec![collector_link(c), text(n.to_string())]
        })
        .collect();
    table(&mut h, &["Collector", "Target Count"], rows);
    footer(&mut h);
    page(StatusCode::OK, h)
}

/// `/debug/collector?collector_id=`: the collector's targets by key. 400 without exactly one
/// non-empty `collector_id`, 404 for an unknown collector.
pub async fn collector_page(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let q = query(&uri);
    let ids = values(&q, "collector_id");
    let id = match ids[..] {
        [one] => one,
        _ => "",
    };
    let mut h = String::new();
    if id.is_empty() {
        bad_request(
            &mut h,
            "Expected collector_id in the query string",
            "/debug/collector?collector_id=my-collector-42",
        );
        return page(StatusCode::BAD_REQUEST, h);
    }
    let v = s.view();
    if !v.collectors.iter().any(|(c, _)| c == id) {
        not_found(&mut h, "Collector", id);
        return page(StatusCode::NOT_FOUND, h);
    }
    header(&mut h, &format!("Collector: {id}"));
    let list = targets(&v, Some(id));
    let rows = list.iter().map(|t| {
        vec![
            job_link(&t.job),
            target_link(t),
            text(label(t, ENDPOINT_SLICE)),
        ]
    });
    table(&mut h, &["Job", "Target", "Endpoint Slice"], rows);
    release(list);
    footer(&mut h);
    page(StatusCode::OK, h)
}

const ENDPOINT_SLICE: &str = "__meta_kubernetes_endpointslice_name";

fn label<'t>(t: &'t Target, name: &str) -> &'t str {
    t.labels
        .binary_search_by(|(n, _)| n.as_str().cmp(name))
        .map_or("", |i| &t.labels[i].1)
}

/// The node a target is on, as the Go allocator's `Item.GetNodeName` finds it.
fn node_name(t: &Target) -> &str {
    for l in [
        "__meta_kubernetes_pod_node_name",
        "__meta_kubernetes_node_name",
        "__meta_kubernetes_endpoint_node_name",
    ] {
        let v = label(t, l);
        if !v.is_empty() {
            return v;
        }
    }
    if label(t, "__meta_kubernetes_endpointslice_address_target_kind") != "Node" {
        return "";
    }
    label(t, "__meta_kubernetes_endpointslice_address_target_name")
}

/// The target of `key` in the view, if any.
fn find(v: &View, key: u64) -> Option<Target> {
    for (job, collector, answer) in pairs(v) {
        let mut found = None;
        fragments(answer, Some(key), |k, b| {
            if k == key && found.is_none() {
                found = target(job, collector, k, b);
            }
        });
        if found.is_some() {
            return found;
        }
    }
    None
}

/// `/debug/target?target_hash=`: one target's placement and labels. As the Go handler: 400 for
/// a missing, empty or `0` hash; for one that is not a decimal `u64`, 400 with the bad request
/// page, then the lookup goes on with the value Go's `ParseUint` returned (0, or the maximum
/// when out of range) under that status; 404 for a hash no target has.
pub async fn target_page(State(s): State<Arc<Shared>>, uri: Uri) -> Response {
    let q = query(&uri);
    let raw = values(&q, "target_hash").first().copied().unwrap_or("");
    let mut h = String::new();
    if raw.is_empty() || raw == "0" {
        bad_request(
            &mut h,
            "Expected target_hash in the query string",
            "/debug/target?target_hash=my-target-42",
        );
        return page(StatusCode::BAD_REQUEST, h);
    }
    let mut status = None;
    let key = match parse_uint(raw) {
        Ok(k) => k,
        Err(k) => {
            bad_request(
                &mut h,
                "Expected target_hash to be a number",
                "/debug/target?target_hash=42",
            );
            status = Some(StatusCode::BAD_REQUEST);
            k
        }
    };
    let v = s.view();
    let Some(t) = find(&v, key) else {
        not_found(&mut h, "Target", raw);
        return page(status.unwrap_or(StatusCode::NOT_FOUND), h);
    };
    header(&mut h, &format!("Target: {}", t.address));
    let rows = vec![
        vec![text("Collector"), collector_link(&t.collector)],
        vec![text("Job"), job_link(&t.job)],
        vec![
            text("Namespace"),
            text(label(&t, "__meta_kubernetes_namespace")),
        ],
        vec![
            text("Service Name"),
            text(label(&t, "__meta_kubernetes_service_name")),
        ],
        vec![
            text("Service Port"),
            text(label(&t, "__meta_kubernetes_service_port")),
        ],
        vec![
            text("Pod Name"),
            text(label(&t, "__meta_kubernetes_pod_name")),
        ],
        vec![
            text("Container Name"),
            text(label(&t, "__meta_kubernetes_pod_container_name")),
        ],
        vec![
            text("Container Port Name"),
            text(label(&t, "__meta_kubernetes_pod_container_port_name")),
        ],
        vec![text("Node Name"), text(node_name(&t))],
        vec![text("Endpoint Slice Name"), text(label(&t, ENDPOINT_SLICE))],
    ];
    table(&mut h, &["", ""], rows);
    let labels: Vec<Vec<Cell>> = t
        .labels
        .iter()
        .map(|(n, v)| vec![text(n.as_str()), text(v.as_str())])
        .collect();
    table(&mut h, &["Label", "Value"], labels);
    footer(&mut h);
    page(status.unwrap_or(StatusCode::OK), h)
}

/// Go's `strconv.ParseUint(s, 10, 64)`: decimal digits only; on a syntax error `Err(0)`, out of
/// range `Err(u64::MAX)`.
fn parse_uint(s: &str) -> Result<u64, u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(0);
    }
    s.parse().map_err(|_| u64::MAX)
}

/// `/debug/scrape_configs`: each job's scrape configuration as indented JSON (secrets hidden,
/// as the Go page always shows them: it reads the plain-HTTP answer), by job name.
pub async fn scrape_configs_page(State(s): State<Arc<Shared>>) -> Response {
    let v = s.view();
    let mut h = String::new();
    header(&mut h, "OpenTelemetry Target Allocator - Scrape Configs");
    let mut jobs: Vec<(&String, &Value)> = v.scrape_configs.iter().collect();
    jobs.sort_by(|a, b| a.0.cmp(b.0));
    let rows: Vec<Vec<Cell>> = jobs
        .into_iter()
        .map(|(job, cfg)| {
            let mut cfg = cfg.clone();
            redact_scrape_config(&mut cfg);
            let pretty = serde_json::to_string_pretty(&cfg).expect("plain data");
            let cell = Cell {
                text: pretty,
                link: None,
                pre: true,
            };
            vec![job_link(job), cell]
        })
        .collect();
    table(&mut h, &["Job", "Scrape Config"], rows);
    footer(&mut h);
    page(StatusCode::OK, h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_uint_as_go() {
        assert_eq!(parse_uint("42"), Ok(42));
        assert_eq!(parse_uint("007"), Ok(7));
        assert_eq!(parse_uint("+1"), Err(0));
        assert_eq!(parse_uint("abc"), Err(0));
        assert_eq!(parse_uint("18446744073709551616"), Err(u64::MAX));
    }

    #[test]
    fn query_as_go_parse_query() {
        let uri: Uri = "/debug/job?job_id=a%2Fb&x=1;2&job_id=%zz&job_id=c+d"
            .parse()
            .unwrap();
        assert_eq!(
            query(&uri),
            vec![
                ("job_id".to_owned(), "a/b".to_owned()),
                ("job_id".to_owned(), "c d".to_owned())
            ]
        );
    }

    /// An answer of one chunk per entry: (keys, second-owner positions, fragments).
    fn answer(chunks: &[(&[u64], &[u32], &str)]) -> Arc<crate::answer::Answer> {
        let parts = chunks.iter().map(|(keys, seconds, text)| {
            let members = crate::answer::Members {
                keys: keys.to_vec().into(),
                seconds: seconds.to_vec().into(),
            };
            crate::answer::Part::targets_chunk(text.as_bytes().to_vec().into(), members)
        });
        crate::answer::Answer::list(parts.collect::<Vec<_>>().into_iter())
    }

    fn frag(address: &str, node: &str) -> String {
        format!(
            r#"{{"labels":{{"__address__":"{address}","__meta_kubernetes_pod_node_name":"{node}"}},"targets":["{address}"]}}"#
        )
    }

    #[test]
    fn targets_from_the_view() {
        let (a, b, c) = (frag("a:1", "n1"), frag("b:1", ""), frag("c:1", "n3"));
        let mut v = View::default();
        // c (key 3) is served to col-x too, as a hand-over's second owner: it is col-y's.
        let x = answer(&[(&[1, 3], &[1], &format!("{a},{c}"))]);
        let y = answer(&[(&[3], &[], &c)]);
        v.sd.insert(("j".into(), "col-x".into()), x.clone());
        v.sd.insert(("j".into(), "col-y".into()), y);
        v.unassigned_targets
            .insert("j".into(), answer(&[(&[2], &[], &b)]));
        v.collectors = vec![("col-x".into(), 1), ("col-y".into(), 1)];
        let all: Vec<(u64, String, String)> = targets(&v, None)
            .into_iter()
            .map(|t| (t.key, t.collector, t.address))
            .collect();
        assert_eq!(
            all,
            [
                (1, "col-x".into(), "a:1".into()),
                (2, String::new(), "b:1".into()),
                (3, "col-y".into(), "c:1".into())
            ]
        );
        let t = find(&v, 3).expect("key 3");
        assert_eq!((t.collector.as_str(), node_name(&t)), ("col-y", "n3"));
        assert!(find(&v, 4).is_none());
        assert_eq!(job_counts(&v, "j").get("col-x"), Some(&1));
        // Chunks split the same way give the same targets (a gzip-only chunk is inflated).
        x.gzip();
        assert_eq!(targets(&v, Some("col-x")).len(), 1);
    }

    #[test]
    fn cells_are_escaped() {
        let mut h = String::new();
        table(
            &mut h,
            &["<h>"],
            [vec![collector_link("a<b>\"&"), text("<script>")]],
        );
        assert!(h.contains("<td>&lt;h&gt;</td>"), "{h}");
        assert!(
            h.contains("<a href=\"/debug/collector?collector_id=a%3Cb%3E%22%26\">a&lt;b&gt;&quot;&amp;</a>"),
            "{h}"
        );
        assert!(h.contains("&lt;script&gt;"), "{h}");
        assert!(!h.contains("<script>"), "{h}");
    }
}
