//! `target_allocator._native`: the Python face of allocator-core. The pure-Python package
//! `target_allocator` re-exports it and adds the simulation and plotting helpers.
//!
//! Conventions: heavy calls copy their inputs out of Python objects, then release the GIL while
//! the core works; the `Allocator` class is frozen with an internal read/write lock, so one
//! instance can be shared between threads (and a forked child never waits on a lock a thread
//! of its parent held, see `shared`); errors are subclasses of `AllocatorError` carrying
//! the core's message.

mod args;
mod shared;

use std::collections::HashMap;

use allocator_core::{
    self as core, BatchDiff, BoundedConfig, CollectorSpec, Config, Diff, HashedSets, KeyHasher,
    LabelSets, NameIndex, PlacementHash, RingConfig, RingVersion, Strategy, TargetBatch, TargetKey,
    TargetSpec,
};
use numpy::PyArray1;
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyString};
use shared::{Inherited, Shared};
use target_allocator::ta_result as ResultCode;

create_exception!(
    target_allocator._native,
    AllocatorError,
    PyException,
    "Base class of every error of target_allocator."
);
create_exception!(
    target_allocator._native,
    ConfigError,
    AllocatorError,
    "The configuration is invalid."
);
create_exception!(
    target_allocator._native,
    CollectorError,
    AllocatorError,
    "A collector is unknown, duplicated or has an empty name."
);
create_exception!(
    target_allocator._native,
    TargetError,
    AllocatorError,
    "A target is unknown or both upserted and removed."
);
create_exception!(
    target_allocator._native,
    LabelError,
    AllocatorError,
    "A label set repeats a label or lacks __address__."
);
create_exception!(
    target_allocator._native,
    RingCapacityError,
    AllocatorError,
    "The ring cannot place every partition on these collectors."
);
create_exception!(
    target_allocator._native,
    SnapshotError,
    AllocatorError,
    "Snapshot bytes are truncated, corrupted or of another format."
);

/// A core error as the exception of its result code (the C ABI's one table of codes): the
/// class groups codes, and the instance carries `code` (the value) and `code_name`.
fn err(e: core::Error) -> PyErr {
    let code = ResultCode::of(&e);
    let msg = e.to_string();
    let exc = match code {
        ResultCode::TA_INVALID_CONFIG => ConfigError::new_err(msg),
        ResultCode::TA_EMPTY_COLLECTOR_NAME
        | ResultCode::TA_DUPLICATE_COLLECTOR
        | ResultCode::TA_UNKNOWN_COLLECTOR => CollectorError::new_err(msg),
        ResultCode::TA_UNKNOWN_TARGET | ResultCode::TA_CONFLICTING_TARGET => {
            TargetError::new_err(msg)
        }
        ResultCode::TA_DUPLICATE_LABEL
        | ResultCode::TA_MISSING_ADDRESS
        | ResultCode::TA_INVALID_UTF8 => LabelError::new_err(msg),
        ResultCode::TA_RING_CAPACITY => RingCapacityError::new_err(msg),
        ResultCode::TA_INVALID_SNAPSHOT => SnapshotError::new_err(msg),
        _ => AllocatorError::new_err(msg),
    };
    Python::attach(|py| {
        let value = exc.value(py);
        // Setting attributes on a fresh exception instance cannot fail short of memory.
        let _ = value.setattr("code", code as u32);
        let _ = value.setattr("code_name", code.name());
    });
    exc
}

fn config_err(e: core::ConfigError) -> PyErr {
    err(core::Error::Config(e))
}

/// A lock inherited through fork, held by a thread that does not exist in this process: a
/// `RuntimeError` (a misuse of the process, not a code of the core's table).
impl From<Inherited> for PyErr {
    fn from(e: Inherited) -> PyErr {
        PyRuntimeError::new_err(e.to_string())
    }
}

/// Why a call made with the GIL released failed; turned into the exception after it.
enum Failed {
    Core(core::Error),
    Inherited(Inherited),
}

impl From<core::Error> for Failed {
    fn from(e: core::Error) -> Failed {
        Failed::Core(e)
    }
}

impl From<Inherited> for Failed {
    fn from(e: Inherited) -> Failed {
        Failed::Inherited(e)
    }
}

impl From<Failed> for PyErr {
    fn from(e: Failed) -> PyErr {
        match e {
            Failed::Core(e) => err(e),
            Failed::Inherited(e) => e.into(),
        }
    }
}

