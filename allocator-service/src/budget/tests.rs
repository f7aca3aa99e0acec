use std::collections::HashMap;

use allocator_core::{CollectorSpec, Config, PlacementHash, Strategy, TargetSpec};

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn limits(max_moves: Option<u64>, max_weight_percent: Option<f64>) -> Option<Limits> {
    Some(Limits {
        max_moves,
        max_weight_percent,
        interval: SECOND,
    })
}

fn addresses(n: u64) -> Vec<String> {
    (0..n)
        .map(|i| format!("10.0.{}.{}:9100", i / 250, i % 250))
        .collect()
}

fn specs<'a>(addrs: &'a [String], weights: &[u32]) -> Vec<TargetSpec<'a>> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, a)| {
            TargetSpec::new(TargetKey(i as u64 + 1), PlacementHash::of_address(a), "job")
                .with_weight(weights.get(i).copied().unwrap_or(1))
        })
        .collect()
}

fn collectors(names: &[&'static str]) -> Vec<CollectorSpec<'static>> {
    names.iter().map(|n| CollectorSpec::new(n)).collect()
}

/// What the publisher would serve: each target's collector name, from the moves handed to it.
#[derive(Default)]
struct Served(HashMap<TargetKey, Option<String>>);

impl Served {
    fn apply(&mut self, moves: &[Move], a: &Allocator) {
        for m in moves {
            let to = m.to.and_then(|c| a.collector_name(c)).map(str::to_owned);
            self.0.insert(m.key, to);
        }
    }

    /// Targets served elsewhere than where the core has them.
    fn differing(&self, a: &Allocator) -> usize {
        self.0
            .iter()
            .filter(|(k, c)| {
                let core = a
                    .collector_of(**k)
                    .and_then(|c| a.collector_name(c))
                    .map(str::to_owned);
                core != **c
            })
            .count()
    }

    /// Every served collector exists.
    fn all_alive(&self, a: &Allocator) -> bool {
        self.0
            .values()
            .flatten()
            .all(|c| a.collector_id(c).is_some())
    }
}

/// One refresh: refill, the diff's moves through the budget, then the release.
fn refresh(b: &mut Budget, a: &Allocator, moves: &[Move], served: &mut Served) {
    let mut out = Vec::new();
    b.filter(moves, a, &mut out);
    b.release(a, &mut out);
    served.apply(&out, a);
}

/// Allocator with `n` targets on two collectors, fully served.
fn started(n: u64, weights: &[u32], strategy: Strategy) -> (Allocator, Vec<String>, Served) {
    let mut a = Allocator::new(Config::with_strategy(strategy)).unwrap();
    let mut served = Served::default();
    let m = a
        .set_collectors(&collectors(&["c0", "c1"]))
        .unwrap()
        .to_vec();
    served.apply(&m, &a);
    let addrs = addresses(n);
    let m = a.set_targets(&specs(&addrs, weights)).unwrap().to_vec();
    served.apply(&m, &a);
    (a, addrs, served)
}

/// [`started`] with `n` targets (consistent-hashing), then a budget of one move per interval
/// and a third collector: the moves to it beyond the first are queued.
fn scaled_out_by_one_move(n: u64) -> (Allocator, Vec<String>, Served, Budget) {
    let (mut a, addrs, mut served) = started(n, &[], Strategy::ConsistentHashing);
    let mut b = Budget::new(limits(Some(1), None));
    b.refill(Instant::now(), &a);
    let m = a
        .set_collectors(&collectors(&["c0", "c1", "c2"]))
        .unwrap()
        .to_vec();
    refresh(&mut b, &a, &m, &mut served);
    (a, addrs, served, b)
}

#[test]
fn without_limits_every_move_passes() {
    let (mut a, _, mut served) = started(60, &[], Strategy::ConsistentHashing);
    let mut b = Budget::new(None);
    let t0 = Instant::now();
    b.refill(t0, &a);
    let m = a
        .set_collectors(&collectors(&["c0", "c1", "c2"]))
        .unwrap()
        .to_vec();
    assert!(m.iter().any(|m| m.kind() == MoveKind::Reassigned));
    refresh(&mut b, &a, &m, &mut served);
    assert_eq!(b.queued(), 0);
    assert_eq!(served.differing(&a), 0);
    assert!(!b.due(t0 + 10 * SECOND));
}

#[test]
fn moves_beyond_the_budget_trickle_out_at_the_configured_rate_and_end_where_the_core_says() {
    let (mut a, _, mut served) = started(200, &[], Strategy::ConsistentHashing);
    let before = a.digest();
    let mut b = Budget::new(limits(Some(3), None));
    let mut now = Instant::now();
    b.refill(now, &a);
    let m = a
        .set_collectors(&collectors(&["c0", "c1", "c2", "c3"]))
        .unwrap()
        .to_vec();
    let reassigned = m
        .iter()
        .filter(|m| m.kind() == MoveKind::Reassigned)
        .count();
    assert!(reassigned > 20, "{reassigned} moves");
    refresh(&mut b, &a, &m, &mut served);
    assert_eq!(b.queued(), reassigned - 3);
    assert_eq!(served.differing(&a), reassigned - 3);
    assert_eq!(b.totals().deferred, (reassigned - 3) as u64);
    // Before any release, what is served is the placement before the scale-out: the digest of
    // what is served is the core's digest of then.
    let mut first = m.iter().filter(|m| m.kind() == MoveKind::Reassigned);
    for _ in 0..3 {
        let passed = first.next().unwrap();
        assert!(b.served(passed.key).is_none(), "the first three pass");
    }
    let mut kept = Allocator::new(Config::with_strategy(Strategy::ConsistentHashing)).unwrap();
    kept.set_collectors(&collectors(&["c0", "c1"])).unwrap();
    let addrs = addresses(200);
    kept.set_targets(&specs(&addrs, &[])).unwrap();
    assert_eq!(kept.digest(), before);
    let passed: Vec<_> = m
        .iter()
        .filter(|m| m.kind() == MoveKind::Reassigned)
        .take(3)
        .collect();
    let mut expect = before;
    for p in &passed {
        let from = a.collector_name(p.from.unwrap()).unwrap();
        let to = a.collector_name(p.to.unwrap()).unwrap();
        expect ^= digest_term(p.key, from) ^ digest_term(p.key, to);
    }
    assert_eq!(b.served_digest(&a), expect);
    // Not due within the interval: nothing released.
    assert!(!b.due(now + SECOND / 2));
    b.refill(now + SECOND / 2, &a);
    refresh(&mut b, &a, &[], &mut served);
    assert_eq!(b.queued(), reassigned - 3);
    // Each interval releases three, first in first out.
    let mut rounds = 0;
    while b.queued() > 0 {
        now += SECOND;
        assert!(b.due(now));
        let queued = b.queued();
        let head: Vec<TargetKey> = b.order.values().take(3).copied().collect();
        b.refill(now, &a);
        refresh(&mut b, &a, &[], &mut served);
        assert_eq!(queued - b.queued(), queued.min(3));
        assert!(head.iter().all(|k| b.served(*k).is_none()));
        assert_eq!(served.differing(&a), b.queued());
        rounds += 1;
    }
    assert_eq!(rounds, (reassigned - 3).div_ceil(3));
    assert_eq!(b.totals().released, (reassigned - 3) as u64);
    assert_eq!(served.differing(&a), 0);
    assert_eq!(b.served_digest(&a), a.digest());
}

#[test]
fn a_queued_target_whose_collector_leaves_is_released_at_once() {
    let (mut a, _, mut served, mut b) = scaled_out_by_one_move(200);
    let on_c0 = b.held.values().filter(|h| &*h.served == "c0").count();
    assert!(on_c0 > 0 && b.queued() > on_c0);
    // c0 leaves within the same interval (no budget left): its queued targets are served
    // elsewhere right away; never by c0.
    let m = a
        .set_collectors(&collectors(&["c1", "c2"]))
        .unwrap()
        .to_vec();
    let (queued, deferred) = (b.queued(), b.totals().deferred);
    refresh(&mut b, &a, &m, &mut served);
    assert!(b.held.values().all(|h| &*h.served == "c1"));
    // (The ring's load bounds may also move a few targets between c1 and c2: queued too.)
    let new = (b.totals().deferred - deferred) as usize;
    assert_eq!(b.queued(), queued - on_c0 + new);
    assert!(served.all_alive(&a));
    assert_eq!(served.differing(&a), b.queued());
    assert_eq!(b.totals().released, 0, "not counted as budget releases");
    let t = b.totals();
    assert_eq!(t.dropped, on_c0 as u64, "counted as dropped");
    assert_eq!(t.deferred, t.released + t.dropped + b.queued() as u64);
}

#[test]
fn a_queued_target_moved_back_or_removed_leaves_the_queue_at_once() {
    let (mut a, addrs, mut served, mut b) = scaled_out_by_one_move(200);
    assert!(b.queued() > 2);
    // Half the targets removed: the queued ones among them leave the queue and every answer.
    let kept = &addrs[..100];
    let m = a.set_targets(&specs(kept, &[])).unwrap().to_vec();
    let held_removed = b.held.keys().filter(|k| k.0 > 100).count();
    assert!(held_removed > 0);
    let queued = b.queued();
    refresh(&mut b, &a, &m, &mut served);
    assert_eq!(b.queued(), queued - held_removed);
    assert!(served.0.iter().all(|(k, c)| k.0 <= 100 || c.is_none()));
    // c2 leaves: consistent-hashing puts every target back where it was, which is where the
    // queued ones are served; the queue empties without a release.
    let m = a
        .set_collectors(&collectors(&["c0", "c1"]))
        .unwrap()
        .to_vec();
    refresh(&mut b, &a, &m, &mut served);
    assert_eq!(b.queued(), 0);
    assert_eq!(served.differing(&a), 0);
    assert_eq!(b.totals().released, 0);
    // Every queued move left as dropped: deferred = released + dropped + queued.
    let t = b.totals();
    assert_eq!(t.deferred, t.dropped);
}

#[test]
fn new_and_unassigned_targets_are_not_budgeted() {
    let (mut a, addrs, mut served, mut b) = scaled_out_by_one_move(100);
    let queued = b.queued();
    assert!(queued > 0);
    // Budget exhausted: new targets are still placed at once.
    let more = addresses(150);
    let m = a.set_targets(&specs(&more, &[])).unwrap().to_vec();
    refresh(&mut b, &a, &m, &mut served);
    assert_eq!(b.queued(), queued);
    for k in 101..=150 {
        assert!(served.0[&TargetKey(k)].is_some());
    }
    assert_eq!(served.differing(&a), queued);
    assert_eq!(addrs.len(), 100);
}

#[test]
fn the_weight_share_limits_each_interval_and_a_heavy_target_moves_alone() {
    // 100 targets of weight 1 and one of weight 400: 500 in all, 10% = 50 per interval.
    let mut weights = vec![1u32; 100];
    weights.push(400);
    let (mut a, _, mut served) = started(101, &weights, Strategy::ConsistentHashing);
    let mut b = Budget::new(limits(None, Some(10.0)));
    let mut now = Instant::now();
    b.refill(now, &a);
    assert_eq!(b.weight_left, 50);
    let m = a
        .set_collectors(&collectors(&["c0", "c1", "c2", "c3", "c4", "c5"]))
        .unwrap()
        .to_vec();
    let heavy = TargetKey(101);
    let heavy_moves = m
        .iter()
        .any(|m| m.key == heavy && m.kind() == MoveKind::Reassigned);
    assert!(heavy_moves, "the heavy target is among the moves");
    refresh(&mut b, &a, &m, &mut served);
    let mut rounds = 0;
    while b.queued() > 0 {
        now += SECOND;
        let before = served.0.clone();
        b.refill(now, &a);
        refresh(&mut b, &a, &[], &mut served);
        let moved: Vec<_> = served
            .0
            .iter()
            .filter(|(k, c)| before.get(k) != Some(c))
            .map(|(k, _)| *k)
            .collect();
        let weight: u64 = moved
            .iter()
            .map(|k| u64::from(a.target(*k).unwrap().weight))
            .sum();
        assert!(!moved.is_empty(), "every interval releases something");
        if moved.contains(&heavy) {
            assert_eq!(moved, vec![heavy], "the heavy target moves alone");
        } else {
            assert!(weight <= 50, "{weight} weight in one interval");
        }
        rounds += 1;
        assert!(rounds < 100);
    }
    assert_eq!(served.differing(&a), 0);
}
