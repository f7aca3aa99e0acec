"""Moves are exactly what a change did, and concurrent readers see only states that existed."""

import threading

import numpy as np
import pytest
import target_allocator as ta


def owners(a, keys):
    idx, names = a.lookup_many(keys)
    return [names[i] if i >= 0 else None for i in idx]


def check_moves(step, keys, before, after, moves):
    """The moves equal the keys whose owner differs between the two states, sides included."""
    got = {k: (f, t) for k, f, t in moves.to_list()}
    assert len(got) == len(moves), f"{step}: a key moved twice"
    want = {k: (b, c) for k, b, c in zip(keys.tolist(), before, after) if b != c}
    assert got == want, step


@pytest.mark.parametrize(
    "strategy", ["consistent-hashing", "least-weighted", "per-node", "bounded-hashing", "rebalancing", "zones"]
)
def test_moves_equal_the_before_after_difference(strategy):
    # "zones": zone-aware rebalancing, with node -> zone tables among the changes.
    zoned = strategy == "zones"
    rng = np.random.default_rng(11)
    fallback = "least-weighted" if strategy == "per-node" else None
    if zoned:
        a = ta.Allocator("rebalancing", zone_skew=0.1)
    else:
        a = ta.Allocator(strategy, fallback=fallback)
    keys = np.zeros(0, dtype=np.uint64)
    live: set[int] = set()
    collectors: set[str] = set()
    next_key = 1
    for step in range(100):
        before = owners(a, keys)
        op = int(rng.integers(0, 7 if zoned else 6))
        new = np.zeros(0, dtype=np.uint64)
        if op == 0 or not collectors:
            fresh = {f"c-{int(x)}" for x in rng.integers(0, 12, size=3)} - collectors
            collectors |= fresh
            moves = a.add_collectors([(c, f"node-{int(rng.integers(0, 4))}") for c in sorted(fresh)])
        elif op == 1:
            gone = [c for c in sorted(collectors) if rng.random() < 0.3]
            collectors -= set(gone)
            moves = a.remove_collectors(gone)
        elif op == 2:
            collectors = {f"c-{int(x)}" for x in rng.integers(0, 12, size=int(rng.integers(1, 7)))}
            moves = a.set_collectors(sorted(collectors))
        elif op == 3:
            n = int(rng.integers(1, 60))
            new = np.arange(next_key, next_key + n, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
            next_key += n
            nodes = [f"node-{int(x)}" if x < 4 else None for x in rng.integers(0, 5, size=n)]
            moves = a.upsert_keys(new, jobs=["a", "b"] * (n // 2) + ["a"] * (n % 2), nodes=nodes)
        elif op == 4:
            gone = np.array([k for k in sorted(live) if rng.random() < 0.25], dtype=np.uint64)
            moves = a.remove(gone)
            live -= set(gone.tolist())
        elif op == 6:
            zones = rng.integers(0, 4, size=4)
            moves = a.set_node_zones({f"node-{n}": f"zone-{int(z)}" if z < 3 else None for n, z in enumerate(zones)})
        else:
            labels = [({"__address__": f"10.0.{step}.{i}:80", "i": str(i)}, "pods") for i in range(5)]
            new, moves = a.upsert_labels(labels)
        for k in new.tolist():
            if k not in live:
                live.add(k)
                keys = np.append(keys, np.uint64(k))
        before += [None] * (len(keys) - len(before))
        check_moves(f"{strategy} step {step}", keys, before, owners(a, keys), moves)


def test_readers_see_only_states_that_existed():
    """A writer cycles the collector set through known states; consistent-hashing places by the
    collector set alone, so each state's owners are known and a read must match the state its
    collector list names, key for key."""
    a = ta.Allocator()
    keys = np.arange(1, 3001, dtype=np.uint64) * np.uint64(11400714819323198485)
    a.upsert_keys(keys, jobs="j")
    sets = [[f"col-{c}" for c in range(k + 1)] for k in range(6)]
    expected = []
    for s in sets:
        a.set_collectors(s)
        expected.append(owners(a, keys))
    errors: list[BaseException] = []
    reads = [0]
    stop = threading.Event()

    def reader(seed):
        rng = np.random.default_rng(seed)
        try:
            while not stop.is_set():
                at = rng.integers(0, len(keys), size=64)
                idx, names = a.lookup_many(keys[at])
                want = expected[len(names) - 1]
                assert names == sets[len(names) - 1]
                assert [names[i] for i in idx] == [want[i] for i in at]
                reads[0] += 1
        except BaseException as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=reader, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    prev = len(sets) - 1
    for round_ in range(120):
        k = (round_ * 5) % len(sets)
        moves = a.set_collectors(sets[k])
        check_moves(f"round {round_}", keys, expected[prev], expected[k], moves)
        prev = k
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert reads[0] > 0
