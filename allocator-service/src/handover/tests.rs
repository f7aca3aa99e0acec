use std::collections::{BTreeMap, BTreeSet};

use allocator_core::{CollectorSpec, Config, PlacementHash, TargetSpec};

use super::*;
use crate::discovery::Target;

const WINDOW: Duration = Duration::from_secs(60);

fn target(n: u64) -> Target {
    let address = format!("10.2.{}.{}:9100", n / 250, n % 250);
    let mut labels = BTreeMap::new();
    labels.insert("__address__".to_owned(), address);
    labels.insert("__meta_n".to_owned(), n.to_string());
    of_job(&labels)
}

/// The target of job `job` with these discovered labels (its key skips `__meta_*`).
fn of_job(labels: &BTreeMap<String, String>) -> Target {
    Target::unrelabeled(labels, "job").unwrap()
}

fn specs(ts: &[Target]) -> Vec<TargetSpec<'_>> {
    ts.iter()
        .map(|t| TargetSpec::new(t.key, PlacementHash::of_address(&t.address), &t.job))
        .collect()
}

/// Address → the collectors whose HTTP SD answer lists it.
fn served(p: &crate::publish::Published) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for ((_, c), answer) in &p.sd {
        let v: Value = serde_json::from_slice(&answer.plain()).unwrap();
        for g in v.as_array().unwrap() {
            let a = g["targets"][0].as_str().unwrap().to_owned();
            out.entry(a).or_default().insert(c.clone());
        }
    }
    out
}

struct World {
    a: Allocator,
    p: Publisher,
    h: Handover,
    listing: Vec<Target>,
}

impl World {
    fn new(n: u64, collectors: &[&str]) -> World {
        let mut w = World {
            a: Allocator::new(Config::default()).unwrap(),
            p: Publisher::default(),
            h: Handover::new(Some(WINDOW)),
            listing: (0..n).map(target).collect(),
        };
        let now = Instant::now();
        w.collectors(collectors, now);
        let m = w.a.set_targets(&specs(&w.listing)).unwrap().to_vec();
        w.hand(&m, now);
        w
    }

    fn hand(&mut self, m: &[Move], now: Instant) {
        self.p.moved(m, &self.a);
        self.h.moved(m, &self.a, now, &mut self.p);
    }

    fn collectors(&mut self, names: &[&str], now: Instant) -> Vec<Move> {
        let specs: Vec<_> = names.iter().map(|n| CollectorSpec::new(n)).collect();
        let m = self.a.set_collectors(&specs).unwrap().to_vec();
        self.hand(&m, now);
        m
    }

    fn publish(&mut self, now: Instant) -> BTreeMap<String, BTreeSet<String>> {
        self.h.expire(&self.a, now, &mut self.p);
        let published = self.p.publish_listing(self.listing.clone(), &self.a);
        // What the core says, plus each open window's old collector.
        let want = crate::publish::rebuild(self.listing.clone(), &self.a);
        let mut expect = served(&want);
        for t in &self.listing {
            if let Some(o) = self.h.open.get(&t.key) {
                expect
                    .get_mut(&*t.address)
                    .unwrap()
                    .insert(o.old.to_string());
            }
        }
        let got = served(&published);
        assert_eq!(got, expect);
        got
    }

    fn address_of(&self, key: TargetKey) -> String {
        self.listing
            .iter()
            .find(|t| t.key == key)
            .unwrap()
            .address
            .to_string()
    }
}

#[test]
fn a_moved_target_is_served_to_both_until_the_new_collector_scrapes_it() {
    let t0 = Instant::now();
    let mut w = World::new(60, &["c0", "c1"]);
    let first = w.publish(t0);
    assert!(first.values().all(|c| c.len() == 1));
    let m = w.collectors(&["c0", "c1", "c2"], t0);
    let moved: Vec<Move> = m
        .iter()
        .filter(|m| m.kind() == MoveKind::Reassigned)
        .copied()
        .collect();
    assert!(moved.len() > 2);
    let during = w.publish(t0);
    for mv in &moved {
        let a = w.address_of(mv.key);
        let old = w.a.collector_name(mv.from.unwrap()).unwrap().to_owned();
        let new = w.a.collector_name(mv.to.unwrap()).unwrap().to_owned();
        assert_eq!(during[&a], BTreeSet::from([old, new.clone()]));
        assert!(w.h.explain(mv.key, t0).is_some());
    }
    assert_eq!(w.h.open(), moved.len());
    assert!(!w.h.due(t0));
    // The feed sees the first moved target on its new collector (and another on its old one,
    // which does not count): only the first window closes.
    let new0 = w.a.collector_name(moved[0].to.unwrap()).unwrap().to_owned();
    let old1 =
        w.a.collector_name(moved[1].from.unwrap())
            .unwrap()
            .to_owned();
    w.h.observed(moved[0].key, &new0);
    w.h.observed(moved[1].key, &old1);
    assert!(w.h.due(t0));
    let after = w.publish(t0);
    assert_eq!(after[&w.address_of(moved[0].key)], BTreeSet::from([new0]));
    assert_eq!(after[&w.address_of(moved[1].key)].len(), 2);
    assert_eq!(w.h.closed().scraped, 1);
    // The window passes: every target on its new collector only.
    let later = t0 + WINDOW;
    assert!(w.h.due(later));
    let end = w.publish(later);
    assert!(end.values().all(|c| c.len() == 1));
    assert_eq!(w.h.open(), 0);
    assert_eq!(w.h.closed().window, moved.len() as u64 - 1);
}

