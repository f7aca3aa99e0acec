// Command go-collector shows sharding without a central allocator: every collector runs the
// same library on the same discovered targets and the same collector list, and keeps only the
// targets assigned to itself. Because assignments are a deterministic function of that input,
// the collectors agree without talking to each other, and a scale-out moves only the targets
// the ring moves.
//
//	allocator-go/build.sh && cd examples/go-collector && go run .
package main

import (
	"fmt"
	"log"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	allocator "github.com/target-allocator-rs/allocator-go"
)

// discover stands in for service discovery: the same target list every collector would see.
func discover() []allocator.LabelSet {
	var sets []allocator.LabelSet
	for node := 0; node < 4; node++ {
		for pod := 0; pod < 30; pod++ {
			sets = append(sets, allocator.LabelSet{
				Job: "kubernetes-pods",
				Labels: labels.FromStrings(
					"__address__", fmt.Sprintf("10.%d.%d.7:8080", node, pod),
					"__meta_kubernetes_pod_name", fmt.Sprintf("app-%d-%d", node, pod),
					"__meta_kubernetes_pod_node_name", fmt.Sprintf("node-%d", node),
				),
			})
		}
	}
	return sets
}

// shard is what one collector computes locally: the keys of the targets it should scrape.
func shard(self string, peers []string, targets []allocator.LabelSet) (map[uint64]bool, error) {
	a, err := allocator.New(allocator.DefaultConfig())
	if err != nil {
		return nil, err
	}
	defer a.Close()
	cs := make([]allocator.Collector, len(peers))
	for i, p := range peers {
		cs[i] = allocator.Collector{Name: p}
	}
	if _, err := a.SetCollectors(cs); err != nil {
		return nil, err
	}
	// One call: the targets' keys, and the moves that placed them, names included.
	keys, moves, err := a.UpsertLabelSets(targets)
	if err != nil {
		return nil, err
	}
	owners := make(map[uint64]string, len(moves))
	for _, m := range moves {
		owners[m.Key] = m.To
	}
	mine := map[uint64]bool{}
	for _, k := range keys {
		if owners[k] == self {
			mine[k] = true
		}
	}
	return mine, nil
}

func report(peers []string, targets []allocator.LabelSet) map[string]map[uint64]bool {
	shares := map[string]map[uint64]bool{}
	seen := map[uint64]string{}
	for _, self := range peers {
		mine, err := shard(self, peers, targets)
		if err != nil {
			log.Fatal(err)
		}
		for k := range mine {
			if other, dup := seen[k]; dup {
				log.Fatalf("target %x claimed by %s and %s", k, other, self)
			}
			seen[k] = self
		}
		shares[self] = mine
		fmt.Printf("  %-18s scrapes %3d targets\n", self, len(mine))
	}
	if len(seen) != len(targets) {
		log.Fatalf("%d of %d targets claimed", len(seen), len(targets))
	}
	return shares
}

func main() {
	targets := discover()
	before := []string{"otel-collector-0", "otel-collector-1", "otel-collector-2"}
	fmt.Printf("%d targets, %d collectors, each computing its own share:\n", len(targets), len(before))
	old := report(before, targets)

	after := append(append([]string{}, before...), "otel-collector-3")
	fmt.Printf("scale out to %d collectors:\n", len(after))
	now := report(after, targets)

	names := make([]string, 0, len(now))
	for n := range now {
		names = append(names, n)
	}
	sort.Strings(names)
	moved := 0
	for _, n := range names {
		gained, lost := 0, 0
		for k := range now[n] {
			if !old[n][k] {
				gained++
			}
		}
		for k := range old[n] {
			if !now[n][k] {
				lost++
			}
		}
		moved += gained
		fmt.Printf("  %-18s +%d −%d\n", n, gained, lost)
	}
	fmt.Printf("%d of %d targets moved (an even share for the new collector is %d); every target has exactly one collector\n",
		moved, len(targets), len(targets)/len(after))
}
