//! Soak: collectors and targets churn through the collectors file and a file_sd file while
//! clients poll; every answer must be the `allocate` tool's assignment (same library, same
//! defaults) for a state that was current while the request ran, and after each change the full
//! answer must settle on the new state. Bounded: 24 changes, 4 pollers, about 30 s.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde_json::{json, Value};

const COLLECTORS: usize = 10;
const POOL: usize = 300;

/// Collector → the addresses it scrapes.
type Assignment = BTreeMap<String, BTreeSet<String>>;

/// One state: collector names and target addresses.
#[derive(Clone)]
struct State {
    collectors: Vec<String>,
    targets: Vec<String>,
}

/// What `allocate` says: collector → sorted addresses (every collector present).
fn expected(s: &State) -> Assignment {
    let input = json!({
        "strategy": "consistent-hashing",
        "collectors": s.collectors.iter().map(|c| json!({"name": c})).collect::<Vec<_>>(),
        "targets": s.targets.iter().map(|a| json!({"job": "soak", "labels": {"__address__": a, "team": "t"}})).collect::<Vec<_>>(),
    });
    let out: Value =
        serde_json::from_str(&allocate::run(input.to_string().as_bytes()).unwrap()).unwrap();
    let mut by: BTreeMap<String, BTreeSet<String>> = s
        .collectors
        .iter()
        .map(|c| (c.clone(), BTreeSet::new()))
        .collect();
    for (t, a) in out["targets"].as_array().unwrap().iter().zip(&s.targets) {
        let c = t["collector"].as_str().expect("every target placed");
        by.get_mut(c).unwrap().insert(a.clone());
    }
    by
}

fn addresses(groups: &Value) -> BTreeSet<String> {
    groups
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|g| g["targets"].as_array().cloned().unwrap_or_default())
        .map(|t| t.as_str().unwrap().to_owned())
        .collect()
}

/// Write `text` to `path` atomically (a reader never sees half a file).
fn replace(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn write_state(dir: &Path, s: &State) {
    replace(
        &dir.join("collectors.txt"),
        &(s.collectors.join("\n") + "\n"),
    );
    let groups: Vec<Value> = s
        .targets
        .iter()
        .map(|a| json!({"targets": [a], "labels": {"team": "t"}}))
        .collect();
    replace(&dir.join("targets.json"), &Value::Array(groups).to_string());
}

/// A small deterministic generator (xorshift) so failures replay.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn subset(&mut self, n: usize, keep_per_mille: u64) -> Vec<usize> {
        let v: Vec<usize> = (0..n)
            .filter(|_| self.next() % 1000 < keep_per_mille)
            .collect();
        if v.is_empty() {
            vec![0]
        } else {
            v
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn churn_while_polling_every_answer_matches_allocate() {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let all_collectors: Vec<String> = (0..COLLECTORS).map(|i| format!("c{i}")).collect();
    let pool: Vec<String> = (0..POOL)
        .map(|i| format!("10.1.{}.{}:9100", i / 250, i % 250))
        .collect();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut state = State {
        collectors: all_collectors[..4].to_vec(),
        targets: pool[..150].to_vec(),
    };
    write_state(&dir, &state);
    let cfg = allocator_service::parse(
        r#"
collectors_file: collectors.txt
config:
  scrape_configs:
    - job_name: soak
      file_sd_configs:
        - files: [targets.json]
"#,
        &dir,
    )
    .unwrap();
    let svc = common::start(cfg, None).await;
    let addr = svc.addr;

    let settle = |want: Assignment| async move {
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let a = common::get(addr, "/jobs/soak/targets").await;
            if a.status == 200 {
                let v: Value = serde_json::from_str(&a.body).unwrap();
                let got: BTreeMap<String, BTreeSet<String>> = v
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(c, e)| (c.clone(), addresses(&e["targets"])))
                    .collect();
                if got == want {
                    return;
                }
                assert!(Instant::now() < end, "never settled on the new state");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // Pollers start once the first state is served (before that, /readyz is 503).
    settle(expected(&state)).await;
    // History of expected assignments; index = state number.
    let history: Arc<Mutex<Vec<Assignment>>> = Arc::new(Mutex::new(vec![expected(&state)]));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let polls = Arc::new(AtomicUsize::new(0));
    let wrong: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
    let mut pollers = Vec::new();
    for p in 0..4usize {
        let (history, stop, polls, wrong) =
            (history.clone(), stop.clone(), polls.clone(), wrong.clone());
        pollers.push(tokio::spawn(async move {
            let mut i = p;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let c = format!("c{}", i % (COLLECTORS + 1)); // c10 never exists: always []
                let from = history.lock().len() - 1;
                let a = common::get(addr, &format!("/jobs/soak/targets?collector_id={c}")).await;
                let to = history.lock().len() - 1;
                if a.status != 200 {
                    wrong.lock().push(format!("{c}: status {}", a.status));
                    continue;
                }
                let got = addresses(&serde_json::from_str(&a.body).unwrap());
                let h = history.lock();
                // The service may still serve the state before `from` when the request began.
                let ok = (from.saturating_sub(1)..=to)
                    .any(|k| h[k].get(&c).cloned().unwrap_or_default() == got);
                if !ok {
                    wrong.lock().push(format!(
                        "{c} in states {from}..={to}: {} targets",
                        got.len()
                    ));
                }
                polls.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    for round in 0..24 {
        if round % 2 == 0 {
            state.collectors = rng
                .subset(COLLECTORS, 500)
                .into_iter()
                .map(|i| all_collectors[i].clone())
                .collect();
        } else {
            state.targets = rng
                .subset(POOL, 500)
                .into_iter()
                .map(|i| pool[i].clone())
                .collect();
        }
        let want = expected(&state);
        // Expected first, then the files: a poll never sees a state the history lacks.
        history.lock().push(want.clone());
        write_state(&dir, &state);
        settle(want).await;
    }
    stop.store(true, Ordering::Relaxed);
    for p in pollers {
        p.await.unwrap();
    }
    let wrong = wrong.lock().clone();
    assert!(
        wrong.is_empty(),
        "{} wrong answers: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
    eprintln!(
        "soak: {} polls over 24 changes, all matching allocate",
        polls.load(Ordering::Relaxed)
    );
    assert!(
        polls.load(Ordering::Relaxed) > 200,
        "only {} polls",
        polls.load(Ordering::Relaxed)
    );
    svc.stop().await;
}
