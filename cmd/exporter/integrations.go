package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
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
	demo    bool
	// cost is the spend collector; nil when spend is off (no catalogue).
	cost *cost.Collector

	mu sync.Mutex
	// gpus are the GPUs of targets that are no pods (the demo: its
	// replicas), by target name.
	gpus map[string]float64
	// pods are discovery's targets by target name (namespace/pod), those
	// the exporter cannot scrape (an unusable dialect) included: they hold
	// their GPUs all the same.
	pods map[string]kube.Target
	// node is this exporter's node ("" without Kubernetes): every target
	// it reports runs there.
	node       string
	nodeLabels func() map[string]string
	// synced reports whether discovery has listed the node's pods (nil
	// without Kubernetes); /readyz waits for it.
	synced   func() bool
	podNames gpu.PodResolver
	// lastKube is discovery's last target list, resolved again on reload.
	lastKube []kube.Target
	// teams are the showback teams by model (integrations.cost.teams).
	teams map[string]string
}

// spotFlags are the spot watchers' command-line settings.
type spotFlags struct{ endpoint, pool string }

func setupIntegrations(ctx context.Context, cfg metrics.Config, demo bool, sf spotFlags, exp *metrics.Exporter, set *metrics.CollectorSet, log *slog.Logger) (*integrations, error) {
	in := &integrations{log: log, exp: exp, set: set, demo: demo, gpus: map[string]float64{}, pods: map[string]kube.Target{}}
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
	cat, teams, err := costSettings(ic.Cost, demo)
	if err != nil {
		return nil, err
	}
	if cat != nil {
		if in.nodeLabels == nil {
			labels := exporterdemo.NodeLabels()
			if !demo {
				labels = nil // outside Kubernetes and the demo, the node is unknown: unpriced
			}
			in.nodeLabels = func() map[string]string { return labels }
		}
		in.teams = teams
		in.cost = cost.NewCollector(cost.UsageFunc(func(context.Context) ([]cost.Usage, error) {
			in.mu.Lock()
			teams := in.teams
			in.mu.Unlock()
			return in.usage(teams), nil
		}), cat, 5*time.Second, log.With("component", "cost"))
		set.Add("cost", in.cost)
	}
	return in, nil
}

// costSettings reads the price catalogue and showback teams cc names, the
// demo's where it names none; the catalogue is nil when spend is off.
func costSettings(cc metrics.CostConfig, demo bool) (*cost.Catalogue, map[string]string, error) {
	var cat *cost.Catalogue
	switch {
	case cc.CatalogueFile != "":
		f, err := os.Open(cc.CatalogueFile)
		if err != nil {
			return nil, nil, fmt.Errorf("integrations.cost.catalogue_file: %w", err)
		}
		cat, err = cost.ParseCatalogue(f)
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("integrations.cost.catalogue_file: %s: %w", cc.CatalogueFile, err)
		}
	case demo:
		cat = cost.DemoCatalogue()
	}
	teams := cc.Teams
	if demo && len(teams) == 0 {
		teams = exporterdemo.Teams()
	}
	return cat, teams, nil
}

