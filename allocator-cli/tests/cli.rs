//! The `allocate` contract, checked by running the binary.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], input: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_allocate"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn repo_file(path: &str) -> String {
    std::fs::read_to_string(format!("{}/../{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

#[test]
fn sample_runs_and_every_target_gets_a_hash_and_a_collector() {
    let (code, out, err) = run(&[], &repo_file("allocator-cli/sample.json"));
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 20);
    for t in targets {
        assert_eq!(t["hash"].as_str().unwrap().len(), 16);
        assert!(t["collector"]
            .as_str()
            .unwrap()
            .starts_with("otel-collector-"));
    }
    let total: u64 = v["collectors"]
        .as_object()
        .unwrap()
        .values()
        .map(|c| c["targets"].as_u64().unwrap())
        .sum();
    assert_eq!(total, 20);
}

/// Hashes and collectors equal the Go vectors (testdata/parity, written by the upstream modules).
#[test]
fn output_equals_the_go_parity_vectors() {
    let f: serde_json::Value =
        serde_json::from_str(&repo_file("testdata/parity/ring-v1.0.0.json")).unwrap();
    let scenario = &f["scenarios"][0];
    let set = &scenario["collector_sets"][0];
    let targets: Vec<serde_json::Value> = scenario["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            let labels: serde_json::Map<String, serde_json::Value> = t["labels"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| (p[0].as_str().unwrap().to_owned(), p[1].clone()))
                .collect();
            serde_json::json!({"job": t["job"], "labels": labels})
        })
        .collect();
    let collectors: Vec<serde_json::Value> = set["collectors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| serde_json::json!({"name": c}))
        .collect();
    let input = serde_json::json!({
        "strategy": "consistent-hashing", "ring": "v1.0.0",
        "collectors": collectors, "targets": targets,
    });
    let (code, out, err) = run(&[], &input.to_string());
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    for (i, (got, want)) in v["targets"]
        .as_array()
        .unwrap()
        .iter()
        .zip(scenario["targets"].as_array().unwrap())
        .enumerate()
    {
        let key: u64 = want["key"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            got["hash"].as_str().unwrap(),
            format!("{key:016x}"),
            "target {i}"
        );
        let owner = set["assigned"][i].as_u64().unwrap() as usize;
        assert_eq!(got["collector"], set["collectors"][owner], "target {i}");
    }
}

#[test]
fn strategies_flag_lists_every_strategy() {
    let (code, out, _) = run(&["--strategies"], "");
    assert_eq!(code, 0);
    assert_eq!(
        out.lines().collect::<Vec<_>>(),
        [
            "consistent-hashing",
            "least-weighted",
            "per-node",
            "bounded-hashing",
            "rebalancing"
        ]
    );
}

#[test]
fn bad_input_gives_a_message_naming_the_problem_and_no_panic() {
    let cases = [
        ("not json", "invalid input"),
        (
            r#"{"strategy":"x","collectors":[],"targets":[]}"#,
            "unknown strategy \"x\"",
        ),
        (
            r#"{"strategy":"per-node","collectors":[],"targets":[],"extra":1}"#,
            "unknown field `extra`",
        ),
        (
            r#"{"strategy":"least-weighted","ring":"v9","collectors":[],"targets":[]}"#,
            "\"ring\"",
        ),
        (
            r#"{"strategy":"least-weighted","load_factor":0.5,"collectors":[],"targets":[]}"#,
            "load_factor",
        ),
        (
            r#"{"strategy":"least-weighted","collectors":[{"name":"a"},{"name":"a"}],"targets":[]}"#,
            "duplicate collector \"a\"",
        ),
        (
            r#"{"strategy":"least-weighted","collectors":[{"name":""}],"targets":[]}"#,
            "collector name is empty",
        ),
        (
            r#"{"strategy":"least-weighted","collectors":[],"targets":[{"job":"j","labels":{"a":"1"}}]}"#,
            "targets[0]",
        ),
        (
            r#"{"strategy":"least-weighted","collectors":[],"targets":[{"job":"j","labels":{"__address__":"1","__address__":"2"}}]}"#,
            "appears more than once",
        ),
        (
            r#"{"strategy":"least-weighted","collectors":[],"targets":[{"job":"j","labels":{"__address__":"x"},"weight":-1}]}"#,
            "invalid input",
        ),
        (
            r#"{"strategy":"least-weighted","collectors":[],"targets":[{"job":"j","labels":{"__address__":7}}]}"#,
            "invalid input",
        ),
        (
            r#"{"strategy":"least-weighted","weighted":true,"collectors":[{"name":"a"}],"targets":[{"job":"j","labels":{"__address__":"x"},"weight":5},{"job":"k","labels":{"__address__":"y"}},{"job":"j","labels":{"__address__":"x"},"weight":1}]}"#,
            "targets[2] (job \"j\") is the same target as targets[0] with a different weight (1 vs 5)",
        ),
    ];
    for (input, needle) in cases {
        let (code, out, err) = run(&[], input);
        assert_eq!(code, 1, "{input}");
        assert!(out.is_empty());
        assert!(err.contains(needle), "{input}: {err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = run(&["--bogus"], "");
    assert_eq!(code, 2);
    assert!(err.contains("usage"));
}
