#!/usr/bin/env bash
# The receiver-side check (receivercheck/main.go) on every conformance case: our service runs the
# case on a loopback port, and the check reads it as the collector's prometheus receiver does,
# comparing what the receiver makes of our /scrape_configs with what it makes of the Go
# allocator's (the committed golden). Needs only the Go module proxy (Prometheus' packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
target=${CARGO_TARGET_DIR:-$repo/target}
cargo build -q -p allocator-service --bin target-allocator
bin="$target/debug/target-allocator"
check="$target/receivercheck"
(cd "$here/receivercheck" && GOFLAGS=-mod=readonly go build -o "$check" .)
cases="$repo/allocator-service/tests/conformance/cases"
golden="$repo/allocator-service/tests/conformance/golden"
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null || true' EXIT
for c in "$cases"/*/; do
  name=$(basename "$c")
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  (cd "$c" && exec "$bin" --config-file config.yaml --listen-addr "127.0.0.1:$port") >"$target/receivercheck-$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  collector=$(sed -n 's/^collectors: *\[\([^],]*\).*/\1/p' "$c/config.yaml")
  echo -n "$name: "
  "$check" -url "http://127.0.0.1:$port" -collector "$collector" -golden "$golden/$name.json"
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
done
