"""Scenario simulation: apply a list of events to an allocator and record what each one did."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._native import Allocator


@dataclass(frozen=True)
class Event:
    """One step of a scenario. Build with :meth:`scale_to`, :meth:`churn` or :meth:`lose_node`."""

    kind: str
    collectors: int = 0
    fraction: float = 0.0
    node: str | None = None

    @staticmethod
    def scale_to(collectors: int) -> Event:
        """Scale the fleet to ``collectors`` collectors (StatefulSet-style names, kept in order)."""
        return Event("scale", collectors=_count("collectors", collectors))

    @staticmethod
    def churn(fraction: float) -> Event:
        """Replace ``fraction`` of the targets by new ones (pods rolled)."""
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)):
            raise TypeError(f"fraction must be a number, not {type(fraction).__name__}")
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("fraction must be within [0, 1]")
        return Event("churn", fraction=float(fraction))

    @staticmethod
    def lose_node(node: str) -> Event:
        """A node disappears: its collectors and the targets running on it are removed."""
        if not isinstance(node, str) or not node:
            raise TypeError(f"node must be a non-empty string, not {node!r}")
        return Event("node_loss", node=node)

    def label(self) -> str:
        if self.kind == "scale":
            return f"scale to {self.collectors}"
        if self.kind == "churn":
            return f"churn {self.fraction:.1%}"
        return f"lose {self.node}"


# Row fields holding one value per collector (arrays and lists), left out of the table.
_PER_COLLECTOR = ("loads", "weights", "collector_names")


@dataclass
class SimulationResult:
    """Per event: moves, balance and per-collector loads. ``rows`` are plain dicts."""

    strategy: str
    rows: list[dict[str, Any]] = field(default_factory=list)

    def table(self) -> list[dict[str, Any]]:
        """The rows without the per-collector columns (``loads``, ``weights``,
        ``collector_names``): one dict of scalars per event, as :meth:`to_pandas` takes them."""
        return [{k: v for k, v in r.items() if k not in _PER_COLLECTOR} for r in self.rows]

    def to_pandas(self) -> Any:
        """The table as a pandas DataFrame (needs the ``pandas`` extra)."""
        import pandas as pd  # optional dependency

        return pd.DataFrame(self.table())


def _count(name: str, value: Any) -> int:
    """A non-negative int (not a bool, not a float, not a string)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return int(value)


