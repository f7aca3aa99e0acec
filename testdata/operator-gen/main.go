// Command operator-gen feeds a corpus of ServiceMonitor, PodMonitor, Probe and ScrapeConfig
// objects to prometheus-operator's own ResourceSelector and ConfigGenerator, configured the way
// the OpenTelemetry Operator's target allocator configures them (its watcher/promOperator.go at
// the pinned release), and writes, per case, the scrape configs the generator produces and, for
// synthetic discovered targets, the label sets the Go allocator gets after seeding the
// scrape-layer labels and applying the job's relabel_configs with Prometheus' relabel package.
//
// The Rust tests (allocator-service/tests/operator_vectors.rs) require the service to give the
// same job names and the same final label sets. Nothing here is computed by our Rust code.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/debug"
	"sort"
	"strings"

	monitoringv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	monitoringv1alpha1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1alpha1"
	"github.com/prometheus-operator/prometheus-operator/pkg/assets"
	"github.com/prometheus-operator/prometheus-operator/pkg/operator"
	"github.com/prometheus-operator/prometheus-operator/pkg/prometheus"
	prometheusgoclient "github.com/prometheus/client_golang/prometheus"
	commonconfig "github.com/prometheus/common/config"
	"github.com/prometheus/common/model"
	promconfig "github.com/prometheus/prometheus/config"
	"github.com/prometheus/prometheus/discovery"
	kubeDiscovery "github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/relabel"
	yaml2 "gopkg.in/yaml.v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/tools/cache"
	"sigs.k8s.io/yaml"
)

// Pins, written into the output so a reader knows what produced it. They must agree with go.mod
// (checked in main) and with the OpenTelemetry Operator release whose allocator we replace.
const (
	otelOperatorRelease = "v0.158.0"
	otelOperatorCommit  = "7fb513848c6d4ea79b277352fc13ce11eb734b1a"
)

// Case is one corpus file.
type Case struct {
	Name string `json:"name"`
	// The allocator's prometheus_cr section (selectors as the Go allocator's config spells them).
	PrometheusCR PromCR `json:"prometheus_cr"`
	// The allocator's namespace (the Prometheus object's namespace for the generator).
	CollectorNamespace string             `json:"collector_namespace"`
	Namespaces         []Namespace        `json:"namespaces"`
	Secrets            []corev1.Secret    `json:"secrets,omitempty"`
	ConfigMaps         []corev1.ConfigMap `json:"configmaps,omitempty"`
	Resources          []json.RawMessage  `json:"resources"`
	// Resources the Rust service refuses ("Kind/namespace/name" → the field it names), because
	// it does not translate a field they set. Not read here: the generator's output for them is
	// recorded like any other, and the Rust test requires the refusal.
	UnsupportedByService map[string]string `json:"unsupported_by_service,omitempty"`
	// Synthetic discovered targets per Kubernetes SD role, as Prometheus' discovery would give
	// them (one label set per target, group labels merged).
	Targets map[string][]map[string]string `json:"targets"`
}

type PromCR struct {
	ScrapeInterval                  string                     `json:"scrape_interval,omitempty"`
	ServiceMonitorSelector          *metav1.LabelSelector      `json:"service_monitor_selector,omitempty"`
	ServiceMonitorNamespaceSelector *metav1.LabelSelector      `json:"service_monitor_namespace_selector,omitempty"`
	PodMonitorSelector              *metav1.LabelSelector      `json:"pod_monitor_selector,omitempty"`
	PodMonitorNamespaceSelector     *metav1.LabelSelector      `json:"pod_monitor_namespace_selector,omitempty"`
	ScrapeConfigSelector            *metav1.LabelSelector      `json:"scrape_config_selector,omitempty"`
	ScrapeConfigNamespaceSelector   *metav1.LabelSelector      `json:"scrape_config_namespace_selector,omitempty"`
	ProbeSelector                   *metav1.LabelSelector      `json:"probe_selector,omitempty"`
	ProbeNamespaceSelector          *metav1.LabelSelector      `json:"probe_namespace_selector,omitempty"`
	ScrapeClasses                   []monitoringv1.ScrapeClass `json:"scrape_classes,omitempty"`
	// The allocator's namespace lists: its informers (for the resources and for namespaces)
	// watch only the allowed namespaces, or every namespace but the denied ones.
	AllowNamespaces []string `json:"allow_namespaces,omitempty"`
	DenyNamespaces  []string `json:"deny_namespaces,omitempty"`
}

