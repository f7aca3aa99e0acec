package allocator

import (
	"strings"
	"unicode/utf8"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// Hashing label sets in Go, as the engine does (DESIGN.md §6.2, §6.3, §6.5): the key is XXH64
// over name 0xFF value 0xFF of every label not starting with "__meta_", in sorted order, then
// the job; the placement is XXH64 of the raw __address__; the node is the first non-empty of
// the pod, node and endpoint node names, else the endpoint slice's target name when its kind
// is Node. Tests check every result against the engine's own (TargetKey, the parity vectors).

type hashStatus int

const (
	hashed hashStatus = iota
	// notSorted: names not strictly increasing (a hand-built labels.Labels); the engine sorts
	// and reports a repeated name.
	notSorted
	missingAddress
	badNode
)

var sepByte = []byte{0xff}

// hasher reuses one xxhash state across label sets.
type hasher struct {
	h xxhash.Digest
}

func (hs *hasher) hash(ls labels.Labels, job string) (key, placement uint64, node string, status hashStatus) {
	h := &hs.h
	h.Reset()
	var address string
	hasAddress := false
	var prev string
	first := true
	var ranked [3]string
	var sliceKind, sliceName string
	ls.Range(func(l labels.Label) {
		if status != hashed {
			return
		}
		if !first && l.Name <= prev {
			status = notSorted
			return
		}
		first, prev = false, l.Name
		if rest, ok := strings.CutPrefix(l.Name, "__meta_"); ok {
			if k, ok := strings.CutPrefix(rest, "kubernetes_"); ok {
				switch k {
				case "pod_node_name":
					ranked[0] = l.Value
				case "node_name":
					ranked[1] = l.Value
				case "endpoint_node_name":
					ranked[2] = l.Value
				case "endpointslice_address_target_kind":
					sliceKind = l.Value
				case "endpointslice_address_target_name":
					sliceName = l.Value
				}
			}
			return
		}
		if l.Name == "__address__" {
			address, hasAddress = l.Value, true
		}
		_, _ = h.WriteString(l.Name)
		_, _ = h.Write(sepByte)
		_, _ = h.WriteString(l.Value)
		_, _ = h.Write(sepByte)
	})
	if status != hashed {
		return 0, 0, "", status
	}
	_, _ = h.WriteString(job)
	key = h.Sum64()
	if !hasAddress {
		return key, 0, "", missingAddress
	}
	for _, n := range ranked {
		if n != "" {
			node = n
			break
		}
	}
	if node == "" && sliceKind == "Node" {
		node = sliceName
	}
	if !utf8.ValidString(node) {
		return key, 0, "", badNode
	}
	return key, xxhash.Sum64String(address), node, hashed
}
