//go:build cgo

package allocator

/*
// Where the header and library are found is in link.go (the repository's layout) or, with
// the target_allocator_external build tag, in CGO_CFLAGS/CGO_LDFLAGS. A missing header stops
// the build with what to do instead of only the compiler's "no such file".
#if defined(__has_include)
#if !__has_include("target_allocator.h")
#error "target_allocator.h not found: in the repository run allocator-go/build.sh; for a copy of the package elsewhere build with -tags target_allocator_external and CGO_CFLAGS=-I<dir of target_allocator.h> CGO_LDFLAGS='<path>/libtarget_allocator.a -ldl -lm -lpthread'"
#endif
#endif
#include "target_allocator.h"

// A change and the look at its view in one cgo crossing: the view is read only after the
// change succeeded, and it is the caller's own, so nothing can come between.
// The sizes of the public structs as this package's header lays them out, checked against the
// library it links (a library built from another version reads them at other offsets).
static ta_result go_check_layout(ta_error *e) {
	size_t s[] = TA_LAYOUT_SIZES;
	return ta_check_layout(s, sizeof s / sizeof s[0], e);
}

static ta_result go_apply(const ta_allocator *ta, const ta_diff *d, ta_view *v, ta_view_data *out, ta_error *e) {
	ta_result rc = ta_apply(ta, d, v, e);
	return rc == TA_OK ? ta_view_get(v, out, e) : rc;
}

static ta_result go_set_targets(const ta_allocator *ta, const ta_target_batch *t, const ta_label_batch *l,
                                ta_view *v, ta_view_data *out, ta_error *e) {
	ta_result rc = ta_set_targets(ta, t, l, v, e);
	return rc == TA_OK ? ta_view_get(v, out, e) : rc;
}

static ta_result go_set_collectors(const ta_allocator *ta, const ta_collector *c, size_t n, ta_view *v,
                                   ta_view_data *out, ta_error *e) {
	ta_result rc = ta_set_collectors(ta, c, n, v, e);
	return rc == TA_OK ? ta_view_get(v, out, e) : rc;
}

static ta_result go_set_node_zones(const ta_allocator *ta, const ta_node_zone *t, size_t n, ta_view *v,
                                   ta_view_data *out, ta_error *e) {
	ta_result rc = ta_set_node_zones(ta, t, n, v, e);
	return rc == TA_OK ? ta_view_get(v, out, e) : rc;
}

static ta_result go_read(const ta_allocator *ta, const uint64_t *keys, size_t n, uint32_t *owners, ta_view *v,
                         ta_view_data *out, ta_error *e) {
	ta_result rc = ta_read(ta, keys, n, owners, v, e);
	return rc == TA_OK ? ta_view_get(v, out, e) : rc;
}
*/
import "C"

import (
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
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
	// Rebalancing is ours, for one central allocator: sticky, and after every change the
	// fewest weight moves that keep each collector within ⌈(1±ε)·W/n⌉ (depends on the
	// history of changes, deterministically; MaxWeight must be 0).
	Rebalancing Strategy = C.TA_STRATEGY_REBALANCING
	// NoStrategy as a fallback: per-node leaves node-less targets unassigned.
	NoStrategy Strategy = C.TA_STRATEGY_NONE
)

// String is the strategy's name in configuration (the Target Allocator's
// allocation_strategy: "consistent-hashing", "least-weighted", "per-node", and ours
// "bounded-hashing", "rebalancing"), "none" for NoStrategy, and "Strategy(n)" for a value
// that names no strategy.
func (s Strategy) String() string {
	switch s {
	case ConsistentHashing:
		return "consistent-hashing"
	case LeastWeighted:
		return "least-weighted"
	case PerNode:
		return "per-node"
	case BoundedHashing:
		return "bounded-hashing"
	case Rebalancing:
		return "rebalancing"
	case NoStrategy:
		return "none"
	}
	return fmt.Sprintf("Strategy(%d)", uint32(s))
}