// loadCost is the reload's OnLoad hook for spend: it reads the new
// config's price catalogue and teams, and returns what applies them. An
// unreadable catalogue fails the reload, the running prices and teams
// kept; so does a reload that would turn spend on or off, which a restart
// does (its collector is registered once).
func (in *integrations) loadCost(cfg metrics.Config) (func(), error) {
	cat, teams, err := costSettings(cfg.Integrations.Cost, in.demo)
	switch {
	case err != nil:
		return nil, err
	case in.cost == nil && cat != nil:
		return nil, errors.New("integrations.cost.catalogue_file: spend was off at start; turning it on takes a restart")
	case in.cost != nil && cat == nil:
		return nil, errors.New("integrations.cost.catalogue_file: removed; turning spend off takes a restart")
	case in.cost == nil:
		return nil, nil
	}
	return func() {
		in.cost.SetCatalogue(cat)
		in.mu.Lock()
		in.teams = teams
		in.mu.Unlock()
	}, nil
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

// unknownModel is the model of a server that has served none yet and
// names none (Target.Model, DefaultModel: a pod's infercast.io/model or
// app.kubernetes.io/name, a static target's model): the label the scraper
// gives series that name no model.
const unknownModel = "unknown"

// usage is one entry per server and model it serves, on this exporter's
// node; the servers are the exporter's targets and the discovered pods, each
// charged for as long as it is known, whatever its scrapes do: a server
// loading its weights, hung or crash-looping holds its GPUs all the same.
// Its models are those it last served (metrics.Exporter.ServedModels, kept
// while its scrapes fail), else the one its pod or config names (Model),
// else the one its series would fall back to (DefaultModel: a pod's
// app.kubernetes.io/name, a TGI target's name), else unknownModel; its
// request rate on each is the last cycle's, 0 when unknown (a failing
// server completes none), so cost per 1,000 requests counts its spend only
// against requests served.
func (in *integrations) usage(teams map[string]string) []cost.Usage {
	rates := map[string]map[string]float64{} // target → model → req/s
	for _, m := range in.exp.Models() {
		for t, r := range m.TargetRates {
			if rates[t] == nil {
				rates[t] = map[string]float64{}
			}
			rates[t][m.Model] = r
		}
	}
	served := in.exp.ServedModels()
	in.mu.Lock()
	defer in.mu.Unlock()
	labels := in.nodeLabels()
	var out []cost.Usage
	add := func(t metrics.Target, models []string) {
		if len(models) == 0 {
			models = []string{cmp.Or(t.Model, t.DefaultModel, unknownModel)}
		}
		for _, model := range models {
			r := in.replicaOf(t, labels)
			r.RequestsPerSecond = rates[t.Name][model]
			out = append(out, cost.Usage{Team: in.teamOf(t, model, teams), Model: model,
				RequestsPerSecond: r.RequestsPerSecond, Replicas: []cost.Replica{r}})
		}
	}
	seen := map[string]bool{}
	for _, tm := range served {
		if _, isPod := in.pods[tm.Target.Name]; !isPod && tm.Target.Source == metrics.SourceKubernetes {
			continue // its pod is gone
		}
		seen[tm.Target.Name] = true
		add(tm.Target, tm.Models)
	}
	// Pods the exporter has no target for: discovered since, or of a
	// dialect it cannot read.
	for _, name := range slices.Sorted(maps.Keys(in.pods)) {
		if !seen[name] {
			pod := in.pods[name]
			add(metrics.Target{Name: name, Model: pod.Model, DefaultModel: pod.DefaultModel, Source: metrics.SourceKubernetes}, nil)
		}
	}
	return out
}

// replicaOf is a target as a replica on this exporter's node: a pod with
// its GPUs and share of the node (known once the node's GPUs are), another target with the GPUs set for it
// (the demo's), else one GPU.
func (in *integrations) replicaOf(t metrics.Target, labels map[string]string) cost.Replica {
	r := cost.Replica{Node: in.node, NodeLabels: labels, Server: t.Name}
	if pod, ok := in.pods[t.Name]; ok {
		// Once the node's GPUs are known, so is the pod's share of them,
		// none included: a CPU-only pod never takes the GPU holders' part.
		r.GPUs, r.Share, r.ShareKnown = pod.GPUs, pod.NodeShare, pod.NodeGPUs > 0
	} else if g, ok := in.gpus[t.Name]; ok {
		r.GPUs = g
	} else if t.Source != metrics.SourceKubernetes {
		r.GPUs = 1 // a static target: one GPU unless known
	}
	return r
}

// teamOf is a target's showback team: its pod's own (infercast.io/team,
// else its label team), else the config's for the model, else its pod's
// namespace.
func (in *integrations) teamOf(t metrics.Target, model string, teams map[string]string) string {
	pod, isPod := in.pods[t.Name]
	switch {
	case isPod && !pod.TeamDefaulted:
		return pod.Team
	case teams[model] != "":
		return teams[model]
	case isPod:
		return pod.Team
	}
	return ""
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
	in.node = node
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
	pods := map[string]kube.Target{}
	for _, kt := range ts {
		name := kt.Namespace + "/" + kt.Pod
		pods[name] = kt
		d, err := in.exp.ResolveDialect(kt.Dialect, kt.Mapping)
		if err != nil {
			in.log.Warn("pod's dialect annotations are unusable; not scraped", "namespace", kt.Namespace, "pod", kt.Pod,
				"dialect", kt.Dialect, "mapping", kt.Mapping, "err", err)
			continue
		}
		targets = append(targets, metrics.Target{Name: name, URL: kt.URL, Dialect: d, Model: kt.Model, DefaultModel: kt.DefaultModel,
			MaxBatchSize: kt.MaxBatchSize, Timeout: metrics.DefaultScrapeTimeout})
	}
	in.mu.Lock()
	in.pods = pods
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
