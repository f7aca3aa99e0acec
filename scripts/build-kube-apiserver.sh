#!/usr/bin/env bash
# Build kube-apiserver from the k8s.io/kubernetes module served by the Go module proxy, outside
# the repository, into a cache directory; a second run with the binary present does nothing.
# The kubernetes module's go.mod replaces its staging modules (k8s.io/api, ...) with local
# directories that the proxy's zip does not carry, so this module pins each of them to the
# published version of the same release (v1.X.Y <-> v0.X.Y).
#   KUBE_VERSION (default v1.33.13), KUBE_CACHE (default ${XDG_CACHE_HOME:-$HOME/.cache}/allocator-kube)
# Prints the binary's path on stdout.
set -euo pipefail
version=${KUBE_VERSION:-v1.33.13}
cache=${KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/allocator-kube}
dir="$cache/kube-apiserver-$version"
# Named for the version it reports: built without the version ldflags, the server said
# "v0.0.0-master+$Format:%H$", which clients that parse it (prometheus-operator's, in the Go
# allocator) refuse.
bin="$dir/kube-apiserver-versioned"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
mkdir -p "$dir/src"
cd "$dir/src"
staging_version="v0.${version#v1.}"
mod_url="https://proxy.golang.org/k8s.io/kubernetes/@v/$version.mod"
{
  echo "module allocator.local/kube-apiserver"
  echo
  echo "go 1.24"
  echo
  echo "require k8s.io/kubernetes $version"
  echo
  # Every staging module the kubernetes go.mod replaces with ./staging/src/...
  go mod download -json "k8s.io/kubernetes@$version" >/dev/null
  gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod
  grep -E '^\s*k8s\.io/[a-z0-9-]+ => \./staging/' "$gomod" |
    awk -v v="$staging_version" '{print "replace " $1 " => " $1 " " v}'
} >go.mod
cat >tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
echo "kube-apiserver: resolving modules for $version (staging $staging_version)" >&2
GOFLAGS=-mod=mod go mod tidy >&2 2>&1 || GOFLAGS=-mod=mod go get "k8s.io/kubernetes/cmd/kube-apiserver@$version" >&2
echo "kube-apiserver: building (long on 2 cores)" >&2
start=$(date +%s)
minor=${version#v1.}
minor=${minor%%.*}
pkg=k8s.io/component-base/version
CGO_ENABLED=0 GOFLAGS=-mod=mod nice go build -trimpath \
  -ldflags "-X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor -X $pkg.gitTreeState=clean" \
  -o "$bin.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
mv "$bin.tmp" "$bin"
echo "kube-apiserver: built in $(($(date +%s) - start)) s" >&2
echo "$bin"
