#!/usr/bin/env bash
# Build the static library the Go package links (the `dist` profile, with LTO) and leave it
# where the package's default cgo directive (link.go) looks: target/dist/libtarget_allocator.a
# at the repository root. Cargo builds into its own target directory (CARGO_TARGET_DIR or a
# config's build.target-dir may move it); when that is elsewhere, the library is copied there,
# so the Go build links what was just built instead of failing or linking a stale copy.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
manifest="$root/Cargo.toml"
cargo build --profile dist -p allocator-ffi --manifest-path "$manifest"

# Cargo's own answer for the target directory, resolved as the build above resolved it.
target_dir=$(cargo metadata --format-version 1 --no-deps --manifest-path "$manifest" |
  sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
if [ -z "$target_dir" ]; then
  echo "build.sh: cargo metadata gave no target_directory" >&2
  exit 1
fi
built="$target_dir/dist/libtarget_allocator.a"
wanted="$root/target/dist/libtarget_allocator.a"
if [ ! -f "$built" ]; then
  echo "build.sh: cargo reported success but $built is missing" >&2
  exit 1
fi
if [ ! "$built" -ef "$wanted" ]; then
  mkdir -p "$(dirname "$wanted")"
  # Copy then rename: a Go build running meanwhile sees the old library or the new, never half.
  cp "$built" "$wanted.tmp.$$"
  mv -f "$wanted.tmp.$$" "$wanted"
  echo "build.sh: copied $built to $wanted (the Go package's default link path)"
fi
