//! Prometheus metrics with the Go allocator's names, descriptions, label names and histogram
//! buckets (prefix `opentelemetry_allocator_`), plus moves and allocation quality, served in the
//! text format 0.0.4 as the Go allocator's `promhttp` handler serves them.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::state::View;

type Labels = Vec<(String, String)>;

/// The OpenTelemetry SDK's default explicit buckets, which the Go allocator's
/// `time_to_allocate` and `http_duration_seconds` use.
const OTEL_DEFAULT_BUCKETS: [f64; 15] = [
    0.0, 5.0, 10.0, 25.0, 50.0, 75.0, 100.0, 250.0, 500.0, 750.0, 1000.0, 2500.0, 5000.0, 7500.0,
    10000.0,
];
/// The buckets the Go discoverer sets for its processing durations.
const PROCESS_BUCKETS: [f64; 6] = [1.0, 5.0, 10.0, 30.0, 60.0, 120.0];

fn histogram() -> Histogram {
    Histogram::new(OTEL_DEFAULT_BUCKETS)
}

fn process_histogram() -> Histogram {
    Histogram::new(PROCESS_BUCKETS)
}

pub struct Metrics {
    registry: Registry,
    targets: Family<Labels, Gauge>,
    remaining: Gauge,
    per_collector: Family<Labels, Gauge>,
    unassigned: Gauge,
    allocatable: Family<Labels, Gauge>,
    discovered: Gauge,
    time_to_allocate: Family<Labels, Histogram, fn() -> Histogram>,
    http: Family<Labels, Histogram, fn() -> Histogram>,
    events: Family<Labels, Counter>,
    process_targets: Histogram,
    process_groups: Family<Labels, Histogram, fn() -> Histogram>,
    moves: Family<Labels, Counter>,
    max_over_mean: Gauge<f64, std::sync::atomic::AtomicU64>,
    /// One series, labelled with the published assignment's digest (replicas that agree show
    /// the same label).
    digest: Family<Labels, Gauge>,
    /// The movement budget: reassignments waiting, and counts deferred and released.
    moves_queued: Gauge,
    moves_deferred: Counter,
    moves_released: Counter,
    moves_dropped: Counter,
    /// The hand-over window: targets served to two collectors, and windows closed by reason.
    handovers_open: Gauge,
    handovers_closed: Family<Labels, Counter>,
    /// Observed load: observations by result (matched, unknown), weight changes, failed pulls.
    load_observations: Family<Labels, Counter>,
    weight_changes: Counter,
    load_pulls_failed: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("opentelemetry_allocator");
        let m = Metrics {
            targets: Family::default(),
            remaining: Gauge::default(),
            per_collector: Family::default(),
            unassigned: Gauge::default(),
            allocatable: Family::default(),
            discovered: Gauge::default(),
            time_to_allocate: Family::new_with_constructor(histogram),
            http: Family::new_with_constructor(histogram),
            events: Family::default(),
            process_targets: process_histogram(),
            process_groups: Family::new_with_constructor(process_histogram),
            moves: Family::default(),
            max_over_mean: Gauge::default(),
            digest: Family::default(),
            moves_queued: Gauge::default(),
            moves_deferred: Counter::default(),
            moves_released: Counter::default(),
            moves_dropped: Counter::default(),
            handovers_open: Gauge::default(),
            handovers_closed: Family::default(),
            load_observations: Family::default(),
            weight_changes: Counter::default(),
            load_pulls_failed: Counter::default(),
            registry: Registry::default(),
        };
        registry.register(
            "targets",
            "Number of targets discovered.",
            m.targets.clone(),
        );
        registry.register(
            "targets_remaining",
            "Number of targets kept after filtering.",
            m.remaining.clone(),
        );
        registry.register(
            "targets_per_collector",
            "The number of targets for each collector.",
            m.per_collector.clone(),
        );
        registry.register(
            "targets_unassigned",
            "Number of targets that could not be assigned due to missing node label.",
            m.unassigned.clone(),
        );
        registry.register(
            "collectors_allocatable",
            "Number of collectors the allocator is able to allocate to.",
            m.allocatable.clone(),
        );
        registry.register(
            "collectors_discovered",
            "Number of collectors discovered.",
            m.discovered.clone(),
        );
        registry.register(
            "time_to_allocate",
            "The time it takes to allocate",
            m.time_to_allocate.clone(),
        );
        registry.register(
            "http_duration_seconds",
            "Duration of received HTTP requests.",
            m.http.clone(),
        );
        registry.register(
            "process_targets_duration_seconds",
            "Duration of processing targets.",
            m.process_targets.clone(),
        );
        registry.register(
            "process_target_groups_duration_seconds",
            "Duration of processing target groups.",
            m.process_groups.clone(),
        );
        registry.register(
            "events",
            "Number of events in the channel.",
            m.events.clone(),
        );
        registry.register(
            "moves",
            "Targets assigned, unassigned and reassigned since start",
            m.moves.clone(),
        );
        registry.register(
            "max_over_mean_targets",
            "Busiest collector's targets over the mean",
            m.max_over_mean.clone(),
        );
        registry.register(
            "assignment_digest",
            "Always 1; the label is the digest of the published assignment (equal on replicas that agree)",
            m.digest.clone(),
        );
        registry.register(
            "moves_queued",
            "Reassignments waiting for the movement budget (their targets stay on their old collector)",
            m.moves_queued.clone(),
        );
        registry.register(
            "moves_deferred",
            "Reassignments the movement budget queued since start",
            m.moves_deferred.clone(),
        );
        registry.register(
            "moves_released",
            "Queued reassignments the movement budget released since start",
            m.moves_released.clone(),
        );
        registry.register(
            "moves_dropped",
            "Queued reassignments that left the queue without the budget since start (target removed or moved back, serving collector gone); deferred = released + dropped + queued",
            m.moves_dropped.clone(),
        );
        registry.register(
            "handovers_open",
            "Reassigned targets served to both their old and new collector",
            m.handovers_open.clone(),
        );
        registry.register(
            "handovers_closed",
            "Hand-over windows closed since start, by reason (scraped: seen on the new collector; window: the maximum passed)",
            m.handovers_closed.clone(),
        );
        registry.register(
            "load_observations",
            "Observed series counts taken in, by result (matched: a listed target; unknown: ignored)",
            m.load_observations.clone(),
        );
        registry.register(
            "weight_changes",
            "Target weights changed by observed load (after quantization and hysteresis)",
            m.weight_changes.clone(),
        );
        registry.register(
            "load_pulls_failed",
            "Pulls of observed load that failed (weights stay as they were)",
            m.load_pulls_failed.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Time to build the target list, in all and per job.
    pub fn processed(&self, total: f64, per_job: &std::collections::BTreeMap<String, f64>) {
        self.process_targets.observe(total);
        for (job, secs) in per_job {
            self.process_groups
                .get_or_create(&vec![("job_name".into(), job.clone())])
                .observe(*secs);
        }
    }

    /// `targets{job_name}` for exactly these jobs (jobs that went away are dropped).
    pub fn set_discovered(&self, per_job: &std::collections::BTreeMap<String, usize>) {
        self.targets.clear();
        for (job, n) in per_job {
            self.targets
                .get_or_create(&vec![("job_name".into(), job.clone())])
                .set(*n as i64);
        }
    }

    pub fn time_to_allocate(&self, method: &str, strategy: &str) -> Histogram {
        self.time_to_allocate
            .get_or_create(&vec![
                ("method".into(), method.into()),
                ("strategy".into(), strategy.into()),
            ])
            .clone()
    }

    pub fn http(&self, path: &str) -> Histogram {
        self.http
            .get_or_create(&vec![("path".into(), path.into())])
            .clone()
    }

    pub fn events(&self, source: &str) -> Counter {
        self.events
            .get_or_create(&vec![("source".into(), source.into())])
            .clone()
    }

    /// `moves_total{kind}` follows the allocator's running total (a counter: it only grows).
    pub fn set_moves(&self, kind: &str, total: u64) {
        let c = self
            .moves
            .get_or_create(&vec![("kind".into(), kind.into())])
            .clone();
        c.inc_by(total.saturating_sub(c.get()));
    }

    /// The movement budget's queue and running totals.
    pub fn set_budget(&self, queued: usize, totals: crate::budget::Totals) {
        self.moves_queued.set(queued as i64);
        self.moves_deferred
            .inc_by(totals.deferred.saturating_sub(self.moves_deferred.get()));
        self.moves_released
            .inc_by(totals.released.saturating_sub(self.moves_released.get()));
        self.moves_dropped
            .inc_by(totals.dropped.saturating_sub(self.moves_dropped.get()));
    }

    /// The hand-over windows open now and closed since start.
    pub fn set_handover(&self, open: usize, closed: crate::handover::Closed) {
        self.handovers_open.set(open as i64);
        for (reason, total) in [
            ("scraped", closed.scraped),
            ("window", closed.window),
            ("collector_left", closed.collector_left),
            ("moved", closed.moved),
            ("cleared", closed.cleared),
        ] {
            let c = self
                .handovers_closed
                .get_or_create(&vec![("reason".into(), reason.into())])
                .clone();
            c.inc_by(total.saturating_sub(c.get()));
        }
    }

    /// Observed-load totals.
    pub fn set_loads(&self, t: crate::loads::Totals) {
        for (result, total) in [("matched", t.matched), ("unknown", t.unknown)] {
            let c = self
                .load_observations
                .get_or_create(&vec![("result".into(), result.into())])
                .clone();
            c.inc_by(total.saturating_sub(c.get()));
        }
        self.weight_changes
            .inc_by(t.weight_changes.saturating_sub(self.weight_changes.get()));
    }

    pub fn load_pull_failed(&self) {
        self.load_pulls_failed.inc();
    }

    /// `targets_remaining`: targets kept by relabeling, duplicates included, as handed to the
    /// allocator.
    pub fn set_remaining(&self, n: usize) {
        self.remaining.set(n as i64);
    }

    /// Gauges that describe a published view.
    pub fn publish(&self, v: &View) {
        self.per_collector.clear();
        for (name, n) in &v.collectors {
            self.per_collector
                .get_or_create(&vec![
                    ("collector_name".into(), name.clone()),
                    ("strategy".into(), v.strategy.clone()),
                ])
                .set(*n as i64);
        }
        self.unassigned.set(v.unassigned as i64);
        self.allocatable
            .get_or_create(&vec![("strategy".into(), v.strategy.clone())])
            .set(v.collectors.len() as i64);
        self.discovered.set(v.collectors.len() as i64);
        let total: usize = v.collectors.iter().map(|c| c.1).sum();
        let max = v.collectors.iter().map(|c| c.1).max().unwrap_or(0);
        let mean = total as f64 / v.collectors.len().max(1) as f64;
        self.max_over_mean
            .set(if mean > 0.0 { max as f64 / mean } else { 0.0 });
        self.digest.clear();
        self.digest
            .get_or_create(&vec![
                ("digest".into(), format!("{:016x}", v.digest)),
                ("strategy".into(), v.strategy.clone()),
            ])
            .set(1);
    }

    /// The registry in the Prometheus text format 0.0.4.
    /// For metrics registered by other parts of the service (replication).
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        openmetrics_to_text(&out)
    }
}

