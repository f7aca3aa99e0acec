#!/usr/bin/env bash
# Builds the OpenTelemetry Collector of testdata/e2e-collector/builder-config.yaml with the
# collector builder, outside the repository, and prints the binary's path. Cached: the build
# directory is keyed by the hash of the manifest and the builder's version, so the collector is
# rebuilt only when one of them changes. Everything comes from the Go module proxy.
# Cache: $E2E_CACHE (default ~/.cache/target-allocator-e2e). The build is long (the prometheus
# receiver pulls in Prometheus and its service discoveries), so it runs at nice 19.
set -euo pipefail
BUILDER_VERSION=v0.165.0
root=$(cd "$(dirname "$0")/.." && pwd)
manifest=$root/testdata/e2e-collector/builder-config.yaml
cache=${E2E_CACHE:-$HOME/.cache/target-allocator-e2e}
mkdir -p "$cache"

builder=$cache/builder-$BUILDER_VERSION
if [ ! -x "$builder" ]; then
  echo "e2e-collector: installing the collector builder $BUILDER_VERSION" >&2
  GOBIN=$cache/bin.tmp nice -n 19 go install "go.opentelemetry.io/collector/cmd/builder@$BUILDER_VERSION" >&2
  mv "$cache/bin.tmp/builder" "$builder"
  rmdir "$cache/bin.tmp"
fi

key=$( (cat "$manifest"; echo "$BUILDER_VERSION") | sha256sum | cut -c1-16)
dir=$cache/otelcol-$key
binary=$dir/otelcol-ta-e2e/otelcol-ta-e2e
if [ ! -x "$binary" ]; then
  echo "e2e-collector: building the collector (cache key $key; this takes long the first time)" >&2
  rm -rf "$dir.tmp"
  mkdir -p "$dir.tmp"
  cp "$manifest" "$dir.tmp/builder-config.yaml"
  start=$(date +%s)
  (cd "$dir.tmp" && nice -n 19 "$builder" --config builder-config.yaml >build.log 2>&1) || {
    tail -n 40 "$dir.tmp/build.log" >&2
    echo "e2e-collector: the collector build failed; full log in $dir.tmp/build.log" >&2
    exit 1
  }
  rm -rf "$dir"
  mv "$dir.tmp" "$dir"
  echo "e2e-collector: collector built in $(( $(date +%s) - start )) s" >&2
fi
echo "$binary"
