#!/usr/bin/env python3
"""Real clients: Debian's `prometheus` servers as collectors of our Target Allocator.

Each Prometheus has one job with `http_sd_configs` on its own `?collector_id=` URL (what the
OpenTelemetry Collector's prometheus receiver configures) and scrapes real endpoints on loopback,
with a `scraper` parameter naming itself so that every endpoint records who scraped it. Checked,
with three collectors, after a fourth is added, and after the file_sd file is rewritten:
  - each Prometheus' active targets equal the allocator's answer for it;
  - the answers are disjoint and cover every endpoint in the file;
  - over a quiet window every endpoint is scraped by exactly one Prometheus, its owner.
Usage: real_prometheus.py <target-allocator binary>. Bounded: each wait is at most 60 s.
"""

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

JOB = "loopback"
WAIT = 60


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Endpoints:
    """Metric endpoints on loopback; each records (port, scraper) per scrape."""

    def __init__(self, n):
        self.lock = threading.Lock()
        self.seen = []
        self.servers = []
        for _ in range(n):
            outer = self

            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    scraper = self.path.partition("scraper=")[2].split("&")[0]
                    with outer.lock:
                        outer.seen.append((self.server.server_address[1], scraper))
                    body = b"# TYPE probe gauge\nprobe 1\n"
                    try:
                        self.send_response(200)
                        self.send_header("Content-Type", "text/plain; version=0.0.4")
                        self.send_header("Content-Length", str(len(body)))
                        self.end_headers()
                        self.wfile.write(body)
                    except (BrokenPipeError, ConnectionResetError):
                        pass  # a Prometheus stopped mid-scrape at the end of the run

                def log_message(self, *args):
                    pass

            srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
            threading.Thread(target=srv.serve_forever, daemon=True).start()
            self.servers.append(srv)
        self.addresses = [f"127.0.0.1:{s.server_address[1]}" for s in self.servers]

    def window(self, seconds):
        with self.lock:
            self.seen.clear()
        time.sleep(seconds)
        with self.lock:
            return list(self.seen)

    def close(self):
        for s in self.servers:
            s.shutdown()


def get_json(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


class Run:
    def __init__(self, binary):
        self.dir = tempfile.mkdtemp(prefix="real-prometheus-")
        self.procs = []
        self.binary = binary
        self.proms = {}

    def start(self, args, log):
        p = subprocess.Popen(args, stdout=open(os.path.join(self.dir, log), "w"),
                             stderr=subprocess.STDOUT, cwd=self.dir)
        self.procs.append(p)
        return p

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)

    def start_allocator(self, collectors, targets):
        self.collectors = list(collectors)
        self.write("collectors.txt", "\n".join(collectors) + "\n")
        self.write_targets(targets)
        self.ta_port = free_port()
        self.write("ta.yaml", json.dumps({
            "collectors_file": "collectors.txt",
            "config": {"scrape_configs": [{
                "job_name": JOB, "scrape_interval": "1s",
                "file_sd_configs": [{"files": ["targets.json"]}]}]},
        }))
        self.start([self.binary, "--config-file", "ta.yaml",
                    "--listen-addr", f"127.0.0.1:{self.ta_port}"], "ta.log")
        wait("the allocator is ready", lambda: self.ready())

    def ready(self):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{self.ta_port}/readyz", timeout=2)
            return True
        except OSError:
            return False

    def write_targets(self, targets):
        self.write("targets.json", json.dumps([{"targets": targets, "labels": {"env": "e2e"}}]))

    def add_collector(self, name):
        self.proms[name] = port = free_port()
        self.write(f"{name}.yml", json.dumps({
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
            "scrape_configs": [{
                "job_name": JOB, "scrape_interval": "1s", "scrape_timeout": "1s",
                "params": {"scraper": [name]},
                "http_sd_configs": [{
                    "url": f"http://127.0.0.1:{self.ta_port}/jobs/{JOB}/targets?collector_id={name}",
                    "refresh_interval": "1s"}]}]}))
        self.start(["prometheus", f"--config.file={name}.yml",
                    f"--storage.tsdb.path=data-{name}",
                    f"--web.listen-address=127.0.0.1:{port}"], f"{name}.log")
        if name not in self.collectors:
            self.collectors.append(name)
            self.write("collectors.txt", "\n".join(self.collectors) + "\n")

    def answer(self, collector):
        url = f"http://127.0.0.1:{self.ta_port}/jobs/{JOB}/targets?collector_id={collector}"
        return {t for g in get_json(url) for t in g["targets"]}

    def active(self, collector):
        try:
            data = get_json(f"http://127.0.0.1:{self.proms[collector]}/api/v1/targets?state=active")
        except OSError:
            return None
        return {t["discoveredLabels"]["__address__"] for t in data["data"]["activeTargets"]
                if t["health"] == "up"}

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def wait(what, cond):
    deadline = time.time() + WAIT
    while time.time() < deadline:
        if cond():
            return
        time.sleep(0.5)
    raise SystemExit(f"real_prometheus: timed out waiting for {what}")


def check(run, endpoints, expected, step):
    collectors = sorted(run.proms)

    def settled():
        # The allocator must know every collector first: a collector it has not read yet has an
        # empty answer, and an empty answer scraped by nobody would pass the checks below.
        if set(get_json(f"http://127.0.0.1:{run.ta_port}/jobs/{JOB}/targets")) != set(collectors):
            return False
        answers = {c: run.answer(c) for c in collectors}
        if set().union(*answers.values()) != set(expected):
            return False
        return all(run.active(c) == answers[c] for c in collectors)

    wait(f"{step}: every Prometheus scraping exactly its answer", settled)
    answers = {c: run.answer(c) for c in collectors}
    total = sum(len(a) for a in answers.values())
    assert total == len(expected), f"{step}: answers overlap: {answers}"
    owner = {t: c for c, ts in answers.items() for t in ts}
    scrapes = endpoints.window(4)
    by_target = {}
    for port, scraper in scrapes:
        by_target.setdefault(f"127.0.0.1:{port}", set()).add(scraper)
    for t in expected:
        assert by_target.get(t) == {owner[t]}, \
            f"{step}: {t} scraped by {by_target.get(t)}, owner {owner[t]}"
    stray = set(by_target) - set(expected)
    assert not stray, f"{step}: endpoints outside the file were scraped: {stray}"
    counts = {c: len(a) for c, a in answers.items()}
    print(f"real_prometheus: {step}: {len(expected)} endpoints, {len(collectors)} Prometheus "
          f"servers, each endpoint scraped by its owner only {counts}")


def main():
    binary = os.path.abspath(sys.argv[1])
    if not shutil.which("prometheus"):
        raise SystemExit("real_prometheus: prometheus not installed (scripts/install-prometheus.sh)")
    endpoints = Endpoints(14)
    first, spare = endpoints.addresses[:12], endpoints.addresses[12:]
    run = Run(binary)
    started = time.time()
    try:
        run.start_allocator(["prom-0", "prom-1", "prom-2"], first)
        for name in ["prom-0", "prom-1", "prom-2"]:
            run.add_collector(name)
        check(run, endpoints, first, "three collectors")
        run.add_collector("prom-3")
        check(run, endpoints, first, "a fourth collector added")
        rewritten = first[2:] + spare
        run.write_targets(rewritten)
        check(run, endpoints, rewritten, "file_sd file rewritten")
    finally:
        run.stop()
        endpoints.close()
        shutil.rmtree(run.dir, ignore_errors=True)
    print(f"real_prometheus: passed in {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
