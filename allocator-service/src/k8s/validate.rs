//! The checks prometheus-operator's resource selector makes before it generates anything for a
//! resource (the version the Go allocator pins, Prometheus 3 label names): relabelings that its
//! validator refuses, a scrape timeout above the scrape interval, a scrape class that does not
//! exist. A resource that fails one gets no job at all, as upstream; serving its jobs anyway
//! would hand collectors a configuration they refuse (a timeout above the interval makes the
//! receiver refuse the whole configuration).

use serde_json::Value;

use super::monitors::{
    CrRelabel, Endpoint, PodMonitorSpec, ProbeSpec, Proxy, ScrapeClass, ScrapeConfigSpec,
    ServiceMonitorSpec,
};
use crate::relabel::{Rule, RuleSpec};

const DEFAULT_REPLACEMENT: &str = "$1";

/// One relabeling, as the operator's `LabelConfigValidator` checks it.
fn relabeling(rc: &CrRelabel) -> Result<(), String> {
    let raw_action = rc.action.clone().filter(|a| !a.is_empty());
    let shown = raw_action.clone().unwrap_or_else(|| "replace".into());
    let action = shown.to_lowercase();
    let regex = rc.regex.clone().filter(|r| !r.is_empty());
    if let Some(r) = &regex {
        let probe = RuleSpec {
            action: Some("drop".into()),
            regex: Some(r.clone()),
            ..RuleSpec::default()
        };
        Rule::compile(&probe)
            .map_err(|e| format!("invalid regex {r} for relabel configuration: {e}"))?;
    }
    let modulus = rc.modulus.unwrap_or(0);
    if modulus == 0 && action == "hashmod" {
        return Err("relabel configuration for hashmod requires non-zero modulus".into());
    }
    let target = rc.target_label.clone().unwrap_or_default();
    let needs_target = [
        "replace",
        "hashmod",
        "lowercase",
        "uppercase",
        "keepequal",
        "dropequal",
    ];
    if needs_target.contains(&action.as_str()) && target.is_empty() {
        return Err(format!(
            "relabel configuration for {shown} action needs targetLabel value"
        ));
    }
    let replacement_set = rc
        .replacement
        .as_deref()
        .is_some_and(|r| r != DEFAULT_REPLACEMENT);
    if ["lowercase", "uppercase", "keepequal", "dropequal"].contains(&action.as_str())
        && replacement_set
    {
        return Err(format!("'replacement' can not be set for {shown} action"));
    }
    // Prometheus 3 label names: any non-empty UTF-8 text.
    if action == "labelmap" && rc.replacement.as_deref() == Some("") {
        return Err(format!("\"\" is invalid 'replacement' for {shown} action"));
    }
    let separator_set = rc.separator.as_deref().is_some_and(|s| s != ";");
    let modulus_set = modulus != 0;
    if (action == "keepequal" || action == "dropequal")
        && (regex.as_deref().is_some_and(|r| r != "(.*)")
            || modulus_set
            || separator_set
            || replacement_set)
    {
        return Err(format!(
            "{shown} action requires only 'source_labels' and `target_label`, and no other fields"
        ));
    }
    if (action == "labeldrop" || action == "labelkeep")
        && (!rc.source_labels.is_empty()
            || !target.is_empty()
            || modulus_set
            || separator_set
            || replacement_set)
    {
        return Err(format!(
            "{shown} action requires only 'regex', and no other fields"
        ));
    }
    Ok(())
}

/// Every relabeling of a list; the error names the list and the index.
pub fn relabelings(what: &str, rcs: &[CrRelabel]) -> Result<(), String> {
    for (i, rc) in rcs.iter().enumerate() {
        relabeling(rc).map_err(|e| format!("{what}[{i}]: {e}"))?;
    }
    Ok(())
}

