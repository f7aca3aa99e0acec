//! The allocation loop's output: an immutable view that request handlers read (an `Arc` swapped
//! under a lock held only for the swap, so handlers never wait for an allocation).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use allocator_core::{Allocator, CollectorSpec, Diff, Move, MoveKind, TargetSpec};
use parking_lot::{Mutex, RwLock};
use serde_json::{json, Map, Value};

use crate::answer::{Answer, Warmer};
use crate::config::Loaded;
use crate::discovery::{Changes, Files, Target};
use crate::k8s::Cluster;
use crate::metrics::Metrics;
use crate::publish::{Published, Publisher};
use crate::relabel::RuleSpec;

/// What the HTTP API serves.
#[derive(Default)]
pub struct View {
    pub ready: bool,
    pub strategy: String,
    pub scrape_configs: Map<String, Value>,
    /// Targets per job (how many the allocator holds).
    pub jobs: crate::publish::Jobs,
    /// The first targets (job, address) of each collector, as many as the dashboard lists
    /// (see [`listed_per_collector`]).
    pub first: crate::publish::First,
    /// Every collector with its target count, sorted by name.
    pub collectors: Vec<(String, usize)>,
    pub unassigned: usize,
    pub moves_total: u64,
    /// The core's digest of the assignment (target key → collector name) this view serves.
    pub digest: u64,
    /// The HTTP SD answer of every (job, collector) with targets, serialized once per view so
    /// that a poll costs a map lookup and a reference-count increment.
    pub sd: HashMap<(String, String), Arc<Answer>>,
    /// Per job, the fragments of its targets without a collector (served to no collector; the
    /// debug pages list them, as the Go allocator does).
    pub unassigned_targets: crate::publish::Unassigned,
    /// The larger answers, serialized once per view on first request.
    pub answers: crate::http::Answers,
}

impl View {
    /// `[{"targets": [...], "labels": {...}}, ...]` of one job's targets on one collector.
    pub fn sd_of(&self, job: &str, collector: &str) -> Arc<Answer> {
        // Tuple keys of owned strings: build the probe key (allocates two small strings).
        self.sd
            .get(&(job.to_owned(), collector.to_owned()))
            .cloned()
            .unwrap_or_else(Answer::empty)
    }
}

pub struct Shared {
    pub view: RwLock<Arc<View>>,
    pub metrics: Metrics,
    /// `allow_insecure_auth_secrets`: show secrets over plain HTTP too.
    pub allow_insecure_secrets: bool,
    /// What the allocation loop last found wrong with its inputs, and when it last finished a
    /// refresh: `/readyz` answers 503 while either says the published view cannot be trusted.
    pub health: Mutex<Health>,
    /// `/explain` requests waiting for the allocation loop.
    pub explain: crate::explain::Queue,
    /// Observed loads (pushed or pulled) waiting for the allocation loop.
    pub loads: crate::loads::Inbox,
}

/// The allocation loop's own account of its inputs.
pub struct Health {
    /// Problems that make the published view wrong or stale (empty when all is well).
    pub problems: Vec<String>,
    /// When the loop last finished a refresh.
    pub heartbeat: Instant,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            problems: Vec::new(),
            heartbeat: Instant::now(),
        }
    }
}

/// The allocation loop counts as stalled when a refresh has not finished for this long.
pub const LOOP_STALL: std::time::Duration = std::time::Duration::from_secs(60);

impl Shared {
    pub fn new(allow_insecure_secrets: bool) -> Shared {
        Shared {
            view: RwLock::new(Arc::new(View::default())),
            metrics: Metrics::new(),
            allow_insecure_secrets,
            health: Mutex::new(Health::default()),
            explain: Default::default(),
            loads: Default::default(),
        }
    }

    pub fn view(&self) -> Arc<View> {
        self.view.read().clone()
    }

    /// Why `/readyz` must answer 503, or `None` when ready.
    pub fn not_ready(&self) -> Option<String> {
        let h = self.health.lock();
        let mut why = Vec::new();
        if !self.view().ready {
            why.push("scrape configs not computed yet".to_owned());
        }
        why.extend(h.problems.iter().cloned());
        let since = h.heartbeat.elapsed();
        if since > LOOP_STALL {
            why.push(format!(
                "the allocation loop has not finished a refresh for {} s",
                since.as_secs()
            ));
        }
        (!why.is_empty()).then(|| why.join("; "))
    }
}

