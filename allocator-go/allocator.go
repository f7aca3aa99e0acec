//go:build cgo

package allocator

/*
#cgo CFLAGS: -I${SRCDIR}/../include
#cgo LDFLAGS: ${SRCDIR}/../target/dist/libtarget_allocator.a -ldl -lm -lpthread
#include <stdlib.h>
#include "target_allocator.h"
*/
import "C"

import (
	"runtime"
	"sync"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// Strategy names a rule that picks a collector for a target.
type Strategy uint32

// Strategies, as the Go Target Allocator's allocation_strategy values.
const (
	ConsistentHashing Strategy = C.TA_STRATEGY_CONSISTENT_HASHING
	LeastWeighted     Strategy = C.TA_STRATEGY_LEAST_WEIGHTED
	PerNode           Strategy = C.TA_STRATEGY_PER_NODE
	// BoundedHashing is ours: weight-aware bounded loads and even jobs, a function of the
	// state (see the core's strategy docs).
	BoundedHashing Strategy = C.TA_STRATEGY_BOUNDED_HASHING
	// NoStrategy as a fallback: per-node leaves node-less targets unassigned.
	NoStrategy Strategy = C.TA_STRATEGY_NONE
)

// RingVersion selects which github.com/buraksezer/consistent release the ring reproduces.
type RingVersion uint32

// Ring versions used by the OpenTelemetry Operator.
const (
	RingV0_10_0 RingVersion = C.TA_RING_V0_10_0 // latest Operator release
	RingV1_0_0  RingVersion = C.TA_RING_V1_0_0  // Operator main branch
)

// NoCollector is the collector id of an unknown or unassigned target.
const NoCollector uint32 = C.TA_NO_COLLECTOR

// Config configures an Allocator. Start from DefaultConfig.
type Config struct {
	Strategy          Strategy
	Fallback          Strategy // per-node only; NoStrategy for none
	Ring              RingVersion
	PartitionCount    uint32
	ReplicationFactor uint32
	LoadFactor        float64
	Weighted          bool // least-weighted balances target weight instead of count
	// Epsilon is bounded-hashing's slack: no collector past ⌈(1+ε)·W/n⌉ weight (default 0.05).
	Epsilon float64
	// MaxWeight is bounded-hashing's absolute cap on one collector's weight (0: none).
	MaxWeight uint64
}

// DefaultConfig is the Go Target Allocator's configuration: consistent-hashing on the
// v0.10.0 ring with 1061 partitions, replication factor 5 and load factor 1.1.
func DefaultConfig() Config {
	var c C.ta_config
	C.ta_config_default(&c)
	return configFromC(c)
}

func configFromC(c C.ta_config) Config {
	return Config{
		Strategy:          Strategy(c.strategy),
		Fallback:          Strategy(c.fallback),
		Ring:              RingVersion(c.ring_version),
		PartitionCount:    uint32(c.partition_count),
		ReplicationFactor: uint32(c.replication_factor),
		LoadFactor:        float64(c.load_factor),
		Weighted:          c.weighted != 0,
		Epsilon:           float64(c.epsilon),
		MaxWeight:         uint64(c.max_weight),
	}
}

func (c Config) toC() C.ta_config {
	var weighted C.uint8_t
	if c.Weighted {
		weighted = 1
	}
	return C.ta_config{
		strategy:           C.uint32_t(c.Strategy),
		fallback:           C.uint32_t(c.Fallback),
		ring_version:       C.uint32_t(c.Ring),
		partition_count:    C.uint32_t(c.PartitionCount),
		replication_factor: C.uint32_t(c.ReplicationFactor),
		load_factor:        C.double(c.LoadFactor),
		weighted:           weighted,
		epsilon:            C.double(c.Epsilon),
		max_weight:         C.uint64_t(c.MaxWeight),
	}
}

// Collector is a collector: the name it presents (its pod name) and its node.
type Collector struct {
	Name string
	Node string
}

// Target is a target whose key the caller computed (TargetKey) with its placement hash
// (PlacementHash of the raw __address__).
type Target struct {
	Key       uint64
	Placement uint64
	Job       string
	Node      string
	Weight    uint32
}

// LabelSet is a discovered target as label set; the library computes key, placement and node.
type LabelSet struct {
	Job    string
	Labels labels.Labels
	Weight uint32 // 0 means 1
}

// Move is a change of one target's collector; "" on a side means none.
type Move struct {
	Key      uint64
	From, To string
}

// CollectorStats is the load of one collector.
type CollectorStats struct {
	Name    string
	Targets uint32
	Weight  uint64
}

// Summary holds totals, balance and move counters.
type Summary struct {
	Collectors, Targets, Unassigned uint64
	MaxTargets, MinTargets          uint32
	MeanTargets                     float64
	MaxWeight, MinWeight            uint64
	MeanWeight                      float64
	MovesAssigned, MovesUnassigned  uint64
	MovesReassigned                 uint64
}

// Allocator assigns targets to collectors. It is safe for concurrent use: reads run in
// parallel, changes are serialized, and a read made of several engine calls sees one state.
type Allocator struct {
	mu  sync.RWMutex // read-locked by reads, write-locked by changes and Close
	ptr *C.ta_allocator
}

var errorPool = sync.Pool{New: func() any {
	var e *C.ta_error
	C.ta_error_new(&e)
	return e
}}

// call runs one C call with an error object and turns a failure into *Error.
func call(f func(err *C.ta_error) C.ta_result) error {
	e := errorPool.Get().(*C.ta_error)
	defer errorPool.Put(e)
	if rc := f(e); rc != C.TA_OK {
		return errorFrom(ResultCode(rc), e)
	}
	return nil
}

func errorFrom(code ResultCode, e *C.ta_error) error {
	var needed C.size_t
	C.ta_error_message(e, nil, 0, &needed)
	buf := make([]byte, int(needed))
	if needed > 0 {
		C.ta_error_message(e, (*C.char)(unsafe.Pointer(&buf[0])), needed, &needed)
		buf = buf[:len(buf)-1] // the NUL
	}
	return &Error{Code: code, Message: string(buf)}
}

// New creates an Allocator.
func New(cfg Config) (*Allocator, error) {
	c := cfg.toC()
	var ptr *C.ta_allocator
	if err := call(func(e *C.ta_error) C.ta_result { return C.ta_allocator_new(&c, &ptr, e) }); err != nil {
		return nil, err
	}
	return wrap(ptr), nil
}

// Restore creates an Allocator from Snapshot bytes.
func Restore(snapshot []byte) (*Allocator, error) {
	var ptr *C.ta_allocator
	err := call(func(e *C.ta_error) C.ta_result {
		return C.ta_allocator_restore((*C.uint8_t)(unsafe.SliceData(snapshot)), C.size_t(len(snapshot)), &ptr, e)
	})
	runtime.KeepAlive(snapshot)
	if err != nil {
		return nil, err
	}
	return wrap(ptr), nil
}

func wrap(ptr *C.ta_allocator) *Allocator {
	a := &Allocator{ptr: ptr}
	runtime.SetFinalizer(a, (*Allocator).Close)
	return a
}

// Close frees the engine's memory. It is idempotent; methods return ErrClosed afterwards.
func (a *Allocator) Close() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ptr != nil {
		C.ta_allocator_free(a.ptr)
		a.ptr = nil
		runtime.SetFinalizer(a, nil)
	}
	return nil
}

