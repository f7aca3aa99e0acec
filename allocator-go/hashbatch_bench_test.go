package allocator

import (
	"fmt"
	"testing"
)

// BenchmarkChurnLabelSets: one Apply that removes n label-set targets and adds n others (the
// next op swaps them back), on 10 collectors holding 100k targets, hashed on one goroutine
// or in parallel by up to GOMAXPROCS, whatever the batch size: where the parallel path starts to
// pay is parallelMin (benches/README.md).
func BenchmarkChurnLabelSets(b *testing.B) {
	base := discovered(100_000)
	cs := make([]Collector, 10)
	for i := range cs {
		cs[i] = Collector{Name: fmt.Sprintf("collector-%d", i)}
	}
	for _, n := range []int{1, 256, 512, 1000, 2000, 10_000} {
		if testing.Short() && n > 1000 {
			continue
		}
		// forced: the parallel path below parallelMin too, to see where it starts to pay.
		for _, v := range []struct {
			name    string
			threads int
			forced  bool
		}{{"serial", 1, false}, {"parallel", 0, true}} {
			threads := v.threads
			b.Run(fmt.Sprintf("n=%d/%s", n, v.name), func(b *testing.B) {
				if v.forced {
					defer func(p int) { parallelMin = p }(parallelMin)
					parallelMin = 1
				}
				cfg := DefaultConfig()
				cfg.HashThreads = threads
				a, err := New(cfg)
				if err != nil {
					b.Fatal(err)
				}
				defer a.Close()
				if _, err := a.SetCollectors(cs); err != nil {
					b.Fatal(err)
				}
				keys, _, err := a.UpsertLabelSets(base[n:])
				if err != nil {
					b.Fatal(err)
				}
				// Even ops swap base[n:2n] out for base[:n], odd ops swap them back.
				sets := [2][]LabelSet{base[:n], base[n : 2*n]}
				var held [2][]uint64
				held[1] = keys[:n]
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					in, out := i%2, 1-i%2
					k, _, err := a.Apply(Diff{Remove: held[out], UpsertLabels: sets[in]})
					if err != nil {
						b.Fatal(err)
					}
					held[in] = k
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/set")
			})
		}
	}
}
