// Command parity-gen writes parity vectors for github.com/buraksezer/consistent v1.0.0,
// configured as the OpenTelemetry Operator configures it.
package main

import (
	"github.com/buraksezer/consistent"

	"paritygen/common"
)

func newRing(names []string) common.Ring {
	// nil for no names, as the Operator passes (v0.10.0 panics on an empty non-nil slice).
	var members []consistent.Member
	for _, n := range names {
		members = append(members, common.Member(n))
	}
	return common.WrapRing[consistent.Member](consistent.New(members, consistent.Config{
		PartitionCount:    common.PartitionCount,
		ReplicationFactor: common.ReplicationFactor,
		Load:              common.Load,
		Hasher:            common.Hasher{},
	}))
}

func main() { common.Main("v1.0.0", newRing) }
