//! `diff_sequence`: random diff sequences applied to the allocator and to a plain reference model
//! of what the state must be, with the core's invariants checked after every diff.

use std::collections::{BTreeMap, BTreeSet};

use allocator_core::{
    Allocator, CollectorSpec, Config, Diff, Error, PlacementHash, RingVersion, Strategy, TargetKey,
    TargetSpec,
};
use arbitrary::{Arbitrary, Unstructured};

const JOBS: [&str; 3] = ["pods", "nodes", "ksm"];
const NODES: [&str; 4] = ["n0", "n1", "n2", "n3"];
const NAMES: [&str; 10] = ["c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"];

#[derive(Arbitrary, Debug, Clone, Copy)]
struct TargetOp {
    key: u8,
    address: u8,
    job: u8,
    node: Option<u8>,
    weight: u8,
}

#[derive(Arbitrary, Debug)]
struct Step {
    upsert: Vec<TargetOp>,
    remove: Vec<u8>,
    add: Vec<(u8, Option<u8>)>,
    remove_collectors: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
struct Case {
    strategy: u8,
    v1: bool,
    small_ring: bool,
    weighted: bool,
    steps: Vec<Step>,
}

/// What the state must hold after each diff: targets with their fields, collectors with nodes.
#[derive(Default, Clone)]
struct Model {
    targets: BTreeMap<u64, (u64, &'static str, Option<&'static str>, u32)>,
    collectors: BTreeMap<&'static str, Option<&'static str>>,
}

fn config(case: &Case) -> Config {
    let (strategy, fallback) = match case.strategy % 7 {
        0 => (Strategy::ConsistentHashing, None),
        1 => (Strategy::LeastWeighted, None),
        2 => (Strategy::PerNode, None),
        3 => (Strategy::PerNode, Some(Strategy::ConsistentHashing)),
        4 => (Strategy::BoundedHashing, None),
        6 => (Strategy::Rebalancing, None),
        _ => (Strategy::PerNode, Some(Strategy::LeastWeighted)),
    };
    let mut c = Config::with_strategy(strategy);
    c.fallback = fallback;
    c.weighted = case.weighted;
    if case.v1 {
        c.ring.version = RingVersion::V1_0_0;
    }
    if case.small_ring {
        c.ring.partition_count = 13;
        c.ring.replication_factor = 2;
    }
    c
}

fn spec(op: &TargetOp) -> TargetSpec<'static> {
    TargetSpec {
        key: TargetKey(u64::from(op.key % 48)),
        placement: PlacementHash::of_address(ADDRESSES[op.address as usize % ADDRESSES.len()]),
        job: JOBS[op.job as usize % JOBS.len()],
        node: op.node.map(|n| NODES[n as usize % NODES.len()]),
        weight: u32::from(op.weight),
    }
}

const ADDRESSES: [&str; 16] = [
    "10.0.0.1:9100",
    "10.0.0.2:9100",
    "10.0.0.3:9100",
    "10.0.0.4:9100",
    "10.0.1.1:8080",
    "10.0.1.2:8080",
    "10.0.1.3:8080",
    "10.0.1.4:8080",
    "a:1",
    "b:1",
    "c:1",
    "d:1",
    "e:1",
    "f:1",
    "g:1",
    "h:1",
];

fn assignment(a: &Allocator) -> BTreeMap<u64, Option<String>> {
    a.targets()
        .map(|t| {
            (
                t.key.0,
                t.collector.map(|c| a.collector_name(c).unwrap().to_owned()),
            )
        })
        .collect()
}

