//! A job's scrape config completed as Prometheus' config loader completes it and serialized as
//! its marshaller writes it, for `/scrape_configs`: the global defaults a job inherits
//! (`ScrapeConfig.Validate`: limits, body size, failure log, protocols, histogram options, name
//! validation and escaping), the fields written even when false, and the `omitempty` fields left
//! out when zero. The Go allocator serves exactly this, and a collector's receiver reads a key we
//! left out as its own default, which is not the global value the user set.

use serde_json::{json, Map, Value};

use crate::config::Global;

/// `config.DefaultScrapeProtocols`.
const DEFAULT_PROTOCOLS: [&str; 4] = [
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
];

/// `config.DefaultProtoFirstScrapeProtocols`: the default once native histograms are scraped.
const PROTO_FIRST_PROTOCOLS: [&str; 5] = [
    "PrometheusProto",
    "OpenMetricsText1.0.0",
    "OpenMetricsText0.0.1",
    "PrometheusText1.0.0",
    "PrometheusText0.0.4",
];

/// Every protocol `ScrapeProtocol.Validate` accepts.
const PROTOCOLS: [&str; 5] = PROTO_FIRST_PROTOCOLS;

/// Escaping schemes Prometheus accepts (`model.AllowUTF8` and the three escapings).
const ESCAPINGS: [&str; 4] = ["allow-utf-8", "underscores", "dots", "values"];

/// Top-level fields Prometheus writes even when false (no `omitempty`, or a pointer that
/// `Validate` always sets).
const ALWAYS_WRITTEN: [&str; 9] = [
    "honor_timestamps",
    "track_timestamps_staleness",
    "enable_compression",
    "enable_http2",
    "follow_redirects",
    "scrape_native_histograms",
    "always_scrape_classic_histograms",
    "convert_classic_histograms_to_nhcb",
    "extra_scrape_metrics",
];

/// Objects of the HTTP client config whose fields are all `omitempty` (but `tls_config`'s
/// `insecure_skip_verify`), and which are left out whole when every field is zero.
const CLIENT_OBJECTS: [&str; 4] = ["tls_config", "basic_auth", "authorization", "oauth2"];

/// A byte size as `units.ParseBase2Bytes` reads it (`KB` and `KiB` both 1024; a sequence such
/// as `1GB512MB`; fractions), in bytes.
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a byte size (e.g. 10MB, 512KiB)");
    let units = |text: &str, binary: bool| -> Option<f64> {
        let scale = 1024f64;
        let table: [(&str, i32); 7] = if binary {
            [
                ("B", 0),
                ("KiB", 1),
                ("MiB", 2),
                ("GiB", 3),
                ("TiB", 4),
                ("PiB", 5),
                ("EiB", 6),
            ]
        } else {
            [
                ("B", 0),
                ("KB", 1),
                ("MB", 2),
                ("GB", 3),
                ("TB", 4),
                ("PB", 5),
                ("EB", 6),
            ]
        };
        table
            .iter()
            .find(|(u, _)| *u == text)
            .map(|(_, p)| scale.powi(*p))
    };
    let parse = |binary: bool| -> Option<i64> {
        let (neg, mut rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        if rest == "0" {
            return Some(0);
        }
        if rest.is_empty() {
            return None;
        }
        let mut total = 0f64;
        while !rest.is_empty() {
            let num_end = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(rest.len());
            let num = &rest[..num_end];
            if num.is_empty() || num == "." || num.matches('.').count() > 1 {
                return None;
            }
            let value: f64 = if let Some(whole) = num.strip_suffix('.') {
                whole.parse().ok()?
            } else if num.starts_with('.') {
                format!("0{num}").parse().ok()?
            } else {
                num.parse().ok()?
            };
            rest = &rest[num_end..];
            let unit_end = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            total += value * units(&rest[..unit_end], binary)?;
            rest = &rest[unit_end..];
        }
        let total = if neg { -total } else { total };
        (total >= i64::MIN as f64 && total <= i64::MAX as f64).then_some(total as i64)
    };
    parse(true).or_else(|| parse(false)).ok_or_else(bad)
}