/// Owned target columns, collected from Python before the GIL is released, handed to the
/// core as its columnar batch.
struct Batch {
    keys: Vec<u64>,
    placements: Vec<u64>,
    weights: Vec<u32>,
    job_names: Vec<String>,
    jobs: Vec<u32>,
    node_names: Vec<String>,
    nodes: Vec<u32>,
}

const NO_NODE: u32 = u32::MAX;

impl Batch {
    /// The columns of the `upsert_keys`/`set_targets` arguments, each checked and named in its
    /// error.
    fn of(
        keys: &Bound<'_, PyAny>,
        jobs: &Bound<'_, PyAny>,
        placements: Option<&Bound<'_, PyAny>>,
        nodes: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Batch> {
        let keys = args::u64_column(keys, "keys")?;
        let n = keys.len();
        let placements = match placements {
            Some(p) => args::u64_column(p, "placements")?,
            None => keys.clone(),
        };
        let weights = match weights {
            Some(w) => args::u32_column(w, "weights")?,
            None => vec![1; n],
        };
        for (what, len) in [("placements", placements.len()), ("weights", weights.len())] {
            if len != n {
                return Err(PyValueError::new_err(format!(
                    "{what} has {len} entries for {n} keys"
                )));
            }
        }
        let (job_names, jobs) = encode(jobs, n, "jobs", false)?;
        let (node_names, nodes) = match nodes {
            Some(nodes) if !nodes.is_none() => encode(nodes, n, "nodes", true)?,
            _ => (Vec::new(), vec![NO_NODE; n]),
        };
        Ok(Batch {
            keys,
            placements,
            weights,
            job_names,
            jobs,
            node_names,
            nodes,
        })
    }

    /// Run `f` on the batch as the core takes it (borrowing the name tables).
    fn with<R>(&self, f: impl FnOnce(&TargetBatch<'_>) -> R) -> R {
        let job_names: Vec<&str> = self.job_names.iter().map(String::as_str).collect();
        let node_names: Vec<&str> = self.node_names.iter().map(String::as_str).collect();
        let any_node = self.nodes.iter().any(|&n| n != NO_NODE);
        f(&TargetBatch {
            keys: &self.keys,
            placements: &self.placements,
            weights: &self.weights,
            jobs: &self.jobs,
            job_names: &job_names,
            nodes: if any_node { &self.nodes } else { &[] },
            node_names: &node_names,
        })
    }
}

/// The moves of one change, read under the same lock as the change: keys, and the index of
/// each side's collector in `collectors` (-1 for none).
struct RawMoves {
    keys: Vec<u64>,
    from: Vec<i32>,
    to: Vec<i32>,
    names: Vec<String>,
}

impl RawMoves {
    fn of(a: &core::Allocator) -> RawMoves {
        let moves = a.last_moves();
        let mut local: HashMap<u32, i32> = HashMap::new();
        let mut names = Vec::new();
        let mut index = |c: Option<core::CollectorId>| -> i32 {
            let Some(c) = c else { return -1 };
            *local.entry(c.index()).or_insert_with(|| {
                names.push(a.collector_name(c).unwrap_or_default().to_owned());
                names.len() as i32 - 1
            })
        };
        let mut raw = RawMoves {
            keys: Vec::with_capacity(moves.len()),
            from: Vec::with_capacity(moves.len()),
            to: Vec::with_capacity(moves.len()),
            names: Vec::new(),
        };
        for m in moves {
            raw.keys.push(m.key.0);
            raw.from.push(index(m.from));
            raw.to.push(index(m.to));
        }
        raw.names = names;
        raw
    }

    fn into_py(self) -> Moves {
        Moves {
            keys: self.keys,
            from_index: self.from,
            to_index: self.to,
            collectors: self.names,
        }
    }
}

/// The moves of one change: `keys` (uint64), `from_index` and `to_index` (int32 indexes into
/// `collectors`, -1 for no collector), all taken under the same lock as the change.
#[pyclass(frozen, module = "target_allocator._native")]
struct Moves {
    keys: Vec<u64>,
    from_index: Vec<i32>,
    to_index: Vec<i32>,
    collectors: Vec<String>,
}

#[pymethods]
impl Moves {
    /// Keys of the targets that moved.
    #[getter]
    fn keys<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<u64>> {
        PyArray1::from_slice(py, &self.keys)
    }

    /// Index in `collectors` of each target's collector before the change (-1: none).
    #[getter(from_index)]
    fn index_before<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        PyArray1::from_slice(py, &self.from_index)
    }

    /// Index in `collectors` of each target's collector after the change (-1: none).
    #[getter(to_index)]
    fn index_after<'py>(&self, py: Python<'py>) -> Bound<'py, PyArray1<i32>> {
        PyArray1::from_slice(py, &self.to_index)
    }

    /// The collectors the moves name (removed ones included).
    #[getter]
    fn collectors(&self) -> Vec<String> {
        self.collectors.clone()
    }

    /// The moves as (key, from, to) tuples with None for no collector.
    fn to_list(&self) -> Vec<(u64, Option<String>, Option<String>)> {
        let name = |i: i32| (i >= 0).then(|| self.collectors[i as usize].clone());
        self.keys
            .iter()
            .zip(&self.from_index)
            .zip(&self.to_index)
            .map(|((&k, &f), &t)| (k, name(f), name(t)))
            .collect()
    }

    fn __len__(&self) -> usize {
        self.keys.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "Moves({} targets, {} collectors)",
            self.keys.len(),
            self.collectors.len()
        )
    }
}

