# One entry point for every check. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO_MODULES := allocator-go examples/go-collector testdata/parity-gen/common testdata/parity-gen/v0.10.0 testdata/parity-gen/v1.0.0 testdata/conformance-gen/receivercheck testdata/operator-gen testdata/relabel-gen testdata/k8s-sd-gen

.PHONY: scale operator-check operator-vectors relabel-check relabel-vectors k8s-sd-check k8s-sd-vectors apiserver-test image-test conformance receiver-check real-client-test e2e-collector dist service-test loadtest test setup lint rust-test fuzz-corpus ffi-test c-example go-test go-bench py-test parity-check parity run header bench bench-smoke fuzz

test: setup lint rust-test fuzz-corpus ffi-test c-example go-test py-test service-test receiver-check real-client-test bench-smoke parity-check operator-check relabel-check k8s-sd-check

# Tools the checks need that a fresh machine of this kind may lack.
setup:
	@command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
	@command -v go >/dev/null || { echo "go is required"; exit 1; }
	@command -v cc >/dev/null || { echo "a C compiler (cc) is required"; exit 1; }
	@command -v valgrind >/dev/null || { apt-get update -qq && apt-get install -y -qq valgrind; }
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

lint:
	cargo fmt --all -- --check
	cargo fmt --manifest-path fuzz/Cargo.toml --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	cargo clippy --manifest-path fuzz/Cargo.toml -p allocator-fuzz --all-targets -- -D warnings
	test -z "$$(gofmt -l testdata/conformance-gen)" || { gofmt -l testdata/conformance-gen; exit 1; }
	@for m in $(GO_MODULES); do \
	  test -z "$$(gofmt -l $$m)" || { echo "gofmt: $$m needs formatting"; gofmt -l $$m; exit 1; }; \
	done

rust-test:
	cargo test --workspace

# The Go package: vet, race tests, the cross-check against the upstream ring on random inputs
# (in the parity modules, which own the upstream dependencies), the no-cgo build error, the
# example, and the example built against a copy of the package outside the repository.
go-test:
	allocator-go/build.sh
	@for m in $(GO_MODULES); do (cd $$m && GOFLAGS=-mod=readonly go vet ./...) || exit 1; done
	cd allocator-go && GOFLAGS=-mod=readonly go test -race -count=1 ./...
	# The other labels.Labels build: label sets are encoded label by label (labels.go).
	cd allocator-go && GOFLAGS=-mod=readonly go test -tags slicelabels -count=1 ./...
	cd testdata/parity-gen/v0.10.0 && GOFLAGS=-mod=readonly go test -race -count=1 ./...
	cd testdata/parity-gen/v1.0.0 && GOFLAGS=-mod=readonly go test -race -count=1 ./...
	cd allocator-go && ! CGO_ENABLED=0 go build ./... 2>target-nocgo.log && grep -q requires_cgo target-nocgo.log; \
	  status=$$?; rm -f target-nocgo.log; exit $$status
	cd examples/go-collector && GOFLAGS=-mod=readonly go run .
	# A copy of the package outside the repository, linked as the README says (build tag and
	# CGO_CFLAGS/CGO_LDFLAGS only), builds and runs the example.
	allocator-go/external-build-check.sh

# The Python module: wheel built by maturin into a venv of its own, pytest, stubtest, mypy, the
# capacity-planning example in smoke size.
py-test:
	allocator-py/test.sh

# Go benchmarks: the package against the Operator's pure-Go work, same run (benches/README.md).
go-bench:
	allocator-go/build.sh
	cd testdata/parity-gen/v0.10.0 && go test -run '^$$' -bench Allocation -benchtime 3x .

# Every input the fuzzers kept, and every crash they found, replayed on stable Rust.
fuzz-corpus:
	cargo test --manifest-path fuzz/Cargo.toml -p allocator-fuzz

# C tests of the ABI: plain, under ASan+UBSan, under valgrind memcheck.
ffi-test:
	allocator-ffi/tests/c/run.sh

c-example:
	cargo build --release -p allocator-ffi
	cc -Wall -Wextra -Werror -I include examples/c/share.c target/release/libtarget_allocator.a -lpthread -ldl -lm -o target/share
	target/share

# Each benchmark once, on small inputs: proves they run; numbers come from `make bench`.
bench-smoke:
	BENCH_SCALE=smoke cargo bench -p allocator-benches -- --test

bench:
	cargo bench -p allocator-benches

# The shipped C library (static and shared), with LTO: target/dist/libtarget_allocator.{a,so}.
dist:
	cargo build --profile dist -p allocator-ffi

