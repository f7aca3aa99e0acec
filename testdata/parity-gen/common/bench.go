package common

import (
	"fmt"
	"math/rand"
	"testing"
)

// BenchAllocation compares, in one run, the Operator's pure-Go per-target work (item hash,
// LocateKey, map insert) with the engine, for 10k and 100k targets on 10 and 100 collectors:
// a full allocation, and a 1% churn (remove 1%, add 1% new) on an allocated state.
func BenchAllocation(b *testing.B, version string, ring RingFactory, engine Engine) {
	r := rand.New(rand.NewSource(42))
	for _, n := range []int{10_000, 100_000} {
		all := RandomTargets(r, n+n/100)
		targets, fresh := all[:n], all[n:]
		for _, k := range []int{10, 100} {
			collectors := RandomCollectors(rand.New(rand.NewSource(int64(k))), k)
			name := fmt.Sprintf("targets=%d/collectors=%d", n, k)
			b.Run("full/pure-go/"+name, func(b *testing.B) {
				rg := ring(collectors)
				b.ReportAllocs()
				for i := 0; i < b.N; i++ {
					_ = PureGo(rg, targets)
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/target")
			})
			b.Run("full/engine/"+name, func(b *testing.B) {
				prepared := engine.Prepare(targets)
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, _, err := engine.Assign(version, collectors, prepared); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/target")
			})
			churn, ok := engine.(Churner)
			if !ok {
				continue
			}
			b.Run("churn1%/pure-go/"+name, func(b *testing.B) {
				rg := ring(collectors)
				state := PureGo(rg, targets)
				gone := targets[:len(fresh)]
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					// The Operator diffs by identity, drops the removed, places the new.
					for _, tg := range gone {
						delete(state, ItemHashSorted(tg.Labels, tg.Job))
					}
					for _, tg := range fresh {
						state[ItemHashSorted(tg.Labels, tg.Job)] = rg.Locate(tg.Address)
					}
					b.StopTimer()
					for _, tg := range fresh {
						delete(state, ItemHashSorted(tg.Labels, tg.Job))
					}
					for _, tg := range gone {
						state[ItemHashSorted(tg.Labels, tg.Job)] = rg.Locate(tg.Address)
					}
					b.StartTimer()
				}
			})
			b.Run("churn1%/engine/"+name, func(b *testing.B) {
				if err := churn.Churn(b, version, collectors, engine.Prepare(targets), engine.Prepare(fresh), len(fresh)); err != nil {
					b.Fatal(err)
				}
			})
		}
	}
}

// Churner is an Engine that can also time a churn: remove the first n targets and add the n
// fresh ones, b.N times on a state holding targets (undoing each step outside the timer).
type Churner interface {
	Churn(b *testing.B, version string, collectors []string, targets, fresh any, n int) error
}
