//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::collections::BTreeMap;

use allocator_core::{
    Allocator, CollectorSpec, Config, Diff, Move, PlacementHash, TargetKey, TargetSpec,
};

/// A target of the test universe: fields are a fixed function of its index, so a key never
/// changes its address within one test (address changes under one identity are tested apart).
#[derive(Clone, Debug)]
pub struct Universe {
    pub jobs: Vec<String>,
    pub nodes: Vec<String>,
    pub targets: Vec<(TargetKey, PlacementHash, usize, Option<usize>, u32)>,
    pub collectors: Vec<(String, Option<usize>)>,
}

impl Universe {
    pub fn new(seed: u64, targets: usize, collectors: usize) -> Self {
        let mut x = seed | 1;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let jobs: Vec<String> = (0..3).map(|j| format!("job-{j}")).collect();
        let nodes: Vec<String> = (0..4).map(|n| format!("node-{n}")).collect();
        let targets = (0..targets)
            .map(|i| {
                let node = (next() % 5) as usize;
                (
                    TargetKey(next()),
                    PlacementHash::of_address(&format!("10.0.{}.{}:9100", i / 250, i % 250)),
                    (next() % 3) as usize,
                    (node < 4).then_some(node),
                    (next() % 10) as u32 + 1,
                )
            })
            .collect();
        let collectors = (0..collectors)
            .map(|c| (format!("collector-{c}"), Some(c % 4).filter(|_| c % 5 != 4)))
            .collect();
        Universe {
            jobs,
            nodes,
            targets,
            collectors,
        }
    }

    pub fn spec(&self, i: usize) -> TargetSpec<'_> {
        let (key, placement, job, node, weight) = self.targets[i];
        TargetSpec {
            key,
            placement,
            job: &self.jobs[job],
            node: node.map(|n| self.nodes[n].as_str()),
            weight,
        }
    }

    pub fn collector(&self, c: usize) -> CollectorSpec<'_> {
        let (name, node) = &self.collectors[c];
        CollectorSpec {
            name,
            node: node.map(|n| self.nodes[n].as_str()),
        }
    }
}

/// A diff over the universe: which targets and collectors it adds or removes.
#[derive(Clone, Debug, Default)]
pub struct Step {
    pub upsert: Vec<usize>,
    pub remove: Vec<usize>,
    pub add_collectors: Vec<usize>,
    pub remove_collectors: Vec<usize>,
}

impl Step {
    pub fn diff<'u>(&self, u: &'u Universe) -> Diff<'u> {
        Diff {
            upsert: self.upsert.iter().map(|&i| u.spec(i)).collect(),
            remove: self.remove.iter().map(|&i| u.targets[i].0).collect(),
            add_collectors: self
                .add_collectors
                .iter()
                .map(|&c| u.collector(c))
                .collect(),
            remove_collectors: self
                .remove_collectors
                .iter()
                .map(|&c| u.collectors[c].0.as_str())
                .collect(),
        }
    }

    pub fn inverse(&self) -> Step {
        Step {
            upsert: self.remove.clone(),
            remove: self.upsert.clone(),
            add_collectors: self.remove_collectors.clone(),
            remove_collectors: self.add_collectors.clone(),
        }
    }
}

/// Turn raw choices into a valid step against the current presence sets.
pub fn make_step(
    toggles_t: &[usize],
    toggles_c: &[usize],
    present_t: &mut [bool],
    present_c: &mut [bool],
) -> Step {
    let mut s = Step::default();
    let mut seen = std::collections::BTreeSet::new();
    for &t in toggles_t {
        let t = t % present_t.len();
        if !seen.insert(t) {
            continue;
        }
        if present_t[t] {
            s.remove.push(t);
        } else {
            s.upsert.push(t);
        }
        present_t[t] = !present_t[t];
    }
    let mut seen = std::collections::BTreeSet::new();
    for &c in toggles_c {
        let c = c % present_c.len();
        if !seen.insert(c) {
            continue;
        }
        if present_c[c] {
            s.remove_collectors.push(c);
        } else {
            s.add_collectors.push(c);
        }
        present_c[c] = !present_c[c];
    }
    s
}

