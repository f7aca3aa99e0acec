//! Unit tests per strategy, including the Go allocator's edge cases (DESIGN.md §6), errors and
//! queries.

mod common;

use allocator_core::{
    Allocator, CollectorSpec, Config, ConfigError, Diff, Error, MoveKind, PlacementHash,
    RingVersion, Strategy, TargetKey, TargetSpec,
};

fn t<'a>(key: u64, addr: &str, job: &'a str) -> TargetSpec<'a> {
    TargetSpec::new(TargetKey(key), PlacementHash::of_address(addr), job)
}

fn collectors<'a>(names: &[&'a str]) -> Vec<CollectorSpec<'a>> {
    names.iter().map(|n| CollectorSpec::new(n)).collect()
}

fn name_of(a: &Allocator, key: u64) -> Option<&str> {
    a.collector_of(TargetKey(key))
        .map(|c| a.collector_name(c).unwrap())
}

// ---- consistent-hashing ----------------------------------------------------------------------

#[test]
fn consistent_hashing_keeps_targets_unassigned_without_collectors_and_places_them_later() {
    let mut a = Allocator::new(Config::default()).unwrap();
    let moves = a
        .apply(&Diff {
            upsert: (0..50)
                .map(|i| t(i, &format!("10.0.0.{i}:80"), "j"))
                .collect(),
            ..Diff::default()
        })
        .unwrap();
    assert!(moves.is_empty());
    assert_eq!(a.summary().unassigned, 50);
    let moves = a.set_collectors(&collectors(&["a", "b", "c"])).unwrap();
    assert_eq!(moves.len(), 50);
    assert!(moves.iter().all(|m| m.kind() == MoveKind::Assigned));
    assert_eq!(a.summary().unassigned, 0);
}

#[test]
fn consistent_hashing_places_by_address_so_one_address_in_two_jobs_shares_a_collector() {
    let mut a = Allocator::new(Config::default()).unwrap();
    a.set_collectors(&collectors(&["a", "b", "c", "d", "e"]))
        .unwrap();
    let upsert: Vec<_> = (0..200)
        .flat_map(|i| {
            let addr = format!("10.1.0.{i}:9100");
            [t(2 * i, &addr, "job-1"), t(2 * i + 1, &addr, "job-2")]
        })
        .collect();
    a.apply(&Diff {
        upsert,
        ..Diff::default()
    })
    .unwrap();
    for i in 0..200 {
        assert_eq!(name_of(&a, 2 * i), name_of(&a, 2 * i + 1));
    }
}

#[test]
fn consistent_hashing_keeps_a_changed_address_on_its_collector_until_the_next_collector_change() {
    let mut a = Allocator::new(Config::default()).unwrap();
    a.set_collectors(&collectors(&["a", "b", "c", "d"]))
        .unwrap();
    // Find an address that the ring places elsewhere than target 1's first address.
    a.apply(&Diff {
        upsert: vec![t(1, "first:80", "j")],
        ..Diff::default()
    })
    .unwrap();
    let first = name_of(&a, 1).unwrap().to_owned();
    let other = (0..1000)
        .map(|i| format!("second-{i}:80"))
        .find(|addr| {
            let mut probe = a.clone();
            probe
                .apply(&Diff {
                    upsert: vec![t(2, addr, "j")],
                    ..Diff::default()
                })
                .unwrap();
            name_of(&probe, 2).unwrap() != first
        })
        .unwrap();
    let moves = a
        .apply(&Diff {
            upsert: vec![t(1, &other, "j")],
            ..Diff::default()
        })
        .unwrap();
    assert!(moves.is_empty(), "targets never move on target changes");
    assert_eq!(name_of(&a, 1).unwrap(), first);
    // Any collector change re-places it by its new address, as the Go allocator re-locates all.
    let moves = a
        .apply(&Diff {
            add_collectors: collectors(&["zzz-unrelated"]),
            ..Diff::default()
        })
        .unwrap()
        .to_vec();
    assert!(moves.iter().any(|m| m.key == TargetKey(1)));
    let mut fresh = Allocator::new(Config::default()).unwrap();
    fresh
        .set_collectors(&collectors(&["a", "b", "c", "d", "zzz-unrelated"]))
        .unwrap();
    fresh
        .apply(&Diff {
            upsert: vec![t(1, &other, "j")],
            ..Diff::default()
        })
        .unwrap();
    assert_eq!(name_of(&a, 1), name_of(&fresh, 1));
}