// watched restates what the allocator's informers see (config.GetAllowDenyLists with
// prometheus-operator's informer factories and namespace list-watch): a namespace is watched
// when allowed (no list: all) and not denied.
func (p PromCR) watched(ns string) bool {
	if len(p.AllowNamespaces) > 0 && !contains(p.AllowNamespaces, ns) {
		return false
	}
	return !contains(p.DenyNamespaces, ns)
}

type Namespace struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
}

// Output, per case.
type Result struct {
	Name string `json:"name"`
	Case Case   `json:"case"`
	// Selected objects per kind (<namespace>/<name>), after the operator's validation.
	Selected map[string][]string `json:"selected"`
	Jobs     []Job               `json:"jobs"`
}

type Job struct {
	JobName string `json:"job_name"`
	// The generated scrape config, as Prometheus' config loader reads it (defaults filled),
	// re-marshalled to JSON through YAML.
	ScrapeConfig any `json:"scrape_config"`
	// The same with secret values shown, as the Go allocator serves /scrape_configs over mTLS
	// or with allow_insecure_auth_secrets (prometheus/common's config.MarshalSecretValue).
	ScrapeConfigSecrets any `json:"scrape_config_secrets"`
	// Which synthetic targets were fed in: the role and namespaces of each kubernetes_sd_config.
	Discovery []Discovery `json:"discovery"`
	Targets   []Target    `json:"targets"`
}

type Discovery struct {
	Role       string   `json:"role"`
	Namespaces []string `json:"namespaces,omitempty"`
}

type Target struct {
	Discovered map[string]string `json:"discovered"`
	// Final labels after seeding and relabeling; null when relabeling dropped the target.
	Final map[string]string `json:"final"`
}

type Output struct {
	Generator map[string]string `json:"generator"`
	Cases     []Result          `json:"cases"`
}

func main() {
	corpus := flag.String("corpus", "corpus", "folder of case files (*.yaml)")
	out := flag.String("out", "", "output file (stdout when empty)")
	flag.Parse()
	files, err := filepath.Glob(filepath.Join(*corpus, "*.yaml"))
	check(err)
	sort.Strings(files)
	if len(files) == 0 {
		check(fmt.Errorf("no case files in %s", *corpus))
	}
	o := Output{Generator: versions()}
	for _, f := range files {
		text, err := os.ReadFile(f)
		check(err)
		// YAML merge keys (<<) are used in the target lists, which the strict decoder refuses;
		// strictness comes from the JSON decoder instead.
		j, err := yaml.YAMLToJSON(text)
		check(err)
		var c Case
		if err := strictJSON(j, &c); err != nil {
			check(fmt.Errorf("%s: %w", f, err))
		}
		r, err := run(c)
		if err != nil {
			check(fmt.Errorf("%s: %w", f, err))
		}
		o.Cases = append(o.Cases, r)
	}
	b, err := json.MarshalIndent(o, "", " ")
	check(err)
	b = append(b, '\n')
	if *out == "" {
		_, err = os.Stdout.Write(b)
	} else {
		err = os.WriteFile(*out, b, 0o644)
	}
	check(err)
}

func strictJSON(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	return d.Decode(v)
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "operator-gen:", err)
		os.Exit(1)
	}
}

