package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	oklog "github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/exporter-toolkit/web"

	"github.com/infercast/infercast/internal/exporterdemo"
	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/metrics/gpu"
)

// shutdownTimeout bounds how long in-flight scrapes may drain on exit.
const shutdownTimeout = 10 * time.Second

// run is the whole exporter: it returns when ctx ends (nil) or a component
// fails (its error). Only main exits.
func run(ctx context.Context, o options, log *slog.Logger) error {
	cfg := metrics.DefaultConfig()
	if o.configFile != "" {
		var err error
		if cfg, err = metrics.LoadConfigFile(o.configFile); err != nil {
			return err
		}
	} else if !o.demo {
		return errors.New("--config.file is required (or --demo for the built-in fleet)")
	}
	warnScrapesNothing(cfg, o, log)
	if o.webConfigFile != "" {
		if err := web.Validate(o.webConfigFile); err != nil {
			return fmt.Errorf("--web.config.file: %w", err)
		}
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	exp, err := metrics.New(cfg, metrics.Options{Logger: log.With("component", "scraper")})
	if err != nil {
		return err
	}
	set := metrics.NewCollectorSet(log)
	set.Add("targets", exp)
	reload := metrics.NewReloader(o.configFile, exp, log)
	reg.MustRegister(reload)

	var g oklog.Group
	// The signal actor: ctx ends on SIGINT/SIGTERM (main) or in tests.
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
	}

	var demoGPUs map[string]float64
	if o.demo {
		f, gpus, err := exporterdemo.StartFleet(ctx, exp, log)
		if err != nil {
			return err
		}
		demoGPUs = gpus
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return f.Run(ctx, 100*time.Millisecond) }, func(error) {
			cancel()
			sctx, scancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer scancel()
			_ = f.Close(sctx)
		})
		g.Add(func() error {
			return exporterdemo.Restarts(ctx, f, exporterdemo.RestartServer, exporterdemo.RestartFirst, exporterdemo.RestartEvery, log)
		}, func(error) { cancel() })
	}
	in, err := setupIntegrations(ctx, cfg, o.demo, o.spot, exp, set, log)
	if err != nil {
		return err
	}
	in.setGPUs(demoGPUs)
	reload.OnLoad(in.loadCost)
	reload.OnApplied(func(metrics.Config) { in.refreshKube() })
	reload.OnApplied(func(c metrics.Config) { warnScrapesNothing(c, o, log) })
	defer func() {
		for _, c := range in.closers {
			c()
		}
	}()
	for _, a := range in.actors {
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			if err := a.run(ctx); err != nil {
				return fmt.Errorf("%s: %w", a.name, err)
			}
			return nil
		}, func(error) { cancel() })
	}
	if o.demo || cfg.Integrations.GPU.Enabled {
		c, simulated := gpuCollector(o.demo, cfg.Integrations.GPU, nvml.New(), in.podNames, log)
		if simulated {
			log.Info("no NVIDIA driver found: GPU metrics come from go-nvml's mock (infercast_gpu_info{simulated=\"true\"})")
		}
		set.Add("gpu", c)
		defer c.Close()
	}
	reg.MustRegister(set)

	// Scrape cycles.
	{
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error { return exp.Run(ctx) }, func(error) { cancel() })
	}
	// Reload on SIGHUP.
	{
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		ctx, cancel := context.WithCancel(ctx)
		g.Add(func() error {
			for {
				select {
				case <-ctx.Done():
					return nil
				case <-hup:
					if err := reload.Reload(); err != nil {
						log.Error("config reload failed; keeping the previous config", "err", err)
					}
				}
			}
		}, func(error) { signal.Stop(hup); cancel() })
	}
	// HTTP.
	{
		mux, err := webMux(o, reg, log, in.ready, exp.Ready, reload.Reload)
		if err != nil {
			return err
		}
		// The server's own errors (TLS handshakes, bad requests) go to our
		// logger, not the standard library's.
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second,
			ErrorLog: slog.NewLogLogger(log.With("component", "web").Handler(), slog.LevelWarn)}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", o.listenAddress)
		if err != nil {
			return fmt.Errorf("--web.listen-address: %w", err)
		}
		if o.listening != nil {
			o.listening <- ln.Addr().String()
		}
		log.Info("listening", "address", ln.Addr().String(), "telemetry_path", o.telemetryPath, "tls_config", o.webConfigFile != "")
		webCfg := o.webConfigFile
		g.Add(func() error {
			err := web.Serve(ln, srv, &web.FlagConfig{WebConfigFile: &webCfg}, log)
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			return err
		}, func(error) {
			// A fresh context: ctx is already done, in-flight scrapes drain.
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			_ = srv.Shutdown(sctx)
		})
	}
	return g.Run()
}

// webMux serves the metrics, health, readiness (pod discovery synced and a
// scrape cycle done), POST /-/reload and, off the metrics path, a landing
// page.
func webMux(o options, reg *prometheus.Registry, log *slog.Logger, kubeReady, scraped func() bool, reload func() error) (*http.ServeMux, error) {
	mux := http.NewServeMux()
	mux.Handle(o.telemetryPath, promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:            slog.NewLogLogger(log.Handler(), slog.LevelError),
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: o.maxRequests,
		Registry:            reg,
	})))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !kubeReady() {
			http.Error(w, "not ready: pod discovery has not synced yet", http.StatusServiceUnavailable)
			return
		}
		if !scraped() {
			http.Error(w, "not ready: no scrape cycle completed yet", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	mux.HandleFunc("/-/reload", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST only", http.StatusMethodNotAllowed)
			return
		}
		if err := reload(); err != nil {
			http.Error(w, "reload failed: "+err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprintln(w, "reloaded")
	})
	if o.telemetryPath != "/" {
		landing, err := web.NewLandingPage(web.LandingConfig{
			Name:        "infercast exporter",
			Description: "Model-server latency, queues, cold starts, GPUs, spot notices and spend as Prometheus metrics",
			Links: []web.LandingLinks{
				{Address: o.telemetryPath, Text: "Metrics"},
				{Address: "/healthz", Text: "Health"},
				{Address: "/readyz", Text: "Readiness"},
			},
		})
		if err != nil {
			return nil, err
		}
		mux.Handle("/", landing)
	}
	return mux, nil
}

// gpuCollector returns the NVML collector over lib (nvml.New(): the real
// driver), mapping processes to pods under gc.ProcRoot; in the demo, when
// lib does not initialise (no driver), one over go-nvml's mock, saying so.
// warnScrapesNothing warns when the configuration names no target and pod
// discovery is off (an empty file, say): the exporter would run and serve
// no model's metrics, without a word. The demo's fleet is its targets.
func warnScrapesNothing(c metrics.Config, o options, log *slog.Logger) {
	if !o.demo && c.ScrapesNothing() {
		log.Warn("the configuration has no targets and pod discovery (integrations.kubernetes.enabled) is off: no model server will be scraped", "file", o.configFile)
	}
}

func gpuCollector(demo bool, gc metrics.GPUConfig, lib nvml.Interface, pods gpu.PodResolver, log *slog.Logger) (*gpu.Collector, bool) {
	opts := gpu.Options{NVML: lib, Mapper: gpu.CgroupMapper{ProcRoot: gc.ProcRoot}, Pods: pods, Logger: log}
	if demo {
		return exporterdemo.GPUCollector(opts)
	}
	// Without a driver the collector exports infercast_gpu_collector_up 0.
	return gpu.NewCollector(opts), false
}
