//! Secrets and ConfigMaps read one by one, by name, when the role may not list them: the Go
//! allocator reads the credentials a monitor names with a GET (prometheus-operator's assets
//! store), and the Operator's documentation grants it only `get` on Secrets. A name is read the
//! first time a resource names it, outside the allocation loop (a task here), and the loop is
//! told through the generation counter when the answer lands; until then the resource's jobs are
//! not computed (neither served nor refused). A read that does not answer within
//! [`Timing::timeout`] counts as failed.
//!
//! Refresh: every cached name (read or failed) is read again every [`Timing::refresh`] while
//! resources still name it; Secrets in `prometheus_cr.secret_namespaces` are also re-read as
//! soon as their metadata watch reports them changed, created or deleted (what the Go allocator
//! does, there only; it never re-reads other Secrets or any ConfigMap). A name that no resource
//! named in the last complete computation of the jobs is forgotten.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, PartialObjectMeta};
use kube::runtime::watcher;
use kube::Client;
use parking_lot::Mutex;
use tokio::sync::mpsc;

/// The kinds read by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    Secret,
    ConfigMap,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Secret => "Secret",
            Kind::ConfigMap => "ConfigMap",
        }
    }
}

/// One object named by a resource.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}/{}", self.kind.as_str(), self.namespace, self.name)
    }
}

/// What is known of a name.
#[derive(Debug, Clone, PartialEq)]
pub enum State {
    /// The first read is in flight.
    Pending,
    /// The object's data (a Secret's decoded `data`, a ConfigMap's `data`).
    Read(BTreeMap<String, Vec<u8>>),
    /// The last read failed: why (the API server's answer, or no answer in time).
    Failed(String),
}

/// What one read by name gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// The object's data.
    Read(BTreeMap<String, Vec<u8>>),
    /// The API server answered with an error (403, 404, ...): the object cannot be read.
    Refused(String),
    /// No answer: the API server unreachable, or no answer in time. A value read before is
    /// kept (the Go allocator's assets store keeps what it has read); a first read fails.
    Unreachable(String),
}

/// What a lookup finds.
#[derive(Debug, PartialEq)]
pub enum Lookup {
    /// The value of the key (None: the object has no such key, or it is not UTF-8).
    Read(Option<String>),
    Failed(String),
    Pending,
}

/// How long a read may take, how often cached names are read again, and how soon a name whose
/// last read failed is tried again.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub timeout: Duration,
    pub refresh: Duration,
    pub retry: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            timeout: Duration::from_secs(10),
            refresh: Duration::from_secs(60),
            retry: Duration::from_secs(5),
        }
    }
}

/// What is read by name, and how.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    /// `prometheus_cr.secret_namespaces` (default: the collector namespace), as the Go
    /// allocator reads it: where changed Secrets are watched for.
    pub secret_namespaces: Vec<String>,
    pub timing: Timing,
}

struct Entry {
    state: State,
    /// The computation of the jobs ([`Cache::begin`]) that last named it.
    used: u64,
    /// When the last read was started (None: never, or a re-read is asked for now).
    read: Option<Instant>,
    /// The last read failed (refused, or unreachable): read again after [`Timing::retry`],
    /// not the full refresh period.
    failed: bool,
    /// The number of the latest read started ([`Cache::start_read`]): an answer to an
    /// earlier one that lands after it is stale.
    reading: u64,
}

/// The names read so far, and which are waited for during one computation of the jobs.
#[derive(Default)]
pub struct Cache {
    entries: HashMap<Key, Entry>,
    /// Names found pending by lookups since the last [`Cache::take_waited`].
    waited: Vec<Key>,
    /// The current computation of the jobs.
    pass: u64,
}

impl Cache {
    /// The value of `key` in the object, or what stands in the way; a name not seen before is
    /// pending and returned in the second field, to be read.
    pub fn lookup(&mut self, k: &Key, key: &str, now: Instant) -> (Lookup, bool) {
        let mut new = false;
        let e = self.entries.entry(k.clone()).or_insert_with(|| {
            new = true;
            Entry {
                state: State::Pending,
                used: 0,
                read: Some(now),
                failed: false,
                reading: 0,
            }
        });
        e.used = self.pass;
        let found = match &e.state {
            State::Pending => Lookup::Pending,
            State::Failed(why) => Lookup::Failed(why.clone()),
            State::Read(data) => Lookup::Read(
                data.get(key)
                    .and_then(|v| String::from_utf8(v.clone()).ok()),
            ),
        };
        if found == Lookup::Pending && !self.waited.contains(k) {
            self.waited.push(k.clone());
        }
        (found, new)
    }

