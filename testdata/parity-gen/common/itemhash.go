// Package common holds what both parity generators share: the Go allocator's item hash
// (DESIGN.md §6.2), its proof against the Operator's own test values, the random inputs and the
// JSON layout of the vectors. The ring itself comes from the real upstream module in each
// generator (one Go module cannot require two versions of buraksezer/consistent).
package common

import (
	"sort"
	"strings"

	"github.com/cespare/xxhash/v2"
)

// Label is one name/value pair.
type Label struct {
	Name  string
	Value string
}

var seps = []byte{0xff}

// ItemHash is the Operator's HashLabels: XXH64 over name 0xFF value 0xFF for every label not
// starting with "__meta_", in the label builder's range order, then the job name.
//
// The range order is the discovered labels sorted bytewise (skipping names that relabeling
// deleted or set), then the labels set during relabeling in the order they were first set.
//
// As in labels.Builder, setting a label to the empty value deletes it, and so does starting
// from one (Builder.Reset, which the Operator's discoverer calls on every target, deletes the
// discovered labels whose value is empty).
func ItemHash(discovered []Label, set []Label, deleted []string, job string) uint64 {
	for _, l := range discovered {
		if l.Value == "" {
			deleted = append(deleted, l.Name)
		}
	}
	var kept []Label
	for _, l := range set {
		if l.Value == "" {
			deleted = append(deleted, l.Name)
		} else {
			kept = append(kept, l)
		}
	}
	set = kept
	base := append([]Label(nil), discovered...)
	sort.Slice(base, func(i, j int) bool { return base[i].Name < base[j].Name })
	overridden := map[string]bool{}
	for _, l := range set {
		overridden[l.Name] = true
	}
	for _, n := range deleted {
		overridden[n] = true
	}
	h := xxhash.New()
	write := func(l Label) {
		if strings.HasPrefix(l.Name, "__meta_") {
			return
		}
		_, _ = h.WriteString(l.Name)
		_, _ = h.Write(seps)
		_, _ = h.WriteString(l.Value)
		_, _ = h.Write(seps)
	}
	for _, l := range base {
		if !overridden[l.Name] {
			write(l)
		}
	}
	for _, l := range set {
		write(l)
	}
	_, _ = h.WriteString(job)
	return h.Sum64()
}

// ItemHashSorted is ItemHash for labels already in sorted order with no relabeling: the lean
// loop the Operator runs (no copy, no sort), used as the benchmark baseline.
func ItemHashSorted(ls []Label, job string) uint64 {
	h := xxhash.New()
	for _, l := range ls {
		// An empty value is no label (labels.Builder.Reset deletes it).
		if l.Value == "" || strings.HasPrefix(l.Name, "__meta_") {
			continue
		}
		_, _ = h.WriteString(l.Name)
		_, _ = h.Write(seps)
		_, _ = h.WriteString(l.Value)
		_, _ = h.Write(seps)
	}
	_, _ = h.WriteString(job)
	return h.Sum64()
}
