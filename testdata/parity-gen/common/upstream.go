package common

import (
	"flag"
	"fmt"
	"os"

	"github.com/cespare/xxhash/v2"
)

// Hasher is the Operator's ring hasher: XXH64 (seed 0) of the key bytes.
type Hasher struct{}

// Sum64 hashes data.
func (Hasher) Sum64(data []byte) uint64 { return xxhash.Sum64(data) }

// Member is a collector name as a ring member (Member.String() is the name, as the Operator's
// Collector.String()).
type Member string

func (m Member) String() string { return string(m) }

// Upstream is what both releases of github.com/buraksezer/consistent offer; each has its own
// Member type, hence the type parameter.
type Upstream[M interface{ String() string }] interface {
	LocateKey(key []byte) M
	FindPartitionID(key []byte) int
	GetPartitionOwner(partID int) M
	LoadDistribution() map[string]float64
}

type upstreamRing[M interface{ String() string }] struct{ c Upstream[M] }

// WrapRing adapts an upstream ring to Ring.
func WrapRing[M interface{ String() string }](c Upstream[M]) Ring { return upstreamRing[M]{c} }

func (r upstreamRing[M]) Locate(key string) string { return r.c.LocateKey([]byte(key)).String() }
func (r upstreamRing[M]) Partition(key string) int { return r.c.FindPartitionID([]byte(key)) }

func (r upstreamRing[M]) Loads() map[string]int {
	out := map[string]int{}
	for m, l := range r.c.LoadDistribution() {
		out[m] = int(l)
	}
	return out
}

func (r upstreamRing[M]) Owners() []string {
	out := make([]string, PartitionCount)
	for p := range out {
		out[p] = r.c.GetPartitionOwner(p).String()
	}
	return out
}

// Main is the generator command of one library version: prove, then write the vectors.
func Main(version string, newRing RingFactory) {
	crosscheck := flag.String("crosscheck", "../../../../shared/parity/operator-crosscheck.json", "the Operator's test values")
	out := flag.String("out", "../../parity/ring-"+version+".json", "where to write the vectors")
	flag.Parse()
	if err := Run(version, version, newRing, *crosscheck, *out); err != nil {
		fmt.Fprintln(os.Stderr, "parity-gen:", err)
		os.Exit(1)
	}
}
