//! `bounded-hashing`: its assignment is a function of the state (incremental diffs, including
//! in-place weight and job changes, equal one allocation of the final state from a shuffled
//! listing), jobs are spread within one target, and an absolute cap is never broken.

mod common;

use std::collections::BTreeMap;

use allocator_core::{
    Allocator, BoundedConfig, CollectorSpec, Config, Diff, PlacementHash, Strategy, TargetKey,
    TargetSpec,
};
use proptest::prelude::*;
use proptest::strategy::Strategy as _;

use common::assignment;

const KEYS: u64 = 80;
const COLLECTORS: usize = 12;
const JOBS: [&str; 4] = ["pods", "nodes", "kube-state-metrics", "blackbox"];

/// One step of a script: upsert (key, job, weight), remove key, toggle a collector.
#[derive(Clone, Debug)]
enum Op {
    Upsert(u64, usize, u32),
    Remove(u64),
    Toggle(usize),
}

fn op() -> impl proptest::strategy::Strategy<Value = Op> {
    prop_oneof![
        6 => (0..KEYS, 0..JOBS.len(), prop_oneof![1u32..20, 1u32..2000, Just(50_000u32)])
            .prop_map(|(k, j, w)| Op::Upsert(k, j, w)),
        2 => (0..KEYS).prop_map(Op::Remove),
        1 => (0..COLLECTORS).prop_map(Op::Toggle),
    ]
}

fn script() -> impl proptest::strategy::Strategy<Value = Vec<Vec<Op>>> {
    prop::collection::vec(prop::collection::vec(op(), 1..30), 1..10)
}

fn names() -> Vec<String> {
    (0..COLLECTORS).map(|c| format!("otel-{c}")).collect()
}

fn spec(key: u64, job: usize, weight: u32) -> TargetSpec<'static> {
    TargetSpec {
        key: TargetKey(key.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        placement: PlacementHash(key),
        job: JOBS[job],
        node: None,
        weight,
    }
}

/// Runs the script one diff per step; after each step calls `check` with the allocator and the
/// state it should hold (targets by key, collectors present).
fn run(
    config: Config,
    script: &[Vec<Op>],
    mut check: impl FnMut(&Allocator, &BTreeMap<u64, (usize, u32)>, &[bool]),
) {
    let names = names();
    let mut a = Allocator::new(config).unwrap();
    let mut state: BTreeMap<u64, (usize, u32)> = BTreeMap::new();
    let mut present = vec![false; COLLECTORS];
    for step in script {
        let mut diff = Diff::default();
        let mut upserts: BTreeMap<u64, (usize, u32)> = BTreeMap::new();
        for op in step {
            match *op {
                Op::Upsert(k, j, w) => {
                    // An upsert after a removal of the same key in this step replaces it.
                    let key = spec(k, 0, 1).key;
                    diff.remove.retain(|&r| r != key);
                    upserts.insert(k, (j, w));
                }
                Op::Remove(k) if state.contains_key(&k) && !upserts.contains_key(&k) => {
                    diff.remove.push(spec(k, 0, 1).key);
                    state.remove(&k);
                }
                Op::Remove(_) => {}
                Op::Toggle(c) => {
                    let name = names[c].as_str();
                    if diff.add_collectors.iter().any(|s| s.name == name)
                        || diff.remove_collectors.contains(&name)
                    {
                        continue;
                    }
                    if present[c] {
                        diff.remove_collectors.push(name);
                    } else {
                        diff.add_collectors.push(CollectorSpec::new(name));
                    }
                    present[c] = !present[c];
                }
            }
        }
        for (&k, &(j, w)) in &upserts {
            diff.upsert.push(spec(k, j, w));
            state.insert(k, (j, w));
        }
        if let Err(e) = a.apply(&diff) {
            panic!("{e}: {diff:?}");
        }
        check(&a, &state, &present);
    }
}

