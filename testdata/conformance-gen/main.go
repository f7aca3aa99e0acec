// Command conformancegen runs the Go Target Allocator's own code in-process on one
// configuration of the corpus and writes the answers of its HTTP routes as a golden file:
// the Operator's config loader (internal/config), discoverer with the relabel-config filter
// (internal/target), allocator (internal/allocation) and HTTP server (internal/server),
// collectors set directly, file_sd files read by Prometheus' own file discovery.
//
// The Operator's module is not on the Go module proxy and its packages are internal, so this
// file is compiled inside a snapshot of the Operator's source kept outside the repository;
// gen.sh places it there and runs it (see README.md).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	"github.com/prometheus/prometheus/discovery/file"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"gopkg.in/yaml.v2"

	"github.com/open-telemetry/opentelemetry-operator/cmd/otel-allocator/internal/allocation"
	"github.com/open-telemetry/opentelemetry-operator/cmd/otel-allocator/internal/config"
	"github.com/open-telemetry/opentelemetry-operator/cmd/otel-allocator/internal/server"
	"github.com/open-telemetry/opentelemetry-operator/cmd/otel-allocator/internal/target"
	"github.com/open-telemetry/opentelemetry-operator/cmd/otel-allocator/internal/telemetry"
	"github.com/open-telemetry/opentelemetry-operator/cmd/otel-allocator/internal/watcher"
)

// Route is one request and the Go allocator's answer.
type Route struct {
	Path        string `json:"path"`
	Accept      string `json:"accept,omitempty"`
	Status      int    `json:"status"`
	ContentType string `json:"content_type"`
	Body        string `json:"body"`
}

// Golden is what one case produces.
type Golden struct {
	OperatorCommit string   `json:"operator_commit"`
	Ring           string   `json:"ring"`
	Case           string   `json:"case"`
	Collectors     []string `json:"collectors"`
	Routes         []Route  `json:"routes"`
	// Pages are the HTML debug pages (`/` and `/debug/...`) as the data their tables hold.
	Pages []Page `json:"pages"`
}

// ours holds the keys of our service's configuration that the Go loader does not know.
type ours struct {
	Collectors []string `yaml:"collectors"`
	// CollectorNodes gives collectors the node their pod runs on (per-node allocation).
	CollectorNodes map[string]string `yaml:"collector_nodes"`
	Ring           string            `yaml:"ring"`
}

type noManager struct{}

func (noManager) ApplyConfig(map[string]discovery.Configs) error { return nil }
func (noManager) SyncCh() <-chan map[string][]*targetgroup.Group { return nil }

func main() {
	caseDir := flag.String("case", "", "case directory holding config.yaml (and its file_sd files)")
	out := flag.String("out", "", "golden file to write")
	commit := flag.String("commit", "", "the Operator commit this snapshot is")
	ring := flag.String("ring", "", "the buraksezer/consistent version this build links")
	flag.Parse()
	if err := run(*caseDir, *out, *commit, *ring); err != nil {
		fmt.Fprintln(os.Stderr, "conformancegen:", err)
		os.Exit(1)
	}
}