/// A byte size as `units.Base2Bytes.String` writes it: one component per non-zero 1024-power,
/// largest first (`10MiB`, `1MiB512KiB`, `0B`).
pub fn format_bytes(n: i64) -> String {
    const UNITS: [&str; 7] = ["", "K", "M", "G", "T", "P", "E"];
    let mut parts: Vec<String> = Vec::new();
    let mut n = n;
    for (i, u) in UNITS.iter().enumerate() {
        if n % 1024 != 0 || (i == 0 && n == 0) {
            let suffix = if i == 0 { "B" } else { "iB" };
            parts.push(format!("{}{u}{suffix}", n % 1024));
        }
        n /= 1024;
        if n == 0 {
            break;
        }
    }
    parts.reverse();
    parts.concat()
}

/// Zero as Go's `omitempty` sees it.
fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
    }
}

/// A job value that counts as unset (absent or zero), so the global one applies.
fn unset(m: &Map<String, Value>, k: &str) -> bool {
    m.get(k).is_none_or(is_zero)
}

/// A list of scrape protocols as `ScrapeProtocol.Validate` and the loader check it: known
/// protocols, none twice.
pub fn check_protocols<S: AsRef<str>>(protocols: &[S]) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for p in protocols {
        let p = p.as_ref();
        if !PROTOCOLS.contains(&p) {
            return Err(format!(
                "unknown scrape protocol {p:?}, supported: {PROTOCOLS:?}"
            ));
        }
        if seen.contains(&p) {
            return Err(format!("duplicated protocol {p:?}"));
        }
        seen.push(p);
    }
    Ok(())
}

/// The global section of the configuration the operator's resources are generated into: the
/// Go allocator hands prometheus-operator's generator a Prometheus whose only job defaults are
/// its scrape protocols (`prometheus_cr.scrape_protocols`, else Prometheus' default list), and
/// loads the generated jobs against that section, not against its own `config.global`.
pub fn generated_global(protocols: Option<Vec<String>>) -> Global {
    Global {
        scrape_protocols: Some(
            protocols.unwrap_or_else(|| DEFAULT_PROTOCOLS.map(String::from).to_vec()),
        ),
        ..Global::default()
    }
}

/// The global section's settings a job inherits, checked as Prometheus checks them.
pub fn check_global(g: &Global) -> Result<(), String> {
    if let Some(b) = &g.body_size_limit {
        parse_bytes(b).map_err(|e| format!("config.global.body_size_limit: {e}"))?;
    }
    if let Some(p) = &g.scrape_protocols {
        check_protocols(p).map_err(|e| format!("config.global.scrape_protocols: {e}"))?;
    }
    match g.metric_name_validation_scheme.as_deref() {
        None | Some("" | "utf8" | "legacy") => {}
        Some(s) => {
            return Err(format!(
            "config.global.metric_name_validation_scheme: {s:?} is neither \"utf8\" nor \"legacy\""
        ))
        }
    }
    match g.metric_name_escaping_scheme.as_deref() {
        None | Some("") => {}
        Some(s) if ESCAPINGS.contains(&s) => {}
        Some(s) => {
            return Err(format!(
                "config.global.metric_name_escaping_scheme: {s:?} is not one of {ESCAPINGS:?}"
            ))
        }
    }
    Ok(())
}

/// One job's settings checked as `ScrapeConfig.Validate` checks them (against the global
/// section): protocols, body size, name validation and escaping.
pub fn check_job(m: &Map<String, Value>, g: &Global) -> Result<(), String> {
    let mut job = m.clone();
    complete(&mut job, g)
}

