//go:build cgo

package allocator

/*
#include <stdlib.h>
#include "target_allocator.h"
*/
import "C"

import (
	"errors"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// arena is one C allocation holding a batch's arrays and string bytes. cgo forbids passing Go
// memory that holds Go pointers, and ta_str holds pointers, so a batch's strings are copied
// here once; the engine reads them during the call and keeps nothing.
type arena struct {
	base unsafe.Pointer
	size uintptr
	used uintptr
}

func newArena(size uintptr) *arena {
	if size == 0 {
		size = 1
	}
	base := C.malloc(C.size_t(size))
	if base == nil {
		panic("allocator: out of C memory")
	}
	return &arena{base: base, size: size}
}

func (a *arena) free() {
	C.free(a.base)
	a.base = nil
}

// alloc returns n bytes, aligned to 8.
func (a *arena) alloc(n uintptr) unsafe.Pointer {
	a.used = (a.used + 7) &^ 7
	if a.used+n > a.size {
		panic("allocator: arena sized too small (a bug)")
	}
	p := unsafe.Add(a.base, a.used)
	a.used += n
	return p
}

// str copies s into the arena.
func (a *arena) str(s string) C.ta_str {
	if len(s) == 0 {
		return C.ta_str{}
	}
	p := a.alloc(uintptr(len(s)))
	// A Go copy into C memory: a cgo call per string would cost more than the engine's work.
	copy(unsafe.Slice((*byte)(p), len(s)), s)
	return C.ta_str{ptr: (*C.uint8_t)(p), len: C.size_t(len(s))}
}

// strSize is what str needs for s, alignment included.
func strSize(s string) uintptr { return uintptr(len(s)) + 8 }

func collectorsToC(cs []Collector) (*arena, *C.ta_collector) {
	size := uintptr(len(cs))*unsafe.Sizeof(C.ta_collector{}) + 8
	for _, c := range cs {
		size += strSize(c.Name) + strSize(c.Node)
	}
	ar := newArena(size)
	arr := (*C.ta_collector)(ar.alloc(uintptr(len(cs)) * unsafe.Sizeof(C.ta_collector{})))
	view := unsafe.Slice(arr, len(cs))
	for i, c := range cs {
		view[i] = C.ta_collector{name: ar.str(c.Name), node: ar.str(c.Node)}
	}
	return ar, arr
}

func targetsToC(ts []Target) (*arena, *C.ta_target) {
	size := uintptr(len(ts))*unsafe.Sizeof(C.ta_target{}) + 8
	// Batches repeat a few job and node strings: copy each run of equal strings once.
	var lastJob, lastNode string
	for i, t := range ts {
		if i == 0 || t.Job != lastJob {
			size += strSize(t.Job)
			lastJob = t.Job
		}
		if i == 0 || t.Node != lastNode {
			size += strSize(t.Node)
			lastNode = t.Node
		}
	}
	ar := newArena(size)
	arr := (*C.ta_target)(ar.alloc(uintptr(len(ts)) * unsafe.Sizeof(C.ta_target{})))
	view := unsafe.Slice(arr, len(ts))
	var job, node C.ta_str
	for i, t := range ts {
		if i == 0 || t.Job != ts[i-1].Job {
			job = ar.str(t.Job)
		}
		if i == 0 || t.Node != ts[i-1].Node {
			node = ar.str(t.Node)
		}
		view[i] = C.ta_target{key: C.uint64_t(t.Key), placement: C.uint64_t(t.Placement), job: job, node: node, weight: C.uint32_t(t.Weight)}
	}
	return ar, arr
}

// chunks holds string bytes in C memory blocks, filled in one pass when the total size is not
// known up front (label sets): a block is added when the current one is full.
type chunks struct {
	blocks []*arena
}

const chunkSize = 256 << 10

func (c *chunks) str(s string) C.ta_str {
	if len(s) == 0 {
		return C.ta_str{}
	}
	n := len(c.blocks)
	if n == 0 || c.blocks[n-1].used+uintptr(len(s)) > c.blocks[n-1].size {
		size := uintptr(chunkSize)
		if uintptr(len(s)) > size {
			size = uintptr(len(s))
		}
		c.blocks = append(c.blocks, newArena(size))
		n++
	}
	b := c.blocks[n-1]
	p := unsafe.Add(b.base, b.used)
	b.used += uintptr(len(s))
	copy(unsafe.Slice((*byte)(p), len(s)), s)
	return C.ta_str{ptr: (*C.uint8_t)(p), len: C.size_t(len(s))}
}

func (c *chunks) free() {
	for _, b := range c.blocks {
		b.free()
	}
	c.blocks = nil
}

// flatLabels is a batch of label sets as the flat arrays ta_upsert_labeled_targets takes. The
// arrays live in Go memory: they hold only C pointers (into chunks), which cgo allows.
type flatLabels struct {
	jobs          []C.ta_str
	counts        []C.uint32_t
	weights       []C.uint32_t
	names, values []C.ta_str
}

// labelSetsToC copies a batch of label sets to C memory in one pass over each set.
func labelSetsToC(sets []LabelSet) (*chunks, *flatLabels) {
	ch := &chunks{}
	f := &flatLabels{
		jobs:    make([]C.ta_str, len(sets)),
		counts:  make([]C.uint32_t, len(sets)),
		weights: make([]C.uint32_t, len(sets)),
		names:   make([]C.ta_str, 0, 10*len(sets)),
		values:  make([]C.ta_str, 0, 10*len(sets)),
	}
	for i, s := range sets {
		if i == 0 || s.Job != sets[i-1].Job {
			f.jobs[i] = ch.str(s.Job)
		} else {
			f.jobs[i] = f.jobs[i-1]
		}
		weight := s.Weight
		if weight == 0 {
			weight = 1
		}
		f.weights[i] = C.uint32_t(weight)
		start := len(f.names)
		s.Labels.Range(func(l labels.Label) {
			f.names = append(f.names, ch.str(l.Name))
			f.values = append(f.values, ch.str(l.Value))
		})
		f.counts[i] = C.uint32_t(len(f.names) - start)
	}
	return ch, f
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
