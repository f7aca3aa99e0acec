#!/usr/bin/env python3
"""Flatten a parity vector file (testdata/parity/ring-*.json, written by the Go generator) into
tab-separated lines the C and Go tests read without a JSON parser. Values are copied, never
computed.

    ring\t<version>
    collectors\t<name>...            (the first collector set of the scenario)
    target\t<job>\t<key>\t<collector>\t<name>\t<value>...
    end
"""
import json
import sys


def main(path: str) -> None:
    data = json.load(open(path, encoding="utf-8"))
    out = sys.stdout
    out.write(f"ring\t{data['ring_version']}\n")
    for scenario in data["scenarios"][:2]:
        cset = scenario["collector_sets"][0]
        out.write("collectors\t" + "\t".join(cset["collectors"]) + "\n")
        for target, owner in zip(scenario["targets"], cset["assigned"]):
            fields = [target["job"], target["key"], cset["collectors"][owner]]
            for name, value in target["labels"]:
                fields += [name, value]
            if any("\t" in f or "\n" in f for f in fields):
                sys.exit(f"{path}: a field holds a tab or newline")
            out.write("target\t" + "\t".join(fields) + "\n")
        out.write("end\n")


if __name__ == "__main__":
    main(sys.argv[1])
