package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/predict"
	"github.com/infercast/infercast/pkg/predict/forecastmetrics"
	"github.com/infercast/infercast/pkg/predict/history"
	"github.com/infercast/infercast/pkg/predict/store"
	"github.com/infercast/infercast/pkg/provider"
	"github.com/infercast/infercast/pkg/scaler"
	"github.com/infercast/infercast/pkg/scaler/hpa"
)

func init() {
	register("serve", command{
		summary: "plan replicas and serve them to KEDA (gRPC) and the HPA (custom metrics API)",
		run:     runServe,
	})
}

const serveUsage = `usage: adapter [serve] --config.file policy.yaml [FLAGS]

Plans every workload of the policy (docs/planner.md) each decision interval
and serves the plans to KEDA's external scaler protocol (gRPC) and, when
--custom-metrics.listen-address is set, to the HPA through the custom
metrics API (docs/serving.md). Demand history comes from --prometheus.url,
or by default from an embedded store that scrapes --exporter.url.
SIGHUP or POST /-/reload re-reads the policy.

Flags:
`

// serveConfig is what the flags say.
type serveConfig struct {
	policyFile      string
	grpcAddr        string
	grpcTLS         scaler.TLSFiles
	grpcReflection  bool
	webAddr         string
	promURL         string
	promTimeout     time.Duration
	exporterURL     string
	scrapeInterval  time.Duration
	storagePath     string
	cmAddr          string
	cmTLS           [2]string
	cmAuth          string
	cmKubeconfig    string
	cmTemplate      string
	cmNamespace     string
	logLevel        string
	shutdownTimeout time.Duration
	hpaDownscale    time.Duration
	batchFile       string
	// forecastReselect is predict.Options.Reselect (0: its default).
	forecastReselect time.Duration
	kube             kubeFlags
}