// RingVersion selects which github.com/buraksezer/consistent release the ring reproduces.
type RingVersion uint32

// Ring versions used by the OpenTelemetry Operator.
const (
	RingV0_10_0 RingVersion = C.TA_RING_V0_10_0 // latest Operator release
	RingV1_0_0  RingVersion = C.TA_RING_V1_0_0  // Operator main branch
)

// String is the release as configuration names it ("v0.10.0", "v1.0.0"), and
// "RingVersion(n)" for a value that names none.
func (r RingVersion) String() string {
	switch r {
	case RingV0_10_0:
		return "v0.10.0"
	case RingV1_0_0:
		return "v1.0.0"
	}
	return fmt.Sprintf("RingVersion(%d)", uint32(r))
}

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
	// MaxWeight is bounded-hashing's absolute cap on one collector's weight (0: none; New
	// refuses another value with any other strategy).
	MaxWeight uint64
	// Zones (rebalancing only) keeps targets in the zone of their node, collectors being in
	// the zone of theirs (SetNodeZones), while every collector stays within ⌈(1+s)·W/n⌉ and
	// ⌊(1−s)·W/n⌋ weight, s = max(ZoneSkew, Epsilon). ZoneSkew is read only with Zones.
	Zones    bool
	ZoneSkew float64
	// HashThreads caps the goroutines that hash one call's label sets (Go side only; not part
	// of a snapshot). A call with 2,048 label sets or more is hashed by up to
	// GOMAXPROCS goroutines, so it uses up to that many threads for its length; 0 means
	// GOMAXPROCS, 1 hashes every call on the calling goroutine. Results are the same either way.
	HashThreads int
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
		Zones:             c.zones != 0,
		ZoneSkew:          float64(c.zone_skew),
	}
}

