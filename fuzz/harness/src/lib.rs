//! Fuzz target bodies. Each takes arbitrary bytes and panics only when an invariant breaks, so
//! the same functions serve cargo-fuzz (`fuzz/fuzz_targets`, nightly) and the corpus replay test
//! that runs on stable in `make test` (`tests/corpus.rs`).

mod c_abi;
mod model;

use allocator_core::{node_of, Allocator, KeyHasher, LabelBuilder, TargetKey};
use arbitrary::{Arbitrary, Unstructured};

pub use c_abi::c_abi;
pub use model::{debug_case, diff_sequence};

/// A fuzz target's body.
pub type Body = fn(&[u8]);

/// Every fuzz target, by name, as the corpus folders are named.
pub const TARGETS: &[(&str, Body)] = &[
    ("diff_sequence", diff_sequence),
    ("snapshot_restore", snapshot_restore),
    ("labels", labels),
    ("allocate_json", allocate_json),
    ("c_abi", c_abi),
];

/// Restore from arbitrary bytes: an error, or an allocator that works and round-trips.
pub fn snapshot_restore(data: &[u8]) {
    let Ok(mut a) = Allocator::restore(data) else {
        return;
    };
    let bytes = a.snapshot();
    let b = Allocator::restore(&bytes).expect("a snapshot of a restored allocator restores");
    assert_eq!(b.snapshot(), bytes);
    let assigned: u64 = a.collectors().map(|c| u64::from(c.targets)).sum();
    assert_eq!(assigned as usize + a.summary().unassigned, a.len());
    // It keeps working: drop every collector, every target must end unassigned.
    let names: Vec<String> = a.collectors().map(|c| c.name.to_owned()).collect();
    let remove: Vec<&str> = names.iter().map(String::as_str).collect();
    a.apply(&allocator_core::Diff {
        remove_collectors: remove,
        ..Default::default()
    })
    .expect("removing every listed collector is valid");
    assert!(a.targets().all(|t| t.collector.is_none()));
}

#[derive(Arbitrary, Debug)]
enum LabelOp {
    Set(u8, String),
    Del(u8),
}

/// Label hashing, node extraction and relabeling order on arbitrary label sets.
pub fn labels(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok((labels, job, ops)) = <(Vec<(String, String)>, String, Vec<LabelOp>)>::arbitrary(&mut u)
    else {
        return;
    };
    let pairs = || labels.iter().map(|(n, v)| (n.as_str(), v.as_str()));
    let mut hasher = KeyHasher::new();
    let key = hasher.key_of(pairs(), &job);
    let mut sorted: Vec<(&str, &str)> = pairs().collect();
    sorted.sort();
    let has_duplicates = sorted.windows(2).any(|w| w[0].0 == w[1].0);
    assert_eq!(
        key.is_err(),
        has_duplicates,
        "duplicates are exactly the error case"
    );
    let _ = node_of(pairs());
    if let Ok(key) = key {
        // Any input order gives the key of the sorted order.
        let mut reversed: Vec<(&str, &str)> = pairs().collect();
        reversed.reverse();
        assert_eq!(hasher.key_of(reversed, &job).unwrap(), key);
        assert_eq!(hasher.key_in_order(sorted.iter().copied(), &job), key);
        // A builder with no changes hashes to the same key.
        let mut b = LabelBuilder::new(pairs()).unwrap();
        assert_eq!(b.target_key(&job), key);
        let names: Vec<&str> = labels.iter().map(|(n, _)| n.as_str()).collect();
        for op in &ops {
            let pick = |i: &u8| names.get(*i as usize).copied().unwrap_or("extra");
            match op {
                LabelOp::Set(i, v) => b.set(pick(i), v),
                LabelOp::Del(i) => b.del(pick(i)),
            }
        }
        // Every name in range order appears once, and `labels()` is its sorted form.
        let mut seen: Vec<&str> = b.range().map(|(n, _)| n).collect();
        let count = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), count, "range yields each name once");
        let final_labels = b.labels();
        assert_eq!(final_labels.len(), count);
        for (n, v) in &final_labels {
            assert_eq!(b.get(n), Some(v.as_str()));
        }
        let _: TargetKey = b.target_key(&job);
    }
}

/// The `allocate` tool on arbitrary input: an output document or a message, never a panic.
pub fn allocate_json(data: &[u8]) {
    match allocate::run(data) {
        Ok(out) => assert!(out.starts_with("{\"targets\":[")),
        Err(msg) => assert!(!msg.is_empty()),
    }
}
