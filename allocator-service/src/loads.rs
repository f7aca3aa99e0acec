//! Weights from observed load: per-target series counts, pushed (`POST /loads`) or pulled (a
//! Prometheus-compatible query API, `scrape_samples_scraped`), become the targets' weights in the
//! core (`TargetSpec::weight`; an upsert with the same key changes the weight in place).
//!
//! Noise must move nothing, so a count goes through two filters before it is a weight:
//! - quantization to a log scale, powers of 2^(1/4) (1, 1.19, 1.41, 1.68, 2, …; each step ~19%);
//! - hysteresis: a target's weight changes only when the quantized count leaves a band around the
//!   current weight (±`band_percent`, default 25%) for `consecutive` observations in a row
//!   (default 3), and then takes the latest value; an observation back inside the band resets
//!   the count. A target's first observation sets its weight at once (there is nothing to keep).
//!
//! Observations are matched to targets by job and address: `instance` is taken as the target's
//! `__address__`, as Prometheus sets it unless relabeling changed it. Observations of unknown
//! targets are counted and ignored. Weights only matter to the weight-aware strategies
//! (`least-weighted`, `bounded-hashing`, `rebalancing`); `consistent-hashing` and `per-node`
//! ignore them.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use allocator_core::TargetKey;
use parking_lot::Mutex;
use serde::Deserialize;
use serde_json::Value;

/// The largest `POST /loads` body accepted.
pub const MAX_PUSH_BYTES: usize = 16 << 20;

/// The most observations waiting for the allocation loop: one of each target at 1M targets
/// (each holds its job and address, so about 250 MB at most; 4M held ~1 GB).
pub const MAX_WAITING: usize = 1 << 20;

/// `observed_load:`, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// `POST /loads` is accepted.
    pub push: bool,
    /// Pull from a Prometheus-compatible query API.
    pub pull: Option<Pull>,
    /// Half-width of the band, as a fraction (0.25 for ±25%).
    pub band: f64,
    /// Observations in a row outside the band before a weight changes.
    pub consecutive: u32,
}

/// Where and how often to pull.
#[derive(Clone, Debug, PartialEq)]
pub struct Pull {
    /// The API's base URL (`http://host:port[/prefix]`); `/api/v1/query` is appended.
    pub url: String,
    pub interval: Duration,
    /// The instant query (default `scrape_samples_scraped`).
    pub query: String,
    /// A label of the result naming the collector that scraped the series (for the hand-over
    /// window), if the collectors add one.
    pub collector_label: Option<String>,
}

/// One observation: a target's series count, and the collector that scraped it when known.
#[derive(Clone, Debug, PartialEq)]
pub struct Observation {
    pub job: String,
    pub address: String,
    pub series: f64,
    pub collector: Option<String>,
}

/// Observations waiting for the allocation loop (filled by `POST /loads` and the puller), one
/// batch per push or pull: a target counts once per batch (see [`Weights::observe`]).
#[derive(Default)]
pub struct Inbox {
    push: AtomicBool,
    waiting: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    batches: Vec<Vec<Observation>>,
    count: usize,
}

impl Inbox {
    /// Accept pushes (`observed_load.push`).
    pub fn enable_push(&self, on: bool) {
        self.push.store(on, Ordering::Relaxed);
    }

    pub fn push_enabled(&self) -> bool {
        self.push.load(Ordering::Relaxed)
    }

    /// Queue one push's or pull's observations for the loop; refused (with the reason) when
    /// the loop has not taken [`MAX_WAITING`] observations yet (it has no listing, or is
    /// stalled), so memory stays bounded.
    pub fn put(&self, obs: Vec<Observation>) -> Result<(), String> {
        let mut w = self.waiting.lock();
        if w.count + obs.len() > MAX_WAITING {
            return Err(format!(
                "{} observations are waiting for the allocation loop (at most {MAX_WAITING})",
                w.count
            ));
        }
        w.count += obs.len();
        w.batches.push(obs);
        Ok(())
    }