func (c Config) toC() C.ta_config {
	var weighted, zones C.uint8_t
	if c.Weighted {
		weighted = 1
	}
	if c.Zones {
		zones = 1
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
		zones:              zones,
		zone_skew:          C.double(c.ZoneSkew),
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
	// Weight is the target's load (what least-weighted, bounded-hashing and rebalancing
	// balance). 0, the zero value, means 1, so a Target written without a Weight weighs as
	// one target does. A weight of 0 cannot be expressed from Go: unlike the C ABI and the
	// Python module, which keep an explicit 0 (a target that counts but adds no weight).
	Weight uint32
}

// LabelSet is a discovered target as label set; the library computes key, placement and node.
type LabelSet struct {
	Job    string
	Labels labels.Labels
	// Weight is the target's load; 0, the zero value, means 1, as for Target.Weight (a weight
	// of 0, which the C ABI and Python keep, cannot be expressed from Go).
	Weight uint32
}

// Diff is one change, applied atomically: remove targets, remove then add collectors, upsert
// targets (Upsert, then UpsertLabels).
type Diff struct {
	Upsert           []Target
	UpsertLabels     []LabelSet
	Remove           []uint64
	AddCollectors    []Collector
	RemoveCollectors []string
}

// Move is a change of one target's collector; "" on a side means none. A change gives the
// same set of moves in every process; their order is the same for the same history of changes,
// but an Allocator restored from a snapshot may list them in another order.
type Move struct {
	Key      uint64
	From, To string
}

// CollectorStats is the load of one collector.
type CollectorStats struct {
	Name    string
	Node    string
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

// Picture is one consistent look at the state: every collector (sorted by name) with its load,
// the totals, and the owners of the keys asked, all from one state.
type Picture struct {
	Collectors []CollectorStats
	Summary    Summary
	// Owners[i] indexes Collectors for the i-th key asked; -1 for an unknown or unassigned
	// target.
	Owners []int32
}

// Allocator assigns targets to collectors. It is safe for concurrent use: changes are
// serialized by the engine, and every read is one engine call that sees one state.
type Allocator struct {
	// mu is held (shared) for the length of one C call and exclusively by Close, so Close
	// never frees the handle under a call; it never spans two C calls.
	mu  sync.RWMutex
	ptr *C.ta_allocator
	// hashThreads is Config.HashThreads.
	hashThreads int
}

// scratch is what one C call needs besides the handle: an error object, a view for its
// result, and Go buffers for its arguments, reused through a pool. The finalizer frees the C
// objects when the pool drops a scratch (the GC empties pools), so nothing leaks.
type scratch struct {
	err  *C.ta_error
	view *C.ta_view
	in   input
	// known caches collector and node names read from views (str); viewNameBuf holds one
	// view's names while its moves are converted.
	known       map[string]string
	viewNameBuf []string
	// owners is Assignments' buffer for the engine's answer.
	owners []uint32
}

// liveScratch counts scratch objects whose C objects are not yet freed (tests watch it).
var liveScratch atomic.Int64

var scratchPool = sync.Pool{New: func() any {
	s := &scratch{}
	C.ta_error_new(&s.err)
	C.ta_view_new(&s.view)
	liveScratch.Add(1)
	runtime.SetFinalizer(s, (*scratch).free)
	return s
}}

func (s *scratch) free() {
	s.in.freeData()
	C.ta_error_free(s.err)
	C.ta_view_free(s.view)
	s.err, s.view = nil, nil
	liveScratch.Add(-1)
}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

func putScratch(s *scratch) {
	s.in.reset()
	clear(s.viewNameBuf)
	// One huge read's buffer is not kept for ever.
	if cap(s.owners) > 1<<20 {
		s.owners = nil
	}
	scratchPool.Put(s)
}

// failure turns a failed code into *Error with the message the error object holds.
func (s *scratch) failure(rc C.ta_result) error {
	var needed C.size_t
	C.ta_error_message(s.err, nil, 0, &needed)
	buf := make([]byte, int(needed))
	if needed > 0 {
		C.ta_error_message(s.err, (*C.char)(unsafe.Pointer(&buf[0])), needed, &needed)
		buf = buf[:len(buf)-1] // the NUL
	}
	return &Error{Code: ResultCode(rc), Message: string(buf)}
}

// New creates an Allocator.
func New(cfg Config) (*Allocator, error) {
	if err := checkLayout(); err != nil {
		return nil, err
	}
	if cfg.HashThreads < 0 {
		return nil, &Error{Code: InvalidConfig, Message: fmt.Sprintf("HashThreads is %d; 0 (GOMAXPROCS) or more", cfg.HashThreads)}
	}
	c := cfg.toC()
	s := getScratch()
	defer putScratch(s)
	var ptr *C.ta_allocator
	if rc := C.ta_allocator_new(&c, &ptr, s.err); rc != C.TA_OK {
		err := s.failure(rc)
		// A Config literal leaves the ring at zero and Fallback at ConsistentHashing (the
		// zero Strategy); say where a working one starts instead of only what is wrong.
		if e, ok := err.(*Error); ok && cfg.PartitionCount == 0 && cfg.ReplicationFactor == 0 && cfg.LoadFactor == 0 {
			e.Message += "; a Config literal is not a configuration: start from DefaultConfig() and change the fields you need (Fallback: NoStrategy for none)"
		}
		return nil, err
	}
	a := wrap(ptr)
	a.hashThreads = cfg.HashThreads
	return a, nil
}

// Restore creates an Allocator from Snapshot bytes (HashThreads 0).
func Restore(snapshot []byte) (*Allocator, error) {
	if err := checkLayout(); err != nil {
		return nil, err
	}
	s := getScratch()
	defer putScratch(s)
	var ptr *C.ta_allocator
	rc := C.ta_allocator_restore((*C.uint8_t)(unsafe.SliceData(snapshot)), C.size_t(len(snapshot)), &ptr, s.err)
	runtime.KeepAlive(snapshot)
	if rc != C.TA_OK {
		return nil, s.failure(rc)
	}
	return wrap(ptr), nil
}

var (
	layoutOnce sync.Once
	layoutErr  error
)

// checkLayout fails when the linked library was built from another version than this package's
// header (a stale library after an update: rebuild it with build.sh), once per process.
func checkLayout() error {
	layoutOnce.Do(func() {
		s := getScratch()
		defer putScratch(s)
		if rc := C.go_check_layout(s.err); rc != C.TA_OK {
			layoutErr = s.failure(rc)
		}
	})
	return layoutErr
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

// call runs one C call with the handle, a scratch and the handle kept open.
func (a *Allocator) call(f func(ptr *C.ta_allocator, s *scratch) error) error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.ptr == nil {
		return ErrClosed
	}
	s := getScratch()
	defer putScratch(s)
	err := f(a.ptr, s)
	runtime.KeepAlive(a)
	return err
}

// Config returns the configuration the Allocator was created with.
func (a *Allocator) Config() (Config, error) {
	var c C.ta_config
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		if rc := C.ta_allocator_config(p, &c, s.err); rc != C.TA_OK {
			return s.failure(rc)
		}
		return nil
	})
	cfg := configFromC(c)
	cfg.HashThreads = a.hashThreads
	return cfg, err
}

