package allocator

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
)

func newOrFail(t testing.TB, cfg Config) *Allocator {
	t.Helper()
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestAConfigLiteralIsRefusedPointingAtDefaultConfig(t *testing.T) {
	_, err := New(Config{Strategy: LeastWeighted})
	if !errors.Is(err, &Error{Code: InvalidConfig}) || !strings.Contains(err.Error(), "start from DefaultConfig()") {
		t.Fatalf("want InvalidConfig pointing at DefaultConfig, got %v", err)
	}
	cfg := DefaultConfig()
	cfg.PartitionCount = 0
	if _, err := New(cfg); err == nil || strings.Contains(err.Error(), "DefaultConfig") {
		t.Fatalf("a default with one bad field names only that field, got %v", err)
	}
}

func TestDefaultConfigIsTheGoAllocators(t *testing.T) {
	c := DefaultConfig()
	if c.Strategy != ConsistentHashing || c.Ring != RingV0_10_0 || c.PartitionCount != 1061 ||
		c.ReplicationFactor != 5 || c.LoadFactor != 1.1 || c.Fallback != NoStrategy {
		t.Fatalf("unexpected default %+v", c)
	}
	a := newOrFail(t, c)
	back, err := a.Config()
	if err != nil || back != c {
		t.Fatalf("Config() = %+v, %v", back, err)
	}
}

func TestStrategyAndRingPrintAsConfigurationNames(t *testing.T) {
	// The configuration language's names (the Operator's allocation_strategy values, ours,
	// and the ring's release tags), written out here rather than derived from String.
	strategies := []struct {
		s    Strategy
		want string
	}{
		{ConsistentHashing, "consistent-hashing"}, {LeastWeighted, "least-weighted"},
		{PerNode, "per-node"}, {BoundedHashing, "bounded-hashing"}, {Rebalancing, "rebalancing"},
		{NoStrategy, "none"}, {Strategy(5), "Strategy(5)"},
	}
	for _, c := range strategies {
		if got := fmt.Sprint(c.s); got != c.want {
			t.Errorf("Strategy %d prints %q, want %q", uint32(c.s), got, c.want)
		}
	}
	rings := []struct {
		r    RingVersion
		want string
	}{{RingV0_10_0, "v0.10.0"}, {RingV1_0_0, "v1.0.0"}, {RingVersion(2), "RingVersion(2)"}}
	for _, c := range rings {
		if got := fmt.Sprint(c.r); got != c.want {
			t.Errorf("RingVersion %d prints %q, want %q", uint32(c.r), got, c.want)
		}
	}
	// Every value the engine takes has a name, and the values it refuses print as numbers.
	for v := Strategy(0); v <= 8; v++ {
		cfg := DefaultConfig()
		cfg.Strategy = v
		a, err := New(cfg)
		if named := !strings.HasPrefix(v.String(), "Strategy("); named != (err == nil) {
			t.Errorf("strategy %d: String %q, New error %v", uint32(v), v, err)
		}
		if a != nil {
			a.Close()
		}
	}
	for v := RingVersion(0); v <= 4; v++ {
		cfg := DefaultConfig()
		cfg.Ring = v
		a, err := New(cfg)
		if named := !strings.HasPrefix(v.String(), "RingVersion("); named != (err == nil) {
			t.Errorf("ring %d: String %q, New error %v", uint32(v), v, err)
		}
		if a != nil {
			a.Close()
		}
	}
}

func TestInvalidConfigIsAnErrorWithItsCode(t *testing.T) {
	c := DefaultConfig()
	c.LoadFactor = 0.5
	_, err := New(c)
	var e *Error
	if !errors.As(err, &e) || e.Code != InvalidConfig {
		t.Fatalf("want InvalidConfig, got %v", err)
	}
	if !errors.Is(err, &Error{Code: InvalidConfig}) {
		t.Fatal("errors.Is matches on the code")
	}
}

func TestCloseIsIdempotentAndUseAfterCloseIsAnError(t *testing.T) {
	a, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddCollectors(Collector{Name: "x"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if _, err := a.Read([]uint64{1}); !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
	if _, err := a.Snapshot(); !errors.Is(err, ErrClosed) {
		t.Fatalf("want ErrClosed, got %v", err)
	}
}

// Weight's zero value means 1 on every way in: target columns, label sets hashed on the
// calling goroutine, and label sets hashed in parallel (2,048 or more in one call).
func TestZeroWeightMeansOne(t *testing.T) {
	a := newOrFail(t, DefaultConfig())
	if _, err := a.AddCollectors(Collector{Name: "only"}); err != nil {
		t.Fatal(err)
	}
	ts := []Target{
		{Key: 1, Placement: PlacementHash("10.0.0.1:80"), Job: "j"},
		{Key: 2, Placement: PlacementHash("10.0.0.2:80"), Job: "j", Weight: 0},
		{Key: 3, Placement: PlacementHash("10.0.0.3:80"), Job: "j", Weight: 5},
	}
	if _, err := a.UpsertTargets(ts); err != nil {
		t.Fatal(err)
	}
	sets := func(n int, prefix string) []LabelSet {
		out := make([]LabelSet, n)
		for i := range out {
			out[i] = LabelSet{Job: "j", Labels: labels.FromStrings("__address__", fmt.Sprintf("%s-%d:80", prefix, i))}
		}
		return out
	}
	if _, _, err := a.UpsertLabelSets(sets(3, "serial")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.UpsertLabelSets(sets(2100, "parallel")); err != nil {
		t.Fatal(err)
	}
	stats, err := a.Stats()
	// 1 + 1 + 5 for the columns, 1 each for the 3 + 2,100 label sets.
	if err != nil || len(stats) != 1 || stats[0].Targets != 2106 || stats[0].Weight != 2110 {
		t.Fatalf("stats %+v %v", stats, err)
	}
}

func TestBatchesMovesStatsAndSnapshot(t *testing.T) {
	a := newOrFail(t, Config{Strategy: LeastWeighted, Fallback: NoStrategy, Ring: RingV0_10_0, PartitionCount: 1061, ReplicationFactor: 5, LoadFactor: 1.1})
	if _, err := a.AddCollectors(Collector{Name: "a"}, Collector{Name: "b"}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.AddCollectors(Collector{Name: "a"}); !errors.Is(err, &Error{Code: DuplicateCollector}) {
		t.Fatalf("want DuplicateCollector, got %v", err)
	}
	ts := make([]Target, 100)
	keys := make([]uint64, 100)
	for i := range ts {
		ts[i] = Target{Key: uint64(1000 + i), Placement: PlacementHash(fmt.Sprintf("10.0.0.%d:80", i)), Job: "j", Weight: 2}
		keys[i] = ts[i].Key
	}
	moves, err := a.UpsertTargets(ts)
	if err != nil || len(moves) != 100 || moves[0].From != "" || moves[0].To == "" {
		t.Fatalf("moves %v %v", len(moves), err)
	}
	stats, err := a.Stats()
	if err != nil || len(stats) != 2 || stats[0].Targets != 50 || stats[0].Weight != 100 || stats[0].Name != "a" {
		t.Fatalf("stats %+v %v", stats, err)
	}
	mine, err := a.CollectorTargets("a", "")
	if err != nil || len(mine) != 50 {
		t.Fatalf("CollectorTargets %d %v", len(mine), err)
	}
	if _, err := a.CollectorTargets("nope", ""); !errors.Is(err, &Error{Code: UnknownCollector}) {
		t.Fatalf("want UnknownCollector, got %v", err)
	}
	moves, err = a.RemoveCollectors("b")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range moves {
		if m.From != "b" || m.To != "a" {
			t.Fatalf("move %+v", m)
		}
	}
	if len(moves) != 50 {
		t.Fatalf("%d moves", len(moves))
	}
	snap, err := a.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := Restore(snap)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	x, _ := a.Assignments(keys)
	y, _ := b.Assignments(keys)
	for i := range x {
		if x[i] != y[i] || x[i] != "a" {
			t.Fatalf("restored assignment %d: %q vs %q", i, x[i], y[i])
		}
	}
	// The digest from its definition, computed here: every key is on "a".
	var want uint64
	name := xxhash.Sum64String("a")
	for _, k := range keys {
		var buf [16]byte
		binary.LittleEndian.PutUint64(buf[:8], k)
		binary.LittleEndian.PutUint64(buf[8:], name)
		want ^= xxhash.Sum64(buf[:])
	}
	da, errA := a.Digest()
	db, errB := b.Digest()
	if errA != nil || errB != nil || da != want || db != want {
		t.Fatalf("digest %x / restored %x, want %x (%v %v)", da, db, want, errA, errB)
	}
	snap[len(snap)/2] ^= 0xff
	if _, err := Restore(snap); !errors.Is(err, &Error{Code: InvalidSnapshot}) {
		t.Fatalf("want InvalidSnapshot, got %v", err)
	}
	if moves, err := a.RemoveTargets(keys[:10]); err != nil || len(moves) != 10 || moves[0].To != "" {
		t.Fatal(moves, err)
	}
	if _, err := a.RemoveTargets(keys[:1]); !errors.Is(err, &Error{Code: UnknownTarget}) {
		t.Fatalf("want UnknownTarget, got %v", err)
	}
	s, err := a.Summary()
	if err != nil || s.Targets != 90 || s.Collectors != 1 || s.MovesReassigned != 50 {
		t.Fatalf("summary %+v %v", s, err)
	}
}

func TestLabelSetsAreHashedLikeTheOperator(t *testing.T) {
	// The Operator's own test value (shared/parity/operator-crosscheck.json).
	key, err := TargetKey(labels.FromStrings("test_label", "test-value"), "test-job")
	if err != nil || key != 11170662653441480747 {
		t.Fatalf("key %d %v", key, err)
	}
	a := newOrFail(t, DefaultConfig())
	_, _, err = a.UpsertLabelSets([]LabelSet{{Job: "j", Labels: labels.FromStrings("instance", "x")}})
	if !errors.Is(err, &Error{Code: MissingAddress}) {
		t.Fatalf("want MissingAddress, got %v", err)
	}
}

type vectors struct {
	RingVersion string `json:"ring_version"`
	Scenarios   []struct {
		Targets []struct {
			Job    string      `json:"job"`
			Labels [][2]string `json:"labels"`
			Key    string      `json:"key"`
		} `json:"targets"`
		CollectorSets []struct {
			Collectors []string `json:"collectors"`
			Assigned   []int    `json:"assigned"`
		} `json:"collector_sets"`
	} `json:"scenarios"`
}

// The Go vectors of testdata/parity (written by the upstream modules) through this package.
func TestParityVectors(t *testing.T) {
	for _, version := range []string{"v0.10.0", "v1.0.0"} {
		raw, err := os.ReadFile("../testdata/parity/ring-" + version + ".json")
		if err != nil {
			t.Fatal(err)
		}
		var v vectors
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatal(err)
		}
		cfg := DefaultConfig()
		if version == "v1.0.0" {
			cfg.Ring = RingV1_0_0
		}
		checked := 0
		for _, s := range v.Scenarios {
			sets := make([]LabelSet, len(s.Targets))
			for i, tg := range s.Targets {
				b := labels.NewScratchBuilder(len(tg.Labels))
				for _, l := range tg.Labels {
					b.Add(l[0], l[1])
				}
				b.Sort()
				sets[i] = LabelSet{Job: tg.Job, Labels: b.Labels()}
			}
			for _, cs := range s.CollectorSets {
				a := newOrFail(t, cfg)
				collectors := make([]Collector, len(cs.Collectors))
				for i, n := range cs.Collectors {
					collectors[i] = Collector{Name: n}
				}
				if _, err := a.SetCollectors(collectors); err != nil {
					t.Fatal(err)
				}
				keys, moves, err := a.UpsertLabelSets(sets)
				if err != nil {
					t.Fatal(err)
				}
				names, err := a.Assignments(keys)
				if err != nil {
					t.Fatal(err)
				}
				// The change's own moves name the owners too (a target listed twice lands once).
				for _, m := range moves {
					if m.From != "" || m.To == "" {
						t.Fatalf("%s: move %+v", version, m)
					}
				}
				for i, tg := range s.Targets {
					if strconv.FormatUint(keys[i], 10) != tg.Key {
						t.Fatalf("%s target %d: key %d, Go %s", version, i, keys[i], tg.Key)
					}
					if names[i] != cs.Collectors[cs.Assigned[i]] {
						t.Fatalf("%s target %d: %s, Go %s", version, i, names[i], cs.Collectors[cs.Assigned[i]])
					}
					checked++
				}
			}
		}
		if checked < 35000 {
			t.Fatalf("only %d targets checked", checked)
		}
	}
}

func TestConcurrentUseFromManyGoroutines(t *testing.T) {
	a := newOrFail(t, DefaultConfig())
	keys := make([]uint64, 500)
	ts := make([]Target, 500)
	for i := range ts {
		ts[i] = Target{Key: uint64(i + 1), Placement: uint64(i) * 0x9E3779B97F4A7C15, Job: "j", Weight: 1}
		keys[i] = ts[i].Key
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				switch g % 3 {
				case 0:
					n := 1 + (i+g)%5
					cs := make([]Collector, n)
					for c := range cs {
						cs[c] = Collector{Name: fmt.Sprintf("c%d", c)}
					}
					if _, err := a.SetCollectors(cs); err != nil {
						t.Error(err)
						return
					}
				case 1:
					if _, err := a.SetTargets(ts[(i*7)%250 : (i*7)%250+250]); err != nil {
						t.Error(err)
						return
					}
				default:
					if _, err := a.Assignments(keys); err != nil {
						t.Error(err)
						return
					}
					if _, err := a.Stats(); err != nil {
						t.Error(err)
						return
					}
				}
			}
		}(g)
	}
	// Closing while others run must not crash: they get ErrClosed or finish first.
	wg.Wait()
	a.Close()
	if _, err := a.Stats(); !errors.Is(err, ErrClosed) {
		t.Fatal("closed")
	}
}

func TestBoundedHashingIsAFunctionOfTheStateAndCapsWeight(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Strategy = BoundedHashing
	if cfg.Epsilon != 0.05 || cfg.MaxWeight != 0 {
		t.Fatalf("bounded defaults %+v", cfg)
	}
	collectors := []Collector{{Name: "c0"}, {Name: "c1"}, {Name: "c2"}, {Name: "c3"}, {Name: "c4"}}
	ts := make([]Target, 2000)
	keys := make([]uint64, len(ts))
	var total uint64
	for i := range ts {
		w := uint32(1 + (i*7919)%500)
		ts[i] = Target{Key: uint64(i)*0x9E3779B97F4A7C15 + 1, Job: fmt.Sprintf("job-%d", i%3), Weight: w}
		keys[i] = ts[i].Key
		total += uint64(w)
	}
	// One allocator built in one go, one built collector by collector with targets in halves
	// (reversed): the same state must give the same assignment.
	a := newOrFail(t, cfg)
	if _, err := a.AddCollectors(collectors...); err != nil {
		t.Fatal(err)
	}
	if _, err := a.UpsertTargets(ts); err != nil {
		t.Fatal(err)
	}
	b := newOrFail(t, cfg)
	if _, err := b.UpsertTargets(ts[1000:]); err != nil {
		t.Fatal(err)
	}
	for i := len(collectors) - 1; i >= 0; i-- {
		if _, err := b.AddCollectors(collectors[i]); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.UpsertTargets(ts[:1000]); err != nil {
		t.Fatal(err)
	}
	x, _ := a.Assignments(keys)
	y, _ := b.Assignments(keys)
	for i := range x {
		if x[i] != y[i] || x[i] == "" {
			t.Fatalf("target %d: %q vs %q", i, x[i], y[i])
		}
	}
	stats, err := a.Stats()
	if err != nil {
		t.Fatal(err)
	}
	limit := (total*105 + 500 - 1) / 500 // ⌈1.05·W/5⌉
	for _, s := range stats {
		if s.Weight > limit {
			t.Fatalf("%s carries %d, over %d", s.Name, s.Weight, limit)
		}
	}
	cfg.Epsilon = -1
	if _, err := New(cfg); !errors.Is(err, &Error{Code: InvalidConfig}) {
		t.Fatalf("want InvalidConfig for a negative epsilon, got %v", err)
	}
}
