package allocator

import (
	"strings"
	"unicode/utf8"
	"unsafe"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

// Hashing label sets in Go, as the engine does (DESIGN.md §6.2, §6.3, §6.5): the key is XXH64
// over name 0xFF value 0xFF of every label not starting with "__meta_" and not empty, in sorted order, then
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

// hasher reuses its buffers across label sets. The label set is read in the stringlabels
// encoding in place (no closure call per label), and the hashed pieces are appended to one
// buffer and hashed in one call: together about twice as fast as four streaming writes per
// label through labels.Range (BenchmarkGoHashing, benches/README.md).
type hasher struct {
	buf []byte
	// enc holds the encoding of a label set under the builds of labels.Labels that are not
	// stringlabels.
	enc []byte
}

// encoded is a label set's stringlabels encoding: its own string under that build, else an
// encoding built into h.enc (valid until the next call).
func (hs *hasher) encoded(ls labels.Labels) string {
	if labelsAreEncoded {
		return (*stringData)(unsafe.Pointer(&ls)).data
	}
	hs.enc = encodeLabels(hs.enc[:0], ls)
	return unsafe.String(unsafe.SliceData(hs.enc), len(hs.enc))
}

// hash returns a label set's key, placement and node. The node is not yet checked for UTF-8
// (validNode), and under a build other than stringlabels it points into hs.enc, valid until
// the next call: the caller interns it (a copy) before hashing the next set.
func (hs *hasher) hash(ls labels.Labels, job string) (key, placement uint64, node string, status hashStatus) {
	data := hs.encoded(ls)
	buf := hs.buf[:0]
	var address string
	hasAddress := false
	var prev string
	var ranked [3]string
	var sliceKind, sliceName string
	// The encoding is read by offset (decodeAt), not by re-slicing the rest of the string
	// after every label: fewer string headers to update per label.
	for i := 0; i < len(data); {
		var name, value string
		start := i
		name, i = decodeAt(data, i)
		value, i = decodeAt(data, i)
		if start > 0 && name <= prev {
			return 0, 0, "", notSorted
		}
		prev = name
		if len(name) >= len("__meta_") && name[:len("__meta_")] == "__meta_" {
			// Most __meta_ labels are none of the five node labels: their lengths rule them
			// out before any comparison.
			switch len(name) {
			case len("__meta_kubernetes_pod_node_name"), len("__meta_kubernetes_node_name"),
				len("__meta_kubernetes_endpoint_node_name"),
				// ..._target_name has the same length.
				len("__meta_kubernetes_endpointslice_address_target_kind"):
			default:
				continue
			}
			if k, ok := strings.CutPrefix(name[len("__meta_"):], "kubernetes_"); ok {
				switch k {
				case "pod_node_name":
					ranked[0] = value
				case "node_name":
					ranked[1] = value
				case "endpoint_node_name":
					ranked[2] = value
				case "endpointslice_address_target_kind":
					sliceKind = value
				case "endpointslice_address_target_name":
					sliceName = value
				}
			}
			continue
		}
		if name == "__address__" {
			address, hasAddress = value, true
		}
		if value == "" {
			// An empty value is no label: Prometheus' labels.Builder, which the Operator hashes
			// from, deletes it.
			continue
		}
		buf = append(buf, name...)
		buf = append(buf, 0xff)
		buf = append(buf, value...)
		buf = append(buf, 0xff)
	}
	buf = append(buf, job...)
	hs.buf = buf
	key = xxhash.Sum64(buf)
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
	return key, xxhash.Sum64String(address), node, hashed
}

// validNode is the check hash leaves to its caller: a node name must be valid UTF-8. The batch
// checks each distinct node once, when its table first meets it, rather than every set.
func validNode(node string) bool { return utf8.ValidString(node) }