/// How many targets the dashboard lists per collector: 2,000 in all, at most 200 each (at a
/// million targets it stays a page; the JSON API has the rest).
pub fn listed_per_collector(collectors: usize) -> usize {
    (2_000 / collectors.max(1)).clamp(1, 200)
}

/// The allocation state owned by the loop.
pub struct Engine {
    cfg: Loaded,
    files: Files,
    alloc: Allocator,
    first: bool,
    cluster: Option<Arc<Cluster>>,
    /// What the last published view was built from (Kubernetes discovery).
    last_generation: u64,
    last_collectors: Vec<(String, Option<String>)>,
    /// `/scrape_configs` of the configured jobs: fixed by the configuration, built once.
    configured: Map<String, Value>,
    /// Why the last collector list was refused (the view then keeps the previous collectors and
    /// is not ready).
    collectors_refused: Option<String>,
    /// The Secrets and ConfigMaps (`Secret ns/name`) whose first read by name the jobs of the
    /// operator's resources wait for.
    waiting_reads: Vec<String>,
    /// The jobs of the operator's resources as last computed in full: kept while a read by
    /// name is in flight, so that collectors and other discovery still flow meanwhile.
    generated: Vec<crate::k8s::GeneratedJob>,
    /// The published answers, updated from each diff's moves and the listing's changes.
    publisher: Publisher,
    /// Compresses the answers each publish rebuilt.
    warmer: Warmer,
    /// Reassignments waiting for the movement budget (between the diffs and the publisher).
    budget: crate::budget::Budget,
    /// Reassigned targets served to their old collector too, until the new one scraped them.
    handover: crate::handover::Handover,
    /// Target weights from observed load (`observed_load`), and whether one changed since the
    /// last refresh.
    weights: Option<crate::loads::Weights>,
    weights_changed: bool,
    /// Replication with a leader (see [`crate::replica`]), when configured, and whether this
    /// replica led at the last refresh.
    replica: Option<Arc<crate::replica::Replica>>,
    leading: bool,
    /// The allocator does not hold what discovery holds (a diff was refused, or the allocator
    /// was replaced by a snapshot): the next refresh hands it the full listing.
    core_stale: bool,
}

impl Engine {
    pub fn new(cfg: Loaded, cluster: Option<Arc<Cluster>>) -> Engine {
        Engine::with_files(cfg, cluster, Files::default())
    }

    /// [`Engine::new`] with the given file discovery (where files are read from, when a read
    /// counts as stalled).
    pub(crate) fn with_files(cfg: Loaded, cluster: Option<Arc<Cluster>>, files: Files) -> Engine {
        let alloc = Allocator::new(cfg.core).expect("validated when loaded");
        let configured = scrape_configs(&cfg);
        let budget = crate::budget::Budget::new(cfg.budget);
        Engine {
            budget,
            handover: crate::handover::Handover::new(cfg.handover),
            weights: cfg.loads.as_ref().map(crate::loads::Weights::new),
            weights_changed: false,
            configured,
            cfg,
            files,
            alloc,
            first: true,
            cluster,
            last_generation: u64::MAX,
            last_collectors: Vec::new(),
            collectors_refused: None,
            waiting_reads: Vec::new(),
            generated: Vec::new(),
            publisher: Publisher::default(),
            warmer: Warmer::default(),
            replica: None,
            leading: false,
            core_stale: false,
        }
    }

    /// Follow or lead through `replica`: restore the leader's snapshots, or share this one's.
    pub fn replicated(mut self, replica: Option<Arc<crate::replica::Replica>>) -> Engine {
        self.replica = replica;
        self
    }