/// Target key → collector name, for every target.
pub fn assignment(a: &Allocator) -> BTreeMap<TargetKey, Option<String>> {
    a.targets()
        .map(|t| {
            (
                t.key,
                t.collector.map(|c| a.collector_name(c).unwrap().to_owned()),
            )
        })
        .collect()
}

/// Moves as (key, from name, to name).
pub fn named_moves(
    a: &Allocator,
    moves: &[Move],
) -> BTreeMap<TargetKey, (Option<String>, Option<String>)> {
    let name =
        |c: Option<allocator_core::CollectorId>| c.map(|c| a.collector_name(c).unwrap().to_owned());
    moves
        .iter()
        .map(|m| (m.key, (name(m.from), name(m.to))))
        .collect()
}

pub fn build(config: Config, u: &Universe, targets: &[usize], collectors: &[usize]) -> Allocator {
    let mut a = Allocator::new(config).unwrap();
    a.apply(
        &Step {
            upsert: targets.to_vec(),
            add_collectors: collectors.to_vec(),
            ..Step::default()
        }
        .diff(u),
    )
    .unwrap();
    a
}

/// `⌈(1+ε)·W/n⌉` and `⌊(1−ε)·W/n⌋`, with ε in millionths as the configuration resolves it.
pub fn band(total: u64, n: u64, eps: f64) -> (u64, u64) {
    let ppm = (eps * 1e6).round() as u128;
    let den = u128::from(n) * 1_000_000;
    let cap = (u128::from(total) * (1_000_000 + ppm)).div_ceil(den) as u64;
    let floor = (u128::from(total) * 1_000_000u128.saturating_sub(ppm) / den) as u64;
    (floor, cap)
}

/// Every target placed, and no move left that the rules allow: a target moves from a collector
/// to the idlest one only if the receiver stays under the cap and the target weighs less than
/// the gap between them (and, to fill a collector under the floor, the giver stays at or above
/// the floor).
pub fn check_fixed_point(a: &Allocator, eps: f64) {
    let n = a.collector_count() as u64;
    if n == 0 {
        assert!(a.targets().all(|t| t.collector.is_none()));
        return;
    }
    assert!(
        a.targets().all(|t| t.collector.is_some()),
        "unplaced target"
    );
    let mut held: BTreeMap<String, Vec<u64>> = a
        .collectors()
        .map(|c| (c.name.to_owned(), Vec::new()))
        .collect();
    for t in a.targets() {
        let name = a.collector_name(t.collector.unwrap()).unwrap();
        held.get_mut(name).unwrap().push(u64::from(t.weight));
    }
    let loads: Vec<u64> = held.values().map(|w| w.iter().sum()).collect();
    // The allocator's own per-collector weights agree with the assignment.
    let reported: Vec<u64> = {
        let mut c: Vec<_> = a
            .collectors()
            .map(|c| (c.name.to_owned(), c.weight))
            .collect();
        c.sort();
        c.into_iter().map(|(_, w)| w).collect()
    };
    assert_eq!(loads, reported);
    let total: u64 = loads.iter().sum();
    let (floor, cap) = band(total, n, eps);
    let low = *loads.iter().min().unwrap();
    for (weights, &load) in held.values().zip(&loads) {
        for &w in weights {
            let allowed = w >= 1 && low + w <= cap && w < load - low.min(load);
            if load > cap {
                assert!(
                    !allowed,
                    "a collector at {load} > cap {cap} could give {w} to one at {low}"
                );
            }
            if low < floor && load > floor {
                assert!(
                    !(allowed && load - w >= floor),
                    "a collector at {low} < floor {floor} could take {w} from one at {load}"
                );
            }
        }
    }
}
