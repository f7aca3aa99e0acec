// Command k8s-sd-gen runs Prometheus' own Kubernetes service discovery (the exported role
// discoverers of github.com/prometheus/prometheus/discovery/kubernetes, at the version the
// OpenTelemetry Operator's Go target allocator links) over the objects in corpus.yaml, served by
// client-go's fake clientset through ordinary informers, and writes every discovered target to
// vectors.json.
//
// The Rust test allocator-service/tests/k8s_sd_vectors.rs builds the same targets from the same
// corpus with allocator_service::k8s::meta and requires them to be equal. Nothing here is computed
// by our Rust code, and no discovery logic is restated here: labels come from Prometheus.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	prom "github.com/prometheus/prometheus/discovery/kubernetes"
	"github.com/prometheus/prometheus/discovery/targetgroup"
	apiv1 "k8s.io/api/core/v1"
	disv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/cache"
)

// The Prometheus module version go.mod pins; written into vectors.json so a reader knows which
// discovery produced the targets.
const prometheusVersion = "v0.314.0"

// Index names the discoverers look their informers' indexers up by (Prometheus' Discovery
// registers indexers under these names; the role constructors take the informers ready-made).
const (
	nodeIndex    = "node"
	podIndex     = "pod"
	serviceIndex = "service"
)

// selectors are the label selectors of a Kubernetes SD `selectors` list, one per kind of
// object; empty selects everything.
type selectors struct{ pod, service, endpointslice, endpoints, node string }

// The selector variants, in the string form Prometheus passes to the API server. The Rust test
// reads the same strings from vectors.json.
var (
	podSelectors     = selectors{pod: "app.kubernetes.io/name in (web, db, node-exporter),pod-template-hash!=x,!statefulset.kubernetes.io/pod-name", node: "topology.kubernetes.io/zone in (eu-west-1a)"}
	serviceSelectors = selectors{service: "app.kubernetes.io/name"}
	sliceSelectors   = selectors{
		endpointslice: "kubernetes.io/service-name,endpointslice.kubernetes.io/managed-by!=prometheus-operator",
		service:       "!app.kubernetes.io/part-of",
		pod:           "app.kubernetes.io/name notin (db)",
	}
	nodeSelectors      = selectors{node: "kubernetes.io/hostname,  example.com/gpu-type == a100"}
	endpointsSelectors = selectors{
		endpoints: "app.kubernetes.io/name,app.kubernetes.io/name notin (api)",
		service:   "!app.kubernetes.io/part-of",
		pod:       "app.kubernetes.io/name notin (db)",
	}
)

type vectors struct {
	Prometheus string                         `json:"prometheus"`
	Corpus     string                         `json:"corpus"`
	Roles      map[string][]map[string]string `json:"roles"`
	// The label selectors of each variant that has any, by kind (pod, service, endpointslice,
	// endpoints, node).
	Selectors map[string]map[string]string `json:"selectors"`
	// Prometheus' verdict on each Kubernetes SD entry of sd-configs.txt (configs.go).
	Configs []configVector `json:"configs"`
}

