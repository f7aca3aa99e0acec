#!/usr/bin/env python3
"""Print the criterion results under target/criterion as a markdown table (mean and 95% CI,
per element where the benchmark declared a throughput)."""
import json
import pathlib
import sys

root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "target/criterion")


def fmt(ns: float) -> str:
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}"
    return f"{ns:.3g} ns"


rows = []
for bench in sorted(root.glob("**/new/benchmark.json")):
    meta = json.loads(bench.read_text())
    est = json.loads((bench.parent / "estimates.json").read_text())
    mean = est["mean"]["point_estimate"]
    lo = est["mean"]["confidence_interval"]["lower_bound"]
    hi = est["mean"]["confidence_interval"]["upper_bound"]
    per = ""
    tp = meta.get("throughput") or {}
    if "Elements" in tp and tp["Elements"]:
        per = fmt(mean / tp["Elements"]) + "/elem"
    elif "Bytes" in tp and tp["Bytes"]:
        per = f"{tp['Bytes'] / mean:.3g} GB/s"
    rows.append((meta["group_id"], meta.get("function_id") or "", meta.get("value_str") or "", fmt(mean), f"{fmt(lo)} – {fmt(hi)}", per))
print("| group | function | input | mean | 95% CI | per element |")
print("|---|---|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
