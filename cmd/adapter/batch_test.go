package main

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/capacity"
)

// The observation is one target's share of the model's summed counter,
// with the batches and execution time the exporter's averages imply.
func TestBatchObserverPerTarget(t *testing.T) {
	var total atomic.Int64
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
	defer srv.Close()
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
