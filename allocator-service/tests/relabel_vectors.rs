//! Our relabeling against Prometheus' own `model/relabel` package at the version the Go
//! allocator pins: `testdata/relabel-gen/vectors.json`, written by `make relabel-vectors`
//! from the upstream Go module (testdata/relabel-gen/README.md). Every case's rules are loaded
//! through the service's configuration loader from the same YAML text Prometheus' loader read, and
//! applied to the same labels: a config Prometheus refuses must be refused; one it accepts must be
//! accepted (or refused as a Go regex feature we document as unsupported, never run differently);
//! the kept/dropped answer, the final labels in the builder's range order and the item hash must
//! be equal.

use std::path::Path;

use allocator_core::LabelBuilder;
use allocator_service::{config, relabel};
use serde_json::Value;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/relabel-gen/vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("testdata/relabel-gen/vectors.json");
    serde_json::from_str(&text).expect("vectors.json parses")
}

/// A label list (`omitempty` leaves an empty one out).
fn pairs(v: &Value) -> Vec<(String, String)> {
    if v.is_null() {
        return Vec::new();
    }
    v.as_array()
        .expect("label list")
        .iter()
        .map(|l| {
            (
                l["n"].as_str().unwrap().to_owned(),
                l["v"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

/// The service's configuration file around the allocator configuration Prometheus loaded.
fn service_config(template: &str, rules: &str) -> String {
    let prom = template.replacen("%s", rules, 1);
    let mut text = String::from("config:\n");
    for line in prom.lines() {
        text.push_str("  ");
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Configurations Prometheus refuses that the service knowingly accepts, with the reason; each is
/// outside relabeling itself (the configuration's YAML layer) and listed in the test's output.
fn known_gap(rules: &str, go_error: &str) -> Option<&'static str> {
    if go_error.contains("cannot unmarshal !!str") && rules.contains("modulus: \"") {
        return Some("a quoted integer: config::yaml11 resolves scalars without their quoting");
    }
    if go_error.contains("action requires only 'regex'") && rules.contains("source_labels: []") {
        return Some(
            "source_labels: [] on labeldrop/labelkeep: RuleSpec keeps no written-but-empty list",
        );
    }
    None
}

#[test]
fn relabeling_matches_prometheus_relabel_package() {
    let v = vectors();
    let header = &v["header"];
    let template = header["config_template"].as_str().unwrap();
    let legacy_template = header["legacy_config_template"].as_str().unwrap();
    let job = header["job"].as_str().unwrap();
    let cases = v["cases"].as_array().unwrap();
    assert!(cases.len() >= 1000, "only {} cases", cases.len());
    let mut failures = Vec::new();
    let mut unsupported = Vec::new();
    let mut gaps = Vec::new();
    for c in cases {
        let id = c["id"].as_u64().unwrap();
        let rules = c["rules"].as_str().unwrap();
        let expected = c["result"].as_str().unwrap();
        // The -legacy cases load the rules into a job with `metric_name_validation_scheme: legacy`.
        let text = match c["scheme"].as_str() {
            Some("legacy") => service_config(legacy_template, rules),
            _ => service_config(template, rules),
        };
        let loaded = config::parse(&text, Path::new("."));
        let mut fail = |what: String| failures.push(format!("case {id}: rules {rules}\n  {what}"));
        let loaded = match (expected, loaded) {
            ("invalid", Ok(_)) => {
                let go_error = c["error"].as_str().unwrap();
                match known_gap(rules, go_error) {
                    Some(why) => gaps.push(format!("case {id}: {why}")),
                    None => fail(format!("Prometheus refuses ({go_error}), we accept")),
                }
                continue;
            }
            ("invalid", Err(_)) => continue,
            (_, Err(e)) if e.contains(relabel::UNSUPPORTED) => {
                unsupported.push(format!("case {id}: {e}"));
                continue;
            }
            (_, Err(e)) => {
                fail(format!("Prometheus accepts, we refuse: {e}"));
                continue;
            }
            (_, Ok(l)) => l,
        };
        let input = pairs(&c["input"]);
        let mut b = LabelBuilder::new(input.iter().map(|(n, v)| (n.as_str(), v.as_str())))
            .expect("distinct input names");
        let kept = relabel::apply(&loaded.rules[0], &mut b);
        match (expected, kept) {
            ("dropped", false) => {}
            ("dropped", true) => fail(format!(
                "Prometheus drops {input:?}, we keep {:?}",
                b.labels()
            )),
            ("kept", false) => fail(format!("Prometheus keeps {input:?}, we drop it")),
            ("kept", true) => {
                let want = pairs(&c["range"]);
                let got: Vec<(String, String)> = b
                    .range()
                    .map(|(n, v)| (n.to_owned(), v.to_owned()))
                    .collect();
                if got != want {
                    fail(format!(
                        "labels of {input:?} (range order):\n  Prometheus {want:?}\n  ours       {got:?}"
                    ));
                    continue;
                }
                let key: u64 = c["key"].as_str().unwrap().parse().unwrap();
                if b.target_key(job).0 != key {
                    fail(format!("item hash {} != Go's {key}", b.target_key(job).0));
                }
            }
            (other, _) => panic!("case {id}: unknown result {other:?}"),
        }
    }
    eprintln!(
        "relabel vectors: {} cases, {} refused as unsupported (documented in the service README)",
        cases.len(),
        unsupported.len()
    );
    for u in &unsupported {
        eprintln!("  {u}");
    }
    eprintln!(
        "relabel vectors: {} refused by Prometheus and accepted here (known gaps)",
        gaps.len()
    );
    for g in &gaps {
        eprintln!("  {g}");
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases differ from Prometheus:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}