func main() {
	corpus := flag.String("corpus", "corpus.yaml", "Kubernetes objects (multi-document YAML)")
	out := flag.String("out", "vectors.json", "where to write the targets")
	configs := flag.String("configs", "sd-configs.txt", "Kubernetes SD entries (configs.go)")
	flag.Parse()

	objs, err := load(*corpus)
	if err != nil {
		log.Fatalf("k8s-sd-gen: %s: %v", *corpus, err)
	}
	client := fake.NewSimpleClientset(objs...)
	count := map[string]int{}
	for _, o := range objs {
		switch o.(type) {
		case *apiv1.Pod:
			count["pod"]++
		case *apiv1.Service:
			count["service"]++
		case *disv1.EndpointSlice:
			count["endpointslice"]++
		case *apiv1.Endpoints:
			count["endpoints"]++
		case *apiv1.Node:
			count["node"]++
		}
	}

	v := vectors{Prometheus: prometheusVersion, Corpus: "corpus.yaml", Roles: map[string][]map[string]string{}, Selectors: map[string]map[string]string{}}
	for _, role := range []struct {
		name     string
		kind     string
		withNode bool
		sel      selectors
	}{
		{"pod", "pod", false, selectors{}},
		{"pod+node", "pod", true, selectors{}},
		{"service", "service", false, selectors{}},
		{"endpointslice", "endpointslice", false, selectors{}},
		{"endpointslice+node", "endpointslice", true, selectors{}},
		{"node", "node", false, selectors{}},
		{"pod+selectors", "pod", true, podSelectors},
		{"service+selectors", "service", false, serviceSelectors},
		{"endpointslice+selectors", "endpointslice", false, sliceSelectors},
		{"node+selectors", "node", false, nodeSelectors},
		{"endpoints", "endpoints", false, selectors{}},
		{"endpoints+node", "endpoints", true, selectors{}},
		{"endpoints+selectors", "endpoints", false, endpointsSelectors},
	} {
		want := count[role.kind]
		if role.sel != (selectors{}) {
			want = -1 // fewer objects listed: read until quiet after the informers synced
		}
		targets, err := discover(client, role.kind, role.withNode, want, role.sel)
		if err != nil {
			log.Fatalf("k8s-sd-gen: role %s: %v", role.name, err)
		}
		v.Roles[role.name] = targets
		if role.sel != (selectors{}) {
			m := map[string]string{}
			for kind, label := range map[string]string{"pod": role.sel.pod, "service": role.sel.service, "endpointslice": role.sel.endpointslice, "endpoints": role.sel.endpoints, "node": role.sel.node} {
				if label != "" {
					m[kind] = label
				}
			}
			v.Selectors[role.name] = m
		}
	}

	if v.Configs, err = configVectors(*configs); err != nil {
		log.Fatalf("k8s-sd-gen: %v", err)
	}

	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		log.Fatalf("k8s-sd-gen: %v", err)
	}
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		log.Fatalf("k8s-sd-gen: %v", err)
	}
	names := make([]string, 0, len(v.Roles))
	for r := range v.Roles {
		names = append(names, r)
	}
	slices.Sort(names)
	for _, r := range names {
		fmt.Printf("%s: %d targets\n", r, len(v.Roles[r]))
	}
}

// load decodes every document of the corpus with client-go's scheme (no defaulting: the objects
// are what the API would hand out as written).
func load(path string) ([]runtime.Object, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := utilyaml.NewYAMLReader(bufio.NewReader(f))
	var objs []runtime.Object
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(doc, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		switch obj.(type) {
		case *apiv1.Node, *apiv1.Pod, *apiv1.Service, *disv1.EndpointSlice, *apiv1.Endpoints:
		default:
			return nil, fmt.Errorf("document %d: unexpected kind %T", i, obj)
		}
		objs = append(objs, obj)
	}
	return objs, nil
}

// listWatch is an informer's source over the fake clientset; the clientset says it cannot serve
// client-go's watch-list streaming (on by default since v0.35), so the reflector lists and
// watches as against an older API server instead of waiting for a bookmark that never comes.
func listWatch(client kubernetes.Interface, list func(context.Context, metav1.ListOptions) (runtime.Object, error), w func(context.Context, metav1.ListOptions) (watch.Interface, error)) cache.ListerWatcher {
	return cache.ToListWatcherWithWatchListSemantics(&cache.ListWatch{ListWithContextFunc: list, WatchFuncWithContext: w}, client)
}

