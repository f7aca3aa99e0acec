//! Property tests: each states its invariant in its name. Inputs are random diff sequences over a
//! small universe of targets and collectors (see `common`).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use allocator_core::{Allocator, Config, MoveKind, Strategy};
use common::{assignment, build, make_step, named_moves, Step, Universe};
use proptest::prelude::*;

const TARGETS: usize = 60;
const COLLECTORS: usize = 8;

fn configs() -> Vec<Config> {
    let mut out = Vec::new();
    for strategy in Strategy::ALL {
        for version in ["v0.10.0", "v1.0.0"] {
            let mut c = Config::with_strategy(strategy);
            c.ring.version = version.parse().unwrap();
            // A small ring keeps the cases fast and still exercises the bounded walk.
            c.ring.partition_count = 61;
            out.push(c);
        }
    }
    let mut weighted = Config::with_strategy(Strategy::LeastWeighted);
    weighted.weighted = true;
    out.push(weighted);
    for fallback in [Strategy::ConsistentHashing, Strategy::LeastWeighted] {
        let mut c = Config::with_strategy(Strategy::PerNode);
        c.fallback = Some(fallback);
        out.push(c);
    }
    out
}

fn order_free(c: &Config) -> bool {
    c.strategy == Strategy::ConsistentHashing
        || c.strategy == Strategy::BoundedHashing
        || (c.strategy == Strategy::PerNode && c.fallback != Some(Strategy::LeastWeighted))
}

type Script = Vec<(Vec<usize>, Vec<usize>)>;

fn script() -> impl proptest::strategy::Strategy<Value = (u64, Script)> {
    (
        any::<u64>(),
        prop::collection::vec(
            (
                prop::collection::vec(0..TARGETS, 0..25),
                prop::collection::vec(0..COLLECTORS, 0..3),
            ),
            1..12,
        ),
    )
}

