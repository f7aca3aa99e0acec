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

// flatLabels is a batch of label sets as the flat arrays ta_upsert_labeled_targets takes.
type flatLabels struct {
	jobs          *C.ta_str
	counts        *C.uint32_t
	weights       *C.uint32_t
	names, values *C.ta_str
	nLabels       int
}

func labelSetsToC(sets []LabelSet) (*arena, flatLabels) {
	n := uintptr(len(sets))
	var nLabels uintptr
	size := n*(unsafe.Sizeof(C.ta_str{})+8) + 64
	for _, s := range sets {
		size += strSize(s.Job)
		s.Labels.Range(func(l labels.Label) {
			nLabels++
			size += strSize(l.Name) + strSize(l.Value)
		})
	}
	size += 2 * nLabels * unsafe.Sizeof(C.ta_str{})
	ar := newArena(size)
	f := flatLabels{nLabels: int(nLabels)}
	f.jobs = (*C.ta_str)(ar.alloc(n * unsafe.Sizeof(C.ta_str{})))
	f.counts = (*C.uint32_t)(ar.alloc(n * 4))
	f.weights = (*C.uint32_t)(ar.alloc(n * 4))
	f.names = (*C.ta_str)(ar.alloc(nLabels * unsafe.Sizeof(C.ta_str{})))
	f.values = (*C.ta_str)(ar.alloc(nLabels * unsafe.Sizeof(C.ta_str{})))
	jobs, counts, weights := unsafe.Slice(f.jobs, n), unsafe.Slice(f.counts, n), unsafe.Slice(f.weights, n)
	names, values := unsafe.Slice(f.names, nLabels), unsafe.Slice(f.values, nLabels)
	at := 0
	for i, s := range sets {
		jobs[i] = ar.str(s.Job)
		weight := s.Weight
		if weight == 0 {
			weight = 1
		}
		weights[i] = C.uint32_t(weight)
		start := at
		s.Labels.Range(func(l labels.Label) {
			names[at], values[at] = ar.str(l.Name), ar.str(l.Value)
			at++
		})
		counts[i] = C.uint32_t(at - start)
	}
	return ar, f
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