/// Strings per target as small integer codes: one String per distinct value.
fn encode(
    values: &Bound<'_, PyAny>,
    n: usize,
    what: &str,
    optional: bool,
) -> PyResult<(Vec<String>, Vec<u32>)> {
    let mut names: Vec<String> = Vec::new();
    let mut index: HashMap<String, u32> = HashMap::new();
    let mut code = |s: String| -> u32 {
        *index.entry(s).or_insert_with_key(|s| {
            names.push(s.clone());
            (names.len() - 1) as u32
        })
    };
    if let Ok(s) = values.cast::<PyString>() {
        let c = code(s.extract::<String>()?);
        return Ok((names, vec![c; n]));
    }
    let expected = if optional {
        "one str (or None) for all keys, or a list of str or None, one per key"
    } else {
        "one str for all keys, or a list of str, one per key"
    };
    if values.is_instance_of::<PyBytes>() {
        return Err(PyTypeError::new_err(format!(
            "{what}: expected {expected}, got bytes"
        )));
    }
    let mut codes = Vec::with_capacity(n);
    let iter = values.try_iter().map_err(|_| {
        PyTypeError::new_err(format!(
            "{what}: expected {expected}, got {}",
            values
                .get_type()
                .name()
                .map_or_else(|_| "?".to_owned(), |t| t.to_string())
        ))
    })?;
    for (i, item) in iter.enumerate() {
        let item = item?;
        if optional && item.is_none() {
            codes.push(NO_NODE);
        } else {
            let s: String = item.extract().map_err(|_| {
                PyTypeError::new_err(format!(
                    "{what}[{i}]: expected a str{}, got {}",
                    if optional { " or None" } else { "" },
                    item.get_type()
                        .name()
                        .map_or_else(|_| "?".to_owned(), |t| t.to_string())
                ))
            })?;
            codes.push(if optional && s.is_empty() {
                NO_NODE
            } else {
                code(s)
            });
        }
    }
    if codes.len() != n {
        return Err(PyValueError::new_err(format!(
            "{what} has {} entries for {n} keys",
            codes.len()
        )));
    }
    Ok((names, codes))
}

fn parse_strategy(s: &str) -> PyResult<Strategy> {
    s.parse().map_err(config_err)
}

/// `loads()`: targets and weight per collector.
type Loads<'py> = (Bound<'py, PyArray1<u32>>, Bound<'py, PyArray1<u64>>);

/// Assigns Prometheus targets to collectors with the OpenTelemetry Target Allocator's
/// strategies (bit-compatible with its `consistent-hashing`).
///
/// Options each strategy reads: `consistent-hashing` the ring (`ring`, `partition_count`,
/// `replication_factor`, `load_factor`); `least-weighted` `weighted`; `per-node` `fallback`,
/// and the ring or `weighted` of that fallback; `bounded-hashing` `epsilon` and `max_weight`;
/// `rebalancing` `epsilon` and `zone_skew`. Other options are range-checked and ignored, as in
/// the C and Go bindings; `fallback` off per-node, `zone_skew` off rebalancing and a nonzero
/// `max_weight` with rebalancing raise ConfigError. Not picklable: ship `snapshot()` bytes and
/// `Allocator.restore` them.
#[pyclass(frozen, module = "target_allocator._native")]
struct Allocator {
    inner: Shared,
}

