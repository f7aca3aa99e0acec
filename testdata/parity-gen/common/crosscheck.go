package common

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strconv"
)

type crosscheck struct {
	Versions map[string]struct {
		Rings map[string]struct {
			Collectors     []string       `json:"collectors"`
			PartitionLoads map[string]int `json:"partition_loads"`
		} `json:"rings"`
		Targets []struct {
			Job         string            `json:"job"`
			Labels      map[string]string `json:"labels"`
			TargetURL   string            `json:"target_url"`
			Partition   int               `json:"partition"`
			ItemHash    string            `json:"item_hash_no_filter"`
			CollectorsA string            `json:"collector_ring_A"`
			CollectorsB string            `json:"collector_ring_B"`
		} `json:"targets"`
	} `json:"versions"`
}

// Crosscheck proves ItemHash and the ring against the values from the Operator's own tests
// before anything is written. It returns an error naming the first mismatch.
func Crosscheck(path, version string, ring RingFactory) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var cc crosscheck
	if err := json.Unmarshal(raw, &cc); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	v, ok := cc.Versions[version]
	if !ok {
		return fmt.Errorf("%s: no version %s", path, version)
	}
	rings := map[string]Ring{}
	for name, r := range v.Rings {
		ring := ring(r.Collectors)
		loads := ring.Loads()
		for member, want := range r.PartitionLoads {
			if loads[member] != want {
				return fmt.Errorf("ring %s: member %s owns %d partitions, operator says %d", name, member, loads[member], want)
			}
		}
		rings[name] = ring
	}
	for i, t := range v.Targets {
		var labels []Label
		for n, val := range t.Labels {
			labels = append(labels, Label{n, val})
		}
		sort.Slice(labels, func(a, b int) bool { return labels[a].Name < labels[b].Name })
		got := strconv.FormatUint(ItemHash(labels, nil, nil, t.Job), 10)
		if got != t.ItemHash {
			return fmt.Errorf("target %d: item hash %s, operator says %s", i, got, t.ItemHash)
		}
		if p := rings["A"].Partition(t.TargetURL); p != t.Partition {
			return fmt.Errorf("target %d: partition %d, operator says %d", i, p, t.Partition)
		}
		if c := rings["A"].Locate(t.TargetURL); c != t.CollectorsA {
			return fmt.Errorf("target %d: ring A gives %s, operator says %s", i, c, t.CollectorsA)
		}
		if c := rings["B"].Locate(t.TargetURL); c != t.CollectorsB {
			return fmt.Errorf("target %d: ring B gives %s, operator says %s", i, c, t.CollectorsB)
		}
	}
	return nil
}
