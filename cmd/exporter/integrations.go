package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/infercast/infercast/internal/exporterdemo"
	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/metrics/cost"
	"github.com/infercast/infercast/pkg/metrics/gpu"
	"github.com/infercast/infercast/pkg/metrics/kube"
	"github.com/infercast/infercast/pkg/metrics/spot"
)

// actor is one long-running part of the exporter for the run group.
type actor struct {
	name string
	run  func(ctx context.Context) error
}

// integrations wires the subpackages' collectors (Kubernetes discovery,
// spot watchers, spend) to the scrape pipeline. It returns the actors to
// run; collectors are added to set.
type integrations struct {
	log     *slog.Logger
	exp     *metrics.Exporter
	set     *metrics.CollectorSet
	actors  []actor
	closers []func()

	mu         sync.Mutex
	gpus       map[string]float64 // target name → GPUs it holds (pods: limits; demo: replicas)
	kubeTeams  map[string]string  // model → team from pod labels
	nodeLabels func() map[string]string
	// synced reports whether discovery has listed the node's pods (nil
	// without Kubernetes); /readyz waits for it.
	synced   func() bool
	podNames gpu.PodResolver
	// lastKube is discovery's last target list, resolved again on reload.
	lastKube []kube.Target
}

// spotFlags are the spot watchers' command-line settings.
type spotFlags struct{ endpoint, pool string }

func setupIntegrations(ctx context.Context, cfg metrics.Config, demo bool, sf spotFlags, exp *metrics.Exporter, set *metrics.CollectorSet, log *slog.Logger) (*integrations, error) {
	in := &integrations{log: log, exp: exp, set: set, gpus: map[string]float64{}, kubeTeams: map[string]string{}}
	ic := cfg.Integrations
	if ic.Kubernetes.Enabled {
		if err := in.kubernetes(ic.Kubernetes); err != nil {
			return nil, err
		}
	}
	providers := ic.Spot.Providers
	endpoint := sf.endpoint
	if demo && len(providers) == 0 {
		// A fake AWS metadata service on 127.0.0.1 with no interruption
		// announced, so the spot families are live in the demo.
		ep, stop, err := exporterdemo.FakeIMDS(ctx)
		if err != nil {
			return nil, err
		}
		in.closers = append(in.closers, stop)
		providers, endpoint = []string{"aws"}, ep
	}
	for _, name := range providers {
		p, err := spot.ParseProvider(name)
		if err != nil {
			return nil, err
		}
		src, err := spot.NewSource(p, endpoint)
		if err != nil || src == nil {
			return nil, err
		}
		node := nodeName(ic.Kubernetes)
		w, err := spot.NewWatcher(spot.Options{Source: src, Node: node, Pool: sf.pool, Logger: log.With("component", "spot")})
		if err != nil {
			return nil, err
		}
		set.Add("spot_"+name, w)
		in.actors = append(in.actors, actor{"spot " + name, w.Run})
	}
	var cat *cost.Catalogue
	switch {
	case ic.Cost.CatalogueFile != "":
		f, err := os.Open(ic.Cost.CatalogueFile)
		if err != nil {
			return nil, fmt.Errorf("integrations.cost.catalogue_file: %w", err)
		}
		cat, err = cost.ParseCatalogue(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("integrations.cost.catalogue_file: %w", err)
		}
	case demo:
		cat = cost.DemoCatalogue()
	}
	if cat != nil {
		if in.nodeLabels == nil {
			labels := exporterdemo.NodeLabels()
			if !demo {
				labels = nil // outside Kubernetes and the demo, the node is unknown: unpriced
			}
			in.nodeLabels = func() map[string]string { return labels }
		}
		teams := ic.Cost.Teams
		if demo && len(teams) == 0 {
			teams = exporterdemo.Teams()
		}
		set.Add("cost", cost.NewCollector(cost.UsageFunc(func(context.Context) ([]cost.Usage, error) {
			return in.usage(teams), nil
		}), cat, 5*time.Second, log.With("component", "cost")))
	}
	return in, nil
}

// ready reports whether the integrations have their first state.
func (in *integrations) ready() bool { return in.synced == nil || in.synced() }

