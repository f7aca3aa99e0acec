"""Time assigning N targets from numpy arrays (keys, jobs, weights) to 100 collectors.

    python examples/python/bench_numpy.py [N]
"""

import sys
import time

import numpy as np
import target_allocator as ta

n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rng = np.random.default_rng(3)
keys = rng.integers(0, np.iinfo(np.uint64).max, size=n, dtype=np.uint64)
jobs = np.array(["kubernetes-pods", "node-exporter", "cadvisor"], dtype=object)[rng.integers(0, 3, size=n)]
weights = rng.integers(1, 5000, size=n, dtype=np.uint32)
for strategy in ["consistent-hashing", "least-weighted"]:
    a = ta.Allocator(strategy)
    a.add_collectors([f"collector-{i}" for i in range(100)])
    start = time.perf_counter()
    a.upsert_keys(keys, jobs=jobs, weights=weights)
    idx, _names = a.lookup_many(keys)
    elapsed = time.perf_counter() - start
    assert (idx >= 0).all()
    print(f"{strategy}: {n} targets assigned and looked up in {elapsed:.3f} s")
