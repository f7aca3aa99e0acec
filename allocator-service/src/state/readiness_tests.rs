//! Readiness under stalled inputs: a file read that hangs is reported by `/readyz` while the
//! allocation loop keeps publishing views, and a loop that stops finishing refreshes is too.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use super::{Engine, Shared, LOOP_STALL};
use crate::discovery::watch::{ReadError, Source, Status};
use crate::discovery::Files;

/// A file whose reads hang until the test opens the gate.
#[derive(Default)]
struct Gate {
    open: Mutex<bool>,
    opened: Condvar,
    reads: AtomicUsize,
}

impl Gate {
    fn open(&self) {
        *self.open.lock() = true;
        self.opened.notify_all();
    }
}

impl Source for Gate {
    fn status(&self, _: &Path) -> Option<Status> {
        Some(Status {
            dev: 1,
            ino: 2,
            size: 27,
            mtime: (1_700_000_000, 0),
            ctime: (1_700_000_000, 0),
        })
    }
    fn read(&self, _: &Path) -> Result<Vec<u8>, ReadError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        let mut open = self.open.lock();
        while !*open {
            self.opened.wait(&mut open);
        }
        Ok(b"- targets: ['10.0.0.7:80']\n".to_vec())
    }
}

/// Opens the gate however the test ends, so no watcher thread is left hanging.
struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// Whether `ok` holds within `limit`, checked every 10 ms.
fn within(limit: Duration, ok: impl Fn() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Whether `ok` holds throughout `period`, checked every 10 ms.
fn stays(period: Duration, ok: impl Fn() -> bool) -> bool {
    let end = Instant::now() + period;
    while Instant::now() < end {
        if !ok() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    true
}

/// The addresses a view serves for `job`, with their collector (from its HTTP SD answers).
fn served(shared: &Shared, job: &str) -> Vec<(String, Option<String>)> {
    let view = shared.view();
    let mut out = Vec::new();
    for ((j, c), answer) in &view.sd {
        if j != job {
            continue;
        }
        let groups: serde_json::Value = serde_json::from_slice(&answer.plain()).unwrap();
        for g in groups.as_array().unwrap() {
            let address = g["targets"][0].as_str().unwrap().to_owned();
            out.push((address, Some(c.clone())));
        }
    }
    out.sort();
    out
}

const CONFIG: &str = r#"
collectors: [c0]
config:
  scrape_configs:
    - job_name: files
      file_sd_configs:
        - files: [targets.yaml]
    - job_name: static
      static_configs:
        - targets: ['10.9.9.9:80']
"#;

#[test]
fn a_hung_read_is_not_ready_while_the_loop_runs_and_clears_when_the_read_completes() {
    let stall = Duration::from_millis(300);
    let cfg = crate::parse(CONFIG, Path::new("/watched")).unwrap();
    let gate = Arc::new(Gate::default());
    let _open = OpenOnDrop(gate.clone());
    let mut engine = Engine::with_files(cfg, None, Files::new(gate.clone(), stall));
    let shared = Arc::new(Shared::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    // The allocation loop, as `serve_with` runs it (a shorter pause between refreshes).
    let allocation = std::thread::spawn({
        let (shared, stop) = (shared.clone(), stop.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                engine.tick(&shared);
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    });

    let stalled = "reading /watched/targets.yaml has been stalled";
    let reported = within(Duration::from_secs(5), || {
        shared.not_ready().is_some_and(|why| why.contains(stalled))
    });
    assert!(reported, "no stall reported: {:?}", shared.not_ready());
    assert_eq!(
        gate.reads.load(Ordering::SeqCst),
        1,
        "still in its first read"
    );
    // The loop goes on without the file: the other job is allocated and served, and refreshes
    // keep finishing while the read hangs.
    assert_eq!(
        served(&shared, "static"),
        [("10.9.9.9:80".to_owned(), Some("c0".to_owned()))]
    );
    assert!(served(&shared, "files").is_empty());
    let before = shared.health.lock().heartbeat;
    assert!(
        within(Duration::from_secs(2), || shared.health.lock().heartbeat
            > before),
        "the allocation loop stopped finishing refreshes"
    );
    assert!(shared.not_ready().unwrap().contains(stalled));

    gate.open();
    let cleared = within(Duration::from_secs(5), || {
        shared.not_ready().is_none() && !served(&shared, "files").is_empty()
    });
    assert!(
        cleared,
        "not cleared after the read completed: {:?}, files job {:?}",
        shared.not_ready(),
        served(&shared, "files")
    );
    assert_eq!(
        served(&shared, "files"),
        [("10.0.0.7:80".to_owned(), Some("c0".to_owned()))]
    );
    // And stays clear over several of the watcher's checks (its pauses between checks are not
    // a stall).
    let clear = stays(3 * crate::REFRESH, || shared.not_ready().is_none());
    assert!(clear, "not ready again: {:?}", shared.not_ready());
    stop.store(true, Ordering::Relaxed);
    allocation.join().unwrap();
}

#[test]
fn a_loop_that_has_not_finished_a_refresh_for_loop_stall_is_not_ready() {
    let cfg = crate::parse(
        "collectors: [c0]\nconfig:\n  scrape_configs:\n    - job_name: static\n      static_configs:\n        - targets: ['10.9.9.9:80']\n",
        Path::new("/watched"),
    )
    .unwrap();
    let mut engine = Engine::new(cfg, None);
    let shared = Shared::new(false);
    engine.tick(&shared);
    assert_eq!(shared.not_ready(), None);
    // The last refresh finished just over LOOP_STALL ago (set back rather than waited for).
    shared.health.lock().heartbeat = Instant::now()
        .checked_sub(LOOP_STALL + Duration::from_secs(1))
        .expect("the monotonic clock is older than a minute");
    let why = shared.not_ready().expect("a stalled loop reported ready");
    assert!(
        why.contains("the allocation loop has not finished a refresh for"),
        "{why}"
    );
    engine.tick(&shared);
    assert_eq!(shared.not_ready(), None);
}
