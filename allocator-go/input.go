//go:build cgo

package allocator

/*
#include <stdlib.h>
// A missing header stops the build with what to do (the same check as allocator.go: the
// compiler may reach any of these files first).
#if defined(__has_include)
#if !__has_include("target_allocator.h")
#error "target_allocator.h not found: in the repository run allocator-go/build.sh; for a copy of the package elsewhere build with -tags target_allocator_external and CGO_CFLAGS=-I<dir of target_allocator.h> CGO_LDFLAGS='<path>/libtarget_allocator.a -ldl -lm -lpthread'"
#endif
#endif
#include "target_allocator.h"
*/
import "C"

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"unsafe"
)

// input builds the C arguments of one call in Go memory: target columns with per-batch job
// and node tables, label sets in the labels encoding, collector and name tables. Whatever a
// C struct points at is pinned for the call (runtime.Pinner), which cgo requires of Go memory
// reached through another pointer; reset releases the pins and keeps the buffers for the next
// call (inputs live in pooled scratch objects).
type input struct {
	pinner runtime.Pinner

	keys, placements    []uint64
	weights, jobs       []uint32
	nodes               []uint32
	jobNames, nodeNames []C.ta_str

	// data holds a batch's label sets back to back, in C memory: it is written once per call
	// (no zeroing, no growth by doubling, nothing for cgo to check) and kept for the next.
	data       unsafe.Pointer
	dataCap    int
	ends       []uint64
	labelJobs  []uint32
	labelWts   []uint32
	labelNames []C.ta_str

	cols     []C.ta_collector
	strTable []C.ta_str
	zones    []C.ta_node_zone

	// chunks of a label-set batch being hashed (hashbatch.go)
	chunks []hashChunk
	// targetRows builds the target columns of a call (rows).
	targetRows rows
}

func (in *input) reset() {
	in.pinner.Unpin()
	// cgo checks the whole object a pointer leads to, spare capacity included: tables of
	// ta_str must not keep pointers to strings of an earlier call, which are no longer pinned.
	clear(in.jobNames[:cap(in.jobNames)])
	clear(in.nodeNames[:cap(in.nodeNames)])
	clear(in.labelNames[:cap(in.labelNames)])
	clear(in.cols[:cap(in.cols)])
	clear(in.strTable[:cap(in.strTable)])
	clear(in.zones[:cap(in.zones)])
	in.keys, in.placements = in.keys[:0], in.placements[:0]
	in.weights, in.jobs, in.nodes = in.weights[:0], in.jobs[:0], in.nodes[:0]
	in.jobNames, in.nodeNames = in.jobNames[:0], in.nodeNames[:0]
	in.ends = in.ends[:0]
	in.labelJobs, in.labelWts, in.labelNames = in.labelJobs[:0], in.labelWts[:0], in.labelNames[:0]
	in.cols, in.strTable, in.zones = in.cols[:0], in.strTable[:0], in.zones[:0]
	for i := range in.chunks {
		in.chunks[i].reset()
	}
	clear(in.targetRows.jobs.index)
	clear(in.targetRows.nodes.index)
	in.targetRows.jobs.last, in.targetRows.nodes.last = "", ""
	// The label buffer of one huge call is not kept for ever.
	if in.dataCap > 64<<20 {
		in.freeData()
	}
}

func (in *input) freeData() {
	C.free(in.data)
	in.data, in.dataCap = nil, 0
}

// labelBuffer returns C memory for n bytes of label sets.
func (in *input) labelBuffer(n int) []byte {
	if n > in.dataCap {
		in.freeData()
		in.data = C.malloc(C.size_t(n))
		if in.data == nil {
			panic("allocator: out of C memory for a label batch")
		}
		in.dataCap = n
	}
	return unsafe.Slice((*byte)(in.data), in.dataCap)[:0:n]
}

// pin pins the object p points into (nil is left alone) and returns p.
func (in *input) pin(p unsafe.Pointer) unsafe.Pointer {
	if p != nil {
		in.pinner.Pin(p)
	}
	return p
}

// pinSlice pins a slice's array when it has elements; nil otherwise (C accepts NULL for 0).
func (in *input) pinSlice(p unsafe.Pointer, n int) unsafe.Pointer {
	if n == 0 {
		return nil
	}
	return in.pin(p)
}

