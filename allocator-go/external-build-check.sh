#!/usr/bin/env bash
# The documented route for a copy of the package outside this repository (vendored, or a
# module's replace to a copied directory): build a consumer with -tags target_allocator_external
# and the header and library given only in CGO_CFLAGS/CGO_LDFLAGS, then run it. The copy sits
# where its ${SRCDIR}/../include and ../target do not exist, and header and library are copied
# to directories of their own, so only the environment can lead the build to them.
# The consumer is examples/go-collector, which fails on a wrong assignment.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
lib="$root/target/dist/libtarget_allocator.a"
if [ ! -f "$lib" ]; then
  echo "external-build-check: $lib is missing: run allocator-go/build.sh first" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/copy" "$work/c/include" "$work/c/lib"
cp -r "$root/allocator-go" "$work/copy/allocator-go"
cp "$root/include/target_allocator.h" "$work/c/include/"
cp "$lib" "$work/c/lib/"
cp -r "$root/examples/go-collector" "$work/app"

cd "$work/app"
go mod edit -replace "github.com/target-allocator-rs/allocator-go=$work/copy/allocator-go"
CGO_CFLAGS="-I$work/c/include" \
  CGO_LDFLAGS="$work/c/lib/libtarget_allocator.a -ldl -lm -lpthread" \
  GOFLAGS=-mod=readonly go build -tags target_allocator_external -o "$work/go-collector" .
"$work/go-collector" >"$work/out.txt"
grep -q 'every target has exactly one collector' "$work/out.txt"
echo "external-build-check: a copy of allocator-go outside the repository built with -tags target_allocator_external and CGO_CFLAGS/CGO_LDFLAGS, and ran"
