// Package allocatorgo adapts the Go package of this repository (allocator-go) to the
// cross-check and benchmark harness of common.
package allocatorgo

import (
	"testing"

	"github.com/prometheus/prometheus/model/labels"
	allocator "github.com/target-allocator-rs/allocator-go"

	"paritygen/common"
)

// Engine runs the cross-checks and benchmarks on allocator-go.
type Engine struct{}

func config(version string) allocator.Config {
	cfg := allocator.DefaultConfig()
	if version == "v1.0.0" {
		cfg.Ring = allocator.RingV1_0_0
	}
	return cfg
}

func labelSets(targets []common.Target) []allocator.LabelSet {
	sets := make([]allocator.LabelSet, len(targets))
	for i, tg := range targets {
		b := labels.NewScratchBuilder(len(tg.Labels))
		for _, l := range tg.Labels {
			b.Add(l.Name, l.Value)
		}
		sets[i] = allocator.LabelSet{Job: tg.Job, Labels: b.Labels()}
	}
	return sets
}

func collectors(names []string) []allocator.Collector {
	cs := make([]allocator.Collector, len(names))
	for i, n := range names {
		cs[i] = allocator.Collector{Name: n}
	}
	return cs
}

// Prepare turns targets into label sets (labels.Labels), the form a collector's discovery has.
func (Engine) Prepare(targets []common.Target) any { return labelSets(targets) }

func (Engine) Assign(version string, names []string, prepared any) ([]uint64, []string, error) {
	a, err := allocator.New(config(version))
	if err != nil {
		return nil, nil, err
	}
	defer a.Close()
	if _, err := a.SetCollectors(collectors(names)); err != nil {
		return nil, nil, err
	}
	keys, _, err := a.UpsertLabelSets(prepared.([]allocator.LabelSet))
	if err != nil {
		return nil, nil, err
	}
	owners, err := a.Assignments(keys)
	return keys, owners, err
}

func (Engine) Churn(b *testing.B, version string, names []string, targets, fresh any, n int) error {
	a, err := allocator.New(config(version))
	if err != nil {
		return err
	}
	defer a.Close()
	if _, err := a.SetCollectors(collectors(names)); err != nil {
		return err
	}
	sets := targets.([]allocator.LabelSet)
	keys, _, err := a.UpsertLabelSets(sets)
	if err != nil {
		return err
	}
	gone, goneSets := keys[:n], sets[:n]
	freshSets := fresh.([]allocator.LabelSet)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// One diff: the gone targets out, the fresh ones in, its moves back.
		freshKeys, _, err := a.Apply(allocator.Diff{Remove: gone, UpsertLabels: freshSets})
		if err != nil {
			return err
		}
		b.StopTimer()
		if _, _, err := a.Apply(allocator.Diff{Remove: freshKeys, UpsertLabels: goneSets}); err != nil {
			return err
		}
		b.StartTimer()
	}
	return nil
}
