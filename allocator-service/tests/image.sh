#!/usr/bin/env bash
# Build the service image with Debian's buildah from `scratch` and a locally assembled root
# filesystem (allocator-service/image/Containerfile), run it with podman on loopback with a file
# configuration, and check /readyz, /jobs and /jobs/<job>/targets from outside the container.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v podman >/dev/null && command -v buildah >/dev/null && command -v runc >/dev/null ||
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah runc; }
cd "$root"
nice cargo build -q --release -p allocator-service --bin target-allocator
bin="${CARGO_TARGET_DIR:-$root/target}/release/target-allocator"

ctx=$(mktemp -d)
name="ta-image-test-$$"
cleanup() {
  podman rm -f "$name" >/dev/null 2>&1 || true
  rm -rf "$ctx"
}
trap cleanup EXIT
rootfs="$ctx/rootfs"
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/conf" "$rootfs/tmp"
cp "$bin" "$rootfs/usr/local/bin/target-allocator"
# The loader and every shared library the binary links (glibc, libgcc_s, ...), at their paths.
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  mkdir -p "$rootfs$(dirname "$lib")"
  cp -L "$lib" "$rootfs$lib"
done
cp /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/" 2>/dev/null || true
echo "nonroot:x:65532:65532::/tmp:/sbin/nologin" >"$rootfs/etc/passwd"
echo "nonroot:x:65532:" >"$rootfs/etc/group"
cat >"$rootfs/conf/targetallocator.yaml" <<'YAML'
allocation_strategy: consistent-hashing
collectors: [collector-0, collector-1]
config:
  scrape_configs:
    - job_name: static
      static_configs:
        - targets: ["10.0.0.1:9100", "10.0.0.2:9100", "10.0.0.3:9100"]
YAML
cp allocator-service/image/Containerfile "$ctx/"
start=$(date +%s)
buildah bud --quiet --layers=false -t localhost/target-allocator:test -f "$ctx/Containerfile" "$ctx" >/dev/null
echo "image: built in $(($(date +%s) - start)) s; $(podman image inspect localhost/target-allocator:test --format '{{.Size}}') bytes" >&2
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
# runc with explicit limits: on machines of this kind (cgroup v1 with an empty v2 hierarchy, and
# an OCI runtime not allowed to raise rlimits to podman's defaults) crun refuses to start
# ("cgroups in hybrid mode not supported", "setrlimit RLIMIT_NOFILE: Operation not permitted").
podman --runtime runc run -d --name "$name" --ulimit nofile=4096:4096 --ulimit nproc=4096:4096 \
  -p "127.0.0.1:$port:8080" localhost/target-allocator:test >/dev/null
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/readyz" >/dev/null || { podman logs "$name" >&2; exit 1; }
jobs=$(curl -sf "http://127.0.0.1:$port/jobs")
[ "$jobs" = '{"static":{"_link":"/jobs/static/targets"}}' ] || { echo "image: /jobs gave $jobs" >&2; exit 1; }
n=$(curl -sf "http://127.0.0.1:$port/jobs/static/targets" |
  python3 -c 'import json,sys; print(sum(len(c["targets"]) for c in json.load(sys.stdin).values()))')
[ "$n" = 3 ] || { echo "image: $n targets served, want 3" >&2; exit 1; }
echo "image: runs as $(podman inspect "$name" --format '{{.Config.User}}'), /readyz 200, /jobs and 3 targets served"