def _unsigned(name: str, values: Any, dtype: type[np.unsignedinteger[Any]]) -> npt.NDArray[Any]:
    """A 1-D array of unsigned ints of ``dtype``: integer input only, no negative value and none
    too large (numpy would wrap -1 to the largest value silently)."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {arr.shape}")
    if arr.size and arr.dtype.kind not in "ui":
        raise TypeError(f"{name} must hold integers, not {arr.dtype}")
    info = np.iinfo(dtype)
    if arr.size and arr.dtype.kind == "i" and int(arr.min()) < 0:
        raise ValueError(f"{name} must be >= 0, got {int(arr.min())}")
    if arr.size and int(arr.max()) > info.max:
        raise ValueError(f"{name} must be <= {info.max}, got {int(arr.max())}")
    return np.ascontiguousarray(arr, dtype=dtype)


def _names(name: str, values: Any, *, optional: bool) -> list[Any]:
    """A sequence of strings (or None where ``optional``); a bare string is refused, since it
    would silently become one name per character."""
    if isinstance(values, (str, bytes)):
        raise TypeError(f"{name} must be a sequence of strings, not a single string")
    out = list(values)
    for i, v in enumerate(out):
        if not (isinstance(v, str) or (optional and v is None)):
            raise TypeError(f"{name}[{i}] must be a string, not {type(v).__name__}")
    return out


def _collector_names(n: int, prefix: str) -> list[str]:
    return [f"{prefix}-{i}" for i in range(n)]


def simulate(
    strategy: str,
    keys: npt.NDArray[np.uint64],
    *,
    jobs: str | Sequence[str],
    collectors: int,
    events: Sequence[Event],
    nodes: Sequence[str | None] | None = None,
    weights: npt.NDArray[np.uint32] | None = None,
    collector_nodes: Sequence[str] | None = None,
    collector_prefix: str = "collector",
    seed: int = 0,
    **config: Any,
) -> SimulationResult:
    """Run a scenario.

    Targets are given by ``keys`` (uint64; also their placement hash) with ``jobs``, optional
    ``nodes`` and ``weights``. The fleet starts with ``collectors`` collectors; collector ``i``
    runs on ``collector_nodes[i % len(collector_nodes)]`` when given (needed for ``per-node``).
    Extra keyword arguments configure the :class:`Allocator` (``fallback``, ``ring``, ...).
    The first row describes the initial allocation; then one row per event. ``moved`` counts
    targets that went from one collector to another; a target left without a collector (and
    placed again later) counts in ``unassigned`` instead. A node → zone table cannot be given
    here: with ``zone_skew`` the allocator balances as usual but keeps no target in its zone
    (build an :class:`Allocator` and call ``set_node_zones`` for that).
    """
    collectors = _count("collectors", collectors)
    seed = _count("seed", seed)
    if not isinstance(collector_prefix, str):
        raise TypeError(f"collector_prefix must be a string, not {type(collector_prefix).__name__}")
    for i, e in enumerate(events):
        if not isinstance(e, Event):
            raise TypeError(f"events[{i}] must be an Event, not {type(e).__name__}")
    rng = np.random.default_rng(seed)
    keys = _unsigned("keys", keys, np.uint64)
    n = len(keys)
    job_list: list[str] = [jobs] * n if isinstance(jobs, str) else _names("jobs", jobs, optional=False)
    node_list: list[str | None] = [None] * n if nodes is None else _names("nodes", nodes, optional=True)
    if collector_nodes is not None:
        collector_nodes = _names("collector_nodes", collector_nodes, optional=False)
    weight_arr = np.ones(n, dtype=np.uint32) if weights is None else _unsigned("weights", weights, np.uint32)
    if len(job_list) != n or len(node_list) != n or len(weight_arr) != n:
        raise ValueError("jobs, nodes and weights need one entry per key")

    alloc = Allocator(strategy, **config)
    result = SimulationResult(strategy=strategy)
    fleet: list[tuple[str, str | None]] = []

    def fleet_of(count: int) -> list[tuple[str, str | None]]:
        names = _collector_names(count, collector_prefix)
        if not collector_nodes:
            return [(name, None) for name in names]
        return [(name, collector_nodes[i % len(collector_nodes)]) for i, name in enumerate(names)]

    def record(label: str, before: dict[str, Any]) -> None:
        s = alloc.summary()
        targets, weight = alloc.loads()
        mean = s["mean_targets"] or 0.0
        mean_w = s["mean_weight"] or 0.0
        result.rows.append(
            {
                "event": label,
                "collectors": s["collectors"],
                "targets": s["targets"],
                "unassigned": s["unassigned"],
                "moved": s["moves_reassigned"] - before["moves_reassigned"],
                "max_over_mean": (s["max_targets"] / mean) if mean else 0.0,
                "min_over_mean": (s["min_targets"] / mean) if mean else 0.0,
                "weight_max_over_mean": (s["max_weight"] / mean_w) if mean_w else 0.0,
                "loads": targets,
                "weights": weight,
                "collector_names": alloc.collectors,
            }
        )

    start = alloc.summary()
    fleet = fleet_of(collectors)
    alloc.set_collectors(fleet)
    alloc.upsert_keys(keys, jobs=job_list, nodes=node_list, weights=weight_arr)
    record("initial", start)

    live = keys.copy()
    live_jobs, live_nodes, live_weights = list(job_list), list(node_list), weight_arr.copy()
    for event in events:
        before = alloc.summary()
        if event.kind == "scale":
            fleet = fleet_of(event.collectors)
            alloc.set_collectors(fleet)
        elif event.kind == "churn":
            count = int(round(event.fraction * len(live)))
            if count:
                idx = rng.choice(len(live), size=count, replace=False)
                fresh = rng.integers(0, np.iinfo(np.uint64).max, size=count, dtype=np.uint64)
                alloc.remove(live[idx])
                alloc.upsert_keys(
                    fresh,
                    jobs=[live_jobs[i] for i in idx],
                    nodes=[live_nodes[i] for i in idx],
                    weights=live_weights[idx],
                )
                live[idx] = fresh
        elif event.kind == "node_loss":
            gone = [name for name, node in fleet if node == event.node]
            fleet = [(name, node) for name, node in fleet if node != event.node]
            if gone:
                alloc.remove_collectors(gone)
            on_node = [i for i, node in enumerate(live_nodes) if node == event.node]
            if on_node:
                alloc.remove(live[on_node])
                keep = np.ones(len(live), dtype=bool)
                keep[on_node] = False
                live = live[keep]
                live_weights = live_weights[keep]
                live_jobs = [j for j, k in zip(live_jobs, keep) if k]
                live_nodes = [x for x, k in zip(live_nodes, keep) if k]
        else:
            raise ValueError(f"unknown event kind {event.kind!r}")
        record(event.label(), before)
    return result
