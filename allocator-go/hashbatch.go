//go:build cgo

package allocator

/*
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
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"unsafe"
)

// Hashing a batch of label sets into the target columns. The work is independent per set, so
// a large batch is cut into chunks hashed by up to GOMAXPROCS goroutines (Config.HashThreads
// caps it). Each chunk writes its rows' key, placement and weight into the preallocated
// columns, and its job and node names into a table of its own in first-seen order; the chunks'
// tables are then merged in chunk order, which is the order one goroutine would have met the
// names in, and the rows renumbered. The columns and tables the engine gets are therefore the
// same bytes whatever the number of goroutines and however they were scheduled (tested).

// Batches smaller than parallelMin label sets are hashed on the calling goroutine: below it,
// starting goroutines and merging their tables cost more than they save (benches/README.md).
// A variable so tests can force the parallel path on small batches.
var parallelMin = 2048

// Chunks are at most maxChunk sets (a few per goroutine balances an uneven load) and at least
// minChunk (so a chunk's fixed cost stays small against its hashing).
var (
	minChunk = 128
	maxChunk = 4096
)

// localNames is a chunk's own table of job or node names, in first-seen order. The names are
// copied into one arena: a map whose keys pointed into the label sets they came from would
// compare every lookup against a string somewhere in a large, cold batch (a cache miss per
// row, measured as half the hashing's cost on 1 % churn); the arena's copies stay in cache.
type localNames struct {
	names []string
	index map[string]uint32
	last  string
	at    uint32
	arena []byte
}

func (n *localNames) reset() {
	clear(n.names[:cap(n.names)])
	n.names = n.names[:0]
	clear(n.index)
	n.last, n.at = "", 0
	n.arena = n.arena[:0]
}

// of returns the index of s and whether it was added (first seen) now. Consecutive sets usually share a job (and
// often a node), so the last name is compared before the map is asked; when both strings
// share their bytes the comparison stops at the pointer.
func (n *localNames) of(s string) (uint32, bool) {
	if len(n.names) > 0 && s == n.last {
		return n.at, false
	}
	i, ok := n.index[s]
	if !ok {
		if n.index == nil {
			n.index = make(map[string]uint32)
		}
		i = uint32(len(n.names))
		s = n.copy(s)
		n.names = append(n.names, s)
		n.index[s] = i
	} else {
		s = n.names[i]
	}
	n.last, n.at = s, i
	return i, !ok
}

// copy appends s to the arena. When the arena grows, earlier names keep the old array, which
// is never written again in this call (reset starts over).
func (n *localNames) copy(s string) string {
	if s == "" {
		return ""
	}
	if len(n.arena)+len(s) > cap(n.arena) {
		n.arena = make([]byte, 0, max(2*cap(n.arena), len(s), 4096))
	}
	start := len(n.arena)
	n.arena = append(n.arena, s...)
	return unsafe.String(&n.arena[start], len(s))
}

// hashChunk is label sets lo..hi of a batch and what hashing them found.
type hashChunk struct {
	lo, hi int
	// fail is the first set that was not hashed (hi when all were), with its status and key.
	fail   int
	status hashStatus
	key    uint64
	h      hasher
	jobs   localNames
	nodes  localNames
	remap  []uint32
}

// run hashes the chunk's sets into rows base+lo..base+hi of the columns; its tables are empty
// (input.reset).
func (c *hashChunk) run(in *input, sets []LabelSet, base int) {
	c.fail = c.hi
	keys, placements := in.keys[base:], in.placements[base:]
	weights, jobs, nodes := in.weights[base:], in.jobs[base:], in.nodes[base:]
	for i := c.lo; i < c.hi; i++ {
		s := &sets[i]
		key, placement, node, status := c.h.hash(s.Labels, s.Job)
		if status != hashed {
			c.fail, c.status, c.key = i, status, key
			return
		}
		w := s.Weight
		if w == 0 {
			w = 1
		}
		keys[i], placements[i], weights[i] = key, placement, w
		jobs[i], _ = c.jobs.of(s.Job)
		if node == "" {
			nodes[i] = C.TA_NO_NODE
			continue
		}
		n, added := c.nodes.of(node)
		if added && !validNode(node) {
			c.fail, c.status, c.key = i, badNode, key
			return
		}
		nodes[i] = n
	}
}

// reset empties the chunk's tables, which must not keep an earlier call's label sets alive.
func (c *hashChunk) reset() {
	c.jobs.reset()
	c.nodes.reset()
}

// hashThreads is how many goroutines hash a batch of n label sets given a cap (0: none).
func hashThreads(n, limit int) int {
	if n < parallelMin {
		return 1
	}
	t := runtime.GOMAXPROCS(0)
	if limit > 0 && limit < t {
		t = limit
	}
	return max(t, 1)
}

// chunkSize cuts n sets for t goroutines into about four chunks each.
func chunkSize(n, t int) int {
	if t <= 1 {
		return max(n, 1)
	}
	return min(max((n+4*t-1)/(4*t), minChunk), maxChunk)
}

// hashSets hashes sets into rows base.. of the columns (which it sizes) with up to threads
// goroutines, then interns their names into r's tables. It returns the first set that was
// not hashed (len(sets) when all were) with its status and key; the rows from there on are
// not filled.
func (in *input) hashSets(r *rows, sets []LabelSet, base, threads int) (fail int, status hashStatus, key uint64) {
	n := base + len(sets)
	in.keys = slices.Grow(in.keys[:base], len(sets))[:n]
	in.placements = slices.Grow(in.placements[:base], len(sets))[:n]
	in.weights = slices.Grow(in.weights[:base], len(sets))[:n]
	in.jobs = slices.Grow(in.jobs[:base], len(sets))[:n]
	in.nodes = slices.Grow(in.nodes[:base], len(sets))[:n]

	size := chunkSize(len(sets), threads)
	nChunks := (len(sets) + size - 1) / size
	if cap(in.chunks) < nChunks {
		in.chunks = append(in.chunks[:cap(in.chunks)], make([]hashChunk, nChunks-cap(in.chunks))...)
	}
	chunks := in.chunks[:nChunks]
	for i := range chunks {
		chunks[i].lo, chunks[i].hi = i*size, min((i+1)*size, len(sets))
	}
	if workers := min(threads, nChunks); workers <= 1 {
		for i := range chunks {
			chunks[i].run(in, sets, base)
		}
	} else {
		var next atomic.Int64
		var wg sync.WaitGroup
		work := func() {
			for i := int(next.Add(1)) - 1; i < len(chunks); i = int(next.Add(1)) - 1 {
				chunks[i].run(in, sets, base)
			}
		}
		for range workers - 1 {
			wg.Go(work)
		}
		work()
		wg.Wait()
	}

	// The first set that was not hashed, in order, decides as it would have serially; then
	// nothing is merged, so a batch handed to the engine as bytes instead carries no names of
	// the sets hashed before it.
	for i := range chunks {
		if c := &chunks[i]; c.fail < c.hi {
			return c.fail, c.status, c.key
		}
	}
	// Merge in chunk order.
	for i := range chunks {
		c := &chunks[i]
		jobs := c.remapNames(&r.jobs, &c.jobs)
		renumber(in.jobs[base+c.lo:base+c.hi], jobs)
		if len(c.nodes.names) > 0 {
			r.anyNode = true
			nodes := c.remapNames(&r.nodes, &c.nodes)
			renumber(in.nodes[base+c.lo:base+c.hi], nodes)
		}
	}
	return len(sets), hashed, 0
}

// remapNames interns a chunk's table into the batch's and returns the chunk → batch index map,
// or nil when it is the identity (the first chunk of a batch with no other names).
func (c *hashChunk) remapNames(global *names, local *localNames) []uint32 {
	c.remap = c.remap[:0]
	identity := true
	for i, s := range local.names {
		g := global.of(s)
		identity = identity && g == uint32(i)
		c.remap = append(c.remap, g)
	}
	if identity {
		return nil
	}
	return c.remap
}

// renumber maps a chunk's rows from its own table's indices to the batch's (TA_NO_NODE stays).
func renumber(rows []uint32, remap []uint32) {
	if remap == nil {
		return
	}
	for i, v := range rows {
		if v != C.TA_NO_NODE {
			rows[i] = remap[v]
		}
	}
}
