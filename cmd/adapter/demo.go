package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/infercast/infercast/internal/exporterdemo"
	"github.com/infercast/infercast/internal/fleet"
	"github.com/infercast/infercast/pkg/batchctl"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/predict"
	"github.com/infercast/infercast/pkg/predict/forecastmetrics"
	"github.com/infercast/infercast/pkg/predict/history"
	"github.com/infercast/infercast/pkg/predict/store"
	"github.com/infercast/infercast/pkg/provider"
)

func init() {
	register("demo", command{
		summary: "the whole loop in one process: simulated fleet, exporter, store, forecaster, planner, KEDA and custom metrics endpoints",
		run:     runDemo,
	})
}

// demoPolicy is the workload the demo plans: `chat`, served by the
// simulated vLLM server of internal/fleet, with an on-demand and a spot tier.
//
//go:embed demo_policy.yaml
var demoPolicy []byte

const (
	// demoBatchModel is the Triton model the batch controller tunes
	// (recommend-only) under demoBatchSLO.
	demoBatchModel = "ranker"
	demoBatchSLO   = 250 * time.Millisecond
	demoWorkload   = "chat"
	demoStep       = 5 * time.Second  // simulated time per step
	demoDecision   = 15 * time.Second // exporter cycle, store scrape, planning
)

type demoConfig struct {
	grpcAddr, webAddr string
	trace             string
	scale             float64
	speed             float64
	duration          time.Duration
	historyDays       int
	seed              uint64
	mean              float64
	view              string
	logLevel          string
}

func parseDemoFlags(args []string, stderr io.Writer) (demoConfig, error) {
	var c demoConfig
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.grpcAddr, "grpc.listen-address", "127.0.0.1:9090", "address of the KEDA external scaler gRPC endpoint")
	fs.StringVar(&c.webAddr, "web.listen-address", "127.0.0.1:8080", "address of the adapter's /metrics, /healthz and /readyz")
	fs.StringVar(&c.trace, "trace", "", "replay this timestamp,requests CSV instead of the built-in traffic")
	fs.Float64Var(&c.scale, "scale", 1, "multiply the trace's counts by this")
	fs.Float64Var(&c.speed, "speed", 240, "simulated seconds per real second (0: as fast as possible)")
	fs.DurationVar(&c.duration, "duration", 48*time.Hour, "simulated time to run (0: until interrupted)")
	fs.IntVar(&c.historyDays, "history-days", 7, "days of built-in traffic loaded into the store before the run starts")
	fs.Uint64Var(&c.seed, "seed", 1, "seed of the traffic, the fleet and the spot market")
	fs.Float64Var(&c.mean, "mean-rate", 40, "built-in traffic's mean requests/s")
	fs.StringVar(&c.view, "view", "auto", `"live" (redraw a terminal view), "lines" (a line per simulated 15 min) or "auto" (live on a terminal)`)
	fs.StringVar(&c.logLevel, "log.level", "warn", "debug, info, warn or error (logs go to stderr)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("demo: unexpected arguments %q", fs.Args())
	}
	switch {
	case c.speed < 0:
		return c, fmt.Errorf("demo: --speed must be >= 0, got %v", c.speed)
	case c.duration < 0:
		return c, fmt.Errorf("demo: --duration must be >= 0, got %v", c.duration)
	case !(c.scale > 0):
		return c, fmt.Errorf("demo: --scale must be > 0, got %v", c.scale)
	case !(c.mean > 0):
		return c, fmt.Errorf("demo: --mean-rate must be > 0, got %v", c.mean)
	case c.historyDays < 0:
		return c, fmt.Errorf("demo: --history-days must be >= 0, got %d", c.historyDays)
	case c.view != "auto" && c.view != "live" && c.view != "lines":
		return c, fmt.Errorf("demo: --view must be auto, live or lines, got %q", c.view)
	}
	return c, nil
}

// demandSource is the demo's demand in requests/s at a simulated time.
type demandSource interface {
	Rate(offset time.Duration) float64
}

// traceDemand replays a timestamp,requests series, wrapping around.
type traceDemand struct {
	s     predict.Series
	scale float64
}

