#!/usr/bin/env bash
# Kubernetes discovery against a real API server: kube-apiserver built from the k8s.io/kubernetes
# module (scripts/build-kube-apiserver.sh, cached outside the repository) on Debian's etcd, both on
# loopback, prometheus-operator's CRDs (from the v0.92.0 module) applied by the test, which then
# runs the service against it and checks everything through the service's HTTP API
# (tests/apiserver.rs, an #[ignore]d test run here with --ignored).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v etcd >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server; }
command -v openssl >/dev/null || { apt-get update -qq && apt-get install -y -qq openssl; }
apiserver=$("$root/scripts/build-kube-apiserver.sh")
crds=$(cd "$root/testdata/operator-gen" && go mod download -json github.com/prometheus-operator/prometheus-operator |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')/example/prometheus-operator-crd

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
etcd_client=$(free_port)
etcd_peer=$(free_port)
api_port=$(free_port)

etcd --data-dir "$work/etcd" --listen-client-urls "http://127.0.0.1:$etcd_client" \
  --advertise-client-urls "http://127.0.0.1:$etcd_client" \
  --listen-peer-urls "http://127.0.0.1:$etcd_peer" --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer" \
  --initial-cluster "default=http://127.0.0.1:$etcd_peer" >"$work/etcd.log" 2>&1 &
pids+=($!)

openssl genrsa -out "$work/sa.key" 2048 2>/dev/null
openssl rsa -in "$work/sa.key" -pubout -out "$work/sa.pub" 2>/dev/null
token=$(openssl rand -hex 16)
echo "$token,admin,admin,system:masters" >"$work/tokens.csv"
start=$(date +%s)
"$apiserver" --etcd-servers "http://127.0.0.1:$etcd_client" \
  --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
  --cert-dir "$work/certs" --token-auth-file "$work/tokens.csv" --authorization-mode RBAC \
  --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$work/sa.pub" \
  --service-account-signing-key-file "$work/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
  --disable-admission-plugins ServiceAccount --enable-priority-and-fairness=false \
  >"$work/apiserver.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  if curl -skf -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz" >/dev/null; then break; fi
  sleep 0.5
done
curl -skf -H "Authorization: Bearer $token" "https://127.0.0.1:$api_port/readyz" >/dev/null ||
  { echo "apiserver: not ready; log:" >&2; tail -30 "$work/apiserver.log" >&2; exit 1; }
echo "apiserver: ready in $(($(date +%s) - start)) s on 127.0.0.1:$api_port" >&2

cat >"$work/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters: [{name: local, cluster: {server: "https://127.0.0.1:$api_port", insecure-skip-tls-verify: true}}]
users: [{name: admin, user: {token: "$token"}}]
contexts: [{name: local, context: {cluster: local, user: admin}}]
current-context: local
KC
cd "$root"
KUBECONFIG_TEST="$work/kubeconfig" CRD_DIR="$crds" RBAC_MANIFEST="$root/examples/k8s/01-rbac.yaml" \
  nice cargo test -q -p allocator-service --test apiserver -- --ignored --nocapture
