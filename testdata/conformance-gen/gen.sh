#!/usr/bin/env bash
# Regenerate the conformance goldens (allocator-service/tests/conformance/golden/) from the Go
# Target Allocator's own code. The Operator's module is not on the Go module proxy, so this
# builds main.go inside a snapshot of the Operator's source kept OUTSIDE the repository:
#
#   OPERATOR_SRC  a directory holding the Operator's source at OPERATOR_COMMIT
#                 (default /work/ext/otel-operator; extracted from OPERATOR_MIRROR if absent)
#   OPERATOR_MIRROR  a bare git clone of github.com/open-telemetry/opentelemetry-operator
#
# The snapshot's go.mod links buraksezer/consistent v1.0.0 (the Operator's main branch); a second
# build uses an alternative go.mod (-modfile) with v0.10.0 (the Operator's release), so both
# ring versions come from the same allocator code. Each case runs in a fresh process.
set -euo pipefail
OPERATOR_COMMIT=be8944414a876f17fcdeb5a59b86b8866fb5c88e
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
src=${OPERATOR_SRC:-/work/ext/otel-operator}
mirror=${OPERATOR_MIRROR:-/work/.mirror/open-telemetry+opentelemetry-operator/repo}
cases="$repo/allocator-service/tests/conformance/cases"
golden="$repo/allocator-service/tests/conformance/golden"

if [ ! -f "$src/go.mod" ]; then
  mkdir -p "$src"
  git --git-dir="$mirror" archive "$OPERATOR_COMMIT" | tar x -C "$src"
fi
if [ -d "$mirror" ]; then
  git --git-dir="$mirror" cat-file -e "$OPERATOR_COMMIT^{commit}"
fi

pkg="$src/cmd/otel-allocator/internal/conformancegen"
mkdir -p "$pkg" "$golden"
cp "$here/main.go" "$here/pages.go" "$pkg/"
bin="$src/.conformancegen"
mkdir -p "$bin"
(cd "$src" && go vet ./cmd/otel-allocator/internal/conformancegen && go build -o "$bin/gen-v1.0.0" ./cmd/otel-allocator/internal/conformancegen)
sed 's#github.com/buraksezer/consistent v1.0.0#github.com/buraksezer/consistent v0.10.0#' "$src/go.mod" > "$src/go.v0.10.0.mod"
cp "$src/go.sum" "$src/go.v0.10.0.sum"
(cd "$src" && GOFLAGS=-mod=mod go build -modfile=go.v0.10.0.mod -o "$bin/gen-v0.10.0" ./cmd/otel-allocator/internal/conformancegen)

for c in "$cases"/*/; do
  name=$(basename "$c")
  ring=$(sed -n 's/^ring: *//p' "$c/config.yaml")
  ring=${ring:-v0.10.0}
  "$bin/gen-$ring" -case "$c" -out "$golden/$name.json" -commit "$OPERATOR_COMMIT" -ring "$ring"
  echo "golden: $name ($ring)"
done
