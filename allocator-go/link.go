//go:build cgo && !target_allocator_external

package allocator

// The header and static library where this repository's layout puts them: ../include and
// ../target/dist (allocator-go/build.sh builds the library there, whatever CARGO_TARGET_DIR
// says). A copy of the package elsewhere builds with -tags target_allocator_external, which
// drops these two lines, and gives the places in CGO_CFLAGS and CGO_LDFLAGS: cgo only adds
// the environment's flags to a directive's, so a path here could not be replaced from there.

// #cgo CFLAGS: -I${SRCDIR}/../include
// #cgo LDFLAGS: ${SRCDIR}/../target/dist/libtarget_allocator.a -ldl -lm -lpthread
import "C"
