//! Realistic workloads for the benchmarks and reports: Kubernetes-style discovered label sets
//! (5–12 labels), jobs, nodes and heavy-tailed weights, from a fixed-seed generator so every run
//! measures the same input.

pub mod c_abi;

use allocator_core::{
    Allocator, BatchDiff, CollectorSpec, Config, Diff, HashedSets, KeyHasher, LabelSets, TargetSpec,
};

/// xorshift64*: small, fast and reproducible; quality is ample for workload shapes.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (any value).
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.unit().max(f64::MIN_POSITIVE);
        let u2 = self.unit();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Discovered targets, stored the way discovery hands them over in bulk: every label set as
/// contiguous text (like Prometheus' `stringlabels` build, or the flat arrays of the C ABI), so
/// benchmarks measure hashing rather than pointer chasing through millions of small strings.
#[derive(Clone, Debug, Default)]
pub struct Workload {
    text: String,
    /// Per label: name start, name end (= value start); a label's value ends where the next
    /// label's name starts.
    bounds: Vec<(u32, u32)>,
    /// Per target: first label, label count, job index in [`JOBS`], weight.
    targets: Vec<(u32, u8, u8, u32)>,
}

impl Workload {
    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    fn push(&mut self, job: usize, labels: &[(&str, &str)], weight: u32) {
        let first = self.bounds.len() as u32;
        for (n, v) in labels {
            let start = self.text.len() as u32;
            self.text.push_str(n);
            self.bounds.push((start, self.text.len() as u32));
            self.text.push_str(v);
        }
        self.targets
            .push((first, labels.len() as u8, job as u8, weight));
    }

    /// The labels of target `i`, in discovery order.
    pub fn labels(&self, i: usize) -> impl Iterator<Item = (&str, &str)> + Clone + '_ {
        let (first, n, _, _) = self.targets[i];
        let range = first as usize..first as usize + n as usize;
        range.map(move |l| {
            let (ns, vs) = self.bounds[l];
            let ve = self
                .bounds
                .get(l + 1)
                .map_or(self.text.len() as u32, |b| b.0);
            (
                &self.text[ns as usize..vs as usize],
                &self.text[vs as usize..ve as usize],
            )
        })
    }

    /// The job of target `i`.
    pub fn job(&self, i: usize) -> &'static str {
        JOBS[self.targets[i].2 as usize]
    }

    /// The weight (series count) of target `i`.
    pub fn weight(&self, i: usize) -> u32 {
        self.targets[i].3
    }

    /// Bytes of label text (names and values), for bytes/s figures.
    pub fn label_bytes(&self) -> u64 {
        self.text.len() as u64
    }
}

const NAMESPACES: [&str; 8] = [
    "default",
    "kube-system",
    "monitoring",
    "payments",
    "checkout",
    "search",
    "ml-platform",
    "ingress",
];
const APPS: [&str; 10] = [
    "api-gateway",
    "checkout",
    "frontend",
    "orders",
    "inventory",
    "redis",
    "postgres",
    "kafka",
    "recommendation",
    "search-indexer",
];
const EXTRA: [(&str, &str); 7] = [
    (
        "__meta_kubernetes_pod_label_app_kubernetes_io_version",
        "v1.42.3",
    ),
    ("__meta_kubernetes_pod_label_pod_template_hash", "7d9f8b6c5"),
    ("__meta_kubernetes_pod_container_name", "server"),
    ("__meta_kubernetes_pod_container_port_name", "metrics"),
    ("__meta_kubernetes_pod_ready", "true"),
    ("__metrics_path__", "/metrics"),
    ("__scheme__", "http"),
];

/// Jobs in the workload; the last one has a few very heavy targets (kube-state-metrics).
pub const JOBS: [&str; 6] = [
    "kubernetes-pods",
    "kubernetes-service-endpoints",
    "node-exporter",
    "cadvisor",
    "kubelet",
    "kube-state-metrics",
];

/// `n` targets with 5–12 labels each, over `nodes` nodes. Weights are log-normal series counts
/// (median ~500), and every 20,000th target is a kube-state-metrics-like giant (200k series).
pub fn targets(n: usize, nodes: usize, seed: u64) -> Workload {
    let mut rng = Rng::new(seed);
    let mut w = Workload::default();
    for i in 0..n {
        let heavy = i % 20_000 == 19_999;
        let job = if heavy { 5 } else { rng.below(5) as usize };
        let ns = NAMESPACES[rng.below(NAMESPACES.len() as u64) as usize];
        let app = APPS[rng.below(APPS.len() as u64) as usize];
        let node = rng.below(nodes.max(1) as u64);
        let address = format!(
            "10.{}.{}.{}:{}",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255,
            8080 + rng.below(3)
        );
        let pod = format!(
            "{app}-{:08x}-{:05x}",
            rng.next_u64() as u32,
            rng.below(1 << 20)
        );
        let node_name = format!("ip-10-0-{}-{}.ec2.internal", node / 256, node % 256);
        let instance = format!("{app}-{i}");
        let mut labels: Vec<(&str, &str)> = vec![
            ("__address__", &address),
            ("__meta_kubernetes_namespace", ns),
            ("__meta_kubernetes_pod_name", &pod),
            ("__meta_kubernetes_pod_node_name", &node_name),
            ("__meta_kubernetes_pod_label_app", app),
        ];
        let extra = rng.below(8) as usize; // 5..=12 labels
        labels.extend(EXTRA.iter().take(extra).copied());
        if extra == 7 {
            labels.push(("instance", &instance));
        }
        // Discovery order is not always sorted: rotate some so the hasher has to sort.
        if i % 2 == 1 {
            let k = labels.len();
            labels.rotate_left(i % k);
        }
        let weight = if heavy {
            200_000
        } else {
            (500.0 * rng.normal().exp()).clamp(1.0, 50_000.0) as u32
        };
        w.push(job, &labels, weight);
    }
    w
}