func (t traceDemand) Rate(d time.Duration) float64 {
	n := len(t.s.Values)
	i := int(d/t.s.Step) % n
	v := t.s.Values[i]
	if math.IsNaN(v) {
		return 0
	}
	return v * t.scale / t.s.Step.Seconds()
}

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseDemoFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}
	routeKlog(log)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var demand demandSource = newTraffic(cfg.mean, cfg.seed, cfg.historyDays+int(cfg.duration.Hours()/24)+2)
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC) // a Monday
	if cfg.trace != "" {
		s, err := history.LoadCSV(cfg.trace)
		if err != nil {
			return fmt.Errorf("demo: %w", err)
		}
		demand, start = traceDemand{s: s, scale: cfg.scale}, s.Start
	}
	origin := start.Add(time.Duration(cfg.historyDays) * 24 * time.Hour) // history comes before

	dir, err := os.MkdirTemp("", "infercast-demo-")
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer os.RemoveAll(dir)

	// The simulated fleet: the chat model starts with enough replicas for
	// the first minutes; the planner takes over from there.
	fc := fleet.Default()
	fc.Seed, fc.Start = cfg.seed, origin
	chatMu := 0.0
	for i := range fc.Servers {
		if fc.Servers[i].Model == demoWorkload {
			chatMu = fc.Servers[i].Mu
			fc.Servers[i].Rate = demand.Rate(origin.Sub(start))
			fc.Servers[i].Replicas = int(math.Ceil(fc.Servers[i].Rate/chatMu*1.3)) + 1
		}
	}
	fl, err := fleet.New(fc, log.With("component", "fleet"))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := fl.Start(ctx); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer closeWithin(fl.Close)

	// The exporter pipeline on the simulated clock, served on 127.0.0.1.
	exp, err := metrics.New(metrics.DefaultConfig(), metrics.Options{Now: fl.Now, Logger: log.With("component", "exporter")})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	targets, err := fleet.ExporterTargets(fl, fc)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	exp.SetTargets(exporterdemo.Source, targets)
	// Every exporter family, as `exporter --demo` serves them: GPUs from
	// go-nvml's mock when no driver loads (infercast_gpu_info{simulated="true"}),
	// spot notices from a fake metadata service on 127.0.0.1, spend from the
	// demo price catalogue, cold starts, per-collector success, reload status.
	integrations, err := exporterdemo.Start(ctx, exporterdemo.Options{Exporter: exp, Fleet: fl, FleetConfig: fc, Logger: log.With("component", "exporter")})
	if err != nil {
		return fmt.Errorf("demo: exporter: %w", err)
	}
	defer integrations.Close()
	expReg := prometheus.NewRegistry()
	expReg.MustRegister(integrations) // the exporter's own families included
	expURL, stopExp, err := serveLocal(promhttp.HandlerFor(expReg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), "/metrics")
	if err != nil {
		return fmt.Errorf("demo: exporter: %w", err)
	}
	defer stopExp()

	// The embedded store, with days of history, scraping the exporter.
	policyPath := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(policyPath, demoPolicy, 0o600); err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	reg := prometheus.NewRegistry()
	planMetrics := capacity.NewMetrics(reg)
	policy, err := capacity.OpenPolicyFile(policyPath, planMetrics)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "store"), Logger: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer st.Close()
	if err := backfill(ctx, st, demand, start, origin); err != nil {
		return fmt.Errorf("demo: history: %w", err)
	}
	names, err := seriesNames(policy.Current())
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	scrape, err := store.NewScraper(st, store.ScraperConfig{URL: expURL, Interval: demoDecision, Metrics: names, Logger: log})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// The cluster, the planner loop and the cache they share.
	w, _ := policy.Current().Workload(demoWorkload)
	// The cluster's first replicas launch one cold start before the origin,
	// so that they serve from it.
	launch := origin.Add(-w.ColdStart)
	cluster := newDemoCluster(cfg.seed, launch, w.ColdStart, w.Tiers.Spot.Notice, w.Tiers.OnDemand.PricePerHour, w.Tiers.Spot.PricePerHour)
	cluster.Scale(false, fc.Servers[0].Replicas, launch)
	cache := capacity.NewCache()
	live := demoLive{newExporterLive(expURL, log), cluster, fl.Now}
	forecasts, err := forecastmetrics.NewRecorder(reg, forecastmetrics.Options{})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	loop, err := capacity.NewLoop(capacity.LoopConfig{
		Policy: policy, History: storeHistory{st}, Live: live, Cache: cache,
		Metrics: planMetrics, Forecasts: forecasts, Logger: log.With("component", "planner"), Now: fl.Now,
		NewForecaster: func(step time.Duration) predict.Online { return predict.NewOnline(step, predict.Options{}) },
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// The batch controller, recommend-only, on the simulated Triton model.
	batchMax := 0
	for _, sv := range fc.Servers {
		if sv.Model == demoBatchModel {
			batchMax = sv.MaxBatch
		}
	}
	bcfg := batchctl.DefaultConfig(demoBatchSLO, batchMax)
	bcfg.Registerer, bcfg.Logger = reg, log.With("component", "batchctl")
	batch, err := batchctl.New(bcfg, batchctl.RecommendOnly{Server: "triton", Logger: bcfg.Logger})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}

	// KEDA's endpoint, the custom metrics API and the web mux, as `adapter
	// serve` has them.
	ep, err := newAdapterEndpoints(cache, policy, reg, log, endpointsConfig{
		grpcAddr: cfg.grpcAddr, cmAddr: "127.0.0.1:0",
		cmMapping: provider.NameMapping{Template: provider.DefaultTemplate},
		webAddr:   cfg.webAddr, shutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer ep.closeListeners()
	defer ep.start(ctx, log)()
	cat := policyCatalog{policy}
	gl, cl, wl := ep.grpcL, ep.customMetricsL, ep.webL

	// The HPA of each tier, reading our KEDA endpoint through KEDA's own client.
	conn, err := grpc.NewClient(gl.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	defer conn.Close()
	hpas := newDemoHPAs(externalscaler.NewExternalScalerClient(conn), cat.tolerance(demoWorkload))

	fmt.Fprintf(stdout, "infercast demo: workload %q, tiers %q and %q\n", demoWorkload, capacity.TierOnDemand, capacity.TierSpot)
	fmt.Fprintf(stdout, "  KEDA external scaler (gRPC)  %s   (ScaledObject metadata: workload=%s, tier=on-demand|spot)\n", gl.Addr(), demoWorkload)
	fmt.Fprintf(stdout, "  custom metrics API           https://%s/apis/custom.metrics.k8s.io/v1beta2\n", cl.Addr())
	fmt.Fprintf(stdout, "  adapter metrics              http://%s/metrics\n", wl.Addr())
	fmt.Fprintf(stdout, "  exporter metrics             %s\n", expURL)
	fmt.Fprintf(stdout, "  simulated fleet              %d model servers; %.0fx real time\n", len(fl.Targets()), cfg.speed)
	if integrations.Simulated {
		fmt.Fprintf(stdout, "  GPUs                         simulated: no NVIDIA driver, go-nvml's mock (infercast_gpu_info{simulated=\"true\"})\n")
	} else {
		fmt.Fprintf(stdout, "  GPUs                         this machine's, through NVML\n")
	}

	run := &demoRun{
		cfg: cfg, log: log, fleet: fl, exp: exp, scrape: scrape, loop: loop, cache: cache,
		cluster: cluster, hpas: hpas, demand: demand, forecasts: forecasts, start: start, origin: origin, mu: chatMu,
		batch: batch, batchObs: &batchObserver{exporter: live.exporter, model: demoBatchModel},
		view: newDemoView(stdout, cfg.view),
	}
	return run.loopUntilDone(ctx)
}

// demoRun is the demo's simulated-time loop.
type demoRun struct {
	cfg     demoConfig
	log     *slog.Logger
	fleet   *fleet.Fleet
	exp     *metrics.Exporter
	scrape  *store.Scraper
	loop    *capacity.Loop
	cache   *capacity.Cache
	cluster *demoCluster
	hpas    *demoHPAs
	demand  demandSource
	// forecasts holds the forecast the planner last made: the view's band.
	forecasts *forecastmetrics.Recorder
	// The batch controller and what it last decided.
	batch     *batchctl.Controller
	batchObs  *batchObserver
	lastBatch batchctl.Decision
	start     time.Time
	origin    time.Time
	mu        float64
	view      *demoView
}

func (r *demoRun) loopUntilDone(ctx context.Context) error {
	wall := time.Now()
	// The exporter has scraped the fleet once before the first decision, as
	// a running exporter would have: a rate needs two scrapes, and the
	// planner's first decision would otherwise find none.
	r.exp.Cycle(ctx)
	var sim time.Duration
	for r.cfg.duration == 0 || sim < r.cfg.duration {
		if err := ctx.Err(); err != nil {
			break
		}
		now := r.origin.Add(sim)
		rate := r.demand.Rate(now.Sub(r.start))
		if err := r.fleet.SetArrivalRate(demoWorkload, rate); err != nil {
			return err
		}
		r.cluster.Step(now, demoStep)
		if err := r.fleet.SetReplicas(demoWorkload, r.cluster.Ready(now)); err != nil {
			return err
		}
		r.fleet.Advance(demoStep)
		sim += demoStep
		if sim%demoDecision == 0 {
			if err := r.decide(ctx, r.origin.Add(sim)); err != nil {
				return err
			}
			r.view.observe(r, r.origin.Add(sim), rate)
		}
		if r.cfg.speed > 0 {
			// Pace the simulation against the wall clock.
			if ahead := time.Duration(float64(sim)/r.cfg.speed) - time.Since(wall); ahead > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(ahead):
				}
			}
		}
	}
	r.view.final(r)
	return nil
}

// decide runs one decision interval: the exporter's cycle, the store's
// scrape, the planner, and the HPAs acting on what KEDA's endpoint serves.
func (r *demoRun) decide(ctx context.Context, now time.Time) error {
	r.exp.Cycle(ctx)
	if _, err := r.scrape.ScrapeOnce(ctx, now); err != nil && ctx.Err() == nil {
		r.log.Warn("store scrape failed", "err", err)
	}
	r.loop.Step(ctx)
	if o, ok, err := r.batchObs.observe(ctx, now); err != nil {
		if ctx.Err() == nil { // stopping is not a failure to report
			r.log.Warn("batch observation", "err", err)
		}
	} else if ok {
		if d, err := r.batch.Step(ctx, demoBatchModel, o, 0); err != nil {
			r.log.Warn("batch controller", "err", err)
		} else {
			r.lastBatch = d
		}
	}
	for _, tier := range []string{capacity.TierOnDemand, capacity.TierSpot} {
		od, spot, _ := r.cluster.Tiers(now)
		current := od.Live() + od.Pending
		if tier == capacity.TierSpot {
			current = spot.Live() + spot.Pending
		}
		want, err := r.hpas.desired(ctx, tier, current)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.Warn("KEDA endpoint", "tier", tier, "err", err)
			continue
		}
		r.cluster.Scale(tier == capacity.TierSpot, want, now)
	}
	return nil
}