func parseServeFlags(args []string, stderr io.Writer) (serveConfig, error) {
	var c serveConfig
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, serveUsage); fs.PrintDefaults() }
	fs.StringVar(&c.policyFile, "config.file", "", "policy YAML (docs/planner.md); required")
	fs.StringVar(&c.grpcAddr, "grpc.listen-address", ":9090", "address of the KEDA external scaler gRPC server")
	fs.StringVar(&c.grpcTLS.CertFile, "grpc.tls-cert-file", "", "PEM server certificate for gRPC (KEDA's caCert must trust it); empty: plaintext")
	fs.StringVar(&c.grpcTLS.KeyFile, "grpc.tls-key-file", "", "PEM private key of --grpc.tls-cert-file")
	fs.StringVar(&c.grpcTLS.ClientCAFile, "grpc.tls-client-ca-file", "", "PEM CA bundle: require KEDA's client certificate (tlsClientCert) signed by it (mTLS)")
	fs.BoolVar(&c.grpcReflection, "grpc.reflection", false, "enable gRPC server reflection (grpcurl, ghz without the proto file)")
	fs.StringVar(&c.webAddr, "web.listen-address", ":8080", "address of /metrics, /healthz, /readyz and POST /-/reload")
	fs.StringVar(&c.promURL, "prometheus.url", "", "Prometheus-compatible API for demand history (policy demand.query); empty: the embedded store")
	fs.DurationVar(&c.promTimeout, "prometheus.timeout", 30*time.Second, "timeout of each Prometheus query")
	fs.StringVar(&c.exporterURL, "exporter.url", "", "infercast exporter /metrics: live signals, and what the embedded store scrapes (policy demand.series)")
	fs.DurationVar(&c.scrapeInterval, "exporter.scrape-interval", 15*time.Second, "how often the embedded store scrapes --exporter.url")
	fs.StringVar(&c.storagePath, "storage.path", "data/", "directory of the embedded store")
	fs.StringVar(&c.cmAddr, "custom-metrics.listen-address", "", "secure address of the custom metrics API (custom.metrics.k8s.io), e.g. :6443; empty: off")
	fs.StringVar(&c.cmTLS[0], "custom-metrics.tls-cert-file", "", "serving certificate of the custom metrics API; empty: self-signed in memory")
	fs.StringVar(&c.cmTLS[1], "custom-metrics.tls-key-file", "", "private key of --custom-metrics.tls-cert-file")
	fs.StringVar(&c.cmAuth, "custom-metrics.authentication", "delegated", `"delegated" (authn/authz by the cluster, as aggregated APIs must) or "none" (local runs only: every request allowed)`)
	fs.StringVar(&c.cmKubeconfig, "custom-metrics.kubeconfig", "", "kubeconfig for delegated authn/authz; empty: in-cluster")
	fs.StringVar(&c.cmTemplate, "custom-metrics.deployment-template", provider.DefaultTemplate, "Deployment name of a workload's tier; must contain {workload} and {tier}")
	fs.StringVar(&c.cmNamespace, "custom-metrics.namespace", "", "only Deployments of this namespace are mapped; empty: any")
	fs.StringVar(&c.logLevel, "log.level", "info", "debug, info, warn or error")
	fs.StringVar(&c.batchFile, "batch.config.file", "", batchFileUsage)
	fs.DurationVar(&c.shutdownTimeout, "web.shutdown-timeout", 10*time.Second, "how long in-flight requests may drain at shutdown")
	fs.DurationVar(&c.hpaDownscale, "hpa.downscale-stabilization", hpa.DefaultDownscaleWindow, "scale-down stabilisation window of the HPAs that scale the tiers (behavior.scaleDown.stabilizationWindowSeconds: the HPA's default 5m; the chart's ScaledObjects set 0): how long an HPA may keep a replica count it was asked to leave, which the values that compensate its tolerance must clear; with --kubernetes.pods they follow the Deployments' replicas instead")
	fs.DurationVar(&c.forecastReselect, "forecast.reselect-interval", 0, "how often, in observed demand time, the forecaster re-selects its model and re-fits its periodic (spectral) model; 0: 24h. The first decision reads a day of history, so with 24h a periodic model is first chosen about 16h after start; shorter chooses it at once")
	c.kube.register(fs)
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("serve: unexpected arguments %q", fs.Args())
	}
	if err := c.kube.validate(); err != nil {
		return c, fmt.Errorf("serve: %w", err)
	}
	if c.policyFile == "" {
		fs.Usage()
		return c, errors.New("serve: --config.file is required")
	}
	if c.cmAuth != "delegated" && c.cmAuth != "none" {
		return c, fmt.Errorf("serve: --custom-metrics.authentication=%q: want delegated or none", c.cmAuth)
	}
	if c.forecastReselect < 0 {
		return c, fmt.Errorf("serve: --forecast.reselect-interval=%s must not be negative", c.forecastReselect)
	}
	if c.hpaDownscale < 0 {
		return c, fmt.Errorf("serve: --hpa.downscale-stabilization=%s must not be negative", c.hpaDownscale)
	}
	if c.promURL == "" && c.exporterURL == "" {
		return c, errors.New("serve: set --prometheus.url, or --exporter.url for the embedded store")
	}
	return c, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log.level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseServeFlags(args, stderr)
	if err != nil {
		return err
	}
	log, err := newLogger(stderr, cfg.logLevel)
	if err != nil {
		return err
	}
	routeKlog(log)
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	planMetrics := capacity.NewMetrics(reg)
	policy, err := capacity.OpenPolicyFile(cfg.policyFile, planMetrics)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	cache := capacity.NewCache()

	var g run.Group
	// Lifecycle: everything stops when ctx ends (SIGINT/SIGTERM in main) or
	// any actor fails.
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	g.Add(func() error { <-runCtx.Done(); return nil }, func(error) { cancel() })

	// Demand history: Prometheus, or the embedded store fed by the exporter.
	var hist capacity.HistorySource
	if cfg.promURL != "" {
		p, err := history.NewPrometheus(history.PrometheusConfig{Address: cfg.promURL, Timeout: cfg.promTimeout, Logger: log})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		hist = promHistory{p}
	} else {
		st, err := store.Open(store.Options{Dir: cfg.storagePath, Logger: log})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		defer st.Close()
		sc, err := newPolicyScraper(st, policy, store.ScraperConfig{URL: cfg.exporterURL, Interval: cfg.scrapeInterval, Logger: log})
		if err != nil {
			return fmt.Errorf("serve: %w", err)
		}
		g.Add(func() error { return untilDone(runCtx, sc.run(runCtx)) }, func(error) { cancel() })
		hist = storeHistory{st}
	}

	// Live signals: the exporter scraped directly when there is one (rate,
	// backlog, latency, cold start: the planner's reactive floors hold even
	// when the history source is down), else the history's latest interval.
	var live capacity.LiveSource = liveFromHistory{hist}
	if cfg.exporterURL != "" {
		live = newExporterLive(cfg.exporterURL, log)
	}
	// The replicas of each tier: from the pods when --kubernetes.pods; the
	// custom metrics API then also knows the Deployments by their labels.
	src, err := cfg.kube.source(runCtx, cfg.cmTemplate, log)
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	var pods podCounter
	var labelled provider.LabelledDeployments
	var replicas func(workload, tier string) (int, bool)
	if src != nil {
		pods, labelled, replicas = src, src, src.Replicas
	}
	// Spot interruption notices of each workload's tiers.spot.pools.
	if live, err = withTierSignalsFrom(live, cfg, policy, cache, pods, log); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	if err := addBatchController(runCtx, &g, cfg.batchFile, cfg.exporterURL, cache, reg, log); err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	forecasts, err := forecastmetrics.NewRecorder(reg, forecastmetrics.Options{})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	loop, err := capacity.NewLoop(capacity.LoopConfig{
		Policy: policy, History: hist, Live: live, Cache: cache,
		Metrics: planMetrics, Forecasts: forecasts, Logger: log,
		NewForecaster: func(step time.Duration) predict.Online {
			return predict.NewOnline(step, predict.Options{Reselect: cfg.forecastReselect})
		},
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	g.Add(func() error { return untilDone(runCtx, loop.Run(runCtx)) }, func(error) { cancel() })

	// The endpoints: KEDA's external scaler, the custom metrics API, and
	// the web mux with metrics, health, readiness and reload.
	var ep *adapterEndpoints
	reload := func() error {
		err := policy.Reload(runCtx)
		if err != nil {
			log.Error("policy reload failed; keeping the previous policy", "err", err)
		} else {
			log.Info("policy reloaded", "file", cfg.policyFile)
			ep.scaler.ForgetRemoved()
		}
		return err
	}
	ep, err = newAdapterEndpoints(cache, policy, reg, log, endpointsConfig{
		grpcAddr: cfg.grpcAddr, grpcTLS: cfg.grpcTLS, grpcReflection: cfg.grpcReflection,
		cmAddr:    cfg.cmAddr,
		cmMapping: provider.NameMapping{Template: cfg.cmTemplate, Namespace: cfg.cmNamespace}, cmLabelled: labelled,
		cmServer: provider.APIServerConfig{CertFile: cfg.cmTLS[0], KeyFile: cfg.cmTLS[1],
			Delegated: cfg.cmAuth == "delegated", Kubeconfig: cfg.cmKubeconfig},
		webAddr: cfg.webAddr, reload: reload, shutdownTimeout: cfg.shutdownTimeout,
		replicas: replicas, downscaleWindow: cfg.hpaDownscale,
	})
	if err != nil {
		return fmt.Errorf("serve: %w", err)
	}
	defer ep.closeListeners()
	ep.addTo(&g, runCtx, cancel)

	// SIGHUP reloads the policy.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	g.Add(func() error {
		for {
			select {
			case <-hup:
				_ = reload()
			case <-runCtx.Done():
				return nil
			}
		}
	}, func(error) { signal.Stop(hup); cancel() })

	cmAddr := ""
	if ep.customMetricsL != nil {
		cmAddr = ep.customMetricsL.Addr().String()
	}
	fmt.Fprintf(stdout, "adapter: KEDA external scaler (gRPC) on %s\n", ep.grpcL.Addr())
	fmt.Fprintf(stdout, "adapter: metrics and health on http://%s\n", ep.webL.Addr())
	if cmAddr != "" {
		fmt.Fprintf(stdout, "adapter: custom metrics API on https://%s\n", cmAddr)
	}
	log.Info("serving", "grpc", ep.grpcL.Addr().String(), "web", ep.webL.Addr().String(), "custom_metrics", cmAddr,
		"workloads", len(policy.Current().Workloads))
	return g.Run()
}