// str is a Go string as a ta_str, its bytes pinned.
func (in *input) str(s string) C.ta_str {
	if len(s) == 0 {
		return C.ta_str{}
	}
	p := unsafe.StringData(s)
	in.pin(unsafe.Pointer(p))
	return C.ta_str{ptr: (*C.uint8_t)(unsafe.Pointer(p)), len: C.size_t(len(s))}
}

// strs is a table of names (collectors to remove).
func (in *input) strs(names []string) *C.ta_str {
	for _, n := range names {
		in.strTable = append(in.strTable, in.str(n))
	}
	return (*C.ta_str)(in.pinSlice(unsafe.Pointer(unsafe.SliceData(in.strTable)), len(in.strTable)))
}

func (in *input) collectors(cs []Collector) *C.ta_collector {
	for _, c := range cs {
		in.cols = append(in.cols, C.ta_collector{name: in.str(c.Name), node: in.str(c.Node)})
	}
	return (*C.ta_collector)(in.pinSlice(unsafe.Pointer(unsafe.SliceData(in.cols)), len(in.cols)))
}

// nodeZones is a node → zone table (SetNodeZones).
func (in *input) nodeZones(rows []NodeZone) *C.ta_node_zone {
	for _, r := range rows {
		in.zones = append(in.zones, C.ta_node_zone{node: in.str(r.Node), zone: in.str(r.Zone)})
	}
	return (*C.ta_node_zone)(in.pinSlice(unsafe.Pointer(unsafe.SliceData(in.zones)), len(in.zones)))
}

// names interns strings into a per-batch table: consecutive targets usually share a job, so
// the last name is compared before the map is asked.
type names struct {
	table *[]C.ta_str
	index map[string]uint32
	last  string
	at    uint32
	in    *input
}

func (n *names) of(s string) uint32 {
	if len(*n.table) > 0 && s == n.last {
		return n.at
	}
	i, ok := n.index[s]
	if !ok {
		if n.index == nil {
			n.index = make(map[string]uint32)
		}
		i = uint32(len(*n.table))
		*n.table = append(*n.table, n.in.str(s))
		n.index[s] = i
	}
	n.last, n.at = s, i
	return i
}

// rows collects targets as columns; batch turns them into the C struct.
type rows struct {
	in      *input
	jobs    names
	nodes   names
	anyNode bool
}

// rows returns the call's row builder; its name maps are kept across calls (emptied by reset).
func (in *input) rows() *rows {
	r := &in.targetRows
	jobIndex, nodeIndex := r.jobs.index, r.nodes.index
	*r = rows{in: in, jobs: names{table: &in.jobNames, in: in, index: jobIndex},
		nodes: names{table: &in.nodeNames, in: in, index: nodeIndex}}
	return r
}

func (r *rows) add(key, placement uint64, job, node string, weight uint32) {
	in := r.in
	if weight == 0 {
		weight = 1
	}
	in.keys = append(in.keys, key)
	in.placements = append(in.placements, placement)
	in.weights = append(in.weights, weight)
	in.jobs = append(in.jobs, r.jobs.of(job))
	if node == "" {
		in.nodes = append(in.nodes, C.TA_NO_NODE)
	} else {
		r.anyNode = true
		in.nodes = append(in.nodes, r.nodes.of(node))
	}
}

func (r *rows) batch() C.ta_target_batch {
	in := r.in
	var b C.ta_target_batch
	if len(in.keys) == 0 {
		return b
	}
	b.len = C.size_t(len(in.keys))
	b.keys = (*C.uint64_t)(in.pin(unsafe.Pointer(&in.keys[0])))
	b.placements = (*C.uint64_t)(in.pin(unsafe.Pointer(&in.placements[0])))
	b.weights = (*C.uint32_t)(in.pin(unsafe.Pointer(&in.weights[0])))
	b.jobs = (*C.uint32_t)(in.pin(unsafe.Pointer(&in.jobs[0])))
	b.job_names = (*C.ta_str)(in.pin(unsafe.Pointer(&in.jobNames[0])))
	b.n_job_names = C.size_t(len(in.jobNames))
	if r.anyNode {
		b.nodes = (*C.uint32_t)(in.pin(unsafe.Pointer(&in.nodes[0])))
		b.node_names = (*C.ta_str)(in.pin(unsafe.Pointer(&in.nodeNames[0])))
		b.n_node_names = C.size_t(len(in.nodeNames))
	}
	return b
}

