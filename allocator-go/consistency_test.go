package allocator

import (
	"errors"
	"fmt"
	"math/rand"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
)

// owners reads the collector name of every key in one picture.
func owners(t testing.TB, a *Allocator, keys []uint64) []string {
	t.Helper()
	names, err := a.Assignments(keys)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// checkMoves: the moves of a change are exactly the keys whose owner differs between the
// states before and after it, with those owners as From and To.
func checkMoves(t testing.TB, step string, keys []uint64, before, after []string, moves []Move) {
	t.Helper()
	index := make(map[uint64]int, len(keys))
	for i, k := range keys {
		index[k] = i
	}
	seen := map[uint64]bool{}
	for _, m := range moves {
		i, ok := index[m.Key]
		if !ok {
			t.Fatalf("%s: move of unknown key %d", step, m.Key)
		}
		if seen[m.Key] {
			t.Fatalf("%s: key %d moved twice", step, m.Key)
		}
		seen[m.Key] = true
		if m.From != before[i] || m.To != after[i] {
			t.Fatalf("%s: move %+v, but the owner went %q -> %q", step, m, before[i], after[i])
		}
	}
	for i, k := range keys {
		if before[i] != after[i] && !seen[k] {
			t.Fatalf("%s: key %d went %q -> %q without a move", step, k, before[i], after[i])
		}
	}
}

func randomLabelSet(r *rand.Rand, i int) LabelSet {
	return LabelSet{
		Job: fmt.Sprintf("job-%d", r.Intn(3)),
		Labels: labels.FromStrings(
			"__address__", fmt.Sprintf("10.%d.%d.%d:%d", r.Intn(4), r.Intn(256), i%256, 8000+r.Intn(4)),
			"__meta_kubernetes_pod_name", fmt.Sprintf("pod-%d", i),
			"__meta_kubernetes_pod_node_name", fmt.Sprintf("node-%d", r.Intn(4)),
			"team", strings.Repeat("t", r.Intn(300)), // sometimes past the 1-byte length
		),
		Weight: uint32(1 + r.Intn(5)),
	}
}

// Random diffs through every mutator, on every strategy: each returns exactly its moves.
func TestMovesEqualTheBeforeAfterDifference(t *testing.T) {
	// The last run is zone-aware rebalancing, with node → zone tables among its changes.
	for run, strategy := range []Strategy{ConsistentHashing, LeastWeighted, PerNode, BoundedHashing, Rebalancing, Rebalancing} {
		zoned := run == 5
		r := rand.New(rand.NewSource(int64(strategy) + 7 + int64(run)/5))
		cfg := DefaultConfig()
		cfg.Strategy = strategy
		if strategy == PerNode {
			cfg.Fallback = LeastWeighted
		}
		ops := 6
		if zoned {
			cfg.Zones, cfg.ZoneSkew = true, 0.1
			ops = 7
		}
		a := newOrFail(t, cfg)
		var keys []uint64 // every key ever used, so removed ones are checked too
		live := map[uint64]bool{}
		collectors := map[string]bool{}
		next := 0
		for step := 0; step < 120; step++ {
			before := owners(t, a, keys)
			var moves []Move
			var err error
			var added []uint64
			name := fmt.Sprintf("%v (zones %v) step %d", strategy, zoned, step)
			switch op := r.Intn(ops); {
			case op == 0 || len(collectors) == 0:
				var cs []Collector
				for i := 0; i < 1+r.Intn(3); i++ {
					n := fmt.Sprintf("c-%d", r.Intn(12))
					if !collectors[n] {
						collectors[n] = true
						cs = append(cs, Collector{Name: n, Node: fmt.Sprintf("node-%d", r.Intn(4))})
					}
				}
				moves, err = a.AddCollectors(cs...)
			case op == 1:
				var gone []string
				for n := range collectors {
					if r.Intn(3) == 0 {
						gone = append(gone, n)
						delete(collectors, n)
					}
				}
				moves, err = a.RemoveCollectors(gone...)
			case op == 2:
				var cs []Collector
				collectors = map[string]bool{}
				for i := 0; i < 1+r.Intn(6); i++ {
					n := fmt.Sprintf("c-%d", r.Intn(12))
					if !collectors[n] {
						collectors[n] = true
						cs = append(cs, Collector{Name: n, Node: fmt.Sprintf("node-%d", r.Intn(4))})
					}
				}
				moves, err = a.SetCollectors(cs)
			case op == 3:
				sets := make([]LabelSet, 1+r.Intn(40))
				for i := range sets {
					sets[i] = randomLabelSet(r, next)
					next++
				}
				added, moves, err = a.UpsertLabelSets(sets)
			case op == 4:
				var gone []uint64
				for k := range live {
					if r.Intn(4) == 0 {
						gone = append(gone, k)
					}
				}
				moves, err = a.RemoveTargets(gone)
				for _, k := range gone {
					delete(live, k)
				}
			case op == 6:
				// A new table: each node in one of three zones or none.
				var table []NodeZone
				for n := 0; n < 4; n++ {
					if z := r.Intn(4); z < 3 {
						table = append(table, NodeZone{Node: fmt.Sprintf("node-%d", n), Zone: fmt.Sprintf("zone-%d", z)})
					}
				}
				moves, err = a.SetNodeZones(table)
			default:
				// A whole diff: remove some, upsert some in columns and some as label sets.
				var gone []uint64
				for k := range live {
					if r.Intn(5) == 0 {
						gone = append(gone, k)
						delete(live, k)
					}
				}
				ts := make([]Target, r.Intn(20))
				for i := range ts {
					ts[i] = Target{Key: uint64(1<<40 + next), Placement: r.Uint64(), Job: "cols", Node: fmt.Sprintf("node-%d", r.Intn(4)), Weight: 2}
					next++
					added = append(added, ts[i].Key)
				}
				sets := []LabelSet{randomLabelSet(r, next)}
				next++
				var keysOut []uint64
				keysOut, moves, err = a.Apply(Diff{Upsert: ts, UpsertLabels: sets, Remove: gone})
				added = append(added, keysOut...)
			}
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			for _, k := range added {
				if !live[k] {
					live[k] = true
					keys = append(keys, k)
				}
			}
			before = append(before, make([]string, len(keys)-len(before))...)
			checkMoves(t, name, keys, before, owners(t, a, keys), moves)
		}
	}
}

// A writer cycles the collector set through known states while readers take pictures:
// consistent-hashing places by the collector set alone, so each state's owners are known
// beforehand and a picture must match the state its collector table names, key for key.
func TestReadersSeeOnlyStatesThatExisted(t *testing.T) {
	const sets, n = 6, 3000
	a := newOrFail(t, DefaultConfig())
	ts := make([]Target, n)
	keys := make([]uint64, n)
	for i := range ts {
		ts[i] = Target{Key: uint64(i + 1), Placement: uint64(i) * 0x9E3779B97F4A7C15, Job: "j"}
		keys[i] = ts[i].Key
	}
	if _, err := a.SetTargets(ts); err != nil {
		t.Fatal(err)
	}
	collectorSet := func(k int) []Collector {
		cs := make([]Collector, k+1)
		for c := range cs {
			cs[c] = Collector{Name: fmt.Sprintf("col-%d", c)}
		}
		return cs
	}
	expected := make([][]string, sets)
	for k := range expected {
		if _, err := a.SetCollectors(collectorSet(k)); err != nil {
			t.Fatal(err)
		}
		expected[k] = owners(t, a, keys)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var pictures sync.Map
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			sample := make([]uint64, 64)
			at := make([]int, 64)
			count := 0
			for {
				select {
				case <-stop:
					pictures.Store(g, count)
					return
				default:
				}
				for i := range sample {
					at[i] = r.Intn(n)
					sample[i] = keys[at[i]]
				}
				pic, err := a.Read(sample)
				if err != nil {
					t.Error(err)
					return
				}
				k := len(pic.Collectors) - 1
				if k < 0 || k >= sets || pic.Summary.Collectors != uint64(k+1) || pic.Summary.Targets != n {
					t.Errorf("picture with %d collectors, summary %+v", len(pic.Collectors), pic.Summary)
					return
				}
				var total uint64
				for _, c := range pic.Collectors {
					total += uint64(c.Targets)
				}
				if total+pic.Summary.Unassigned != n {
					t.Errorf("loads add up to %d", total)
					return
				}
				for i, o := range pic.Owners {
					if got := pic.Collectors[o].Name; got != expected[k][at[i]] {
						t.Errorf("key %d on %s in a picture of %d collectors; that state has it on %s",
							sample[i], got, k+1, expected[k][at[i]])
						return
					}
				}
				count++
			}
		}(g)
	}
	prev := sets - 1
	for round := 0; round < 150; round++ {
		k := (round * 5) % sets
		moves, err := a.SetCollectors(collectorSet(k))
		if err != nil {
			t.Fatal(err)
		}
		checkMoves(t, fmt.Sprintf("round %d", round), keys, expected[prev], expected[k], moves)
		prev = k
	}
	close(stop)
	wg.Wait()
	total := 0
	pictures.Range(func(_, v any) bool { total += v.(int); return true })
	if total == 0 {
		t.Fatal("no reader took a picture")
	}
}