    /// The waiting batches, oldest first.
    pub fn take(&self) -> Vec<Vec<Observation>> {
        let mut w = self.waiting.lock();
        w.count = 0;
        std::mem::take(&mut w.batches)
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.lock().count == 0
    }
}

/// One entry of a push.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Pushed {
    job: String,
    #[serde(default)]
    address: Option<String>,
    #[serde(default)]
    instance: Option<String>,
    series: f64,
    #[serde(default)]
    collector: Option<String>,
}

/// A push body: `[{"job": .., "address" | "instance": .., "series": N, "collector"?: ..}]`.
/// Errors name the entry and the problem.
pub fn parse_push(body: &[u8]) -> Result<Vec<Observation>, String> {
    let entries: Vec<Value> = match serde_json::from_slice(body) {
        Ok(Value::Array(a)) => a,
        Ok(_) => return Err("expected a JSON array of {job, address or instance, series}".into()),
        Err(e) => return Err(format!("not JSON: {e}")),
    };
    entries
        .into_iter()
        .enumerate()
        .map(|(i, v)| {
            let p: Pushed = serde_json::from_value(v).map_err(|e| format!("[{i}]: {e}"))?;
            let address = match (p.address, p.instance) {
                (Some(a), None) | (None, Some(a)) => a,
                (Some(_), Some(_)) => {
                    return Err(format!("[{i}]: give address or instance, not both"))
                }
                (None, None) => return Err(format!("[{i}]: missing address (or instance)")),
            };
            if p.job.is_empty() || address.is_empty() {
                return Err(format!("[{i}]: job and address must not be empty"));
            }
            if !p.series.is_finite() || p.series < 0.0 {
                return Err(format!(
                    "[{i}]: series must be a finite number ≥ 0, not {}",
                    p.series
                ));
            }
            Ok(Observation {
                job: p.job,
                address,
                series: p.series,
                collector: p.collector.filter(|c| !c.is_empty()),
            })
        })
        .collect()
}

/// A Prometheus instant-query answer (`/api/v1/query`, result type `vector`) as observations:
/// `job` and `instance` labels name the target, the sample value is the count. Samples without
/// `job` or `instance`, or with a value that is not a finite number ≥ 0, are skipped.
pub fn parse_query(body: &[u8], collector_label: Option<&str>) -> Result<Vec<Observation>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    if v["status"] != "success" {
        return Err(format!(
            "query failed: {} {}",
            v["errorType"].as_str().unwrap_or("?"),
            v["error"].as_str().unwrap_or("")
        ));
    }
    if v["data"]["resultType"] != "vector" {
        return Err(format!(
            "expected a vector result, got {}",
            v["data"]["resultType"]
        ));
    }
    let result = v["data"]["result"]
        .as_array()
        .ok_or("data.result is not a list")?;
    Ok(result
        .iter()
        .filter_map(|s| {
            let m = &s["metric"];
            let series: f64 = s["value"][1].as_str()?.parse().ok()?;
            if !(series.is_finite() && series >= 0.0) {
                return None;
            }
            Some(Observation {
                job: m["job"].as_str()?.to_owned(),
                address: m["instance"].as_str()?.to_owned(),
                series,
                collector: collector_label
                    .and_then(|l| m[l].as_str())
                    .map(str::to_owned),
            })
        })
        .collect())
}

/// A count on the log scale of powers of 2^(1/4), as a weight (at least 1).
pub fn quantize(series: f64) -> u32 {
    // NaN and counts up to 1 weigh 1.
    if series.is_nan() || series <= 1.0 {
        return 1;
    }
    let step = (4.0 * series.log2()).round();
    // u32::MAX is 2^32: steps above 127 saturate.
    2f64.powf(step / 4.0).round().min(f64::from(u32::MAX)) as u32
}

/// One target's weight and its run of observations outside the band.
#[derive(Clone, Copy, Debug)]
struct State {
    weight: u32,
    outside: u32,
}

