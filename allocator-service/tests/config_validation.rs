//! Configurations Prometheus 3 refuses are refused here too, with an error naming the key;
//! what Prometheus 3 accepts (UTF-8 label names) still loads. The expectations follow
//! prometheus v0.314 (`model.ParseDuration`, `relabel.Config.Validate` with UTF-8 names,
//! target group label names) and the service's own limits.

use std::path::Path;

fn parse(yaml: &str) -> Result<allocator_service::Loaded, String> {
    allocator_service::parse(yaml, Path::new("."))
}

fn job(extra: &str) -> String {
    format!(
        "collectors: [c0]\nconfig:\n  scrape_configs:\n    - job_name: j\n      static_configs:\n        - targets: ['a:1']\n{extra}"
    )
}

#[test]
fn configurations_prometheus_refuses_are_errors_naming_the_key() {
    let cases: &[(&str, String, &str)] = &[
        ("interval banana", job("      scrape_interval: banana\n"), "scrape_interval"),
        ("negative interval", job("      scrape_interval: -5s\n"), "scrape_interval"),
        ("timeout banana", job("      scrape_timeout: banana\n"), "scrape_timeout"),
        (
            "timeout above interval",
            job("      scrape_interval: 10s\n      scrape_timeout: 20s\n"),
            "greater than scrape_interval",
        ),
        (
            "global interval",
            "config:\n  global:\n    scrape_interval: 1.5m\n".into(),
            "config.global.scrape_interval",
        ),
        (
            "refresh_interval",
            "config:\n  scrape_configs:\n    - job_name: j\n      file_sd_configs:\n        - files: [x.yaml]\n          refresh_interval: -5s\n".into(),
            "refresh_interval",
        ),
        (
            "metric_relabel unknown action",
            job("      metric_relabel_configs:\n        - action: frobnicate\n"),
            "metric_relabel_configs[0]",
        ),
        (
            "metric_relabel bad regex",
            job("      metric_relabel_configs:\n        - source_labels: [a]\n          regex: '('\n          action: keep\n"),
            "metric_relabel_configs[0]",
        ),
        (
            "metric_relabel hashmod without modulus",
            job("      metric_relabel_configs:\n        - source_labels: [a]\n          target_label: b\n          action: hashmod\n"),
            "metric_relabel_configs[0]",
        ),
        (
            "empty static label name",
            "collectors: [c0]\nconfig:\n  scrape_configs:\n    - job_name: j\n      static_configs:\n        - targets: ['a:1']\n          labels: {'': x}\n".into(),
            "not a valid label name",
        ),
        (
            "empty source label",
            job("      relabel_configs:\n        - source_labels: ['']\n          action: keep\n"),
            "source_labels",
        ),
        (
            "labelmap to an empty name",
            job("      relabel_configs:\n        - regex: '(.*)'\n          replacement: ''\n          action: labelmap\n"),
            "labelmap",
        ),
        (
            "lowercase with a replacement",
            job("      relabel_configs:\n        - source_labels: [a]\n          target_label: b\n          replacement: x\n          action: lowercase\n"),
            "'replacement' can not be set",
        ),
        (
            "keepequal with a regex",
            job("      relabel_configs:\n        - source_labels: [a]\n          target_label: b\n          regex: x\n          action: keepequal\n"),
            "requires only 'source_labels' and 'target_label'",
        ),
        (
            // The job inherits the global scheme (Prometheus' ScrapeConfig.Validate).
            "dotted target label under the global legacy scheme",
            "collectors: [c0]\nconfig:\n  global:\n    metric_name_validation_scheme: legacy\n  scrape_configs:\n    - job_name: j\n      static_configs:\n        - targets: ['a:1']\n      relabel_configs:\n        - source_labels: [a]\n          target_label: team.name\n".into(),
            "\"team.name\" is invalid 'target_label' for replace action",
        ),
        (
            "metric_relabel labelmap to a dotted name under the job's legacy scheme",
            job("      metric_name_validation_scheme: legacy\n      metric_relabel_configs:\n        - regex: 'a_(.*)'\n          replacement: 'b.$1'\n          action: labelmap\n"),
            "metric_relabel_configs[0]: \"b.$1\" is invalid 'replacement' for labelmap action",
        ),
        (
            "collector twice",
            "collectors: [c0, c0, c1]\nconfig: {}\n".into(),
            "collectors: collector \"c0\" is listed twice",
        ),
        (
            "empty collector name",
            "collectors: [c0, '']\nconfig: {}\n".into(),
            "collectors: collector 1 has an empty name",
        ),
        (
            "deep nesting",
            format!("config: {}", "{a: ".repeat(100)),
            "nested deeper than 64",
        ),
    ];
    for (what, yaml, needle) in cases {
        match parse(yaml) {
            Ok(_) => panic!("{what}: accepted"),
            Err(e) => assert!(e.contains(needle), "{what}: {e:?} does not name {needle:?}"),
        }
    }
}

