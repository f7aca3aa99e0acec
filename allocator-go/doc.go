// Package allocator is the Go binding of the target allocation engine: it decides which
// collector scrapes which Prometheus target, with the same results as the OpenTelemetry
// Operator's Target Allocator (consistent-hashing, least-weighted, per-node), plus the engine's
// own bounded-hashing (weight-capped, even per job, a function of the state), through the
// engine's C ABI (cgo).
//
// # Building
//
// The package links the engine's static library. Build it once from the repository root:
//
//	allocator-go/build.sh        # cargo build --release -p allocator-ffi
//
// then build or test Go code as usual (cgo must be enabled). The cgo directives point at
// ../target/dist/libtarget_allocator.a and ../include; a collector build that
// vendors this package elsewhere sets CGO_CFLAGS/CGO_LDFLAGS to the header and library instead.
//
// # Use
//
//	a, err := allocator.New(allocator.DefaultConfig())
//	defer a.Close()
//	a.AddCollectors(allocator.Collector{Name: "collector-0"}, allocator.Collector{Name: "collector-1"})
//	keys, err := a.UpsertLabelSets(sets)          // label sets hashed by the library
//	owners, err := a.Assignments(keys)            // collector name per key ("" when none)
//
// An Allocator is safe for concurrent use. Close is idempotent; a finalizer frees a forgotten
// one. Errors are *Error values carrying the C result code and a message naming the problem.
package allocator
