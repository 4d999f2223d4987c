package metrics

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

// replicaCounts is what one Ray Serve replica's series say: its requests,
// and its latency histogram's observations up to 100 ms and above.
type replicaCounts struct{ requests, fast, slow float64 }

// rayReplicasBody is one deployment, llm, served by the given replicas
// (Ray Serve's node endpoint has a series per replica), in replica order.
func rayReplicasBody(replicas map[string]replicaCounts) []byte {
	var b strings.Builder
	for _, r := range slices.Sorted(mapsKeys(replicas)) {
		c := replicas[r]
		l := `deployment="llm",replica="` + r + `"`
		fmt.Fprintf(&b, "ray_serve_deployment_request_counter_total{%s} %g\n", l, c.requests)
		fmt.Fprintf(&b, "ray_serve_deployment_processing_latency_ms_bucket{%s,le=\"100\"} %g\n", l, c.fast)
		fmt.Fprintf(&b, "ray_serve_deployment_processing_latency_ms_bucket{%s,le=\"+Inf\"} %g\n", l, c.fast+c.slow)
		// Fast requests take 50 ms, slow ones 500 ms.
		fmt.Fprintf(&b, "ray_serve_deployment_processing_latency_ms_sum{%s} %g\n", l, 50*c.fast+500*c.slow)
		fmt.Fprintf(&b, "ray_serve_deployment_processing_latency_ms_count{%s} %g\n", l, c.fast+c.slow)
	}
	return []byte(b.String())
}

// TestCountersPerSeries: a model's increase is the sum of its series'
// increases, each with its own reset handling, never a reset read off
// their sum. A replica whose series disappear (autoscaling ended it)
// adds nothing; one whose counters went down restarted, and adds its new
// values; a series first seen adds nothing for its first sample (its
// baseline, as a target's first scrape and a new model's are); one that
// returns within the longest window adds its increase across the gap.
// The same holds for the request counter and for the latency histogram's
// count, sum and buckets.
func TestCountersPerSeries(t *testing.T) {
	type step struct {
		replicas map[string]replicaCounts
		// Since the first scrape: requests, observations, and those of
		// them up to 100 ms.
		requests, observed, fast float64
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"a replica disappears", []step{
			{map[string]replicaCounts{"r1": {10000, 6000, 4000}, "r2": {10000, 6000, 4000}}, 0, 0, 0},
			{map[string]replicaCounts{"r1": {10100, 6060, 4040}, "r2": {10100, 6060, 4040}}, 200, 200, 120},
			{map[string]replicaCounts{"r1": {10200, 6120, 4080}}, 300, 300, 180},
			{map[string]replicaCounts{"r1": {10300, 6180, 4120}}, 400, 400, 240},
		}},
		{"a replica restarts while the other grows", []step{
			{map[string]replicaCounts{"r1": {10000, 6000, 4000}, "r2": {10000, 6000, 4000}}, 0, 0, 0},
			{map[string]replicaCounts{"r1": {10100, 6060, 4040}, "r2": {10100, 6060, 4040}}, 200, 200, 120},
			{map[string]replicaCounts{"r1": {10200, 6120, 4080}, "r2": {50, 10, 40}}, 350, 350, 190},
			{map[string]replicaCounts{"r1": {10300, 6180, 4120}, "r2": {150, 110, 40}}, 550, 550, 350},
		}},
		{"a new replica appears", []step{
			{map[string]replicaCounts{"r1": {10000, 6000, 4000}}, 0, 0, 0},
			{map[string]replicaCounts{"r1": {10100, 6060, 4040}}, 100, 100, 60},
			{map[string]replicaCounts{"r1": {10200, 6120, 4080}, "r2": {40, 40, 0}}, 200, 200, 120},
			{map[string]replicaCounts{"r1": {10300, 6180, 4120}, "r2": {90, 90, 0}}, 350, 350, 230},
		}},
		{"a replica's series miss a scrape", []step{
			{map[string]replicaCounts{"r1": {10000, 6000, 4000}, "r2": {10000, 6000, 4000}}, 0, 0, 0},
			{map[string]replicaCounts{"r1": {10100, 6060, 4040}}, 100, 100, 60},
			{map[string]replicaCounts{"r1": {10200, 6120, 4080}, "r2": {10200, 6120, 4080}}, 400, 400, 240},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newBodyServer(t)
			e := newTestExporter(t, clock, TargetConfig{Name: "node", URL: srv.URL, Dialect: DialectRayServe})
			for i, s := range tc.steps {
				if i > 0 {
					clock.Advance(15 * time.Second)
				}
				srv.set(rayReplicasBody(s.replicas))
				e.Cycle(context.Background())
				got := gatherValues(t, e)
				want := map[string]float64{`infercast_model_requests_total{model="llm"}`: s.requests}
				if i > 0 {
					// Every step is within the 1m and 5m windows.
					dt := 15 * float64(i)
					want[`infercast_model_requests_per_second{model="llm",window="1m"}`] = s.requests / dt
					want[`infercast_model_request_latency_seconds_count{model="llm",window="5m"}`] = s.observed
					want[`infercast_model_request_latency_seconds_sum{model="llm",window="5m"}`] = 0.05*s.fast + 0.5*(s.observed-s.fast)
				}
				for k, w := range want {
					if v, ok := got[k]; !ok || math.Abs(v-w) > 1e-9 {
						t.Errorf("step %d: %s = %v (exported %v), want %v", i, k, v, ok, w)
					}
				}
			}
		})
	}
}