/// Apply random diffs and check after each: the allocator holds exactly the model's targets and
/// collectors, invalid diffs fail and change nothing, reported moves are the real difference,
/// loads add up, every assigned collector exists, and (for rules that do not depend on history)
/// the state after a collector change equals a fresh allocator built from the model.
pub fn diff_sequence(data: &[u8]) {
    let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) else {
        return;
    };
    let config = config(&case);
    let mut a = Allocator::new(config).expect("valid config");
    let mut model = Model::default();
    for step in case.steps.iter().take(24) {
        let diff = Diff {
            upsert: step.upsert.iter().take(40).map(spec).collect(),
            remove: step
                .remove
                .iter()
                .take(20)
                .map(|k| TargetKey(u64::from(k % 48)))
                .collect(),
            add_collectors: step
                .add
                .iter()
                .take(4)
                .map(|(n, node)| CollectorSpec {
                    name: NAMES[*n as usize % NAMES.len()],
                    node: node.map(|x| NODES[x as usize % NODES.len()]),
                })
                .collect(),
            remove_collectors: step
                .remove_collectors
                .iter()
                .take(4)
                .map(|n| NAMES[*n as usize % NAMES.len()])
                .collect(),
        };
        let expected = expect(&model, &diff);
        let before = assignment(&a);
        let snapshot = a.snapshot();
        match (a.apply(&diff).map(|m| m.to_vec()), expected) {
            (Err(e), Err(())) => {
                assert!(!e.to_string().is_empty());
                assert_eq!(a.snapshot(), snapshot, "a failed diff changes nothing");
                continue;
            }
            (Err(Error::RingCapacity { .. }), Ok(_)) => {
                assert_eq!(a.snapshot(), snapshot, "a failed diff changes nothing");
                continue;
            }
            (Err(e), Ok(_)) => panic!("valid diff refused: {e}"),
            (Ok(_), Err(())) => panic!("invalid diff accepted: {diff:?}"),
            (Ok(moves), Ok(next)) => {
                model = next;
                check(&a, &model, &config, &before, &moves);
                if !diff.add_collectors.is_empty() || !diff.remove_collectors.is_empty() {
                    check_fresh(&a, &model, &config);
                }
            }
        }
    }
    let restored = Allocator::restore(&a.snapshot()).expect("own snapshot restores");
    assert_eq!(assignment(&restored), assignment(&a));
}

/// The model after a diff, or Err for a diff the allocator must refuse.
fn expect(model: &Model, diff: &Diff<'static>) -> Result<Model, ()> {
    let mut next = model.clone();
    let removed: BTreeSet<u64> = diff.remove.iter().map(|k| k.0).collect();
    if diff
        .remove
        .iter()
        .any(|k| !model.targets.contains_key(&k.0))
        || diff.upsert.iter().any(|t| removed.contains(&t.key.0))
    {
        return Err(());
    }
    let mut seen = BTreeSet::new();
    for &name in &diff.remove_collectors {
        if !model.collectors.contains_key(name) || !seen.insert(name) {
            return Err(());
        }
    }
    let mut adding = BTreeSet::new();
    for c in &diff.add_collectors {
        if !adding.insert(c.name)
            || (model.collectors.contains_key(c.name) && !seen.contains(c.name))
        {
            return Err(());
        }
    }
    for k in &removed {
        next.targets.remove(k);
    }
    for name in &diff.remove_collectors {
        next.collectors.remove(name);
    }
    for c in &diff.add_collectors {
        next.collectors.insert(c.name, c.node);
    }
    for t in &diff.upsert {
        next.targets
            .insert(t.key.0, (t.placement.0, t.job, t.node, t.weight));
    }
    Ok(next)
}

