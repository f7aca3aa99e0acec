"""Per-collector weight for consistent-hashing, least-weighted and bounded-hashing.

100k targets with log-normal series counts (median 500) plus a kube-state-metrics job of five
200k-series giants, on 100 collectors (like the table in benches/README.md). Writes
``docs/strategy-loads.png`` (weight per collector, busiest first) and prints max/mean.

    python examples/python/compare_strategies.py [--targets N] [--collectors N] [--out FILE]
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import target_allocator as ta
from target_allocator.plot import plot_loads

JOBS = ["kubernetes-pods", "kubernetes-service-endpoints", "node-exporter", "cadvisor", "kubelet"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--targets", type=int, default=100_000)
    parser.add_argument("--collectors", type=int, default=100)
    parser.add_argument("--out", type=pathlib.Path, default=pathlib.Path("docs/strategy-loads.png"))
    args = parser.parse_args()

    rng = np.random.default_rng(21)
    n = args.targets
    keys = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64)
    jobs = [JOBS[j] for j in rng.integers(0, len(JOBS), size=n)]
    weights = np.clip(rng.lognormal(mean=np.log(500), sigma=1.0, size=n), 1, 50_000).astype(np.uint32)
    for i in range(19_999, n, 20_000):
        jobs[i] = "kube-state-metrics"
        weights[i] = 200_000

    results = [
        ta.simulate(strategy, keys, jobs=jobs, weights=weights, collectors=args.collectors, events=[])
        for strategy in ("consistent-hashing", "least-weighted", "bounded-hashing")
    ]
    for r in results:
        row = r.rows[-1]
        weight, count = row["weight_max_over_mean"], row["max_over_mean"]
        print(f"{r.strategy}: weight max/mean {weight:.2f}, targets max/mean {count:.2f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot_loads(results, str(args.out), by="weight")


if __name__ == "__main__":
    main()