/// Complete one job's scrape config (as JSON) as Prometheus' loader does and shape it as its
/// marshaller writes it; an error names a setting Prometheus refuses.
pub fn complete(m: &mut Map<String, Value>, g: &Global) -> Result<(), String> {
    // omitempty: zero top-level values are not written (those always written excepted).
    m.retain(|k, v| ALWAYS_WRITTEN.contains(&k.as_str()) || !is_zero(v));
    for (k, global) in g.inherited_limits() {
        if unset(m, k) {
            if let Some(v) = global.filter(|v| *v != 0) {
                m.insert(k.into(), json!(v));
            }
        }
    }
    let body = match m.get("body_size_limit") {
        Some(Value::String(s)) => parse_bytes(s).map_err(|e| format!("body_size_limit: {e}"))?,
        Some(Value::Number(n)) => n.as_i64().unwrap_or(0),
        _ => 0,
    };
    let body = if body == 0 {
        match &g.body_size_limit {
            Some(b) => parse_bytes(b).map_err(|e| format!("body_size_limit: {e}"))?,
            None => 0,
        }
    } else {
        body
    };
    m.remove("body_size_limit");
    if body != 0 {
        m.insert("body_size_limit".into(), json!(format_bytes(body)));
    }
    if unset(m, "scrape_failure_log_file") {
        if let Some(f) = g
            .scrape_failure_log_file
            .as_deref()
            .filter(|f| !f.is_empty())
        {
            m.insert("scrape_failure_log_file".into(), json!(f));
        }
    }
    let flag = |m: &Map<String, Value>, k: &str, global: bool| -> bool {
        m.get(k).and_then(Value::as_bool).unwrap_or(global)
    };
    let native = flag(m, "scrape_native_histograms", g.scrape_native_histograms);
    m.insert("scrape_native_histograms".into(), json!(native));
    for (k, global) in [
        (
            "always_scrape_classic_histograms",
            g.always_scrape_classic_histograms,
        ),
        (
            "convert_classic_histograms_to_nhcb",
            g.convert_classic_histograms_to_nhcb,
        ),
        ("extra_scrape_metrics", g.extra_scrape_metrics),
    ] {
        let v = flag(m, k, global);
        m.insert(k.into(), json!(v));
    }
    for (k, default) in [
        ("honor_timestamps", true),
        ("track_timestamps_staleness", false),
        ("enable_compression", true),
        ("enable_http2", true),
        ("follow_redirects", true),
    ] {
        let v = flag(m, k, default);
        m.insert(k.into(), json!(v));
    }
    if !m.contains_key("scrape_protocols") {
        let protocols: Vec<String> = match &g.scrape_protocols {
            Some(p) => p.clone(),
            None if native => PROTO_FIRST_PROTOCOLS.map(String::from).to_vec(),
            None => DEFAULT_PROTOCOLS.map(String::from).to_vec(),
        };
        m.insert("scrape_protocols".into(), json!(protocols));
    }
    let protocols: Vec<&str> = m["scrape_protocols"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| p.as_str().unwrap_or_default())
        .collect();
    check_protocols(&protocols).map_err(|e| format!("scrape_protocols: {e}"))?;
    if let Some(p) = m.get("fallback_scrape_protocol").and_then(Value::as_str) {
        if !PROTOCOLS.contains(&p) {
            return Err(format!(
                "fallback_scrape_protocol: unknown scrape protocol {p:?}, supported: {PROTOCOLS:?}"
            ));
        }
    }
    // Name validation: the job's, else the global one (utf8 unless set).
    let global_validation = g
        .metric_name_validation_scheme
        .as_deref()
        .filter(|s| !s.is_empty())
        .unwrap_or("utf8");
    let local = m
        .get("metric_name_validation_scheme")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let validation = match local.as_deref() {
        None => global_validation.to_owned(),
        Some(s @ ("utf8" | "legacy")) => s.to_owned(),
        Some(s) => {
            return Err(format!(
                "metric_name_validation_scheme: {s:?} is neither \"utf8\" nor \"legacy\""
            ))
        }
    };
    let global_escaping = match g.metric_name_escaping_scheme.as_deref() {
        None | Some("") if global_validation == "legacy" => "underscores",
        None | Some("") => "allow-utf-8",
        Some(s) => s,
    };
    let escaping = match m.get("metric_name_escaping_scheme").and_then(Value::as_str) {
        Some(s) => s.to_owned(),
        None if local.is_none() => global_escaping.to_owned(),
        None if validation == "legacy" => "underscores".to_owned(),
        None => "allow-utf-8".to_owned(),
    };
    if !ESCAPINGS.contains(&escaping.as_str()) {
        return Err(format!(
            "metric_name_escaping_scheme: {escaping:?} is not one of {ESCAPINGS:?}"
        ));
    }
    if escaping == "allow-utf-8" && validation != "utf8" {
        return Err(
            "metric_name_escaping_scheme: utf8 metric names requested but validation scheme is not set to UTF8"
                .into(),
        );
    }
    m.insert("metric_name_validation_scheme".into(), json!(validation));
    m.insert("metric_name_escaping_scheme".into(), json!(escaping));
    client_objects(m);
    Ok(())
}