// reading runs f under the read lock: several readers at once, never during a change, so a
// method made of several C calls (lookups, then the names they refer to) sees one state.
func (a *Allocator) reading(f func() error) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.ptr == nil {
		return ErrClosed
	}
	return f()
}

// writing runs f under the write lock: changes are serialized, as in the engine.
func (a *Allocator) writing(f func() error) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.ptr == nil {
		return ErrClosed
	}
	return f()
}

// c makes one C call with the handle; the caller holds a lock.
func (a *Allocator) c(f func(ptr *C.ta_allocator, e *C.ta_error) C.ta_result) error {
	err := call(func(e *C.ta_error) C.ta_result { return f(a.ptr, e) })
	runtime.KeepAlive(a)
	return err
}

// with makes one C call under the read lock.
func (a *Allocator) with(f func(ptr *C.ta_allocator, e *C.ta_error) C.ta_result) error {
	return a.reading(func() error { return a.c(f) })
}

// change makes one C call under the write lock.
func (a *Allocator) change(f func(ptr *C.ta_allocator, e *C.ta_error) C.ta_result) error {
	return a.writing(func() error { return a.c(f) })
}

// Config returns the configuration the Allocator was created with.
func (a *Allocator) Config() (Config, error) {
	var c C.ta_config
	err := a.with(func(p *C.ta_allocator, e *C.ta_error) C.ta_result { return C.ta_allocator_config(p, &c, e) })
	return configFromC(c), err
}

