"""Every method of target_allocator.Allocator, its errors, and thread use."""

import threading

import numpy as np
import pytest
import target_allocator as ta


def test_default_config_is_the_go_allocators():
    a = ta.Allocator()
    assert a.config == {
        "strategy": "consistent-hashing",
        "fallback": None,
        "ring": "v0.10.0",
        "partition_count": 1061,
        "replication_factor": 5,
        "load_factor": 1.1,
        "weighted": False,
        "epsilon": 0.05,
        "max_weight": 0,
        "zone_skew": None,
    }
    assert ta.STRATEGIES == ["consistent-hashing", "least-weighted", "per-node", "bounded-hashing", "rebalancing"]
    assert "consistent-hashing" in repr(a)


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"strategy": "round-robin"}, "round-robin"),
        ({"load_factor": 0.5}, "0.5"),
        ({"partition_count": 0}, "partition_count"),
        ({"ring": "v2"}, "v2"),
        ({"strategy": "consistent-hashing", "fallback": "least-weighted"}, "fallback"),
        ({"strategy": "bounded-hashing", "epsilon": -0.5}, "epsilon"),
    ],
)
def test_invalid_config_raises_config_error_naming_the_value(kwargs, needle):
    with pytest.raises(ta.ConfigError, match=needle) as info:
        ta.Allocator(**kwargs)
    assert isinstance(info.value, ta.AllocatorError)


def test_collectors_add_remove_set_and_their_errors():
    a = ta.Allocator("least-weighted")
    a.add_collectors(["b", ("a", "node-1")])
    assert a.collectors == ["a", "b"]
    with pytest.raises(ta.CollectorError, match='"a"'):
        a.add_collectors(["a"])
    with pytest.raises(ta.CollectorError, match="empty"):
        a.add_collectors([""])
    with pytest.raises(ta.CollectorError, match="nope"):
        a.remove_collectors(["nope"])
    with pytest.raises(TypeError):
        a.add_collectors([42])
    a.set_collectors(["c"])
    assert a.collectors == ["c"]
    assert a.stats()["c"]["node"] is None


def test_label_targets_and_single_lookup():
    a = ta.Allocator()
    a.add_collectors(["c0", "c1", "c2"])
    labels = {"__address__": "10.0.0.1:9100", "instance": "x", "__meta_kubernetes_pod_name": "p"}
    key, moves = a.upsert(labels, "node", weight=3)
    assert moves.to_list() == [(key, None, a.lookup(key))]
    assert key == ta.target_key(labels, "node")
    assert a.lookup(key) in a.collectors
    assert a.lookup(12345) is None
    assert len(a) == 1
    assert a.jobs() == [("node", 1)]
    assert sum(s["weight"] for s in a.stats().values()) == 3
    with pytest.raises(ta.LabelError, match="__address__"):
        a.upsert({"instance": "x"}, "node")
    keys, _ = a.upsert_labels([({"__address__": f"10.1.0.{i}:80"}, "pods") for i in range(10)])
    assert keys.dtype == np.uint64 and len(keys) == 10
    # The Operator's own test value (shared/parity/operator-crosscheck.json).
    assert ta.target_key({"test_label": "test-value"}, "test-job") == 11170662653441480747
    assert ta.placement_hash("test-url") % 1061 == 828