impl Allocator {
    /// Apply a change with the GIL released and read its moves under the same lock.
    fn change<R: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut core::Allocator) -> Result<R, core::Error> + Send,
    ) -> PyResult<(R, Moves)> {
        let (out, raw) = py.detach(|| -> Result<_, Failed> {
            let mut a = self.inner.write()?;
            let out = f(&mut a)?;
            Ok((out, RawMoves::of(&a)))
        })?;
        Ok((out, raw.into_py()))
    }

    /// A change whose result is its moves.
    fn moves(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut core::Allocator) -> Result<(), core::Error> + Send,
    ) -> PyResult<Moves> {
        self.change(py, f).map(|(_, m)| m)
    }

    /// A change of label-set targets: with the GIL released, the rows hashed on up to `threads`
    /// threads (before the write lock is taken, so readers wait only for the change), then `f`
    /// applied to them as a batch under the lock. Returns their keys and the moves.
    fn label_change(
        &self,
        py: Python<'_>,
        rows: &args::LabelRows,
        weights: Option<&[u32]>,
        threads: usize,
        f: impl FnOnce(&mut core::Allocator, &TargetBatch<'_>) -> Result<(), core::Error> + Send,
    ) -> PyResult<(Vec<u64>, Moves)> {
        let (keys, raw) = py.detach(|| -> Result<_, Failed> {
            let columns = LabelColumns::of(rows, weights);
            let mut hashed = HashedSets::default();
            KeyHasher::new().hash_label_sets_on(&columns.sets(), threads, &mut hashed)?;
            let mut a = self.inner.write()?;
            f(&mut a, &hashed.batch())?;
            let raw = RawMoves::of(&a);
            Ok((std::mem::take(&mut hashed.keys), raw))
        })?;
        Ok((keys, raw.into_py()))
    }

    fn collector_names(a: &core::Allocator) -> Vec<String> {
        a.collectors().map(|c| c.name.to_owned()).collect()
    }
}

/// Label-set rows and their weights, checked (one weight per row).
fn label_rows(
    targets: &Bound<'_, PyAny>,
    weights: Option<&Bound<'_, PyAny>>,
) -> PyResult<(args::LabelRows, Option<Vec<u32>>)> {
    let targets = args::label_targets(targets, "targets")?;
    let weights = weights
        .filter(|w| !w.is_none())
        .map(|w| args::u32_column(w, "weights"))
        .transpose()?;
    if let Some(w) = &weights {
        if w.len() != targets.len() {
            return Err(PyValueError::new_err(format!(
                "weights has {} entries for {} targets",
                w.len(),
                targets.len()
            )));
        }
    }
    Ok((targets, weights))
}

/// Label-set rows in the core's columns, borrowing the rows' strings: built after the GIL is
/// released (the rows are already copied out of Python objects).
struct LabelColumns<'a> {
    labels: Vec<(&'a [u8], &'a [u8])>,
    counts: Vec<u32>,
    jobs: Vec<u32>,
    job_names: Vec<&'a str>,
    weights: &'a [u32],
}

impl<'a> LabelColumns<'a> {
    fn of(rows: &'a args::LabelRows, weights: Option<&'a [u32]>) -> LabelColumns<'a> {
        let mut columns = LabelColumns {
            labels: Vec::with_capacity(rows.iter().map(|(l, _)| l.len()).sum()),
            counts: Vec::with_capacity(rows.len()),
            jobs: Vec::with_capacity(rows.len()),
            job_names: Vec::new(),
            weights: weights.unwrap_or_default(),
        };
        let mut jobs = NameIndex::default();
        for (labels, job) in rows {
            columns
                .labels
                .extend(labels.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())));
            // A label set of more than 2**32-1 labels cannot be held in memory as Python objects.
            columns.counts.push(labels.len() as u32);
            columns.jobs.push(jobs.index(job, &mut columns.job_names));
        }
        columns
    }

    fn sets(&self) -> LabelSets<'_> {
        LabelSets {
            labels: &self.labels,
            counts: &self.counts,
            jobs: &self.jobs,
            job_names: &self.job_names,
            weights: self.weights,
        }
    }
}

fn specs_of(cs: &[(String, Option<String>)]) -> Vec<CollectorSpec<'_>> {
    cs.iter()
        .map(|(n, node)| CollectorSpec {
            name: n,
            node: node.as_deref(),
        })
        .collect()
}

