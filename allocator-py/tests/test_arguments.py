"""Argument contracts shared by every call: a bare string is not a list, label sets are any
Mapping, and integer columns accept any integer dtype or a list of ints, refusing (with the
argument's name) what would change a value."""

import collections
import types

import numpy as np
import pytest
import target_allocator as ta

LABELS = {"__address__": "10.0.0.1:9100", "instance": "x"}


def _a(strategy="least-weighted", collectors=("c0", "c1")):
    a = ta.Allocator(strategy)
    a.add_collectors(list(collectors))
    return a


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda a: a.set_collectors("otel-0"), "collectors"),
        (lambda a: a.add_collectors("abc"), "collectors"),
        (lambda a: a.add_collectors(b"abc"), "collectors"),
        (lambda a: a.remove_collectors("c0"), "names"),
        (lambda a: a.remove_collectors(b"c0"), "names"),
        (lambda a: a.upsert_labels(LABELS["__address__"]), "targets"),
    ],
)
def test_a_bare_string_is_not_a_list_of_names(call, needle):
    a = _a()
    with pytest.raises(TypeError, match=f"{needle}: expected a list.*pass a list"):
        call(a)
    assert a.collectors == ["c0", "c1"], "nothing changed"


def test_lists_tuples_and_generators_of_names_still_work():
    a = _a(collectors=())
    a.set_collectors(("a", ("b", "node-1")))
    a.add_collectors(f"c{i}" for i in range(2))
    a.remove_collectors(n for n in ["a"])
    assert a.collectors == ["b", "c0", "c1"]
    with pytest.raises(TypeError, match=r"names\[0\]: expected a str, got int"):
        a.remove_collectors([3])
    with pytest.raises(TypeError, match=r"collectors\[1\]: expected a collector name"):
        a.add_collectors(["d", 3])


N = 4


