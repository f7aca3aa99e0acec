//! Which fields of the Prometheus Operator resources this allocator translates. A resource
//! that sets any other field (or a value the service cannot discover for, such as a field
//! selector) is refused with the field named, rather than served as a job that differs
//! from the one prometheus-operator's generator writes (the Go allocator serves that one).

use serde_json::Value;

/// Limits, protocols and histogram switches: every kind has them at the level of its spec.
const LIMITS: &[&str] = &[
    "sampleLimit",
    "targetLimit",
    "labelLimit",
    "labelNameLengthLimit",
    "labelValueLengthLimit",
    "keepDroppedTargets",
    "scrapeProtocols",
    "fallbackScrapeProtocol",
    "scrapeNativeHistograms",
    "scrapeClassicHistograms",
    "nativeHistogramBucketLimit",
    "nativeHistogramMinBucketFactor",
    "convertClassicHistogramsToNHCB",
];

const PROXY: &[&str] = &[
    "proxyUrl",
    "noProxy",
    "proxyFromEnvironment",
    "proxyConnectHeader",
];

/// The HTTP client fields of endpoints, Probes and ScrapeConfigs.
const CLIENT: &[&str] = &[
    "authorization",
    "basicAuth",
    "oauth2",
    "bearerTokenSecret",
    "tlsConfig",
    "followRedirects",
];

const MONITOR: &[&str] = &[
    "jobLabel",
    "podTargetLabels",
    "selector",
    "selectorMechanism",
    "namespaceSelector",
    "attachMetadata",
    "scrapeClass",
];

const ENDPOINT: &[&str] = &[
    "port",
    "targetPort",
    "path",
    "scheme",
    "params",
    "interval",
    "scrapeTimeout",
    "honorLabels",
    "honorTimestamps",
    "trackTimestampsStaleness",
    "metricRelabelings",
    "relabelings",
    "filterRunning",
    "enableHttp2",
];

const PROBE: &[&str] = &[
    "jobName",
    "prober",
    "module",
    "targets",
    "interval",
    "scrapeTimeout",
    "metricRelabelings",
    "scrapeClass",
    "params",
    "enableHttp2",
];

const SCRAPE_CONFIG: &[&str] = &[
    "jobName",
    "staticConfigs",
    "fileSDConfigs",
    "httpSDConfigs",
    "kubernetesSDConfigs",
    "relabelings",
    "metricsPath",
    "scrapeInterval",
    "scrapeTimeout",
    "honorTimestamps",
    "trackTimestampsStaleness",
    "honorLabels",
    "params",
    "scheme",
    "enableCompression",
    "enableHTTP2",
    "metricRelabelings",
    "scrapeClass",
    "bodySizeLimit",
    "nameValidationScheme",
    "nameEscapingScheme",
];

/// The `path` of every key of object `v` not in any of `allowed`.
fn unknown(v: &Value, path: &str, allowed: &[&[&str]], out: &mut Vec<String>) {
    for k in v.as_object().into_iter().flat_map(|m| m.keys()) {
        if !allowed.iter().any(|a| a.contains(&k.as_str())) {
            out.push(format!("{path}{k}"));
        }
    }
}

fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = (usize, &'a Value)> {
    v.get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
}

/// The fields of a resource's `spec` this allocator does not translate (empty: supported).
pub fn unsupported(kind: &str, spec: &Value) -> Vec<String> {
    let mut out = values(spec);
    match kind {
        "ServiceMonitor" => {
            unknown(
                spec,
                "",
                &[
                    MONITOR,
                    LIMITS,
                    &[
                        "targetLabels",
                        "endpoints",
                        "serviceDiscoveryRole",
                        "bodySizeLimit",
                    ],
                ],
                &mut out,
            );
            for (i, ep) in items(spec, "endpoints") {
                let path = format!("endpoints[{i}].");
                unknown(
                    ep,
                    &path,
                    &[ENDPOINT, CLIENT, PROXY, &["bearerTokenFile"]],
                    &mut out,
                );
            }
        }
        "PodMonitor" => {
            unknown(
                spec,
                "",
                &[MONITOR, LIMITS, &["podMetricsEndpoints", "bodySizeLimit"]],
                &mut out,
            );
            for (i, ep) in items(spec, "podMetricsEndpoints") {
                let path = format!("podMetricsEndpoints[{i}].");
                unknown(
                    ep,
                    &path,
                    &[ENDPOINT, CLIENT, PROXY, &["portNumber"]],
                    &mut out,
                );
            }
        }
        "Probe" => {
            unknown(spec, "", &[PROBE, LIMITS, CLIENT], &mut out);
            if let Some(p) = spec.get("prober") {
                unknown(p, "prober.", &[&["url", "scheme", "path"], PROXY], &mut out);
            }
        }
        "ScrapeConfig" => {
            unknown(spec, "", &[SCRAPE_CONFIG, LIMITS, CLIENT, PROXY], &mut out);
            for (i, k) in items(spec, "kubernetesSDConfigs") {
                let path = format!("kubernetesSDConfigs[{i}].");
                unknown(
                    k,
                    &path,
                    &[&["role", "namespaces", "attachMetadata", "selectors"]],
                    &mut out,
                );
                let role = k.get("role").and_then(Value::as_str).unwrap_or_default();
                let selectors = k
                    .get("selectors")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                if let Err(e) = super::monitors::role_selectors(role, selectors) {
                    out.push(format!("{path}{e}"));
                }
                if ![
                    "pod",
                    "service",
                    "ingress",
                    "endpoints",
                    "endpointslice",
                    "node",
                ]
                .contains(&role.to_ascii_lowercase().as_str())
                {
                    out.push(format!("{path}role: {role}"));
                }
            }
            for (i, h) in items(spec, "httpSDConfigs") {
                let path = format!("httpSDConfigs[{i}].");
                let known: &[&str] = &[
                    "url",
                    "refreshInterval",
                    "authorization",
                    "basicAuth",
                    "tlsConfig",
                ];
                unknown(h, &path, &[known], &mut out);
            }
            for (i, f) in items(spec, "fileSDConfigs") {
                let path = format!("fileSDConfigs[{i}].");
                unknown(f, &path, &[&["files", "refreshInterval"]], &mut out);
            }
        }
        _ => {}
    }
    if spec
        .get("selectorMechanism")
        .and_then(Value::as_str)
        .is_some_and(|m| m != "RelabelConfig")
    {
        out.push("selectorMechanism: RoleSelector".into());
    }
    out
}