#[pymethods]
impl Allocator {
    #[new]
    // One parameter per Python keyword argument: the signature is the Python API.
    #[allow(clippy::too_many_arguments)]
    // The options arrive as Python objects and are checked by `args` (a bool is not a count,
    // a negative count is a ValueError naming it); the text signature shows the defaults.
    #[pyo3(
        signature = (strategy = "consistent-hashing", *, fallback = None, ring = "v0.10.0", partition_count = None, replication_factor = None, load_factor = None, weighted = None, epsilon = None, max_weight = None, zone_skew = None),
        text_signature = "(strategy='consistent-hashing', *, fallback=None, ring='v0.10.0', partition_count=1061, replication_factor=5, load_factor=1.1, weighted=False, epsilon=0.05, max_weight=0, zone_skew=None)"
    )]
    fn new(
        strategy: &str,
        fallback: Option<&str>,
        ring: &str,
        partition_count: Option<&Bound<'_, PyAny>>,
        replication_factor: Option<&Bound<'_, PyAny>>,
        load_factor: Option<&Bound<'_, PyAny>>,
        weighted: Option<&Bound<'_, PyAny>>,
        epsilon: Option<&Bound<'_, PyAny>>,
        max_weight: Option<&Bound<'_, PyAny>>,
        zone_skew: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let defaults = Config::default();
        let partition_count = args::option(partition_count, defaults.ring.partition_count, |o| {
            args::u32_scalar(o, "partition_count")
        })?;
        let replication_factor =
            args::option(replication_factor, defaults.ring.replication_factor, |o| {
                args::u32_scalar(o, "replication_factor")
            })?;
        let load_factor = args::option(load_factor, defaults.ring.load_factor, |o| {
            args::real(o, "load_factor")
        })?;
        let weighted = args::option(weighted, defaults.weighted, |o| args::flag(o, "weighted"))?;
        let epsilon = args::option(epsilon, defaults.bounded.epsilon, |o| {
            args::real(o, "epsilon")
        })?;
        let max_weight = args::option(max_weight, defaults.bounded.max_weight, |o| {
            args::u64_scalar(o, "max_weight")
        })?;
        let zone_skew = args::option(zone_skew, None, |o| args::real(o, "zone_skew").map(Some))?;
        let config = Config {
            strategy: parse_strategy(strategy)?,
            fallback: fallback.map(parse_strategy).transpose()?,
            ring: RingConfig {
                version: ring.parse::<RingVersion>().map_err(config_err)?,
                partition_count,
                replication_factor,
                load_factor,
            },
            weighted,
            bounded: BoundedConfig {
                epsilon,
                max_weight,
            },
            zone_skew,
        };
        Ok(Allocator {
            inner: Shared::new(core::Allocator::new(config).map_err(err)?),
        })
    }

    /// The configuration as a dict.
    #[getter]
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let c = *self.inner.read()?.config();
        let d = PyDict::new(py);
        d.set_item("strategy", c.strategy.name())?;
        d.set_item("fallback", c.fallback.map(|s| s.name()))?;
        d.set_item("ring", c.ring.version.name())?;
        d.set_item("partition_count", c.ring.partition_count)?;
        d.set_item("replication_factor", c.ring.replication_factor)?;
        d.set_item("load_factor", c.ring.load_factor)?;
        d.set_item("weighted", c.weighted)?;
        d.set_item("epsilon", c.bounded.epsilon)?;
        d.set_item("max_weight", c.bounded.max_weight)?;
        d.set_item("zone_skew", c.zone_skew)?;
        Ok(d)
    }

    /// Add collectors: names, or (name, node) tuples. Returns the moves.
    fn add_collectors(&self, py: Python<'_>, collectors: &Bound<'_, PyAny>) -> PyResult<Moves> {
        let cs = args::collectors(collectors, "collectors")?;
        self.moves(py, |a| {
            a.apply(&Diff {
                add_collectors: specs_of(&cs),
                ..Diff::default()
            })
            .map(|_| ())
        })
    }

    /// Remove collectors by name (a list of str); their targets move. Returns the moves.
    fn remove_collectors(&self, py: Python<'_>, names: &Bound<'_, PyAny>) -> PyResult<Moves> {
        let names = args::names(names, "names")?;
        self.moves(py, |a| {
            a.apply(&Diff {
                remove_collectors: names.iter().map(String::as_str).collect(),
                ..Diff::default()
            })
            .map(|_| ())
        })
    }

    /// Replace the collector set by a full listing. Returns the moves.
    fn set_collectors(&self, py: Python<'_>, collectors: &Bound<'_, PyAny>) -> PyResult<Moves> {
        let cs = args::collectors(collectors, "collectors")?;
        self.moves(py, |a| a.set_collectors(&specs_of(&cs)).map(|_| ()))
    }

    /// Replace the node → zone table that zone-aware rebalancing reads (a target is in the
    /// zone of its node, a collector in the zone of its node): a dict, or (node, zone) pairs;
    /// a zone of None or "" means none, nodes not listed have no zone. Returns the moves (only
    /// an allocator made with `zone_skew` moves anything). A node listed twice or an empty
    /// node name raises AllocatorError, and nothing changed.
    fn set_node_zones(&self, py: Python<'_>, table: &Bound<'_, PyAny>) -> PyResult<Moves> {
        let rows = args::node_zones(table)?;
        self.moves(py, |a| {
            let rows: Vec<(&str, &str)> = rows
                .iter()
                .map(|(n, z)| (n.as_str(), z.as_deref().unwrap_or("")))
                .collect();
            a.set_node_zones(&rows).map(|_| ())
        })
    }

    /// The node → zone table as (node, zone) pairs sorted by node (nodes with a zone only).
    #[getter]
    fn node_zones(&self) -> PyResult<Vec<(String, String)>> {
        let a = self.inner.read()?;
        Ok(a.node_zones()
            .into_iter()
            .map(|(n, z)| (n.to_owned(), z.to_owned()))
            .collect())
    }

    /// Alive collectors, sorted by name (the order of `stats` and `loads`). For indexes that
    /// must agree with this list under concurrent changes, use the list `lookup_many` returns.
    #[getter]
    fn collectors(&self) -> PyResult<Vec<String>> {
        Ok(Self::collector_names(&*self.inner.read()?))
    }

    /// Upsert one target from its discovered labels (any mapping of str to str); returns its
    /// key and the moves. `weight` is 0 to 2**32-1; 0 is a target that counts but adds no
    /// weight.
    #[pyo3(signature = (labels, job, weight = None), text_signature = "(self, labels, job, weight=1)")]
    fn upsert(
        &self,
        py: Python<'_>,
        labels: &Bound<'_, PyAny>,
        job: String,
        weight: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<(u64, Moves)> {
        let labels = args::labels(labels, "labels")?;
        let weight = weight.map_or(Ok(1), |w| args::u32_scalar(w, "weight"))?;
        self.change(py, |a| {
            let spec = TargetSpec::from_labels(
                labels.iter().map(|(n, v)| (n.as_str(), v.as_str())),
                &job,
            )?
            .with_weight(weight);
            a.apply(&Diff {
                upsert: vec![spec],
                ..Diff::default()
            })?;
            Ok(spec.key.0)
        })
    }

    /// Upsert many label-set targets, a list of (labels mapping, job) pairs; `weights` as in
    /// `upsert_keys`. A label set listed twice is one target with its last row's weight.
    /// Returns their keys as a uint64 array (in the order given), and the moves. `threads`
    /// (None: 1; an int from 0 to 2³²−1, checked as every integer argument): most threads
    /// hashing the label sets, this one included, at most the cores the process may run on (the
    /// GIL is released while they hash); a list of fewer than 8,192 sets is hashed on one, a
    /// longer one on at most one thread per 4,096 sets. The result is the same for every value.
    #[pyo3(signature = (targets, weights = None, *, threads = None))]
    fn upsert_labels<'py>(
        &self,
        py: Python<'py>,
        targets: &Bound<'py, PyAny>,
        weights: Option<&Bound<'py, PyAny>>,
        threads: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyArray1<u64>>, Moves)> {
        let threads = threads.map_or(Ok(1), |t| args::u32_scalar(t, "threads"))? as usize;
        let (targets, weights) = label_rows(targets, weights)?;
        let (keys, moves) =
            self.label_change(py, &targets, weights.as_deref(), threads, |a, upsert| {
                a.apply_batch(&BatchDiff {
                    upsert: *upsert,
                    ..BatchDiff::default()
                })
                .map(|_| ())
            })?;
        Ok((PyArray1::from_vec(py, keys), moves))
    }

    /// Replace the whole target set by a full listing of label-set targets (as a discovery
    /// loop delivers it), arguments as in `upsert_labels`: unlisted targets are removed, new
    /// or changed ones upserted, unchanged ones stay. Returns the keys of the listing and the
    /// moves of the change.
    #[pyo3(signature = (targets, weights = None, *, threads = None))]
    fn set_labels<'py>(
        &self,
        py: Python<'py>,
        targets: &Bound<'py, PyAny>,
        weights: Option<&Bound<'py, PyAny>>,
        threads: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<(Bound<'py, PyArray1<u64>>, Moves)> {
        let threads = threads.map_or(Ok(1), |t| args::u32_scalar(t, "threads"))? as usize;
        let (targets, weights) = label_rows(targets, weights)?;
        let (keys, moves) =
            self.label_change(py, &targets, weights.as_deref(), threads, |a, listing| {
                a.set_targets_batch(listing).map(|_| ())
            })?;
        Ok((PyArray1::from_vec(py, keys), moves))
    }

    /// Upsert targets in bulk by key. `keys` and `placements` (default: the keys) are uint64
    /// columns, `weights` (default 1) a uint32 column: a 1-D numpy array of any integer dtype
    /// or a list of ints, each value checked (a negative, float or out-of-range value raises,
    /// nothing is wrapped). `jobs` and `nodes` are one str for all or a list of one per key
    /// (`None`/"" for no node). A key listed twice is one target with its last row's fields.
    /// Returns the moves.
    #[pyo3(signature = (keys, *, jobs, placements = None, nodes = None, weights = None))]
    fn upsert_keys(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        jobs: &Bound<'_, PyAny>,
        placements: Option<&Bound<'_, PyAny>>,
        nodes: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Moves> {
        let batch = Batch::of(keys, jobs, placements, nodes, weights)?;
        self.moves(py, |a| {
            batch
                .with(|upsert| {
                    a.apply_batch(&BatchDiff {
                        upsert: *upsert,
                        ..BatchDiff::default()
                    })
                })
                .map(|_| ())
        })
    }

    /// Replace the whole target set by a full listing (as a discovery loop delivers it),
    /// arguments as in `upsert_keys`: unlisted targets are removed, new or changed ones
    /// upserted, unchanged ones stay. Returns the moves.
    #[pyo3(signature = (keys, *, jobs, placements = None, nodes = None, weights = None))]
    fn set_targets(
        &self,
        py: Python<'_>,
        keys: &Bound<'_, PyAny>,
        jobs: &Bound<'_, PyAny>,
        placements: Option<&Bound<'_, PyAny>>,
        nodes: Option<&Bound<'_, PyAny>>,
        weights: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Moves> {
        let batch = Batch::of(keys, jobs, placements, nodes, weights)?;
        self.moves(py, |a| {
            batch
                .with(|listing| a.set_targets_batch(listing))
                .map(|_| ())
        })
    }

    /// Remove targets: one key, or keys as in `upsert_keys`. Each must exist; a key listed
    /// twice is removed once. Returns the moves.
    fn remove(&self, py: Python<'_>, keys: &Bound<'_, PyAny>) -> PyResult<Moves> {
        let keys = args::keys_or_key(keys, "keys")?;
        self.moves(py, |a| {
            a.apply_batch(&BatchDiff {
                remove: &keys,
                ..BatchDiff::default()
            })
            .map(|_| ())
        })
    }

    /// The collector of one target (None: unknown or unassigned).
    fn lookup(&self, key: &Bound<'_, PyAny>) -> PyResult<Option<String>> {
        let key = args::u64_scalar(key, "key")?;
        let a = self.inner.read()?;
        Ok(a.collector_of(TargetKey(key))
            .and_then(|c| a.collector_name(c))
            .map(str::to_owned))
    }

    /// The collectors of many keys (as in `upsert_keys`), from one state: an int32 array of
    /// indexes into the list of collector names returned with it (sorted by name), -1 for an
    /// unknown or unassigned target.
    fn lookup_many<'py>(
        &self,
        py: Python<'py>,
        keys: &Bound<'py, PyAny>,
    ) -> PyResult<(Bound<'py, PyArray1<i32>>, Vec<String>)> {
        let keys = args::u64_column(keys, "keys")?;
        let (out, names) = py.detach(|| -> Result<_, Inherited> {
            let a = self.inner.read()?;
            let mut position: HashMap<u32, i32> = HashMap::new();
            let mut names = Vec::new();
            for (i, c) in a.collectors().enumerate() {
                position.insert(c.id.index(), i as i32);
                names.push(c.name.to_owned());
            }
            let out = keys
                .iter()
                .map(|&k| {
                    a.collector_of(TargetKey(k))
                        .map_or(-1, |c| position[&c.index()])
                })
                .collect::<Vec<i32>>();
            Ok((out, names))
        })?;
        Ok((PyArray1::from_vec(py, out), names))
    }

    /// Keys of a collector's targets (sorted), optionally of one job.
    #[pyo3(signature = (collector, job = None))]
    fn targets_of<'py>(
        &self,
        py: Python<'py>,
        collector: &str,
        job: Option<&str>,
    ) -> PyResult<Bound<'py, PyArray1<u64>>> {
        let a = self.inner.read()?;
        let id = a
            .collector_id(collector)
            .ok_or_else(|| err(core::Error::UnknownCollector(collector.to_owned())))?;
        let keys: Vec<u64> = a.targets_of(id, job).into_iter().map(|k| k.0).collect();
        Ok(PyArray1::from_vec(py, keys))
    }

    /// Jobs with their target counts.
    fn jobs(&self) -> PyResult<Vec<(String, u32)>> {
        Ok(self
            .inner
            .read()?
            .jobs()
            .into_iter()
            .map(|(j, n)| (j.to_owned(), n))
            .collect())
    }

    /// Per-collector targets and weight, keyed by collector name.
    fn stats<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let a = self.inner.read()?;
        let d = PyDict::new(py);
        for c in a.collectors() {
            let row = PyDict::new(py);
            row.set_item("targets", c.targets)?;
            row.set_item("weight", c.weight)?;
            row.set_item("node", c.node)?;
            d.set_item(c.name, row)?;
        }
        Ok(d)
    }

    /// Per-collector target counts and weights as arrays, in `collectors` order.
    fn loads<'py>(&self, py: Python<'py>) -> PyResult<Loads<'py>> {
        let a = self.inner.read()?;
        let (t, w): (Vec<u32>, Vec<u64>) = a.collectors().map(|c| (c.targets, c.weight)).unzip();
        Ok((PyArray1::from_vec(py, t), PyArray1::from_vec(py, w)))
    }

    /// Totals, balance and move counters.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let a = self.inner.read()?;
        let s = a.summary();
        let m = a.move_totals();
        let d = PyDict::new(py);
        d.set_item("collectors", s.collectors)?;
        d.set_item("targets", s.targets)?;
        d.set_item("unassigned", s.unassigned)?;
        d.set_item("max_targets", s.max_targets)?;
        d.set_item("min_targets", s.min_targets)?;
        d.set_item("mean_targets", s.mean_targets)?;
        d.set_item("max_weight", s.max_weight)?;
        d.set_item("min_weight", s.min_weight)?;
        d.set_item("mean_weight", s.mean_weight)?;
        d.set_item("moves_assigned", m.assigned)?;
        d.set_item("moves_unassigned", m.unassigned)?;
        d.set_item("moves_reassigned", m.reassigned)?;
        Ok(d)
    }

    /// The assignment digest: a 64-bit value equal for equal assignments (every assigned
    /// target's key with its collector's name) whatever changes built them, in every binding and
    /// on every platform (the C ABI's `ta_digest`), so replicas can compare one number. O(1).
    fn digest(&self) -> PyResult<u64> {
        Ok(self.inner.read()?.digest())
    }

    /// The whole state as bytes.
    fn snapshot<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = py.detach(|| self.inner.read().map(|a| a.snapshot()))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// An allocator from `snapshot()` bytes.
    #[staticmethod]
    fn restore(py: Python<'_>, data: &[u8]) -> PyResult<Allocator> {
        let data = data.to_vec();
        let a = py.detach(|| core::Allocator::restore(&data)).map_err(err)?;
        Ok(Allocator {
            inner: Shared::new(a),
        })
    }

    fn __len__(&self) -> PyResult<usize> {
        Ok(self.inner.read()?.len())
    }

    fn __repr__(&self) -> PyResult<String> {
        let a = self.inner.read()?;
        Ok(format!(
            "Allocator(strategy={:?}, collectors={}, targets={})",
            a.config().strategy.name(),
            a.collector_count(),
            a.len()
        ))
    }
}