@pytest.mark.parametrize(
    ("call", "error", "needle"),
    [
        (lambda a: a.upsert_keys(np.array([1, -2, 3, 4]), jobs="j"), ValueError, "keys: .*got -2"),
        (lambda a: a.upsert_keys(np.ones(N), jobs="j"), TypeError, "keys: expected .*uint64.*got float64"),
        (lambda a: a.upsert_keys([1, 2, -3, 4], jobs="j"), ValueError, r"keys\[2\]: .*got -3"),
        (lambda a: a.upsert_keys([1, 2, 3.0, 4], jobs="j"), TypeError, r"keys\[2\]: .*got float"),
        (lambda a: a.upsert_keys([1, True, 3, 4], jobs="j"), TypeError, r"keys\[1\]: .*got bool"),
        (lambda a: a.upsert_keys([1, 2, 3, 2**64], jobs="j"), ValueError, r"keys\[3\]: .*got 18446744073709551616"),
        (lambda a: a.upsert_keys(np.ones((2, 2), np.uint64), jobs="j"), ValueError, r"keys: .*shape \(2, 2\)"),
        (lambda a: a.upsert_keys("1234", jobs="j"), TypeError, "keys: .*single str"),
        (lambda a: a.upsert_keys(7, jobs="j"), TypeError, "keys: .*got int"),
        (lambda a: a.upsert_keys(np.arange(N), jobs="j", weights=np.ones(N)), TypeError, "weights: .*uint32.*float64"),
        (
            lambda a: a.upsert_keys(np.arange(N), jobs="j", weights=np.full(N, 2**32)),
            ValueError,
            "weights: .*4294967295.*got 4294967296",
        ),
        (
            lambda a: a.upsert_keys(np.arange(N), jobs="j", weights=np.full(N, 2**32, np.uint64)),
            ValueError,
            r"weights\[0\]: .*got 4294967296",
        ),
        (lambda a: a.upsert_keys(np.arange(N), jobs="j", weights=[1, 2, -1, 0]), ValueError, r"weights\[2\]"),
        (lambda a: a.upsert_keys(np.arange(N), jobs="j", placements=np.ones(N)), TypeError, "placements: .*float64"),
        (lambda a: a.upsert_keys(np.arange(N), jobs="j", placements=[0, 0, -1, 0]), ValueError, r"placements\[2\]"),
        (lambda a: a.upsert_keys(np.arange(N), jobs="j", weights=[1]), ValueError, "weights has 1 entries for 4 keys"),
        (lambda a: a.upsert_keys(np.arange(N), jobs=b"j"), TypeError, "jobs: .*got bytes"),
        (lambda a: a.upsert_keys(np.arange(N), jobs=["j", "j", 3, "j"]), TypeError, r"jobs\[2\]: expected a str"),
        (lambda a: a.upsert_keys(np.arange(N), jobs="j", nodes=[None, 1, "n", ""]), TypeError, r"nodes\[1\]"),
        (lambda a: a.lookup_many(np.ones(N)), TypeError, "keys: .*float64"),
        (lambda a: a.lookup_many(np.array([-1, 1])), ValueError, "keys: .*got -1"),
        (lambda a: a.lookup(-1), ValueError, "key: .*got -1"),
        (lambda a: a.lookup(1.0), TypeError, "key: .*got float"),
        (lambda a: a.remove(-1), ValueError, "keys: .*got -1"),
        (lambda a: a.remove(1.0), TypeError, "keys: .*got float"),
        (lambda a: a.remove(np.array([1.0])), TypeError, "keys: .*float64"),
        (lambda a: a.remove("1"), TypeError, "keys: .*single str"),
        (lambda a: a.upsert(LABELS, "j", weight=-1), ValueError, "weight: .*got -1"),
        (lambda a: a.upsert(LABELS, "j", weight=2**32), ValueError, "weight: .*got 4294967296"),
        (lambda a: a.upsert(LABELS, "j", weight=1.5), TypeError, "weight: .*got float"),
        (lambda a: a.upsert_labels([(LABELS, "j")], weights=np.array([-1])), ValueError, "weights: .*got -1"),
        (lambda a: a.upsert_labels([(LABELS, "j")], weights=[1, 2]), ValueError, "weights has 2 entries for 1"),
        (lambda a: a.upsert_labels([LABELS]), TypeError, r"targets\[0\]: expected a \(labels, job\) pair"),
        (lambda a: a.upsert_labels([(LABELS, 3)]), TypeError, r"targets\[0\]: the job must be a str"),
        (lambda a: a.upsert([("__address__", "a")], "j"), TypeError, "labels: expected a mapping"),
        (lambda a: a.upsert({"__address__": 1}, "j"), TypeError, "labels\\['__address__'\\]: label values must be str"),
        (lambda a: ta.target_key(["x"], "j"), TypeError, "labels: expected a mapping"),
    ],
)
def test_bad_values_raise_naming_the_argument_and_change_nothing(call, error, needle):
    a = _a()
    a.upsert_keys(np.array([100, 101], dtype=np.uint64), jobs="j")
    before = a.snapshot()
    with pytest.raises(error, match=needle):
        call(a)
    assert a.snapshot() == before


def test_any_integer_dtype_and_lists_are_accepted_without_changing_a_value():
    a = _a()
    big = 2**64 - 1
    a.upsert_keys(np.array([5, 6], dtype=np.int32), jobs="j", weights=np.array([3, 4], dtype=np.uint8))
    a.upsert_keys([big, 7], jobs="j", weights=[0, 2**32 - 1], placements=np.array([1, 2], dtype=np.int64))
    a.upsert_keys(np.array([8, 9], dtype=np.uint64)[::-1], jobs="j", weights=np.array([1, 1], dtype=">u4"))
    assert len(a) == 6
    idx, names = a.lookup_many([5, 6, big, 7, 8, 9])
    assert (idx >= 0).all()
    idx2, _ = a.lookup_many(np.array([5, 6], dtype=np.int16))
    assert (idx2 == idx[:2]).all()
    assert a.lookup(np.uint64(big)) == names[idx[2]]
    assert a.lookup(np.int64(7)) == names[idx[3]]
    assert sum(int(w) for w in a.loads()[1]) == 3 + 4 + 0 + (2**32 - 1) + 2
    assert len(a.targets_of(names[idx[2]])) >= 1 and big in a.targets_of(names[idx[2]]).tolist()
    assert len(a.remove(np.array([5], dtype=np.int8))) == 1
    assert len(a.remove(np.int64(6))) == 1
    assert len(a.remove(np.array([], dtype=np.int64))) == 0
    assert len(a) == 4


