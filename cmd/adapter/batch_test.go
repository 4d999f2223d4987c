package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/infercast/infercast/pkg/batchctl"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/metrics"
)

// rankerExporter serves an exporter's families for model ranker on two
// targets, its requests counter at *total.
func rankerExporter(t *testing.T, total *atomic.Int64) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `# TYPE infercast_model_requests_total counter
infercast_model_requests_total{model="ranker"} %d
infercast_model_requests_total{model="other"} 5
# TYPE infercast_model_batch_size gauge
infercast_model_batch_size{model="ranker",target="a"} 4
infercast_model_batch_size{model="ranker",target="b"} 6
infercast_model_batch_size{model="other",target="c"} 50
# TYPE infercast_model_request_latency_mean_seconds gauge
infercast_model_request_latency_mean_seconds{model="ranker",window="5m"} 9
infercast_model_request_latency_mean_seconds{model="ranker",window="1m"} 0.12
# TYPE infercast_model_queue_time_mean_seconds gauge
infercast_model_queue_time_mean_seconds{model="ranker",window="1m"} 0.02
# TYPE infercast_model_request_latency_seconds summary
infercast_model_request_latency_seconds{model="ranker",window="1m",quantile="0.9"} 0.2
infercast_model_request_latency_seconds{model="ranker",window="1m",quantile="0.99"} 0.3
infercast_model_request_latency_seconds_sum{model="ranker",window="1m"} 1
infercast_model_request_latency_seconds_count{model="ranker",window="1m"} 10
`, total.Load())
	}))
	t.Cleanup(srv.Close)
	return srv
}

