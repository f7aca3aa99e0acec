// Command parity-gen writes parity vectors for github.com/buraksezer/consistent v0.10.0,
// configured as the OpenTelemetry Operator configures it.
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/buraksezer/consistent"
	"github.com/cespare/xxhash/v2"

	"paritygen/common"
)

type hasher struct{}

func (hasher) Sum64(data []byte) uint64 { return xxhash.Sum64(data) }

type member string

func (m member) String() string { return string(m) }

type ring struct{ c *consistent.Consistent }

func newRing(names []string) common.Ring {
	var members []consistent.Member
	for _, n := range names {
		members = append(members, member(n))
	}
	return ring{consistent.New(members, consistent.Config{
		PartitionCount:    common.PartitionCount,
		ReplicationFactor: common.ReplicationFactor,
		Load:              common.Load,
		Hasher:            hasher{},
	})}
}

func (r ring) Locate(key string) string { return r.c.LocateKey([]byte(key)).String() }
func (r ring) Partition(key string) int { return r.c.FindPartitionID([]byte(key)) }
func (r ring) Loads() map[string]int {
	out := map[string]int{}
	for m, l := range r.c.LoadDistribution() {
		out[m] = int(l)
	}
	return out
}
func (r ring) Owners() []string {
	out := make([]string, common.PartitionCount)
	for p := range out {
		out[p] = r.c.GetPartitionOwner(p).String()
	}
	return out
}

func main() {
	crosscheck := flag.String("crosscheck", "../../../../shared/parity/operator-crosscheck.json", "the Operator's test values")
	out := flag.String("out", "../../parity/ring-v0.10.0.json", "where to write the vectors")
	flag.Parse()
	if err := common.Run("v0.10.0", "v0.10.0", newRing, *crosscheck, *out); err != nil {
		fmt.Fprintln(os.Stderr, "parity-gen:", err)
		os.Exit(1)
	}
}