/// The HTTP client config's objects as Prometheus writes them: zero fields left out, an object
/// with nothing set left out whole, and a TLS config that is written always saying
/// `insecure_skip_verify`.
fn client_objects(m: &mut Map<String, Value>) {
    for k in CLIENT_OBJECTS {
        let Some(Value::Object(o)) = m.get_mut(k) else {
            continue;
        };
        o.retain(|_, v| !is_zero(v));
        if k == "oauth2" {
            client_objects(o);
        }
        if o.is_empty() {
            m.remove(k);
        } else if k == "tls_config" {
            o.entry("insecure_skip_verify").or_insert(json!(false));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes_parse_and_print_as_alecthomas_units() {
        // (input, bytes, Base2Bytes.String())
        for (s, n, out) in [
            ("10MB", 10 << 20, "10MiB"),
            ("10MiB", 10 << 20, "10MiB"),
            ("1GB", 1 << 30, "1GiB"),
            ("1KB", 1024, "1KiB"),
            ("1.5MB", 3 << 19, "1MiB512KiB"),
            ("1GB512MB", (1 << 30) + (512 << 20), "1GiB512MiB"),
            ("0", 0, "0B"),
            ("100B", 100, "100B"),
            ("1025B", 1025, "1KiB1B"),
        ] {
            assert_eq!(parse_bytes(s), Ok(n), "{s}");
            assert_eq!(format_bytes(n), out, "{s}");
        }
        for bad in ["", "10", "10kB", "10 MB", "MB", "1MiB1MB", "1.2.3MB", "x"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn unset_job_fields_take_the_global_ones_and_zero_ones_are_left_out() {
        let g = Global {
            sample_limit: Some(100),
            body_size_limit: Some("2MB".into()),
            scrape_native_histograms: true,
            metric_name_validation_scheme: Some("legacy".into()),
            ..Global::default()
        };
        let mut m = json!({"job_name": "j", "honor_labels": false, "sample_limit": 0,
            "tls_config": {"insecure_skip_verify": false}, "basic_auth": {"username": "u"}})
        .as_object()
        .unwrap()
        .clone();
        complete(&mut m, &g).unwrap();
        assert_eq!(m["sample_limit"], json!(100));
        assert_eq!(m["body_size_limit"], json!("2MiB"));
        assert_eq!(m["scrape_protocols"], json!(PROTO_FIRST_PROTOCOLS));
        assert_eq!(m["metric_name_escaping_scheme"], json!("underscores"));
        assert!(!m.contains_key("honor_labels"));
        assert!(!m.contains_key("tls_config"));
        assert_eq!(m["basic_auth"], json!({"username": "u"}));
        assert_eq!(m["track_timestamps_staleness"], json!(false));
    }
}