/// The operator's `validateScrapeIntervalAndTimeout`: a timeout is checked against the
/// resource's interval, else the allocator's `prometheus_cr.scrape_interval`.
pub fn interval_and_timeout(
    interval: Option<&str>,
    timeout: Option<&str>,
    default_interval: &str,
) -> Result<(), String> {
    let Some(timeout) = timeout.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let interval = interval
        .filter(|i| !i.is_empty())
        .unwrap_or(default_interval);
    // `model.ParseDuration`, as the operator parses them: "0" without a unit is zero.
    let si = crate::config::prom_duration_ms(interval)
        .map_err(|e| format!("invalid scrapeInterval {interval:?}: {e}"))?;
    let st = crate::config::prom_duration_ms(timeout)
        .map_err(|e| format!("invalid scrapeTimeout: {timeout:?}: {e}"))?;
    if st > si {
        return Err(format!(
            "scrapeTimeout {timeout:?} greater than scrapeInterval {interval:?}"
        ));
    }
    Ok(())
}

/// The operator's `validateScrapeClass`: a class named must exist.
pub fn scrape_class(name: Option<&str>, classes: &[ScrapeClass]) -> Result<(), String> {
    match name.filter(|n| !n.is_empty()) {
        Some(n) if !classes.iter().any(|c| c.name == n) => Err(format!(
            "scrapeClass {n:?} not found in the allocator's prometheus_cr.scrape_classes"
        )),
        _ => Ok(()),
    }
}

/// A `tlsConfig` as `TLSConfig.Validate`/`SafeTLSConfig.Validate` check it (the file fields
/// exist only where the CRD has them, so one check serves both).
pub fn tls(t: &Value) -> Result<(), String> {
    let set = |k: &str| {
        t.get(k)
            .is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty()) && !v.is_null())
    };
    let file = |k: &str| {
        t.get(k)
            .and_then(Value::as_str)
            .is_some_and(|f| !f.is_empty())
    };
    for k in ["ca", "cert"] {
        if let Some(r) = t.get(k) {
            if r.get("secret").is_some_and(|v| !v.is_null())
                && r.get("configMap").is_some_and(|v| !v.is_null())
            {
                return Err(format!(
                    "tlsConfig.{k}: cannot specify both Secret and ConfigMap"
                ));
            }
        }
    }
    if let (Some(max), Some(min)) = (
        t.get("maxVersion").and_then(Value::as_str),
        t.get("minVersion").and_then(Value::as_str),
    ) {
        if max < min {
            return Err("tlsConfig: maxVersion must more than or equal to minVersion".into());
        }
    }
    for (asset, f) in [
        ("ca", "caFile"),
        ("cert", "certFile"),
        ("keySecret", "keyFile"),
    ] {
        if set(asset) && file(f) {
            return Err(format!(
                "tlsConfig: cannot specify both '{f}' and '{asset}'"
            ));
        }
    }
    let has_cert = set("cert") || file("certFile");
    let has_key = set("keySecret") || file("keyFile");
    if has_cert && !has_key {
        return Err("tlsConfig: cannot specify client cert without client key".into());
    }
    if has_key && !has_cert {
        return Err("tlsConfig: cannot specify client key without client cert".into());
    }
    Ok(())
}

/// A proxy as `ProxyConfig.Validate` checks it.
pub fn proxy(p: &Proxy) -> Result<(), String> {
    let from_env = p.proxy_from_environment == Some(true);
    let url = p.proxy_url.as_deref().is_some_and(|u| !u.is_empty());
    let no_proxy = p.no_proxy.as_deref().is_some_and(|n| !n.is_empty());
    let headers = p
        .proxy_connect_header
        .as_ref()
        .and_then(Value::as_object)
        .filter(|h| !h.is_empty());
    if headers.is_some() && !from_env && !url {
        return Err("if proxyConnectHeader is configured, proxyUrl or proxyFromEnvironment must also be configured".into());
    }
    if from_env && url {
        return Err(
            "if proxyFromEnvironment is configured, proxyUrl must not be configured".into(),
        );
    }
    if from_env && no_proxy {
        return Err("if proxyFromEnvironment is configured, noProxy must not be configured".into());
    }
    if !url && no_proxy {
        return Err("if noProxy is configured, proxyUrl must also be configured".into());
    }
    for (k, v) in headers.into_iter().flatten() {
        if v.as_array().is_none_or(|a| a.is_empty()) {
            return Err(format!(
                "proxyConnetHeader[{k}]: selector must not be empty"
            ));
        }
    }
    Ok(())
}