// The observation is one target's share of the model's summed counter,
// with the batches and execution time the exporter's averages imply.
func TestBatchObserverPerTarget(t *testing.T) {
	var total atomic.Int64
	srv := rankerExporter(t, &total)
	b := &batchObserver{exporter: exporterLive{url: srv.URL, client: srv.Client()}, model: "ranker"}
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	total.Store(100)
	if _, ok, err := b.observe(ctx, t0); err != nil || ok {
		t.Fatalf("first reading: ok=%v err=%v, want no observation yet", ok, err)
	}
	total.Store(300) // 200 completed in 10 s over two targets
	o, ok, err := b.observe(ctx, t0.Add(10*time.Second))
	if err != nil || !ok {
		t.Fatalf("second reading: ok=%v err=%v", ok, err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	// Per target: 100 requests in batches of 5 (the targets' mean) that
	// ran 0.12 − 0.02 = 0.1 s each.
	if o.Window != 10*time.Second || !near(o.Arrivals, 100) || !near(o.Requests, 100) || !near(o.Batches, 20) ||
		!near(o.ExecSeconds, 2) || !near(o.QueueSeconds, 0.02) || !near(o.LatencyP99Seconds, 0.3) {
		t.Errorf("observation %+v, want 100 requests per target in 20 batches, 2 s of execution, p99 0.3 s", o)
	}
	if o.ArrivalRate() != 10 {
		t.Errorf("arrival rate %g, want one target's 10 req/s", o.ArrivalRate())
	}
}

// statsStub is a StatsReader whose readings the test sets, or whose
// reading fails.
type statsStub struct {
	reading map[string]map[int]batchctl.BatchCounter
	err     error
}

func (s *statsStub) BatchStats(context.Context, string) (map[string]map[int]batchctl.BatchCounter, error) {
	return s.reading, s.err
}

// With an actuator that reads the server's statistics (Triton), the
// observation carries the window's batch size distribution, summed over
// the replicas; after a failed reading it goes on from the averages alone
// (no increase taken across the gap) and the failure is logged once.
func TestBatchObserverBatchStats(t *testing.T) {
	var total atomic.Int64
	srv := rankerExporter(t, &total)
	st := &statsStub{}
	var logs bytes.Buffer
	b := &batchObserver{exporter: exporterLive{url: srv.URL, client: srv.Client()}, model: "ranker", stats: st,
		log: slog.New(slog.NewTextHandler(&logs, nil))}
	ctx := context.Background()
	t0 := time.Unix(1000, 0)
	step := func(i int, reading map[string]map[int]batchctl.BatchCounter, err error) batchctl.Observation {
		t.Helper()
		st.reading, st.err = reading, err
		total.Add(100)
		o, ok, oerr := b.observe(ctx, t0.Add(time.Duration(i)*10*time.Second))
		if oerr != nil || (i > 0 && !ok) {
			t.Fatalf("reading %d: ok=%v err=%v", i, ok, oerr)
		}
		return o
	}
	step(0, map[string]map[int]batchctl.BatchCounter{"a:8000": {4: {Count: 10, Seconds: 1}}, "b:8000": {4: {Count: 5, Seconds: 0.5}}}, nil)
	o := step(1, map[string]map[int]batchctl.BatchCounter{"a:8000": {4: {Count: 12, Seconds: 1.2}, 8: {Count: 1, Seconds: 0.15}}, "b:8000": {4: {Count: 8, Seconds: 0.8}}}, nil)
	want := []batchctl.BatchStat{{Size: 4, Count: 5, ExecSeconds: 0.5}, {Size: 8, Count: 1, ExecSeconds: 0.15}}
	if len(o.BatchStats) != 2 || o.BatchStats[0].Size != 4 || o.BatchStats[0].Count != 5 || math.Abs(o.BatchStats[0].ExecSeconds-0.5) > 1e-9 ||
		o.BatchStats[1] != want[1] {
		t.Errorf("batch stats %+v, want %+v", o.BatchStats, want)
	}
	for i := 2; i <= 3; i++ { // the server's statistics fail twice: one warning
		if o := step(i, nil, errors.New("connection refused")); len(o.BatchStats) != 0 || o.Batches == 0 {
			t.Errorf("reading %d without statistics: %+v, want the averages alone", i, o)
		}
	}
	if n := strings.Count(logs.String(), "connection refused"); n != 1 {
		t.Errorf("%d warnings for one failure over two windows, want 1:\n%s", n, logs.String())
	}
	if o := step(4, map[string]map[int]batchctl.BatchCounter{"a:8000": {4: {Count: 20, Seconds: 2}, 8: {Count: 1, Seconds: 0.15}}}, nil); len(o.BatchStats) != 0 {
		t.Errorf("first reading after the failure: %+v, want no increase across the gap", o.BatchStats)
	}
}

// ClumpSizeSum is the increase of the clump counter over the same
// interval as the requests', one target's share like Arrivals: clumps of
// 4 read as 4 per arrival. A counter that went down (the exporter
// restarted), or one missing at either end of the interval, is no
// measurement (0, Poisson assumed), never a negative or a longer
// interval's increase.
func TestBatchObserverClumps(t *testing.T) {
	const absent = -1
	var total, clumps atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintf(w, `# TYPE infercast_model_requests_total counter
infercast_model_requests_total{model="ranker"} %d
# TYPE infercast_model_batch_size gauge
infercast_model_batch_size{model="ranker",target="a"} 4
infercast_model_batch_size{model="ranker",target="b"} 6
# TYPE infercast_model_request_latency_mean_seconds gauge
infercast_model_request_latency_mean_seconds{model="ranker",window="1m"} 0.12
`, total.Load())
		if c := clumps.Load(); c != absent {
			fmt.Fprintf(w, `# TYPE infercast_model_request_clump_size_sum_total counter
infercast_model_request_clump_size_sum_total{model="ranker"} %d
infercast_model_request_clump_size_sum_total{model="other"} 7777
`, c)
		}
	}))
	defer srv.Close()
	steps := []struct {
		name      string
		clumps    int64
		wantClump float64
	}{
		{name: "absent before", clumps: absent},
		{name: "appears: no interval yet", clumps: 1000, wantClump: 0},
		// +800 over two targets: 400 for one target's 100 arrivals.
		{name: "clumps of 4", clumps: 1800, wantClump: 400},
		{name: "reset", clumps: 50, wantClump: 0},
		{name: "after the reset", clumps: 250, wantClump: 100},
		{name: "gone", clumps: absent, wantClump: 0},
		{name: "back: no interval yet", clumps: 900, wantClump: 0},
		{name: "clumps of 2", clumps: 1300, wantClump: 200},
	}
	b := &batchObserver{exporter: exporterLive{url: srv.URL, client: srv.Client()}, model: "ranker"}
	ctx := context.Background()
	now := time.Unix(1000, 0)
	for i, s := range steps {
		total.Store(int64(100 + 200*i)) // 200 completed every 10 s over two targets
		clumps.Store(s.clumps)
		o, ok, err := b.observe(ctx, now.Add(time.Duration(i)*10*time.Second))
		if i == 0 {
			if ok || err != nil {
				t.Fatalf("%s: ok=%v err=%v, want no observation yet", s.name, ok, err)
			}
			continue
		}
		if err != nil || !ok {
			t.Fatalf("%s: ok=%v err=%v", s.name, ok, err)
		}
		if o.Arrivals != 100 || o.ClumpSizeSum != s.wantClump {
			t.Errorf("%s: arrivals %g, clump size sum %g; want 100 and %g", s.name, o.Arrivals, o.ClumpSizeSum, s.wantClump)
		}
		if err := o.Validate(); err != nil {
			t.Errorf("%s: %v", s.name, err)
		}
	}
}

type planMap map[string]capacity.Plan

func (p planMap) Get(w string) (capacity.Plan, bool) { pl, ok := p[w]; return pl, ok }