/// A bucket bound as Go's client writes it (`strconv.FormatFloat(f, 'g', -1, 64)`): `5`, not
/// `5.0`.
fn go_le(line: &str) -> String {
    let Some(start) = line.find("le=\"") else {
        return line.to_owned();
    };
    let rest = &line[start + 4..];
    let Some(end) = rest.find('"') else {
        return line.to_owned();
    };
    let bound = &rest[..end];
    match bound.parse::<f64>() {
        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e6 => {
            format!("{}le=\"{}\"{}", &line[..start], f as i64, &rest[end + 1..])
        }
        _ => line.to_owned(),
    }
}

/// Rewrite OpenMetrics (what `prometheus-client` writes) as text format 0.0.4: a counter family
/// is named with its `_total` suffix in `# HELP`/`# TYPE`, and `# UNIT` and `# EOF` go.
fn openmetrics_to_text(om: &str) -> String {
    let mut counters = std::collections::HashSet::new();
    for line in om.lines() {
        if let Some(name) = line
            .strip_prefix("# TYPE ")
            .and_then(|r| r.strip_suffix(" counter"))
        {
            counters.insert(name.to_owned());
        }
    }
    let mut out = String::with_capacity(om.len());
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let meta = ["# HELP ", "# TYPE "]
            .iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (*p, rest)));
        match meta {
            Some((prefix, rest)) => {
                let (name, mut tail) = rest.split_once(' ').unwrap_or((rest, ""));
                if prefix == "# HELP " {
                    // prometheus-client ends every help text with a period of its own.
                    tail = tail.strip_suffix('.').unwrap_or(tail);
                }
                let suffix = if counters.contains(name) {
                    "_total"
                } else {
                    ""
                };
                out.push_str(&format!("{prefix}{name}{suffix} {tail}"));
            }
            None => out.push_str(&go_le(line)),
        }
        out.push('\n');
    }
    out
}
