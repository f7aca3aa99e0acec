"""The Python module on the parity vectors written by the upstream Go modules."""

import json

import numpy as np
import pytest
import target_allocator as ta


@pytest.mark.parametrize("version", ["v0.10.0", "v1.0.0"])
def test_results_equal_the_go_vectors(root, version):
    data = json.loads((root / "testdata" / "parity" / f"ring-{version}.json").read_text())
    checked = 0
    for scenario in data["scenarios"]:
        targets = [(dict(t["labels"]), t["job"]) for t in scenario["targets"]]
        want_keys = np.array([int(t["key"]) for t in scenario["targets"]], dtype=np.uint64)
        for cset in scenario["collector_sets"]:
            a = ta.Allocator(ring=version)
            a.set_collectors(cset["collectors"])
            keys, moves = a.upsert_labels(targets)
            assert (keys == want_keys).all()
            idx, names = a.lookup_many(keys)
            got = [names[i] for i in idx]
            # The change's own moves name the same owners.
            placed = {k: to for k, _, to in moves.to_list()}
            assert all(placed[k] == g for k, g in zip(keys.tolist(), got))
            want = [cset["collectors"][i] for i in cset["assigned"]]
            assert got == want
            checked += len(got)
    assert checked >= 35000
