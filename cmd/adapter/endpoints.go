package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/provider"
	"github.com/infercast/infercast/pkg/scaler"
	"github.com/infercast/infercast/pkg/scaler/hpa"
)

// adapterEndpoints are what the adapter shows autoscalers and operators
// over one plan cache: KEDA's external scaler (gRPC), the custom metrics
// API (custom.metrics.k8s.io, for the plain HPA; optional) and the web mux
// (/metrics, /healthz, /readyz, and POST /-/reload when a reload is given).
// `adapter serve` and `adapter demo` both build them here, so the demo
// serves what serve does.
type adapterEndpoints struct {
	scaler *scaler.Scaler
	grpc   *scaler.Server
	cmAPI  *provider.APIServer // nil: off
	web    *http.Server
	// The bound listeners; customMetrics is nil when the API is off.
	grpcL, customMetricsL, webL net.Listener
	shutdownTimeout             time.Duration
}

// endpointsConfig says where and how the endpoints listen.
type endpointsConfig struct {
	grpcAddr       string
	grpcTLS        scaler.TLSFiles
	grpcReflection bool
	// cmAddr is the custom metrics API's address; empty: off. cmServer's
	// Listener is bound here.
	cmAddr    string
	cmMapping provider.NameMapping
	// cmLabelled maps labelled Deployments (--kubernetes.pods); nil: names.
	cmLabelled provider.LabelledDeployments
	// replicas, when set, gives a tier's Deployment's status.replicas
	// (--kubernetes.pods): the values compensating the HPA's tolerance are
	// then computed from what it runs, not from a belief.
	replicas func(workload, tier string) (int, bool)
	// downscaleWindow is the HPAs' scale-down stabilisation window
	// (--hpa.downscale-stabilization).
	downscaleWindow time.Duration
	cmServer        provider.APIServerConfig
	webAddr         string
	// reload, when set, serves POST /-/reload (400 with its error).
	reload          func() error
	shutdownTimeout time.Duration
}

// newAdapterEndpoints builds the endpoints and binds their listeners; on an
// error nothing stays bound.
func newAdapterEndpoints(cache *capacity.Cache, policy *capacity.PolicyFile, reg *prometheus.Registry, log *slog.Logger, cfg endpointsConfig) (_ *adapterEndpoints, err error) {
	e := &adapterEndpoints{shutdownTimeout: cfg.shutdownTimeout}
	defer func() {
		if err != nil {
			e.closeListeners()
		}
	}()
	cat := policyCatalog{policy}
	// One compensator for both faces: their keys differ (a ScaledObject,
	// a Deployment), the Deployments' replica counts are the same.
	co := hpa.Options{Tolerance: cat.tolerance, DownscaleWindow: cfg.downscaleWindow}
	if cfg.replicas != nil {
		co.Current = func(k hpa.Key) (int, bool) { return cfg.replicas(k.Workload, k.Tier) }
	}
	comp := hpa.NewCompensatorWith(co)
	if e.scaler, err = scaler.New(cache, cat, scaler.Options{Compensator: comp, Logger: log}); err != nil {
		return nil, err
	}
	if e.grpc, err = scaler.NewServer(e.scaler, scaler.ServerConfig{TLS: cfg.grpcTLS, Reflection: cfg.grpcReflection, Registerer: reg, Logger: log}); err != nil {
		return nil, err
	}
	if e.grpcL, err = net.Listen("tcp", cfg.grpcAddr); err != nil {
		return nil, fmt.Errorf("gRPC: %w", err)
	}

	if cfg.cmAddr != "" {
		p, err := provider.New(cache, cat, provider.Options{Mapping: cfg.cmMapping, Labelled: cfg.cmLabelled, Compensator: comp, Logger: log})
		if err != nil {
			return nil, err
		}
		if e.customMetricsL, err = net.Listen("tcp", cfg.cmAddr); err != nil {
			return nil, fmt.Errorf("custom metrics: %w", err)
		}
		sc := cfg.cmServer
		sc.Listener = e.customMetricsL
		if e.cmAPI, err = provider.NewAPIServer(p, sc); err != nil {
			return nil, err
		}
	}

	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, MaxRequestsInFlight: 10}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if missing := unplanned(policy.Current(), cache); len(missing) > 0 {
			http.Error(w, "no plan yet for: "+strings.Join(missing, ", "), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if cfg.reload != nil {
		mux.HandleFunc("POST /-/reload", func(w http.ResponseWriter, _ *http.Request) {
			if err := cfg.reload(); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			fmt.Fprintln(w, "reloaded")
		})
	}
	if e.webL, err = net.Listen("tcp", cfg.webAddr); err != nil {
		return nil, fmt.Errorf("web: %w", err)
	}
	e.web = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	return e, nil
}

// addTo runs the endpoints as actors of g: the custom metrics API until ctx
// ends, the others until interrupted (then drained within the shutdown
// timeout); cancel is called when the API stops.
func (e *adapterEndpoints) addTo(g *run.Group, ctx context.Context, cancel context.CancelFunc) {
	g.Add(func() error { return e.grpc.Serve(e.grpcL) }, func(error) {
		sctx, c := context.WithTimeout(context.Background(), e.shutdownTimeout)
		defer c()
		e.grpc.Shutdown(sctx)
	})
	if e.cmAPI != nil {
		g.Add(func() error { return untilDone(ctx, e.cmAPI.Run(ctx)) }, func(error) { cancel() })
	}
	g.Add(func() error {
		if err := e.web.Serve(e.webL); !errors.Is(err, http.ErrServerClosed) {
			return err
		}
		return nil
	}, func(error) {
		sctx, c := context.WithTimeout(context.Background(), e.shutdownTimeout)
		defer c()
		_ = e.web.Shutdown(sctx)
	})
}

// start serves the endpoints in the background; stop shuts them down.
func (e *adapterEndpoints) start(ctx context.Context, log *slog.Logger) (stop func()) {
	var g run.Group
	ctx, cancel := context.WithCancel(ctx)
	e.addTo(&g, ctx, cancel)
	g.Add(func() error { <-ctx.Done(); return nil }, func(error) { cancel() })
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := g.Run(); err != nil {
			log.Error("adapter endpoints stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// closeListeners releases what newAdapterEndpoints bound.
func (e *adapterEndpoints) closeListeners() {
	for _, l := range []net.Listener{e.grpcL, e.customMetricsL, e.webL} {
		if l != nil {
			_ = l.Close()
		}
	}
}