func run(c Case) (Result, error) {
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	objs := []runtime.Object{}
	for _, ns := range c.Namespaces {
		if !c.PrometheusCR.watched(ns.Name) {
			continue
		}
		objs = append(objs, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns.Name, Labels: ns.Labels}})
	}
	for i := range c.Secrets {
		objs = append(objs, &c.Secrets[i])
	}
	for i := range c.ConfigMaps {
		objs = append(objs, &c.ConfigMaps[i])
	}
	client := fake.NewSimpleClientset(objs...)

	// The Prometheus object exactly as the allocator's watcher builds it.
	interval := c.PrometheusCR.ScrapeInterval
	if interval == "" {
		interval = "30s"
	}
	role := monitoringv1.ServiceDiscoveryRole("EndpointSlice")
	all := func(s *metav1.LabelSelector) *metav1.LabelSelector {
		// The allocator's defaults: every namespace selector is {} unless configured.
		if s == nil {
			return &metav1.LabelSelector{}
		}
		return s
	}
	prom := &monitoringv1.Prometheus{
		ObjectMeta: metav1.ObjectMeta{Namespace: c.CollectorNamespace},
		Spec: monitoringv1.PrometheusSpec{
			CommonPrometheusFields: monitoringv1.CommonPrometheusFields{
				ScrapeInterval:                  monitoringv1.Duration(durationString(interval)),
				PodMonitorSelector:              c.PrometheusCR.PodMonitorSelector,
				PodMonitorNamespaceSelector:     all(c.PrometheusCR.PodMonitorNamespaceSelector),
				ServiceMonitorSelector:          c.PrometheusCR.ServiceMonitorSelector,
				ServiceMonitorNamespaceSelector: all(c.PrometheusCR.ServiceMonitorNamespaceSelector),
				ScrapeConfigSelector:            c.PrometheusCR.ScrapeConfigSelector,
				ScrapeConfigNamespaceSelector:   all(c.PrometheusCR.ScrapeConfigNamespaceSelector),
				ProbeSelector:                   c.PrometheusCR.ProbeSelector,
				ProbeNamespaceSelector:          all(c.PrometheusCR.ProbeNamespaceSelector),
				ServiceDiscoveryRole:            &role,
				ScrapeClasses:                   c.PrometheusCR.ScrapeClasses,
			},
			// The allocator passes its (unset, zero) evaluation interval.
			EvaluationInterval: monitoringv1.Duration("0s"),
		},
	}
	generator, err := prometheus.NewConfigGenerator(logger, prom, prometheus.WithEndpointSliceSupport(), prometheus.WithInlineTLSConfig())
	if err != nil {
		return Result{}, err
	}
	store := assets.NewStoreBuilder(client.CoreV1(), client.CoreV1())
	metrics := operator.NewMetrics(prometheusgoclient.NewRegistry())
	recorder := operator.NewEventRecorderFactory(false)(client, "target-allocator")(prom)

	factory := informers.NewSharedInformerFactory(client, 0)
	nsInformer := factory.Core().V1().Namespaces().Informer()
	stop := make(chan struct{})
	defer close(stop)
	factory.Start(stop)
	if !cache.WaitForCacheSync(stop, nsInformer.HasSynced) {
		return Result{}, fmt.Errorf("namespace informer did not sync")
	}
	selector, err := prometheus.NewResourceSelector(logger, prom, store, nsInformer, metrics, recorder)
	if err != nil {
		return Result{}, err
	}

	var sms []*monitoringv1.ServiceMonitor
	var pms []*monitoringv1.PodMonitor
	var probes []*monitoringv1.Probe
	var scs []*monitoringv1alpha1.ScrapeConfig
	for _, raw := range c.Resources {
		var head metav1.TypeMeta
		if err := json.Unmarshal(raw, &head); err != nil {
			return Result{}, err
		}
		var target any
		switch head.Kind {
		case "ServiceMonitor":
			o := &monitoringv1.ServiceMonitor{}
			sms, target = append(sms, o), o
		case "PodMonitor":
			o := &monitoringv1.PodMonitor{}
			pms, target = append(pms, o), o
		case "Probe":
			o := &monitoringv1.Probe{}
			probes, target = append(probes, o), o
		case "ScrapeConfig":
			o := &monitoringv1alpha1.ScrapeConfig{}
			scs, target = append(scs, o), o
		default:
			return Result{}, fmt.Errorf("unknown kind %q", head.Kind)
		}
		if err := strictJSON(raw, target); err != nil {
			return Result{}, fmt.Errorf("%s: %w", head.Kind, err)
		}
	}

	selected := map[string][]string{}
	watched := c.PrometheusCR.watched
	smSel, err := selector.SelectServiceMonitors(ctx, lister(sms, watched))
	if err != nil {
		return Result{}, err
	}
	pmSel, err := selector.SelectPodMonitors(ctx, lister(pms, watched))
	if err != nil {
		return Result{}, err
	}
	prSel, err := selector.SelectProbes(ctx, lister(probes, watched))
	if err != nil {
		return Result{}, err
	}
	scSel, err := selector.SelectScrapeConfigs(ctx, lister(scs, watched))
	if err != nil {
		return Result{}, err
	}
	smValid, pmValid, prValid, scValid := smSel.ValidResources(), pmSel.ValidResources(), prSel.ValidResources(), scSel.ValidResources()
	selected["ServiceMonitor"] = keys(smValid)
	selected["PodMonitor"] = keys(pmValid)
	selected["Probe"] = keys(prValid)
	selected["ScrapeConfig"] = keys(scValid)

	generated, err := generator.GenerateServerConfiguration(prom, smValid, pmValid, prValid, scValid, store, nil, nil, nil, []string{})
	if err != nil {
		return Result{}, err
	}
	// As the allocator reads it (watcher LoadConfig: gopkg.in/yaml.v2 into promconfig.Config).
	promCfg := &promconfig.Config{}
	if err := yaml2.Unmarshal(generated, promCfg); err != nil {
		return Result{}, fmt.Errorf("generated config does not load: %w\n%s", err, generated)
	}

	r := Result{Name: c.Name, Case: c, Selected: selected}
	for _, sc := range promCfg.ScrapeConfigs {
		job, err := process(sc, c.Targets, c.CollectorNamespace)
		if err != nil {
			return Result{}, fmt.Errorf("job %s: %w", sc.JobName, err)
		}
		r.Jobs = append(r.Jobs, job)
	}
	return r, nil
}