header:
	UPDATE_HEADER=1 cargo test -p allocator-ffi --test header

# Fuzz one target for a while (nightly + cargo-fuzz): make fuzz TARGET=diff_sequence SECONDS=600
fuzz:
	cd fuzz && cargo +nightly fuzz run $(TARGET) -O -- -max_total_time=$(or $(SECONDS),600)

# The committed vectors must be exactly what the upstream Go modules produce today.
parity-check:
	scripts/parity.sh --check

parity:
	scripts/parity.sh

# The operator vectors must be exactly what prometheus-operator's ConfigGenerator writes today
# (testdata/operator-gen/README.md); the Rust side is tests/operator_vectors.rs in rust-test.
operator-check:
	scripts/vectors.sh testdata/operator-gen --check -- -corpus corpus

operator-vectors:
	scripts/vectors.sh testdata/operator-gen -- -corpus corpus

# The relabel vectors must be exactly what Prometheus' model/relabel package (the version the Go
# allocator pins) gives today (testdata/relabel-gen/README.md); the Rust side is
# tests/relabel_vectors.rs in rust-test. About 15 s with a cold build cache, under 1 s warm.
relabel-check:
	scripts/vectors.sh testdata/relabel-gen --check

relabel-vectors:
	scripts/vectors.sh testdata/relabel-gen

k8s-sd-check:
	scripts/vectors.sh testdata/k8s-sd-gen --check

k8s-sd-vectors:
	scripts/vectors.sh testdata/k8s-sd-gen

# Kubernetes discovery against a real kube-apiserver + etcd (opt-in: the first run builds
# kube-apiserver from the module proxy, ~40 min on 2 busy cores; cached outside the repository).
apiserver-test:
	allocator-service/tests/apiserver.sh

# The service image from scratch with buildah, run with podman on loopback (opt-in: root, podman).
image-test:
	allocator-service/tests/image.sh

run:
	cargo run --bin target-allocator -- --config-file allocator-service/config.yaml

# The service end to end: the dashboard in headless Chromium (screenshot in target/dashboard/),
# then a bounded load test on loopback (zero errors required; p50/p99 and req/s printed).
# Regenerate the conformance goldens (allocator-service/tests/conformance/golden/) from the Go
# Target Allocator's own code. Not part of `make test`: it needs a snapshot of the Operator's
# source outside the repository (testdata/conformance-gen/README.md). The Rust test comparing
# the service with the committed goldens runs in rust-test.
conformance:
	testdata/conformance-gen/gen.sh

# The collector's prometheus receiver's own reading (Prometheus' config and HTTP SD packages) of
# our /scrape_configs and HTTP SD answers for every conformance case, compared with its reading
# of the Go allocator's answers.
receiver-check:
	testdata/conformance-gen/receivercheck.sh

# Debian's prometheus servers as collectors with http_sd_configs on their ?collector_id= URLs,
# scraping endpoints on loopback: each endpoint scraped by exactly its owner, before and after a
# collector is added and the file_sd file rewritten (under a minute).
real-client-test:
	scripts/install-prometheus.sh
	cargo build -q -p allocator-service --bin target-allocator
	python3 allocator-service/tests/real_prometheus.py $${CARGO_TARGET_DIR:-target}/debug/target-allocator

# Opt-in, not in `make test`: the same checks with real OpenTelemetry Collectors (prometheus
# receiver with `target_allocator:`), built by the collector builder from the Go module proxy into
# ~/.cache/target-allocator-e2e (long the first time; cached until the manifest changes).
e2e-collector:
	scripts/build-e2e-collector.sh >/dev/null
	cargo build -q -p allocator-service --bin target-allocator
	python3 allocator-service/tests/real_otelcol.py $${CARGO_TARGET_DIR:-target}/debug/target-allocator "$$(scripts/build-e2e-collector.sh)"

service-test:
	allocator-service/tests/dashboard.sh
	cargo run -q -p allocator-service --bin ta-loadtest -- --targets 5000 --clients 16 --seconds 3

# The full load test (release build): 20k targets, 10 collectors, 64 clients, 10 s.
loadtest:
	cargo run -q --release -p allocator-service --bin ta-loadtest

# Opt-in, not in `make test`: the service at 100k, 500k and 1M file_sd targets (first answer,
# memory, 1% churn latency over 10 cycles, requests/s plain and gzip; a few minutes on 2 cores).
# SCALE_ARGS='--address HOST:PORT --file PATH' measures another allocator (e.g. the Go one).
scale:
	cargo build -q --release -p allocator-service --bins
	python3 scripts/scale.py $(SCALE_ARGS)
