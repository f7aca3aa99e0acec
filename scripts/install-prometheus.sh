#!/usr/bin/env bash
# Debian's prometheus server, for the real-client test (allocator-service/tests/real_prometheus.sh).
# Only the binary is used; the packaged service is not started by the test.
set -euo pipefail
command -v prometheus >/dev/null && exit 0
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
command -v prometheus