func durationString(s string) string {
	d, err := model.ParseDuration(s)
	check(err)
	return d.String()
}

func keys[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	if len(out) == 0 {
		return []string{}
	}
	return out
}

// lister serves the corpus objects of one kind the way an informer's ListAllByNamespace does,
// for the namespaces the allocator's informers watch.
func lister[T metav1.Object](objs []T, watched func(string) bool) prometheus.ListAllByNamespaceFn {
	return func(namespace string, sel k8slabels.Selector, appendFn cache.AppendFunc) error {
		for _, o := range objs {
			if namespace != "" && o.GetNamespace() != namespace {
				continue
			}
			if !watched(o.GetNamespace()) {
				continue
			}
			if sel.Matches(k8slabels.Set(o.GetLabels())) {
				appendFn(any(o))
			}
		}
		return nil
	}
}

// process runs the Go allocator's per-target work for one job (the allocator running in
// ownNamespace, which Kubernetes SD's own_namespace means) (target/discovery.go,
// processTargetGroups with the relabel-config filter): merge, seed the scrape-layer labels the
// target lacks, apply the job's relabel configs with the sharding rule neutralised.
func process(sc *promconfig.ScrapeConfig, synthetic map[string][]map[string]string, ownNamespace string) (Job, error) {
	scJSON, err := asJSON(sc)
	if err != nil {
		return Job{}, err
	}
	commonconfig.MarshalSecretValue = true
	shownJSON, err := asJSON(sc)
	commonconfig.MarshalSecretValue = false
	if err != nil {
		return Job{}, err
	}
	job := Job{JobName: sc.JobName, ScrapeConfig: scJSON, ScrapeConfigSecrets: shownJSON, Discovery: []Discovery{}, Targets: []Target{}}
	var groups []*targetgroup.Group
	for _, sd := range sc.ServiceDiscoveryConfigs {
		switch d := sd.(type) {
		case *kubeDiscovery.SDConfig:
			namespaces := append([]string{}, d.NamespaceDiscovery.Names...)
			if d.NamespaceDiscovery.IncludeOwnNamespace {
				// Prometheus' discovery adds the namespace it runs in: the allocator's.
				namespaces = append(namespaces, ownNamespace)
			}
			if len(namespaces) == 0 {
				namespaces = nil
			}
			disc := Discovery{Role: strings.ToLower(string(d.Role)), Namespaces: namespaces}
			job.Discovery = append(job.Discovery, disc)
			for _, t := range synthetic[disc.Role] {
				ns := t["__meta_kubernetes_namespace"]
				if len(disc.Namespaces) > 0 && !contains(disc.Namespaces, ns) {
					continue
				}
				ls := model.LabelSet{}
				for k, v := range t {
					ls[model.LabelName(k)] = model.LabelValue(v)
				}
				groups = append(groups, &targetgroup.Group{Targets: []model.LabelSet{ls}})
			}
		case discovery.StaticConfig:
			for _, g := range d {
				groups = append(groups, g)
			}
		default:
			// http_sd, file_sd, ... : no synthetic targets; the job and its config are recorded.
		}
	}
	rcfg := addNoShardingConfig(sc.RelabelConfigs)
	seeds := scrapeConfigSeeds(sc)
	for _, g := range groups {
		for _, t := range g.Targets {
			discovered := map[string]string{}
			for k, v := range g.Labels {
				discovered[string(k)] = string(v)
			}
			for k, v := range t {
				discovered[string(k)] = string(v)
			}
			b := labels.NewBuilder(labels.FromMap(discovered))
			for _, s := range seeds {
				if b.Get(s.Name) == "" {
					b.Set(s.Name, s.Value)
				}
			}
			var final map[string]string
			if relabel.ProcessBuilder(b, rcfg...) {
				final = b.Labels().Map()
			}
			job.Targets = append(job.Targets, Target{Discovered: discovered, Final: final})
		}
	}
	return job, nil
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// asJSON renders a loaded scrape config as JSON through its YAML form (the form the allocator's
// /scrape_configs serves is derived from the same YAML marshalling); secrets stay "<secret>".
func asJSON(sc *promconfig.ScrapeConfig) (any, error) {
	y, err := yaml2.Marshal(sc)
	if err != nil {
		return nil, err
	}
	var v any
	if err := yaml.Unmarshal(y, &v); err != nil {
		return nil, err
	}
	return v, nil
}

// scrapeConfigSeeds and addNoShardingConfig restate the Go allocator's unexported helpers of the
// same names (cmd/otel-allocator/internal/target/discovery.go at the pinned release); the
// allocator's internal packages cannot be imported.
func scrapeConfigSeeds(cfg *promconfig.ScrapeConfig) []labels.Label {
	seeds := []labels.Label{
		{Name: model.JobLabel, Value: cfg.JobName},
		{Name: model.ScrapeIntervalLabel, Value: cfg.ScrapeInterval.String()},
		{Name: model.ScrapeTimeoutLabel, Value: cfg.ScrapeTimeout.String()},
		{Name: model.MetricsPathLabel, Value: cfg.MetricsPath},
		{Name: model.SchemeLabel, Value: cfg.Scheme},
	}
	names := make([]string, 0, len(cfg.Params))
	for k := range cfg.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if v := cfg.Params[k]; len(v) > 0 {
			seeds = append(seeds, labels.Label{Name: model.ParamLabelPrefix + k, Value: v[0]})
		}
	}
	return seeds
}

func addNoShardingConfig(cfg []*relabel.Config) []*relabel.Config {
	noSharding := relabel.DefaultRelabelConfig
	noSharding.Replacement = "true"
	noSharding.TargetLabel = "__tmp_disable_sharding"
	drop := relabel.DefaultRelabelConfig
	drop.Action = relabel.LabelDrop
	drop.Regex = relabel.MustNewRegexp("__tmp_disable_sharding")
	out := append([]*relabel.Config{&noSharding}, cfg...)
	return append(out, &drop)
}

// versions reports the modules this binary was built with, so the output names its upstreams.
func versions() map[string]string {
	v := map[string]string{
		"opentelemetry-operator": otelOperatorRelease + " (" + otelOperatorCommit + ")",
		"go":                     goVersion(),
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		check(fmt.Errorf("no build info"))
	}
	for _, d := range info.Deps {
		switch d.Path {
		case "github.com/prometheus-operator/prometheus-operator", "github.com/prometheus/prometheus",
			"github.com/prometheus/common", "k8s.io/api":
			v[d.Path] = d.Version
		}
	}
	return v
}

func goVersion() string {
	info, _ := debug.ReadBuildInfo()
	return info.GoVersion
}
