// Package exporterdemo is the exporter's demo wiring, shared by
// `exporter --demo` and `adapter demo`, so both serve every exporter family
// from the simulated fleet of internal/fleet: GPUs from go-nvml's mock when
// no driver is present (and saying so), spot notices from a fake AWS
// metadata service on 127.0.0.1, spend from the demo price catalogue, cold
// starts from a server the demo restarts now and then, per-collector
// success and the config-reload status.
//
// A caller that already runs a fleet and an Exporter calls Start and
// registers what it returns in place of the Exporter:
//
//	d, err := exporterdemo.Start(ctx, exporterdemo.Options{Exporter: exp, Fleet: fl, FleetConfig: fc, Logger: log})
//	if err != nil { ... }
//	defer d.Close()
//	reg.MustRegister(d) // the exporter's families and every integration's
//
// `exporter --demo` composes the same pieces (StartFleet, FakeIMDS,
// GPUCollector, Restarts, NodeLabels, Teams) with its own config, which may
// name real spot providers, a price catalogue or Kubernetes instead.
package exporterdemo

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/internal/fleet"
	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/metrics/cost"
	"github.com/infercast/infercast/pkg/metrics/gpu"
	"github.com/infercast/infercast/pkg/metrics/spot"
)

// Source labels the targets of the built-in fleet.
const Source = "demo"

// RestartServer is the simulated server the demo restarts now and then, so
// that the cold-start families are filled as in a real fleet.
const RestartServer = "summarise-tgi"

// Default restart schedule: the first cold start soon after start, then
// rarely, so the windows of the restarted server stay mostly full.
const (
	RestartFirst = 20 * time.Second
	RestartEvery = 10 * time.Minute
)

// closeTimeout bounds how long closing the fleet waits for its servers.
const closeTimeout = 10 * time.Second

// NodeLabels describe the demo's (imaginary) node: a Karpenter spot
// g5.12xlarge, priced from the demo catalogue. The fleet's 10 simulated
// GPUs over-commit its 4: spend charges the node once, shared among them.
func NodeLabels() map[string]string {
	return map[string]string{
		"karpenter.sh/capacity-type":       "spot",
		"node.kubernetes.io/instance-type": "g5.12xlarge",
		"karpenter.sh/nodepool":            "gpu-spot",
	}
}

// Teams are the showback teams of the demo fleet's models.
func Teams() map[string]string {
	return map[string]string{
		"chat": "assistants", "assistant": "assistants", "ranker": "search", "classify": "search",
		"summarise": "docs", "code": "devtools", "sentiment": "support",
	}
}

// Families are the exporter families a demo fills from its first scrapes:
// what `exporter --demo` and `adapter demo` serve (their tests check it),
// every family issue 2 lists but the cold starts, which come with the
// first restart.
var Families = []string{
	"infercast_model_requests_per_second", "infercast_model_request_latency_seconds",
	"infercast_model_time_to_first_token_seconds", "infercast_model_time_per_output_token_seconds",
	"infercast_model_queue_time_seconds", "infercast_model_requests_waiting", "infercast_model_requests_running",
	"infercast_model_queue_drain_seconds", "infercast_model_batch_size", "infercast_model_batch_utilization_ratio",
	"infercast_model_kv_cache_usage_ratio", "infercast_target_up", "infercast_target_scrape_duration_seconds",
	"infercast_collector_scrape_success",
	"infercast_gpu_utilization_ratio", "infercast_gpu_memory_used_bytes", "infercast_gpu_memory_total_bytes",
	"infercast_gpu_info", "infercast_gpu_collector_up",
	"infercast_spot_interruption_notice", "infercast_spot_interruptions_total", "infercast_spot_metadata_up",
	"infercast_instance_disruption_warning", "infercast_instance_capacity_type",
	"infercast_spend_dollars_per_hour", "infercast_cost_per_thousand_requests_dollars",
}

// StartFleet starts the default simulated fleet (fleet.Default) and points
// exp at it under Source. It returns the GPUs each server holds (one per
// simulated replica). The caller runs or advances the fleet and closes it.
func StartFleet(ctx context.Context, exp *metrics.Exporter, log *slog.Logger) (*fleet.Fleet, map[string]float64, error) {
	fc := fleet.Default()
	f, err := fleet.New(fc, log.With("component", "fleet"))
	if err != nil {
		return nil, nil, err
	}
	if err := f.Start(ctx); err != nil {
		return nil, nil, err
	}
	targets, err := fleet.ExporterTargets(f, fc)
	if err != nil {
		sctx, cancel := context.WithTimeout(context.Background(), closeTimeout)
		defer cancel()
		_ = f.Close(sctx)
		return nil, nil, err
	}
	exp.SetTargets(Source, targets)
	return f, TargetGPUs(f, fc), nil
}