// AddCollectors adds collectors.
func (a *Allocator) AddCollectors(cs ...Collector) error {
	ar, arr := collectorsToC(cs)
	defer ar.free()
	return a.change(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_add_collectors(p, arr, C.size_t(len(cs)), e)
	})
}

// SetCollectors replaces the collector set by a full listing.
func (a *Allocator) SetCollectors(cs []Collector) error {
	ar, arr := collectorsToC(cs)
	defer ar.free()
	return a.change(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_set_collectors(p, arr, C.size_t(len(cs)), e)
	})
}

// RemoveCollectors removes collectors by name; their targets move.
func (a *Allocator) RemoveCollectors(names ...string) error {
	size := uintptr(len(names)) * unsafe.Sizeof(C.ta_str{})
	for _, n := range names {
		size += uintptr(len(n))
	}
	ar := newArena(size)
	defer ar.free()
	arr := (*C.ta_str)(ar.alloc(uintptr(len(names)) * unsafe.Sizeof(C.ta_str{})))
	view := unsafe.Slice(arr, len(names))
	for i, n := range names {
		view[i] = ar.str(n)
	}
	return a.change(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_remove_collectors(p, arr, C.size_t(len(names)), e)
	})
}

// UpsertTargets adds targets, or updates existing ones in place (they keep their collector).
func (a *Allocator) UpsertTargets(ts []Target) error {
	ar, arr := targetsToC(ts)
	defer ar.free()
	return a.change(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_upsert_targets(p, arr, C.size_t(len(ts)), e)
	})
}

// SetTargets replaces the target set by a full listing (as discovery delivers it).
func (a *Allocator) SetTargets(ts []Target) error {
	ar, arr := targetsToC(ts)
	defer ar.free()
	return a.change(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_set_targets(p, arr, C.size_t(len(ts)), e)
	})
}

// RemoveTargets removes targets by key; each must exist.
func (a *Allocator) RemoveTargets(keys []uint64) error {
	return a.change(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_remove_targets(p, (*C.uint64_t)(unsafe.SliceData(keys)), C.size_t(len(keys)), e)
	})
}

// UpsertLabelSets adds label-set targets, hashed by the library, and returns their keys.
func (a *Allocator) UpsertLabelSets(sets []LabelSet) ([]uint64, error) {
	ar, flat := labelSetsToC(sets)
	defer ar.free()
	keys := make([]uint64, len(sets))
	err := a.change(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_upsert_labeled_targets(p, unsafe.SliceData(flat.jobs), unsafe.SliceData(flat.counts),
			unsafe.SliceData(flat.weights), C.size_t(len(sets)), unsafe.SliceData(flat.names),
			unsafe.SliceData(flat.values), C.size_t(len(flat.names)), (*C.uint64_t)(unsafe.SliceData(keys)), e)
	})
	runtime.KeepAlive(flat)
	return keys, err
}

// Lookup returns the collector id of each key (NoCollector for unknown or unassigned targets).
// Name ids with CollectorName, or use Assignments.
func (a *Allocator) Lookup(keys []uint64) ([]uint32, error) {
	out := make([]uint32, len(keys))
	err := a.with(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_lookup(p, (*C.uint64_t)(unsafe.SliceData(keys)), C.size_t(len(keys)),
			(*C.uint32_t)(unsafe.SliceData(out)), e)
	})
	return out, err
}

