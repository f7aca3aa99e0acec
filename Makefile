# One entry point for every check. `make test` is what CI runs (.ci/run).
SHELL := /bin/bash
GO_MODULES := testdata/parity-gen/common testdata/parity-gen/v0.10.0 testdata/parity-gen/v1.0.0

.PHONY: test setup lint rust-test parity-check parity run

test: setup lint rust-test parity-check

# Tools the checks need that a fresh machine of this kind may lack.
setup:
	@command -v cargo >/dev/null || { echo "cargo is required (rustup)"; exit 1; }
	@command -v go >/dev/null || { echo "go is required"; exit 1; }
	@cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
	@cargo clippy --version >/dev/null 2>&1 || rustup component add clippy

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	@for m in $(GO_MODULES); do \
	  test -z "$$(gofmt -l $$m)" || { echo "gofmt: $$m needs formatting"; gofmt -l $$m; exit 1; }; \
	  (cd $$m && GOFLAGS=-mod=readonly go vet ./...) || exit 1; \
	done

rust-test:
	cargo test --workspace

# The committed vectors must be exactly what the upstream Go modules produce today.
parity-check:
	scripts/parity.sh --check

parity:
	scripts/parity.sh

run:
	cargo run -q --release --bin allocate < examples/allocate/sample.json
