//! The columnar batch, the engine's primary input: each test states its invariant in its name.

mod common;

use allocator_core::{
    Allocator, BatchDiff, CollectorSpec, Config, Error, Strategy, TargetBatch, TargetKey, NO_NODE,
};
use common::{assignment, make_step, named_moves, Step, Universe};
use proptest::prelude::*;

const TARGETS: usize = 60;
const COLLECTORS: usize = 6;

/// A step's upserts as columns, with the name tables in the order `perm` gives (a caller's
/// tables follow its own order, not the allocator's).
struct Owned {
    keys: Vec<u64>,
    placements: Vec<u64>,
    weights: Vec<u32>,
    jobs: Vec<u32>,
    job_names: Vec<String>,
    nodes: Vec<u32>,
    node_names: Vec<String>,
    remove: Vec<u64>,
}

impl Owned {
    fn new(u: &Universe, step: &Step, rotate: usize) -> Owned {
        let rot = |n: usize, len: usize| ((n + rotate) % len) as u32;
        let mut job_names = u.jobs.clone();
        job_names.rotate_right(rotate % u.jobs.len());
        let mut node_names = u.nodes.clone();
        node_names.rotate_right(rotate % u.nodes.len());
        let rows = step.upsert.iter().map(|&i| u.targets[i]);
        Owned {
            keys: rows.clone().map(|t| t.0 .0).collect(),
            placements: rows.clone().map(|t| t.1 .0).collect(),
            weights: rows.clone().map(|t| t.4).collect(),
            jobs: rows.clone().map(|t| rot(t.2, u.jobs.len())).collect(),
            nodes: rows
                .map(|t| t.3.map_or(NO_NODE, |n| rot(n, u.nodes.len())))
                .collect(),
            job_names,
            node_names,
            remove: step.remove.iter().map(|&i| u.targets[i].0 .0).collect(),
        }
    }
}