// discover runs one role's discoverer until it has sent a group for each of the `want` objects
// of its kind and then nothing new for a while, and returns every target of the last group per
// source, each merged with its group's labels (the target's win), sorted.
// want < 0: the selectors list fewer objects than the corpus holds; read until every informer
// synced and nothing new came for a while.
func discover(client kubernetes.Interface, kind string, withNode bool, want int, sel selectors) ([]map[string]string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	core := client.CoreV1()
	// Each informer's list and watch carry its kind's label selector, as Prometheus' Discovery
	// sets ListOptions.LabelSelector; the fake clientset filters the list by it.
	pods := listWatch(client,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel.pod
			return core.Pods("").List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel.pod
			return core.Pods("").Watch(ctx, o)
		})
	services := listWatch(client,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel.service
			return core.Services("").List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel.service
			return core.Services("").Watch(ctx, o)
		})
	slicesLW := listWatch(client,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel.endpointslice
			return client.DiscoveryV1().EndpointSlices("").List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel.endpointslice
			return client.DiscoveryV1().EndpointSlices("").Watch(ctx, o)
		})
	endpointsLW := listWatch(client,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			o.LabelSelector = sel.endpoints
			return core.Endpoints("").List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			o.LabelSelector = sel.endpoints
			return core.Endpoints("").Watch(ctx, o)
		})
	var synced []cache.InformerSynced
	var nodeInf cache.SharedInformer
	if withNode || kind == "node" {
		nodeInf = cache.NewSharedInformer(listWatch(client,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				o.LabelSelector = sel.node
				return core.Nodes().List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				o.LabelSelector = sel.node
				return core.Nodes().Watch(ctx, o)
			}),
			&apiv1.Node{}, 0)
		go nodeInf.Run(ctx.Done())
		synced = append(synced, nodeInf.HasSynced)
	}
	events := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "events"}, []string{"role", "event"})

	var run func(context.Context, chan<- []*targetgroup.Group)
	switch kind {
	case "pod":
		indexers := cache.Indexers{}
		if withNode {
			// The node a pod runs on, so node events re-enqueue its pods.
			indexers[nodeIndex] = func(obj any) ([]string, error) {
				return []string{obj.(*apiv1.Pod).Spec.NodeName}, nil
			}
		}
		inf := cache.NewSharedIndexInformer(pods, &apiv1.Pod{}, 0, indexers)
		d := prom.NewPod(nil, inf, nodeInf, nil, nil, nil, false, false, false, events)
		go inf.Run(ctx.Done())
		synced = append(synced, inf.HasSynced)
		run = d.Run
	case "service":
		inf := cache.NewSharedIndexInformer(services, &apiv1.Service{}, 0, cache.Indexers{})
		d := prom.NewService(nil, inf, nil, events)
		go inf.Run(ctx.Done())
		synced = append(synced, inf.HasSynced)
		run = d.Run
	case "endpointslice":
		indexers := cache.Indexers{
			// The service a slice belongs to, so service events re-enqueue its slices.
			serviceIndex: func(obj any) ([]string, error) {
				s := obj.(*disv1.EndpointSlice)
				name, ok := s.Labels[disv1.LabelServiceName]
				if !ok {
					return nil, nil
				}
				return []string{s.Namespace + "/" + name}, nil
			},
		}
		if withNode {
			// The nodes a slice's endpoints are on, so node events re-enqueue the slice.
			indexers[nodeIndex] = func(obj any) ([]string, error) {
				var nodes []string
				for _, ep := range obj.(*disv1.EndpointSlice).Endpoints {
					switch {
					case ep.TargetRef != nil && ep.TargetRef.Kind == "Node":
						nodes = append(nodes, ep.TargetRef.Name)
					case ep.TargetRef != nil && ep.TargetRef.Kind == "Pod" && ep.NodeName != nil:
						nodes = append(nodes, *ep.NodeName)
					}
				}
				return nodes, nil
			}
		}
		inf := cache.NewSharedIndexInformer(slicesLW, &disv1.EndpointSlice{}, 0, indexers)
		svcInf := cache.NewSharedInformer(services, &apiv1.Service{}, 0)
		podInf := cache.NewSharedInformer(pods, &apiv1.Pod{}, 0)
		d := prom.NewEndpointSlice(nil, inf, svcInf, podInf, nodeInf, nil, nil, nil, false, false, false, events)
		go inf.Run(ctx.Done())
		go svcInf.Run(ctx.Done())
		go podInf.Run(ctx.Done())
		synced = append(synced, inf.HasSynced, svcInf.HasSynced, podInf.HasSynced)
		run = d.Run
	case "endpoints":
		indexers := cache.Indexers{
			// The pods an Endpoints object's ready addresses target, so pod phase changes
			// re-enqueue it.
			podIndex: func(obj any) ([]string, error) {
				var pods []string
				for _, ss := range obj.(*apiv1.Endpoints).Subsets {
					for _, a := range ss.Addresses {
						if a.TargetRef != nil && a.TargetRef.Kind == "Pod" {
							pods = append(pods, a.TargetRef.Namespace+"/"+a.TargetRef.Name)
						}
					}
				}
				return pods, nil
			},
		}
		if withNode {
			// The nodes its ready addresses are on, so node events re-enqueue it.
			indexers[nodeIndex] = func(obj any) ([]string, error) {
				var nodes []string
				for _, ss := range obj.(*apiv1.Endpoints).Subsets {
					for _, a := range ss.Addresses {
						switch {
						case a.TargetRef != nil && a.TargetRef.Kind == "Pod" && a.NodeName != nil:
							nodes = append(nodes, *a.NodeName)
						case a.TargetRef != nil && a.TargetRef.Kind == "Node":
							nodes = append(nodes, a.TargetRef.Name)
						}
					}
				}
				return nodes, nil
			}
		}
		inf := cache.NewSharedIndexInformer(endpointsLW, &apiv1.Endpoints{}, 0, indexers)
		svcInf := cache.NewSharedInformer(services, &apiv1.Service{}, 0)
		podInf := cache.NewSharedInformer(pods, &apiv1.Pod{}, 0)
		d := prom.NewEndpoints(nil, inf, svcInf, podInf, nodeInf, nil, nil, nil, false, false, false, events)
		go inf.Run(ctx.Done())
		go svcInf.Run(ctx.Done())
		go podInf.Run(ctx.Done())
		synced = append(synced, inf.HasSynced, svcInf.HasSynced, podInf.HasSynced)
		run = d.Run
	case "node":
		d := prom.NewNode(nil, nodeInf, events)
		run = d.Run
	default:
		return nil, fmt.Errorf("unknown kind %q", kind)
	}

	ch := make(chan []*targetgroup.Group)
	go run(ctx, ch)
	groups := map[string]*targetgroup.Group{}
	const quiet = 500 * time.Millisecond
	deadline := time.After(60 * time.Second)
	for {
		select {
		case gs := <-ch:
			for _, g := range gs {
				groups[g.Source] = g
			}
			continue
		case <-time.After(quiet):
		case <-deadline:
			return nil, fmt.Errorf("%d of %d groups after 60 s", len(groups), want)
		}
		// A node without an address gives no group at all (buildNode returns nil), so the node
		// role, like a run with selectors, is read until quiet after its informers synced
		// instead of to a count.
		allSynced := true
		for _, s := range synced {
			allSynced = allSynced && s()
		}
		if (want >= 0 && len(groups) >= want) || ((want < 0 || kind == "node") && allSynced) {
			break
		}
	}
	if want >= 0 && kind != "node" && len(groups) != want {
		return nil, fmt.Errorf("%d groups for %d objects", len(groups), want)
	}

	var out []map[string]string
	for _, g := range groups {
		for _, t := range g.Targets {
			m := map[string]string{}
			for k, v := range g.Labels.Merge(t) {
				m[string(k)] = string(v)
			}
			out = append(out, m)
		}
	}
	slices.SortFunc(out, compareTargets)
	for i := 1; i < len(out); i++ {
		if compareTargets(out[i-1], out[i]) == 0 {
			// Kept: Prometheus does produce equal targets (from different groups); recorded so
			// a reader of vectors.json is not surprised.
			log.Printf("k8s-sd-gen: %s: duplicate target %s", kind, out[i][model.AddressLabel])
		}
	}
	if out == nil {
		out = []map[string]string{}
	}
	return out, nil
}

// compareTargets orders by address, then by the whole label set compared as its sorted
// (name, value) pairs, bytewise (the order of Rust's BTreeMap<String, String>).
func compareTargets(a, b map[string]string) int {
	if c := strings.Compare(a[model.AddressLabel], b[model.AddressLabel]); c != 0 {
		return c
	}
	ka, kb := sortedKeys(a), sortedKeys(b)
	for i := 0; i < len(ka) && i < len(kb); i++ {
		if c := strings.Compare(ka[i], kb[i]); c != 0 {
			return c
		}
		if c := strings.Compare(a[ka[i]], b[kb[i]]); c != 0 {
			return c
		}
	}
	return len(ka) - len(kb)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