@pytest.mark.parametrize(
    "wrap",
    [types.MappingProxyType, collections.UserDict, collections.OrderedDict, dict],
    ids=["MappingProxyType", "UserDict", "OrderedDict", "dict"],
)
def test_label_sets_are_any_mapping(wrap):
    a = _a()
    expect = ta.target_key(LABELS, "j")
    assert ta.target_key(wrap(LABELS), "j") == expect
    key, _ = a.upsert(wrap(LABELS), "j")
    assert key == expect
    keys, _ = a.upsert_labels([(wrap(LABELS), "j")])
    assert keys.tolist() == [expect]
    keys, _ = a.set_labels([(wrap(LABELS), "j")])
    assert keys.tolist() == [expect] and len(a) == 1


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"partition_count": True}, TypeError, "partition_count: expected a non-negative integer"),
        ({"partition_count": -1}, ValueError, "partition_count: expected an integer from 0"),
        ({"partition_count": 2**32}, ValueError, "partition_count: expected an integer from 0"),
        ({"partition_count": 7.0}, TypeError, "partition_count"),
        ({"replication_factor": False}, TypeError, "replication_factor"),
        ({"max_weight": -1}, ValueError, "max_weight: expected an integer from 0"),
        ({"max_weight": 2**64}, ValueError, "max_weight: expected an integer from 0"),
        ({"weighted": 1}, TypeError, "weighted: expected True or False, got int"),
        ({"weighted": "yes"}, TypeError, "weighted: expected True or False, got str"),
        ({"epsilon": True}, TypeError, "epsilon: expected a number, got bool"),
        ({"epsilon": "0.1"}, TypeError, "epsilon: expected a number, got str"),
        ({"load_factor": 10**400}, ValueError, "load_factor: expected a number representable"),
        ({"zone_skew": False}, TypeError, "zone_skew: expected a number, got bool"),
    ],
)
def test_constructor_options_are_checked_naming_them(kwargs, error, needle):
    with pytest.raises(error, match=needle):
        ta.Allocator("rebalancing", **kwargs)


def test_constructor_options_keep_their_values_and_defaults():
    c = ta.Allocator(
        "bounded-hashing",
        partition_count=np.uint16(271),
        replication_factor=7,
        load_factor=2,
        epsilon=np.float32(0.25),
        max_weight=np.uint64(2**40),
    ).config
    assert (c["partition_count"], c["replication_factor"], c["load_factor"]) == (271, 7, 2.0)
    assert (c["epsilon"], c["max_weight"]) == (0.25, 2**40)
    d = ta.Allocator().config
    assert (d["partition_count"], d["replication_factor"], d["load_factor"]) == (1061, 5, 1.1)
    assert (d["weighted"], d["epsilon"], d["max_weight"], d["zone_skew"]) == (False, 0.05, 0, None)
    assert ta.Allocator("least-weighted", weighted=True).config["weighted"] is True


def test_a_lone_surrogate_is_a_value_error_naming_the_argument():
    a = _a()
    with pytest.raises(ValueError, match=r"collectors\[1\]: .* lone surrogate"):
        a.set_collectors(["ok", "bad\udc80"])
    with pytest.raises(ValueError, match=r"targets\[0\]: .* lone surrogate"):
        a.upsert_labels([({"__address__": "x:1", "n\udc80": "v"}, "job")])
    assert a.collectors == ["c0", "c1"], "nothing changed"