    /// Why `k` cannot be read now, if it is pending or its last read failed (nothing is
    /// started for a name not seen before).
    pub fn why_unreadable(&self, k: &Key) -> Option<String> {
        match &self.entries.get(k)?.state {
            State::Pending => Some("its first read by name has not answered yet".into()),
            State::Failed(why) => Some(why.clone()),
            State::Read(_) => None,
        }
    }

    /// The names lookups found pending since the last call.
    pub fn take_waited(&mut self) -> Vec<Key> {
        std::mem::take(&mut self.waited)
    }

    /// A read of `k` starts: its number, for [`Cache::landed`] (None: `k` is forgotten).
    pub fn start_read(&mut self, k: &Key) -> Option<u64> {
        let e = self.entries.get_mut(k)?;
        e.reading += 1;
        Some(e.reading)
    }

    /// Record the outcome of read number `read`; whether what lookups find changed. The
    /// answer to a read older than the latest started is dropped (a re-read asked for while
    /// one was in flight may answer first).
    pub fn landed(&mut self, k: &Key, read: u64, outcome: Outcome) -> bool {
        let Some(e) = self.entries.get_mut(k).filter(|e| e.reading == read) else {
            return false;
        };
        e.failed = !matches!(outcome, Outcome::Read(_));
        let state = match outcome {
            Outcome::Read(data) => State::Read(data),
            Outcome::Refused(why) => State::Failed(why),
            // A transport failure keeps what was read (the object did not change for it).
            Outcome::Unreachable(_) if matches!(e.state, State::Read(_)) => return false,
            Outcome::Unreachable(why) => State::Failed(why),
        };
        if e.state == state {
            return false;
        }
        e.state = state;
        true
    }

    /// Ask for `k` to be read again now (its object changed), if it is cached.
    pub fn stale(&mut self, k: &Key) -> bool {
        match self.entries.get_mut(k) {
            Some(e) => {
                e.read = None;
                true
            }
            None => false,
        }
    }

    /// A computation of the jobs starts: what it looks up is named by a resource.
    pub fn begin(&mut self) {
        self.pass += 1;
        self.waited.clear();
    }

    /// The computation completed: forget the names it did not look up.
    pub fn end(&mut self) {
        let pass = self.pass;
        self.entries.retain(|_, e| e.used == pass);
    }

    /// The names due for a read at `now` (marked as being read): every `refresh`, or every
    /// `retry` while the last read failed.
    pub fn due(&mut self, now: Instant, refresh: Duration, retry: Duration) -> Vec<Key> {
        let mut due = Vec::new();
        for (k, e) in &mut self.entries {
            let every = if e.failed {
                retry.min(refresh)
            } else {
                refresh
            };
            let is_due = e
                .read
                .is_none_or(|r| now.saturating_duration_since(r) >= every);
            if is_due {
                e.read = Some(now);
                due.push(k.clone());
            }
        }
        due.sort();
        due
    }
}

/// The by-name reads of a cluster: the cache, and the queue of its reader task.
pub struct ByName {
    cache: Mutex<Cache>,
    queue: mpsc::UnboundedSender<Key>,
}

/// At most this many reads at once (the API server's priority and fairness would queue more).
const PARALLEL_READS: usize = 4;

impl ByName {
    /// Start the reader (on the current tokio runtime); with the first name it is asked to
    /// read (nothing is read by name while the role may list Secrets and ConfigMaps), it starts
    /// the metadata watches of the Secrets of `secret_namespaces` ("" watches every namespace).
    /// `generation` is bumped when a read changes what lookups find.
    pub fn start(
        client: Client,
        secret_namespaces: Vec<String>,
        generation: Arc<AtomicU64>,
        timing: Timing,
    ) -> Arc<ByName> {
        let (queue, rx) = mpsc::unbounded_channel();
        let by_name = Arc::new(ByName {
            cache: Mutex::new(Cache::default()),
            queue,
        });
        tokio::spawn(reader(
            Arc::downgrade(&by_name),
            client,
            rx,
            generation,
            timing,
            secret_namespaces,
        ));
        by_name
    }

