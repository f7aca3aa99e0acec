//go:build !cgo

package allocator

// The engine is a Rust library reached through cgo; without cgo there is nothing to call.
// This undefined identifier stops the build with its name as the message:
var _ = allocator_go_requires_cgo__build_with_CGO_ENABLED_1_and_a_C_compiler