// TargetGPUs maps each started server of f (built from fc) to the GPUs it
// holds: one per simulated replica.
func TargetGPUs(f *fleet.Fleet, fc fleet.Config) map[string]float64 {
	replicas := map[string]int{}
	for _, s := range fc.Servers {
		replicas[s.Model] = s.Replicas
	}
	gpus := map[string]float64{}
	for _, t := range f.Targets() {
		gpus[t.Name] = float64(replicas[t.Model])
	}
	return gpus
}

// Restarter restarts a simulated model server; *fleet.Fleet is one.
type Restarter interface {
	Restart(server string) error
}

// Restarts restarts server after first, then every every, until ctx ends:
// the exporter sees process_start_time_seconds change and records a cold
// start. It returns nil when ctx ends.
func Restarts(ctx context.Context, f Restarter, server string, first, every time.Duration, log *slog.Logger) error {
	t := time.NewTimer(first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			if err := f.Restart(server); err != nil {
				log.Warn("demo: restart failed", "server", server, "err", err)
			} else {
				log.Info("demo: restarted a model server (a cold start)", "server", server)
			}
			t.Reset(every)
		}
	}
}

// FakeIMDS serves IMDSv2's token, a spot/instance-action and a rebalance
// recommendation that answer 404 (no interruption, no warning), scheduled
// maintenance events that answer [] (none, as EC2 says it) and an
// instance-life-cycle of spot (the demo node's, NodeLabels) on 127.0.0.1,
// so the spot families are live in a demo. It returns the base URL and a
// func that stops the server.
func FakeIMDS(ctx context.Context) (string, func(), error) {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "demo-token") })
	mux.HandleFunc("GET /latest/meta-data/spot/instance-action", func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })
	mux.HandleFunc("GET /latest/meta-data/events/recommendations/rebalance", func(w http.ResponseWriter, _ *http.Request) { http.NotFound(w, nil) })
	mux.HandleFunc("GET /latest/meta-data/events/maintenance/scheduled", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "[]") })
	mux.HandleFunc("GET /latest/meta-data/instance-life-cycle", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "spot") })
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close(); <-done }, nil
}

// GPUCollector returns the NVML collector of real (its NVML: nvml.New()
// in production) when that library initialises, a driver being present,
// else one over go-nvml's mock (a simulated DGX A100), and whether it is the
// mock: its infercast_gpu_info series then carry simulated="true".
func GPUCollector(real gpu.Options) (*gpu.Collector, bool) {
	if real.NVML != nil {
		if ret := real.NVML.Init(); ret == nvml.SUCCESS {
			_ = real.NVML.Shutdown()
			return gpu.NewCollector(real), false
		}
	}
	return gpu.Demo(real.Logger), true
}

// Options are what Start needs from its caller.
type Options struct {
	// Exporter scrapes the fleet; required. Start adds it to the returned
	// collector, so register that instead of the Exporter.
	Exporter *metrics.Exporter
	// Fleet is the started simulated fleet the Exporter scrapes; required.
	// Start restarts RestartServer in it now and then (cold starts), and
	// neither runs, advances nor closes it.
	Fleet *fleet.Fleet
	// FleetConfig is the config Fleet was built from: its replicas are the
	// GPUs each server holds, for spend.
	FleetConfig fleet.Config
	// Logger; nil discards.
	Logger *slog.Logger
	// RestartFirst and RestartEvery schedule the cold starts; zero means
	// the package defaults. RestartServer must be in the fleet.
	RestartFirst, RestartEvery time.Duration
}

// Integrations are the demo's integrations around an Exporter. It is a
// prometheus.Collector exporting the Exporter's families, the GPU, spot,
// spend and cold-start families, per-collector success
// (infercast_collector_scrape_success) and the config-reload status.
type Integrations struct {
	set    *metrics.CollectorSet
	reload *metrics.Reloader
	gpu    *gpu.Collector
	// Simulated is true when the GPU families come from go-nvml's mock.
	Simulated bool

	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopIMDS func()
	once     sync.Once
}