    /// The value of `key` in the object `k` (a read is started for a name not seen before).
    pub fn lookup(&self, k: Key, key: &str) -> Lookup {
        let (found, new) = self.cache.lock().lookup(&k, key, Instant::now());
        if new {
            let _ = self.queue.send(k);
        }
        found
    }

    /// The names lookups found pending since the last call.
    pub fn take_waited(&self) -> Vec<Key> {
        self.cache.lock().take_waited()
    }

    /// See [`Cache::begin`].
    pub fn begin(&self) {
        self.cache.lock().begin();
    }

    /// See [`Cache::end`].
    pub fn end(&self) {
        self.cache.lock().end();
    }

    /// See [`Cache::why_unreadable`].
    pub fn why_unreadable(&self, k: &Key) -> Option<String> {
        self.cache.lock().why_unreadable(k)
    }

    fn stale(&self, k: &Key) {
        if self.cache.lock().stale(k) {
            let _ = self.queue.send(k.clone());
        }
    }
}

/// Reads the queued names, and every cached name once per refresh period.
async fn reader(
    by_name: std::sync::Weak<ByName>,
    client: Client,
    mut rx: mpsc::UnboundedReceiver<Key>,
    generation: Arc<AtomicU64>,
    timing: Timing,
    mut secret_namespaces: Vec<String>,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(PARALLEL_READS));
    let mut tick =
        tokio::time::interval(timing.refresh.min(timing.retry).min(Duration::from_secs(5)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let keys = tokio::select! {
            k = rx.recv() => match k {
                Some(k) => {
                    for ns in std::mem::take(&mut secret_namespaces) {
                        tokio::spawn(watch_secret_metadata(by_name.clone(), client.clone(), ns));
                    }
                    vec![k]
                }
                None => return,
            },
            _ = tick.tick() => {
                let Some(b) = by_name.upgrade() else { return };
                let due = b
                    .cache
                    .lock()
                    .due(Instant::now(), timing.refresh, timing.retry);
                due
            }
        };
        for k in keys {
            let Ok(permit) = permits.clone().acquire_owned().await else {
                return;
            };
            let Some(b) = by_name.upgrade() else { return };
            let Some(number) = b.cache.lock().start_read(&k) else {
                continue;
            };
            drop(b);
            let (by_name, client, generation) =
                (by_name.clone(), client.clone(), generation.clone());
            tokio::spawn(async move {
                let outcome = read(&client, &k, timing.timeout).await;
                drop(permit);
                let Some(b) = by_name.upgrade() else { return };
                if let Outcome::Refused(why) | Outcome::Unreachable(why) = &outcome {
                    tracing::debug!(object = %k, error = %why, "by-name read failed");
                }
                let changed = b.cache.lock().landed(&k, number, outcome.clone());
                if changed {
                    match &outcome {
                        Outcome::Refused(why) | Outcome::Unreachable(why) => {
                            tracing::warn!(object = %k, error = %why, "cannot read it by name; the resources naming it are refused until a read succeeds")
                        }
                        Outcome::Read(_) => tracing::info!(object = %k, "read by name"),
                    }
                    generation.fetch_add(1, Ordering::AcqRel);
                }
            });
        }
    }
}

/// One GET, bounded by `timeout`.
async fn read(client: &Client, k: &Key, timeout: Duration) -> Outcome {
    let answer = match k.kind {
        Kind::Secret => {
            let api: Api<Secret> = Api::namespaced(client.clone(), &k.namespace);
            tokio::time::timeout(timeout, api.get(&k.name))
                .await
                .map(|r| r.map(secret_data))
        }
        Kind::ConfigMap => {
            let api: Api<ConfigMap> = Api::namespaced(client.clone(), &k.namespace);
            tokio::time::timeout(timeout, api.get(&k.name))
                .await
                .map(|r| r.map(config_map_data))
        }
    };
    match answer {
        Ok(Ok(data)) => Outcome::Read(data),
        Ok(Err(kube::Error::Api(s))) => Outcome::Refused(format!(
            "GET answered {} {}: {}",
            s.code, s.reason, s.message
        )),
        Ok(Err(e)) => Outcome::Unreachable(format!("GET failed: {e}")),
        Err(_) => Outcome::Unreachable(format!("GET did not answer within {timeout:?}")),
    }
}

