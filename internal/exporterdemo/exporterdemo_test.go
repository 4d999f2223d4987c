package exporterdemo

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/infercast/infercast/internal/fleet"
	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/metrics/spot"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// families is what Start must fill: Families, the cold starts of its
// restarts and the config-reload status.
var families = append(slices.Clone(Families),
	"infercast_cold_starts_total", "infercast_cold_start_duration_seconds",
	"infercast_exporter_config_last_reload_successful")

// TestStartFillsEveryFamily drives a simulated fleet on its own clock, as
// `adapter demo` does, with Start's integrations registered in place of the
// Exporter, and reads every family back over HTTP.
func TestStartFillsEveryFamily(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testLogger(t)
	fc := fleet.Default()
	fl, err := fleet.New(fc, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := fl.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() {
		sctx, scancel := context.WithTimeout(context.Background(), closeTimeout)
		defer scancel()
		_ = fl.Close(sctx)
	}()
	exp, err := metrics.New(metrics.DefaultConfig(), metrics.Options{Now: fl.Now, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	targets, err := fleet.ExporterTargets(fl, fc)
	if err != nil {
		t.Fatal(err)
	}
	exp.SetTargets(Source, targets)

	d, err := Start(ctx, Options{Exporter: exp, Fleet: fl, FleetConfig: fc, Logger: log, RestartFirst: 500 * time.Millisecond, RestartEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	reg := prometheus.NewRegistry()
	reg.MustRegister(d)
	url := serve(t, promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}))

	var body string
	var mfs map[string]*dto.MetricFamily
	missing := families
	for range 200 {
		fl.Advance(5 * time.Second)
		exp.Cycle(ctx)
		body = get(t, url)
		mfs = testutil.ParseExposition(t, body)
		missing = missing[:0:0]
		for _, n := range families {
			if mfs[n] == nil || len(mfs[n].GetMetric()) == 0 {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond) // the spot watcher and the restarts run on the wall clock
	}
	if len(missing) > 0 {
		t.Fatalf("never filled: %v", missing)
	}

	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, m := range mfs["infercast_target_up"].GetMetric() {
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("demo target down: %v", m.GetLabel())
		}
	}
	collectors := map[string]float64{}
	for _, m := range mfs["infercast_collector_scrape_success"].GetMetric() {
		collectors[label(m, "collector")] = m.GetGauge().GetValue()
	}
	for _, c := range []string{"targets", "gpu", "spot_aws", "cost"} {
		if v, ok := collectors[c]; !ok || v != 1 {
			t.Errorf("collector %q success = %v (present %v), want 1", c, v, ok)
		}
	}
	sim := false
	for _, m := range mfs["infercast_gpu_info"].GetMetric() {
		sim = sim || label(m, "simulated") == "true"
	}
	if sim != d.Simulated {
		t.Errorf(`infercast_gpu_info simulated="true" is %v, Integrations.Simulated is %v`, sim, d.Simulated)
	}
	if d.Simulated {
		// The mock's pods, with their memory and SM utilisation.
		for _, n := range []string{"infercast_gpu_pod_memory_used_bytes", "infercast_gpu_pod_utilization_ratio", "infercast_gpu_mig_memory_used_bytes"} {
			if mfs[n] == nil || len(mfs[n].GetMetric()) == 0 {
				t.Errorf("%s missing from the simulated GPUs", n)
			}
		}
	}
	for _, m := range mfs["infercast_cold_starts_total"].GetMetric() {
		if label(m, "model") != "summarise" {
			t.Errorf("cold start of %q, want only the restarted summarise", label(m, "model"))
		}
	}
}

// TestFakeIMDS: the demo's metadata service answers as EC2 does on a spot
// instance with nothing announced: the scheduled events an empty list, so
// the AWS source reads no warning and no error.
func TestFakeIMDS(t *testing.T) {
	ep, stop, err := FakeIMDS(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	c := &http.Client{Timeout: 5 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(ep + "/latest/meta-data/events/maintenance/scheduled")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || string(b) != "[]" {
		t.Errorf("events/maintenance/scheduled: HTTP %d %q (%v), want 200 []", resp.StatusCode, b, err)
	}
	src := &spot.AWSSource{Endpoint: ep, Client: c}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if ws, err := src.Warnings(ctx, time.Now()); len(ws) > 0 || err != nil {
		t.Errorf("warnings %v, %v; want none", ws, err)
	}
}

func TestStartRefusesBadOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := Start(ctx, Options{}); err == nil || err.Error() != "exporterdemo: Options.Exporter and Options.Fleet are required" {
		t.Errorf("Start(no exporter) = %v", err)
	}
	fc := fleet.Config{Seed: 1, Servers: fleet.Default().Servers[:1]}
	fl, err := fleet.New(fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	exp, err := metrics.New(metrics.DefaultConfig(), metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Start(ctx, Options{Exporter: exp, Fleet: fl, FleetConfig: fc})
	if want := `exporterdemo: the fleet has no server "summarise-tgi" to restart for cold starts`; err == nil || err.Error() != want {
		t.Errorf("Start(no restart server) = %v, want %q", err, want)
	}
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return "http://" + ln.Addr().String() + "/metrics"
}

func get(t *testing.T, url string) string {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	defer c.CloseIdleConnections()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d: %s", url, resp.StatusCode, b)
	}
	return string(b)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
