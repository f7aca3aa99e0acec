// Package allocator is the Go binding of the target allocation engine: it decides which
// collector scrapes which Prometheus target, with the same results as the OpenTelemetry
// Operator's Target Allocator (consistent-hashing, least-weighted, per-node), plus the engine's
// own bounded-hashing (weight-capped, even per job, a function of the state) and rebalancing
// (sticky, the fewest weight moves that keep every collector within ⌈(1±ε)·W/n⌉), through the
// engine's C ABI (cgo).
//
// # Building
//
// The package links the engine's static library. Build it once from the repository root:
//
//	allocator-go/build.sh        # cargo build --profile dist -p allocator-ffi
//
// then build or test Go code as usual (cgo must be enabled; build.sh leaves the library in
// target/dist at the repository root even when CARGO_TARGET_DIR points elsewhere). The default
// cgo directives (link.go) point at ../include and ../target/dist/libtarget_allocator.a next
// to the package. A copy of the package outside the repository (vendored, or a replace to a
// copied directory) builds with the target_allocator_external tag, which drops them, and
// gives header and library in the environment; cgo only appends CGO_CFLAGS/CGO_LDFLAGS to a
// directive's paths, so without the tag the default path is still linked and fails:
//
//	CGO_CFLAGS=-I/dir/of/header \
//	CGO_LDFLAGS="/dir/of/lib/libtarget_allocator.a -ldl -lm -lpthread" \
//	go build -tags target_allocator_external ./...
//
// # Use
//
//	a, err := allocator.New(allocator.DefaultConfig())
//	defer a.Close()
//	moves, err := a.AddCollectors(allocator.Collector{Name: "collector-0"}, allocator.Collector{Name: "collector-1"})
//	keys, moves, err := a.UpsertLabelSets(sets)   // label sets hashed here, placed by the engine
//	owners, err := a.Assignments(keys)            // collector name per key ("" when none)
//
// One diff, one call, its moves: every mutator (Apply and the shorthands) is one cgo crossing
// that applies the change and returns the moves it caused, taken under the engine's lock, so
// no other change can come between. Every read (Read, Assignments, Stats, Summary) is one
// engine call returning one state. An Allocator is safe for concurrent use. Close is
// idempotent; a finalizer frees a forgotten one. A call with 2,048 label sets or more hashes
// them on up to GOMAXPROCS goroutines (Config.HashThreads caps it; results are the same). Zone-aware rebalancing (Config.Zones,
// Config.ZoneSkew) reads a node → zone table set by SetNodeZones, itself a mutator with its
// moves. Errors are *Error values carrying the C
// result code and a message naming the problem.
package allocator
