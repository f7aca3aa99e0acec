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
            r#"{"strategy":"least-weighted","zone_skew":0.1,"collectors":[],"targets":[]}"#,
            "zone_skew is only supported by rebalancing",
        ),
        (
            r#"{"strategy":"rebalancing","zone_skew":-1,"collectors":[],"targets":[]}"#,
            "zone_skew must be a finite number",
        ),
        (
            r#"{"strategy":"rebalancing","node_zones":{"n":"z"},"collectors":[],"targets":[]}"#,
            "\"node_zones\" needs \"zone_skew\"",
        ),
        (
            r#"{"strategy":"rebalancing","zone_skew":0.1,"node_zones":{"n":"z1","n":"z2"},"collectors":[],"targets":[]}"#,
            "\"node_zones\": invalid node zone table: node \"n\" is listed twice",
        ),
        (
            r#"{"strategy":"rebalancing","zone_skew":0.1,"node_zones":{"":"z"},"collectors":[],"targets":[]}"#,
            "a node name is empty",
        ),
        (
            r#"{"strategy":"rebalancing","zone_skew":0.1,"node_zones":{"n":3},"collectors":[],"targets":[]}"#,
            "invalid input",
        ),
        (
            r#"{"strategy":"rebalancing","zone_skew":0.1,"node_zones":[["n","z"]],"collectors":[],"targets":[]}"#,
            "an object of node names to zone names",
        ),
        (
            r#"{"strategy":"least-weighted","weighted":true,"collectors":[{"name":"a"}],"targets":[{"job":"j","labels":{"__address__":"x"},"weight":5},{"job":"k","labels":{"__address__":"y"}},{"job":"j","labels":{"__address__":"x"},"weight":1}]}"#,
            "targets[2] (job \"j\") is the same target as targets[0] with a different weight (1 vs 5)",
        ),
        (
            r#"{"strategy":"per-node","collectors":[{"name":"a","node":"n1"},{"name":"b","node":"n2"}],"targets":[{"job":"j","labels":{"__address__":"x:1","__meta_kubernetes_pod_node_name":"n1"}},{"job":"j","labels":{"__address__":"x:1","__meta_kubernetes_pod_node_name":"n2"}}]}"#,
            "targets[1] (job \"j\") is the same target as targets[0] on a different node (Some(\"n2\") vs Some(\"n1\"))",
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
    // An argument that is not UTF-8 is a bad argument too, not a panic.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_allocate"))
            .arg(std::ffi::OsStr::from_bytes(b"\xff"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("usage"));
    }
}

/// Zone-aware rebalancing: node-a and node-b are zone-1, node-c zone-2, a collector on each
/// node, targets spread evenly over the nodes, so every target fits in its zone and must sit
/// there (zones computed here from the input, not read from the tool). Without the table the
/// same input leaves some away, so the check means something.
#[test]
fn node_zones_keep_targets_in_their_zone() {
    let nodes = ["node-a", "node-b", "node-c"];
    let zone = |node: &str| if node == "node-c" { "zone-2" } else { "zone-1" };
    let targets: Vec<serde_json::Value> = (0..60)
        .map(|i| {
            serde_json::json!({"job": "pods", "labels": {
                "__address__": format!("10.0.{}.{}:8080", i / 7, i),
                "__meta_kubernetes_pod_node_name": nodes[i % 3],
            }})
        })
        .collect();
    let collectors: Vec<serde_json::Value> = (0..3)
        .map(|c| serde_json::json!({"name": format!("otel-{c}"), "node": nodes[c]}))
        .collect();
    let collector_zone = |name: &str| zone(nodes[name["otel-".len()..].parse::<usize>().unwrap()]);
    let mut input = serde_json::json!({
        "strategy": "rebalancing", "zone_skew": 0.1,
        "node_zones": {"node-a": "zone-1", "node-b": "zone-1", "node-c": "zone-2", "node-d": null},
        "collectors": collectors, "targets": targets,
    });
    let away = |input: &serde_json::Value| -> usize {
        let (code, out, err) = run(&[], &input.to_string());
        assert_eq!(code, 0, "{err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let got = v["targets"].as_array().unwrap();
        assert_eq!(got.len(), 60);
        (0..60)
            .filter(|&i| {
                collector_zone(got[i]["collector"].as_str().unwrap()) != zone(nodes[i % 3])
            })
            .count()
    };
    assert_eq!(away(&input), 0);
    input.as_object_mut().unwrap().remove("node_zones");
    assert!(
        away(&input) > 0,
        "without zones the placement should ignore them"
    );
}