    /// Follower: restore the leader's newest snapshot, if one came. True when the view must
    /// be rebuilt: the allocator was replaced, or the replica became leader or follower.
    fn adopt(&mut self) -> bool {
        let Some(r) = &self.replica else { return false };
        let leading = r.is_leader();
        let turned = std::mem::replace(&mut self.leading, leading) != leading;
        // A new role: a new leader applies its discovery in full to what it holds (a follower
        // did not hand its discovery's changes to the allocator).
        self.core_stale |= turned;
        let Some(offer) = r.take_offer() else {
            return turned;
        };
        match r.restore(&offer, &self.cfg.core) {
            Some(a) => {
                self.alloc = a;
                self.publisher.resync();
                self.core_stale = true;
                true
            }
            None => turned,
        }
    }

    /// Replicated and not the leader (the role as of this refresh).
    fn following(&self) -> bool {
        self.replica.is_some() && !self.leading
    }

    /// Leader: share the state as a snapshot when it changed (`changed`) or none is shared.
    fn share(&self, changed: bool) {
        if let Some(r) = self.replica.as_ref().filter(|r| r.wants_snapshot(changed)) {
            r.publish(self.alloc.snapshot());
        }
    }

    /// Publish what is wrong with the inputs now, and that the loop is alive.
    fn report(&mut self, shared: &Shared, collectors_known: bool) {
        let mut problems = self.files.stalls();
        if !collectors_known {
            let why = self
                .cfg
                .file
                .collectors_file
                .as_ref()
                .and_then(|p| self.files.error_of(&self.cfg.resolve(p)))
                .unwrap_or_else(|| "not read yet".into());
            problems.push(format!(
                "the collectors file has not been read successfully: {why}"
            ));
        }
        if let Some(e) = &self.collectors_refused {
            problems.push(format!("collector list refused: {e}"));
        }
        problems.extend(self.replica.as_ref().and_then(|r| r.problem()));
        if !self.waiting_reads.is_empty() && !shared.view().ready {
            problems.push(format!(
                "waiting for the first read by name of {} (the role may not list them)",
                self.waiting_reads.join(", ")
            ));
        }
        let mut h = shared.health.lock();
        h.problems = problems;
        h.heartbeat = Instant::now();
    }

    /// Wait for the next refresh: `timeout`, or less when a watched file brought new contents.
    pub fn wait(&self, timeout: std::time::Duration) {
        self.files.wait(timeout);
    }

