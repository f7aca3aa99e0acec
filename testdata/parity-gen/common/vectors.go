package common

import (
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"strconv"
)

// Ring is the upstream consistent-hash ring, configured as the Operator configures it.
type Ring interface {
	// Locate is LocateKey(key).String(): the member owning the key's partition.
	Locate(key string) string
	// Partition is FindPartitionID(key).
	Partition(key string) int
	// Owners is GetPartitionOwner(p).String() for every partition.
	Owners() []string
	// Loads is LoadDistribution(): partitions per member.
	Loads() map[string]int
}

// RingFactory builds a ring over the given member names.
type RingFactory func(members []string) Ring

// Operator's ring parameters (cmd/otel-allocator/internal/allocation/consistent_hashing.go).
const (
	PartitionCount    = 1061
	ReplicationFactor = 5
	Load              = 1.1
)

type hashVector struct {
	Job         string      `json:"job"`
	Discovered  [][2]string `json:"discovered"`
	Set         [][2]string `json:"set"`
	Deleted     []string    `json:"deleted"`
	KeyNoFilter string      `json:"key_no_filter"`
	KeyRelabel  string      `json:"key_relabel"`
}

type target struct {
	Job     string      `json:"job"`
	Labels  [][2]string `json:"labels"`
	Key     string      `json:"key"`
	Address string      `json:"address"`
}

type collectorSet struct {
	Collectors []string `json:"collectors"`
	// Owners[p] is the index in Collectors of partition p's owner.
	Owners []int `json:"partition_owners"`
	// Assigned[i] is the index in Collectors of target i's collector.
	Assigned []int `json:"assigned"`
}

type scenario struct {
	Name          string         `json:"name"`
	Targets       []target       `json:"targets"`
	CollectorSets []collectorSet `json:"collector_sets"`
}

type file struct {
	Generator         string       `json:"generator"`
	RingVersion       string       `json:"ring_version"`
	Consistent        string       `json:"buraksezer_consistent"`
	Xxhash            string       `json:"cespare_xxhash"`
	PartitionCount    int          `json:"partition_count"`
	ReplicationFactor int          `json:"replication_factor"`
	Load              float64      `json:"load"`
	Hashes            []hashVector `json:"hashes"`
	Scenarios         []scenario   `json:"scenarios"`
}

var (
	namespaces = []string{"default", "kube-system", "monitoring", "payments", "checkout", "ml-сервис"}
	apps       = []string{"api", "web", "worker", "redis", "postgres", "kafka", "node-exporter", "kube-state-metrics"}
	extraNames = []string{"a", "ab", "a_b", "Z", "team", "tier", "version", "zone", "pod_template_hash", "__scheme__", "__metrics_path__", "__param_module"}
)

func pick(r *rand.Rand, xs []string) string { return xs[r.Intn(len(xs))] }

func address(r *rand.Rand) string {
	return fmt.Sprintf("10.%d.%d.%d:%d", r.Intn(256), r.Intn(256), r.Intn(256), []int{8080, 9090, 9100, 8443}[r.Intn(4)])
}

// discovered returns a Kubernetes-style discovered label set (with __meta_ labels that the item
// hash must skip), shuffled so the reader has to sort.
func discovered(r *rand.Rand, addr string) []Label {
	ns, app := pick(r, namespaces), pick(r, apps)
	pod := fmt.Sprintf("%s-%x-%x", app, r.Int63n(1<<32), r.Intn(1<<16))
	ls := []Label{
		{"__address__", addr},
		{"__meta_kubernetes_namespace", ns},
		{"__meta_kubernetes_pod_name", pod},
		{"__meta_kubernetes_pod_node_name", fmt.Sprintf("node-%d", r.Intn(50))},
		{"__meta_kubernetes_pod_label_app", app},
	}
	seen := map[string]bool{}
	for _, l := range ls {
		seen[l.Name] = true
	}
	for i, n := 0, r.Intn(7); i < n; i++ {
		name := pick(r, extraNames)
		if seen[name] {
			continue
		}
		seen[name] = true
		value := fmt.Sprintf("%s-%d", pick(r, apps), r.Intn(100))
		if r.Intn(10) == 0 {
			value = ""
		}
		ls = append(ls, Label{name, value})
	}
	r.Shuffle(len(ls), func(i, j int) { ls[i], ls[j] = ls[j], ls[i] })
	return ls
}

func pairs(ls []Label) [][2]string {
	out := make([][2]string, len(ls))
	for i, l := range ls {
		out[i] = [2]string{l.Name, l.Value}
	}
	return out
}