#[test]
fn a_window_closes_when_the_old_collector_leaves_or_the_target_goes() {
    let t0 = Instant::now();
    let mut w = World::new(80, &["c0", "c1"]);
    w.publish(t0);
    w.collectors(&["c0", "c1", "c2"], t0);
    w.publish(t0);
    let from_c0: Vec<TargetKey> =
        w.h.open
            .iter()
            .filter(|(_, o)| &*o.old == "c0")
            .map(|(k, _)| *k)
            .collect();
    assert!(!from_c0.is_empty());
    // c0 leaves: nothing is served to it, windows from c0 are closed (and counted).
    let before = w.h.closed();
    w.collectors(&["c1", "c2"], t0);
    let now = w.publish(t0);
    assert!(now.values().all(|c| !c.contains("c0")));
    assert!(from_c0.iter().all(|k| !w.h.open.contains_key(k)));
    let after = w.h.closed();
    assert!(
        (after.collector_left + after.moved) - (before.collector_left + before.moved)
            >= from_c0.len() as u64,
        "{before:?} → {after:?}"
    );
    // A target in its window leaves the listing: served nowhere.
    let (&gone, _) = w.h.open.iter().next().expect("a window from c1 is open");
    let address = w.address_of(gone);
    w.listing.retain(|t| t.key != gone);
    let m = w.a.set_targets(&specs(&w.listing)).unwrap().to_vec();
    w.hand(&m, t0);
    let now = w.publish(t0);
    assert!(!now.contains_key(&address));
    assert!(!w.h.open.contains_key(&gone));
    assert_eq!(
        w.h.closed().moved,
        after.moved + 1,
        "the removed target's window"
    );
}

#[test]
fn without_a_window_nothing_is_served_twice() {
    let t0 = Instant::now();
    let mut w = World::new(60, &["c0", "c1"]);
    w.h = Handover::new(None);
    w.publish(t0);
    w.collectors(&["c0", "c1", "c2"], t0);
    let now = w.publish(t0);
    assert!(now.values().all(|c| c.len() == 1));
    assert_eq!(w.h.open(), 0);
}

use crate::test_rng::Rng;

/// A target whose discovered labels (not its address) change with `rev`.
fn revised(n: u64, rev: u64) -> Target {
    let address = format!("10.3.{}.{}:9100", n / 250, n % 250);
    let mut labels = BTreeMap::new();
    labels.insert("__address__".to_owned(), address);
    labels.insert("__meta_rev".to_owned(), rev.to_string());
    labels.insert("__meta_n".to_owned(), n.to_string());
    of_job(&labels)
}

