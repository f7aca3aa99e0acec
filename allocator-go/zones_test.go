package allocator

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// zoneWorld is a test's own picture of a zoned deployment: which node is in which zone and
// where each collector runs. Every expectation is computed from it, never from the allocator.
type zoneWorld struct {
	table      []NodeZone
	collectors []Collector
	targets    []Target
}

func (w zoneWorld) zoneOfNode() map[string]string {
	z := map[string]string{}
	for _, r := range w.table {
		z[r.Node] = r.Zone
	}
	return z
}

func (w zoneWorld) keys() []uint64 {
	keys := make([]uint64, len(w.targets))
	for i, t := range w.targets {
		keys[i] = t.Key
	}
	return keys
}

// band is ⌊(1−s)·W/n⌋ and ⌈(1+s)·W/n⌉ in millionths, s = max(skew, ε), as the core's
// configuration documents it.
func band(total uint64, n int, skew, epsilon float64) (floor, cap uint64) {
	s := uint64(max(skew, epsilon)*1e6 + 0.5)
	den := uint64(n) * 1_000_000
	cap = (total*(1_000_000+s) + den - 1) / den
	if s < 1_000_000 {
		floor = total * (1_000_000 - s) / den
	}
	return floor, cap
}

// checkZoneRule: every target sits in its zone unless the least-loaded collector of its zone
// (lowest name on ties) has no room for it under the cap, or taking it away would leave its
// holder under the floor; and no collector is over the cap.
func checkZoneRule(t *testing.T, w zoneWorld, owner []string, skew, epsilon float64) (away int) {
	t.Helper()
	zoneOf := w.zoneOfNode()
	collectorZone := map[string]string{}
	load := map[string]uint64{}
	for _, c := range w.collectors {
		collectorZone[c.Name] = zoneOf[c.Node]
		load[c.Name] = 0
	}
	var total uint64
	for i, tg := range w.targets {
		if owner[i] == "" {
			t.Fatalf("target %d unassigned with %d collectors", tg.Key, len(w.collectors))
		}
		load[owner[i]] += uint64(tg.Weight)
		total += uint64(tg.Weight)
	}
	floor, cap := band(total, len(w.collectors), skew, epsilon)
	for c, l := range load {
		if l > cap {
			t.Fatalf("%s carries %d, over the cap %d", c, l, cap)
		}
	}
	for i, tg := range w.targets {
		zone := zoneOf[tg.Node]
		if zone == "" || collectorZone[owner[i]] == zone {
			continue
		}
		away++
		home, homeLoad := "", uint64(0)
		for _, c := range w.collectors {
			if collectorZone[c.Name] != zone {
				continue
			}
			if l := load[c.Name]; home == "" || l < homeLoad || (l == homeLoad && c.Name < home) {
				home, homeLoad = c.Name, l
			}
		}
		if home == "" {
			continue // its zone has no collector
		}
		wt := uint64(tg.Weight)
		if homeLoad+wt <= cap && load[owner[i]]-wt >= floor {
			t.Fatalf("target %d of %s sits on %s (%d) but %s (%d) has room under %d and %s stays at or over %d",
				tg.Key, zone, owner[i], load[owner[i]], home, homeLoad, cap, owner[i], floor)
		}
	}
	return away
}