// Scratch objects (a C error object and a C view each) live in a sync.Pool; when the GC
// empties the pool their finalizer frees the C side. Many failing calls at once, then GC
// cycles: every one of them is freed.
func TestErrorsCycleThroughTheGC(t *testing.T) {
	a := newOrFail(t, DefaultConfig())
	var wg sync.WaitGroup
	for g := 0; g < 32; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				_, err := a.RemoveCollectors("missing")
				var e *Error
				if !errors.As(err, &e) || e.Code != UnknownCollector || !strings.Contains(e.Message, "missing") {
					t.Errorf("want UnknownCollector naming the collector, got %v", err)
					return
				}
			}
		}()
	}
	wg.Wait()
	// Hold many at once so the pool has more than one per P to drop.
	held := make([]*scratch, 100)
	for i := range held {
		held[i] = getScratch()
	}
	for _, s := range held {
		putScratch(s)
	}
	held = nil
	if liveScratch.Load() < 100 {
		t.Fatalf("only %d scratch objects alive", liveScratch.Load())
	}
	for i := 0; i < 100 && liveScratch.Load() > 0; i++ {
		runtime.GC()
		time.Sleep(5 * time.Millisecond)
	}
	if n := liveScratch.Load(); n != 0 {
		t.Fatalf("%d scratch objects still hold C memory after the pool was emptied", n)
	}
}

// The label hand-over: under the default build the label set's own string is the engine's
// encoding; either way the bytes equal the encoding built label by label.
func TestLabelHandOverIsTheEncoding(t *testing.T) {
	if !labelsAreEncoded {
		t.Log("labels.Labels is not the stringlabels build: label sets are encoded label by label")
	}
	r := rand.New(rand.NewSource(3))
	for i := 0; i < 200; i++ {
		ls := randomLabelSet(r, i).Labels
		if got, want := string(appendLabels(nil, ls)), string(encodeLabels(nil, ls)); got != want {
			t.Fatalf("set %d: hand-over %q, encoding %q", i, got, want)
		}
		key, err := TargetKey(ls, "j")
		if err != nil {
			t.Fatal(err)
		}
		a := newOrFail(t, DefaultConfig())
		keys, _, err := a.UpsertLabelSets([]LabelSet{{Job: "j", Labels: ls}})
		if err != nil || keys[0] != key {
			t.Fatalf("set %d: key %v (%v), TargetKey %d", i, keys, err, key)
		}
	}
}
