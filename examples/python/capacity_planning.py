"""Capacity planning with the real allocation engine.

A fleet scrapes 200k targets (Kubernetes-style: 5 jobs, 40 nodes, heavy-tailed series counts).
It scales 20 -> 30 -> 15 collectors; for each strategy we record the targets moved by every
event and the per-collector load, write two PNGs and a summary table.

    python examples/python/capacity_planning.py [--targets N] [--out DIR]

Needs the module (allocator-py/test.sh builds and installs it) and matplotlib.
"""

from __future__ import annotations

import argparse
import pathlib
from typing import Any

import numpy as np
import target_allocator as ta
from target_allocator import Event
from target_allocator.plot import plot_loads, plot_moves

JOBS = ["kubernetes-pods", "kubernetes-service-endpoints", "node-exporter", "cadvisor", "kubelet"]


def workload(n: int, seed: int = 7) -> tuple[np.ndarray, list[str], list[str | None], np.ndarray]:
    rng = np.random.default_rng(seed)
    keys = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64)
    jobs = [JOBS[j] for j in rng.integers(0, len(JOBS), size=n)]
    nodes: list[str | None] = [f"node-{x}" for x in rng.integers(0, 40, size=n)]
    # 5% of targets are static (no node), e.g. blackbox probes.
    for i in np.flatnonzero(rng.random(n) < 0.05):
        nodes[i] = None
    weights = np.clip(rng.lognormal(mean=np.log(500), sigma=1.0, size=n), 1, 50000).astype(np.uint32)
    return keys, jobs, nodes, weights


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=200_000)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("capacity-planning"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    keys, jobs, nodes, weights = workload(args.targets)
    events = [Event.scale_to(30), Event.scale_to(15), Event.churn(0.02)]
    collector_nodes = [f"node-{i}" for i in range(40)]
    results = []
    configs: list[tuple[str, dict[str, Any]]] = [
        ("consistent-hashing", {}),
        ("least-weighted", {}),
        ("per-node", {"fallback": "consistent-hashing"}),
        ("bounded-hashing", {}),
    ]
    for strategy, extra in configs:
        results.append(
            ta.simulate(
                strategy,
                keys,
                jobs=jobs,
                nodes=nodes,
                weights=weights,
                collectors=20,
                collector_nodes=collector_nodes,
                events=events,
                **extra,
            )
        )

    plot_loads(results, str(args.out / "loads.png"))
    plot_moves(results, str(args.out / "moves.png"))
    lines = [
        f"# Capacity planning: {args.targets} targets, 20 -> 30 -> 15 collectors",
        "",
        "| strategy | event | collectors | moved | unassigned | max/mean | min/mean | weight max/mean |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        for row in r.table():
            lines.append(
                f"| {r.strategy} | {row['event']} | {row['collectors']} | {row['moved']} | {row['unassigned']} "
                f"| {row['max_over_mean']:.2f} | {row['min_over_mean']:.2f} | {row['weight_max_over_mean']:.2f} |"
            )
    (args.out / "summary.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
