package main

import (
	"fmt"
	"os"
	"strings"

	prom "github.com/prometheus/prometheus/discovery/kubernetes"
	"go.yaml.in/yaml/v2"
	"k8s.io/apimachinery/pkg/fields"
)

// configVector is Prometheus' verdict on one Kubernetes SD entry of sd-configs.txt.
type configVector struct {
	// The entry as written, and the allocator's expected verdict from the same line.
	Entry     string `json:"entry"`
	Allocator string `json:"allocator"`
	// Prometheus' error reading the entry; empty when it loads.
	Error string `json:"error"`
	// When it loads: for each selector, the terms fields.ParseSelector makes of its field
	// selector, as [field, operator, value].
	Fields [][][3]string `json:"fields,omitempty"`
}

// configVectors reads sd-configs.txt: each line (but comments) is a verdict word and a YAML
// flow mapping, which is read into Prometheus' SDConfig as Prometheus reads its configuration
// (yaml.UnmarshalStrict, the SDConfig's own UnmarshalYAML checks).
func configVectors(path string) ([]configVector, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	out := []configVector{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		verdict, entry, ok := strings.Cut(line, " ")
		if !ok || (verdict != "same" && verdict != "refuses") {
			return nil, fmt.Errorf("%s:%d: want `same <entry>` or `refuses <entry>`", path, i+1)
		}
		v := configVector{Entry: entry, Allocator: verdict}
		var sd prom.SDConfig
		if err := yaml.UnmarshalStrict([]byte(entry), &sd); err != nil {
			v.Error = err.Error()
			out = append(out, v)
			continue
		}
		for _, s := range sd.Selectors {
			sel, err := fields.ParseSelector(s.Field)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: loaded, but its field selector %q does not parse: %v", path, i+1, s.Field, err)
			}
			terms := [][3]string{}
			for _, r := range sel.Requirements() {
				terms = append(terms, [3]string{r.Field, string(r.Operator), r.Value})
			}
			v.Fields = append(v.Fields, terms)
		}
		out = append(out, v)
	}
	return out, nil
}