#[test]
fn consistent_hashing_moves_only_targets_of_partitions_that_changed_owner() {
    let mut a = Allocator::new(Config::default()).unwrap();
    let names: Vec<String> = (0..10).map(|i| format!("collector-{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    a.set_collectors(&collectors(&refs)).unwrap();
    a.apply(&Diff {
        upsert: (0..5000)
            .map(|i| t(i, &format!("pod-{i}:8080"), "j"))
            .collect(),
        ..Diff::default()
    })
    .unwrap();
    let before = a.ring_owners().unwrap();
    let moves = a
        .apply(&Diff {
            add_collectors: collectors(&["collector-10"]),
            ..Diff::default()
        })
        .unwrap()
        .to_vec();
    let after = a.ring_owners().unwrap();
    let changed: std::collections::BTreeSet<u64> = before
        .iter()
        .zip(&after)
        .enumerate()
        .filter(|(_, (b, a))| b != a)
        .map(|(p, _)| p as u64)
        .collect();
    for m in &moves {
        let p = a.target(m.key).unwrap().placement.0 % 1061;
        assert!(changed.contains(&p));
    }
    let in_changed = a
        .targets()
        .filter(|t| changed.contains(&(t.placement.0 % 1061)))
        .count();
    assert_eq!(moves.len(), in_changed);
}

#[test]
fn ring_that_cannot_place_every_partition_is_an_error_and_changes_nothing() {
    // v0.10.0: 1061 / 1062 = 0 partitions per member, the Go library panics.
    let mut a = Allocator::new(Config::default()).unwrap();
    a.set_collectors(&collectors(&["a"])).unwrap();
    a.apply(&Diff {
        upsert: vec![t(1, "x:1", "j")],
        ..Diff::default()
    })
    .unwrap();
    let names: Vec<String> = (0..1062).map(|i| format!("c{i}")).collect();
    let specs: Vec<_> = names.iter().map(|n| CollectorSpec::new(n)).collect();
    let err = a.set_collectors(&specs).unwrap_err();
    assert!(
        matches!(
            err,
            Error::RingCapacity {
                collectors: 1062,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(a.collector_count(), 1);
    assert_eq!(name_of(&a, 1), Some("a"));
    // v1.0.0 rounds differently and places 1062 members with load factor 1.1.
    let mut v1 = Allocator::new(Config {
        ring: allocator_core::RingConfig {
            version: RingVersion::V1_0_0,
            ..Default::default()
        },
        ..Config::default()
    })
    .unwrap();
    v1.set_collectors(&specs).unwrap();
}

// ---- least-weighted --------------------------------------------------------------------------

fn lw() -> Allocator {
    Allocator::new(Config::with_strategy(Strategy::LeastWeighted)).unwrap()
}

#[test]
fn least_weighted_picks_fewest_targets_then_fewest_of_the_job_then_smallest_name() {
    let mut a = lw();
    a.set_collectors(&collectors(&["b", "a"])).unwrap();
    // Key order decides the visiting order: 1 then 2.
    a.apply(&Diff {
        upsert: vec![t(2, "x", "j1"), t(1, "y", "j1")],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(name_of(&a, 1), Some("a"), "full tie: smallest name");
    assert_eq!(name_of(&a, 2), Some("b"), "fewest targets");
    a.set_collectors(&collectors(&["a", "b", "c"])).unwrap();
    a.apply(&Diff {
        upsert: vec![t(3, "z", "j2"), t(4, "w", "j2")],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(name_of(&a, 3), Some("c"), "fewest targets");
    // a, b and c now have 1 target each; a and b hold j1, c holds j2: j1 prefers c? No: j2's
    // target 4 goes to the fewest of job j2 among a, b (tie on count) → a.
    assert_eq!(name_of(&a, 4), Some("a"));
}

#[test]
fn least_weighted_adding_a_collector_moves_nothing_and_removing_one_moves_only_its_targets() {
    let mut a = lw();
    a.set_collectors(&collectors(&["a", "b", "c"])).unwrap();
    a.apply(&Diff {
        upsert: (0..300).map(|i| t(i, "addr", "j")).collect(),
        ..Diff::default()
    })
    .unwrap();
    assert!(a.collectors().all(|c| c.targets == 100));
    assert!(a
        .set_collectors(&collectors(&["a", "b", "c", "d"]))
        .unwrap()
        .is_empty());
    let owned_by_b = a.targets_of(a.collector_id("b").unwrap(), None);
    let moves = a
        .set_collectors(&collectors(&["a", "c", "d"]))
        .unwrap()
        .to_vec();
    let moved: Vec<TargetKey> = {
        let mut v: Vec<_> = moves.iter().map(|m| m.key).collect();
        v.sort();
        v
    };
    assert_eq!(moved, owned_by_b);
    // The 100 orphans fill d first (0 targets), then spread.
    let d = a.stats_of(a.collector_id("d").unwrap()).unwrap();
    assert_eq!(d.targets, 100);
}

#[test]
fn least_weighted_weighted_mode_balances_weight_not_count() {
    let mut config = Config::with_strategy(Strategy::LeastWeighted);
    config.weighted = true;
    let mut a = Allocator::new(config).unwrap();
    a.set_collectors(&collectors(&["a", "b"])).unwrap();
    let mut upsert = vec![t(0, "heavy", "ksm").with_weight(1000)];
    upsert.extend((1..=10).map(|i| t(i, "light", "pods").with_weight(100)));
    a.apply(&Diff {
        upsert,
        ..Diff::default()
    })
    .unwrap();
    let stats: Vec<_> = a.collectors().map(|c| (c.targets, c.weight)).collect();
    assert_eq!(stats, vec![(1, 1000), (10, 1000)]);
}

#[test]
fn least_weighted_places_targets_that_waited_for_collectors_in_key_order() {
    let mut a = lw();
    a.apply(&Diff {
        upsert: (0..10).rev().map(|i| t(i, "x", "j")).collect(),
        ..Diff::default()
    })
    .unwrap();
    a.set_collectors(&collectors(&["a", "b"])).unwrap();
    for i in 0..10 {
        assert_eq!(name_of(&a, i), Some(if i % 2 == 0 { "a" } else { "b" }));
    }
}

// ---- per-node --------------------------------------------------------------------------------

fn pn(fallback: Option<Strategy>) -> Allocator {
    let mut c = Config::with_strategy(Strategy::PerNode);
    c.fallback = fallback;
    Allocator::new(c).unwrap()
}

#[test]
fn per_node_assigns_to_the_nodes_collector_and_leaves_collectorless_nodes_unassigned() {
    let mut a = pn(None);
    a.set_collectors(&[
        CollectorSpec::on_node("col-a", "n1"),
        CollectorSpec::on_node("col-b", "n2"),
    ])
    .unwrap();
    a.apply(&Diff {
        upsert: vec![
            t(1, "x", "j").with_node(Some("n1")),
            t(2, "y", "j").with_node(Some("n2")),
            t(3, "z", "j").with_node(Some("n3")),
            t(4, "w", "static"),
        ],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(name_of(&a, 1), Some("col-a"));
    assert_eq!(name_of(&a, 2), Some("col-b"));
    assert_eq!(name_of(&a, 3), None, "no collector on n3");
    assert_eq!(name_of(&a, 4), None, "no node, no fallback");
    assert_eq!(a.summary().unassigned, 2);
    // A collector appears on n3: its targets are placed.
    let moves = a
        .apply(&Diff {
            add_collectors: vec![CollectorSpec::on_node("col-c", "n3")],
            ..Diff::default()
        })
        .unwrap();
    assert_eq!(moves.len(), 1);
    assert_eq!(name_of(&a, 3), Some("col-c"));
}

#[test]
fn per_node_with_two_collectors_on_one_node_picks_the_smallest_name() {
    let mut a = pn(None);
    a.set_collectors(&[
        CollectorSpec::on_node("zeta", "n1"),
        CollectorSpec::on_node("alpha", "n1"),
    ])
    .unwrap();
    a.apply(&Diff {
        upsert: vec![t(1, "x", "j").with_node(Some("n1"))],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(name_of(&a, 1), Some("alpha"));
    // alpha leaves: zeta takes the node.
    a.set_collectors(&[CollectorSpec::on_node("zeta", "n1")])
        .unwrap();
    assert_eq!(name_of(&a, 1), Some("zeta"));
}

#[test]
fn per_node_falls_back_for_nodeless_targets_exactly_like_the_fallback_strategy() {
    let mut a = pn(Some(Strategy::ConsistentHashing));
    let mut ch = Allocator::new(Config::default()).unwrap();
    let cols = [
        CollectorSpec::on_node("c0", "n0"),
        CollectorSpec::on_node("c1", "n1"),
        CollectorSpec::new("c2"),
    ];
    a.set_collectors(&cols).unwrap();
    ch.set_collectors(&cols).unwrap();
    let upsert: Vec<_> = (0..500)
        .map(|i| t(i, &format!("static-{i}:80"), "static"))
        .collect();
    for x in [&mut a, &mut ch] {
        x.apply(&Diff {
            upsert: upsert.clone(),
            ..Diff::default()
        })
        .unwrap();
    }
    for i in 0..500 {
        assert_eq!(name_of(&a, i), name_of(&ch, i));
    }
}

#[test]
fn per_node_collector_moving_to_another_node_takes_that_nodes_targets() {
    let mut a = pn(None);
    a.set_collectors(&[CollectorSpec::on_node("c", "n1")])
        .unwrap();
    a.apply(&Diff {
        upsert: vec![
            t(1, "x", "j").with_node(Some("n1")),
            t(2, "y", "j").with_node(Some("n2")),
        ],
        ..Diff::default()
    })
    .unwrap();
    let id = a.collector_id("c").unwrap();
    let moves = a
        .set_collectors(&[CollectorSpec::on_node("c", "n2")])
        .unwrap()
        .to_vec();
    assert_eq!(moves.len(), 2);
    assert_eq!(a.collector_id("c"), Some(id), "same collector, same id");
    assert_eq!(name_of(&a, 1), None);
    assert_eq!(name_of(&a, 2), Some("c"));
}

// ---- errors ----------------------------------------------------------------------------------

#[test]
fn invalid_configurations_are_refused_with_the_offending_value() {
    let mut c = Config::default();
    c.ring.partition_count = 0;
    assert_eq!(
        Allocator::new(c).unwrap_err(),
        Error::Config(ConfigError::ZeroPartitions)
    );
    let mut c = Config::default();
    c.ring.load_factor = 0.9;
    assert!(Allocator::new(c).unwrap_err().to_string().contains("0.9"));
    let mut c = Config::default();
    c.ring.load_factor = f64::NAN;
    assert!(Allocator::new(c).is_err());
    let mut c = Config::default();
    c.ring.replication_factor = 0;
    assert!(Allocator::new(c).is_err());
    let c = Config {
        fallback: Some(Strategy::LeastWeighted),
        ..Config::default()
    };
    assert!(Allocator::new(c)
        .unwrap_err()
        .to_string()
        .contains("consistent-hashing"));
    let mut c = Config::with_strategy(Strategy::PerNode);
    c.fallback = Some(Strategy::PerNode);
    assert!(Allocator::new(c).is_err());
    assert!("round-robin"
        .parse::<Strategy>()
        .unwrap_err()
        .to_string()
        .contains("round-robin"));
    assert!("v2".parse::<RingVersion>().is_err());
    // An absolute weight cap is read by bounded-hashing only: elsewhere it is refused, not
    // ignored.
    for strategy in [
        Strategy::ConsistentHashing,
        Strategy::LeastWeighted,
        Strategy::PerNode,
        Strategy::Rebalancing,
    ] {
        let mut c = Config::with_strategy(strategy);
        c.bounded.max_weight = 5;
        assert_eq!(
            Allocator::new(c).unwrap_err(),
            Error::Config(ConfigError::MaxWeightUnsupported(strategy))
        );
    }
    let mut c = Config::with_strategy(Strategy::BoundedHashing);
    c.bounded.max_weight = 5;
    assert!(Allocator::new(c).is_ok());
}

#[test]
fn moves_come_in_the_same_order_for_the_same_history() {
    // Found by a user-style review: targets left stale by in-place changes were re-placed in
    // the order of a set hashed with a per-allocator seed, so two allocators given the same
    // diffs listed the same moves in different orders.
    let run = || {
        let mut a = pn(Some(Strategy::ConsistentHashing));
        let nodes = ["n0", "n1", "n2"];
        let specs = |moved: bool| -> Vec<TargetSpec<'static>> {
            (0..600u64)
                .map(|i| {
                    let mut t = t(i, &format!("10.1.{}.{}:80", i / 256, i % 256), "j");
                    // A third of the targets lose their node in the second diff.
                    t.node = (!(moved && i % 3 == 0)).then_some(nodes[(i % 3) as usize]);
                    t
                })
                .collect()
        };
        a.apply(&Diff {
            add_collectors: vec![
                CollectorSpec::on_node("c0", "n0"),
                CollectorSpec::on_node("c1", "n1"),
                CollectorSpec::on_node("c2", "n2"),
            ],
            upsert: specs(false),
            ..Diff::default()
        })
        .unwrap();
        a.apply(&Diff {
            upsert: specs(true),
            ..Diff::default()
        })
        .unwrap();
        a.apply(&Diff {
            add_collectors: vec![CollectorSpec::on_node("c3", "n3")],
            ..Diff::default()
        })
        .unwrap()
        .to_vec()
    };
    let first = run();
    assert!(first.len() >= 100, "{} moves", first.len());
    for _ in 0..3 {
        assert_eq!(run(), first);
    }
}

#[test]
fn bad_diffs_name_the_problem_and_change_nothing() {
    let mut a = Allocator::new(Config::default()).unwrap();
    a.set_collectors(&collectors(&["a", "b"])).unwrap();
    a.apply(&Diff {
        upsert: vec![t(1, "x", "j")],
        ..Diff::default()
    })
    .unwrap();
    let before = common::assignment(&a);
    let cases: Vec<(Diff<'_>, Error)> = vec![
        (
            Diff {
                add_collectors: collectors(&["a"]),
                ..Diff::default()
            },
            Error::DuplicateCollector("a".into()),
        ),
        (
            Diff {
                add_collectors: collectors(&["c", "c"]),
                ..Diff::default()
            },
            Error::DuplicateCollector("c".into()),
        ),
        (
            Diff {
                add_collectors: collectors(&[""]),
                ..Diff::default()
            },
            Error::EmptyCollectorName,
        ),
        (
            Diff {
                remove_collectors: vec!["nope"],
                ..Diff::default()
            },
            Error::UnknownCollector("nope".into()),
        ),
        (
            Diff {
                remove: vec![TargetKey(99)],
                ..Diff::default()
            },
            Error::UnknownTarget(TargetKey(99)),
        ),
        (
            Diff {
                remove: vec![TargetKey(1)],
                upsert: vec![t(1, "x", "j")],
                ..Diff::default()
            },
            Error::ConflictingTarget(TargetKey(1)),
        ),
        (
            // Valid collector part, invalid target part: nothing applies.
            Diff {
                add_collectors: collectors(&["c"]),
                remove: vec![TargetKey(7)],
                ..Diff::default()
            },
            Error::UnknownTarget(TargetKey(7)),
        ),
    ];
    for (diff, want) in cases {
        assert_eq!(a.apply(&diff).unwrap_err(), want);
        assert_eq!(common::assignment(&a), before);
        assert_eq!(a.collector_count(), 2);
    }
    assert_eq!(
        a.set_collectors(&collectors(&["x", "x"])).unwrap_err(),
        Error::DuplicateCollector("x".into())
    );
    assert_eq!(
        TargetKey::from_labels([("a", "1"), ("b", "2"), ("a", "3")], "j").unwrap_err(),
        Error::DuplicateLabel("a".into())
    );
    assert!(matches!(
        TargetSpec::from_labels([("instance", "x")], "j").unwrap_err(),
        Error::MissingAddress(_)
    ));
}

// ---- queries and reconciliation --------------------------------------------------------------

#[test]
fn set_targets_reconciles_a_listing_into_removals_and_upserts() {
    let mut a = Allocator::new(Config::default()).unwrap();
    a.set_collectors(&collectors(&["a", "b", "c"])).unwrap();
    let v1: Vec<_> = (0..100).map(|i| t(i, &format!("p{i}"), "j")).collect();
    assert_eq!(a.set_targets(&v1).unwrap().len(), 100);
    assert!(
        a.set_targets(&v1).unwrap().is_empty(),
        "same listing, no moves"
    );
    let v2: Vec<_> = (50..150).map(|i| t(i, &format!("p{i}"), "j")).collect();
    let moves = a.set_targets(&v2).unwrap().to_vec();
    assert_eq!(
        moves
            .iter()
            .filter(|m| m.kind() == MoveKind::Unassigned)
            .count(),
        50
    );
    assert_eq!(
        moves
            .iter()
            .filter(|m| m.kind() == MoveKind::Assigned)
            .count(),
        50
    );
    assert_eq!(a.len(), 100);
    assert_eq!(a.jobs(), vec![("j", 100)]);
    let totals = a.move_totals();
    assert_eq!(
        (totals.assigned, totals.unassigned, totals.reassigned),
        (150, 50, 0)
    );
    // A weight change is an in-place update, visible in the stats.
    let mut v3 = v2.clone();
    v3[0] = v3[0].with_weight(40);
    a.set_targets(&v3).unwrap();
    assert_eq!(a.summary().mean_weight * 3.0, 139.0);
}

#[test]
fn queries_report_targets_per_collector_and_job_and_balance() {
    let mut a = Allocator::new(Config::with_strategy(Strategy::LeastWeighted)).unwrap();
    a.set_collectors(&collectors(&["a", "b"])).unwrap();
    let mut upsert: Vec<_> = (0..6).map(|i| t(i, "x", "web")).collect();
    upsert.extend((6..8).map(|i| t(i, "y", "db")));
    a.apply(&Diff {
        upsert,
        ..Diff::default()
    })
    .unwrap();
    let ida = a.collector_id("a").unwrap();
    assert_eq!(a.targets_of(ida, None).len(), 4);
    assert_eq!(a.targets_of(ida, Some("db")).len(), 1);
    assert_eq!(a.targets_of(ida, Some("nope")).len(), 0);
    assert_eq!(a.jobs(), vec![("db", 2), ("web", 6)]);
    assert_eq!(a.job_targets_on(a.job_id("web").unwrap(), ida), 3);
    let s = a.summary();
    assert_eq!((s.max_targets, s.min_targets, s.mean_targets), (4, 4, 4.0));
    assert_eq!(s.max_over_mean(), 1.0);
    assert_eq!(TargetKey(0xab).to_string(), "00000000000000ab");
}

#[test]
fn a_key_repeated_in_one_diff_is_placed_once_by_its_last_fields() {
    let mut c = Config::with_strategy(Strategy::PerNode);
    c.fallback = Some(Strategy::ConsistentHashing);
    let mut a = Allocator::new(c).unwrap();
    let moves = a
        .apply(&Diff {
            add_collectors: vec![CollectorSpec::on_node("on-n1", "n1")],
            upsert: vec![
                t(15, "x", "j").with_node(Some("n1")),
                t(15, "x", "j").with_node(Some("n0")),
            ],
            ..Diff::default()
        })
        .unwrap();
    assert!(
        moves.is_empty(),
        "the last fields say n0, which has no collector"
    );
    assert_eq!(name_of(&a, 15), None);
}

#[test]
fn a_diff_that_changes_collectors_also_re_places_targets_it_updates() {
    let mut c = Config::with_strategy(Strategy::PerNode);
    c.fallback = Some(Strategy::ConsistentHashing);
    let mut a = Allocator::new(c).unwrap();
    a.apply(&Diff {
        add_collectors: vec![CollectorSpec::new("c0")],
        upsert: vec![t(15, "x", "j")],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(name_of(&a, 15), Some("c0"));
    // The target moves to node n3 (no collector there) in the same diff that adds a collector:
    // the collector change re-places it, so it does not stay on c0.
    let moves = a
        .apply(&Diff {
            add_collectors: vec![CollectorSpec::new("c1")],
            upsert: vec![t(15, "x", "j").with_node(Some("n3"))],
            ..Diff::default()
        })
        .unwrap()
        .to_vec();
    assert_eq!(name_of(&a, 15), None);
    assert_eq!(moves.len(), 1);
    // Without a collector change, an in-place update keeps the collector (Go's behaviour).
    a.apply(&Diff {
        upsert: vec![t(15, "x", "j")],
        ..Diff::default()
    })
    .unwrap();
    assert_eq!(name_of(&a, 15), None);
}

// ---- least-weighted at scale: a run of placements decided by a tournament -------------------

/// Targets of a few jobs and weights, with keys in no particular order.
fn weighted_targets(n: u64, nodes: &[&'static str]) -> Vec<TargetSpec<'static>> {
    const JOBS: [&str; 3] = ["a", "b", "c"];
    (0..n)
        .map(|i| {
            let key = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
            let node = (i % 3 == 0).then(|| nodes[(i as usize / 3) % nodes.len()]);
            TargetSpec::new(
                TargetKey(key),
                PlacementHash(i * 7919),
                JOBS[(i % 3) as usize],
            )
            .with_weight((i % 17 + 1) as u32 * if i % 50 == 0 { 100 } else { 1 })
            .with_node(node)
        })
        .collect()
}

/// The assignments after placing `targets` in one diff equal those after placing them one per
/// diff in key order (where each placement scans every collector), and so after removing
/// collectors (against an allocator that scans), for least-weighted (by count and by weight)
/// and per-node with its fallback.
#[test]
fn least_weighted_runs_decide_exactly_as_one_placement_at_a_time() {
    let names: Vec<String> = (0..150).map(|i| format!("c{i:03}")).collect();
    let node_names: Vec<String> = (0..20).map(|i| format!("n{i}")).collect();
    let nodes: Vec<&'static str> = node_names
        .iter()
        .map(|n| &*Box::leak(n.clone().into_boxed_str()))
        .collect();
    let specs: Vec<CollectorSpec<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| CollectorSpec {
            name: n,
            node: (i % 10 == 0).then(|| nodes[i / 10 % nodes.len()]),
        })
        .collect();
    let targets = weighted_targets(3_000, &nodes);
    let mut by_key = targets.clone();
    by_key.sort_by_key(|t| t.key);
    let removed: Vec<&str> = names.iter().step_by(7).map(String::as_str).collect();
    for (strategy, weighted) in [
        (Strategy::LeastWeighted, false),
        (Strategy::LeastWeighted, true),
        (Strategy::PerNode, false),
    ] {
        let mut config = Config::with_strategy(strategy);
        config.weighted = weighted;
        if strategy == Strategy::PerNode {
            config.fallback = Some(Strategy::LeastWeighted);
        }
        let mut batch = Allocator::new(config).unwrap();
        let mut single = Allocator::new(config).unwrap();
        // The reference knows many jobs (their targets gone again), which makes a scan of the
        // collectors cheaper than a tournament: it decides one placement at a time.
        let extra_jobs: Vec<String> = (0..100).map(|i| format!("extra-{i}")).collect();
        let extra: Vec<TargetSpec<'_>> = extra_jobs
            .iter()
            .enumerate()
            .map(|(i, job)| TargetSpec::new(TargetKey(i as u64), PlacementHash(0), job))
            .collect();
        single
            .apply(&Diff {
                upsert: extra.clone(),
                ..Diff::default()
            })
            .unwrap();
        single
            .apply(&Diff {
                remove: extra.iter().map(|t| t.key).collect(),
                ..Diff::default()
            })
            .unwrap();
        for a in [&mut batch, &mut single] {
            a.apply(&Diff {
                add_collectors: specs.clone(),
                ..Diff::default()
            })
            .unwrap();
        }
        batch
            .apply(&Diff {
                upsert: targets.clone(),
                ..Diff::default()
            })
            .unwrap();
        for t in &by_key {
            single
                .apply(&Diff {
                    upsert: vec![*t],
                    ..Diff::default()
                })
                .unwrap();
        }
        let owners = |a: &Allocator| -> Vec<Option<String>> {
            by_key
                .iter()
                .map(|t| {
                    a.collector_of(t.key)
                        .map(|c| a.collector_name(c).unwrap().to_owned())
                })
                .collect()
        };
        assert_eq!(
            owners(&batch),
            owners(&single),
            "{strategy:?} weighted={weighted}"
        );
        // Removing collectors orphans many targets at once (a run) in both.
        for a in [&mut batch, &mut single] {
            a.apply(&Diff {
                remove_collectors: removed.clone(),
                ..Diff::default()
            })
            .unwrap();
        }
        assert_eq!(
            owners(&batch),
            owners(&single),
            "{strategy:?} weighted={weighted}"
        );
    }
}

/// A first allocation large enough to fill the key index in bulk places every target as one
/// into an allocator that already held a target (which inserts row by row), for the rules that
/// place in key order and those that do not, with repeated keys in the diff.
#[test]
fn a_bulk_first_allocation_places_as_row_by_row_insertion() {
    let nodes: Vec<&'static str> = vec!["n0", "n1", "n2", "n3"];
    let mut targets = weighted_targets(70_000, &nodes);
    // Repeats: a key listed again later in the same diff, with other fields.
    for i in 0..50usize {
        let mut again = targets[i * 997];
        again.placement = PlacementHash(i as u64);
        targets.push(again.with_weight(3));
    }
    let names: Vec<String> = (0..80).map(|i| format!("c{i:02}")).collect();
    let specs: Vec<CollectorSpec<'_>> = names
        .iter()
        .enumerate()
        .map(|(i, n)| CollectorSpec {
            name: n,
            node: (i % 20 == 0).then(|| nodes[i / 20]),
        })
        .collect();
    for (strategy, fallback) in [
        (Strategy::LeastWeighted, None),
        (Strategy::ConsistentHashing, None),
        (Strategy::PerNode, Some(Strategy::LeastWeighted)),
    ] {
        let mut config = Config::with_strategy(strategy);
        config.fallback = fallback;
        let mut bulk = Allocator::new(config).unwrap();
        let mut rows = Allocator::new(config).unwrap();
        // A target added and removed again leaves a used slot behind: no bulk fill.
        let once = [TargetSpec::new(TargetKey(u64::MAX), PlacementHash(1), "a")];
        rows.apply(&Diff {
            upsert: once.to_vec(),
            ..Diff::default()
        })
        .unwrap();
        rows.apply(&Diff {
            remove: vec![TargetKey(u64::MAX)],
            ..Diff::default()
        })
        .unwrap();
        for a in [&mut bulk, &mut rows] {
            a.apply(&Diff {
                add_collectors: specs.clone(),
                ..Diff::default()
            })
            .unwrap();
            a.apply(&Diff {
                upsert: targets.clone(),
                ..Diff::default()
            })
            .unwrap();
        }
        for t in &targets {
            assert_eq!(
                bulk.collector_of(t.key)
                    .map(|c| bulk.collector_name(c).unwrap()),
                rows.collector_of(t.key)
                    .map(|c| rows.collector_name(c).unwrap()),
                "{strategy:?}"
            );
        }
        assert_eq!(bulk.digest(), rows.digest(), "{strategy:?}");
    }
}
