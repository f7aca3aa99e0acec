//! The loop's diff path on real files: discovery's changes reach the allocator as one diff and
//! the publisher as changes, duplicates across files are served as the last one listed, and a
//! refused diff is followed by the full listing, leaving a consistent view.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use allocator_core::Allocator;

use super::{Engine, Shared, View};
use crate::discovery::{relabeled, JobSpec, LabelSet, Target};
use crate::publish::rebuild;

const CONFIG: &str =
    "collectors: [c0, c1]\nconfig:\n  scrape_configs:\n    - job_name: files\n      \
                      file_sd_configs:\n        - files: [a.json, b.json]\n";

/// One file's groups: addresses and the value of their `__meta_v` label.
type Groups<'a> = &'a [(&'a [&'a str], &'a str)];

fn text(groups: Groups<'_>) -> String {
    let groups: Vec<serde_json::Value> = groups
        .iter()
        .map(|(ts, v)| serde_json::json!({"targets": ts, "labels": {"__meta_v": v}}))
        .collect();
    serde_json::to_string(&groups).unwrap()
}

/// Write a file whole (a rename), so a watcher never reads half of it.
fn write(dir: &Path, name: &str, groups: Groups<'_>) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text(groups)).unwrap();
    std::fs::rename(tmp, dir.join(name)).unwrap();
}

/// The listing as the service collected it before it worked from changes: every file's
/// targets in order, relabeled from scratch, the last of each identity kept.
fn reference(cfg: &crate::config::Loaded, files: &[(&str, Groups<'_>)]) -> Vec<Target> {
    let global = &cfg.file.config.global;
    let job = JobSpec {
        name: "files",
        scrape_interval: &global.scrape_interval,
        scrape_timeout: &global.scrape_timeout,
        metrics_path: "/metrics",
        scheme: "http",
        params: &BTreeMap::new(),
        rules: &cfg.rules[0],
    };
    let mut kept: BTreeMap<allocator_core::TargetKey, Target> = BTreeMap::new();
    for (name, groups) in files {
        for (addresses, v) in groups.iter() {
            let group = LabelSet::new([("__meta_filepath", *name), ("__meta_v", *v)]);
            for a in addresses.iter() {
                let labels = [
                    ("__address__", *a),
                    ("__meta_filepath", *name),
                    ("__meta_v", *v),
                ];
                let key = relabeled(&job, labels).unwrap().target_key("files");
                kept.insert(
                    key,
                    Target {
                        job: "files".into(),
                        address: (*a).into(),
                        group: group.clone(),
                        key,
                    },
                );
            }
        }
    }
    kept.into_values().collect()
}

/// Tick until `ok` holds of the published view (at most 10 s).
fn tick_until(engine: &mut Engine, shared: &Shared, ok: impl Fn(&View) -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        engine.tick(shared);
        if ok(&shared.view()) {
            return true;
        }
        engine.wait(Duration::from_millis(20));
    }
    false
}

/// The published answers equal the full build of `listing` against the engine's allocator.
fn check(engine: &Engine, shared: &Shared, listing: Vec<Target>, what: &str) {
    let v = shared.view();
    let want = rebuild(listing, &engine.alloc);
    assert_eq!(v.sd, want.sd, "{what}: answers");
    assert_eq!(v.jobs, want.jobs, "{what}: targets per job");
}

/// A directory removed when the test ends.
struct Dir(std::path::PathBuf);

impl Dir {
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A test directory named `name` with `a.json` and `b.json`, its configuration, and an engine
/// and shared state on it (not ticked yet).
fn start(name: &str, a: Groups<'_>, b: Groups<'_>) -> (Dir, crate::config::Loaded, Engine, Shared) {
    let dir = Dir(std::env::temp_dir().join(format!("{name}-{}", std::process::id())));
    std::fs::create_dir_all(dir.path()).unwrap();
    let cfg = crate::parse(CONFIG, dir.path()).unwrap();
    write(dir.path(), "a.json", a);
    write(dir.path(), "b.json", b);
    let engine = Engine::new(crate::parse(CONFIG, dir.path()).unwrap(), None);
    (dir, cfg, engine, Shared::new(false))
}

fn served(v: &View) -> usize {
    v.jobs.values().sum()
}

#[test]
fn file_changes_reach_the_view_as_diffs_and_a_refused_diff_falls_back_to_the_listing() {
    let a1: Groups<'_> = &[(&["t1:80", "t2:80", "t3:80"], "1")];
    let b1: Groups<'_> = &[(&["t3:80"], "b")];
    let (dir, cfg, mut engine, shared) = start("ta-diff-tests", a1, b1);
    assert!(tick_until(&mut engine, &shared, |v| served(v) == 3));
    // t3 is listed by both files: b.json's (the later) is served.
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", a1), ("b.json", b1)]),
        "first",
    );

    // The later duplicate goes: a.json's t3 is served again; t4 joins.
    let a2: Groups<'_> = &[(&["t1:80", "t2:80", "t3:80", "t4:80"], "1")];
    write(dir.path(), "a.json", a2);
    write(dir.path(), "b.json", &[]);
    let want = reference(&cfg, &[("a.json", a2), ("b.json", &[])]);
    let meta_of_t3 = |v: &View| {
        v.sd.values()
            .any(|a| String::from_utf8_lossy(&a.plain()).contains(r#""__meta_v":"1""#))
            && served(v) == 4
            && !v
                .sd
                .values()
                .any(|a| String::from_utf8_lossy(&a.plain()).contains(r#""__meta_v":"b""#))
    };
    assert!(tick_until(&mut engine, &shared, meta_of_t3));
    check(&engine, &shared, want, "after the duplicate went");

    // The allocator loses its targets (as if it had been replaced): the next diff removes a
    // target it does not hold and is refused; the full listing is handed over instead.
    engine.alloc = Allocator::new(engine.cfg.core).unwrap();
    let a3: Groups<'_> = &[(&["t1:80", "t3:80", "t4:80"], "1"), (&["t5:80"], "2")];
    write(dir.path(), "a.json", a3);
    assert!(tick_until(&mut engine, &shared, |v| served(v) == 4
        && v.sd.values().any(
            |a| String::from_utf8_lossy(&a.plain()).contains("t5:80")
        )));
    assert!(!engine.core_stale, "the full listing was taken");
    assert_eq!(engine.alloc.summary().targets, 4);
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", a3), ("b.json", &[])]),
        "after the refused diff",
    );

    // And diffs again afterwards.
    let a4: Groups<'_> = &[(&["t1:80", "t4:80"], "1"), (&["t5:80", "t6:80"], "3")];
    write(dir.path(), "a.json", a4);
    assert!(tick_until(&mut engine, &shared, |v| served(v) == 4
        && v.sd.values().any(
            |a| String::from_utf8_lossy(&a.plain()).contains("t6:80")
        )));
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", a4), ("b.json", &[])]),
        "a diff after the fallback",
    );
}

/// Whether any published answer holds `needle`.
fn answers_hold(v: &View, needle: &str) -> bool {
    v.sd.values()
        .any(|a| String::from_utf8_lossy(&a.plain()).contains(needle))
}

#[test]
fn a_deleted_file_lists_nothing_and_the_earlier_duplicate_is_served_again() {
    let a: Groups<'_> = &[(&["t1:80", "t2:80"], "a")];
    let b: Groups<'_> = &[(&["t2:80", "t3:80"], "b")];
    let (dir, cfg, mut engine, shared) = start("ta-diff-deleted", a, b);
    assert!(tick_until(&mut engine, &shared, |v| served(v) == 3));
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", a), ("b.json", b)]),
        "both files",
    );

    // b.json is deleted: as Prometheus' file discovery (a path no longer matched), it lists
    // nothing — t3 leaves and a.json's t2 (its labels) is served again, as a fresh start on
    // the remaining files serves it.
    std::fs::remove_file(dir.path().join("b.json")).unwrap();
    assert!(
        tick_until(&mut engine, &shared, |v| served(v) == 2
            && !answers_hold(v, r#""__meta_v":"b""#)),
        "b.json's targets are still served after it was deleted"
    );
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", a), ("b.json", &[])]),
        "b.json deleted",
    );
    assert!(shared.view().ready, "a missing file is not a failure");

    // It comes back with the same text: served again.
    write(dir.path(), "b.json", b);
    assert!(tick_until(&mut engine, &shared, |v| served(v) == 3
        && answers_hold(v, r#""__meta_v":"b""#)));
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", a), ("b.json", b)]),
        "b.json back",
    );

    // Renamed away (the path the configuration names is gone), then another file renamed
    // onto it.
    std::fs::rename(dir.path().join("a.json"), dir.path().join("a.old")).unwrap();
    assert!(tick_until(&mut engine, &shared, |v| served(v) == 2
        && !answers_hold(v, "t1:80")));
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", &[]), ("b.json", b)]),
        "a.json renamed away",
    );
    let a2: Groups<'_> = &[(&["t4:80"], "a2")];
    std::fs::write(dir.path().join("other"), text(a2)).unwrap();
    std::fs::rename(dir.path().join("other"), dir.path().join("a.json")).unwrap();
    assert!(tick_until(&mut engine, &shared, |v| served(v) == 3
        && answers_hold(v, "t4:80")));
    check(
        &engine,
        &shared,
        reference(&cfg, &[("a.json", a2), ("b.json", b)]),
        "another file renamed onto a.json",
    );
}
