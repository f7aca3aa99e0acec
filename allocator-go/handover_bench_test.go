package allocator

import (
	"fmt"
	"math/rand"
	"testing"

	"github.com/prometheus/prometheus/model/labels"
)

// discovered makes n Kubernetes-style label sets (about 20 labels each, sorted), as a
// collector's discovery hands them over.
func discovered(n int) []LabelSet {
	r := rand.New(rand.NewSource(1))
	sets := make([]LabelSet, n)
	for i := range sets {
		pod := fmt.Sprintf("app-%d-%x", i%97, r.Uint32())
		b := labels.NewScratchBuilder(20)
		b.Add("__address__", fmt.Sprintf("10.%d.%d.%d:%d", i>>16&255, i>>8&255, i&255, 8080+i%3))
		b.Add("__meta_kubernetes_namespace", fmt.Sprintf("ns-%d", i%13))
		b.Add("__meta_kubernetes_pod_name", pod)
		b.Add("__meta_kubernetes_pod_node_name", fmt.Sprintf("node-%d", i%50))
		b.Add("__meta_kubernetes_pod_ip", fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255))
		b.Add("__meta_kubernetes_pod_ready", "true")
		b.Add("__meta_kubernetes_pod_phase", "Running")
		b.Add("__meta_kubernetes_pod_container_name", "app")
		b.Add("__meta_kubernetes_pod_container_port_name", "metrics")
		b.Add("__meta_kubernetes_pod_container_port_number", "8080")
		b.Add("__meta_kubernetes_pod_controller_kind", "ReplicaSet")
		b.Add("__meta_kubernetes_pod_controller_name", pod[:len(pod)-4])
		b.Add("__meta_kubernetes_pod_label_app", fmt.Sprintf("app-%d", i%97))
		b.Add("__meta_kubernetes_pod_label_pod_template_hash", fmt.Sprintf("%x", r.Uint32()))
		b.Add("__meta_kubernetes_pod_uid", fmt.Sprintf("%08x-%04x", r.Uint32(), r.Uint32()&0xffff))
		b.Add("__metrics_path__", "/metrics")
		b.Add("__scheme__", "http")
		b.Add("__scrape_interval__", "30s")
		b.Add("__scrape_timeout__", "10s")
		b.Add("job", "kubernetes-pods")
		b.Sort()
		sets[i] = LabelSet{Job: "kubernetes-pods", Labels: b.Labels()}
	}
	return sets
}

// BenchmarkLabelHandOver: a full allocation of 100k label sets on 10 collectors, hashing in
// Go (key, placement and node computed here; only columns cross) against hashing in Rust (the
// label sets cross as one contiguous copy in the labels encoding). Both return the change's
// moves. The package keeps the faster (hash.go); benches/README.md has the numbers.
func BenchmarkLabelHandOver(b *testing.B) {
	n := 100_000
	if testing.Short() {
		n = 5_000
	}
	sets := discovered(n)
	cs := make([]Collector, 10)
	for i := range cs {
		cs[i] = Collector{Name: fmt.Sprintf("collector-%d", i)}
	}
	run := func(b *testing.B, f func(a *Allocator) ([]Move, error)) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			a, err := New(DefaultConfig())
			if err != nil {
				b.Fatal(err)
			}
			if _, err := a.SetCollectors(cs); err != nil {
				b.Fatal(err)
			}
			moves, err := f(a)
			if err != nil || len(moves) != n {
				b.Fatalf("%d moves, %v", len(moves), err)
			}
			a.Close()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/target")
	}
	for _, engine := range []bool{false, true} {
		name := map[bool]string{false: "hash-in-go", true: "hash-in-rust"}[engine]
		b.Run(name, func(b *testing.B) {
			engineHashing.Store(engine)
			defer engineHashing.Store(false)
			run(b, func(a *Allocator) ([]Move, error) {
				_, moves, err := a.UpsertLabelSets(sets)
				return moves, err
			})
		})
	}
}

// BenchmarkGoHashing: the Go side's hash pass alone (key, placement, node) over Kubernetes-style
// label sets, the part of every label-set upsert that runs before the one cgo crossing.
func BenchmarkGoHashing(b *testing.B) {
	sets := discovered(10_000)
	var h hasher
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for j := range sets {
			if _, _, _, st := h.hash(sets[j].Labels, sets[j].Job); st != hashed {
				b.Fatal(st)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(sets)), "ns/set")
}
