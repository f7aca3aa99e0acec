package common

import (
	"fmt"
	"math/rand"
	"sort"
	"strconv"
	"testing"
)

// Target is a random discovered target for cross-checks.
type Target struct {
	Job     string
	Labels  []Label // sorted by name
	Address string
}

// Engine is the package under test, seen from a cross-check: it places targets on collectors.
type Engine interface {
	// Prepare converts targets to the engine's input form (outside benchmark timings, as a
	// caller's discovery would hand them over in that form).
	Prepare(targets []Target) any
	// Assign returns each prepared target's key and collector name (ring version "v0.10.0" or
	// "v1.0.0").
	Assign(ringVersion string, collectors []string, prepared any) (keys []uint64, owners []string, err error)
}

// RandomTargets makes n random Kubernetes-style targets.
func RandomTargets(r *rand.Rand, n int) []Target {
	out := make([]Target, n)
	for i := range out {
		addr := address(r)
		ls := discovered(r, addr)
		sort.Slice(ls, func(a, b int) bool { return ls[a].Name < ls[b].Name })
		out[i] = Target{Job: pick(r, apps), Labels: ls, Address: addr}
	}
	return out
}

// RandomCollectors makes n distinct collector names in the styles the Operator produces.
func RandomCollectors(r *rand.Rand, n int) []string {
	prefix := []string{"collector", "otel-collector", "otelcol-statefulset-collector", "c"}[r.Intn(4)]
	out := make([]string, n)
	for i := range out {
		out[i] = prefix + "-" + strconv.Itoa(i)
	}
	if r.Intn(3) == 0 { // DaemonSet-style random suffixes
		for i := range out {
			out[i] = fmt.Sprintf("%s-%05x", prefix, r.Intn(1<<20))
		}
		sort.Strings(out)
		out = dedupeStrings(out)
	}
	return out
}

func dedupeStrings(s []string) []string {
	out := s[:0]
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// CrossCheck compares the engine with the upstream ring and the item hash on random inputs:
// every key must equal ItemHash and every owner the ring's LocateKey of the address.
func CrossCheck(t testing.TB, version string, ring RingFactory, engine Engine, rounds int, seed int64) {
	r := rand.New(rand.NewSource(seed))
	total := 0
	for round := 0; round < rounds; round++ {
		collectors := RandomCollectors(r, 1+r.Intn(300))
		targets := RandomTargets(r, 50+r.Intn(2000))
		keys, owners, err := engine.Assign(version, collectors, engine.Prepare(targets))
		if err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		rg := ring(collectors)
		for i, tg := range targets {
			if want := ItemHash(tg.Labels, nil, nil, tg.Job); keys[i] != want {
				t.Fatalf("round %d target %d: key %d, Go item hash %d", round, i, keys[i], want)
			}
			if want := rg.Locate(tg.Address); owners[i] != want {
				t.Fatalf("round %d target %d (%d collectors): %s, upstream ring %s", round, i, len(collectors), owners[i], want)
			}
		}
		total += len(targets)
	}
	t.Logf("%s: %d rounds, %d targets equal the upstream ring and item hash", version, rounds, total)
}

// PureGo is the per-target work of the Operator's allocator, as a baseline for benchmarks:
// the item hash of the labels, LocateKey of the address, and a map insert.
func PureGo(rg Ring, targets []Target) map[uint64]string {
	out := make(map[uint64]string, len(targets))
	for _, tg := range targets {
		out[ItemHashSorted(tg.Labels, tg.Job)] = rg.Locate(tg.Address)
	}
	return out
}
