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
	serviceIndex = "service"
)

type vectors struct {
	Prometheus string                         `json:"prometheus"`
	Corpus     string                         `json:"corpus"`
	Roles      map[string][]map[string]string `json:"roles"`
}

func main() {
	corpus := flag.String("corpus", "corpus.yaml", "Kubernetes objects (multi-document YAML)")
	out := flag.String("out", "vectors.json", "where to write the targets")
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
		case *apiv1.Node:
			count["node"]++
		}
	}

	v := vectors{Prometheus: prometheusVersion, Corpus: "corpus.yaml", Roles: map[string][]map[string]string{}}
	for _, role := range []struct {
		name     string
		kind     string
		withNode bool
	}{
		{"pod", "pod", false},
		{"pod+node", "pod", true},
		{"service", "service", false},
		{"endpointslice", "endpointslice", false},
		{"endpointslice+node", "endpointslice", true},
		{"node", "node", false},
	} {
		targets, err := discover(client, role.kind, role.withNode, count[role.kind])
		if err != nil {
			log.Fatalf("k8s-sd-gen: role %s: %v", role.name, err)
		}
		v.Roles[role.name] = targets
	}

	data, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		log.Fatalf("k8s-sd-gen: %v", err)
	}
	if err := os.WriteFile(*out, append(data, '\n'), 0o644); err != nil {
		log.Fatalf("k8s-sd-gen: %v", err)
	}
	for _, r := range []string{"pod", "pod+node", "service", "endpointslice", "endpointslice+node"} {
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
		case *apiv1.Node, *apiv1.Pod, *apiv1.Service, *disv1.EndpointSlice:
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
func discover(client kubernetes.Interface, kind string, withNode bool, want int) ([]map[string]string, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	core := client.CoreV1()
	pods := listWatch(client,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.Pods("").List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return core.Pods("").Watch(ctx, o)
		})
	services := listWatch(client,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return core.Services("").List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return core.Services("").Watch(ctx, o)
		})
	slicesLW := listWatch(client,
		func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
			return client.DiscoveryV1().EndpointSlices("").List(ctx, o)
		},
		func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			return client.DiscoveryV1().EndpointSlices("").Watch(ctx, o)
		})
	var nodeInf cache.SharedInformer
	if withNode || kind == "node" {
		nodeInf = cache.NewSharedInformer(listWatch(client,
			func(ctx context.Context, o metav1.ListOptions) (runtime.Object, error) {
				return core.Nodes().List(ctx, o)
			},
			func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
				return core.Nodes().Watch(ctx, o)
			}),
			&apiv1.Node{}, 0)
		go nodeInf.Run(ctx.Done())
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
		run = d.Run
	case "service":
		inf := cache.NewSharedIndexInformer(services, &apiv1.Service{}, 0, cache.Indexers{})
		d := prom.NewService(nil, inf, nil, events)
		go inf.Run(ctx.Done())
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
		// role is read until quiet after its informer synced instead of to a count.
		if len(groups) >= want || (kind == "node" && nodeInf.HasSynced()) {
			break
		}
	}
	if kind != "node" && len(groups) != want {
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
