//! Parity with the Go Target Allocator, against vectors written by the real upstream Go modules
//! (`testdata/parity-gen`, DESIGN.md §7) and the values from the Operator's own tests.

use std::path::PathBuf;

use allocator_core::{
    Allocator, CollectorSpec, Config, Diff, LabelBuilder, PlacementHash, RingConfig, RingVersion,
    TargetKey, TargetSpec,
};
use serde::Deserialize;

#[derive(Deserialize)]
struct File {
    ring_version: String,
    partition_count: u32,
    replication_factor: u32,
    load: f64,
    hashes: Vec<HashVector>,
    scenarios: Vec<Scenario>,
}

#[derive(Deserialize)]
struct HashVector {
    job: String,
    discovered: Vec<(String, String)>,
    set: Vec<(String, String)>,
    deleted: Option<Vec<String>>,
    key_no_filter: String,
    key_relabel: String,
}

#[derive(Deserialize)]
struct Scenario {
    name: String,
    targets: Vec<Target>,
    collector_sets: Vec<CollectorSet>,
}

#[derive(Deserialize)]
struct Target {
    job: String,
    labels: Vec<(String, String)>,
    key: String,
    address: String,
}

#[derive(Deserialize)]
struct CollectorSet {
    collectors: Vec<String>,
    partition_owners: Vec<usize>,
    assigned: Vec<usize>,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn load(version: &str) -> File {
    let path = repo().join(format!("testdata/parity/ring-{version}.json"));
    let raw = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&raw).expect("parity vectors parse")
}

fn config(f: &File) -> Config {
    Config {
        ring: RingConfig {
            version: f.ring_version.parse().unwrap(),
            partition_count: f.partition_count,
            replication_factor: f.replication_factor,
            load_factor: f.load,
        },
        ..Config::default()
    }
}

fn pairs(v: &[(String, String)]) -> impl Iterator<Item = (&str, &str)> + Clone {
    v.iter().map(|(n, v)| (n.as_str(), v.as_str()))
}

fn item_hashes_match(version: &str) {
    let f = load(version);
    assert!(f.hashes.len() >= 400);
    for (i, h) in f.hashes.iter().enumerate() {
        let plain = TargetKey::from_labels(pairs(&h.discovered), &h.job).unwrap();
        assert_eq!(
            plain.0.to_string(),
            h.key_no_filter,
            "vector {i}: key without relabeling"
        );

        let mut b = LabelBuilder::new(pairs(&h.discovered)).unwrap();
        for (n, v) in &h.set {
            b.set(n, v);
        }
        for n in h.deleted.iter().flatten() {
            b.del(n);
        }
        assert_eq!(
            b.target_key(&h.job).0.to_string(),
            h.key_relabel,
            "vector {i}: relabeled key"
        );
    }
}

/// Build each collector set incrementally from the previous one (the first from nothing) and
/// compare every partition owner and every target's collector with the Go ring's.
fn assignments_match(version: &str) {
    let f = load(version);
    let mut checked_targets = 0;
    for s in &f.scenarios {
        let mut alloc = Allocator::new(config(&f)).unwrap();
        let specs: Vec<TargetSpec<'_>> = s
            .targets
            .iter()
            .map(|t| {
                let spec = TargetSpec::from_labels(pairs(&t.labels), &t.job).unwrap();
                assert_eq!(spec.key.0.to_string(), t.key, "{}: key", s.name);
                assert_eq!(spec.placement, PlacementHash::of_address(&t.address));
                spec
            })
            .collect();
        alloc
            .apply(&Diff {
                upsert: specs.clone(),
                ..Diff::default()
            })
            .unwrap();
        let mut previous: Vec<Option<String>> = vec![None; specs.len()];
        for set in &s.collector_sets {
            let listing: Vec<CollectorSpec<'_>> = set
                .collectors
                .iter()
                .map(|c| CollectorSpec::new(c))
                .collect();
            let moves = alloc.set_collectors(&listing).unwrap().to_vec();

            let owners = alloc.ring_owners().unwrap();
            assert_eq!(owners.len(), set.partition_owners.len());
            for (p, (got, &want)) in owners.iter().zip(&set.partition_owners).enumerate() {
                let got = alloc.collector_name(got.unwrap()).unwrap();
                assert_eq!(
                    got,
                    set.collectors[want],
                    "{} ({} collectors): partition {p}",
                    s.name,
                    set.collectors.len()
                );
            }
            let mut moved = 0;
            for (i, (spec, &want)) in specs.iter().zip(&set.assigned).enumerate() {
                let got = alloc
                    .collector_of(spec.key)
                    .map(|c| alloc.collector_name(c).unwrap().to_owned());
                assert_eq!(
                    got.as_deref(),
                    Some(set.collectors[want].as_str()),
                    "{}: target {i}",
                    s.name
                );
                if previous[i].is_some() && previous[i] != got {
                    moved += 1;
                }
                previous[i] = got;
                checked_targets += 1;
            }
            let reported = moves
                .iter()
                .filter(|m| m.from.is_some() && m.to.is_some())
                .count();
            assert_eq!(
                reported, moved,
                "{}: reported moves equal the real difference",
                s.name
            );
        }
    }
    assert!(
        checked_targets >= 35_000,
        "{checked_targets} targets checked"
    );
}