/// Collector names as a StatefulSet names its pods, with nodes.
pub fn collector_names(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| {
            (
                format!("otel-collector-{i}"),
                format!("ip-10-0-{}-{}.ec2.internal", i / 256, i % 256),
            )
        })
        .collect()
}

/// Collector specs over names from [`collector_names`].
pub fn collector_specs(names: &[(String, String)]) -> Vec<CollectorSpec<'_>> {
    names
        .iter()
        .map(|(n, node)| CollectorSpec::on_node(n, node))
        .collect()
}

/// Hash every target into a spec (key, placement, node) with its weight.
pub fn specs<'a>(hasher: &mut KeyHasher, w: &'a Workload) -> Vec<TargetSpec<'a>> {
    (0..w.len())
        .map(|i| {
            TargetSpec::from_labels_with(hasher, w.labels(i), w.job(i))
                .expect("generated labels are valid")
                .with_weight(w.weight(i))
        })
        .collect()
}

/// An allocator holding `targets` on the collectors `names` (one diff).
pub fn allocated(
    config: Config,
    names: &[(String, String)],
    targets: &[TargetSpec<'_>],
) -> Allocator {
    let mut alloc = Allocator::new(config).expect("valid config");
    alloc
        .apply(&Diff {
            add_collectors: collector_specs(names),
            upsert: targets.to_vec(),
            ..Diff::default()
        })
        .expect("valid diff");
    alloc
}

/// A workload's label sets in flat columns, as a C, Go or numpy caller hands them over: every
/// label as a (name, value) byte-slice pair, label counts, job indexes into [`JOBS`] and weights
/// per target.
#[derive(Clone, Debug, Default)]
pub struct LabelColumns<'a> {
    /// Every label of every target, target after target.
    pub labels: Vec<(&'a [u8], &'a [u8])>,
    /// Labels per target.
    pub counts: Vec<u32>,
    /// Job of each target, as an index into [`JOBS`].
    pub jobs: Vec<u32>,
    /// Weight of each target.
    pub weights: Vec<u32>,
}

impl<'a> LabelColumns<'a> {
    /// The columns of a workload (borrowing its text).
    pub fn new(w: &'a Workload) -> Self {
        let mut sets = LabelColumns::default();
        for i in 0..w.len() {
            let before = sets.labels.len();
            sets.labels
                .extend(w.labels(i).map(|(n, v)| (n.as_bytes(), v.as_bytes())));
            sets.counts.push((sets.labels.len() - before) as u32);
            sets.jobs.push(u32::from(w.targets[i].2));
            sets.weights.push(w.weight(i));
        }
        sets
    }

    /// The columns as the core's bulk hashing input.
    pub fn as_sets(&self) -> LabelSets<'_> {
        LabelSets {
            labels: &self.labels,
            counts: &self.counts,
            jobs: &self.jobs,
            job_names: &JOBS,
            weights: &self.weights,
        }
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether there are no targets.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// Bytes of label names and values, for bytes/s figures.
    pub fn label_bytes(&self) -> u64 {
        self.labels
            .iter()
            .map(|(n, v)| (n.len() + v.len()) as u64)
            .sum()
    }

    /// The same label sets, each in sorted name order (as Prometheus keeps labels; the
    /// generator hands them over in discovery order, which is never sorted).
    pub fn sorted(&self) -> LabelColumns<'a> {
        let mut out = self.clone();
        let mut start = 0usize;
        for &count in &self.counts {
            out.labels[start..start + count as usize].sort_unstable();
            start += count as usize;
        }
        out
    }
}

/// Hash label sets into batch columns (keys, placements, nodes with a per-batch node table).
pub fn hash_label_sets<'a>(hasher: &mut KeyHasher, sets: &'a LabelColumns<'a>) -> HashedSets<'a> {
    let mut out = HashedSets::default();
    hasher
        .hash_label_sets(&sets.as_sets(), &mut out)
        .expect("generated labels are valid");
    out
}

/// An allocator holding the label sets on the collectors `names`, through the columnar batch
/// input (label hashing included).
pub fn allocated_batch(
    config: Config,
    names: &[(String, String)],
    sets: &LabelColumns<'_>,
) -> Allocator {
    allocated_hashed(config, names, &hash_label_sets(&mut KeyHasher::new(), sets))
}

/// A fresh allocator holding `hashed` on the named collectors: the allocation step of
/// [`allocated_batch`], for label sets hashed another way.
pub fn allocated_hashed(
    config: Config,
    names: &[(String, String)],
    hashed: &HashedSets<'_>,
) -> Allocator {
    let mut alloc = Allocator::new(config).expect("valid config");
    alloc
        .apply_batch(&BatchDiff {
            upsert: hashed.batch(),
            add_collectors: &collector_specs(names),
            ..BatchDiff::default()
        })
        .expect("valid diff");
    alloc
}