// Digest returns the assignment digest: equal for equal assignments (every assigned target's
// key with its collector's name) whatever changes built them, on every platform, so replicas
// can compare one number. XOR over the assigned targets of xxh64(key LE ‖ xxh64(collector
// name) LE); unassigned targets add nothing. O(1).
func (a *Allocator) Digest() (uint64, error) {
	var d C.uint64_t
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		if rc := C.ta_digest(p, &d, s.err); rc != C.TA_OK {
			return s.failure(rc)
		}
		return nil
	})
	return uint64(d), err
}

// Apply applies one change atomically and returns its moves, taken under the same lock as the
// change. On error nothing changed. The keys of d.UpsertLabels are returned in order.
func (a *Allocator) Apply(d Diff) (keys []uint64, moves []Move, err error) {
	err = a.call(func(p *C.ta_allocator, s *scratch) error {
		in := &s.in
		var diff C.ta_diff
		var err error
		diff.upsert, diff.upsert_labels, keys, err = in.upserts(d.Upsert, d.UpsertLabels, a.hashThreads)
		if err != nil {
			return err
		}
		if diff.upsert_labels.len > 0 {
			keys = make([]uint64, len(d.UpsertLabels))
			diff.upsert_labels.keys_out = (*C.uint64_t)(in.pin(unsafe.Pointer(&keys[0])))
		}
		diff.remove = (*C.uint64_t)(in.pinSlice(unsafe.Pointer(unsafe.SliceData(d.Remove)), len(d.Remove)))
		diff.n_remove = C.size_t(len(d.Remove))
		diff.add_collectors = in.collectors(d.AddCollectors)
		diff.n_add_collectors = C.size_t(len(d.AddCollectors))
		diff.remove_collectors = in.strs(d.RemoveCollectors)
		diff.n_remove_collectors = C.size_t(len(d.RemoveCollectors))
		var out C.ta_view_data
		if rc := C.go_apply(p, &diff, s.view, &out, s.err); rc != C.TA_OK {
			keys = nil
			return s.failure(rc)
		}
		moves = s.movesOf(&out)
		return nil
	})
	return keys, moves, err
}

// AddCollectors adds collectors and returns the moves.
func (a *Allocator) AddCollectors(cs ...Collector) ([]Move, error) {
	_, moves, err := a.Apply(Diff{AddCollectors: cs})
	return moves, err
}

// RemoveCollectors removes collectors by name; their targets move.
func (a *Allocator) RemoveCollectors(names ...string) ([]Move, error) {
	_, moves, err := a.Apply(Diff{RemoveCollectors: names})
	return moves, err
}