#[test]
fn item_hash_matches_go_for_v0_10_0_vectors() {
    item_hashes_match("v0.10.0");
}

#[test]
fn item_hash_matches_go_for_v1_0_0_vectors() {
    item_hashes_match("v1.0.0");
}

#[test]
fn consistent_hashing_matches_buraksezer_v0_10_0() {
    assignments_match("v0.10.0");
}

#[test]
fn consistent_hashing_matches_buraksezer_v1_0_0() {
    assignments_match("v1.0.0");
}

/// The Operator's own test values (`shared/parity/operator-crosscheck.json`).
#[test]
fn operator_crosscheck_values_match() {
    let path = repo().join("../shared/parity/operator-crosscheck.json");
    let Ok(raw) = std::fs::read(&path) else {
        panic!(
            "{} is missing: CI lays shared/ beside the clone",
            path.display()
        );
    };
    let cc: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    for (version, v) in cc["versions"].as_object().unwrap() {
        let ring_version: RingVersion = version.parse().unwrap();
        let mut allocs = std::collections::BTreeMap::new();
        for (ring_name, ring) in v["rings"].as_object().unwrap() {
            let mut alloc = Allocator::new(Config {
                ring: RingConfig {
                    version: ring_version,
                    ..RingConfig::default()
                },
                ..Config::default()
            })
            .unwrap();
            let names: Vec<&str> = ring["collectors"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c.as_str().unwrap())
                .collect();
            let listing: Vec<_> = names.iter().map(|n| CollectorSpec::new(n)).collect();
            alloc.set_collectors(&listing).unwrap();
            let owners = alloc.ring_owners().unwrap();
            for (member, want) in ring["partition_loads"].as_object().unwrap() {
                let id = alloc.collector_id(member).unwrap();
                let got = owners.iter().filter(|o| **o == Some(id)).count();
                assert_eq!(
                    got as u64,
                    want.as_u64().unwrap(),
                    "{version} ring {ring_name}: {member}"
                );
            }
            allocs.insert(ring_name.clone(), alloc);
        }
        for t in v["targets"].as_array().unwrap() {
            let labels: Vec<(String, String)> = t["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            let job = t["job"].as_str().unwrap();
            let key = TargetKey::from_labels(pairs(&labels), job).unwrap();
            assert_eq!(
                key.0.to_string(),
                t["item_hash_no_filter"].as_str().unwrap()
            );
            let url = t["target_url"].as_str().unwrap();
            let placement = PlacementHash::of_address(url);
            assert_eq!(placement.0 % 1061, t["partition"].as_u64().unwrap());
            for (ring_name, alloc) in allocs.iter_mut() {
                alloc
                    .apply(&Diff {
                        upsert: vec![TargetSpec::new(key, placement, job)],
                        ..Diff::default()
                    })
                    .unwrap();
                let got = alloc
                    .collector_name(alloc.collector_of(key).unwrap())
                    .unwrap();
                let want = t[format!("collector_ring_{ring_name}")].as_str().unwrap();
                assert_eq!(got, want, "{version} ring {ring_name}: {url}");
            }
        }
    }
}
