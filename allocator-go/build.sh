#!/usr/bin/env bash
# Build the static library the Go package links (target/dist/libtarget_allocator.a: the `dist` profile, with LTO).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --profile dist -p allocator-ffi --manifest-path "$root/Cargo.toml"