// A model planning for a workload's forecast gets one replica's share of
// a fresh plan, and nothing from a stale or missing one.
func TestForecastPerServer(t *testing.T) {
	now := time.Unix(10_000, 0)
	plans := planMap{
		"search": {Workload: "search", Time: now.Add(-time.Minute), ForecastRate: 300,
			Tiers: map[string]capacity.TierTarget{capacity.TierOnDemand: {Replicas: 2}, capacity.TierSpot: {Replicas: 4}}},
		"stale": {Workload: "stale", Time: now.Add(-time.Hour), ForecastRate: 300,
			Tiers: map[string]capacity.TierTarget{capacity.TierOnDemand: {Replicas: 3}}},
		"zero": {Workload: "zero", Time: now, ForecastRate: 300},
	}
	tests := []struct {
		workload string
		plans    planReader
		want     float64
	}{
		{"search", plans, 50},
		{"stale", plans, 0},
		{"zero", plans, 0},
		{"missing", plans, 0},
		{"", plans, 0},
		{"search", nil, 0},
	}
	for _, tc := range tests {
		if got := forecastPerServer(tc.plans, tc.workload, now); got != tc.want {
			t.Errorf("workload %q: %g req/s per server, want %g", tc.workload, got, tc.want)
		}
	}
}

// The whole path of clump sizes in adapter serve: a gateway in front of
// two model servers counts, for each request, the requests that arrived
// at the same instant (clumps of 4); the exporter reads it through a
// generic mapping's request_clump_size_sum_total, and the batch model
// serve builds from its config learns clumps of 4 from the exporter's
// /metrics. Without the counter it plans for Poisson arrivals (1).
func TestClumpsFromGatewayToController(t *testing.T) {
	for _, tc := range []struct {
		name      string
		gateway   bool
		wantClump float64
	}{
		{name: "gateway counts clumps of 4", gateway: true, wantClump: 4},
		{name: "no clump counter", gateway: false, wantClump: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var step atomic.Int64
			server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				n := 1000 + 100*step.Load() // +100 requests per step, 0.1 s each
				fmt.Fprintf(w, `# TYPE srv_requests_total counter
srv_requests_total{model="ranker"} %d
# TYPE srv_batch gauge
srv_batch{model="ranker"} 8
# TYPE srv_latency_seconds histogram
srv_latency_seconds_bucket{model="ranker",le="0.25"} %d
srv_latency_seconds_bucket{model="ranker",le="+Inf"} %d
srv_latency_seconds_sum{model="ranker"} %g
srv_latency_seconds_count{model="ranker"} %d
`, n, n, n, 0.1*float64(n), n)
			}))
			defer server.Close()
			gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				// Both servers' requests, in clumps of 4.
				fmt.Fprintf(w, "# TYPE gw_clump_size_sum_total counter\ngw_clump_size_sum_total{model=\"ranker\"} %d\n", 4*(2000+200*step.Load()))
			}))
			defer gateway.Close()

			cfgText := fmt.Sprintf(`targets:
  - {name: s0, url: '%[1]s', dialect: generic, mapping: server}
  - {name: s1, url: '%[1]s', dialect: generic, mapping: server}
generic_mappings:
  server:
    model_label: model
    requests_total: srv_requests_total
    batch_size: srv_batch
    request_latency_histogram: srv_latency_seconds
  gateway:
    model_label: model
    request_clump_size_sum_total: gw_clump_size_sum_total
`, server.URL)
			if tc.gateway {
				cfgText = strings.Replace(cfgText, "generic_mappings:", fmt.Sprintf("  - {name: gw, url: '%s', dialect: generic, mapping: gateway}\ngeneric_mappings:", gateway.URL), 1)
			}
			cfg, err := metrics.ParseConfig([]byte(cfgText))
			if err != nil {
				t.Fatal(err)
			}
			clock := time.Unix(1_750_000_000, 0)
			var clockMu sync.Mutex
			now := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return clock }
			exp, err := metrics.New(cfg, metrics.Options{Now: now})
			if err != nil {
				t.Fatal(err)
			}
			expReg := prometheus.NewPedanticRegistry()
			expReg.MustRegister(exp)
			expSrv := httptest.NewServer(promhttp.HandlerFor(expReg, promhttp.HandlerOpts{}))
			defer expSrv.Close()

			bfile := filepath.Join(t.TempDir(), "batch.yaml")
			if err := os.WriteFile(bfile, []byte("models:\n  - model: ranker\n    slo: 500ms\n    max_batch_size: 32\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			ctlReg := prometheus.NewPedanticRegistry()
			models, err := newBatchModels(bfile, expSrv.URL, nil, ctlReg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			for i := range 12 {
				step.Store(int64(i))
				exp.Cycle(ctx)
				models[0].step(ctx, now())
				clockMu.Lock()
				clock = clock.Add(10 * time.Second)
				clockMu.Unlock()
			}
			got := math.NaN()
			mfs, err := ctlReg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() == "infercast_batch_arrival_clump_size" {
					for _, m := range mf.GetMetric() {
						if label(m, "model") == "ranker" {
							got = m.GetGauge().GetValue()
						}
					}
				}
			}
			if math.Abs(got-tc.wantClump) > 1e-9 {
				t.Errorf(`infercast_batch_arrival_clump_size{model="ranker"} = %g, want %g`, got, tc.wantClump)
			}
		})
	}
}
