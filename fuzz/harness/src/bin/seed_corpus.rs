//! Writes the seed corpus of every fuzz target into `fuzz/corpus/<target>/seed-*`:
//! `cargo run -p allocator-fuzz --bin seed_corpus`. Inputs the fuzzer finds are added beside them.

use std::path::PathBuf;

use allocator_core::{
    Allocator, CollectorSpec, Config, Diff, PlacementHash, Strategy, TargetKey, TargetSpec,
};

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../corpus");
    let write = |target: &str, name: &str, data: &[u8]| {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("seed-{name}")), data).unwrap();
    };
    // Byte patterns that arbitrary decodes into small and large structures.
    let mut x: u64 = 0x5eed;
    let mut bytes = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    };
    for (i, n) in [16, 64, 256, 1024, 4096].into_iter().enumerate() {
        write("diff_sequence", &format!("random-{i}"), &bytes(n));
        write("labels", &format!("random-{i}"), &bytes(n));
    }
    // After the others, so their seeds stay as they were.
    for (i, n) in [64, 256, 1024, 4096, 16384].into_iter().enumerate() {
        write("c_abi", &format!("random-{i}"), &bytes(n));
    }
    for (i, strategy) in Strategy::ALL.into_iter().enumerate() {
        let mut a = Allocator::new(Config::with_strategy(strategy)).unwrap();
        let upsert = (0..20)
            .map(|k| {
                TargetSpec::new(
                    TargetKey(k),
                    PlacementHash::of_address(&format!("10.0.0.{k}:9100")),
                    "job",
                )
                .with_node(Some(["n0", "n1"][k as usize % 2]))
            })
            .collect();
        a.apply(&Diff {
            upsert,
            add_collectors: vec![CollectorSpec::on_node("c0", "n0"), CollectorSpec::new("c1")],
            ..Diff::default()
        })
        .unwrap();
        write(
            "snapshot_restore",
            &format!("{strategy}-{i}"),
            &a.snapshot(),
        );
    }
    write(
        "snapshot_restore",
        "empty",
        &Allocator::new(Config::default()).unwrap().snapshot(),
    );
    let sample = std::fs::read(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../allocator-cli/sample.json"),
    )
    .unwrap();
    write("allocate_json", "sample", &sample);
    write(
        "allocate_json",
        "per-node-fallback",
        br#"{"strategy":"per-node","fallback_strategy":"least-weighted","weighted":true,"collectors":[{"name":"a","node":"n"}],"targets":[{"job":"j","labels":{"__address__":"x","__meta_kubernetes_pod_node_name":"n"},"weight":3},{"job":"j","labels":{"__address__":"y"}}]}"#,
    );
    write("allocate_json", "bad", br#"{"strategy":"consistent-hashing","ring":"v1.0.0","collectors":[],"targets":[{"job":"j","labels":{}}]}"#);
}
