#!/usr/bin/env bash
# Build the static library the Go package links (target/release/libtarget_allocator.a).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cargo build --release -p allocator-ffi --manifest-path "$root/Cargo.toml"