fn check(
    a: &Allocator,
    model: &Model,
    config: &Config,
    before: &BTreeMap<u64, Option<String>>,
    moves: &[allocator_core::Move],
) {
    assert_eq!(a.len(), model.targets.len());
    for (key, (placement, job, node, weight)) in &model.targets {
        let t = a.target(TargetKey(*key)).expect("model target present");
        assert_eq!(
            (t.placement.0, t.job, t.node, t.weight),
            (*placement, *job, *node, *weight)
        );
    }
    let names: BTreeSet<&str> = a.collectors().map(|c| c.name).collect();
    assert_eq!(names, model.collectors.keys().copied().collect());
    for c in a.collectors() {
        assert_eq!(c.node, model.collectors[c.name]);
    }

    let after = assignment(a);
    let mut real = BTreeMap::new();
    for key in before.keys().chain(after.keys()) {
        let (b, f) = (
            before.get(key).cloned().flatten(),
            after.get(key).cloned().flatten(),
        );
        if b != f {
            real.insert(*key, (b, f));
        }
    }
    let reported: BTreeMap<u64, (Option<String>, Option<String>)> = moves
        .iter()
        .map(|m| {
            let name = |c: Option<allocator_core::CollectorId>| {
                c.map(|c| {
                    a.collector_name(c)
                        .expect("moves name known collectors")
                        .to_owned()
                })
            };
            (m.key.0, (name(m.from), name(m.to)))
        })
        .collect();
    assert_eq!(reported.len(), moves.len(), "one move per target");
    assert_eq!(reported, real, "moves are the real difference");

    let mut counts: BTreeMap<&str, (u32, u64)> = BTreeMap::new();
    for t in a.targets() {
        match t.collector {
            Some(c) => {
                let name = a.collector_name(c).unwrap();
                assert!(
                    model.collectors.contains_key(name),
                    "assigned to a live collector"
                );
                let e = counts.entry(name).or_default();
                e.0 += 1;
                e.1 += u64::from(t.weight);
            }
            None => assert!(
                model.collectors.is_empty() || config.strategy == Strategy::PerNode,
                "unassigned while collectors exist"
            ),
        }
    }
    for c in a.collectors() {
        assert_eq!(
            (c.targets, c.weight),
            counts.get(c.name).copied().unwrap_or_default()
        );
    }
}

/// After a collector change every non-sticky target sits where its rule says, so the state equals
/// a fresh allocator's (history matters only for least-weighted).
fn check_fresh(a: &Allocator, model: &Model, config: &Config) {
    let sticky = matches!(
        config.strategy,
        Strategy::LeastWeighted | Strategy::Rebalancing
    ) || config.fallback == Some(Strategy::LeastWeighted);
    if sticky {
        return;
    }
    let mut fresh = Allocator::new(*config).unwrap();
    let upsert = model
        .targets
        .iter()
        .map(|(k, (p, job, node, weight))| TargetSpec {
            key: TargetKey(*k),
            placement: PlacementHash(*p),
            job,
            node: *node,
            weight: *weight,
        })
        .collect();
    let add_collectors = model
        .collectors
        .iter()
        .map(|(name, node)| CollectorSpec { name, node: *node })
        .collect();
    fresh
        .apply(&Diff {
            upsert,
            add_collectors,
            ..Diff::default()
        })
        .unwrap();
    assert_eq!(
        assignment(&fresh),
        assignment(a),
        "same state as a fresh allocator"
    );
}

/// Print a decoded case (for debugging a crash file).
pub fn debug_case(data: &[u8]) {
    if let Ok(case) = Case::arbitrary(&mut Unstructured::new(data)) {
        eprintln!("{:?}", config(&case));
        for s in case.steps.iter().take(24) {
            eprintln!(
                "upsert {:?}",
                s.upsert
                    .iter()
                    .take(40)
                    .map(spec)
                    .map(|t| (t.key.0, t.placement.0 % 13, t.node))
                    .collect::<Vec<_>>()
            );
            eprintln!(
                "remove {:?} add {:?} rm {:?}",
                s.remove.iter().take(20).map(|k| k % 48).collect::<Vec<_>>(),
                s.add
                    .iter()
                    .take(4)
                    .map(|(n, node)| (NAMES[*n as usize % 10], node.map(|x| NODES[x as usize % 4])))
                    .collect::<Vec<_>>(),
                s.remove_collectors
                    .iter()
                    .take(4)
                    .map(|n| NAMES[*n as usize % 10])
                    .collect::<Vec<_>>()
            );
        }
    }
}