// untilDone drops the error an actor returns because the run is ending, so
// a clean shutdown returns nil whichever actor stops first.
func untilDone(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// unplanned lists the policy's workloads that have no plan yet.
func unplanned(p *capacity.Policy, cache *capacity.Cache) []string {
	var out []string
	for _, w := range p.Workloads {
		if _, ok := cache.Get(w.Name); !ok {
			out = append(out, w.Name)
		}
	}
	return out
}

// policyCatalog answers the scaler's and provider's catalog questions from
// the current (reloadable) policy.
type policyCatalog struct{ f *capacity.PolicyFile }

func tiersOf(w *capacity.Workload) []string {
	t := []string{capacity.TierOnDemand} // every workload has on-demand (policy default)
	if w.Tiers.Spot != nil {
		t = append(t, capacity.TierSpot)
	}
	return t
}

func (c policyCatalog) Tiers(name string) ([]string, bool) {
	w, ok := c.f.Current().Workload(name)
	if !ok {
		return nil, false
	}
	return tiersOf(w), true
}

func (c policyCatalog) Workloads() map[string][]string {
	p := c.f.Current()
	out := make(map[string][]string, len(p.Workloads))
	for i := range p.Workloads {
		out[p.Workloads[i].Name] = tiersOf(&p.Workloads[i])
	}
	return out
}

func (c policyCatalog) tolerance(name string) float64 {
	if w, ok := c.f.Current().Workload(name); ok && w.Tolerance != nil {
		return *w.Tolerance
	}
	return hpa.DefaultTolerance
}

// promHistory reads demand.query (requests/s) through the Prometheus API and
// turns it into requests per interval.
type promHistory struct{ p *history.Prometheus }

func (h promHistory) Demand(ctx context.Context, w *capacity.Workload, from, to time.Time, step time.Duration) (predict.Series, error) {
	if w.Demand.Query == "" {
		return predict.Series{}, fmt.Errorf("workload %q: --prometheus.url reads demand.query, but the policy sets demand.series", w.Name)
	}
	s, err := h.p.Series(ctx, w.Demand.Query, from, to, step)
	if err != nil {
		return s, err
	}
	for i, v := range s.Values {
		s.Values[i] = v * step.Seconds()
	}
	return s, nil
}

// storeHistory reads demand.series (a counter selector) from the embedded
// store as requests per interval.
type storeHistory struct{ st *store.Store }

func (h storeHistory) Demand(ctx context.Context, w *capacity.Workload, from, to time.Time, step time.Duration) (predict.Series, error) {
	if w.Demand.Series == "" {
		return predict.Series{}, fmt.Errorf("workload %q: the embedded store reads demand.series, but the policy sets demand.query (use --prometheus.url)", w.Name)
	}
	_, ms, err := w.Demand.SeriesSelector()
	if err != nil {
		return predict.Series{}, fmt.Errorf("workload %q: demand.series: %w", w.Name, err)
	}
	return h.st.Increase(ctx, from, to, step, ms...)
}

// seriesNames are the metric names the embedded store must keep: those of
// every workload's demand.series (validated with the policy, so an error
// here is a policy built without ParsePolicy).
func seriesNames(p *capacity.Policy) ([]string, error) {
	set := map[string]bool{}
	for _, w := range p.Workloads {
		if w.Demand.Series == "" {
			continue
		}
		name, _, err := w.Demand.SeriesSelector()
		if err != nil {
			return nil, fmt.Errorf("workload %q: demand.series: %w", w.Name, err)
		}
		set[name] = true
	}
	out := make([]string, 0, len(set))
	for n := range set {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// policyScraper scrapes the exporter into the embedded store, keeping the
// metrics of the current policy's demand.series: a reload that adds a
// workload, or changes one's series, starts storing the new series at the
// next scrape (its history starts then: the workload is planned reactively
// until the forecaster has enough of it).
type policyScraper struct {
	st     *store.Store
	policy capacity.PolicySource
	cfg    store.ScraperConfig // Metrics set per scrape from the policy
	log    *slog.Logger

	names []string // the metrics sc keeps
	sc    *store.Scraper
}

func newPolicyScraper(st *store.Store, policy capacity.PolicySource, cfg store.ScraperConfig) (*policyScraper, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Interval} // shared by the scrapers of every policy
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	p := &policyScraper{st: st, policy: policy, cfg: cfg, log: cfg.Logger}
	if err := p.follow(); err != nil {
		return nil, err
	}
	return p, nil
}

// follow rebuilds the scraper when the policy's series names changed.
func (p *policyScraper) follow() error {
	names, err := seriesNames(p.policy.Current())
	if err != nil {
		return err
	}
	if p.sc != nil && slices.Equal(names, p.names) {
		return nil
	}
	cfg := p.cfg
	cfg.Metrics = names
	sc, err := store.NewScraper(p.st, cfg)
	if err != nil {
		return err
	}
	if p.sc != nil {
		p.log.Info("embedded store: the policy's demand series changed", "metrics", strings.Join(names, ","), "before", strings.Join(p.names, ","))
	}
	p.sc, p.names = sc, names
	return nil
}

// scrapeOnce scrapes once with the current policy's series.
func (p *policyScraper) scrapeOnce(ctx context.Context, now time.Time) (int, error) {
	if err := p.follow(); err != nil {
		return 0, err
	}
	return p.sc.ScrapeOnce(ctx, now)
}

// run scrapes every interval until ctx ends; a failed scrape is a gap,
// logged, not a stop (as store.Scraper.Run).
func (p *policyScraper) run(ctx context.Context) error {
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := p.scrapeOnce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			p.log.Warn("scrape failed", "url", p.cfg.URL, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// liveFromHistory derives the one live signal a demand history gives, the
// current rate, from its latest complete interval; it is the live source
// when there is no --exporter.url. Backlog, latency, cold start and tier
// states are then unknown (NaN or zero), so the floors that need them do
// not bind.
type liveFromHistory struct{ h capacity.HistorySource }

func (l liveFromHistory) Signals(ctx context.Context, w *capacity.Workload, now time.Time) (capacity.Signals, error) {
	step := w.ForecastStep
	to := predict.StepStart(now, step)
	s, err := l.h.Demand(ctx, w, to.Add(-3*step), to, step)
	if err != nil {
		return capacity.Signals{}, err
	}
	rate := math.NaN()
	for i := len(s.Values) - 1; i >= 0; i-- {
		if v := s.Values[i]; !math.IsNaN(v) {
			rate = v / step.Seconds()
			break
		}
	}
	return capacity.Signals{Time: now, Rate: rate, Backlog: math.NaN()}, nil
}
