#!/usr/bin/env python3
"""Real clients: OpenTelemetry Collectors (built by scripts/build-e2e-collector.sh) as collectors
of our Target Allocator.

Each collector's prometheus receiver has only `target_allocator:` (endpoint, a short interval, its
own collector_id): it reads its jobs from `/scrape_configs` and its targets from
`/jobs/<job>/targets?collector_id=<id>`, as the Operator configures it. Its exporter (OTLP/HTTP,
JSON) posts to the test's sink on a path naming the collector; every scrape's `up` point carries
the scraped endpoint in its resource (`service.instance.id`), so the sink knows which collector
scraped which endpoint. The endpoints (the loopback servers of tests/real_prometheus.py) record
every request they serve. Checked, with three collectors, after a fourth is added, and after the
file_sd file is rewritten:
  - each collector's recently scraped endpoints equal the allocator's answer for it;
  - the answers are disjoint and cover every endpoint in the file;
  - over a quiet window each endpoint appears in exactly one collector's output, its owner's,
    with `up` = 1; the endpoints requested in the window are exactly those in the file.
Usage: real_otelcol.py <target-allocator binary> <collector binary>. Each wait is at most 60 s.
"""

import gzip
import http.server
import json
import os
import shutil
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_prometheus import JOB, Endpoints, Run, get_json, wait  # noqa: E402  (the shared loopback setup)

# How far back a scrape counts as "current" while waiting for a collector to settle: the scrape
# interval is 1 s, so an endpoint a collector stopped owning drops out after this.
RECENT_NS = 2_500_000_000


class Sink:
    """An OTLP/HTTP receiver on loopback (JSON encoding) that keeps, per collector (the last
    segment of the path its exporter posts to), the `up` points: (timestamp ns, endpoint, value)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.points = {}
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.add(self.path.rsplit("/", 1)[1], json.loads(body))
                reply = b"{}"
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/metrics"

    def add(self, collector, request):
        points = []
        for rm in request.get("resourceMetrics", []):
            attrs = {a["key"]: a["value"].get("stringValue")
                     for a in rm.get("resource", {}).get("attributes", [])}
            instance = attrs.get("service.instance.id")
            for sm in rm.get("scopeMetrics", []):
                for m in sm.get("metrics", []):
                    if m.get("name") != "up":
                        continue
                    for dp in m.get("gauge", {}).get("dataPoints", []):
                        if dp.get("flags", 0) & 1:
                            continue  # NO_RECORDED_VALUE: the staleness marker of a lost target
                        # OTLP JSON leaves out zero values (proto3 defaults): absent means 0.
                        value = float(dp.get("asDouble", dp.get("asInt", 0)))
                        points.append((int(dp["timeUnixNano"]), instance, value))
        with self.lock:
            self.points.setdefault(collector, []).extend(points)

    def between(self, collector, start_ns, end_ns):
        with self.lock:
            return [(i, v) for t, i, v in self.points.get(collector, []) if start_ns <= t <= end_ns]

    def close(self):
        self.server.shutdown()


class OtelRun(Run):
    def __init__(self, binary, collector_binary, sink):
        super().__init__(binary)
        self.collector_binary = collector_binary
        self.sink = sink

    def add_collector(self, name):
        self.proms[name] = None  # the set of running collectors (check() sorts its keys)
        self.write(f"{name}.yaml", json.dumps({
            "receivers": {"prometheus": {"target_allocator": {
                "endpoint": f"http://127.0.0.1:{self.ta_port}",
                "interval": "1s",
                "collector_id": name,
                "http_sd_config": {"refresh_interval": "1s"}}}},
            "exporters": {"otlphttp": {
                "metrics_endpoint": f"{self.sink.url}/{name}",
                "encoding": "json", "compression": "none"}},
            "service": {
                "pipelines": {"metrics": {"receivers": ["prometheus"], "exporters": ["otlphttp"]}},
                # No internal telemetry server: four collectors would contend for :8888.
                "telemetry": {"metrics": {"level": "none"}}},
        }))
        self.start([self.collector_binary, f"--config={name}.yaml"], f"{name}.log")
        if name not in self.collectors:
            self.collectors.append(name)
            self.write("collectors.txt", "\n".join(self.collectors) + "\n")

    def active(self, collector):
        now = time.time_ns()
        return {i for i, v in self.sink.between(collector, now - RECENT_NS, now) if v == 1}


def check(run, endpoints, expected, step):
    collectors = sorted(run.proms)

    def settled():
        # The allocator must know every collector first: until it reads the new collectors
        # file, a new collector's answer is empty and everything else looks settled.
        if set(get_json(f"http://127.0.0.1:{run.ta_port}/jobs/{JOB}/targets")) != set(collectors):
            return False
        answers = {c: run.answer(c) for c in collectors}
        if set().union(*answers.values()) != set(expected):
            return False
        return all(run.active(c) == answers[c] for c in collectors)

    wait(f"{step}: every collector scraping exactly its answer", settled)
    answers = {c: run.answer(c) for c in collectors}
    total = sum(len(a) for a in answers.values())
    assert total == len(expected), f"{step}: answers overlap: {answers}"
    owner = {t: c for c, ts in answers.items() for t in ts}

    start = time.time_ns()
    requests = endpoints.window(4)
    end = time.time_ns()
    time.sleep(2)  # let the exporters deliver the window's last points
    scraped_by = {}
    for c in collectors:
        points = run.sink.between(c, start, end)
        down = {i for i, v in points if v != 1}
        assert not down, f"{step}: {c} reports up != 1 for {down}"
        for i, _ in points:
            scraped_by.setdefault(i, set()).add(c)
    for t in expected:
        assert scraped_by.get(t) == {owner[t]}, \
            f"{step}: {t} scraped by {scraped_by.get(t)}, owner {owner[t]}"
    stray = set(scraped_by) - set(expected)
    assert not stray, f"{step}: collectors scraped endpoints outside the file: {stray}"
    requested = {f"127.0.0.1:{port}" for port, _ in requests}
    assert requested == set(expected), \
        f"{step}: endpoints requested {sorted(requested)}, expected {sorted(expected)}"
    counts = {c: len(a) for c, a in answers.items()}
    print(f"real_otelcol: {step}: {len(expected)} endpoints, {len(collectors)} collectors, "
          f"each endpoint scraped by its owner only {counts}")


def main():
    binary = os.path.abspath(sys.argv[1])
    collector_binary = os.path.abspath(sys.argv[2])
    endpoints = Endpoints(14)
    first, spare = endpoints.addresses[:12], endpoints.addresses[12:]
    sink = Sink()
    run = OtelRun(binary, collector_binary, sink)
    started = time.time()
    ok = False
    try:
        run.start_allocator(["otelcol-0", "otelcol-1", "otelcol-2"], first)
        for name in ["otelcol-0", "otelcol-1", "otelcol-2"]:
            run.add_collector(name)
        check(run, endpoints, first, "three collectors")
        run.add_collector("otelcol-3")
        check(run, endpoints, first, "a fourth collector added")
        rewritten = first[2:] + spare
        run.write_targets(rewritten)
        check(run, endpoints, rewritten, "file_sd file rewritten")
        ok = True
    finally:
        run.stop()
        endpoints.close()
        sink.close()
        if ok:
            shutil.rmtree(run.dir, ignore_errors=True)
        else:
            print(f"real_otelcol: logs kept in {run.dir}", file=sys.stderr)
    print(f"real_otelcol: passed in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
