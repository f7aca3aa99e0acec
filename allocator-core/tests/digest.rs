//! The assignment digest and `explain`.
//!
//! The digest is checked against its published definition computed here from the assignment
//! (XOR over assigned targets of `xxh64(key LE ‖ xxh64(collector name) LE)`), after every diff
//! of random scripts for every strategy; equal for the same state built by different diff
//! orders (the strategies whose assignment is a function of the state) and across
//! snapshot/restore.

mod common;

use allocator_core::{
    Allocator, BoundedConfig, CollectorSpec, Config, Detail, Diff, PlacementHash, Strategy,
    TargetKey, TargetSpec, Unassigned,
};
use common::{assignment, make_step, Step, Universe};
use proptest::prelude::*;
use xxhash_rust::xxh64::xxh64;

/// The digest from its definition.
fn expected(a: &Allocator) -> u64 {
    let mut d = 0u64;
    for (key, name) in assignment(a) {
        let Some(name) = name else {
            continue;
        };
        let name_hash = xxh64(name.as_bytes(), 0);
        let mut b = [0u8; 16];
        b[..8].copy_from_slice(&key.0.to_le_bytes());
        b[8..].copy_from_slice(&name_hash.to_le_bytes());
        d ^= xxh64(&b, 0);
    }
    d
}

fn configs() -> Vec<Config> {
    let mut out: Vec<Config> = Strategy::ALL
        .iter()
        .map(|&s| Config::with_strategy(s))
        .collect();
    for fallback in [Strategy::ConsistentHashing, Strategy::LeastWeighted] {
        out.push(Config {
            fallback: Some(fallback),
            ..Config::with_strategy(Strategy::PerNode)
        });
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_digest_follows_its_definition_after_every_diff_and_restore(
        seed in any::<u64>(),
        steps in prop::collection::vec(
            (prop::collection::vec(0usize..60, 0..25), prop::collection::vec(0usize..6, 0..3)),
            1..8,
        ),
    ) {
        let u = Universe::new(seed, 60, 6);
        for config in configs() {
            let mut a = Allocator::new(config).unwrap();
            let (mut pt, mut pc) = (vec![false; 60], vec![false; 6]);
            for (t, c) in &steps {
                let step = make_step(t, c, &mut pt, &mut pc);
                a.apply(&step.diff(&u)).unwrap();
                prop_assert_eq!(a.digest(), expected(&a), "{:?}", config.strategy);
            }
            let restored = Allocator::restore(&a.snapshot()).unwrap();
            prop_assert_eq!(restored.digest(), a.digest());
        }
    }

    #[test]
    fn the_same_state_by_any_diff_order_has_the_same_digest(
        seed in any::<u64>(),
        steps in prop::collection::vec(
            (prop::collection::vec(0usize..60, 0..25), prop::collection::vec(0usize..6, 0..3)),
            1..8,
        ),
        reverse in any::<bool>(),
    ) {
        let u = Universe::new(seed, 60, 6);
        // Strategies whose assignment is a function of the state.
        for strategy in [Strategy::ConsistentHashing, Strategy::PerNode, Strategy::BoundedHashing] {
            let config = Config::with_strategy(strategy);
            let mut a = Allocator::new(config).unwrap();
            let (mut pt, mut pc) = (vec![false; 60], vec![false; 6]);
            for (t, c) in &steps {
                a.apply(&make_step(t, c, &mut pt, &mut pc).diff(&u)).unwrap();
            }
            // The final state in one diff, targets and collectors listed in another order.
            let mut targets: Vec<usize> = (0..60).filter(|&i| pt[i]).collect();
            let mut collectors: Vec<usize> = (0..6).filter(|&c| pc[c]).collect();
            if reverse {
                targets.reverse();
                collectors.reverse();
            }
            let mut b = Allocator::new(config).unwrap();
            // Targets first, collectors in a second diff: yet another history.
            b.apply(&Step { upsert: targets, ..Step::default() }.diff(&u)).unwrap();
            b.apply(&Step { add_collectors: collectors, ..Step::default() }.diff(&u)).unwrap();
            prop_assert_eq!(assignment(&a), assignment(&b), "{:?}", strategy);
            prop_assert_eq!(a.digest(), b.digest(), "{:?}", strategy);
        }
    }
}

fn spec(key: u64, node: Option<&'static str>, weight: u32) -> TargetSpec<'static> {
    TargetSpec {
        key: TargetKey(key),
        placement: PlacementHash(key.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        job: "job",
        node,
        weight,
    }
}

#[test]
fn one_move_changes_the_digest_and_moving_back_restores_it() {
    let mut a = Allocator::new(Config::with_strategy(Strategy::LeastWeighted)).unwrap();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("a")],
        upsert: vec![spec(1, None, 1)],
        ..Diff::default()
    })
    .unwrap();
    let on_a = a.digest();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("b")],
        remove_collectors: vec!["a"],
        ..Diff::default()
    })
    .unwrap();
    assert_ne!(a.digest(), on_a);
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("a")],
        remove_collectors: vec!["b"],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(a.digest(), on_a);
    a.apply(&Diff {
        remove: vec![TargetKey(1)],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(a.digest(), 0);
}

#[test]
fn explain_names_the_partition_and_its_owner() {
    let mut a = Allocator::new(Config::default()).unwrap();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("a"), CollectorSpec::new("b")],
        upsert: (0..20).map(|k| spec(k, None, 1)).collect(),
        ..Diff::default()
    })
    .unwrap();
    let owners = a.ring_owners().unwrap();
    for k in 0..20 {
        let e = a.explain(TargetKey(k)).unwrap();
        assert_eq!(e.rule, Strategy::ConsistentHashing);
        let Detail::Partition { partition, owner } = e.detail else {
            panic!("{e:?}");
        };
        let id = owners[partition as usize].unwrap();
        assert_eq!(owner, a.collector_name(id));
        assert_eq!(e.collector, owner);
        assert_eq!(e.unassigned, None);
    }
    assert_eq!(a.explain(TargetKey(999)), None);
}

