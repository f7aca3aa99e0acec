#!/usr/bin/env bash
# The dashboard in real headless Chromium: start the service on a copy of the sample
# configuration, render `/`, check the rendered DOM for the totals and every collector's target
# count (as the JSON API reports them), and save a screenshot as a test artifact
# (target/dashboard/dashboard.png). Installs Debian's chromium when it is missing.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$root"
out="$root/target/dashboard"
rm -rf "$out" && mkdir -p "$out/run/data"

if ! command -v chromium >/dev/null; then
  echo "== installing chromium (Debian)"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null 2>&1 || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  }
fi

cargo build -q -p allocator-service --bin target-allocator
cp allocator-service/config.yaml "$out/run/"
cp allocator-service/data/* "$out/run/data/"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
target/debug/target-allocator --config-file "$out/run/config.yaml" --listen-addr "127.0.0.1:$port" \
  >"$out/service.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.1
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { cat "$out/service.log"; exit 1; }

chrome=(chromium --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --hide-scrollbars)
"${chrome[@]}" --dump-dom "http://127.0.0.1:$port/" >"$out/dom.html" 2>"$out/chromium.log"
"${chrome[@]}" --window-size=1100,1000 --screenshot="$out/dashboard.png" "http://127.0.0.1:$port/" \
  >>"$out/chromium.log" 2>&1
test -s "$out/dashboard.png" || { echo "no screenshot"; cat "$out/chromium.log"; exit 1; }

# Expected numbers from the JSON API, checked against the DOM Chromium rendered.
python3 - "$port" "$out/dom.html" <<'PY'
import json, re, sys, urllib.request
port, dom_path = sys.argv[1], sys.argv[2]
dom = open(dom_path).read()
get = lambda p: json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}{p}"))
jobs = get("/jobs")
per = {}
total = 0
for job in jobs:
    for collector, entry in get(f"/jobs/{job}/targets").items():
        per[collector] = per.get(collector, 0) + len(entry["targets"])
        total += len(entry["targets"])
def cell(id_):
    m = re.search(rf'<td id="{id_}">(\d+)</td>', dom)
    assert m, f"no #{id_} in the rendered DOM"
    return int(m.group(1))
assert cell("targets") == total, (cell("targets"), total)
assert cell("jobs") == len(jobs), (cell("jobs"), len(jobs))
assert cell("collectors") == len(per), (cell("collectors"), len(per))
for collector, n in per.items():
    m = re.search(rf'data-collector="{re.escape(collector)}"[^>]*>(\d+)<', dom)
    assert m and int(m.group(1)) == n, f"{collector}: DOM {m and m.group(1)} vs API {n}"
print(f"dashboard: {total} targets, {len(jobs)} jobs, per collector {per} (DOM = API)")
PY
echo "screenshot: $out/dashboard.png"

# Graceful shutdown: SIGTERM ends the service with status 0.
kill -TERM $pid
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then echo "still running 10 s after SIGTERM"; exit 1; fi
wait $pid
echo "SIGTERM: exited with status 0"
