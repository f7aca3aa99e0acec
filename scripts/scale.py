#!/usr/bin/env python3
"""The service (or any Target Allocator) at 100k, 500k and 1M file_sd targets: first answer,
resident memory, churn latency and requests/s. `make scale`; not part of `make test`.

For each size: write a file_sd JSON file (one target per group, three `__meta_*` labels), start
the allocator on it (10 collectors, consistent-hashing, loopback), and measure
- first answer: from the start (or, with --address, from the file's write) until the
  `?collector_id=` answers of all collectors hold every target;
- memory: VmRSS and VmHWM of the process (needs its pid: ours, or --pid);
- churn: --cycles times, rewrite the file with 1% of the targets re-addressed, and poll every
  collector's answer until it shows exactly the new addresses (write -> visible); VmRSS after
  each cycle (growth across cycles is reported);
- requests/s: `ta-loadtest --address` (64 keep-alive clients polling `?collector_id=`), plain
  and with `Accept-Encoding: gzip`.

With --address HOST:PORT --file PATH [--job NAME] [--pid PID] it starts nothing: it writes PATH
(the file_sd file that allocator reads) and measures that allocator, e.g. the Go one.
"""

import argparse
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))


def entry(i, port):
    return (
        '{"targets":["10.%d.%d.%d:%d"],"labels":{"__meta_pod":"pod-%d",'
        '"__meta_namespace":"ns-%d","__meta_node":"node-%d"}}'
        % (i >> 16 & 255, i >> 8 & 255, i & 255, port, i, i % 97, i % 1000)
    )