/// Counts since start, for the metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub matched: u64,
    pub unknown: u64,
    pub weight_changes: u64,
}

/// job → address → targets.
type Index =
    HashMap<Arc<str>, HashMap<Arc<str>, Vec<TargetKey>, ahash::RandomState>, ahash::RandomState>;

/// The weights the loop hands to the core, with their hysteresis (see the module documentation).
pub struct Weights {
    band: f64,
    consecutive: u32,
    state: HashMap<TargetKey, State, ahash::RandomState>,
    /// job → address → targets, from the last listing (looked up by `&str`, no allocation).
    index: Index,
    totals: Totals,
    /// Targets (job, key) whose weight changed since [`Weights::take_changed`].
    changed: Vec<(Arc<str>, TargetKey)>,
}

impl Weights {
    pub fn new(s: &Settings) -> Weights {
        Weights {
            band: s.band,
            consecutive: s.consecutive,
            state: Default::default(),
            index: Default::default(),
            totals: Totals::default(),
            changed: Vec::new(),
        }
    }

    pub fn totals(&self) -> Totals {
        self.totals
    }

    /// A target's weight (1 until observed).
    pub fn weight(&self, key: TargetKey) -> u32 {
        self.state.get(&key).map_or(1, |s| s.weight)
    }

    /// Whether a listing has been indexed (observations can be matched).
    pub fn indexed(&self) -> bool {
        !self.index.is_empty()
    }

    /// Index the listing (job, address → keys) and forget targets no longer listed.
    pub fn index<'a>(&mut self, targets: impl Iterator<Item = &'a crate::discovery::Target>) {
        self.index.clear();
        for t in targets {
            self.index
                .entry(t.job.clone())
                .or_default()
                .entry(t.address.clone())
                .or_default()
                .push(t.key);
        }
        let listed: std::collections::HashSet<TargetKey> = self
            .index
            .values()
            .flat_map(|m| m.values().flatten())
            .copied()
            .collect();
        self.state.retain(|k, _| listed.contains(k));
    }

    /// Apply one refresh's changes (see [`crate::discovery::Changes`]): `removed` targets leave
    /// the index and their weights are forgotten, `replaced` ones (the old contents of changed
    /// targets) leave their old address, `upserted` ones are indexed at their address.
    pub fn update(
        &mut self,
        removed: &[crate::discovery::Target],
        replaced: &[crate::discovery::Target],
        upserted: &[crate::discovery::Target],
    ) {
        for t in removed.iter().chain(replaced) {
            if let Some(by_address) = self.index.get_mut(&t.job) {
                if let Some(keys) = by_address.get_mut(&t.address) {
                    keys.retain(|&k| k != t.key);
                    if keys.is_empty() {
                        by_address.remove(&t.address);
                    }
                }
                if by_address.is_empty() {
                    self.index.remove(&t.job);
                }
            }
        }
        for t in removed {
            self.state.remove(&t.key);
        }
        for t in upserted {
            let keys = self
                .index
                .entry(t.job.clone())
                .or_default()
                .entry(t.address.clone())
                .or_default();
            if !keys.contains(&t.key) {
                keys.push(t.key);
            }
        }
    }

    /// Take one push's or pull's observations; returns whether a weight changed, and calls
    /// `seen` with each matched target and the collector that scraped it (when the observation
    /// names one). A target observed several times in one batch (listed twice in a push; one
    /// series per collector in a hand-over window) counts once, with its last value: the run of
    /// `consecutive` observations is a run of pushes or pulls.
    pub fn observe(
        &mut self,
        obs: Vec<Observation>,
        mut seen: impl FnMut(TargetKey, &str),
    ) -> bool {
        let mut last: HashMap<TargetKey, u32, ahash::RandomState> = HashMap::default();
        let mut order = Vec::new();
        for o in obs {
            let Some((job, keys)) = self
                .index
                .get_key_value(o.job.as_str())
                .and_then(|(job, m)| Some((job, m.get(o.address.as_str())?)))
            else {
                self.totals.unknown += 1;
                continue;
            };
            self.totals.matched += 1;
            let q = quantize(o.series);
            for &k in keys {
                if let Some(c) = &o.collector {
                    seen(k, c);
                }
                if last.insert(k, q).is_none() {
                    order.push((job.clone(), k));
                }
            }
        }
        let mut changed = false;
        for (job, k) in order {
            if self.step(k, last[&k]) {
                changed = true;
                self.changed.push((job, k));
            }
        }
        changed
    }

    /// The targets (job, key) whose weight changed since the last call.
    pub fn take_changed(&mut self) -> Vec<(Arc<str>, TargetKey)> {
        std::mem::take(&mut self.changed)
    }

    /// One quantized observation of one target.
    fn step(&mut self, key: TargetKey, q: u32) -> bool {
        let s = match self.state.get_mut(&key) {
            None => {
                self.state.insert(
                    key,
                    State {
                        weight: q,
                        outside: 0,
                    },
                );
                self.totals.weight_changes += u64::from(q != 1);
                return q != 1;
            }
            Some(s) => s,
        };
        let cur = f64::from(s.weight);
        let inside =
            f64::from(q) <= cur * (1.0 + self.band) && f64::from(q) >= cur / (1.0 + self.band);
        if inside {
            s.outside = 0;
            return false;
        }
        s.outside += 1;
        if s.outside < self.consecutive {
            return false;
        }
        s.outside = 0;
        s.weight = q;
        self.totals.weight_changes += 1;
        true
    }
}