def test_bulk_keys_vectorised_and_single_lookups_agree():
    a = ta.Allocator()
    a.add_collectors([f"c{i}" for i in range(7)])
    keys = np.arange(1, 5001, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    jobs = ["pods" if i % 2 else "nodes" for i in range(len(keys))]
    assert len(a.upsert_keys(keys, jobs=jobs, weights=np.full(len(keys), 2, dtype=np.uint32))) == len(keys)
    idx, names = a.lookup_many(keys)
    assert names == a.collectors
    assert idx.dtype == np.int32 and (idx >= 0).all()
    names = a.collectors
    for k, i in zip(keys[:500], idx[:500]):
        assert a.lookup(int(k)) == names[i]
    assert a.lookup_many(np.array([7], dtype=np.uint64))[0][0] == -1
    counts, weights = a.loads()
    assert counts.sum() == len(keys) and weights.sum() == 2 * len(keys)
    c0 = a.targets_of("c0")
    assert (np.diff(c0.astype(np.float64)) > 0).all()
    assert len(a.targets_of("c0", "pods")) + len(a.targets_of("c0", "nodes")) == len(c0)
    with pytest.raises(ta.CollectorError):
        a.targets_of("missing")


def test_bulk_argument_errors():
    a = ta.Allocator()
    keys = np.arange(3, dtype=np.uint64)
    with pytest.raises(ValueError, match="3 keys"):
        a.upsert_keys(keys, jobs=["a", "b"])
    with pytest.raises(TypeError):
        a.upsert_keys(keys, jobs=[1, 2, 3])
    with pytest.raises(ValueError, match="keys: .*got -1"):
        a.upsert_keys(np.arange(-1, 2, dtype=np.int64), jobs="j")
    with pytest.raises(ValueError):
        a.upsert_keys(keys, jobs="j", weights=np.ones(2, dtype=np.uint32))
    with pytest.raises(ta.TargetError, match="unknown target"):
        a.remove(99)
    with pytest.raises(TypeError):
        a.remove("nope")


def test_moves_and_summary_follow_a_scale_out():
    a = ta.Allocator()
    a.add_collectors([f"c{i}" for i in range(4)])
    keys = np.arange(1, 2001, dtype=np.uint64) * np.uint64(2654435761)
    a.upsert_keys(keys, jobs="j")
    changed = a.add_collectors(["c4"])
    moves = changed.to_list()
    moved = len(changed)
    assert len(moves) == moved > 0
    assert changed.keys.dtype == np.uint64 and changed.from_index.dtype == np.int32
    assert sorted(changed.collectors) == sorted({n for _, f, t in moves for n in (f, t) if n})
    # Bounded loads can shift a few partitions between old collectors too; most go to c4.
    assert all(a.lookup(key) == to and frm != to for key, frm, to in moves)
    assert sum(to == "c4" for _, _, to in moves) > len(moves) / 2
    s = a.summary()
    assert s["moves_reassigned"] == moved and s["targets"] == 2000 and s["collectors"] == 5
    removed = a.remove(keys[:10])
    assert len(removed) == 10
    assert all(to is None for _, _, to in removed.to_list())
    assert (removed.to_index == -1).all()


def test_per_node_uses_nodes_and_the_fallback():
    a = ta.Allocator("per-node", fallback="consistent-hashing")
    a.add_collectors([("c-a", "node-a"), ("c-b", "node-b")])
    keys = np.array([1, 2, 3], dtype=np.uint64)
    a.upsert_keys(keys, jobs="j", nodes=["node-a", None, "node-z"])
    assert a.lookup(1) == "c-a"
    assert a.lookup(2) in ("c-a", "c-b")
    assert a.lookup(3) is None
    assert a.summary()["unassigned"] == 1


def test_snapshot_round_trip_and_corrupt_bytes():
    a = ta.Allocator("least-weighted")
    a.add_collectors(["x", "y"])
    keys = np.arange(1, 101, dtype=np.uint64)
    a.upsert_keys(keys, jobs="j")
    data = a.snapshot()
    assert isinstance(data, bytes)
    b = ta.Allocator.restore(data)
    (ia, na), (ib, nb) = a.lookup_many(keys), b.lookup_many(keys)
    assert na == nb and (ia == ib).all()
    with pytest.raises(ta.SnapshotError, match="checksum"):
        ta.Allocator.restore(data[:40] + bytes([data[40] ^ 1]) + data[41:])
    with pytest.raises(ta.SnapshotError, match="truncated"):
        ta.Allocator.restore(data[:10])
    with pytest.raises(ta.SnapshotError, match="magic"):
        ta.Allocator.restore(b"x" * 64)
    with pytest.raises(TypeError):
        ta.Allocator.restore("not bytes")


def test_one_allocator_shared_between_threads():
    a = ta.Allocator()
    keys = np.arange(1, 20001, dtype=np.uint64) * np.uint64(11400714819323198485)
    a.upsert_keys(keys, jobs="j")
    errors = []
    stop = threading.Event()

    def reader():
        try:
            while not stop.is_set():
                idx, names = a.lookup_many(keys)
                # Indexes into the collector list of that same state.
                assert ((idx >= -1) & (idx < len(names))).all()
                assert a.summary()["targets"] == len(keys)
        except Exception as e:  # noqa: BLE001 - collected for the assertion below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    for n in range(1, 30):
        a.set_collectors([f"c{i}" for i in range(1 + n % 9)])
    stop.set()
    for t in threads:
        t.join()
    assert errors == []
    assert a.summary()["unassigned"] == 0


def test_bounded_hashing_caps_weight_and_does_not_depend_on_the_order_of_diffs():
    rng = np.random.default_rng(7)
    keys = rng.integers(1, 2**63, size=5000, dtype=np.uint64)
    weights = np.clip(rng.lognormal(6.0, 1.0, size=5000), 1, 50_000).astype(np.uint32)
    jobs = ["pods" if i % 2 else "nodes" for i in range(5000)]
    names = [f"otel-{i}" for i in range(8)]
    a = ta.Allocator("bounded-hashing")
    a.add_collectors(names)
    a.upsert_keys(keys, jobs=jobs, weights=weights)
    b = ta.Allocator("bounded-hashing")
    b.upsert_keys(keys[2500:], jobs=jobs[2500:], weights=weights[2500:])
    b.add_collectors(names[::-1])
    b.upsert_keys(keys[:2500], jobs=jobs[:2500], weights=weights[:2500])
    la, ca = a.lookup_many(keys)
    lb, cb = b.lookup_many(keys)
    assert [ca[i] for i in la] == [cb[i] for i in lb]
    cap = -(-int(weights.sum()) * 105 // (100 * len(names)))
    assert max(s["weight"] for s in a.stats().values()) <= cap


def _owners(a, keys):
    idx, names = a.lookup_many(keys)
    return {int(k): (names[i] if i >= 0 else None) for k, i in zip(keys, idx)}


@pytest.mark.parametrize("strategy", ["consistent-hashing", "least-weighted", "bounded-hashing", "rebalancing"])
def test_set_targets_reconciles_a_full_listing_and_returns_exactly_the_owner_changes(strategy):
    rng = np.random.default_rng(3)
    a = ta.Allocator(strategy)
    a.add_collectors([f"c{i}" for i in range(5)])
    old = rng.integers(1, 2**63, size=3000, dtype=np.uint64)
    weights = rng.integers(1, 20, size=3000).astype(np.uint32)
    a.upsert_keys(old, jobs="j", weights=weights)
    fresh = rng.integers(1, 2**63, size=1000, dtype=np.uint64)
    listing = np.concatenate([old[1000:], fresh])
    new_weights = np.concatenate([weights[1000:], np.full(1000, 7, dtype=np.uint32)])
    new_weights[:200] += 5  # changed fields of listed targets
    every = np.concatenate([old, fresh])
    before = _owners(a, every)
    moves = a.set_targets(listing, jobs="j", weights=new_weights)
    after = _owners(a, every)
    expect = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert {k: (f, t) for k, f, t in moves.to_list()} == expect
    assert len(moves) == len(expect) > 1000
    assert len(a) == len(listing)
    assert all(after[int(k)] is None for k in old[:1000])
    assert a.summary()["targets"] == 3000
    assert int(a.loads()[1].sum()) == int(new_weights.sum())
    # The same listing again changes nothing.
    assert len(a.set_targets(listing, jobs="j", weights=new_weights)) == 0


def test_set_labels_reconciles_label_sets_and_returns_their_keys():
    a = ta.Allocator()
    a.add_collectors(["c0", "c1", "c2"])
    first = [({"__address__": f"10.0.0.{i}:80"}, "pods") for i in range(50)]
    keys, _ = a.upsert_labels(first)
    listing = first[25:] + [({"__address__": f"10.0.1.{i}:80"}, "pods") for i in range(10)]
    every = np.concatenate([keys, np.array([ta.target_key(lb, j) for lb, j in listing[25:]], dtype=np.uint64)])
    before = _owners(a, every)
    new_keys, moves = a.set_labels(listing)
    assert new_keys.tolist() == [ta.target_key(lb, j) for lb, j in listing]
    after = _owners(a, every)
    expect = {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    assert {k: (f, t) for k, f, t in moves.to_list()} == expect
    assert len(a) == 35 and all(a.lookup(int(k)) is None for k in keys[:25])


def test_duplicate_keys_last_row_wins_and_a_repeated_removal_removes_once():
    a = ta.Allocator("least-weighted")
    a.add_collectors(["c0"])
    a.upsert_keys([1, 2, 1], jobs=["a", "b", "c"], weights=[2, 1, 5])
    assert len(a) == 2
    assert int(a.loads()[1].sum()) == 6 and dict(a.jobs()) == {"b": 1, "c": 1}
    moves = a.remove([1, 1])
    assert moves.to_list() == [(1, "c0", None)] and len(a) == 1


def test_a_weight_of_zero_counts_as_a_target_but_adds_no_weight():
    a = ta.Allocator("least-weighted")
    a.add_collectors(["c0", "c1"])
    a.upsert_keys([1, 2, 3], jobs="j", weights=[0, 0, 4])
    key, _ = a.upsert({"__address__": "x:1"}, "j", weight=0)
    s = a.summary()
    assert s["targets"] == 4 and s["unassigned"] == 0
    counts, weights = a.loads()
    assert int(counts.sum()) == 4 and int(weights.sum()) == 4


def _label_sets(n, missing_address=()):
    """`n` label sets on 37 nodes (some on none), in two jobs; those in `missing_address` lack
    their address."""
    sets = []
    for i in range(n):
        labels = {"__address__": f"10.{i >> 16}.{(i >> 8) & 255}.{i & 255}:9100", "instance": f"i-{i % 11}"}
        if i % 9 != 4:
            labels["__meta_kubernetes_pod_node_name"] = f"node-{(i * 7 + i // 5000) % 37}"
        if i in missing_address:
            del labels["__address__"]
        sets.append((labels, "pods" if i % 3 else "nodes"))
    return sets


def test_label_sets_hashed_on_four_threads_give_the_same_keys_moves_and_errors_as_one():
    # 20,480 sets: four runs of 5,120 with threads=4 (the library cuts a batch only from 4,096 sets
    # a thread), so the parallel hashing really runs.
    n = 20_480
    sets = _label_sets(n)
    weights = np.arange(n, dtype=np.uint32) % 7
    allocators = {t: ta.Allocator("per-node", fallback="consistent-hashing") for t in (1, 4)}
    results = {}
    for t, a in allocators.items():
        # A collector on each of the 37 nodes and one on none (the fallback's).
        a.add_collectors([(f"c{i}", f"node-{i}") for i in range(37)] + [("c37", None)])
        keys, moves = a.upsert_labels(sets, weights, threads=t)
        # A full listing with a quarter of the sets replaced.
        listing = sets[: n // 2] + _label_sets(n + n // 4)[n:] + sets[3 * n // 4 :]
        listed, changed = a.set_labels(listing, threads=t)
        results[t] = (keys, moves.to_list(), listed, changed.to_list(), a.stats())
    (k1, m1, l1, c1, s1), (k4, m4, l4, c4, s4) = results[1], results[4]
    assert np.array_equal(k1, k4) and np.array_equal(l1, l4)
    assert m1 == m4 and len(m1) == n
    assert c1 == c4 and len(c1) > 0
    assert s1 == s4 and a.summary()["unassigned"] == 0
    for i in (0, 4, 5119, 5120, 20_479):
        assert k4[i] == ta.target_key(sets[i][0], sets[i][1])
    # Bad sets in three runs: the first one (by row) is named, the state is unchanged.
    bad = _label_sets(n, missing_address=(15_000, 6_000, 19_000))
    first = f"{ta.target_key(*bad[6_000]):016x}"
    for t, a in allocators.items():
        before = len(a)
        with pytest.raises(ta.LabelError, match=first):
            a.upsert_labels(bad, threads=t)
        with pytest.raises(ta.LabelError, match=first):
            a.set_labels(bad, threads=t)
        assert len(a) == before


def test_threads_is_checked_as_every_integer_argument():
    a = ta.Allocator()
    a.add_collectors(["c0"])
    sets = [({"__address__": "10.0.0.1:9100"}, "pods")]
    for bad in (True, 1.0, "2"):
        with pytest.raises(TypeError, match="threads"):
            a.upsert_labels(sets, threads=bad)
    for bad in (-1, 2**32):
        with pytest.raises(ValueError, match="threads"):
            a.set_labels(sets, threads=bad)
    # Any count is allowed (capped at the cores by the library) and gives the same keys.
    keys, _ = a.upsert_labels(sets, threads=2**32 - 1)
    assert keys[0] == ta.target_key(*sets[0])
    assert len(a) == 1


def test_digest_is_equal_for_equal_assignments_whatever_built_them():
    keys = np.arange(1, 2001, dtype=np.uint64)
    a = ta.Allocator("consistent-hashing")
    a.set_collectors(["c0", "c1", "c2"])
    a.upsert_keys(keys, jobs="j")
    b = ta.Allocator("consistent-hashing")
    b.upsert_keys(keys[::-1], jobs="j")
    b.add_collectors(["c2"])
    b.add_collectors(["c0", "c1"])
    assert a.digest() == b.digest() != 0
    assert ta.Allocator.restore(a.snapshot()).digest() == a.digest()
    moves = b.remove_collectors(["c2"])
    assert len(moves) > 0 and b.digest() != a.digest()
    assert ta.Allocator().digest() == 0
