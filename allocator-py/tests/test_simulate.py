"""simulate(): per-event moves, balance and loads."""

import numpy as np
import pytest
import target_allocator as ta
from target_allocator import Event


def test_scale_events_report_moves_and_balance():
    keys = np.random.default_rng(1).integers(0, 2**63, size=20000, dtype=np.uint64)
    r = ta.simulate(
        "consistent-hashing",
        keys,
        jobs="pods",
        collectors=10,
        events=[Event.scale_to(15), Event.scale_to(8), Event.churn(0.05)],
    )
    table = r.table()
    assert [row["event"] for row in table] == ["initial", "scale to 15", "scale to 8", "churn 5.0%"]
    assert [row["collectors"] for row in table] == [10, 15, 8, 8]
    assert table[0]["moved"] == 0
    assert table[1]["moved"] > 0 and table[2]["moved"] > 0
    assert table[3]["moved"] == 0, "churn never moves existing targets under consistent-hashing"
    assert all(row["targets"] == 20000 for row in table)
    assert all(row["max_over_mean"] >= 1.0 for row in table)
    assert r.rows[1]["loads"].sum() == 20000
    assert r.rows[1]["weights"].sum() == 20000


def test_table_rows_hold_scalars_only():
    keys = np.arange(1, 2001, dtype=np.uint64)
    r = ta.simulate("least-weighted", keys, jobs="j", collectors=3, events=[Event.scale_to(4)])
    table = r.table()
    assert set(table[0]) == {
        "event",
        "collectors",
        "targets",
        "unassigned",
        "moved",
        "max_over_mean",
        "min_over_mean",
        "weight_max_over_mean",
    }
    assert all(isinstance(v, (str, int, float)) for row in table for v in row.values())


def test_least_weighted_scale_out_moves_nothing():
    keys = np.arange(1, 5001, dtype=np.uint64)
    r = ta.simulate("least-weighted", keys, jobs="j", collectors=4, events=[Event.scale_to(6)])
    assert r.table()[1]["moved"] == 0


def test_node_loss_removes_its_collectors_and_targets():
    keys = np.arange(1, 3001, dtype=np.uint64)
    nodes = [f"n{i % 3}" for i in range(3000)]
    r = ta.simulate(
        "per-node",
        keys,
        jobs="j",
        nodes=nodes,
        collectors=3,
        collector_nodes=["n0", "n1", "n2"],
        events=[Event.lose_node("n1")],
    )
    last = r.table()[-1]
    assert last["collectors"] == 2 and last["targets"] == 2000 and last["unassigned"] == 0


def test_bad_events_are_refused():
    with pytest.raises(ValueError):
        Event.churn(1.5)
    with pytest.raises(ValueError):
        Event.scale_to(-1)
    with pytest.raises(ValueError, match="one entry per key"):
        ta.simulate("least-weighted", np.arange(3, dtype=np.uint64), jobs=["a"], collectors=1, events=[])


@pytest.mark.parametrize(
    ("kwargs", "error", "needle"),
    [
        ({"weights": np.array([-1, 1, 1])}, ValueError, "weights must be >= 0"),
        ({"weights": np.array([2**32, 1, 1])}, ValueError, "weights must be <="),
        ({"weights": np.array([1.5, 1, 1])}, TypeError, "weights must hold integers"),
        ({"keys": np.array([-1, 2, 3])}, ValueError, "keys must be >= 0"),
        ({"keys": ["a", "b", "c"]}, TypeError, "keys must hold integers"),
        ({"collectors": -1}, ValueError, "collectors must be >= 0"),
        ({"collectors": "3"}, TypeError, "collectors must be an int"),
        ({"collectors": 2.5}, TypeError, "collectors must be an int"),
        ({"collector_nodes": "node-a"}, TypeError, "not a single string"),
        ({"nodes": "abc"}, TypeError, "not a single string"),
        ({"jobs": ["j", "j", 3]}, TypeError, "jobs[2] must be a string"),
        ({"events": ["scale"]}, TypeError, "events[0] must be an Event"),
    ],
)
def test_bad_inputs_are_refused_not_converted(kwargs, error, needle):
    args = {"keys": np.array([1, 2, 3], dtype=np.uint64), "jobs": "j", "collectors": 2, "events": []}
    args.update(kwargs)
    keys = args.pop("keys")
    with pytest.raises(error, match=needle.replace("[", r"\[").replace("]", r"\]")):
        ta.simulate("consistent-hashing", keys, **args)


def test_events_refuse_wrong_types():
    with pytest.raises(ValueError, match="collectors must be >= 0"):
        Event.scale_to(-1)
    with pytest.raises(TypeError, match="collectors must be an int"):
        Event.scale_to("4")
    with pytest.raises(TypeError, match="node must be a non-empty string"):
        Event.lose_node(["n1"])