fn apply_columns(a: &mut Allocator, u: &Universe, step: &Step, rotate: usize) -> Vec<String> {
    let o = Owned::new(u, step, rotate);
    let job_names: Vec<&str> = o.job_names.iter().map(String::as_str).collect();
    let node_names: Vec<&str> = o.node_names.iter().map(String::as_str).collect();
    let add: Vec<CollectorSpec<'_>> = step
        .add_collectors
        .iter()
        .map(|&c| u.collector(c))
        .collect();
    let remove_c: Vec<&str> = step
        .remove_collectors
        .iter()
        .map(|&c| u.collectors[c].0.as_str())
        .collect();
    let moves = a
        .apply_batch(&BatchDiff {
            upsert: TargetBatch {
                keys: &o.keys,
                placements: &o.placements,
                weights: &o.weights,
                jobs: &o.jobs,
                job_names: &job_names,
                nodes: &o.nodes,
                node_names: &node_names,
            },
            remove: &o.remove,
            add_collectors: &add,
            remove_collectors: &remove_c,
        })
        .unwrap()
        .to_vec();
    let named = named_moves(a, &moves);
    named.iter().map(|(k, v)| format!("{k}:{v:?}")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn a_batch_diff_gives_the_same_assignment_and_moves_as_the_same_diff_of_specs(
        seed in any::<u64>(),
        rotate in 0usize..7,
        script in prop::collection::vec(
            (prop::collection::vec(0..TARGETS, 0..25), prop::collection::vec(0..COLLECTORS, 0..3)),
            1..10,
        ),
    ) {
        let u = Universe::new(seed, TARGETS, COLLECTORS);
        for strategy in Strategy::ALL {
            let config = Config::with_strategy(strategy);
            let mut by_spec = Allocator::new(config).unwrap();
            let mut by_batch = Allocator::new(config).unwrap();
            let (mut pt, mut pc) = (vec![false; TARGETS], vec![false; COLLECTORS]);
            for (tt, tc) in &script {
                let step = make_step(tt, tc, &mut pt, &mut pc);
                let spec_moves = by_spec.apply(&step.diff(&u)).unwrap().to_vec();
                let spec_moves: Vec<String> = named_moves(&by_spec, &spec_moves)
                    .iter()
                    .map(|(k, v)| format!("{k}:{v:?}"))
                    .collect();
                let batch_moves = apply_columns(&mut by_batch, &u, &step, rotate);
                prop_assert_eq!(&spec_moves, &batch_moves, "{:?}", strategy);
                prop_assert_eq!(assignment(&by_spec), assignment(&by_batch));
            }
        }
    }

    #[test]
    fn a_full_listing_in_columns_reconciles_to_the_listed_targets_and_reports_the_difference(
        seed in any::<u64>(),
        first in prop::collection::btree_set(0..TARGETS, 0..TARGETS),
        second in prop::collection::btree_set(0..TARGETS, 0..TARGETS),
    ) {
        let u = Universe::new(seed, TARGETS, COLLECTORS);
        let mut a = Allocator::new(Config::default()).unwrap();
        let add: Vec<CollectorSpec<'_>> = (0..COLLECTORS).map(|c| u.collector(c)).collect();
        a.apply_batch(&BatchDiff { add_collectors: &add, ..BatchDiff::default() }).unwrap();
        for listing in [&first, &second] {
            let step = Step { upsert: listing.iter().copied().collect(), ..Step::default() };
            let o = Owned::new(&u, &step, 3);
            let job_names: Vec<&str> = o.job_names.iter().map(String::as_str).collect();
            let node_names: Vec<&str> = o.node_names.iter().map(String::as_str).collect();
            let before = assignment(&a);
            let moves = a
                .set_targets_batch(&TargetBatch {
                    keys: &o.keys,
                    placements: &o.placements,
                    weights: &o.weights,
                    jobs: &o.jobs,
                    job_names: &job_names,
                    nodes: &o.nodes,
                    node_names: &node_names,
                })
                .unwrap()
                .to_vec();
            let after = assignment(&a);
            let listed: std::collections::BTreeSet<TargetKey> =
                listing.iter().map(|&i| u.targets[i].0).collect();
            prop_assert_eq!(after.keys().copied().collect::<std::collections::BTreeSet<_>>(), listed);
            let named = named_moves(&a, &moves);
            for key in before.keys().chain(after.keys()) {
                let (b, f) = (before.get(key).cloned().flatten(), after.get(key).cloned().flatten());
                match named.get(key) {
                    Some((from, to)) => prop_assert!(*from == b && *to == f && b != f),
                    None => prop_assert_eq!(b, f),
                }
            }
        }
    }
}

#[test]
fn a_batch_with_a_short_column_or_an_index_out_of_its_table_is_refused_and_changes_nothing() {
    let mut a = Allocator::new(Config::default()).unwrap();
    let add = [CollectorSpec::new("c0")];
    a.apply_batch(&BatchDiff {
        add_collectors: &add,
        ..BatchDiff::default()
    })
    .unwrap();
    let good = TargetBatch {
        keys: &[1, 2],
        placements: &[10, 20],
        jobs: &[0, 0],
        job_names: &["j"],
        ..TargetBatch::default()
    };
    let cases: [(TargetBatch<'_>, &str); 5] = [
        (
            TargetBatch {
                placements: &[10],
                ..good
            },
            "column placements has 1 entries for 2 keys",
        ),
        (
            TargetBatch {
                weights: &[1, 2, 3],
                ..good
            },
            "column weights has 3 entries for 2 keys",
        ),
        (
            TargetBatch {
                jobs: &[0, 1],
                ..good
            },
            "row 1: job index 1 but the batch names 1 jobs",
        ),
        (
            TargetBatch {
                nodes: &[NO_NODE, 0],
                ..good
            },
            "row 1: node index 0 but the batch names 0 nodes",
        ),
        (
            TargetBatch {
                nodes: &[NO_NODE],
                ..good
            },
            "column nodes has 1 entries for 2 keys",
        ),
    ];
    for (batch, message) in cases {
        let err = a
            .apply_batch(&BatchDiff {
                upsert: batch,
                ..BatchDiff::default()
            })
            .unwrap_err();
        assert_eq!(err, Error::InvalidBatch(message.to_owned()));
        assert!(a.is_empty(), "{message}: a refused batch changed the state");
        assert_eq!(
            a.set_targets_batch(&batch).unwrap_err(),
            Error::InvalidBatch(message.to_owned())
        );
    }
    assert_eq!(
        a.apply_batch(&BatchDiff {
            upsert: good,
            ..BatchDiff::default()
        })
        .unwrap()
        .len(),
        2
    );
}

#[test]
fn an_empty_node_name_in_a_batch_means_no_node() {
    let mut a = Allocator::new(Config::with_strategy(Strategy::PerNode)).unwrap();
    let add = [CollectorSpec::on_node("c0", "n1")];
    let moves = a
        .apply_batch(&BatchDiff {
            upsert: TargetBatch {
                keys: &[1, 2],
                placements: &[10, 20],
                jobs: &[0, 0],
                job_names: &["j"],
                nodes: &[0, 1],
                node_names: &["", "n1"],
                ..TargetBatch::default()
            },
            add_collectors: &add,
            ..BatchDiff::default()
        })
        .unwrap()
        .to_vec();
    // Target 1 has no node (per-node leaves it unassigned, no move); target 2 is on n1.
    assert_eq!(moves.len(), 1);
    assert_eq!(a.target(TargetKey(1)).unwrap().node, None);
    assert_eq!(a.target(TargetKey(2)).unwrap().node, Some("n1"));
}