// Start wires the demo integrations around o.Exporter and starts their
// background work (the spot watcher's polls, the restarts), which runs until
// ctx ends or Close. Close it when done.
func Start(ctx context.Context, o Options) (*Integrations, error) {
	if o.Exporter == nil || o.Fleet == nil {
		return nil, fmt.Errorf("exporterdemo: Options.Exporter and Options.Fleet are required")
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if !hasServer(o.Fleet, RestartServer) {
		return nil, fmt.Errorf("exporterdemo: the fleet has no server %q to restart for cold starts", RestartServer)
	}
	first, every := o.RestartFirst, o.RestartEvery
	if first <= 0 {
		first = RestartFirst
	}
	if every <= 0 {
		every = RestartEvery
	}

	set := metrics.NewCollectorSet(log)
	set.Add("targets", o.Exporter)

	endpoint, stopIMDS, err := FakeIMDS(ctx)
	if err != nil {
		return nil, fmt.Errorf("exporterdemo: fake metadata service: %w", err)
	}
	src, err := spot.NewSource(spot.AWS, endpoint)
	if err != nil {
		stopIMDS()
		return nil, err
	}
	w, err := spot.NewWatcher(spot.Options{Source: src, Logger: log.With("component", "spot")})
	if err != nil {
		stopIMDS()
		return nil, err
	}
	set.Add("spot_aws", w)

	gpus := TargetGPUs(o.Fleet, o.FleetConfig)
	node, teams := NodeLabels(), Teams()
	set.Add("cost", cost.NewCollector(cost.UsageFunc(func(context.Context) ([]cost.Usage, error) {
		return usage(o.Exporter.Models(), node, gpus, teams), nil
	}), cost.DemoCatalogue(), 5*time.Second, log.With("component", "cost")))

	g, simulated := GPUCollector(gpu.Options{NVML: nvml.New(), Logger: log.With("component", "gpu")})
	if simulated {
		log.Info("no NVIDIA driver found: GPU metrics come from go-nvml's mock (infercast_gpu_info{simulated=\"true\"})")
	}
	set.Add("gpu", g)

	ctx, cancel := context.WithCancel(ctx)
	d := &Integrations{
		set: set, reload: metrics.NewReloader("", o.Exporter, log), gpu: g, Simulated: simulated,
		cancel: cancel, stopIMDS: stopIMDS,
	}
	d.wg.Go(func() {
		if err := w.Run(ctx); err != nil {
			log.Warn("demo: spot watcher stopped", "err", err)
		}
	})
	d.wg.Go(func() { _ = Restarts(ctx, o.Fleet, RestartServer, first, every, log) })
	return d, nil
}

func hasServer(f *fleet.Fleet, name string) bool {
	for _, s := range f.Servers() {
		if s == name {
			return true
		}
	}
	return false
}

// usage joins the exporter's request rates with the demo node: one entry
// per model and target (cost merges them), the request rate the model's on
// that target.
func usage(models []metrics.ModelUsage, node map[string]string, gpus map[string]float64, teams map[string]string) []cost.Usage {
	out := make([]cost.Usage, 0, len(models))
	for _, m := range models {
		if len(m.Targets) == 0 {
			out = append(out, cost.Usage{Model: m.Model, RequestsPerSecond: m.RequestsPerSecond, Team: teams[m.Model]})
			continue
		}
		for _, t := range m.Targets {
			g, ok := gpus[t.Name]
			if !ok {
				g = 1
			}
			r := cost.Replica{NodeLabels: maps.Clone(node), Server: t.Name, GPUs: g, RequestsPerSecond: m.TargetRates[t.Name]}
			out = append(out, cost.Usage{Model: m.Model, RequestsPerSecond: r.RequestsPerSecond, Team: teams[m.Model], Replicas: []cost.Replica{r}})
		}
	}
	return out
}

// Describe implements prometheus.Collector.
func (d *Integrations) Describe(ch chan<- *prometheus.Desc) {
	d.set.Describe(ch)
	d.reload.Describe(ch)
}

// Collect implements prometheus.Collector.
func (d *Integrations) Collect(ch chan<- prometheus.Metric) {
	d.set.Collect(ch)
	d.reload.Collect(ch)
}

// Close stops the background work and the fake metadata service and shuts
// NVML down; it is safe to call more than once.
func (d *Integrations) Close() {
	d.once.Do(func() {
		d.cancel()
		d.wg.Wait()
		d.stopIMDS()
		_ = d.gpu.Close()
	})
}