/// `oauth2` as `OAuth2.Validate` checks it, with its own TLS and proxy.
fn oauth2(o: &Value) -> Result<(), String> {
    let empty = |k: &str| {
        o.get(k)
            .is_none_or(|v| v.is_null() || v.as_str() == Some(""))
    };
    if empty("tokenUrl") {
        return Err("oauth2: OAuth2 tokenURL must be specified".into());
    }
    if o.get("clientId")
        .is_none_or(|c| c.as_object().is_none_or(|m| m.is_empty()))
    {
        return Err("oauth2: OAuth2 'clientID' must be specified".into());
    }
    if let Some(t) = o.get("tlsConfig") {
        tls(t).map_err(|e| format!("oauth2: invalid OAuth2 'tlsConfig': {e}"))?;
    }
    let p: Proxy = serde_json::from_value(o.clone()).unwrap_or_default();
    proxy(&p).map_err(|e| format!("oauth2: invalid OAuth2 proxyConfig: {e}"))
}

/// The HTTP client settings every kind has: TLS, OAuth2 and proxy.
fn client(
    tls_config: &Option<Value>,
    oauth: &Option<Value>,
    p: Option<&Proxy>,
) -> Result<(), String> {
    if let Some(t) = tls_config {
        tls(t)?;
    }
    if let Some(o) = oauth {
        oauth2(o)?;
    }
    if let Some(p) = p {
        proxy(p)?;
    }
    Ok(())
}

/// The operator's `validateProberURL`: `host` or `host:port` (a DNS name or an IP).
pub fn prober_url(url: &str) -> Result<(), String> {
    let invalid = || {
        format!("{url:?} url specified in proberSpec is invalid, it should be of the format `hostname` or `hostname:port`")
    };
    match split_host_port(url) {
        Some((host, port)) => {
            let port_ok = port.parse::<u32>().is_ok_and(|p| (1..65536).contains(&p))
                && !port.starts_with('+');
            if !is_host(host) || !port_ok {
                return Err(invalid());
            }
        }
        None if !is_host(url) => return Err(invalid()),
        None => {}
    }
    Ok(())
}

/// Go's `net.SplitHostPort`, for the inputs that matter here: None when there is no port.
fn split_host_port(s: &str) -> Option<(&str, &str)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = s.rsplit_once(':')?;
    // More than one colon without brackets: Go reports "too many colons".
    if host.contains(':') {
        return None;
    }
    Some((host, port))
}

/// govalidator's `IsHost`: an IP address or a DNS name.
fn is_host(s: &str) -> bool {
    if s.parse::<std::net::IpAddr>().is_ok() {
        return true;
    }
    if s.is_empty() || s.replace('.', "").len() > 255 {
        return false;
    }
    // ^([a-zA-Z0-9_]{1}[a-zA-Z0-9_-]{0,62}){1}(\.[a-zA-Z0-9_]{1}[a-zA-Z0-9_-]{0,62})*[\._]?$
    let body = s
        .strip_suffix('.')
        .or_else(|| s.strip_suffix('_'))
        .filter(|b| !b.is_empty())
        .unwrap_or(s);
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    body.split('.').all(|label| {
        let mut chars = label.chars();
        chars.next().is_some_and(word) && label.len() <= 63 && chars.all(|c| word(c) || c == '-')
    })
}

/// Endpoints of a ServiceMonitor or PodMonitor.
fn endpoints(what: &str, eps: &[Endpoint], default_interval: &str) -> Result<(), String> {
    for (i, ep) in eps.iter().enumerate() {
        let at = |e: String| format!("{what}[{i}]: {e}");
        client(&ep.tls_config, &ep.oauth2, Some(&ep.proxy)).map_err(at)?;
        interval_and_timeout(
            ep.interval.as_deref(),
            ep.scrape_timeout.as_deref(),
            default_interval,
        )
        .map_err(at)?;
        relabelings("relabelConfigs", &ep.relabelings).map_err(at)?;
        relabelings("metricRelabelConfigs", &ep.metric_relabelings).map_err(at)?;
    }
    Ok(())
}