    /// One refresh: re-read changed files; when anything changed, apply it and publish a view.
    pub fn tick(&mut self, shared: &Shared) {
        let publisher = &self.publisher;
        shared.explain.answer(
            |k| {
                let mut v = crate::explain::to_json(&self.alloc.explain(k)?);
                if let Some(held) = self.budget.explain(k) {
                    v["budget"] = held;
                }
                if let Some(open) = self.handover.explain(k, Instant::now()) {
                    v["handover"] = open;
                }
                Some(v)
            },
            |job, address| publisher.find(job, address),
        );
        self.take_loads(shared);
        let cluster = self.cluster.clone();
        let not_listed = cluster.as_ref().map(|c| c.not_listed()).unwrap_or_default();
        if !not_listed.is_empty() {
            // Not ready (503) until every watch an answer reads has listed once, and not ready
            // again while one of them has not (a resource that starts reading the nodes when
            // they cannot be listed): the view would be stale or miss labels.
            self.report(shared, true);
            shared.health.lock().problems.push(format!(
                "waiting for a complete list of {} from the Kubernetes API (see the watch errors in the log)",
                not_listed.join(", ")
            ));
            return;
        }
        // Cheap checks first: a stat per watched file, the caches' change counter, and the
        // collector set (which also changes with time, as grace periods expire).
        let files_changed = self.files.poll(&self.cfg);
        let stalls = !self.files.stalls().is_empty();
        if self.first && !self.files.first_reads_done() && !stalls {
            // Not ready until every watched file has been tried once (or its read stalled): a
            // view without them would serve missing targets as ready.
            self.report(shared, true);
            return;
        }
        let generation = cluster.as_ref().map_or(0, |c| c.generation());
        if self.adopt() {
            // A restored allocator, or a new role: a full refresh rebuilds the view (a new
            // leader applies its discovery to what it restored).
            self.first = true;
        }
        let collectors = match &cluster {
            Some(c) => c.collectors(
                &self.cfg.collector_namespace,
                &self.cfg.collector_selector,
                self.cfg.grace,
            ),
            None => match self.files.collectors(&self.cfg) {
                Some(c) => c,
                None => {
                    // The collectors file was never read: nothing to allocate to yet.
                    self.report(shared, false);
                    return;
                }
            },
        };
        let now = Instant::now();
        if !self.first
            && !files_changed
            && generation == self.last_generation
            && collectors == self.last_collectors
            && !self.budget.due(now)
            && !self.handover.due(now)
            && !self.weights_changed
        {
            self.share(false);
            self.report(shared, true);
            return;
        }
        let processing = Instant::now();
        match cluster.as_ref().map(|c| c.monitor_jobs(&self.cfg)) {
            None => self.generated.clear(),
            Some(Ok(jobs)) => {
                self.waiting_reads.clear();
                self.generated = jobs;
            }
            Some(Err(waiting)) => {
                // A resource names a Secret or ConfigMap whose first read by name is in flight
                // (bounded by its timeout; the answer bumps the generation). Before the first
                // view: not ready, naming what is waited for. After it, the resources' jobs
                // as last computed stay (the Go allocator serves its last configuration while
                // its GET is in flight), and collectors and other discovery still flow.
                self.waiting_reads = waiting;
                if self.first {
                    self.report(shared, true);
                    return;
                }
            }
        }
        self.first = false;
        self.last_generation = generation;
        self.last_collectors = collectors.clone();
        let own_namespace = &self.cfg.collector_namespace;
        self.files.refresh(&self.cfg, |sc| match &cluster {
            Some(c) => sc
                .kubernetes_sd_configs
                .iter()
                .flat_map(|sd| c.sd_groups(sd, own_namespace))
                .collect(),
            None => Vec::new(),
        });
        let current = self.files.current();
        for job in &self.generated {
            let spec = crate::discovery::JobSpec {
                name: &job.name,
                scrape_interval: &job.interval,
                scrape_timeout: &job.timeout,
                metrics_path: &job.path,
                scheme: &job.scheme,
                params: &job.params,
                rules: &job.rules,
            };
            let items: Vec<_> = job
                .groups
                .iter()
                .map(crate::discovery::discovered)
                .collect();
            current.set_items(&format!("monitor\0{}", job.name), &spec, &items);
        }
        let changes = current.finish();
        let collected = processing.elapsed().as_secs_f64();
        let m = &shared.metrics;
        m.processed(collected, current.seconds());
        m.set_remaining(current.kept());
        m.events(if cluster.is_some() {
            "kubernetes"
        } else {
            "file"
        })
        .inc();
        m.set_discovered(&current.discovered());
        let names: Vec<CollectorSpec<'_>> = collectors
            .iter()
            .map(|(n, node)| match node {
                Some(node) => CollectorSpec::on_node(n, node),
                None => CollectorSpec::new(n),
            })
            .collect();
        // The publisher learns what the targets are before the diffs' moves place them.
        for t in &changes.upserted {
            self.publisher.upsert(t);
        }
        if let Some(w) = &mut self.weights {
            w.update(&changes.removed, &changes.replaced, &changes.upserted);
        }
        // The budget's interval first: every diff of this refresh (zones too) draws on it.
        self.budget.refill(now, &self.alloc);
        if self.following() {
            // A follower serves the restored assignment of the leader and decides nothing: the
            // targets it discovered that the leader has not placed yet are not served until
            // the leader's next snapshot places them.
            self.publisher.resync();
            // Weights reach the allocator in full if this replica leads (a new role).
            if let Some(w) = &mut self.weights {
                w.take_changed();
            }
            self.weights_changed = false;
        } else {
            // Zones first, so new targets and collectors are placed knowing them.
            if let (Some(label), Some(c)) = (&self.cfg.zone_label, &cluster) {
                let table = c.node_zones(label);
                let pairs: Vec<(&str, &str)> = table
                    .iter()
                    .map(|(n, z)| (n.as_str(), z.as_str()))
                    .collect();
                let start = Instant::now();
                match self.alloc.set_node_zones(&pairs) {
                    Ok(moves) => {
                        let moves = moves.to_vec();
                        let moved = self.absorb(&moves, m, "SetNodeZones", start);
                        if moved > 0 {
                            tracing::info!(nodes = pairs.len(), moved, "node zones applied");
                        }
                    }
                    // Node names from the API server are unique and non-empty; keep the last table.
                    Err(e) => tracing::error!(error = %e, "node zone table refused"),
                }
            }
            let start = Instant::now();
            match self.alloc.set_collectors(&names) {
                Ok(moves) => {
                    let moves = moves.to_vec();
                    let moved = self.absorb(&moves, m, "SetCollectors", start);
                    tracing::info!(collectors = names.len(), moved, "collectors applied");
                    self.collectors_refused = None;
                }
                Err(e) => {
                    tracing::error!(error = %e, collectors = names.len(), "collector list refused; keeping the previous collectors, not ready");
                    self.collectors_refused = Some(e.to_string());
                }
            }
            // Observations that came before the first listing can be matched now.
            self.take_loads(shared);
            self.apply_targets(&changes, m);
        }
        for t in &changes.removed {
            self.publisher.remove(t.key);
        }
        let mut released = Vec::new();
        self.budget.release(&self.alloc, &mut released);
        if !released.is_empty() {
            self.hand(&released);
            tracing::info!(
                released = released.len(),
                queued = self.budget.queued(),
                "movement budget released queued moves"
            );
        }
        self.handover
            .expire(&self.alloc, Instant::now(), &mut self.publisher);
        m.set_budget(self.budget.queued(), self.budget.totals());
        m.set_handover(self.handover.open(), self.handover.closed());
        let totals = self.alloc.move_totals();
        m.set_moves("assigned", totals.assigned);
        m.set_moves("unassigned", totals.unassigned);
        m.set_moves("reassigned", totals.reassigned);
        let applied = processing.elapsed().as_secs_f64();
        let (mut view, rebuilt) = self.view();
        let built = processing.elapsed().as_secs_f64();
        for job in &self.generated {
            let mut config = job_config(&JobConfig {
                name: &job.name,
                interval: &job.interval,
                timeout: &job.timeout,
                path: &job.path,
                scheme: &job.scheme,
                params: &job.params,
                relabel: &job.rule_specs,
                metric_relabel: &[],
            });
            if let Value::Object(m) = &mut config {
                m.extend(job.settings.clone());
                complete_or_warn(&job.name, m, &self.cfg.generated_global);
            }
            view.scrape_configs.insert(job.name.clone(), config);
        }
        m.publish(&view);
        *shared.view.write() = Arc::new(view);
        let (heap_used, heap_free) = crate::publish::heap();
        tracing::info!(
            seconds = processing.elapsed().as_secs_f64(),
            collected,
            applied,
            built,
            rebuilt = rebuilt.len(),
            heap_used,
            heap_free,
            "view published"
        );
        // After the swap: the plain answers are served while their gzip forms are made.
        self.warmer.warm(rebuilt);
        self.share(true);
        self.report(shared, true);
    }

