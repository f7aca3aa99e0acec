// Command receivercheck reads a running Target Allocator as the OpenTelemetry Collector's
// prometheus receiver does (receiver/prometheusreceiver/targetallocator, manager.sync): it
// fetches /scrape_configs, replaces $(SHARD), unmarshals the body into Prometheus'
// map[string]*config.ScrapeConfig, gives every job the HTTP SD config the receiver builds
// (`/jobs/<query-escaped job>/targets?collector_id=<id>`, refresh 30s, no redirects), sets the
// fallback scrape protocol and runs Validate against the global defaults; then it refreshes every
// HTTP SD URL with Prometheus' own HTTP discovery. With -golden (a golden written by
// conformancegen), the Go allocator's /scrape_configs goes through the same steps and every job
// must come out identical, field by field, to what the receiver makes of ours.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	"github.com/prometheus/common/promslog"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	promhttp "github.com/prometheus/prometheus/discovery/http"
	"go.yaml.in/yaml/v2"
)

type golden struct {
	Routes []struct {
		Path   string `json:"path"`
		Accept string `json:"accept"`
		Body   string `json:"body"`
	} `json:"routes"`
}

func main() {
	base := flag.String("url", "", "the Target Allocator, e.g. http://127.0.0.1:8080")
	collector := flag.String("collector", "", "the collector id the receiver polls as")
	goldenPath := flag.String("golden", "", "conformancegen golden to compare with (optional)")
	flag.Parse()
	n, err := run(*base, *collector, *goldenPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "receivercheck:", err)
		os.Exit(1)
	}
	fmt.Printf("receivercheck: %d jobs accepted, validated and discovered\n", n)
}

func run(base, collector, goldenPath string) (int, error) {
	body, err := get(base + "/scrape_configs")
	if err != nil {
		return 0, err
	}
	ours, err := asReceiver(body, base, collector)
	if err != nil {
		return 0, fmt.Errorf("our /scrape_configs: %w", err)
	}
	if goldenPath != "" {
		if err := compare(goldenPath, ours, base, collector); err != nil {
			return 0, err
		}
	}
	names := make([]string, 0, len(ours))
	for j := range ours {
		names = append(names, j)
	}
	sort.Strings(names)
	for _, j := range names {
		if err := discover(ours[j]); err != nil {
			return 0, fmt.Errorf("job %q: %w", j, err)
		}
	}
	return len(ours), nil
}

// asReceiver is the receiver's getScrapeConfigsResponse and sync, up to Validate.
func asReceiver(body []byte, base, collector string) (map[string]*promconfig.ScrapeConfig, error) {
	body = bytes.ReplaceAll(body, []byte("$(SHARD)"), []byte("0"))
	jobs := map[string]*promconfig.ScrapeConfig{}
	if err := yaml.Unmarshal(body, &jobs); err != nil {
		return nil, err
	}
	for name, sc := range jobs {
		sd := promhttp.SDConfig{RefreshInterval: model.Duration(30 * time.Second)}
		sd.URL = fmt.Sprintf("%s/jobs/%s/targets?collector_id=%s", base, url.QueryEscape(name), collector)
		sd.HTTPClientConfig = commonconfig.DefaultHTTPClientConfig
		sd.HTTPClientConfig.FollowRedirects = false
		sc.ServiceDiscoveryConfigs = discovery.Configs{&sd}
		if sc.ScrapeFallbackProtocol == "" {
			sc.ScrapeFallbackProtocol = promconfig.PrometheusText0_0_4
		}
		if err := sc.Validate(promconfig.DefaultGlobalConfig); err != nil {
			return nil, fmt.Errorf("job %q: %w", name, err)
		}
	}
	return jobs, nil
}

func compare(goldenPath string, ours map[string]*promconfig.ScrapeConfig, base, collector string) error {
	raw, err := os.ReadFile(goldenPath)
	if err != nil {
		return err
	}
	var g golden
	if err := json.Unmarshal(raw, &g); err != nil {
		return err
	}
	for _, r := range g.Routes {
		if r.Path != "/scrape_configs" || r.Accept != "" {
			continue
		}
		theirs, err := asReceiver([]byte(r.Body), base, collector)
		if err != nil {
			return fmt.Errorf("the Go allocator's /scrape_configs: %w", err)
		}
		commonconfig.MarshalSecretValue = true
		for name, sc := range theirs {
			mine, ok := ours[name]
			if !ok {
				return fmt.Errorf("job %q: the Go allocator serves it, we do not", name)
			}
			a, _ := yaml.Marshal(sc)
			b, _ := yaml.Marshal(mine)
			if !bytes.Equal(a, b) {
				return fmt.Errorf("job %q: the receiver reads\n--- Go allocator\n%s\n--- ours\n%s", name, a, b)
			}
		}
		if len(theirs) != len(ours) {
			return fmt.Errorf("the Go allocator serves %d jobs, we %d", len(theirs), len(ours))
		}
		return nil
	}
	return fmt.Errorf("%s has no /scrape_configs answer", goldenPath)
}

// discover runs Prometheus' HTTP discovery once on the job's SD URL, as the receiver's
// discovery manager would.
func discover(sc *promconfig.ScrapeConfig) error {
	sd := sc.ServiceDiscoveryConfigs[0].(*promhttp.SDConfig)
	reg := prometheus.NewRegistry()
	metrics := sd.NewDiscovererMetrics(reg, discovery.NewRefreshMetrics(reg))
	d, err := promhttp.NewDiscovery(sd, discovery.DiscovererOptions{Logger: promslog.NewNopLogger(), Metrics: metrics})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	groups, err := d.Refresh(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", sd.URL, err)
	}
	raw, err := get(sd.URL)
	if err != nil {
		return err
	}
	var answer []json.RawMessage
	if err := json.Unmarshal(raw, &answer); err != nil {
		return err
	}
	if len(groups) != len(answer) {
		return fmt.Errorf("%s: Prometheus read %d groups of %d", sd.URL, len(groups), len(answer))
	}
	return nil
}

func get(u string) ([]byte, error) {
	resp, err := http.Get(u)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}
