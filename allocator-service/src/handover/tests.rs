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
    let key = TargetKey::from_labels(labels.iter().map(|(k, v)| (k.as_str(), v.as_str())), "job")
        .unwrap();
    let (group, address) = crate::discovery::discovered(&labels);
    Target {
        job: "job".into(),
        address: address.unwrap(),
        group,
        key,
    }
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
        let v: Value = serde_json::from_slice(&answer.plain).unwrap();
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
        let published = self.p.publish(self.listing.clone(), &self.a);
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
    // c0 leaves: nothing is served to it, windows from c0 are closed.
    w.collectors(&["c1", "c2"], t0);
    let now = w.publish(t0);
    assert!(now.values().all(|c| !c.contains("c0")));
    assert!(from_c0.iter().all(|k| !w.h.open.contains_key(k)));
    // A target in its window leaves the listing: served nowhere.
    let (&gone, _) = w.h.open.iter().next().expect("a window from c1 is open");
    let address = w.address_of(gone);
    w.listing.retain(|t| t.key != gone);
    let m = w.a.set_targets(&specs(&w.listing)).unwrap().to_vec();
    w.hand(&m, t0);
    let now = w.publish(t0);
    assert!(!now.contains_key(&address));
    assert!(!w.h.open.contains_key(&gone));
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