/// Values of translated fields the service cannot write as the generator and Prometheus'
/// loader would: a byte size or quantity it cannot convert exactly, and a ScrapeConfig's UTF-8
/// escaping with legacy validation (which the loader refuses, taking every generated job away
/// in the Go allocator; here only this resource is refused).
fn values(spec: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(b) = spec.get("bodySizeLimit") {
        let ok = b
            .as_str()
            .is_some_and(|b| b.is_empty() || crate::scrape_defaults::parse_bytes(b).is_ok());
        if !ok {
            out.push(format!("bodySizeLimit: {b}"));
        }
    }
    if let Some(q) = spec.get("nativeHistogramMinBucketFactor") {
        if let Err(e) = super::quantity::approximate_f64(q) {
            out.push(format!("nativeHistogramMinBucketFactor: {e}"));
        }
    }
    let field = |k: &str| spec.get(k).and_then(Value::as_str);
    if field("nameValidationScheme") == Some("Legacy")
        && field("nameEscapingScheme") == Some("AllowUTF8")
    {
        out.push("nameEscapingScheme: AllowUTF8 with nameValidationScheme: Legacy".into());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_each_field_it_does_not_translate() {
        let sm = json!({
            "selector": {}, "bodySizeLimit": "10MB", "fallbackScrapeProtocol2": 1,
            "endpoints": [{"port": "a"}, {"port": "b", "followRedirects": true, "sigv4": {}}]
        });
        assert_eq!(
            unsupported("ServiceMonitor", &sm),
            vec!["fallbackScrapeProtocol2", "endpoints[1].sigv4"]
        );
        // Values that cannot be written as the loader would.
        let sc = json!({"bodySizeLimit": "10kB", "nativeHistogramMinBucketFactor": "1.5Ki",
            "nameValidationScheme": "Legacy", "nameEscapingScheme": "AllowUTF8"});
        assert_eq!(unsupported("ScrapeConfig", &sc).len(), 3);
        let sc = json!({"kubernetesSDConfigs": [{"role": "Node"}, {"role": "Endpoints"}, {"role": "Dns"}], "dnsSDConfigs": []});
        assert_eq!(
            unsupported("ScrapeConfig", &sc),
            vec!["dnsSDConfigs", "kubernetesSDConfigs[2].role: Dns"]
        );
        // Both endpoint roles of a ServiceMonitor are served.
        for role in ["Endpoints", "EndpointSlice"] {
            let sm =
                json!({"serviceDiscoveryRole": role, "selector": {}, "endpoints": [{"port": "a"}]});
            assert!(unsupported("ServiceMonitor", &sm).is_empty(), "{role}");
        }
        // The endpoints role takes endpoints, service and pod selectors, not endpointslice ones.
        let sel = json!({"kubernetesSDConfigs": [
            {"role": "Endpoints", "selectors": [{"role": "Endpoints", "label": "a"}, {"role": "Pod", "label": "b"}]},
            {"role": "Endpoints", "selectors": [{"role": "EndpointSlice", "label": "a"}]}
        ]});
        assert_eq!(
            unsupported("ScrapeConfig", &sel),
            vec!["kubernetesSDConfigs[1].selectors[0].role: EndpointSlice: not a selector this allocator applies to Endpoints discovery"]
        );
        // Label and field selectors are applied; a field selector that does not parse is
        // refused (prometheus-operator refuses it); one the API server refuses for the kind is
        // not (the discovery finds nothing, as Prometheus').
        let sel = json!({"kubernetesSDConfigs": [
            {"role": "Pod", "selectors": [{"role": "Pod", "label": "app=web"}]},
            {"role": "Pod", "selectors": [{"role": "Pod", "field": "spec.nodeName=a"}]},
            {"role": "Pod", "selectors": [{"role": "Pod", "field": "spec.nodeName"}]},
            {"role": "Pod", "selectors": [{"role": "Pod", "field": "status.hostIP=b"}]}
        ]});
        let refused = unsupported("ScrapeConfig", &sel);
        assert_eq!(refused.len(), 1, "{refused:?}");
        assert!(
            refused[0]
                .starts_with("kubernetesSDConfigs[2].selectors[0].field: \"spec.nodeName\": "),
            "{refused:?}"
        );
        assert!(unsupported(
            "PodMonitor",
            &json!({"podMetricsEndpoints": [{"portNumber": 1}]})
        )
        .is_empty());
    }
}