/// Budget and hand-over under random churn (collectors and targets come and go, labels change,
/// the listing is reordered, time passes, collectors are seen scraping): every answer is what
/// the two say (the budget's serving collector or the core's, plus an open window's old one),
/// no collector that is gone is ever served anything, and once inputs stop changing, everything
/// ends on the core's collector alone.
#[test]
fn budget_and_windows_serve_only_live_collectors_under_random_churn() {
    use crate::budget::{Budget, Limits};
    for seed in 1..=8u64 {
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        let interval = Duration::from_secs(1);
        let window = Duration::from_millis(2500);
        let mut a = Allocator::new(Config::with_strategy(
            allocator_core::Strategy::ALL[seed as usize % allocator_core::Strategy::ALL.len()],
        ))
        .unwrap();
        let mut p = Publisher::default();
        let mut h = Handover::new(Some(window));
        let mut b = Budget::new(Some(Limits {
            max_moves: Some(2),
            max_weight_percent: None,
            interval,
        }));
        let pool = ["c0", "c1", "c2", "c3", "c4"];
        let mut live: Vec<&str> = vec!["c0", "c1"];
        let mut listing: Vec<Target> = (0..30).map(|n| revised(n, 0)).collect();
        let mut next = 30u64;
        let mut now = Instant::now();
        let step = |a: &mut Allocator,
                    p: &mut Publisher,
                    h: &mut Handover,
                    b: &mut Budget,
                    live: &[&str],
                    listing: &[Target],
                    now: Instant| {
            b.refill(now, a);
            let specs_c: Vec<_> = live.iter().map(|n| CollectorSpec::new(n)).collect();
            let mut out = Vec::new();
            let m = a.set_collectors(&specs_c).unwrap().to_vec();
            b.filter(&m, a, &mut out);
            p.moved(&out, a);
            h.moved(&out, a, now, p);
            out.clear();
            let m = a.set_targets(&specs(listing)).unwrap().to_vec();
            b.filter(&m, a, &mut out);
            p.moved(&out, a);
            h.moved(&out, a, now, p);
            out.clear();
            b.release(a, &mut out);
            p.moved(&out, a);
            h.moved(&out, a, now, p);
            h.expire(a, now, p);
            let published = p.publish_listing(listing.to_vec(), a);
            // Each collector's answer written from scratch, in key order, as `rebuild`
            // writes it: the budget's serving collector or the core's, and an open window's
            // old one.
            let mut want: BTreeMap<String, Vec<u8>> = BTreeMap::new();
            let mut by_key: Vec<&Target> = listing.iter().collect();
            by_key.sort_by_key(|t| t.key);
            for t in by_key {
                let core = a.collector_of(t.key).and_then(|c| a.collector_name(c));
                let Some(primary) = b.served(t.key).or(core) else {
                    continue;
                };
                let mut to = vec![primary.to_owned()];
                if let Some(o) = h.open.get(&t.key) {
                    to.push(o.old.to_string());
                }
                for c in to {
                    let buf = want.entry(c).or_insert_with(|| b"[".to_vec());
                    if buf.len() > 1 {
                        buf.push(b',');
                    }
                    serde_json::to_writer(
                        &mut *buf,
                        &json!({ "targets": [&*t.address], "labels": t.labels() }),
                    )
                    .unwrap();
                }
            }
            for v in want.values_mut() {
                v.push(b']');
            }
            let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
            let got_text: BTreeMap<String, String> = published
                .sd
                .iter()
                .map(|((_, c), answer)| (c.clone(), text(&answer.plain())))
                .collect();
            let want_text: BTreeMap<String, String> =
                want.iter().map(|(c, b)| (c.clone(), text(b))).collect();
            assert_eq!(got_text, want_text, "seed {seed}");
            let got = served(&published);
            for cs in got.values() {
                for c in cs {
                    assert!(
                        a.collector_id(c).is_some(),
                        "seed {seed}: {c} is gone but served"
                    );
                }
            }
            let differing = listing.iter().filter(|t| b.served(t.key).is_some()).count();
            assert_eq!(differing, b.queued(), "seed {seed}");
        };
        step(&mut a, &mut p, &mut h, &mut b, &live, &listing, now);
        for _ in 0..60 {
            if rng.chance(30) {
                let c = pool[rng.below(pool.len())];
                match live.iter().position(|x| *x == c) {
                    Some(i) if live.len() > 1 => {
                        live.remove(i);
                    }
                    Some(_) => {}
                    None => {
                        live.push(c);
                        live.sort();
                    }
                }
            }
            for _ in 0..rng.below(4) {
                listing.push(revised(next, 0));
                next += 1;
            }
            if rng.chance(40) && !listing.is_empty() {
                listing.remove(rng.below(listing.len()));
            }
            if rng.chance(30) && !listing.is_empty() {
                let i = rng.below(listing.len());
                let n: u64 = listing[i].group.get("__meta_n").unwrap().parse().unwrap();
                listing[i] = revised(n, rng.next() % 7);
            }
            if rng.chance(20) && listing.len() > 2 {
                let (i, j) = (rng.below(listing.len()), rng.below(listing.len()));
                listing.swap(i, j);
            }
            // Targets in their window change labels or places (their second answer must follow).
            let in_window: Vec<usize> = (0..listing.len())
                .filter(|&i| h.open.contains_key(&listing[i].key))
                .collect();
            if rng.chance(50) && !in_window.is_empty() {
                let i = in_window[rng.below(in_window.len())];
                let n: u64 = listing[i].group.get("__meta_n").unwrap().parse().unwrap();
                listing[i] = revised(n, 7 + rng.next() % 7);
            }
            if rng.chance(50) && in_window.len() > 1 {
                let i = in_window[rng.below(in_window.len())];
                let j = in_window[rng.below(in_window.len())];
                listing.swap(i, j);
            }
            if rng.chance(30) {
                let keys: Vec<TargetKey> = h.open.keys().copied().collect();
                if !keys.is_empty() {
                    let k = keys[rng.below(keys.len())];
                    let c = a
                        .collector_of(k)
                        .and_then(|c| a.collector_name(c))
                        .unwrap()
                        .to_owned();
                    h.observed(k, &c);
                }
            }
            now += Duration::from_millis(rng.below(1500) as u64);
            step(&mut a, &mut p, &mut h, &mut b, &live, &listing, now);
        }
        // Inputs stop changing: the queue drains and windows close.
        for _ in 0..200 {
            if b.queued() == 0 && h.open() == 0 {
                break;
            }
            now += interval;
            step(&mut a, &mut p, &mut h, &mut b, &live, &listing, now);
        }
        assert_eq!((b.queued(), h.open()), (0, 0), "seed {seed}");
        let end = served(&p.publish_listing(listing.clone(), &a));
        assert_eq!(
            end,
            served(&crate::publish::rebuild(listing.clone(), &a)),
            "seed {seed}"
        );
    }
}