#[test]
fn what_prometheus_3_accepts_still_loads() {
    let ok = [
        job("      scrape_interval: 1m30s\n      scrape_timeout: 0\n"),
        job("      relabel_configs:\n        - source_labels: [a]\n          target_label: team.name\n"),
        "collectors: [c0]\nconfig:\n  scrape_configs:\n    - job_name: j\n      static_configs:\n        - targets: ['a:1']\n          labels: {'service.name': x, 'ünï': y}\n".into(),
        job("      relabel_configs:\n        - source_labels: [a]\n          target_label: b\n          action: dropequal\n"),
        job("      metric_relabel_configs:\n        - source_labels: [__name__]\n          regex: 'go_.*'\n          action: drop\n"),
        // A job's own utf8 scheme overrides a global legacy one.
        "collectors: [c0]\nconfig:\n  global:\n    metric_name_validation_scheme: legacy\n    metric_name_escaping_scheme: underscores\n  scrape_configs:\n    - job_name: j\n      metric_name_validation_scheme: utf8\n      static_configs:\n        - targets: ['a:1']\n      relabel_configs:\n        - source_labels: [a]\n          target_label: team.name\n".into(),
        // Legacy names with $ references pass relabelTargetLegacy.
        job("      metric_name_validation_scheme: legacy\n      relabel_configs:\n        - source_labels: [a]\n          regex: '(.*)'\n          target_label: 'x_${1}_y'\n"),
    ];
    for yaml in &ok {
        if let Err(e) = parse(yaml) {
            panic!("refused: {e}\n{yaml}");
        }
    }
}

/// `prometheus_cr.secret_namespaces` as the Go allocator reads it: a `[]string` decoded by
/// mapstructure without weak typing (`internal/config/config.go`), defaulting to the collector
/// namespace when unset or empty (`GetSecretsAllowList`); a null element is an empty string
/// (every namespace); a scalar, a map or a non-string element is refused.
#[test]
fn secret_namespaces_reads_as_the_go_allocator_reads_it() {
    let cfg = |value: &str| {
        format!(
            "config: {{}}\ndiscovery: kubernetes\ncollector_namespace: observability\nprometheus_cr:\n  enabled: true\n{value}"
        )
    };
    let loads = [
        ("", vec!["observability"]),
        ("  secret_namespaces:\n", vec!["observability"]),
        ("  secret_namespaces: []\n", vec!["observability"]),
        (
            "  secret_namespaces: [shop, billing]\n",
            vec!["shop", "billing"],
        ),
        (
            "  secret_namespaces:\n    - shop\n    - ~\n",
            vec!["shop", ""],
        ),
    ];
    for (value, want) in loads {
        match parse(&cfg(value)) {
            Ok(l) => assert_eq!(l.by_name.secret_namespaces, want, "{value}"),
            Err(e) => panic!("{value}: refused: {e}"),
        }
    }
    for value in [
        "  secret_namespaces: shop\n",
        "  secret_namespaces: {}\n",
        "  secret_namespaces: [shop, 1]\n",
        "  secret_namespaces: [true]\n",
        "  secret_namespaces: [[shop]]\n",
    ] {
        match parse(&cfg(value)) {
            Ok(_) => panic!("{value}: accepted"),
            Err(e) => assert!(e.contains("secret_namespaces"), "{value}: {e}"),
        }
    }
}