// SetCollectors replaces the collector set by a full listing and returns the moves.
func (a *Allocator) SetCollectors(cs []Collector) ([]Move, error) {
	var moves []Move
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		arr := s.in.collectors(cs)
		var out C.ta_view_data
		if rc := C.go_set_collectors(p, arr, C.size_t(len(cs)), s.view, &out, s.err); rc != C.TA_OK {
			return s.failure(rc)
		}
		moves = s.movesOf(&out)
		return nil
	})
	return moves, err
}

// NodeZone is one row of a node → zone table: the node's name and its zone ("" for none).
type NodeZone struct {
	Node, Zone string
}

// SetNodeZones replaces the node → zone table that zone-aware rebalancing reads (a target is
// in the zone of its node, a collector in the zone of its node; nodes not listed have no
// zone) and returns the moves, taken under the same lock as the change. A node listed twice
// or an empty node name is an InvalidArgument error, and nothing changed. Other strategies,
// and rebalancing without Zones, keep the table and move nothing.
func (a *Allocator) SetNodeZones(table []NodeZone) ([]Move, error) {
	var moves []Move
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		arr := s.in.nodeZones(table)
		var out C.ta_view_data
		if rc := C.go_set_node_zones(p, arr, C.size_t(len(table)), s.view, &out, s.err); rc != C.TA_OK {
			return s.failure(rc)
		}
		moves = s.movesOf(&out)
		return nil
	})
	return moves, err
}

// UpsertTargets adds targets, or updates existing ones in place (they keep their collector).
func (a *Allocator) UpsertTargets(ts []Target) ([]Move, error) {
	_, moves, err := a.Apply(Diff{Upsert: ts})
	return moves, err
}

// RemoveTargets removes targets by key; each must exist.
func (a *Allocator) RemoveTargets(keys []uint64) ([]Move, error) {
	_, moves, err := a.Apply(Diff{Remove: keys})
	return moves, err
}

// UpsertLabelSets adds label-set targets, hashed by the library, and returns their keys and
// the moves.
func (a *Allocator) UpsertLabelSets(sets []LabelSet) ([]uint64, []Move, error) {
	return a.Apply(Diff{UpsertLabels: sets})
}

// SetTargets replaces the target set by a full listing (as discovery delivers it) and returns
// the moves.
func (a *Allocator) SetTargets(ts []Target) ([]Move, error) {
	_, moves, err := a.setTargets(ts, nil)
	return moves, err
}

// SetLabelSets replaces the target set by a full listing of label sets and returns their keys
// and the moves.
func (a *Allocator) SetLabelSets(sets []LabelSet) ([]uint64, []Move, error) {
	return a.setTargets(nil, sets)
}

func (a *Allocator) setTargets(ts []Target, sets []LabelSet) (keys []uint64, moves []Move, err error) {
	err = a.call(func(p *C.ta_allocator, s *scratch) error {
		in := &s.in
		cols, lbl, hashedKeys, err := in.upserts(ts, sets, a.hashThreads)
		if err != nil {
			return err
		}
		keys = hashedKeys
		if lbl.len > 0 {
			keys = make([]uint64, len(sets))
			lbl.keys_out = (*C.uint64_t)(in.pin(unsafe.Pointer(&keys[0])))
		}
		var out C.ta_view_data
		if rc := C.go_set_targets(p, &cols, &lbl, s.view, &out, s.err); rc != C.TA_OK {
			keys = nil
			return s.failure(rc)
		}
		moves = s.movesOf(&out)
		return nil
	})
	return keys, moves, err
}

// Read returns one consistent picture of the state with the owners of keys (keys may be nil).
func (a *Allocator) Read(keys []uint64) (Picture, error) {
	var pic Picture
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		// The engine writes uint32 owners; TA_NO_COLLECTOR (all ones) is -1 as int32, so they
		// are written straight into the int32 column.
		owners := make([]int32, len(keys))
		var out C.ta_view_data
		rc := C.go_read(p, (*C.uint64_t)(unsafe.SliceData(keys)), C.size_t(len(keys)),
			(*C.uint32_t)(unsafe.Pointer(unsafe.SliceData(owners))), s.view, &out, s.err)
		if rc != C.TA_OK {
			return s.failure(rc)
		}
		pic.Collectors = s.collectorsOf(&out)
		pic.Summary = summaryOf(&out.summary)
		pic.Owners = owners
		return nil
	})
	runtime.KeepAlive(keys)
	return pic, err
}