#[test]
fn explain_says_why_a_target_is_unassigned() {
    // No collectors at all.
    let mut a = Allocator::new(Config::with_strategy(Strategy::Rebalancing)).unwrap();
    a.apply(&Diff {
        upsert: vec![spec(1, None, 5)],
        ..Diff::default()
    })
    .unwrap();
    let e = a.explain(TargetKey(1)).unwrap();
    assert_eq!(e.unassigned, Some(Unassigned::NoCollectors));
    assert_eq!(e.collector, None);

    // per-node: no node and no fallback; a node without a collector; a node with one.
    let mut a = Allocator::new(Config::with_strategy(Strategy::PerNode)).unwrap();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::on_node("c1", "n1")],
        upsert: vec![
            spec(1, None, 1),
            spec(2, Some("n2"), 1),
            spec(3, Some("n1"), 1),
        ],
        ..Diff::default()
    })
    .unwrap();
    let e = a.explain(TargetKey(1)).unwrap();
    assert_eq!(
        (e.detail, e.unassigned),
        (Detail::NoRule, Some(Unassigned::NoNode))
    );
    let e = a.explain(TargetKey(2)).unwrap();
    assert_eq!(e.unassigned, Some(Unassigned::NoCollectorOnNode("n2")));
    let e = a.explain(TargetKey(3)).unwrap();
    assert_eq!(
        e.detail,
        Detail::Node {
            node: "n1",
            node_collector: Some("c1")
        }
    );
    assert_eq!((e.collector, e.unassigned), (Some("c1"), None));

    // per-node falling back to least-weighted: the fallback's rule is named.
    let mut a = Allocator::new(Config {
        fallback: Some(Strategy::LeastWeighted),
        ..Config::with_strategy(Strategy::PerNode)
    })
    .unwrap();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("c1")],
        upsert: vec![spec(1, None, 1)],
        ..Diff::default()
    })
    .unwrap();
    let e = a.explain(TargetKey(1)).unwrap();
    assert_eq!(e.rule, Strategy::LeastWeighted);
    assert_eq!(e.detail, Detail::Sticky { weighted: false });

    // bounded-hashing with an absolute cap lighter than the target.
    let mut a = Allocator::new(Config {
        bounded: BoundedConfig {
            epsilon: 0.05,
            max_weight: 10,
        },
        ..Config::with_strategy(Strategy::BoundedHashing)
    })
    .unwrap();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("a"), CollectorSpec::new("b")],
        upsert: vec![spec(1, None, 50), spec(2, None, 3)],
        ..Diff::default()
    })
    .unwrap();
    let e = a.explain(TargetKey(1)).unwrap();
    assert_eq!(e.unassigned, Some(Unassigned::OverCap(10)));
    let e = a.explain(TargetKey(2)).unwrap();
    let Detail::Probes {
        candidates,
        cap,
        collector_weight,
    } = e.detail
    else {
        panic!("{e:?}");
    };
    // W = 53 on 2 collectors: ⌈1.05·53/2⌉ = 28, under the absolute cap of 10 → 10.
    assert_eq!(cap, 10);
    assert_eq!(collector_weight, 3);
    assert!(candidates.contains(&e.collector.unwrap()));
}

#[test]
fn explain_gives_the_rebalancing_band_and_the_collectors_weight() {
    let mut a = Allocator::new(Config::with_strategy(Strategy::Rebalancing)).unwrap();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("a"), CollectorSpec::new("b")],
        upsert: (0..10).map(|k| spec(k, None, 10)).collect(),
        ..Diff::default()
    })
    .unwrap();
    let e = a.explain(TargetKey(3)).unwrap();
    // W = 100, n = 2: floor ⌊0.95·50⌋ = 47, cap ⌈1.05·50⌉ = 53; five targets of 10 each.
    assert_eq!(
        e.detail,
        Detail::Band {
            floor: 47,
            cap: 53,
            collector_weight: 50,
            zone: None,
            collector_zone: None,
        }
    );
    assert_eq!(e.rule, Strategy::Rebalancing);
}