fn config(epsilon_ppm: u64, max_weight: u64) -> Config {
    Config {
        bounded: BoundedConfig {
            epsilon: epsilon_ppm as f64 / 1e6,
            max_weight,
        },
        ..Config::with_strategy(Strategy::BoundedHashing)
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn incremental_diffs_equal_one_allocation_of_the_final_state(
        script in script(),
        eps in prop_oneof![Just(50_000u64), 0u64..300_000],
        max_weight in prop_oneof![Just(0u64), 1u64..200_000],
        shuffle in any::<u64>(),
    ) {
        let cfg = config(eps, max_weight);
        let names = names();
        run(cfg, &script, |a, state, present| {
            let mut targets: Vec<TargetSpec<'static>> =
                state.iter().map(|(&k, &(j, w))| spec(k, j, w)).collect();
            let mut collectors: Vec<CollectorSpec<'_>> = (0..COLLECTORS)
                .filter(|&c| present[c])
                .map(|c| CollectorSpec::new(&names[c]))
                .collect();
            let mut x = shuffle | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            for i in (1..targets.len()).rev() {
                targets.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            for i in (1..collectors.len()).rev() {
                collectors.swap(i, (next() % (i as u64 + 1)) as usize);
            }
            let mut scratch = Allocator::new(cfg).unwrap();
            scratch.apply(&Diff { add_collectors: collectors, upsert: targets, ..Diff::default() }).unwrap();
            assert_eq!(assignment(a), assignment(&scratch));
            // The same state restores from its snapshot (restore re-checks the assignment).
            let restored = Allocator::restore(&a.snapshot()).unwrap();
            assert_eq!(assignment(a), assignment(&restored));
        });
    }

    #[test]
    fn with_equal_weights_every_job_is_spread_within_one_target(
        script in script(),
        n in 1usize..=COLLECTORS,
        shares in prop::collection::vec(0u64..6, JOBS.len()),
        odd in 0u64..COLLECTORS as u64,
    ) {
        // Equal weights, every job a multiple of n but one: then a collector's quotas add up to
        // at most ⌈K/n⌉ ≤ cap, so the quotas always fit and must hold exactly.
        let names = names();
        let mut a = Allocator::new(config(50_000, 0)).unwrap();
        let mut upsert = Vec::new();
        let mut key = 0;
        for (job, &share) in shares.iter().enumerate() {
            let count = share * n as u64 + if job == 0 { odd } else { 0 };
            for _ in 0..count {
                upsert.push(spec(key, job, 1));
                key += 1;
            }
        }
        a.apply(&Diff {
            add_collectors: names[..n].iter().map(|c| CollectorSpec::new(c)).collect(),
            upsert,
            ..Diff::default()
        }).unwrap();
        check_spread(&a);
        // Then the script's collector changes (its target ops are ignored here).
        let mut present: Vec<bool> = (0..COLLECTORS).map(|c| c < n).collect();
        for step in &script {
            for op in step {
                if let Op::Toggle(c) = *op {
                    let diff = if present[c] {
                        Diff { remove_collectors: vec![names[c].as_str()], ..Diff::default() }
                    } else {
                        Diff { add_collectors: vec![CollectorSpec::new(&names[c])], ..Diff::default() }
                    };
                    present[c] = !present[c];
                    a.apply(&diff).unwrap();
                    // The premise holds again whenever n divides every job but the first.
                    let now = a.collector_count() as u64;
                    if now > 0 && shares.iter().skip(1).all(|s| (s * n as u64) % now == 0) {
                        check_spread(&a);
                    }
                }
            }
        }
    }

    #[test]
    fn an_absolute_cap_is_never_broken_and_only_what_fits_nowhere_waits(
        script in script(),
        max_weight in 1u64..60_000,
    ) {
        run(config(50_000, max_weight), &script, |a, _, _| {
            let loads: Vec<u64> = a.collectors().map(|c| c.weight).collect();
            assert!(loads.iter().all(|&l| l <= max_weight), "{loads:?} over {max_weight}");
            // Loads only grow during the visit, so a target that found no room at its turn
            // finds none at the end either.
            for t in a.targets().filter(|t| t.collector.is_none()) {
                assert!(loads.iter().all(|&l| l + u64::from(t.weight) > max_weight));
            }
        });
    }
}

/// Every job has ⌊N/n⌋ or ⌈N/n⌉ targets on every collector, exactly N mod n of them the extra one.
fn check_spread(a: &Allocator) {
    let n = a.collector_count() as u32;
    if n == 0 {
        assert!(a.targets().all(|t| t.collector.is_none()));
        return;
    }
    assert_eq!(a.summary().unassigned, 0, "every target has a collector");
    for (job, total) in a.jobs() {
        let id = a.job_id(job).unwrap();
        let counts: Vec<u32> = a.collectors().map(|c| a.job_targets_on(id, c.id)).collect();
        let (floor, extra) = (total / n, total % n);
        assert!(
            counts.iter().all(|&c| c == floor || c == floor + 1),
            "{job}: {counts:?}"
        );
        assert_eq!(
            counts.iter().filter(|&&c| c == floor + 1).count() as u32,
            extra,
            "{job}"
        );
    }
}

#[test]
fn heavy_targets_of_one_job_land_on_different_collectors_and_the_cap_holds() {
    let mut a = Allocator::new(config(50_000, 0)).unwrap();
    let names = names();
    let mut diff = Diff {
        add_collectors: names.iter().map(|n| CollectorSpec::new(n)).collect(),
        ..Diff::default()
    };
    // 4 giants of one job, and 2,400 small targets of another: the giants' collectors cannot
    // take an even share of the small job under the cap, so the cap wins.
    for k in 0..4 {
        diff.upsert.push(spec(k, 2, 2_000));
    }
    for k in 4..2_404 {
        diff.upsert.push(spec(k, 0, 10 + (k % 7) as u32));
    }
    a.apply(&diff).unwrap();
    let giants: std::collections::BTreeSet<_> = (0..4)
        .map(|k| a.collector_of(spec(k, 2, 1).key).unwrap())
        .collect();
    assert_eq!(giants.len(), 4, "one giant per collector");
    let total: u64 = a.targets().map(|t| u64::from(t.weight)).sum();
    let cap = (total * 105).div_ceil(100 * COLLECTORS as u64);
    let max = a.collectors().map(|c| c.weight).max().unwrap();
    assert!(max <= cap, "max {max} over cap {cap}");
}

#[test]
fn a_bad_epsilon_is_a_config_error_naming_it() {
    for eps in [-0.1, f64::NAN, f64::INFINITY, 101.0] {
        let mut c = config(0, 0);
        c.bounded.epsilon = eps;
        let err = Allocator::new(c).unwrap_err().to_string();
        assert!(err.contains("epsilon"), "{err}");
    }
}