fn secret_data(s: Secret) -> BTreeMap<String, Vec<u8>> {
    let mut out: BTreeMap<String, Vec<u8>> = s
        .string_data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect();
    out.extend(
        s.data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, v.0)),
    );
    out
}

fn config_map_data(c: ConfigMap) -> BTreeMap<String, Vec<u8>> {
    c.data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.into_bytes()))
        .collect()
}

/// The metadata of the Secrets of `namespace` ("" all): a change, creation or deletion of a
/// cached one has it read again (the Go allocator's secrets informer, which needs `list` and
/// `watch` there; without them this watch retries quietly and the periodic reads remain).
async fn watch_secret_metadata(
    by_name: std::sync::Weak<ByName>,
    client: Client,
    namespace: String,
) {
    let api: Api<PartialObjectMeta<Secret>> = if namespace.is_empty() {
        Api::all(client)
    } else {
        Api::namespaced(client, &namespace)
    };
    let stream = watcher(api, watcher::Config::default());
    let mut stream = std::pin::pin!(stream);
    let mut warned = false;
    let mut backoff = super::backoff::Backoff::new();
    while let Some(event) = stream.next().await {
        let Some(b) = by_name.upgrade() else { return };
        let touched = |m: &PartialObjectMeta<Secret>| {
            b.stale(&Key {
                kind: Kind::Secret,
                namespace: m.metadata.namespace.clone().unwrap_or_default(),
                name: m.metadata.name.clone().unwrap_or_default(),
            })
        };
        match event {
            // A re-list's objects too: changes made while the watch was down.
            Ok(watcher::Event::Apply(m)) | Ok(watcher::Event::Delete(m)) => {
                backoff.reset();
                touched(&m);
            }
            Ok(watcher::Event::InitApply(m)) => touched(&m),
            Ok(watcher::Event::InitDone) => backoff.reset(),
            Ok(watcher::Event::Init) => {}
            Err(e) => {
                if !warned {
                    warned = true;
                    tracing::warn!(namespace = %namespace, error = %e, "cannot watch the Secrets of a secret_namespaces entry; changed Secrets there are re-read only periodically (retrying)");
                }
                tokio::time::sleep(backoff.step()).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read started and answered at once.
    fn land(c: &mut Cache, k: &Key, outcome: Outcome) -> bool {
        let read = c.start_read(k).expect("a cached name");
        c.landed(k, read, outcome)
    }

    fn key(name: &str) -> Key {
        Key {
            kind: Kind::Secret,
            namespace: "shop".into(),
            name: name.into(),
        }
    }

    #[test]
    fn a_new_name_is_pending_and_waited_for_until_its_read_lands() {
        let mut c = Cache::default();
        let t = Instant::now();
        assert_eq!(c.lookup(&key("s"), "k", t), (Lookup::Pending, true));
        // Asked again while in flight: still pending, not queued twice.
        assert_eq!(c.lookup(&key("s"), "k", t), (Lookup::Pending, false));
        assert_eq!(c.take_waited(), vec![key("s")]);
        assert!(c.take_waited().is_empty());
        let data = BTreeMap::from([("k".to_owned(), b"v".to_vec())]);
        assert!(land(&mut c, &key("s"), Outcome::Read(data.clone())));
        // The same answer again changes nothing (no regeneration).
        assert!(!land(&mut c, &key("s"), Outcome::Read(data)));
        assert_eq!(
            c.lookup(&key("s"), "k", t).0,
            Lookup::Read(Some("v".into()))
        );
        assert_eq!(c.lookup(&key("s"), "other", t).0, Lookup::Read(None));
        assert!(c.take_waited().is_empty());
        // The API server unreachable: what was read stays.
        assert!(!land(
            &mut c,
            &key("s"),
            Outcome::Unreachable("connect".into())
        ));
        assert_eq!(
            c.lookup(&key("s"), "k", t).0,
            Lookup::Read(Some("v".into()))
        );
        assert!(land(&mut c, &key("s"), Outcome::Refused("403".into())));
        assert_eq!(c.lookup(&key("s"), "k", t).0, Lookup::Failed("403".into()));
        // A first read that cannot reach the API server fails (as the Go allocator's GET).
        c.lookup(&key("t"), "k", t);
        assert!(land(
            &mut c,
            &key("t"),
            Outcome::Unreachable("connect".into())
        ));
        assert_eq!(
            c.lookup(&key("t"), "k", t).0,
            Lookup::Failed("connect".into())
        );
    }

    #[test]
    fn names_are_read_again_each_period_and_forgotten_when_unused() {
        let mut c = Cache::default();
        let refresh = Duration::from_secs(60);
        let retry = Duration::from_secs(5);
        let t0 = Instant::now();
        c.begin();
        c.lookup(&key("a"), "k", t0);
        c.end();
        // Its first read was just started (by the lookup): not due again yet.
        assert!(c.due(t0, refresh, retry).is_empty());
        assert!(c
            .due(t0 + Duration::from_secs(59), refresh, retry)
            .is_empty());
        let t1 = t0 + Duration::from_secs(60);
        assert_eq!(c.due(t1, refresh, retry), vec![key("a")]);
        assert!(c.due(t1, refresh, retry).is_empty());
        // A change reported by the metadata watch: due at once.
        assert!(c.stale(&key("a")));
        assert!(!c.stale(&key("b")));
        assert_eq!(c.due(t1, refresh, retry), vec![key("a")]);
        // Kept while no computation completes, however long (the jobs are not recomputed
        // while nothing changes).
        assert_eq!(c.due(t1 + 10 * refresh, refresh, retry), vec![key("a")]);
        // A computation that names it keeps it; one that completes without it forgets it.
        c.begin();
        c.lookup(&key("a"), "k", t1);
        c.lookup(&key("b"), "k", t1);
        c.end();
        c.begin();
        c.lookup(&key("b"), "k", t1);
        c.end();
        assert!(!c.stale(&key("a")));
        assert!(c.stale(&key("b")));
        assert_eq!(c.lookup(&key("a"), "k", t1), (Lookup::Pending, true));
    }

    #[test]
    fn a_name_whose_read_failed_is_tried_again_sooner() {
        let mut c = Cache::default();
        let (refresh, retry) = (Duration::from_secs(60), Duration::from_secs(5));
        let t0 = Instant::now();
        c.lookup(&key("a"), "k", t0);
        land(&mut c, &key("a"), Outcome::Unreachable("connect".into()));
        assert!(c
            .due(t0 + Duration::from_secs(4), refresh, retry)
            .is_empty());
        let t1 = t0 + retry;
        assert_eq!(c.due(t1, refresh, retry), vec![key("a")]);
        land(
            &mut c,
            &key("a"),
            Outcome::Read(BTreeMap::from([("k".to_owned(), b"v".to_vec())])),
        );
        // Read: back to the refresh period.
        assert!(c.due(t1 + retry, refresh, retry).is_empty());
        assert_eq!(c.due(t1 + refresh, refresh, retry), vec![key("a")]);
    }

    #[test]
    fn an_answer_to_an_older_read_that_lands_last_is_dropped() {
        let mut c = Cache::default();
        let t = Instant::now();
        c.lookup(&key("s"), "k", t);
        let value =
            |v: &str| Outcome::Read(BTreeMap::from([("k".to_owned(), v.as_bytes().to_vec())]));
        let first = c.start_read(&key("s")).unwrap();
        let second = c.start_read(&key("s")).unwrap();
        assert!(c.landed(&key("s"), second, value("new")));
        assert!(!c.landed(&key("s"), first, value("old")));
        assert_eq!(
            c.lookup(&key("s"), "k", t).0,
            Lookup::Read(Some("new".into()))
        );
    }
}
