"""Zone-aware rebalancing: zone_skew, set_node_zones and its moves, checked against each test's
own table of nodes, zones and collectors (never against the allocator's own view of zones)."""

import math

import numpy as np
import pytest
import target_allocator as ta

MUL = np.uint64(0x9E3779B97F4A7C15)


def owners(a, keys):
    idx, names = a.lookup_many(keys)
    return [names[i] if i >= 0 else None for i in idx]


def check_moves(keys, before, after, moves):
    got = {k: (f, t) for k, f, t in moves.to_list()}
    assert len(got) == len(moves), "a key moved twice"
    assert got == {k: (b, c) for k, b, c in zip(keys.tolist(), before, after) if b != c}


def band(total, n, skew, epsilon=0.05):
    """⌊(1−s)·W/n⌋ and ⌈(1+s)·W/n⌉ in millionths, s = max(skew, ε) (the core's Config docs)."""
    s = round(max(skew, epsilon) * 1e6)
    return total * (1_000_000 - s) // (n * 1_000_000), -(-total * (1_000_000 + s) // (n * 1_000_000))


def check_zone_rule(table, collectors, nodes, weights, owner, skew):
    """Every target is in its zone unless its zone's least-loaded collector (lowest name on ties)
    has no room under the cap, or its holder would drop under the floor; none is over the cap.
    Returns how many targets are away from their zone."""
    czone = {c: table.get(node) for c, node in collectors.items()}
    load = dict.fromkeys(collectors, 0)
    for o, w in zip(owner, weights):
        load[o] += w
    floor, cap = band(sum(weights), len(collectors), skew)
    assert max(load.values()) <= cap, (load, cap)
    away = 0
    for node, w, o in zip(nodes, weights, owner):
        zone = table.get(node)
        if zone is None or czone[o] == zone:
            continue
        away += 1
        homes = sorted((load[c], c) for c in collectors if czone[c] == zone)
        if homes:
            home_load, home = homes[0]
            assert home_load + w > cap or load[o] - w < floor, (
                f"a target of {zone} sits on {o} ({load[o]}) but {home} ({home_load}) has room under {cap}"
            )
    return away


def test_zone_skew_is_in_the_config_and_validated():
    assert ta.Allocator().config["zone_skew"] is None
    assert ta.Allocator("rebalancing", zone_skew=0.25).config["zone_skew"] == 0.25
    with pytest.raises(ta.ConfigError, match="only supported by rebalancing"):
        ta.Allocator("bounded-hashing", zone_skew=0.1)
    with pytest.raises(ta.ConfigError, match="zone_skew"):
        ta.Allocator("rebalancing", zone_skew=-1.0)
    with pytest.raises(ta.ConfigError, match="zone_skew"):
        ta.Allocator("rebalancing", zone_skew=math.nan)


def test_set_node_zones_brings_targets_home_and_returns_exactly_its_moves():
    # Three zones of two nodes, a collector per node; node by i mod 6 and weight by i mod 5, so
    # over 300 targets every zone has the same weight and everything fits at home.
    table = {f"n{i}": f"zone-{'abc'[i // 2]}" for i in range(6)}
    collectors = {f"c-{i}": f"n{i}" for i in range(6)}
    n = 300
    keys = np.arange(1, n + 1, dtype=np.uint64) * MUL
    nodes = [f"n{i % 6}" for i in range(n)]
    weights = [1 + (i * 7) % 5 for i in range(n)]
    a = ta.Allocator("rebalancing", zone_skew=0.2)
    a.add_collectors(list(collectors.items()))
    a.upsert_keys(keys, jobs="pods", nodes=nodes, weights=np.array(weights, dtype=np.uint32))
    czone = {c: table[node] for c, node in collectors.items()}
    before = owners(a, keys)
    away = sum(czone[o] != table[node] for o, node in zip(before, nodes))
    assert away > 0, "without a table the placement should not match the zones; the test would prove nothing"

    moves = a.set_node_zones(table)
    after = owners(a, keys)
    check_moves(keys, before, after, moves)
    assert all(czone[o] == table[node] for o, node in zip(after, nodes))
    assert len(moves) >= away
    assert check_zone_rule(table, collectors, nodes, weights, after, 0.2) == 0
    assert a.node_zones == sorted(table.items())

    # The same table as pairs is no change; the table survives a snapshot.
    assert len(a.set_node_zones(list(table.items()))) == 0
    b = ta.Allocator.restore(a.snapshot())
    assert b.node_zones == sorted(table.items())
    assert b.config["zone_skew"] == 0.2

    # A zone of None or "" is no zone; the moves are still exactly the difference.
    before = after
    moves = a.set_node_zones([("n0", None), ("n1", ""), ("n2", "zone-b")])
    assert a.node_zones == [("n2", "zone-b")]
    check_moves(keys, before, owners(a, keys), moves)