// Assignments returns the collector name of each key ("" for unknown or unassigned targets).
func (a *Allocator) Assignments(keys []uint64) ([]string, error) {
	var out []string
	err := a.reading(func() error {
		ids := make([]uint32, len(keys))
		if err := a.c(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
			return C.ta_lookup(p, (*C.uint64_t)(unsafe.SliceData(keys)), C.size_t(len(keys)),
				(*C.uint32_t)(unsafe.SliceData(ids)), e)
		}); err != nil {
			return err
		}
		names := map[uint32]string{NoCollector: ""}
		out = make([]string, len(ids))
		for i, id := range ids {
			name, ok := names[id]
			if !ok {
				var err error
				if name, err = a.collectorName(id); err != nil {
					return err
				}
				names[id] = name
			}
			out[i] = name
		}
		return nil
	})
	return out, err
}

// CollectorName returns the name of a collector id (also of one removed by the last change).
func (a *Allocator) CollectorName(id uint32) (string, error) {
	var name string
	err := a.reading(func() error {
		var err error
		name, err = a.collectorName(id)
		return err
	})
	return name, err
}

// collectorName is CollectorName for a caller holding a lock.
func (a *Allocator) collectorName(id uint32) (string, error) {
	var buf [256]C.char
	var needed C.size_t
	err := a.c(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_collector_name(p, C.uint32_t(id), &buf[0], C.size_t(len(buf)), &needed, e)
	})
	if err == nil {
		return C.GoStringN(&buf[0], C.int(needed-1)), nil
	}
	var e *Error
	if !asError(err, &e) || e.Code != BufferTooSmall {
		return "", err
	}
	big := make([]C.char, int(needed))
	err = a.c(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
		return C.ta_collector_name(p, C.uint32_t(id), &big[0], needed, &needed, e)
	})
	if err != nil {
		return "", err
	}
	return C.GoStringN(&big[0], C.int(needed-1)), nil
}

// CollectorTargets returns the sorted keys of a collector's targets; of one job unless job is "".
func (a *Allocator) CollectorTargets(collector, job string) ([]uint64, error) {
	ar := newArena(uintptr(len(collector) + len(job)))
	defer ar.free()
	name, jobStr := ar.str(collector), ar.str(job)
	var keys []uint64
	err := a.reading(func() error {
		var err error
		keys, err = readArray[uint64](a, func(p *C.ta_allocator, out unsafe.Pointer, cap C.size_t, needed *C.size_t, e *C.ta_error) C.ta_result {
			return C.ta_collector_targets(p, name, jobStr, (*C.uint64_t)(out), cap, needed, e)
		})
		return err
	})
	return keys, err
}

// LastMoves returns the moves of the last change.
func (a *Allocator) LastMoves() ([]Move, error) {
	var moves []Move
	err := a.reading(func() error {
		var err error
		moves, err = a.lastMoves()
		return err
	})
	return moves, err
}

func (a *Allocator) lastMoves() ([]Move, error) {
	raw, err := readArray[C.ta_move](a, func(p *C.ta_allocator, out unsafe.Pointer, cap C.size_t, needed *C.size_t, e *C.ta_error) C.ta_result {
		return C.ta_last_moves(p, (*C.ta_move)(out), cap, needed, e)
	})
	if err != nil {
		return nil, err
	}
	names := map[uint32]string{NoCollector: ""}
	name := func(id C.uint32_t) (string, error) {
		if n, ok := names[uint32(id)]; ok {
			return n, nil
		}
		n, err := a.collectorName(uint32(id))
		names[uint32(id)] = n
		return n, err
	}
	moves := make([]Move, len(raw))
	for i, m := range raw {
		from, err := name(m.from)
		if err != nil {
			return nil, err
		}
		to, err := name(m.to)
		if err != nil {
			return nil, err
		}
		moves[i] = Move{Key: uint64(m.key), From: from, To: to}
	}
	return moves, nil
}