// Assignments returns the collector name of each key ("" for unknown or unassigned targets),
// all from one state: one read into a reused owner buffer, then the names (no Picture).
func (a *Allocator) Assignments(keys []uint64) ([]string, error) {
	var names []string
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		s.owners = slices.Grow(s.owners[:0], len(keys))[:len(keys)]
		var out C.ta_view_data
		rc := C.go_read(p, (*C.uint64_t)(unsafe.SliceData(keys)), C.size_t(len(keys)),
			(*C.uint32_t)(unsafe.SliceData(s.owners)), s.view, &out, s.err)
		if rc != C.TA_OK {
			return s.failure(rc)
		}
		collectors := s.viewNames(&out)
		names = make([]string, len(keys))
		for i, o := range s.owners {
			if o != C.TA_NO_COLLECTOR {
				names[i] = collectors[o]
			}
		}
		return nil
	})
	runtime.KeepAlive(keys)
	return names, err
}

// Stats returns the load of every collector, sorted by name.
func (a *Allocator) Stats() ([]CollectorStats, error) {
	pic, err := a.Read(nil)
	return pic.Collectors, err
}

// Summary returns totals, balance and move counters.
func (a *Allocator) Summary() (Summary, error) {
	pic, err := a.Read(nil)
	return pic.Summary, err
}

// CollectorTargets returns the sorted keys of a collector's targets; of one job unless job is "".
func (a *Allocator) CollectorTargets(collector, job string) ([]uint64, error) {
	var keys []uint64
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		var err error
		keys, err = readArray[uint64](s, func(out unsafe.Pointer, cap C.size_t, needed *C.size_t) C.ta_result {
			return C.ta_collector_targets(p, goStr(collector), goStr(job), (*C.uint64_t)(out), cap, needed, s.err)
		})
		return err
	})
	runtime.KeepAlive(collector)
	runtime.KeepAlive(job)
	return keys, err
}

// Snapshot returns the whole state as bytes, for Restore.
func (a *Allocator) Snapshot() ([]byte, error) {
	var bytes []byte
	err := a.call(func(p *C.ta_allocator, s *scratch) error {
		var err error
		bytes, err = readArray[byte](s, func(out unsafe.Pointer, cap C.size_t, needed *C.size_t) C.ta_result {
			return C.ta_snapshot(p, (*C.uint8_t)(out), cap, needed, s.err)
		})
		return err
	})
	return bytes, err
}

// readArray runs a needed-size call until its buffer is large enough. Each call is a whole
// answer from one state; a change between two attempts only means a third.
func readArray[T any](s *scratch, f func(out unsafe.Pointer, cap C.size_t, needed *C.size_t) C.ta_result) ([]T, error) {
	buf := make([]T, 64)
	for {
		var needed C.size_t
		rc := f(unsafe.Pointer(unsafe.SliceData(buf)), C.size_t(len(buf)), &needed)
		if rc == C.TA_OK {
			return buf[:needed], nil
		}
		if rc != C.TA_BUFFER_TOO_SMALL {
			return nil, s.failure(rc)
		}
		buf = make([]T, int(needed)+int(needed)/8)
	}
}

// TargetKey is the target identity (the Go allocator's item hash with no relabeling) of a
// label set and job.
func TargetKey(ls labels.Labels, job string) (uint64, error) {
	s := getScratch()
	defer putScratch(s)
	names := make([]C.ta_str, 0, ls.Len())
	values := make([]C.ta_str, 0, ls.Len())
	ls.Range(func(l labels.Label) {
		names = append(names, s.in.str(l.Name))
		values = append(values, s.in.str(l.Value))
	})
	var key C.uint64_t
	rc := C.ta_target_key(unsafe.SliceData(names), unsafe.SliceData(values), C.size_t(len(names)), s.in.str(job), &key, s.err)
	if rc != C.TA_OK {
		return 0, s.failure(rc)
	}
	return uint64(key), nil
}

