//! Prometheus metrics with the Go allocator's names (prefix `opentelemetry_allocator_`), plus
//! moves and allocation quality.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::state::View;

type Labels = Vec<(String, String)>;

fn histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.0001, 4.0, 10))
}

pub struct Metrics {
    registry: Registry,
    targets: Family<Labels, Gauge>,
    per_collector: Family<Labels, Gauge>,
    unassigned: Gauge,
    allocatable: Family<Labels, Gauge>,
    discovered: Gauge,
    time_to_allocate: Family<Labels, Histogram, fn() -> Histogram>,
    http: Family<Labels, Histogram, fn() -> Histogram>,
    events: Family<Labels, Counter>,
    process_targets: Histogram,
    process_groups: Family<Labels, Histogram, fn() -> Histogram>,
    moves: Family<Labels, Gauge>,
    max_over_mean: Gauge<f64, std::sync::atomic::AtomicU64>,
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
            per_collector: Family::default(),
            unassigned: Gauge::default(),
            allocatable: Family::default(),
            discovered: Gauge::default(),
            time_to_allocate: Family::new_with_constructor(histogram),
            http: Family::new_with_constructor(histogram),
            events: Family::default(),
            process_targets: histogram(),
            process_groups: Family::new_with_constructor(histogram),
            moves: Family::default(),
            max_over_mean: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register(
            "targets",
            "Targets discovered per job, before filtering",
            m.targets.clone(),
        );
        registry.register(
            "targets_per_collector",
            "Targets assigned to each collector",
            m.per_collector.clone(),
        );
        registry.register(
            "targets_unassigned",
            "Targets with no collector",
            m.unassigned.clone(),
        );
        registry.register(
            "collectors_allocatable",
            "Collectors targets can be assigned to",
            m.allocatable.clone(),
        );
        registry.register(
            "collectors_discovered",
            "Collectors discovered",
            m.discovered.clone(),
        );
        registry.register(
            "time_to_allocate",
            "Seconds to apply a target or collector change",
            m.time_to_allocate.clone(),
        );
        registry.register(
            "http_duration_seconds",
            "Seconds to answer a request, per route",
            m.http.clone(),
        );
        registry.register(
            "process_targets_duration_seconds",
            "Seconds to turn discovered groups into the target list",
            m.process_targets.clone(),
        );
        registry.register(
            "process_target_groups_duration_seconds",
            "Seconds to relabel and hash one job's target groups",
            m.process_groups.clone(),
        );
        registry.register("events", "Discovery events applied", m.events.clone());
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

    pub fn moves(&self, kind: &str) -> Gauge {
        self.moves
            .get_or_create(&vec![("kind".into(), kind.into())])
            .clone()
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
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}