    /// Hand discovery's changes and the targets whose observed weight changed to the allocator
    /// as one diff (or the full listing, when the allocator does not hold what discovery holds).
    fn apply_targets(&mut self, changes: &Changes, m: &Metrics) {
        // Targets whose observed weight changed (and that this refresh does not upsert or
        // remove anyway) are upserted with their new weight.
        let reweighted: Vec<Target> = match &mut self.weights {
            Some(w) if std::mem::take(&mut self.weights_changed) => {
                let changed = w.take_changed();
                let listed: std::collections::HashSet<allocator_core::TargetKey> = changes
                    .upserted
                    .iter()
                    .chain(&changes.removed)
                    .map(|t| t.key)
                    .collect();
                let current = self.files.current();
                changed
                    .into_iter()
                    .filter(|(_, k)| !listed.contains(k))
                    .filter_map(|(job, k)| current.target(&job, k))
                    .collect()
            }
            _ => Vec::new(),
        };
        let weights = self.weights.as_ref();
        let spec_of = |t| weighted(t, weights);
        let full = self.core_stale;
        let start = Instant::now();
        let result = if full {
            None
        } else if changes.is_empty() && reweighted.is_empty() {
            Some(Ok(Vec::new()))
        } else {
            let diff = Diff {
                upsert: changes
                    .upserted
                    .iter()
                    .chain(&reweighted)
                    .map(spec_of)
                    .collect(),
                remove: changes.removed.iter().map(|t| t.key).collect(),
                ..Diff::default()
            };
            Some(self.alloc.apply(&diff).map(<[Move]>::to_vec))
        };
        // Timed as `SetTargets` either way: the Go allocator's name for handing it targets.
        let (full, result) = match result {
            Some(Ok(moves)) => (false, Ok(moves)),
            refused => {
                if let Some(Err(e)) = refused {
                    tracing::warn!(error = %e, "target diff refused; handing over the full listing");
                }
                // The full listing: what discovery holds now, compared in full by the core.
                let listing = self.files.current().listing();
                let specs: Vec<TargetSpec<'_>> = listing.iter().map(spec_of).collect();
                let r = self.alloc.set_targets(&specs).map(<[Move]>::to_vec);
                (true, r)
            }
        };
        match result {
            Ok(moves) => {
                self.core_stale = false;
                let moved = self.absorb(&moves, m, "SetTargets", start);
                tracing::info!(
                    targets = self.files.current().len(),
                    removed = changes.removed.len(),
                    upserted = changes.upserted.len(),
                    changes = moves.len(),
                    moved,
                    full,
                    "targets applied"
                );
            }
            Err(e) => {
                self.core_stale = true;
                self.publisher.resync();
                // The publisher reads every owner from the allocator: nothing stays queued.
                self.budget.clear();
                self.handover.clear(&mut self.publisher);
                tracing::warn!(error = %e, "target list refused; keeping the previous targets")
            }
        }
    }

