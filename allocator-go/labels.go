package allocator

import (
	"unsafe"

	"github.com/prometheus/prometheus/model/labels"
)

// How a label set crosses to the engine. Prometheus' labels.Labels has three builds:
//   - stringlabels (the default): one string holding every name and value, each preceded by its
//     length (one byte for 0-254, else 255 and 3 bytes little-endian), names sorted;
//   - slicelabels: a []Label of separate strings;
//   - dedupelabels: a string of symbol-table references.
//
// The engine reads the stringlabels encoding. Under the default build the label set's own
// string is that encoding, so handing it over is one memmove per set into the batch's buffer
// (a zero-copy hand-over would need a pin per set, which costs more than the copy; see
// benches/README.md). Under the other builds, or if a later Prometheus changes the layout,
// the startup probe below fails and every set is encoded label by label instead.

// stringData is the stringlabels representation: a struct holding one string.
type stringData struct{ data string }

// labelsAreEncoded says whether labels.Labels is the stringlabels struct, checked on a probe
// set with a short and a long (4-byte length) value against the encoding built by hand.
var labelsAreEncoded = func() bool {
	if unsafe.Sizeof(labels.Labels{}) != unsafe.Sizeof(stringData{}) {
		return false
	}
	long := make([]byte, 300)
	for i := range long {
		long[i] = 'x'
	}
	probe := labels.FromStrings("__address__", "10.0.0.1:80", "a", string(long))
	want := encodeLabels(nil, probe)
	got := (*stringData)(unsafe.Pointer(&probe)).data
	return got == string(want)
}()

// labelsSize is the length of a label set in the labels encoding.
func labelsSize(ls labels.Labels) int {
	if labelsAreEncoded {
		return len((*stringData)(unsafe.Pointer(&ls)).data)
	}
	n := 0
	ls.Range(func(l labels.Label) {
		n += stringSize(l.Name) + stringSize(l.Value)
	})
	return n
}

func stringSize(s string) int {
	if len(s) < 255 {
		return 1 + len(s)
	}
	return 4 + len(s)
}

// appendLabels appends a label set in the engine's labels encoding.
func appendLabels(buf []byte, ls labels.Labels) []byte {
	if labelsAreEncoded {
		return append(buf, (*stringData)(unsafe.Pointer(&ls)).data...)
	}
	return encodeLabels(buf, ls)
}

// encodeLabels writes the encoding label by label (any labels.Labels build).
func encodeLabels(buf []byte, ls labels.Labels) []byte {
	ls.Range(func(l labels.Label) {
		buf = appendString(buf, l.Name)
		buf = appendString(buf, l.Value)
	})
	return buf
}

func appendString(buf []byte, s string) []byte {
	if n := len(s); n < 255 {
		buf = append(buf, byte(n))
	} else {
		buf = append(buf, 255, byte(n), byte(n>>8), byte(n>>16))
	}
	return append(buf, s...)
}

// decodeAt reads the length-prefixed string of the labels encoding at data[i:] and returns
// the offset after it. The data is a labels.Labels' own string (checked at startup to be this
// encoding), so it is well formed; a bounds check would stop anything else.
func decodeAt(data string, i int) (s string, next int) {
	n := int(data[i])
	i++
	if n == 255 {
		n = int(data[i]) | int(data[i+1])<<8 | int(data[i+2])<<16
		i += 3
	}
	return data[i : i+n], i + n
}
