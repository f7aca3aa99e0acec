//! One watched file: when to read it again ([`Watch`], which is handed the time and the file
//! system rather than reaching for them, so its decisions can be checked without waiting or
//! touching a disk), and the thread that runs it.
//!
//! A file is read when its status changed, when its `refresh_interval` is due (a rewrite that
//! keeps the status is still seen), or when a failed read's backoff is over; contents are
//! reported only when their hash changed.
//!
//! A file_sd file that does not exist lists no targets, as in Prometheus' file discovery (whose
//! files are the matches of a glob: a path that is gone matches nothing, and the targets it
//! listed are removed); one that exists but cannot be read or parsed keeps its previous targets
//! (a read may catch a partial write). A collectors file that is gone keeps the previous list.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use parking_lot::Mutex;

use super::{parse, Contents, Key, Kind, Update};

/// What a file's status says about its contents: a rewrite changes at least one of these
/// (the change time cannot be set back by tools that preserve the modification time).
#[derive(PartialEq, Eq, Clone, Copy, Debug)]
pub(crate) struct Status {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime: (i64, i64),
    pub ctime: (i64, i64),
}

/// Where watched files come from. Both calls run on the file's watcher thread and may block
/// (a network filesystem, a slow disk); the allocation loop never makes them.
pub(crate) trait Source: Send + Sync {
    /// The file's status; `None` when it cannot be had (missing, no permission).
    fn status(&self, path: &Path) -> Option<Status>;
    /// The file's bytes, within [`crate::limits::MAX_FILE_SD_BYTES`].
    fn read(&self, path: &Path) -> Result<Vec<u8>, ReadError>;
}

/// Why a watched file was not read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadError {
    /// Nothing is at the path (its `lstat` fails, as for a glob that matches nothing).
    Missing,
    /// It is there but could not be read (permissions, not a regular file, too large, I/O).
    Failed(String),
}

impl From<String> for ReadError {
    fn from(e: String) -> ReadError {
        ReadError::Failed(e)
    }
}

/// The file system.
pub(crate) struct Disk;

impl Source for Disk {
    fn status(&self, path: &Path) -> Option<Status> {
        use std::os::unix::fs::MetadataExt;
        let m = std::fs::metadata(path).ok()?;
        Some(Status {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        })
    }

    /// A regular file only, opened without blocking (a FIFO is refused rather than waited on),
    /// within the size limit.
    fn read(&self, path: &Path) -> Result<Vec<u8>, ReadError> {
        use std::io::Read;
        use std::os::unix::fs::OpenOptionsExt;
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(|e| match std::fs::symlink_metadata(path) {
                // Prometheus lists a file_sd path through `filepath.Glob`, which drops a path
                // whose `lstat` fails: such a file is gone, not unreadable.
                Err(_) => ReadError::Missing,
                Ok(_) => ReadError::Failed(e.to_string()),
            })?;
        let meta = file.metadata().map_err(|e| e.to_string())?;
        if !meta.is_file() {
            return Err(ReadError::Failed("not a regular file".into()));
        }
        let limit = crate::limits::MAX_FILE_SD_BYTES;
        if meta.len() > limit {
            return Err(format!("{} bytes; the limit is {limit}", meta.len()).into());
        }
        let mut bytes = Vec::with_capacity(meta.len() as usize);
        file.take(limit + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > limit {
            return Err(format!("more than {limit} bytes").into());
        }
        Ok(bytes)
    }
}

/// What one check of a watched file did.
pub(super) enum Checked {
    /// Not read: the status is unchanged and no refresh or retry is due.
    Skipped,
    /// Read and parsed; the contents when they differ from the last good ones.
    Read(Option<Contents>),
    /// A file_sd file that does not exist: it lists no targets; the empty contents when it
    /// listed some before (or was never read).
    Missing(Option<Contents>),
    /// Reading or parsing failed; the previous contents stand until the retry.
    Failed { error: String, retry_in: Duration },
}

/// What a watcher remembers of its file between checks.
pub(super) struct Watch {
    /// The file's path and configured name.
    key: Key,
    kind: Kind,
    refresh: Duration,
    /// The status at the last read.
    seen: Option<Status>,
    /// The hash of the last good contents.
    hash: Option<u64>,
    /// The last check found a file_sd file missing (and reported it empty).
    missing: bool,
    /// When to read even if the status is unchanged; `None` before the first read.
    due: Option<Instant>,
    /// Failed reads in a row.
    failures: u32,
    /// The last good contents' label sets and addresses, for the next read to share.
    reuse: super::Reuse,
}

impl Watch {
    pub(super) fn new(key: Key, kind: Kind, refresh: Duration) -> Watch {
        Watch {
            key,
            kind,
            refresh,
            seen: None,
            hash: None,
            missing: false,
            due: None,
            failures: 0,
            reuse: super::Reuse::default(),
        }
    }

