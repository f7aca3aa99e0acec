package allocator

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchmarkTargetBatch: the Go side of DESIGN.md §5's "cgo per-target cost of a batched call
// within 2× of the C benchmark" — the work of the C ABI bench's columns case
// (benches/src/c_abi.rs, `ffi_overhead`): 100k targets on 100 collectors (consistent-hashing),
// then per op one UpsertTargets of 1,024 new targets and one RemoveTargets of them, each call
// returning its moves. Compare ns/op with `ffi_overhead`'s C ABI time for its columns pair,
// run alternately in the same window.
func BenchmarkTargetBatch(b *testing.B) {
	const base, batch = 100_000, 1024
	jobs := []string{"kubernetes-pods", "node-exporter", "kube-state-metrics", "cadvisor", "apiserver", "coredns"}
	rng := rand.New(rand.NewSource(7))
	target := func() Target {
		return Target{
			Key:       rng.Uint64(),
			Placement: rng.Uint64(),
			Job:       jobs[rng.Intn(len(jobs))],
			Weight:    uint32(1 + rng.Intn(1000)),
		}
	}
	all := make([]Target, base)
	for i := range all {
		all[i] = target()
	}
	fresh := make([]Target, batch)
	keys := make([]uint64, batch)
	for i := range fresh {
		fresh[i] = target()
		keys[i] = fresh[i].Key
	}
	cs := make([]Collector, 100)
	for i := range cs {
		cs[i] = Collector{Name: fmt.Sprintf("collector-%d", i)}
	}
	a, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	if _, err := a.SetCollectors(cs); err != nil {
		b.Fatal(err)
	}
	if _, err := a.UpsertTargets(all); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in, err := a.UpsertTargets(fresh)
		if err != nil || len(in) != batch {
			b.Fatalf("upsert: %d moves, %v", len(in), err)
		}
		out, err := a.RemoveTargets(keys)
		if err != nil || len(out) != batch {
			b.Fatalf("remove: %d moves, %v", len(out), err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/(2*batch), "ns/target")
}