pub fn service_monitor(
    spec: &ServiceMonitorSpec,
    classes: &[ScrapeClass],
    default_interval: &str,
) -> Result<(), String> {
    spec.selector.validate()?;
    endpoints("endpoints", &spec.endpoints, default_interval)?;
    scrape_class(spec.scrape_class.as_deref(), classes)
}

pub fn pod_monitor(
    spec: &PodMonitorSpec,
    classes: &[ScrapeClass],
    default_interval: &str,
) -> Result<(), String> {
    spec.selector
        .validate()
        .map_err(|e| format!("failed to parse label selector: {e}"))?;
    endpoints("endpoint", &spec.pod_metrics_endpoints, default_interval)?;
    scrape_class(spec.scrape_class.as_deref(), classes)
}

pub fn probe(
    spec: &ProbeSpec,
    classes: &[ScrapeClass],
    default_interval: &str,
) -> Result<(), String> {
    scrape_class(spec.scrape_class.as_deref(), classes)?;
    interval_and_timeout(
        spec.interval.as_deref(),
        spec.scrape_timeout.as_deref(),
        default_interval,
    )?;
    relabelings("metricRelabelConfigs", &spec.metric_relabelings)?;
    if let Some(s) = &spec.targets.static_config {
        relabelings("targets.staticConfig.relabelConfigs", &s.relabeling_configs)?;
    }
    if let Some(i) = &spec.targets.ingress {
        relabelings("targets.ingress.relabelConfigs", &i.relabeling_configs)?;
    }
    proxy(&spec.prober.proxy).map_err(|e| format!("proxy configuration: {e}"))?;
    prober_url(&spec.prober.url)
}

pub fn scrape_config(
    spec: &ScrapeConfigSpec,
    classes: &[ScrapeClass],
    default_interval: &str,
) -> Result<(), String> {
    scrape_class(spec.scrape_class.as_deref(), classes)?;
    relabelings("relabelConfigs", &spec.relabelings)?;
    client(&spec.tls_config, &spec.oauth2, Some(&spec.proxy))?;
    interval_and_timeout(
        spec.scrape_interval.as_deref(),
        spec.scrape_timeout.as_deref(),
        default_interval,
    )?;
    relabelings("metricRelabelConfigs", &spec.metric_relabelings)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rc(v: serde_json::Value) -> CrRelabel {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn refuses_what_the_operators_validator_refuses() {
        for (bad, why) in [
            (serde_json::json!({"regex": "(unclosed"}), "invalid regex"),
            (
                serde_json::json!({"action": "HashMod", "targetLabel": "x"}),
                "non-zero modulus",
            ),
            (
                serde_json::json!({"sourceLabels": ["a"]}),
                "needs targetLabel",
            ),
            (
                serde_json::json!({"action": "Lowercase", "targetLabel": "x", "replacement": "y"}),
                "'replacement' can not be set",
            ),
            (
                serde_json::json!({"action": "LabelDrop", "regex": "x", "sourceLabels": ["a"]}),
                "requires only 'regex'",
            ),
            (
                serde_json::json!({"action": "KeepEqual", "targetLabel": "x", "regex": "a"}),
                "requires only 'source_labels'",
            ),
        ] {
            let e = relabelings("relabelings", &[rc(bad.clone())]).unwrap_err();
            assert!(
                e.starts_with("relabelings[0]: ") && e.contains(why),
                "{bad}: {e}"
            );
        }
        assert!(relabelings("r", &[rc(serde_json::json!({"targetLabel": "team.name"}))]).is_ok());
        assert!(interval_and_timeout(Some("10s"), Some("30s"), "30s").is_err());
        assert!(interval_and_timeout(None, Some("30s"), "30s").is_ok());
        assert!(interval_and_timeout(None, Some("1m"), "30s").is_err());
        for ok in [
            "blackbox:9115",
            "blackbox.observability.svc",
            "10.0.0.1:80",
            "[::1]:9115",
        ] {
            assert!(prober_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://blackbox:9115",
            "blackbox:0",
            "black box",
            "blackbox:9115/probe",
        ] {
            assert!(prober_url(bad).is_err(), "{bad}");
        }
    }
}