    /// Check the file at `now`: read it from `source` if its status changed or a refresh or
    /// retry is due.
    pub(super) fn check(&mut self, now: Instant, source: &dyn Source) -> Checked {
        let status = source.status(&self.key.0);
        if status == self.seen && self.due.is_some_and(|due| now < due) {
            return Checked::Skipped;
        }
        self.seen = status;
        let read = source.read(&self.key.0).and_then(|bytes| {
            let h = hash(&bytes);
            if self.hash == Some(h) {
                // Unchanged: not parsed again (nothing would be reported).
                return Ok((h, None));
            }
            Ok((
                h,
                Some(parse(&self.key, self.kind, bytes, &mut self.reuse)?),
            ))
        });
        match read {
            Ok((h, contents)) => {
                self.failures = 0;
                self.missing = false;
                self.due = Some(now + self.refresh);
                if self.hash == Some(h) {
                    return Checked::Read(None);
                }
                self.hash = Some(h);
                Checked::Read(contents)
            }
            Err(ReadError::Missing) if self.kind == Kind::Targets => {
                self.failures = 0;
                self.due = Some(now + self.refresh);
                // Whatever comes at the path next is new contents (even the text it had).
                self.hash = None;
                self.reuse = super::Reuse::default();
                if std::mem::replace(&mut self.missing, true) {
                    return Checked::Missing(None);
                }
                Checked::Missing(Some(Contents::Groups(Vec::new())))
            }
            Err(error) => {
                let error = match error {
                    ReadError::Missing => "no such file".to_owned(),
                    ReadError::Failed(e) => e,
                };
                // Retry soon, then less often, never less often than the refresh.
                self.failures = self.failures.saturating_add(1);
                let retry_in = Duration::from_secs(1 << self.failures.min(8)).min(self.refresh);
                self.due = Some(now + retry_in);
                Checked::Failed { error, retry_in }
            }
        }
    }
}

fn hash(bytes: &[u8]) -> u64 {
    // A large file is hashed at every refresh: xxh3 runs at memory speed.
    xxhash_rust::xxh3::xxh3_64(bytes)
}

/// One watched file's thread and what it shares with the allocation loop.
pub(super) struct Watcher {
    pub watch: Watch,
    pub source: Arc<dyn Source>,
    pub tx: mpsc::Sender<Update>,
    /// Since when the current check has been running (`None` between checks).
    pub busy: Arc<Mutex<Option<Instant>>>,
    pub stop: Arc<AtomicBool>,
    /// Set once the first check is over (after sending what it found).
    pub tried: Arc<AtomicBool>,
    /// Why the last read failed (`None` after a good one).
    pub error: Arc<Mutex<Option<String>>>,
    /// Raised after sending new contents.
    pub wake: Arc<super::Wake>,
}

impl Watcher {
    pub(super) fn run(mut self) {
        let mut last_error = String::new();
        while !self.stop.load(Ordering::Relaxed) {
            let start = Instant::now();
            *self.busy.lock() = Some(start);
            let checked = self.watch.check(start, &*self.source);
            *self.busy.lock() = None;
            let path = &self.watch.key.0;
            match checked {
                Checked::Skipped => {}
                Checked::Read(contents) => {
                    *self.error.lock() = None;
                    last_error.clear();
                    if let Some(contents) = contents {
                        let n = match &contents {
                            Contents::Groups(g) => g.len(),
                            Contents::Names(n) => n.len(),
                        };
                        tracing::info!(file = %path.display(), kind = ?self.watch.kind, entries = n, seconds = start.elapsed().as_secs_f64(), "watched file read");
                        if !self.send(contents) {
                            return;
                        }
                    }
                }
                Checked::Missing(contents) => {
                    *self.error.lock() = None;
                    last_error.clear();
                    if let Some(contents) = contents {
                        tracing::warn!(file = %path.display(), "watched file does not exist; it lists no targets");
                        if !self.send(contents) {
                            return;
                        }
                    }
                }
                Checked::Failed { error, retry_in } => {
                    *self.error.lock() = Some(error.clone());
                    if error != last_error {
                        tracing::warn!(file = %path.display(), %error, ?retry_in, "watched file unreadable; keeping its previous contents");
                        last_error = error;
                    }
                }
            }
            self.tried.store(true, Ordering::Release);
            std::thread::sleep(crate::REFRESH);
        }
    }