    /// Hand one diff's moves to the publisher and time the call that made them (`method` as the
    /// Go allocator names it); returns how many targets changed hands.
    fn absorb(&mut self, moves: &[Move], m: &Metrics, method: &str, start: Instant) -> usize {
        // The moves the movement budget lets through now; it queues the others.
        let mut now = Vec::with_capacity(moves.len());
        self.budget.filter(moves, &self.alloc, &mut now);
        self.hand(&now);
        m.time_to_allocate(method, self.cfg.core.strategy.name())
            .observe(start.elapsed().as_secs_f64());
        moves
            .iter()
            .filter(|mv| mv.kind() == MoveKind::Reassigned)
            .count()
    }

    /// Match waiting load observations to the last listing's targets (kept waiting until there
    /// is one): weights through their hysteresis, and sightings for the hand-over windows.
    fn take_loads(&mut self, shared: &Shared) {
        let Some(w) = &mut self.weights else { return };
        if !w.indexed() || shared.loads.is_empty() {
            return;
        }
        let handover = &mut self.handover;
        for batch in shared.loads.take() {
            self.weights_changed |= w.observe(batch, |k, c| handover.observed(k, c));
        }
        shared.metrics.set_loads(w.totals());
    }

    /// Hand moves to the publisher (and open or close their hand-over windows).
    fn hand(&mut self, moves: &[Move]) {
        self.publisher.moved(moves, &self.alloc);
        self.handover
            .moved(moves, &self.alloc, Instant::now(), &mut self.publisher);
    }

