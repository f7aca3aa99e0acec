//! The checks prometheus-operator's resource selector makes before it generates anything for a
//! resource (the version the Go allocator pins, Prometheus 3 label names): relabelings that its
//! validator refuses, a scrape timeout above the scrape interval, a scrape class that does not
//! exist. A resource that fails one gets no job at all, as upstream; serving its jobs anyway
//! would hand collectors a configuration they refuse (a timeout above the interval makes the
//! receiver refuse the whole configuration).

use super::monitors::{
    CrRelabel, Endpoint, PodMonitorSpec, ProbeSpec, ScrapeClass, ScrapeConfigSpec,
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
    let si = crate::config::duration(interval)
        .map_err(|e| format!("invalid scrapeInterval {interval:?}: {e}"))?;
    let st = crate::config::duration(timeout)
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

/// Endpoints of a ServiceMonitor or PodMonitor.
fn endpoints(what: &str, eps: &[Endpoint], default_interval: &str) -> Result<(), String> {
    for (i, ep) in eps.iter().enumerate() {
        let at = |e: String| format!("{what}[{i}]: {e}");
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
    endpoints("endpoints", &spec.endpoints, default_interval)?;
    scrape_class(spec.scrape_class.as_deref(), classes)
}

pub fn pod_monitor(
    spec: &PodMonitorSpec,
    classes: &[ScrapeClass],
    default_interval: &str,
) -> Result<(), String> {
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
    Ok(())
}

pub fn scrape_config(
    spec: &ScrapeConfigSpec,
    classes: &[ScrapeClass],
    default_interval: &str,
) -> Result<(), String> {
    scrape_class(spec.scrape_class.as_deref(), classes)?;
    relabelings("relabelConfigs", &spec.relabelings)?;
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
    }
}