// TestHistogramSeriesRestartsTogether: a histogram series whose count
// went down restarted, all of it: each of its buckets adds its new value,
// even one that happens to stand higher than before the restart.
func TestHistogramSeriesRestartsTogether(t *testing.T) {
	clock := newFakeClock()
	srv := newBodyServer(t)
	e := newTestExporter(t, clock, TargetConfig{Name: "node", URL: srv.URL, Dialect: DialectRayServe})
	srv.set(rayReplicasBody(map[string]replicaCounts{"r1": {10, 2, 8}}))
	e.Cycle(context.Background())
	clock.Advance(15 * time.Second)
	// Restarted: 6 requests since, all fast. Read bucket by bucket, the
	// fast bucket would have grown by 4 while the count restarted at 6.
	srv.set(rayReplicasBody(map[string]replicaCounts{"r1": {6, 6, 0}}))
	e.Cycle(context.Background())
	got := gatherValues(t, e)
	// All 6 are fast: the median lies in (0, 100 ms], at rank 3 of 6.
	for k, w := range map[string]float64{
		`infercast_model_requests_total{model="llm"}`:                                      6,
		`infercast_model_request_latency_seconds_count{model="llm",window="5m"}`:           6,
		`infercast_model_request_latency_seconds_sum{model="llm",window="5m"}`:             0.3,
		`infercast_model_request_latency_seconds{model="llm",quantile="0.5",window="5m"}`:  0.05,
		`infercast_model_request_latency_seconds{model="llm",quantile="0.99",window="5m"}`: 0.099,
	} {
		if v, ok := got[k]; !ok || math.Abs(v-w) > 1e-9 {
			t.Errorf("%s = %v (exported %v), want %v", k, v, ok, w)
		}
	}
}

// TestSeriesStateIsBounded: the last value of a series that is gone for
// longer than the longest window is forgotten, so churning series (a
// replica per autoscaling step) do not grow a target's state; if one
// returns after that it is a new series, and adds nothing for its first
// sample.
func TestSeriesStateIsBounded(t *testing.T) {
	clock := newFakeClock()
	srv := newBodyServer(t)
	e := newTestExporter(t, clock, TargetConfig{Name: "node", URL: srv.URL, Dialect: DialectRayServe})
	const replicas = 50
	for i := range replicas {
		if i > 0 {
			clock.Advance(15 * time.Second)
		}
		// One replica at a time, each replaced by the next.
		srv.set(rayReplicasBody(map[string]replicaCounts{fmt.Sprint("r", i): {100, 100, 0}}))
		e.Cycle(context.Background())
	}
	// 5m is 20 scrapes: the replicas seen in the last 20 scrapes at most,
	// each with its 5 series.
	if n := len(e.states["node"].ing.known); n > 21*5 {
		t.Errorf("%d series remembered for %d replicas seen in turn", n, replicas)
	}
	if v := gatherValues(t, e)[`infercast_model_requests_total{model="llm"}`]; v != 0 {
		t.Errorf("requests_total = %v: replicas first seen at 100 each added their baseline", v)
	}
	clock.Advance(15 * time.Second)
	srv.set(rayReplicasBody(map[string]replicaCounts{"r0": {200, 200, 0}, fmt.Sprint("r", replicas-1): {100, 100, 0}}))
	e.Cycle(context.Background())
	if v := gatherValues(t, e)[`infercast_model_requests_total{model="llm"}`]; v != 0 {
		t.Errorf("requests_total = %v: r0, forgotten, returned and was counted from its old value", v)
	}
}