// engineHashing sends every label set to the engine as bytes (tests compare both paths).
var engineHashing atomic.Bool

// upserts turns targets and label sets into what the engine takes. Label sets are hashed here
// in Go (key, placement, node: see hash.go), which measured faster than handing their bytes
// over (benches/README.md); only a batch with a label set that is not sorted and unique (a
// hand-built labels.Labels) goes to the engine as bytes, so its error names the label.
// keys receives the label sets' keys when they were hashed here. Up to threads goroutines
// hash a large batch (0: GOMAXPROCS; hashbatch.go).
func (in *input) upserts(ts []Target, sets []LabelSet, threads int) (cols C.ta_target_batch, lbl C.ta_label_batch, keys []uint64, err error) {
	return in.upsertsOn(ts, sets, hashThreads(len(sets), threads))
}

// upsertsOn is upserts with the label sets hashed by goroutines goroutines.
func (in *input) upsertsOn(ts []Target, sets []LabelSet, goroutines int) (cols C.ta_target_batch, lbl C.ta_label_batch, keys []uint64, err error) {
	r := in.rows()
	for i := range ts {
		t := &ts[i]
		r.add(t.Key, t.Placement, t.Job, t.Node, t.Weight)
	}
	if len(sets) == 0 {
		return r.batch(), lbl, nil, nil
	}
	if engineHashing.Load() {
		return r.batch(), in.labelSets(sets), nil, nil
	}
	fail, status, key := in.hashSets(r, sets, len(ts), goroutines)
	switch status {
	case hashed:
	case missingAddress:
		return cols, lbl, nil, &Error{Code: MissingAddress,
			Message: fmt.Sprintf("label set %d: target %016x has no __address__ label", fail, key)}
	case badNode:
		return cols, lbl, nil, &Error{Code: InvalidUTF8,
			Message: fmt.Sprintf("label set %d: target %016x has a node name that is not valid UTF-8", fail, key)}
	default:
		// Not sorted and unique: the engine sorts, hashes and names a repeated label.
		in.keys, in.placements, in.weights = in.keys[:len(ts)], in.placements[:len(ts)], in.weights[:len(ts)]
		in.jobs, in.nodes = in.jobs[:len(ts)], in.nodes[:len(ts)]
		return r.batch(), in.labelSets(sets), nil, nil
	}
	keys = append([]uint64(nil), in.keys[len(ts):]...)
	return r.batch(), lbl, keys, nil
}

// labelSets hands label sets over as one contiguous copy in the labels encoding (see
// labelsData); the library hashes them.
func (in *input) labelSets(sets []LabelSet) C.ta_label_batch {
	var b C.ta_label_batch
	if len(sets) == 0 {
		return b
	}
	jobs := names{table: &in.labelNames, in: in}
	size := 0
	for i := range sets {
		size += labelsSize(sets[i].Labels)
	}
	data := in.labelBuffer(size)
	for i := range sets {
		s := &sets[i]
		data = appendLabels(data, s.Labels)
		in.ends = append(in.ends, uint64(len(data)))
		in.labelJobs = append(in.labelJobs, jobs.of(s.Job))
		w := s.Weight
		if w == 0 {
			w = 1
		}
		in.labelWts = append(in.labelWts, w)
	}
	b.len = C.size_t(len(sets))
	if len(data) != size {
		panic("allocator: label sets changed size while being copied (a bug)")
	}
	b.data = (*C.uint8_t)(in.data)
	b.data_len = C.size_t(size)
	b.ends = (*C.uint64_t)(in.pin(unsafe.Pointer(&in.ends[0])))
	b.jobs = (*C.uint32_t)(in.pin(unsafe.Pointer(&in.labelJobs[0])))
	b.job_names = (*C.ta_str)(in.pin(unsafe.Pointer(&in.labelNames[0])))
	b.n_job_names = C.size_t(len(in.labelNames))
	b.weights = (*C.uint32_t)(in.pin(unsafe.Pointer(&in.labelWts[0])))
	return b
}