/// The target identity (the Go allocator's item hash, no relabeling) of a label dict and job.
#[pyfunction]
fn target_key(labels: &Bound<'_, PyAny>, job: &str) -> PyResult<u64> {
    let labels = args::labels(labels, "labels")?;
    TargetKey::from_labels(labels.iter().map(|(n, v)| (n.as_str(), v.as_str())), job)
        .map(|k| k.0)
        .map_err(err)
}

/// The consistent-hashing placement hash of a raw `__address__`.
#[pyfunction]
fn placement_hash(address: &str) -> u64 {
    PlacementHash::of_address(address).0
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add_class::<Allocator>()?;
    m.add_class::<Moves>()?;
    m.add_function(wrap_pyfunction!(target_key, m)?)?;
    m.add_function(wrap_pyfunction!(placement_hash, m)?)?;
    m.add(
        "STRATEGIES",
        Strategy::ALL.iter().map(|s| s.name()).collect::<Vec<_>>(),
    )?;
    m.add("AllocatorError", py.get_type::<AllocatorError>())?;
    m.add("ConfigError", py.get_type::<ConfigError>())?;
    m.add("CollectorError", py.get_type::<CollectorError>())?;
    m.add("TargetError", py.get_type::<TargetError>())?;
    m.add("LabelError", py.get_type::<LabelError>())?;
    m.add("RingCapacityError", py.get_type::<RingCapacityError>())?;
    m.add("SnapshotError", py.get_type::<SnapshotError>())?;
    Ok(())
}