// backfill loads the demand of [from, to) into the store as the counter
// the policy's demand.series selects, as if the exporter had been scraped
// every 15 s all along: the forecaster starts with days of history.
func backfill(ctx context.Context, st *store.Store, demand demandSource, from, to time.Time) error {
	lbls := labels.FromStrings("__name__", "infercast_model_requests_total", "model", demoWorkload)
	var total float64
	batch := make([]store.Sample, 0, 4096)
	for t := from; t.Before(to); t = t.Add(demoDecision) {
		total += demand.Rate(t.Sub(from)) * demoDecision.Seconds()
		batch = append(batch, store.Sample{Labels: lbls, T: t, V: math.Round(total)})
		if len(batch) == cap(batch) {
			if _, err := st.Append(ctx, batch); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	_, err := st.Append(ctx, batch)
	return err
}

// demoLive is the live source of the demo: the exporter's signals, and the
// tier states and notices of the simulated cluster.
type demoLive struct {
	exporter exporterLive
	cluster  *demoCluster
	now      func() time.Time
}

func (l demoLive) Signals(ctx context.Context, w *capacity.Workload, now time.Time) (capacity.Signals, error) {
	sig, err := l.exporter.Signals(ctx, w, now)
	sig.OnDemand, sig.Spot, sig.SpotByDomain = l.cluster.Tiers(now)
	sig.SpotNotices, sig.SpotNoticeDomains = l.cluster.TakeNotices()
	return sig, err
}

// serveLocal serves h on a free 127.0.0.1 port and returns its URL at path.
func serveLocal(h http.Handler, path string) (string, func(), error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle(path, h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	return "http://" + l.Addr().String() + path, func() { closeWithin(srv.Shutdown) }, nil
}

// closeWithin calls a shutdown function with a fresh 5 s budget.
func closeWithin(f func(context.Context) error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		slog.Default().Debug("shutdown", "err", err)
	}
}