    /// The view of what the publisher was handed, and the answers its publish rebuilt.
    fn view(&mut self) -> (View, Vec<Arc<Answer>>) {
        let a = &self.alloc;
        let Published {
            jobs,
            sd,
            unassigned: unassigned_targets,
            rebuilt,
        } = self.publisher.publish(a);
        let mut collectors: Vec<(String, usize)> = a
            .collectors()
            .map(|c| {
                (
                    a.collector_name(c.id).unwrap_or_default().to_owned(),
                    c.targets as usize,
                )
            })
            .collect();
        // Counted where targets are served: a queued move still counts for its old collector.
        if self.budget.queued() > 0 {
            let index: HashMap<String, usize> = collectors
                .iter()
                .enumerate()
                .map(|(i, (name, _))| (name.clone(), i))
                .collect();
            for (key, served) in self.budget.held() {
                let core = a.collector_of(key).and_then(|c| a.collector_name(c));
                if let (Some(&from), Some(&to)) =
                    (core.and_then(|c| index.get(c)), index.get(served))
                {
                    collectors[from].1 -= 1;
                    collectors[to].1 += 1;
                }
            }
        }
        let listed = listed_per_collector(collectors.len());
        let names: Vec<String> = collectors.iter().map(|(c, _)| c.clone()).collect();
        let first = self.publisher.first(&names, listed);
        let view = View {
            first,
            sd,
            unassigned_targets,
            answers: Default::default(),
            ready: true,
            strategy: self.cfg.core.strategy.name().to_owned(),
            scrape_configs: self.configured.clone(),
            jobs,
            collectors,
            unassigned: a.summary().unassigned,
            moves_total: a.move_totals().reassigned,
            digest: self.budget.served_digest(a),
        };
        (view, rebuilt)
    }
}

fn weighted<'t>(t: &'t Target, weights: Option<&crate::loads::Weights>) -> TargetSpec<'t> {
    spec(t).with_weight(weights.map_or(1, |w| w.weight(t.key)))
}

fn spec(t: &Target) -> TargetSpec<'_> {
    TargetSpec::new(
        t.key,
        allocator_core::PlacementHash::of_address(&t.address),
        &t.job,
    )
    .with_node(allocator_core::node_of(t.labels().iter()))
}

/// What `/scrape_configs` shows of one job.
pub struct JobConfig<'a> {
    pub name: &'a str,
    pub interval: &'a str,
    pub timeout: &'a str,
    pub path: &'a str,
    pub scheme: &'a str,
    pub params: &'a BTreeMap<String, Vec<String>>,
    pub relabel: &'a [RuleSpec],
    pub metric_relabel: &'a [RuleSpec],
}

/// Relabel rules as Prometheus marshals them: `action` lower-cased, `separator` (`;`) and
/// `replacement` (`$1`) always written, `regex` only when the configuration set it, and removed
/// from keepequal/dropequal (the collector cannot parse it otherwise).
pub fn rules_json(rules: &[RuleSpec]) -> Value {
    Value::Array(
        rules
            .iter()
            .map(|r| {
                let mut r = r.clone();
                let action = r
                    .action
                    .clone()
                    .unwrap_or_else(|| "replace".into())
                    .to_ascii_lowercase();
                if action == "keepequal" || action == "dropequal" {
                    r.regex = None;
                }
                r.separator.get_or_insert_with(|| ";".into());
                r.replacement.get_or_insert_with(|| "$1".into());
                r.action = Some(action);
                serde_json::to_value(r).expect("plain data")
            })
            .collect(),
    )
}

/// One job's scrape config as JSON with Prometheus' defaults filled in.
pub fn job_config(j: &JobConfig<'_>) -> Value {
    let mut m = Map::new();
    m.insert("job_name".into(), json!(j.name));
    m.insert("honor_timestamps".into(), json!(true));
    m.insert("scrape_interval".into(), json!(j.interval));
    m.insert("scrape_timeout".into(), json!(j.timeout));
    m.insert("metrics_path".into(), json!(j.path));
    m.insert("scheme".into(), json!(j.scheme));
    m.insert("enable_http2".into(), json!(true));
    m.insert("follow_redirects".into(), json!(true));
    if !j.params.is_empty() {
        m.insert("params".into(), json!(j.params));
    }
    // Empty rule lists are left out, as Prometheus' `omitempty` does.
    if !j.relabel.is_empty() {
        m.insert("relabel_configs".into(), rules_json(j.relabel));
    }
    if !j.metric_relabel.is_empty() {
        m.insert(
            "metric_relabel_configs".into(),
            rules_json(j.metric_relabel),
        );
    }
    Value::Object(m)
}