/// Runs a script on every configuration, calling `check(config, allocator, before, step, moves)`
/// after each step.
fn run_script(
    seed: u64,
    script: &Script,
    mut check: impl FnMut(
        &Config,
        &Allocator,
        &BTreeMap<allocator_core::TargetKey, Option<String>>,
        &Step,
        &[allocator_core::Move],
    ),
) {
    let u = Universe::new(seed, TARGETS, COLLECTORS);
    for config in configs() {
        let mut a = Allocator::new(config).unwrap();
        let (mut pt, mut pc) = (vec![false; TARGETS], vec![false; COLLECTORS]);
        for (tt, tc) in script {
            let step = make_step(tt, tc, &mut pt, &mut pc);
            let before = assignment(&a);
            let moves = a.apply(&step.diff(&u)).unwrap().to_vec();
            check(&config, &a, &before, &step, &moves);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_target_on_exactly_one_existing_collector_while_any_exist((seed, script) in script()) {
        run_script(seed, &script, |config, a, _, _, _| {
            let alive: BTreeSet<_> = a.collectors().map(|c| c.id).collect();
            let mut counted = 0;
            for t in a.targets() {
                match t.collector {
                    Some(c) => {
                        assert!(alive.contains(&c), "{config:?}: target on a removed collector");
                        counted += 1;
                    }
                    None => {
                        // Only per-node may leave a target unassigned while collectors exist.
                        if !alive.is_empty() && config.strategy != Strategy::PerNode {
                            panic!("{config:?}: unassigned target with collectors present");
                        }
                    }
                }
            }
            let per_collector: u32 = a.collectors().map(|c| c.targets).sum();
            assert_eq!(per_collector as usize, counted, "{config:?}: loads agree with assignments");
            assert_eq!(a.summary().unassigned, a.len() - counted);
        });
    }

    #[test]
    fn no_target_assigned_while_there_are_no_collectors((seed, script) in script()) {
        run_script(seed, &script, |config, a, _, _, _| {
            if a.collector_count() == 0 {
                assert!(a.targets().all(|t| t.collector.is_none()), "{config:?}");
            }
        });
    }

    #[test]
    fn reported_moves_equal_the_real_before_after_difference((seed, script) in script()) {
        run_script(seed, &script, |config, a, before, _, moves| {
            let after = assignment(a);
            let mut real = BTreeMap::new();
            for key in before.keys().chain(after.keys()) {
                let b = before.get(key).cloned().flatten();
                let f = after.get(key).cloned().flatten();
                if b != f {
                    real.insert(*key, (b, f));
                }
            }
            assert_eq!(moves.len(), real.len(), "{config:?}: one move per changed target");
            assert_eq!(named_moves(a, moves), real, "{config:?}");
        });
    }

    #[test]
    fn consistent_hashing_bounded_hashing_and_per_node_results_independent_of_diff_order(
        (seed, script) in script(),
        shuffle_seed in any::<u64>(),
    ) {
        let u = Universe::new(seed, TARGETS, COLLECTORS);
        for config in configs().into_iter().filter(order_free) {
            let mut a = Allocator::new(config).unwrap();
            let (mut pt, mut pc) = (vec![false; TARGETS], vec![false; COLLECTORS]);
            for (tt, tc) in &script {
                let step = make_step(tt, tc, &mut pt, &mut pc);
                a.apply(&step.diff(&u)).unwrap();
            }
            // The same final state, built in one diff from a shuffled listing.
            let mut targets: Vec<usize> = (0..TARGETS).filter(|&t| pt[t]).collect();
            let mut collectors: Vec<usize> = (0..COLLECTORS).filter(|&c| pc[c]).collect();
            let mut x = shuffle_seed | 1;
            for v in [&mut targets, &mut collectors] {
                for i in (1..v.len()).rev() {
                    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                    v.swap(i, (x % (i as u64 + 1)) as usize);
                }
            }
            let scratch = build(config, &u, &targets, &collectors);
            assert_eq!(assignment(&a), assignment(&scratch), "{config:?}");
        }
    }

    #[test]
    fn a_diff_followed_by_its_inverse_restores_the_assignment((seed, script) in script()) {
        let u = Universe::new(seed, TARGETS, COLLECTORS);
        for config in configs() {
            let mut a = Allocator::new(config).unwrap();
            let (mut pt, mut pc) = (vec![false; TARGETS], vec![false; COLLECTORS]);
            for (tt, tc) in &script {
                let step = make_step(tt, tc, &mut pt, &mut pc);
                // least-weighted is sticky: only diffs that add can be undone exactly
                // (re-adding removed targets places them afresh). rebalancing moves weight
                // onto a new collector and re-places it by load when that collector leaves, so
                // not even those (tests/rebalancing.rs checks what it guarantees instead).
                let additive = step.remove.is_empty()
                    && step.remove_collectors.is_empty()
                    && config.strategy != Strategy::Rebalancing;
                let before = assignment(&a);
                a.apply(&step.diff(&u)).unwrap();
                let mut undo = a.clone();
                undo.apply(&step.inverse().diff(&u)).unwrap();
                if order_free(&config) || additive {
                    assert_eq!(assignment(&undo), before, "{config:?} {step:?}");
                }
            }
        }
    }

    #[test]
    fn removing_a_collector_under_least_weighted_moves_only_that_collectors_targets(
        (seed, script) in script(),
        victim in 0..COLLECTORS,
    ) {
        let u = Universe::new(seed, TARGETS, COLLECTORS);
        for weighted in [false, true] {
            let mut config = Config::with_strategy(Strategy::LeastWeighted);
            config.weighted = weighted;
            let mut a = Allocator::new(config).unwrap();
            let (mut pt, mut pc) = (vec![false; TARGETS], vec![false; COLLECTORS]);
            for (tt, tc) in &script {
                let step = make_step(tt, tc, &mut pt, &mut pc);
                a.apply(&step.diff(&u)).unwrap();
            }
            let name = &u.collectors[victim].0;
            let Some(id) = a.collector_id(name) else { continue };
            let owned: BTreeSet<_> = a.targets_of(id, None).into_iter().collect();
            let moves = a.apply(&Step { remove_collectors: vec![victim], ..Step::default() }.diff(&u)).unwrap().to_vec();
            let moved: BTreeSet<_> = moves.iter().map(|m| m.key).collect();
            assert_eq!(moved, owned);
            if a.collector_count() > 0 {
                assert!(moves.iter().all(|m| m.kind() == MoveKind::Reassigned));
            }
        }
    }

    #[test]
    fn per_node_never_assigns_across_nodes_except_through_the_fallback((seed, script) in script()) {
        run_script(seed, &script, |config, a, _, _, _| {
            if config.strategy != Strategy::PerNode {
                return;
            }
            for t in a.targets() {
                let Some(c) = t.collector else { continue };
                let on = a.stats_of(c).unwrap().node;
                match t.node {
                    Some(node) => assert_eq!(on, Some(node), "{config:?}: node target off its node"),
                    None => assert!(config.fallback.is_some(), "{config:?}: node-less target without fallback"),
                }
            }
        });
    }
}
