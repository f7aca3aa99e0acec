package allocator

import (
	"errors"
	"fmt"
	"math/rand"
	"reflect"
	"testing"
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// batchBytes is everything one call hands the engine for a batch: the columns and the job and
// node tables as strings, in order.
type batchBytes struct {
	keys, placements    []uint64
	weights, jobs       []uint32
	nodes               []uint32
	jobNames, nodeNames []string
	hashedKeys          []uint64
	err                 string
	toEngine            int // label sets handed over as bytes (the unsorted fallback)
}

func captureBatch(in *input, ts []Target, sets []LabelSet, hash func() ([]uint64, error)) batchBytes {
	keys, err := hash()
	if err != nil {
		// Nothing is handed over: only the error counts.
		return batchBytes{hashedKeys: keys, err: err.Error()}
	}
	str := func(s []uint8, n int) string { return string(s[:n]) }
	var b batchBytes
	b.keys = append(b.keys, in.keys...)
	b.placements = append(b.placements, in.placements...)
	b.weights = append(b.weights, in.weights...)
	b.jobs = append(b.jobs, in.jobs...)
	b.nodes = append(b.nodes, in.nodes...)
	for _, s := range in.jobNames {
		b.jobNames = append(b.jobNames, str(unsafe.Slice((*uint8)(unsafe.Pointer(s.ptr)), int(s.len)), int(s.len)))
	}
	for _, s := range in.nodeNames {
		b.nodeNames = append(b.nodeNames, str(unsafe.Slice((*uint8)(unsafe.Pointer(s.ptr)), int(s.len)), int(s.len)))
	}
	b.hashedKeys = keys
	b.toEngine = len(in.ends)
	return b
}

// testSets: label sets over a few jobs (some sharing their string, some not), nodes from every
// node label or none, weights 0..3; bad sets can be put at chosen positions.
func testSets(r *rand.Rand, base, n int) []LabelSet {
	jobs := []string{"pods", "nodes", "kube-state-metrics", ""}
	sets := make([]LabelSet, n)
	for i := range sets {
		kv := []string{"__address__", fmt.Sprintf("10.%d.%d.%d:80", r.Intn(4), i/256%256, i%256), "instance", fmt.Sprint(base + i)}
		switch r.Intn(4) {
		case 0:
			kv = append(kv, "__meta_kubernetes_pod_node_name", fmt.Sprintf("node-%d", r.Intn(40)))
		case 1:
			kv = append(kv, "__meta_kubernetes_node_name", fmt.Sprintf("node-%d", r.Intn(40)))
		case 2:
			kv = append(kv, "__meta_kubernetes_endpointslice_address_target_kind", "Node",
				"__meta_kubernetes_endpointslice_address_target_name", fmt.Sprintf("node-%d", r.Intn(40)))
		}
		job := jobs[r.Intn(len(jobs))]
		if r.Intn(4) == 0 {
			job = string([]byte(job)) // equal, another backing array
		}
		sets[i] = LabelSet{Job: job, Labels: labels.FromStrings(kv...), Weight: uint32(r.Intn(4))}
	}
	return sets
}

func unsortedSet() labels.Labels {
	b := labels.NewScratchBuilder(2)
	b.Add("z", "1")
	b.Add("__address__", "y:1")
	return b.Labels()
}

// The columns and tables the engine gets are the same bytes whatever the number of goroutines
// and the chunking: compared with one goroutine hashing the whole batch, over batches with and
// without plain targets in front, and with a missing __address__, a bad node name or an
// unsorted set at chosen places (the same error, or the same fallback, as the serial path).
func TestParallelHashingIsTheSerialBytes(t *testing.T) {
	defer func(p, lo, hi int) { parallelMin, minChunk, maxChunk = p, lo, hi }(parallelMin, minChunk, maxChunk)
	r := rand.New(rand.NewSource(14))
	ts := []Target{
		{Key: 1, Placement: 2, Job: "nodes", Node: "node-7"},
		{Key: 3, Placement: 4, Job: "other", Weight: 9},
	}
	type tc struct {
		name string
		ts   []Target
		sets []LabelSet
	}
	var cases []tc
	for _, n := range []int{1, 5, 257, 3000} {
		cases = append(cases, tc{fmt.Sprintf("n=%d", n), nil, testSets(r, 0, n)}, tc{fmt.Sprintf("targets+n=%d", n), ts, testSets(r, 0, n)})
	}
	for _, at := range []int{0, 700, 2999} {
		missing := testSets(r, 0, 3000)
		missing[at].Labels = labels.FromStrings("instance", "x")
		missing[min(at+5, 2999)].Labels = unsortedSet() // after the first failure: never reached
		badNode := testSets(r, 0, 3000)
		badNode[at].Labels = labels.FromStrings("__address__", "a:1", "__meta_kubernetes_node_name", "\xff")
		unsorted := testSets(r, 0, 3000)
		unsorted[at].Labels = unsortedSet()
		cases = append(cases, tc{fmt.Sprintf("missing@%d", at), ts, missing}, tc{fmt.Sprintf("badnode@%d", at), nil, badNode},
			tc{fmt.Sprintf("unsorted@%d", at), ts, unsorted})
	}
	for _, c := range cases {
		serial := func() batchBytes {
			parallelMin, minChunk, maxChunk = 1<<62, 256, 4096
			var in input
			defer in.reset()
			return captureBatch(&in, c.ts, c.sets, func() ([]uint64, error) {
				_, _, keys, err := in.upserts(c.ts, c.sets, 1)
				return keys, err
			})
		}()
		if c.name == "n=3000" && (len(serial.jobNames) != 4 || len(serial.nodeNames) < 30) {
			t.Fatalf("%s: the test data lost its variety: %v %v", c.name, serial.jobNames, serial.nodeNames)
		}
		for _, threads := range []int{1, 2, 3, 8} {
			for _, chunk := range []int{1, 7, 256} {
				parallelMin, minChunk, maxChunk = 1, chunk, chunk
				var in input
				got := captureBatch(&in, c.ts, c.sets, func() ([]uint64, error) {
					// The goroutine count as given, so more than GOMAXPROCS run too.
					_, _, keys, err := in.upsertsOn(c.ts, c.sets, threads)
					return keys, err
				})
				in.reset()
				if !reflect.DeepEqual(got, serial) {
					t.Fatalf("%s, %d goroutines, chunks of %d: differs from the serial batch\n got %+v\nwant %+v",
						c.name, threads, chunk, summarize(got), summarize(serial))
				}
			}
		}
	}
}

func summarize(b batchBytes) string {
	return fmt.Sprintf("%d rows, jobs %v, nodes %v, err %q, %d to the engine", len(b.keys), b.jobNames, b.nodeNames, b.err, b.toEngine)
}

// End to end: an allocator hashing every call on one goroutine and one hashing in parallel
// (small chunks, so a few hundred sets are many chunks) return the same keys and moves and
// reach the same state, through full listings and churn.
func TestParallelAndSerialAllocatorsAgree(t *testing.T) {
	defer func(p, lo, hi int) { parallelMin, minChunk, maxChunk = p, lo, hi }(parallelMin, minChunk, maxChunk)
	parallelMin, minChunk, maxChunk = 64, 16, 16
	r := rand.New(rand.NewSource(15))
	serialCfg := DefaultConfig()
	serialCfg.Strategy, serialCfg.Fallback = PerNode, ConsistentHashing
	serialCfg.HashThreads = 1
	parallelCfg := serialCfg
	parallelCfg.HashThreads = 0
	serial, parallel := newOrFail(t, serialCfg), newOrFail(t, parallelCfg)
	if c, err := serial.Config(); err != nil || c != serialCfg {
		t.Fatalf("Config() = %+v, %v", c, err)
	}
	cs := []Collector{{Name: "a", Node: "node-1"}, {Name: "b", Node: "node-2"}, {Name: "c"}}
	for _, a := range []*Allocator{serial, parallel} {
		if _, err := a.SetCollectors(cs); err != nil {
			t.Fatal(err)
		}
	}
	sets := testSets(r, 0, 500)
	var keys []uint64
	for step := 0; step < 20; step++ {
		var k1, k2 []uint64
		var m1, m2 []Move
		var e1, e2 error
		if step%5 == 0 {
			k1, m1, e1 = serial.SetLabelSets(sets)
			k2, m2, e2 = parallel.SetLabelSets(sets)
		} else {
			gone := keys[:r.Intn(100)]
			fresh := testSets(r, 1000*(step+1), r.Intn(300))
			k1, m1, e1 = serial.Apply(Diff{Remove: gone, UpsertLabels: fresh})
			k2, m2, e2 = parallel.Apply(Diff{Remove: gone, UpsertLabels: fresh})
			keys = keys[len(gone):]
		}
		if e1 != nil || e2 != nil {
			if e1 == nil || e2 == nil || e1.Error() != e2.Error() {
				t.Fatalf("step %d: errors %v / %v", step, e1, e2)
			}
			continue
		}
		if !reflect.DeepEqual(k1, k2) || !reflect.DeepEqual(m1, m2) {
			t.Fatalf("step %d: keys or moves differ (%d/%d keys, %d/%d moves)", step, len(k1), len(k2), len(m1), len(m2))
		}
		if step%5 == 0 {
			keys = k1
		} else {
			keys = append(keys, k1...)
		}
		d1, _ := serial.Digest()
		d2, _ := parallel.Digest()
		if d1 != d2 || len(m1) == 0 {
			t.Fatalf("step %d: digests %x / %x, %d moves", step, d1, d2, len(m1))
		}
	}
	if _, err := New(Config{HashThreads: -1}); !errors.Is(err, &Error{Code: InvalidConfig}) {
		t.Fatalf("HashThreads -1: %v", err)
	}
}

// A name table numbers names in first-seen order, through its last-name check, its map and
// its arena (names copied, tables reused across calls), compared with a plain map.
func TestNameTableNumbersInFirstSeenOrder(t *testing.T) {
	r := rand.New(rand.NewSource(16))
	var n localNames
	for call := 0; call < 4; call++ {
		n.reset()
		want := map[string]uint32{}
		pool := make([]string, 50+r.Intn(1000))
		for i := range pool {
			// Short and long names, some sharing their last eight bytes, some equal across calls.
			pool[i] = fmt.Sprintf("%s-%d-%s", []string{"node", "ip-10-0", "gke-pool"}[r.Intn(3)], r.Intn(3000), "ec2.internal"[:r.Intn(13)])
		}
		for row := 0; row < 20_000; row++ {
			s := pool[r.Intn(len(pool))]
			if r.Intn(3) == 0 {
				s = string([]byte(s)) // equal, another backing array
			}
			w, seen := want[s]
			if !seen {
				w = uint32(len(want))
				want[s] = w
			}
			got, added := n.of(s)
			if got != w || added == seen {
				t.Fatalf("call %d row %d: %q numbered %d (added %v), want %d (added %v)", call, row, s, got, added, w, !seen)
			}
		}
		for s, w := range want {
			if n.names[w] != s {
				t.Fatalf("call %d: table[%d] = %q, want %q", call, w, n.names[w], s)
			}
		}
	}
}