// Three zones of two nodes, a collector on every node, the targets' weight spread evenly over
// the zones: once the table is known every target can be at home, and must be.
func TestSetNodeZonesBringsTargetsHome(t *testing.T) {
	w := zoneWorld{}
	for i := 0; i < 6; i++ {
		node := fmt.Sprintf("n%d", i)
		w.table = append(w.table, NodeZone{Node: node, Zone: fmt.Sprintf("zone-%c", 'a'+i/2)})
		w.collectors = append(w.collectors, Collector{Name: fmt.Sprintf("c-%d", i), Node: node})
	}
	// Node by i mod 6, weight by i mod 5: over 300 targets every zone gets the same weight.
	for i := 0; i < 300; i++ {
		w.targets = append(w.targets, Target{
			Key: uint64(i)*0x9E3779B97F4A7C15 + 1, Placement: uint64(i), Job: "pods",
			Node: fmt.Sprintf("n%d", i%6), Weight: uint32(1 + (i*7)%5),
		})
	}
	cfg := DefaultConfig()
	cfg.Strategy = Rebalancing
	cfg.Zones, cfg.ZoneSkew = true, 0.2
	a := newOrFail(t, cfg)
	back, err := a.Config()
	if err != nil || !back.Zones || back.ZoneSkew != 0.2 {
		t.Fatalf("Config() = %+v, %v", back, err)
	}
	if _, err := a.AddCollectors(w.collectors...); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpsertTargets(w.targets); err != nil {
		t.Fatal(err)
	}
	keys := w.keys()
	zoneOf := w.zoneOfNode()
	collectorZone := map[string]string{}
	for _, c := range w.collectors {
		collectorZone[c.Name] = zoneOf[c.Node]
	}
	before := owners(t, a, keys)
	awayBefore := 0
	for i, tg := range w.targets {
		if collectorZone[before[i]] != zoneOf[tg.Node] {
			awayBefore++
		}
	}
	if awayBefore == 0 {
		t.Fatal("without a table no placement should happen to match the zones; the test proves nothing")
	}

	moves, err := a.SetNodeZones(w.table)
	if err != nil {
		t.Fatal(err)
	}
	after := owners(t, a, keys)
	checkMoves(t, "SetNodeZones", keys, before, after, moves)
	for i, tg := range w.targets {
		if collectorZone[after[i]] != zoneOf[tg.Node] {
			t.Fatalf("target %d of %s is on %s in %s", tg.Key, zoneOf[tg.Node], after[i], collectorZone[after[i]])
		}
	}
	if len(moves) < awayBefore {
		t.Fatalf("%d targets were away from home, only %d moves", awayBefore, len(moves))
	}
	if away := checkZoneRule(t, w, after, 0.2, cfg.Epsilon); away != 0 {
		t.Fatalf("%d targets away", away)
	}

	// The same table again changes nothing.
	if moves, err := a.SetNodeZones(w.table); err != nil || len(moves) != 0 {
		t.Fatalf("unchanged table: %d moves, %v", len(moves), err)
	}
	// The table survives a snapshot: the restored allocator places a new target of zone-c at
	// home, which it could only do knowing the table.
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Restore(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	extra := Target{Key: 1 << 50, Placement: 1 << 50, Job: "pods", Node: "n5", Weight: 1}
	moves, err = b.UpsertTargets([]Target{extra})
	if err != nil || len(moves) != 1 || collectorZone[moves[0].To] != "zone-c" {
		t.Fatalf("restored: new target of zone-c placed by %+v, %v", moves, err)
	}

	// An empty table: zones are forgotten, the moves are still exactly the difference.
	before = after
	moves, err = a.SetNodeZones(nil)
	if err != nil {
		t.Fatal(err)
	}
	checkMoves(t, "SetNodeZones(nil)", keys, before, owners(t, a, keys), moves)
}

// One zone holds half the weight on one collector of six: its collector fills to the skew's
// cap and the rest spills to other zones, each spilled target justified by the rule.
func TestSetNodeZonesSpillsACrowdedZone(t *testing.T) {
	w := zoneWorld{table: []NodeZone{{"n0", "crowded"}, {"n1", "b"}, {"n2", "b"}, {"n3", "c"}, {"n4", "c"}, {"n5", "c"}}}
	for i := 0; i < 6; i++ {
		w.collectors = append(w.collectors, Collector{Name: fmt.Sprintf("c-%d", i), Node: fmt.Sprintf("n%d", i)})
	}
	for i := 0; i < 400; i++ {
		node := "n0"
		if i%2 == 1 {
			node = fmt.Sprintf("n%d", 1+(i/2)%5)
		}
		w.targets = append(w.targets, Target{
			Key: uint64(i)*0x9E3779B97F4A7C15 + 7, Placement: uint64(i), Job: "pods",
			Node: node, Weight: uint32(1 + (i*3)%4),
		})
	}
	cfg := DefaultConfig()
	cfg.Strategy = Rebalancing
	cfg.Zones, cfg.ZoneSkew = true, 0.1
	a := newOrFail(t, cfg)
	// The table first, then the collectors and targets: the mutators after it place by zone.
	if moves, err := a.SetNodeZones(w.table); err != nil || len(moves) != 0 {
		t.Fatalf("table on an empty allocator: %d moves, %v", len(moves), err)
	}
	if _, err := a.AddCollectors(w.collectors...); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpsertTargets(w.targets); err != nil {
		t.Fatal(err)
	}
	owner := owners(t, a, w.keys())
	if away := checkZoneRule(t, w, owner, 0.1, cfg.Epsilon); away == 0 {
		t.Fatal("half the weight in a zone of one collector in six must spill")
	}
	// The crowded zone's collector is full: within one target of the cap.
	var total, crowded uint64
	for i, tg := range w.targets {
		total += uint64(tg.Weight)
		if owner[i] == "c-0" {
			crowded += uint64(tg.Weight)
		}
	}
	if _, cap := band(total, 6, 0.1, cfg.Epsilon); crowded+4 <= cap {
		t.Fatalf("c-0 carries %d, the cap is %d: it had room for more of its zone", crowded, cap)
	}

	// Moving node n1 to the crowded zone: the moves are exactly the difference, the rule holds.
	w.table[1].Zone = "crowded"
	before := owner
	moves, err := a.SetNodeZones(w.table)
	if err != nil {
		t.Fatal(err)
	}
	owner = owners(t, a, w.keys())
	checkMoves(t, "n1 to crowded", w.keys(), before, owner, moves)
	if len(moves) == 0 {
		t.Fatal("c-1 joined the crowded zone and has room: some of its targets must come")
	}
	checkZoneRule(t, w, owner, 0.1, cfg.Epsilon)
}

func TestNodeZoneErrorsAreNamedAndChangeNothing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Strategy = Rebalancing
	cfg.Zones = true
	a := newOrFail(t, cfg)
	if _, err := a.AddCollectors(Collector{Name: "c-0", Node: "na"}, Collector{Name: "c-1", Node: "nb"}); err != nil {
		t.Fatal(err)
	}
	ts := make([]Target, 40)
	for i := range ts {
		ts[i] = Target{Key: uint64(i + 1), Placement: uint64(i), Job: "j", Node: []string{"na", "nb"}[i%2]}
	}
	if _, err := a.UpsertTargets(ts); err != nil {
		t.Fatal(err)
	}
	digest, _ := a.Digest()
	for _, c := range []struct {
		table []NodeZone
		want  string
	}{
		{[]NodeZone{{"na", "zone-a"}, {"na", "zone-b"}}, `node "na" is listed twice`},
		{[]NodeZone{{"nb", "zone-b"}, {"", "zone-a"}}, "a node name is empty"},
		{[]NodeZone{{"na", "zone-a"}, {"nb\xff", "zone-b"}}, "table[1].node is not valid UTF-8"},
	} {
		moves, err := a.SetNodeZones(c.table)
		var e *Error
		if !errors.As(err, &e) || !strings.Contains(e.Message, c.want) || moves != nil {
			t.Fatalf("table %q: want an error naming %q, got %v (moves %v)", c.table, c.want, err, moves)
		}
		if d, _ := a.Digest(); d != digest {
			t.Fatalf("table %q: the failed call changed the assignment", c.table)
		}
	}
	if _, err := a.SetNodeZones([]NodeZone{{"na", "zone-a"}, {"na", "zone-b"}}); !errors.Is(err, &Error{Code: InvalidArgument}) {
		t.Fatalf("a duplicate node is InvalidArgument, got %v", err)
	}

	// Zones are a rebalancing feature, and the skew has a range.
	bad := DefaultConfig()
	bad.Zones = true
	if _, err := New(bad); !errors.Is(err, &Error{Code: InvalidConfig}) || !strings.Contains(err.Error(), "only supported by rebalancing") {
		t.Fatalf("zones on consistent-hashing: %v", err)
	}
	bad.Strategy = Rebalancing
	bad.ZoneSkew = -0.5
	if _, err := New(bad); !errors.Is(err, &Error{Code: InvalidConfig}) || !strings.Contains(err.Error(), "zone_skew") {
		t.Fatalf("negative skew: %v", err)
	}
	// Without Zones the skew is not read, and the table moves nothing.
	bad.Zones = false
	b := newOrFail(t, bad)
	if _, err := b.AddCollectors(Collector{Name: "c-0", Node: "na"}, Collector{Name: "c-1", Node: "nb"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.UpsertTargets(ts); err != nil {
		t.Fatal(err)
	}
	if moves, err := b.SetNodeZones([]NodeZone{{"na", "zone-a"}, {"nb", "zone-b"}}); err != nil || len(moves) != 0 {
		t.Fatalf("rebalancing without zones: %d moves, %v", len(moves), err)
	}
}