/// The puller: a thread of its own (the allocation loop never waits on the network) that queries
/// the API every interval and puts what it finds in the inbox.
pub struct Puller {
    stop: Arc<AtomicBool>,
}

impl Drop for Puller {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Puller {
    pub fn start(p: Pull, inbox: Arc<crate::state::Shared>) -> std::io::Result<Puller> {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        std::thread::Builder::new()
            .name("load-puller".into())
            .spawn(move || {
                let rt = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        tracing::error!(error = %e, "cannot start the load puller's runtime");
                        return;
                    }
                };
                while !flag.load(Ordering::Relaxed) {
                    let started = std::time::Instant::now();
                    let got = rt.block_on(async {
                        tokio::time::timeout(p.interval, query(&p))
                            .await
                            .unwrap_or_else(|_| Err(format!("no answer within {:?}", p.interval)))
                    });
                    match got {
                        Ok(obs) => {
                            tracing::debug!(samples = obs.len(), url = %p.url, "loads pulled");
                            if let Err(e) = inbox.loads.put(obs) {
                                inbox.metrics.load_pull_failed();
                                tracing::warn!(url = %p.url, error = %e, "pulled loads dropped");
                            }
                        }
                        Err(e) => {
                            inbox.metrics.load_pull_failed();
                            tracing::warn!(url = %p.url, error = %e, "pulling loads failed; weights stay");
                        }
                    }
                    while started.elapsed() < p.interval && !flag.load(Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(50).min(p.interval));
                    }
                }
            })?;
        Ok(Puller { stop })
    }
}

/// `GET <url>/api/v1/query?query=<query>` over plain HTTP, as observations.
async fn query(p: &Pull) -> Result<Vec<Observation>, String> {
    let url = format!(
        "{}/api/v1/query?query={}",
        p.url.trim_end_matches('/'),
        crate::plain_get::percent_encode(&p.query)
    );
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let got = crate::plain_get::get(
        &uri,
        &[(hyper::header::ACCEPT, "application/json")],
        crate::limits::MAX_FILE_SD_BYTES as usize,
    )
    .await?;
    if got.status != hyper::StatusCode::OK {
        return Err(format!(
            "HTTP status {}: {}",
            got.status,
            crate::plain_get::excerpt(&got.body)
        ));
    }
    parse_query(&got.body, p.collector_label.as_deref())
}

#[cfg(test)]
mod tests;