/// What prometheus/common's `HTTPClientConfig.Validate` does to the authorization fields: a
/// `bearer_token` (or `bearer_token_file`) becomes `authorization` of type `Bearer`, and an
/// `authorization` without a type is of type `Bearer`.
fn bearer_to_authorization(m: &mut Map<String, Value>) {
    let token = m.remove("bearer_token");
    let file = m.remove("bearer_token_file");
    if !m.contains_key("authorization") {
        if let Some(t) = token.filter(|t| t.as_str().is_some_and(|t| !t.is_empty())) {
            m.insert(
                "authorization".into(),
                json!({"type": "Bearer", "credentials": t}),
            );
        } else if let Some(f) = file.filter(|f| f.as_str().is_some_and(|f| !f.is_empty())) {
            m.insert(
                "authorization".into(),
                json!({"type": "Bearer", "credentials_file": f}),
            );
        }
    }
    if let Some(a) = m.get_mut("authorization").and_then(Value::as_object_mut) {
        if a.get("type")
            .and_then(Value::as_str)
            .unwrap_or("")
            .is_empty()
        {
            a.insert("type".into(), json!("Bearer"));
        }
    }
}

/// Complete a job's scrape config as Prometheus' loader does (checked when the configuration
/// was loaded; a generated job the loader refuses is served as it is, and said).
fn complete_or_warn(job: &str, m: &mut Map<String, Value>, global: &crate::config::Global) {
    if let Err(e) = crate::scrape_defaults::complete(m, global) {
        tracing::warn!(job, error = %e, "scrape config served without Prometheus' defaults");
    }
}

/// Job name → scrape config of every configured scrape config.
pub fn scrape_configs(cfg: &Loaded) -> Map<String, Value> {
    let global = &cfg.file.config.global;
    let mut out = Map::new();
    for sc in &cfg.file.config.scrape_configs {
        let mut v = job_config(&JobConfig {
            name: &sc.job_name,
            interval: sc
                .scrape_interval
                .as_deref()
                .unwrap_or(&global.scrape_interval),
            timeout: sc
                .scrape_timeout
                .as_deref()
                .unwrap_or(&global.scrape_timeout),
            path: sc.metrics_path.as_deref().unwrap_or("/metrics"),
            scheme: sc.scheme.as_deref().unwrap_or("http"),
            params: &sc.params,
            relabel: &sc.relabel_configs,
            metric_relabel: &sc.metric_relabel_configs,
        });
        let m = v.as_object_mut().expect("an object");
        if !sc.kubernetes_sd_configs.is_empty() {
            m.insert(
                "kubernetes_sd_configs".into(),
                json!(sc.kubernetes_sd_configs),
            );
        }
        // The discovery configs, as the Go allocator serves them (the receiver replaces them
        // with its HTTP SD config).
        if !sc.static_configs.is_empty() {
            let groups: Vec<Value> = sc
                .static_configs
                .iter()
                .map(|g| {
                    let mut o = Map::new();
                    o.insert("targets".into(), json!(g.targets));
                    if !g.labels.is_empty() {
                        o.insert("labels".into(), json!(g.labels));
                    }
                    Value::Object(o)
                })
                .collect();
            m.insert("static_configs".into(), Value::Array(groups));
        }
        if !sc.file_sd_configs.is_empty() {
            let files: Vec<Value> = sc
                .file_sd_configs
                .iter()
                .map(|f| {
                    json!({
                        "files": f.files,
                        "refresh_interval": f.refresh_interval.as_deref().map_or_else(
                            || "5m".to_owned(),
                            |r| crate::config::prom_duration_ms(r)
                                .map_or_else(|_| r.to_owned(), crate::config::format_duration_ms),
                        ),
                    })
                })
                .collect();
            m.insert("file_sd_configs".into(), Value::Array(files));
        }
        for (k, x) in &sc.rest {
            if let Ok(x) = serde_json::to_value(x) {
                m.insert(k.clone(), x);
            }
        }
        bearer_to_authorization(m);
        complete_or_warn(&sc.job_name, m, global);
        out.insert(sc.job_name.clone(), v);
    }
    out
}

#[cfg(test)]
mod diff_tests;
#[cfg(test)]
mod readiness_tests;