func hashVectors(r *rand.Rand, n int) []hashVector {
	var out []hashVector
	for i := 0; i < n; i++ {
		job := pick(r, apps)
		disc := discovered(r, address(r))
		// What relabeling sets: the scrape-layer seeds the allocator adds when absent (job,
		// interval, timeout, path, scheme), sometimes an overwrite of a discovered label, and
		// sometimes a deletion.
		set := []Label{{"job", job}, {"__scrape_interval__", "1m"}, {"__scrape_timeout__", "10s"}, {"__metrics_path__", "/metrics"}, {"__scheme__", "http"}}
		if r.Intn(2) == 0 {
			set = append(set, Label{"instance", disc[0].Value})
		}
		if r.Intn(3) == 0 {
			set = append(set, Label{disc[r.Intn(len(disc))].Name, "overwritten"})
		}
		set = dedupe(set)
		var deleted []string
		if r.Intn(3) == 0 {
			d := disc[r.Intn(len(disc))].Name
			if !hasName(set, d) {
				deleted = append(deleted, d)
			}
		}
		out = append(out, hashVector{
			Job:         job,
			Discovered:  pairs(disc),
			Set:         pairs(set),
			Deleted:     deleted,
			KeyNoFilter: strconv.FormatUint(ItemHash(disc, nil, nil, job), 10),
			KeyRelabel:  strconv.FormatUint(ItemHash(disc, set, deleted, job), 10),
		})
	}
	return out
}

// dedupe keeps the first position of a name with its last value, as labels.Builder.Set does.
func dedupe(ls []Label) []Label {
	var out []Label
	for _, l := range ls {
		replaced := false
		for i := range out {
			if out[i].Name == l.Name {
				out[i].Value = l.Value
				replaced = true
			}
		}
		if !replaced {
			out = append(out, l)
		}
	}
	return out
}

func hasName(ls []Label, n string) bool {
	for _, l := range ls {
		if l.Name == n {
			return true
		}
	}
	return false
}

// targets makes n targets over the jobs; full label sets when rich, else just the address
// (keeping the large scenarios small on disk while every key is still checked).
func targets(r *rand.Rand, n int, jobs []string, rich bool) []target {
	out := make([]target, 0, n)
	for i := 0; i < n; i++ {
		job := jobs[i%len(jobs)]
		addr := address(r)
		ls := []Label{{"__address__", addr}}
		if rich {
			ls = discovered(r, addr)
		}
		out = append(out, target{
			Job:     job,
			Labels:  pairs(ls),
			Key:     strconv.FormatUint(ItemHash(ls, nil, nil, job), 10),
			Address: addr,
		})
	}
	return out
}

func collectorNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%d", prefix, i)
	}
	return out
}

func assign(ring RingFactory, members []string, ts []target) collectorSet {
	rg := ring(members)
	index := map[string]int{}
	for i, m := range members {
		index[m] = i
	}
	cs := collectorSet{Collectors: members}
	for _, owner := range rg.Owners() {
		cs.Owners = append(cs.Owners, index[owner])
	}
	for _, t := range ts {
		cs.Assigned = append(cs.Assigned, index[rg.Locate(t.Address)])
	}
	return cs
}

// Run proves the hash and ring against the Operator's values, then writes the vectors.
func Run(version, consistentVersion string, ring RingFactory, crosscheckPath, out string) error {
	if err := Crosscheck(crosscheckPath, version, ring); err != nil {
		return fmt.Errorf("crosscheck against the operator's values failed: %w", err)
	}
	r := rand.New(rand.NewSource(20261125))
	f := file{
		Generator:         "testdata/parity-gen (Go, upstream modules)",
		RingVersion:       version,
		Consistent:        consistentVersion,
		Xxhash:            "v2.3.0",
		PartitionCount:    PartitionCount,
		ReplicationFactor: ReplicationFactor,
		Load:              Load,
		Hashes:            hashVectors(r, 400),
	}
	small := targets(r, 1200, []string{"kubernetes-pods", "node-exporter", "kube-state-metrics"}, true)
	f.Scenarios = append(f.Scenarios, scenario{
		Name:    "1200 targets, 3 jobs, 5 collectors then 6 then 4",
		Targets: small,
		CollectorSets: []collectorSet{
			assign(ring, collectorNames("collector", 5), small),
			assign(ring, collectorNames("collector", 6), small),
			assign(ring, collectorNames("collector", 4), small),
		},
	})
	large := targets(r, 20000, []string{"kubernetes-pods", "kubernetes-service-endpoints", "node-exporter", "cadvisor"}, false)
	f.Scenarios = append(f.Scenarios, scenario{
		Name:          "20000 targets on 100 collectors",
		Targets:       large,
		CollectorSets: []collectorSet{assign(ring, collectorNames("otel-collector", 100), large)},
	})
	edge := targets(r, 3000, []string{"edge"}, false)
	f.Scenarios = append(f.Scenarios, scenario{
		Name:    "3000 targets on 1, 7, 999 and 1000 collectors",
		Targets: edge,
		CollectorSets: []collectorSet{
			assign(ring, collectorNames("c", 1), edge),
			assign(ring, collectorNames("c", 7), edge),
			assign(ring, collectorNames("otelcol-statefulset-collector", 999), edge),
			assign(ring, collectorNames("otelcol-statefulset-collector", 1000), edge),
		},
	})
	raw, err := json.Marshal(f)
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(raw, '\n'), 0o644)
}
