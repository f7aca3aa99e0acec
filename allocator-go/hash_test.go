package allocator

import (
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// Label sets with every kind of node label, hashed in Go and by the engine: same keys, same
// nodes (per-node places by node, so equal placements on collectors per node prove it).
func TestGoHashingAgreesWithTheEngine(t *testing.T) {
	r := rand.New(rand.NewSource(9))
	nodeLabels := []string{
		"__meta_kubernetes_pod_node_name", "__meta_kubernetes_node_name",
		"__meta_kubernetes_endpoint_node_name",
	}
	sets := make([]LabelSet, 2000)
	for i := range sets {
		kv := []string{"__address__", fmt.Sprintf("10.0.%d.%d:80", i/200, i%200), "instance", fmt.Sprint(i)}
		for _, n := range nodeLabels {
			switch r.Intn(3) {
			case 0:
				kv = append(kv, n, fmt.Sprintf("node-%d", r.Intn(5)))
			case 1:
				kv = append(kv, n, "") // empty: the next in precedence decides
			}
		}
		if r.Intn(3) == 0 {
			// An empty value is no label: both hashers leave it out of the key.
			kv = append(kv, "env", "")
		}
		if r.Intn(3) == 0 {
			kv = append(kv, "__meta_kubernetes_endpointslice_address_target_kind", []string{"Node", "Pod"}[r.Intn(2)],
				"__meta_kubernetes_endpointslice_address_target_name", fmt.Sprintf("node-%d", r.Intn(5)))
		}
		sets[i] = LabelSet{Job: fmt.Sprintf("job-%d", i%3), Labels: labels.FromStrings(kv...), Weight: uint32(1 + i%4)}
	}
	cfg := DefaultConfig()
	cfg.Strategy = PerNode
	cfg.Fallback = NoStrategy
	collectors := make([]Collector, 5)
	for i := range collectors {
		collectors[i] = Collector{Name: fmt.Sprintf("c-%d", i), Node: fmt.Sprintf("node-%d", i)}
	}
	run := func(engine bool) ([]uint64, Picture) {
		engineHashing.Store(engine)
		defer engineHashing.Store(false)
		a := newOrFail(t, cfg)
		if _, err := a.SetCollectors(collectors); err != nil {
			t.Fatal(err)
		}
		keys, _, err := a.UpsertLabelSets(sets)
		if err != nil {
			t.Fatal(err)
		}
		pic, err := a.Read(keys)
		if err != nil {
			t.Fatal(err)
		}
		return keys, pic
	}
	goKeys, goPic := run(false)
	engineKeys, enginePic := run(true)
	for i := range sets {
		if goKeys[i] != engineKeys[i] {
			t.Fatalf("set %d: Go key %d, engine %d", i, goKeys[i], engineKeys[i])
		}
		if goPic.Owners[i] != enginePic.Owners[i] {
			t.Fatalf("set %d (%s): Go-hashed on %d, engine-hashed on %d", i, sets[i].Labels, goPic.Owners[i], enginePic.Owners[i])
		}
	}
	if fmt.Sprint(goPic.Collectors) != fmt.Sprint(enginePic.Collectors) || goPic.Summary.Unassigned == 0 {
		t.Fatalf("loads differ: %v vs %v", goPic.Collectors, enginePic.Collectors)
	}
}

// A hand-built labels.Labels that is not sorted and unique goes to the engine, which names the
// repeated label; a set without __address__ is refused the same way by both paths.
func TestUnsortedAndBrokenLabelSets(t *testing.T) {
	a := newOrFail(t, DefaultConfig())
	b := labels.NewScratchBuilder(3)
	b.Add("__address__", "x:1")
	b.Add("a", "1")
	b.Add("a", "2")
	_, _, err := a.UpsertLabelSets([]LabelSet{{Job: "j", Labels: b.Labels()}})
	var e *Error
	if !errors.As(err, &e) || e.Code != DuplicateLabel {
		t.Fatalf("want DuplicateLabel, got %v", err)
	}
	for _, engine := range []bool{false, true} {
		engineHashing.Store(engine)
		_, _, err := a.UpsertLabelSets([]LabelSet{{Job: "j", Labels: labels.FromStrings("instance", "x")}})
		engineHashing.Store(false)
		if !errors.As(err, &e) || e.Code != MissingAddress {
			t.Fatalf("engine %v: want MissingAddress, got %v", engine, err)
		}
	}
	// Unsorted but unique: the engine sorts, and the key is the sorted one.
	u := labels.NewScratchBuilder(2)
	u.Add("z", "1")
	u.Add("__address__", "y:1")
	keys, _, err := a.UpsertLabelSets([]LabelSet{{Job: "j", Labels: u.Labels()}})
	want, _ := TargetKey(labels.FromStrings("z", "1", "__address__", "y:1"), "j")
	if err != nil || keys[0] != want {
		t.Fatalf("unsorted set: %v %v, want %d", keys, err, want)
	}
}