// Stats returns the load of every collector, sorted by name.
func (a *Allocator) Stats() ([]CollectorStats, error) {
	var stats []CollectorStats
	err := a.reading(func() error {
		var err error
		stats, err = a.stats()
		return err
	})
	return stats, err
}

func (a *Allocator) stats() ([]CollectorStats, error) {
	raw, err := readArray[C.ta_collector_stats](a, func(p *C.ta_allocator, out unsafe.Pointer, cap C.size_t, needed *C.size_t, e *C.ta_error) C.ta_result {
		return C.ta_get_collector_stats(p, (*C.ta_collector_stats)(out), cap, needed, e)
	})
	if err != nil {
		return nil, err
	}
	stats := make([]CollectorStats, len(raw))
	for i, s := range raw {
		name, err := a.collectorName(uint32(s.id))
		if err != nil {
			return nil, err
		}
		stats[i] = CollectorStats{Name: name, Targets: uint32(s.targets), Weight: uint64(s.weight)}
	}
	return stats, nil
}

// Summary returns totals, balance and move counters.
func (a *Allocator) Summary() (Summary, error) {
	var s C.ta_summary
	err := a.with(func(p *C.ta_allocator, e *C.ta_error) C.ta_result { return C.ta_get_summary(p, &s, e) })
	return Summary{
		Collectors: uint64(s.collectors), Targets: uint64(s.targets), Unassigned: uint64(s.unassigned),
		MaxTargets: uint32(s.max_targets), MinTargets: uint32(s.min_targets), MeanTargets: float64(s.mean_targets),
		MaxWeight: uint64(s.max_weight), MinWeight: uint64(s.min_weight), MeanWeight: float64(s.mean_weight),
		MovesAssigned: uint64(s.moves_assigned), MovesUnassigned: uint64(s.moves_unassigned),
		MovesReassigned: uint64(s.moves_reassigned),
	}, err
}

// Snapshot returns the whole state as bytes, for Restore.
func (a *Allocator) Snapshot() ([]byte, error) {
	var bytes []byte
	err := a.reading(func() error {
		var err error
		bytes, err = readArray[byte](a, func(p *C.ta_allocator, out unsafe.Pointer, cap C.size_t, needed *C.size_t, e *C.ta_error) C.ta_result {
			return C.ta_snapshot(p, (*C.uint8_t)(out), cap, needed, e)
		})
		return err
	})
	return bytes, err
}

// readArray runs a needed-size call, twice if the first guess is too small; the caller holds
// the read lock, so the size cannot change between the two calls.
func readArray[T any](a *Allocator, f func(p *C.ta_allocator, out unsafe.Pointer, cap C.size_t, needed *C.size_t, e *C.ta_error) C.ta_result) ([]T, error) {
	buf := make([]T, 64)
	for {
		var needed C.size_t
		err := a.c(func(p *C.ta_allocator, e *C.ta_error) C.ta_result {
			return f(p, unsafe.Pointer(unsafe.SliceData(buf)), C.size_t(len(buf)), &needed, e)
		})
		if err == nil {
			return buf[:needed], nil
		}
		var e *Error
		if !asError(err, &e) || e.Code != BufferTooSmall {
			return nil, err
		}
		buf = make([]T, int(needed))
	}
}

// TargetKey is the target identity (the Go allocator's item hash with no relabeling) of a
// label set and job.
func TargetKey(ls labels.Labels, job string) (uint64, error) {
	ar, flat := labelSetsToC([]LabelSet{{Job: job, Labels: ls}})
	defer ar.free()
	var key C.uint64_t
	err := call(func(e *C.ta_error) C.ta_result {
		return C.ta_target_key(unsafe.SliceData(flat.names), unsafe.SliceData(flat.values),
			C.size_t(len(flat.names)), flat.jobs[0], &key, e)
	})
	runtime.KeepAlive(flat)
	return uint64(key), err
}

// PlacementHash is the consistent-hashing placement of a raw __address__.
func PlacementHash(address string) uint64 {
	ar := newArena(uintptr(len(address)))
	defer ar.free()
	var h C.uint64_t
	C.ta_placement_hash(ar.str(address), &h, nil)
	return uint64(h)
}