// PlacementHash is the consistent-hashing placement of a raw __address__.
func PlacementHash(address string) uint64 {
	var h C.uint64_t
	C.ta_placement_hash(goStr(address), &h, nil)
	runtime.KeepAlive(address)
	return uint64(h)
}

// goStr is a string's bytes as a ta_str passed by value: Go memory with no pointers in it,
// which cgo allows for the length of the call.
func goStr(s string) C.ta_str {
	return C.ta_str{ptr: (*C.uint8_t)(unsafe.Pointer(unsafe.StringData(s))), len: C.size_t(len(s))}
}

// movesOf converts a change's view: each collector name once, then the moves (one slice of
// the exact size; the moves share the names' strings).
func (s *scratch) movesOf(out *C.ta_view_data) []Move {
	raw := unsafe.Slice(out.moves, int(out.n_moves))
	if len(raw) == 0 {
		return []Move{} // as before: empty, not nil (no allocation)
	}
	names := s.viewNames(out)
	moves := make([]Move, len(raw))
	for i := range raw {
		m := &raw[i]
		moves[i].Key = uint64(m.key)
		if m.from != C.TA_NO_COLLECTOR {
			moves[i].From = names[m.from]
		}
		if m.to != C.TA_NO_COLLECTOR {
			moves[i].To = names[m.to]
		}
	}
	return moves
}

// viewNames is the view's collector names as Go strings, in s.viewNameBuf (valid until the
// next call on s).
func (s *scratch) viewNames(out *C.ta_view_data) []string {
	infos := unsafe.Slice(out.collectors, int(out.n_collectors))
	names := s.viewNameBuf[:0]
	for i := range infos {
		names = append(names, s.str(infos[i].name))
	}
	s.viewNameBuf = names
	return names
}

func (s *scratch) collectorsOf(out *C.ta_view_data) []CollectorStats {
	infos := unsafe.Slice(out.collectors, int(out.n_collectors))
	stats := make([]CollectorStats, len(infos))
	for i := range infos {
		c := &infos[i]
		stats[i] = CollectorStats{Name: s.str(c.name), Node: s.str(c.node), Targets: uint32(c.targets), Weight: uint64(c.weight)}
	}
	return stats
}

// maxKnownNames bounds a scratch's cache of collector and node names.
const maxKnownNames = 4096

// str is the Go string of a view's name. Collector names repeat from call to call, so each is
// copied once into Go memory and then found in the scratch's cache (strings are immutable, so
// sharing them with earlier results is safe).
func (s *scratch) str(c C.ta_str) string {
	if c.len == 0 {
		return ""
	}
	// The lookup reads the C bytes in place; only a miss copies them.
	if known, ok := s.known[unsafe.String((*byte)(unsafe.Pointer(c.ptr)), int(c.len))]; ok {
		return known
	}
	if len(s.known) >= maxKnownNames {
		clear(s.known)
	}
	if s.known == nil {
		s.known = make(map[string]string)
	}
	name := C.GoStringN((*C.char)(unsafe.Pointer(c.ptr)), C.int(c.len))
	s.known[name] = name
	return name
}

func summaryOf(s *C.ta_summary) Summary {
	return Summary{
		Collectors: uint64(s.collectors), Targets: uint64(s.targets), Unassigned: uint64(s.unassigned),
		MaxTargets: uint32(s.max_targets), MinTargets: uint32(s.min_targets), MeanTargets: float64(s.mean_targets),
		MaxWeight: uint64(s.max_weight), MinWeight: uint64(s.min_weight), MeanWeight: float64(s.mean_weight),
		MovesAssigned: uint64(s.moves_assigned), MovesUnassigned: uint64(s.moves_unassigned),
		MovesReassigned: uint64(s.moves_reassigned),
	}
}
