"""Exceptions cross process boundaries intact; an Allocator travels as snapshot() bytes."""

import multiprocessing
import pickle

import numpy as np
import pytest
import target_allocator as ta

CLASSES = [
    ta.AllocatorError,
    ta.ConfigError,
    ta.CollectorError,
    ta.TargetError,
    ta.LabelError,
    ta.RingCapacityError,
    ta.SnapshotError,
]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_exception_class_pickles(cls):
    assert cls.__module__ == "target_allocator._native"
    e = pickle.loads(pickle.dumps(cls("the message")))
    assert type(e) is cls and e.args == ("the message",)


def test_a_raised_error_keeps_its_message_and_code_through_pickle():
    a = ta.Allocator()
    with pytest.raises(ta.CollectorError) as info:
        a.remove_collectors(["nope"])
    e = pickle.loads(pickle.dumps(info.value))
    assert type(e) is ta.CollectorError
    assert str(e) == str(info.value) and "nope" in str(e)
    assert (e.code, e.code_name) == (info.value.code, info.value.code_name) == (info.value.code, "TA_UNKNOWN_COLLECTOR")


def _context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _fail_in_worker(n):
    a = ta.Allocator("consistent-hashing", partition_count=1, replication_factor=1)
    a.add_collectors([f"c{i}" for i in range(n)])
    return a.collectors


def _lookup_in_worker(data, keys):
    a = ta.Allocator.restore(data)
    idx, names = a.lookup_many(keys)
    return [names[i] for i in idx]


def test_a_pool_worker_raising_an_allocator_error_reraises_it_in_the_parent():
    # One partition cannot be spread over collectors: the ring raises RingCapacityError.
    with pytest.raises(ta.RingCapacityError) as direct:
        _fail_in_worker(3)
    with _context().Pool(1) as pool:
        with pytest.raises(ta.RingCapacityError) as info:
            pool.apply(_fail_in_worker, (3,))
    assert str(info.value) == str(direct.value)
    assert info.value.code_name == "TA_RING_CAPACITY"


def test_an_allocator_is_not_picklable_its_snapshot_is():
    a = ta.Allocator("least-weighted")
    a.add_collectors(["x", "y", "z"])
    keys = np.arange(1, 301, dtype=np.uint64)
    a.upsert_keys(keys, jobs="j")
    with pytest.raises(TypeError):
        pickle.dumps(a)
    idx, names = a.lookup_many(keys)
    with _context().Pool(1) as pool:
        remote = pool.apply(_lookup_in_worker, (a.snapshot(), keys))
    assert remote == [names[i] for i in idx]
