package main

import (
	"testing"

	"paritygen/common"
	"paritygen/common/allocatorgo"
)

// The Go package of this repository against github.com/buraksezer/consistent v1.0.0 and the item
// hash, on thousands of random label sets and collector sets.
func TestAllocatorGoEqualsUpstreamRing(t *testing.T) {
	common.CrossCheck(t, "v1.0.0", newRing, allocatorgo.Engine{}, 40, 5)
}

func BenchmarkAllocation(b *testing.B) {
	common.BenchAllocation(b, "v1.0.0", newRing, allocatorgo.Engine{})
}