def test_a_crowded_zone_fills_its_collector_and_spills_by_the_rule():
    table = {"n0": "crowded", "n1": "b", "n2": "b", "n3": "c", "n4": "c", "n5": "c"}
    collectors = {f"c-{i}": f"n{i}" for i in range(6)}
    n = 400
    keys = np.arange(1, n + 1, dtype=np.uint64) * MUL + np.uint64(7)
    nodes = ["n0" if i % 2 == 0 else f"n{1 + (i // 2) % 5}" for i in range(n)]
    weights = [1 + (i * 3) % 4 for i in range(n)]
    a = ta.Allocator("rebalancing", zone_skew=0.1)
    assert len(a.set_node_zones(table)) == 0  # table first: later changes place by zone
    a.add_collectors(list(collectors.items()))
    a.upsert_keys(keys, jobs="pods", nodes=nodes, weights=np.array(weights, dtype=np.uint32))
    owner = owners(a, keys)
    assert check_zone_rule(table, collectors, nodes, weights, owner, 0.1) > 0
    crowded = sum(w for o, w in zip(owner, weights) if o == "c-0")
    _, cap = band(sum(weights), 6, 0.1)
    assert crowded + 4 > cap, f"c-0 carries {crowded} under the cap {cap}: room for more of its zone"

    table["n1"] = "crowded"
    before = owner
    moves = a.set_node_zones(table)
    owner = owners(a, keys)
    check_moves(keys, before, owner, moves)
    assert len(moves) > 0, "c-1 joined the crowded zone with room: some of its targets must come"
    check_zone_rule(table, collectors, nodes, weights, owner, 0.1)


@pytest.mark.parametrize(
    "table, needle",
    [
        ([("na", "zone-a"), ("na", "zone-b")], 'node "na" is listed twice'),
        ({"nb": "zone-b", "": "zone-a"}, "a node name is empty"),
    ],
)
def test_bad_tables_are_named_and_change_nothing(table, needle):
    a = ta.Allocator("rebalancing", zone_skew=0.0)
    a.add_collectors([("c-0", "na"), ("c-1", "nb")])
    keys = np.arange(1, 41, dtype=np.uint64)
    a.upsert_keys(keys, jobs="j", nodes=["na", "nb"] * 20)
    a.set_node_zones({"na": "zone-a"})
    before = owners(a, keys)
    with pytest.raises(ta.AllocatorError, match=needle) as info:
        a.set_node_zones(table)
    assert info.value.code_name == "TA_INVALID_ARGUMENT"
    assert owners(a, keys) == before
    assert a.node_zones == [("na", "zone-a")]


@pytest.mark.parametrize("table", [[("na",)], [("na", 3)], ["na"], 5])
def test_tables_of_the_wrong_shape_are_type_errors(table):
    with pytest.raises(TypeError):
        ta.Allocator("rebalancing", zone_skew=0.1).set_node_zones(table)


def test_without_zone_skew_the_table_is_kept_and_moves_nothing():
    a = ta.Allocator("rebalancing")
    a.add_collectors([("c-0", "na"), ("c-1", "nb")])
    a.upsert_keys(np.arange(1, 41, dtype=np.uint64), jobs="j", nodes=["na", "nb"] * 20)
    assert len(a.set_node_zones({"na": "zone-a", "nb": "zone-b"})) == 0
    assert a.node_zones == [("na", "zone-a"), ("nb", "zone-b")]