class File:
    """The file_sd file: n targets; `churn(c)` re-addresses 1% of them (port 10000 + c)."""

    def __init__(self, path, n):
        self.path, self.n = path, n
        self.lines = [entry(i, 9100) for i in range(n)]

    def write(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            f.write("[\n")
            f.write(",\n".join(self.lines))
            f.write("\n]\n")
        os.rename(tmp, self.path)

    def churn(self, cycle):
        changed = 0
        for i in range(cycle % 100, self.n, 100):
            self.lines[i] = entry(i, 10000 + cycle)
            changed += 1
        return changed


class Poller:
    """Keep-alive connections, one per collector, polling `?collector_id=` answers in parallel."""

    def __init__(self, host, port, job, collectors):
        self.host, self.port, self.job, self.collectors = host, port, job, collectors

    def bodies(self, only=None):
        """Every collector's answer (or only the first `only` of them)."""
        out = [b""] * len(self.collectors[:only])

        def fetch(k):
            c = http.client.HTTPConnection(self.host, self.port, timeout=60)
            try:
                c.request("GET", "/jobs/%s/targets?collector_id=%s" % (self.job, self.collectors[k]))
                r = c.getresponse()
                body = r.read()
                out[k] = body if r.status == 200 else b""
            except OSError:
                out[k] = b""
            finally:
                c.close()

        threads = [threading.Thread(target=fetch, args=(k,)) for k in range(len(out))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return out

    def wait(self, ok, limit, only=None):
        """Poll until ok(bodies) holds; seconds taken, None after `limit` seconds."""
        start = time.monotonic()
        while time.monotonic() - start < limit:
            if ok(self.bodies(only)):
                return time.monotonic() - start
            time.sleep(0.05)
        return None


def collectors_of(host, port, job, limit=600):
    """The collectors the allocator lists for `job` (its Go-compatible listing)."""
    import json

    start = time.monotonic()
    while time.monotonic() - start < limit:
        try:
            c = http.client.HTTPConnection(host, port, timeout=60)
            c.request("GET", "/jobs/%s/targets" % job)
            r = c.getresponse()
            body = r.read()
            c.close()
            if r.status == 200:
                names = sorted(json.loads(body))
                if names:
                    return names
        except (OSError, ValueError):
            pass
        time.sleep(0.1)
    sys.exit("no collectors listed for job %s at %s:%d" % (job, host, port))


def memory(pid):
    if not pid:
        return None
    try:
        status = open("/proc/%d/status" % pid).read()
    except OSError:
        return None
    kb = lambda k: int(re.search(r"^%s:\s+(\d+) kB" % k, status, re.M).group(1))
    return kb("VmRSS") * 1024, kb("VmHWM") * 1024


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def loadtest(binary, address, job, seconds, gzip):
    cmd = [binary, "--address", address, "--job", job, "--clients", "64", "--seconds", str(seconds)]
    if gzip:
        cmd.append("--gzip")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 900)
    line = (r.stdout.strip().splitlines() or [r.stderr.strip()[-300:]])[-1]
    m = re.search(r"([\d.]+) req/s, ([\d.]+) MB/s \(([\d.]+) bytes/answer\), p50 ([\d.]+) ms, p99 ([\d.]+) ms", line)
    return (m.groups() if m else None), line


def from_log(path, what, field="seconds"):
    """`field=` (default `seconds=`) of every log line saying `what` (our service's own
    account: timings, heap bytes)."""
    try:
        lines = [re.sub(r"\x1b\[[0-9;]*m", "", l) for l in open(path, errors="replace") if what in l]
    except OSError:
        return []
    found = (re.search(r"\b%s=([\d.e-]+)" % field, l) for l in lines)
    return [float(m.group(1)) for m in found if m]


def run(size, args, work):
    path = args.file or os.path.join(work, "targets.json")
    f = File(path, size)
    proc, log, pid = None, None, args.pid
    if args.address:
        host, port = args.address.rsplit(":", 1)
        port = int(port)
        start = time.monotonic()
        f.write()
    else:
        host, port = "127.0.0.1", free_port()
        f.write()
        names = ["c%d" % k for k in range(args.collectors)]
        cfg = os.path.join(work, "config.yaml")
        with open(cfg, "w") as c:
            c.write(
                "allocation_strategy: consistent-hashing\ncollectors: [%s]\nconfig:\n"
                "  scrape_configs:\n    - job_name: %s\n      file_sd_configs:\n"
                "        - files: [%s]\n" % (", ".join(names), args.job, path)
            )
        log = os.path.join(work, "service.log")
        start = time.monotonic()
        proc = subprocess.Popen(
            [args.binary, "--config-file", cfg, "--listen-addr", "%s:%d" % (host, port)],
            stdout=open(log, "w"),
            stderr=subprocess.STDOUT,
        )
        pid = proc.pid
    try:
        collectors = collectors_of(host, port, args.job)
        poller = Poller(host, port, args.job, collectors)
        total = lambda bodies: sum(b.count(b'"targets"') for b in bodies)
        first = poller.wait(lambda b: total(b) == size, 900)
        first = None if first is None else time.monotonic() - start
        mem0 = memory(pid)
        latencies, rss = [], []
        for cycle in range(1, args.cycles + 1):
            changed = f.churn(cycle)
            marker = (':%d"' % (10000 + cycle)).encode()
            f.write()
            # Polling one collector keeps the poller from competing with the allocator for the
            # CPU (a full round at 1M targets is 200 MB of JSON); a view is published whole, so
            # the change shows in every answer at once. Then every answer is checked in full.
            seen = poller.wait(lambda b: b[0].count(marker) > 0, 120, only=1)
            exact = poller.wait(
                lambda b: total(b) == size and sum(x.count(marker) for x in b) == 2 * changed, 120
            )
            if exact is None:
                sys.exit("%d targets, cycle %d: the answers never held exactly the new addresses" % (size, cycle))
            latencies.append(seen)
            m = memory(pid)
            if m:
                rss.append(m[0])
        # The churn cycles' (the first read and view are the start's).
        read_s = from_log(log, "watched file read")[1:] if log else []
        publish_s = from_log(log, "view published")[1:] if log else []
        # Per churn tick: seconds from the loop taking the file to the end of each phase
        # (relabeled and collected, applied to the allocator, answers built), and the heap.
        phases = {f: from_log(log, "view published", f)[1:] if log else []
                  for f in ("collected", "applied", "built", "heap_used", "heap_free")}
        if log:
            shutil.copy(log, os.path.join(TARGET, "scale-%d.log" % size))
        mem1 = memory(pid)
        dashboard = page(host, port, "/", {"Accept": "text/html"})
        loads = [loadtest(args.loadtest, "%s:%d" % (host, port), args.job, args.seconds, g) for g in (False, True)]
    finally:
        if proc:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    return {
        "size": size,
        "first": first,
        "mem0": mem0,
        "mem1": mem1,
        "latencies": latencies,
        "rss": rss,
        "read_s": read_s,
        "publish_s": publish_s,
        "phases": phases,
        "loads": loads,
        "dashboard": dashboard,
        "file_bytes": os.path.getsize(path),
    }


def page(host, port, path, headers):
    """(status, bytes, seconds) of one GET: the dashboard must stay small and quick at any size."""
    start = time.monotonic()
    conn = http.client.HTTPConnection(host, port, timeout=60)
    try:
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        return resp.status, len(body), time.monotonic() - start
    finally:
        conn.close()


def fmt_s(x):
    return "timeout" if x is None else "%.2f s" % x


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="100000,500000,1000000")
    p.add_argument("--binary", default=os.path.join(TARGET, "release", "target-allocator"))
    p.add_argument("--loadtest", default=os.path.join(TARGET, "release", "ta-loadtest"))
    p.add_argument("--address", help="measure the allocator at HOST:PORT instead of starting ours")
    p.add_argument("--file", help="with --address: the file_sd file that allocator reads (written here)")
    p.add_argument("--pid", type=int, help="with --address: its process id, for memory")
    p.add_argument("--job", default="scale")
    p.add_argument("--collectors", type=int, default=10)
    p.add_argument("--cycles", type=int, default=10)
    p.add_argument("--seconds", type=int, default=5, help="each load test's duration")
    args = p.parse_args()
    if args.address and not args.file:
        p.error("--address needs --file")
    for b in ([args.loadtest] if args.address else [args.binary, args.loadtest]):
        if not os.access(b, os.X_OK):
            p.error("%s is not built (cargo build --release -p allocator-service --bins)" % b)
    print("machine: %s, %d CPUs, %s" % (
        os.uname().machine, os.cpu_count(),
        re.search(r"MemTotal:\s+(\d+ kB)", open("/proc/meminfo").read()).group(1)))
    rows = []
    for size in [int(s) for s in args.sizes.split(",")]:
        with tempfile.TemporaryDirectory(prefix="ta-scale-") as work:
            r = run(size, args, work)
        rows.append(r)
        lat = [x for x in r["latencies"] if x is not None]
        print("\n== %d targets (file %.0f MB)" % (size, r["file_bytes"] / 1e6))
        print("first answer: %s" % fmt_s(r["first"]))
        if r["mem0"]:
            print("after first answer: VmRSS %.0f MiB (%.0f B/target), VmHWM %.0f MiB"
                  % (r["mem0"][0] / 2**20, r["mem0"][0] / size, r["mem0"][1] / 2**20))
        if r["mem1"]:
            print("after %d churn cycles: VmRSS %.0f MiB (%.0f B/target), VmHWM %.0f MiB; VmRSS per cycle (MiB): %s"
                  % (len(r["latencies"]), r["mem1"][0] / 2**20, r["mem1"][0] / size, r["mem1"][1] / 2**20,
                     " ".join("%.0f" % (x / 2**20) for x in r["rss"])))
        print("1%% churn, write -> visible: %s (median %s, max %s, %d timeouts)" % (
            " ".join(fmt_s(x) for x in r["latencies"]),
            fmt_s(sorted(lat)[len(lat) // 2]) if lat else "-",
            fmt_s(max(lat)) if lat else "-",
            len(r["latencies"]) - len(lat)))
        if r["read_s"]:
            print("in the service, per churn: file read + parsed (s): %s; view published after the loop took it (s): %s"
                  % (" ".join("%.2f" % x for x in r["read_s"]), " ".join("%.2f" % x for x in r["publish_s"])))
            ph = r["phases"]
            med = lambda xs: sorted(xs)[len(xs) // 2] if xs else float("nan")
            if ph["built"]:
                print("  medians: collected %.2f s, applied %.2f s, answers built %.2f s; heap in use %.0f MiB, free %.0f MiB"
                      % (med(ph["collected"]), med(ph["applied"]), med(ph["built"]),
                         med(ph["heap_used"]) / 2**20, med(ph["heap_free"]) / 2**20))
        status, size_b, secs = r["dashboard"]
        print("dashboard (/): status %d, %d bytes in %.2f s" % (status, size_b, secs))
        for (parsed, line), label in zip(r["loads"], ("plain", "gzip")):
            print("load (%s): %s" % (label, line))
    return 0


if __name__ == "__main__":
    sys.exit(main())