    /// Hand new contents to the allocation loop; false when it is gone.
    fn send(&self, contents: Contents) -> bool {
        let update = Update {
            key: self.watch.key.clone(),
            contents,
        };
        if self.tx.send(update).is_err() {
            return false;
        }
        self.wake.raise();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A file whose status and bytes the test sets, counting reads.
    struct Fake {
        status: Mutex<Option<Status>>,
        bytes: Mutex<Result<Vec<u8>, ReadError>>,
        reads: Mutex<usize>,
    }

    impl Fake {
        fn new(bytes: &str) -> Fake {
            Fake {
                status: Mutex::new(Some(STATUS)),
                bytes: Mutex::new(Ok(bytes.as_bytes().to_vec())),
                reads: Mutex::new(0),
            }
        }
        fn set(&self, bytes: &str) {
            *self.bytes.lock() = Ok(bytes.as_bytes().to_vec());
        }
        fn reads(&self) -> usize {
            *self.reads.lock()
        }
    }

    impl Source for Fake {
        fn status(&self, _: &Path) -> Option<Status> {
            *self.status.lock()
        }
        fn read(&self, _: &Path) -> Result<Vec<u8>, ReadError> {
            *self.reads.lock() += 1;
            self.bytes.lock().clone()
        }
    }

    const STATUS: Status = Status {
        dev: 1,
        ino: 2,
        size: 27,
        mtime: (1_700_000_000, 0),
        ctime: (1_700_000_000, 0),
    };

    const A: &str = "- targets: ['10.0.0.1:80']\n";
    const B: &str = "- targets: ['10.0.0.2:80']\n";
    const REFRESH: Duration = Duration::from_secs(30);

    fn watch() -> Watch {
        Watch::new(
            ("targets.yaml".into(), "targets.yaml".into()),
            Kind::Targets,
            REFRESH,
        )
    }

    /// The addresses of new contents, `None` when the check reported none.
    fn targets(c: Checked) -> Option<Vec<String>> {
        match c {
            Checked::Read(Some(Contents::Groups(g))) => Some(
                g.into_iter()
                    .flat_map(|g| g.targets.clone())
                    .map(|a| a.to_string())
                    .collect(),
            ),
            Checked::Read(None) | Checked::Skipped => None,
            Checked::Read(Some(Contents::Names(_))) => panic!("read as a collectors file"),
            Checked::Failed { error, .. } => panic!("read failed: {error}"),
            Checked::Missing(_) => panic!("reported missing"),
        }
    }

    #[test]
    fn an_unchanged_status_is_read_again_when_refresh_interval_is_due() {
        let (file, mut w, t0) = (Fake::new(A), watch(), Instant::now());
        assert_eq!(targets(w.check(t0, &file)).unwrap(), ["10.0.0.1:80"]);
        // Rewritten with the same status (a same-size rewrite that put the times back).
        file.set(B);
        assert_eq!(
            targets(w.check(t0 + REFRESH, &file)).unwrap(),
            ["10.0.0.2:80"]
        );
        assert_eq!(file.reads(), 2);
    }

    #[test]
    fn an_unchanged_status_is_not_read_before_refresh_interval() {
        let (file, mut w, t0) = (Fake::new(A), watch(), Instant::now());
        assert!(targets(w.check(t0, &file)).is_some());
        file.set(B);
        for after in [
            Duration::ZERO,
            Duration::from_secs(1),
            REFRESH / 2,
            REFRESH - Duration::from_millis(1),
        ] {
            assert!(
                matches!(w.check(t0 + after, &file), Checked::Skipped),
                "read {after:?} after the last"
            );
        }
        assert_eq!(file.reads(), 1);
    }

    #[test]
    fn a_status_change_is_read_at_once_and_refresh_counts_from_that_read() {
        let (file, mut w, t0) = (Fake::new(A), watch(), Instant::now());
        assert!(targets(w.check(t0, &file)).is_some());
        file.set(B);
        file.status.lock().as_mut().unwrap().size += 1;
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(targets(w.check(t1, &file)).unwrap(), ["10.0.0.2:80"]);
        // Due one refresh after the last read, not after the first.
        assert!(matches!(w.check(t0 + REFRESH, &file), Checked::Skipped));
        assert_eq!(file.reads(), 2);
    }

    #[test]
    fn contents_read_again_unchanged_are_not_reported() {
        let (file, mut w, t0) = (Fake::new(A), watch(), Instant::now());
        assert!(targets(w.check(t0, &file)).is_some());
        assert!(matches!(w.check(t0 + REFRESH, &file), Checked::Read(None)));
        assert_eq!(file.reads(), 2);
    }

    #[test]
    fn a_failed_read_is_retried_after_its_backoff_with_the_status_unchanged() {
        let (file, mut w, t0) = (
            Fake::new("- targets: ['10.0.0.1:80'\n"),
            watch(),
            Instant::now(),
        );
        let Checked::Failed { retry_in, .. } = w.check(t0, &file) else {
            panic!("a broken file was accepted");
        };
        // 2 s after the first failure (1 << 1), below the 30 s refresh.
        assert_eq!(retry_in, Duration::from_secs(2));
        file.set(A);
        let t1 = t0 + Duration::from_secs(1);
        assert!(matches!(w.check(t1, &file), Checked::Skipped));
        let t2 = t0 + Duration::from_secs(2);
        assert_eq!(targets(w.check(t2, &file)).unwrap(), ["10.0.0.1:80"]);
        assert_eq!(file.reads(), 2);
    }

    #[test]
    fn a_missing_file_sd_file_lists_nothing_once_and_its_return_is_new_contents() {
        let (file, mut w, t0) = (Fake::new(A), watch(), Instant::now());
        assert_eq!(targets(w.check(t0, &file)).unwrap(), ["10.0.0.1:80"]);
        // Deleted: empty contents, reported once, not a failure (no backoff).
        *file.status.lock() = None;
        *file.bytes.lock() = Err(ReadError::Missing);
        let t1 = t0 + Duration::from_secs(1);
        match w.check(t1, &file) {
            Checked::Missing(Some(Contents::Groups(g))) => assert!(g.is_empty()),
            _ => panic!("a deleted file was not reported empty"),
        }
        assert!(matches!(
            w.check(t1 + REFRESH, &file),
            Checked::Missing(None)
        ));
        // Recreated with the text it had: reported again (its targets were withdrawn).
        *file.status.lock() = Some(STATUS);
        file.set(A);
        let t2 = t1 + REFRESH + Duration::from_secs(1);
        assert_eq!(targets(w.check(t2, &file)).unwrap(), ["10.0.0.1:80"]);
    }

    #[test]
    fn a_missing_collectors_file_keeps_the_previous_list() {
        let file = Fake::new("c0\n");
        let mut w = Watch::new(
            ("collectors.txt".into(), String::new()),
            Kind::Collectors,
            REFRESH,
        );
        let t0 = Instant::now();
        assert!(matches!(
            w.check(t0, &file),
            Checked::Read(Some(Contents::Names(_)))
        ));
        *file.status.lock() = None;
        *file.bytes.lock() = Err(ReadError::Missing);
        assert!(matches!(
            w.check(t0 + Duration::from_secs(1), &file),
            Checked::Failed { .. }
        ));
    }

    #[test]
    fn the_disk_tells_a_missing_file_from_an_unreadable_one() {
        let dir = std::env::temp_dir().join(format!("ta-watch-missing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert_eq!(Disk.read(&dir.join("absent.json")), Err(ReadError::Missing));
        // A path through a regular file (ENOTDIR) matches no glob either.
        std::fs::write(dir.join("plain"), "x").unwrap();
        assert_eq!(
            Disk.read(&dir.join("plain/x.json")),
            Err(ReadError::Missing)
        );
        // A directory is there, and not readable as a file.
        assert!(matches!(Disk.read(&dir), Err(ReadError::Failed(_))));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
