//! `prometheus_cr.scrape_classes` in the configuration file: the Prometheus CRD's types, which
//! the Go allocator loads with their scalars typed. A side-by-side run with the real Go allocator
//! (Operator main, prometheus-operator v0.93.1) loaded every class below and served the class's
//! `hashmod` rule with `modulus: 3` and its `insecure_skip_verify: true`; ours refused
//! `default: true` ("expected a boolean") and read `insecureSkipVerify: true` as false.

use std::path::Path;

fn classes(yaml: &str) -> Vec<allocator_service::k8s::monitors::ScrapeClass> {
    let text = format!(
        "discovery: kubernetes\ncollector_namespace: ns\nprometheus_cr:\n  enabled: true\n\
         {yaml}config:\n  scrape_configs: []\n"
    );
    let cfg = allocator_service::parse(&text, Path::new(".")).unwrap();
    cfg.file.prometheus_cr.unwrap().scrape_classes
}

#[test]
fn scrape_classes_keep_their_types() {
    let c = classes(
        "  scrape_classes:\n\
         \x20   - name: secure\n\
         \x20     default: true\n\
         \x20     attachMetadata: {node: yes}\n\
         \x20     tlsConfig: {insecureSkipVerify: true, serverName: \"true\"}\n\
         \x20     relabelings:\n\
         \x20       - {sourceLabels: [__address__], targetLabel: __tmp_hash, modulus: 3, action: hashmod}\n\
         \x20   - name: plain\n\
         \x20     default: false\n",
    );
    assert_eq!(c.len(), 2);
    assert!(c[0].default);
    assert!(!c[1].default);
    assert_eq!(c[0].attach_metadata.as_ref().unwrap().node, Some(true));
    let tls = c[0].tls_config.as_ref().unwrap();
    assert_eq!(tls["insecureSkipVerify"], serde_json::Value::Bool(true));
    // A string field keeps its text, even one that reads as a boolean.
    assert_eq!(tls["serverName"], serde_json::Value::String("true".into()));
    assert_eq!(c[0].relabelings[0].modulus, Some(3));
}

#[test]
fn a_quoted_boolean_is_read_as_go_reads_it() {
    let c = classes("  scrape_classes:\n    - name: q\n      default: \"true\"\n");
    assert!(c[0].default);
}
