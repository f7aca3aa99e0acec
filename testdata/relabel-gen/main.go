// Command relabel-gen writes differential vectors for our relabeling (allocator-service's
// relabel.rs) from Prometheus' own model/relabel package, at the version the OpenTelemetry
// Operator's target allocator pins. Each case is a label set and 1-4 relabel rules, loaded the
// way the allocator loads its configuration (YAML into promconfig.Config, which applies the
// defaults and runs relabel.Config.Validate) and applied with relabel.ProcessBuilder. The output
// records Prometheus' answer: invalid (with its error), dropped, or the final labels with the
// builder's range order and the allocator's item hash (DESIGN.md §6.2) of that order.
//
// The generator is seeded, so its output is reproducible; nothing in it comes from our Rust code.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/cespare/xxhash/v2"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	yaml2 "gopkg.in/yaml.v2"
)

// The OpenTelemetry Operator release whose allocator we replace; its go.mod pins the
// prometheus module version this module requires (checked in main).
const (
	otelOperatorRelease = "v0.158.0"
	prometheusVersion   = "v0.312.0"
	job                 = "relabel-gen"
)

// ConfigTemplate is the allocator configuration each case's rules are placed in; the Rust test
// fills in the same text, so both sides load the very same YAML.
const ConfigTemplate = "scrape_configs:\n- job_name: " + job + "\n  relabel_configs: %s\n"

// LegacyTemplate is ConfigTemplate with the job's name validation set to legacy, under which
// Prometheus checks the names rules write against [a-zA-Z_][a-zA-Z0-9_]* (and its
// relabelTargetLegacy pattern where they hold $ references). The -legacy cases use it.
const LegacyTemplate = "scrape_configs:\n- job_name: " + job + "\n  metric_name_validation_scheme: legacy\n  relabel_configs: %s\n"

type Label struct {
	Name  string `json:"n"`
	Value string `json:"v"`
}

type Case struct {
	ID    int     `json:"id"`
	Input []Label `json:"input"`
	Rules string  `json:"rules"`
	// "legacy" when loaded into LegacyTemplate; empty for ConfigTemplate.
	Scheme string `json:"scheme,omitempty"`
	Result string `json:"result"` // "invalid", "dropped" or "kept"
	Error  string `json:"error,omitempty"`
	// The final labels in the builder's range order (the order the item hash uses).
	Range []Label `json:"range,omitempty"`
	// The item hash of Range with the job name (DESIGN.md §6.2), as a decimal string.
	Key string `json:"key,omitempty"`
}

func main() {
	out := flag.String("out", "", "output file (stdout when empty)")
	n := flag.Int("n", 3000, "cases")
	legacy := flag.Int("legacy", 1000, "cases after the first n, loaded into LegacyTemplate")
	seed := flag.Uint64("seed", 20261130, "seed")
	flag.Parse()
	checkHash()
	gen := versions()
	rng := rand.New(rand.NewPCG(*seed, 0x5eed))
	var b strings.Builder
	head, err := json.Marshal(map[string]any{
		"generator": gen, "job": job, "config_template": ConfigTemplate,
		"legacy_config_template": LegacyTemplate, "seed": *seed,
	})
	check(err)
	b.WriteString("{\"header\":")
	b.Write(head)
	b.WriteString(",\n\"cases\":[\n")
	counts := map[string]int{}
	total := *n + *legacy
	for i := 0; i < total; i++ {
		template, scheme := ConfigTemplate, ""
		if i >= *n {
			template, scheme = LegacyTemplate, "legacy"
		}
		c := run(i, randomLabels(rng), randomRules(rng), template)
		c.Scheme = scheme
		counts[c.Result]++
		line, err := json.Marshal(c)
		check(err)
		b.Write(line)
		if i+1 < total {
			b.WriteString(",")
		}
		b.WriteString("\n")
	}
	b.WriteString("]}\n")
	fmt.Fprintf(os.Stderr, "relabel-gen: %d cases: %d kept, %d dropped, %d invalid\n", total, counts["kept"], counts["dropped"], counts["invalid"])
	if *out == "" {
		_, err = os.Stdout.WriteString(b.String())
	} else {
		err = os.WriteFile(*out, []byte(b.String()), 0o644)
	}
	check(err)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "relabel-gen:", err)
		os.Exit(1)
	}
}

// run loads the rules as the allocator loads its config and applies them to the labels.
func run(id int, input []Label, rules, template string) Case {
	c := Case{ID: id, Input: input, Rules: rules}
	cfg := &promconfig.Config{}
	if err := yaml2.UnmarshalStrict([]byte(fmt.Sprintf(template, rules)), cfg); err != nil {
		c.Result, c.Error = "invalid", err.Error()
		return c
	}
	if len(cfg.ScrapeConfigs) != 1 {
		check(fmt.Errorf("case %d: %d scrape configs", id, len(cfg.ScrapeConfigs)))
	}
	m := map[string]string{}
	for _, l := range input {
		m[l.Name] = l.Value
	}
	b := labels.NewBuilder(labels.FromMap(m))
	if !relabel.ProcessBuilder(b, cfg.ScrapeConfigs[0].RelabelConfigs...) {
		c.Result = "dropped"
		return c
	}
	c.Result = "kept"
	c.Range = []Label{}
	b.Range(func(l labels.Label) { c.Range = append(c.Range, Label{l.Name, l.Value}) })
	c.Key = strconv.FormatUint(itemHash(c.Range, job), 10)
	return c
}

// itemHash is the Go allocator's target identity over a builder's range (DESIGN.md §6.2): the
// allocator's function is in an internal package, so it is restated here and checked against a
// value from the Operator's own tests in checkHash.
func itemHash(ls []Label, job string) uint64 {
	h := xxhash.New()
	for _, l := range ls {
		if strings.HasPrefix(l.Name, "__meta_") {
			continue
		}
		h.WriteString(l.Name)
		h.Write([]byte{0xff})
		h.WriteString(l.Value)
		h.Write([]byte{0xff})
	}
	h.WriteString(job)
	return h.Sum64()
}

// checkHash: labels {test_label: test-value}, job test-job hash to 11170662653441480747 in the
// Operator's server tests (../shared/parity/operator-crosscheck.json).
func checkHash() {
	if got := itemHash([]Label{{"test_label", "test-value"}}, "test-job"); got != 11170662653441480747 {
		check(fmt.Errorf("item hash self-check: got %d", got))
	}
}

func versions() map[string]string {
	v := map[string]string{"opentelemetry-operator": otelOperatorRelease}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		check(fmt.Errorf("no build info"))
	}
	v["go"] = info.GoVersion
	for _, d := range info.Deps {
		switch d.Path {
		case "github.com/prometheus/prometheus", "github.com/grafana/regexp", "github.com/prometheus/common", "gopkg.in/yaml.v2":
			v[d.Path] = d.Version
		}
	}
	if v["github.com/prometheus/prometheus"] != prometheusVersion {
		check(fmt.Errorf("built with prometheus %s, want %s", v["github.com/prometheus/prometheus"], prometheusVersion))
	}
	return v
}