func run(caseDir, out, commit, ring string) error {
	// Relative file_sd paths resolve against the working directory in the Go loader.
	if err := os.Chdir(caseDir); err != nil {
		return err
	}
	raw, err := os.ReadFile("config.yaml")
	if err != nil {
		return err
	}
	var extra ours
	if err := yaml.Unmarshal(raw, &extra); err != nil {
		return err
	}
	if extra.Ring == "" {
		extra.Ring = "v0.10.0"
	}
	if extra.Ring != ring {
		return fmt.Errorf("case wants ring %s, this build links %s", extra.Ring, ring)
	}
	cfg := config.CreateDefaultConfig()
	if err := config.LoadFromFile("config.yaml", &cfg); err != nil {
		return fmt.Errorf("Go loader: %w", err)
	}
	ctx := context.Background()
	gatherer, _, err := telemetry.SetupMeterProvider(ctx, &cfg)
	if err != nil {
		return err
	}
	log := logr.Discard()
	alloc, err := allocation.New(cfg.AllocationStrategy, log, allocation.WithFallbackStrategy(cfg.AllocationFallbackStrategy))
	if err != nil {
		return err
	}
	addr, err := freeAddr()
	if err != nil {
		return err
	}
	// The server options the Operator's main.go sets from the configuration.
	opts := []server.Option{server.WithMetricsGatherer(gatherer)}
	if cfg.AllowInsecureAuthSecrets {
		opts = append(opts, server.WithInsecureAuthSecrets())
	}
	srv, err := server.NewServer(log, alloc, addr, opts...)
	if err != nil {
		return err
	}
	go func() { _ = srv.Start() }()

	d, err := target.NewDiscoverer(log, noManager{}, cfg.FilterStrategy, srv, alloc.SetTargets)
	if err != nil {
		return err
	}
	var scrapeConfigs []*promconfig.ScrapeConfig
	if cfg.PromConfig != nil {
		scrapeConfigs = cfg.PromConfig.ScrapeConfigs
	}
	if err := d.ApplyConfig(watcher.EventSourceConfigMap, scrapeConfigs); err != nil {
		return err
	}
	tsets, err := targetSets(ctx, scrapeConfigs)
	if err != nil {
		return err
	}
	collectors := map[string]*allocation.Collector{}
	for _, c := range extra.Collectors {
		collectors[c] = allocation.NewCollector(c, extra.CollectorNodes[c])
	}
	alloc.SetCollectors(collectors)
	d.UpdateTsets(tsets)
	d.Reload()

	if err := waitReady(addr); err != nil {
		return err
	}
	g := Golden{OperatorCommit: commit, Ring: ring, Case: filepath.Base(caseDir), Collectors: extra.Collectors}
	for _, r := range routes(scrapeConfigs, extra.Collectors) {
		got, err := get(addr, r.Path, r.Accept)
		if err != nil {
			return err
		}
		g.Routes = append(g.Routes, got)
	}
	// After the routes (and so after /metrics): the routes' golden stays as it was.
	pages, err := debugPages(addr, scrapeConfigs, extra.Collectors, cfg.AllocationStrategy == "least-weighted")
	if err != nil {
		return err
	}
	g.Pages = pages
	b, err := json.MarshalIndent(g, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(out, append(b, '\n'), 0o644)
}

// targetSets runs each job's static and file discovery the way Prometheus' discovery manager
// would hand them over: static groups in order, then the groups of each file_sd config.
func targetSets(ctx context.Context, scs []*promconfig.ScrapeConfig) (map[string][]*targetgroup.Group, error) {
	tsets := map[string][]*targetgroup.Group{}
	for _, sc := range scs {
		groups := []*targetgroup.Group{}
		for _, sdc := range sc.ServiceDiscoveryConfigs {
			switch c := sdc.(type) {
			case discovery.StaticConfig:
				groups = append(groups, c...)
			case *file.SDConfig:
				fg, err := fileGroups(ctx, c)
				if err != nil {
					return nil, err
				}
				groups = append(groups, fg...)
			default:
				return nil, fmt.Errorf("job %q: discovery %T is not part of the corpus", sc.JobName, sdc)
			}
		}
		tsets[sc.JobName] = groups
	}
	return tsets, nil
}

func fileGroups(ctx context.Context, c *file.SDConfig) ([]*targetgroup.Group, error) {
	reg := prometheus.NewRegistry()
	refresh := discovery.NewRefreshMetrics(reg)
	metrics := c.NewDiscovererMetrics(reg, refresh)
	if err := metrics.Register(); err != nil {
		return nil, err
	}
	defer metrics.Unregister()
	disc, err := file.NewDiscovery(c, slog.New(slog.NewTextHandler(io.Discard, nil)), metrics)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	ch := make(chan []*targetgroup.Group, 16)
	go disc.Run(ctx, ch)
	// One message per file on the first read; group sources name the file and index.
	bySource := map[string]*targetgroup.Group{}
	deadline := time.After(2 * time.Second)
	for {
		select {
		case gs := <-ch:
			for _, g := range gs {
				bySource[g.Source] = g
			}
		case <-deadline:
			keys := make([]string, 0, len(bySource))
			for k := range bySource {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			out := []*targetgroup.Group{}
			for _, k := range keys {
				if len(bySource[k].Targets) > 0 {
					out = append(out, bySource[k])
				}
			}
			return out, nil
		}
	}
}

func routes(scs []*promconfig.ScrapeConfig, collectors []string) []Route {
	rs := []Route{
		{Path: "/jobs"},
		{Path: "/jobs", Accept: "text/html"},
		{Path: "/scrape_configs"},
		{Path: "/scrape_configs", Accept: "text/html"},
		{Path: "/livez"},
		{Path: "/readyz"},
		{Path: "/no-such-route"},
		{Path: "/jobs/no-such-job/targets"},
		{Path: "/jobs/no-such-job/targets?collector_id=nobody"},
	}
	for _, sc := range scs {
		j := "/jobs/" + url.QueryEscape(sc.JobName) + "/targets"
		rs = append(rs, Route{Path: j})
		for _, c := range collectors {
			rs = append(rs, Route{Path: j + "?collector_id=" + url.QueryEscape(c)})
		}
		rs = append(rs, Route{Path: j + "?collector_id=nobody"})
		if len(collectors) > 1 {
			rs = append(rs, Route{Path: j + "?collector_id=" + url.QueryEscape(collectors[1]) + "&collector_id=" + url.QueryEscape(collectors[0])})
		}
		if strings.Contains(sc.JobName, "/") {
			rs = append(rs, Route{Path: "/jobs/" + sc.JobName + "/targets"})
		}
	}
	// Last, so that it sees every request above in http_duration_seconds.
	rs = append(rs, Route{Path: "/metrics"})
	return rs
}

func get(addr, path, accept string) (Route, error) {
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return Route{}, err
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Route{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return Route{}, err
	}
	r := Route{Path: path, Accept: accept, Status: resp.StatusCode, ContentType: resp.Header.Get("Content-Type"), Body: string(b)}
	switch {
	case accept == "text/html":
		// The pages differ by design; only that they are pages is compared.
		r.Body = ""
	case path == "/metrics":
		r.Body = allocatorMetrics(r.Body)
	case strings.Contains(path, "collector_id=") && resp.StatusCode == http.StatusOK:
		r.Body = sortedGroups(r.Body)
	case strings.HasPrefix(path, "/jobs/") && resp.StatusCode == http.StatusOK:
		r.Body = sortedCollectors(r.Body)
	}
	return r, nil
}

// allocatorMetrics keeps the allocator's own families and blanks the values that are timings,
// so that a regeneration changes the golden only when the Go allocator's answer does.
func allocatorMetrics(body string) string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		name := strings.TrimPrefix(strings.TrimPrefix(line, "# HELP "), "# TYPE ")
		if !strings.HasPrefix(name, "opentelemetry_allocator_") {
			continue
		}
		if !strings.HasPrefix(line, "#") && (strings.Contains(line, "duration_seconds") || strings.Contains(line, "time_to_allocate")) {
			if i := strings.LastIndexByte(line, ' '); i > 0 {
				line = line[:i] + " 0"
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n") + "\n"
}

// sortedCollectors orders the groups of every collector in a job's answer.
func sortedCollectors(body string) string {
	var all map[string]struct {
		Link    string          `json:"_link"`
		Targets json.RawMessage `json:"targets"`
	}
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		return body
	}
	for c, v := range all {
		v.Targets = json.RawMessage(strings.TrimSuffix(sortedGroups(string(v.Targets)), "\n"))
		all[c] = v
	}
	b, err := json.Marshal(all)
	if err != nil {
		return body
	}
	return string(b) + "\n"
}

// sortedGroups orders an HTTP SD array (the Go allocator lists it in map order).
func sortedGroups(body string) string {
	var groups []json.RawMessage
	if err := json.Unmarshal([]byte(body), &groups); err != nil {
		return body
	}
	sort.Slice(groups, func(i, j int) bool { return string(groups[i]) < string(groups[j]) })
	b, err := json.Marshal(groups)
	if err != nil {
		return body
	}
	return string(b) + "\n"
}

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func waitReady(addr string) error {
	for range 100 {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("the Go server on %s never became ready", addr)
}