// setGPUs records the GPUs that targets hold (the demo: one per replica).
func (in *integrations) setGPUs(m map[string]float64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	for k, v := range m {
		in.gpus[k] = v
	}
}

// usage joins the exporter's per-model request rates with pod placement.
func (in *integrations) usage(teams map[string]string) []cost.Usage {
	in.mu.Lock()
	defer in.mu.Unlock()
	node := in.nodeLabels()
	var out []cost.Usage
	for _, m := range in.exp.Models() {
		u := cost.Usage{Model: m.Model, RequestsPerSecond: m.RequestsPerSecond, Team: teams[m.Model]}
		if u.Team == "" {
			u.Team = in.kubeTeams[m.Model]
		}
		for _, t := range m.Targets {
			gpus, ok := in.gpus[t.Name]
			if !ok && t.Source != metrics.SourceKubernetes {
				gpus = 1 // a static target: one GPU unless known
			}
			u.Replicas = append(u.Replicas, cost.Replica{NodeLabels: node, GPUs: gpus})
		}
		out = append(out, u)
	}
	return out
}

// nodeName is the node this exporter runs on: configured, else NODE_NAME
// from the downward API (the chart sets it), else "".
func nodeName(kc metrics.KubernetesConfig) string {
	if kc.NodeName != "" {
		return kc.NodeName
	}
	return os.Getenv("NODE_NAME")
}

func (in *integrations) kubernetes(kc metrics.KubernetesConfig) error {
	rc, err := restConfig(kc.Kubeconfig)
	if err != nil {
		return fmt.Errorf("integrations.kubernetes: %w", err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return fmt.Errorf("integrations.kubernetes: %w", err)
	}
	node := nodeName(kc)
	if node == "" {
		return errors.New("integrations.kubernetes.node_name: required (or NODE_NAME from the downward API)")
	}
	d, err := kube.New(kube.Options{
		Client: client, Node: node, Logger: in.log.With("component", "kube"),
		OnTargets:   in.onKubeTargets,
		OnColdStart: in.onColdStart,
	})
	if err != nil {
		return err
	}
	in.nodeLabels = d.NodeLabels
	in.synced = d.HasSynced
	in.podNames = d
	in.set.Add("kube", d)
	in.actors = append(in.actors, actor{"kube", d.Run})
	return nil
}

// onColdStart records a pod start or container restart in the exporter's
// cold-start families, source = the kind (pod_start, container_restart).
func (in *integrations) onColdStart(cs kube.ColdStart) {
	in.exp.RecordColdStart(cs.Model, string(cs.Kind), cs.Duration)
}

func (in *integrations) onKubeTargets(ts []kube.Target) {
	targets := make([]metrics.Target, 0, len(ts))
	gpus := map[string]float64{}
	teams := map[string]string{}
	for _, kt := range ts {
		d, err := in.exp.ResolveDialect(kt.Dialect, kt.Mapping)
		if err != nil {
			in.log.Warn("pod's dialect annotations are unusable; not scraped", "namespace", kt.Namespace, "pod", kt.Pod,
				"dialect", kt.Dialect, "mapping", kt.Mapping, "err", err)
			continue
		}
		name := kt.Namespace + "/" + kt.Pod
		targets = append(targets, metrics.Target{Name: name, URL: kt.URL, Dialect: d, Model: kt.Model,
			MaxBatchSize: kt.MaxBatchSize, Timeout: metrics.DefaultScrapeTimeout})
		gpus[name] = kt.GPUs
		if kt.Team != "" && kt.Model != "" {
			teams[kt.Model] = kt.Team
		}
	}
	in.mu.Lock()
	for name, g := range gpus {
		in.gpus[name] = g
	}
	in.kubeTeams = teams
	in.lastKube = ts
	in.mu.Unlock()
	in.exp.SetTargets(metrics.SourceKubernetes, targets)
}

// refreshKube resolves the discovered pods' dialects again, after a config
// reload changed the generic mappings they name.
func (in *integrations) refreshKube() {
	in.mu.Lock()
	ts := in.lastKube
	in.mu.Unlock()
	if ts != nil {
		in.onKubeTargets(ts)
	}
}

func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		return clientcmd.BuildConfigFromFlags("", kubeconfig)
	}
	return rest.InClusterConfig()
}
