package metrics

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"
)

const genericBody = `# TYPE my_requests_total counter
my_requests_total{svc="ranker"} %d
# TYPE my_queue gauge
my_queue{svc="ranker"} 9
# TYPE my_latency_ms histogram
my_latency_ms_bucket{svc="ranker",le="10"} %d
my_latency_ms_bucket{svc="ranker",le="100"} %d
my_latency_ms_bucket{svc="ranker",le="+Inf"} %d
my_latency_ms_sum{svc="ranker"} %d
my_latency_ms_count{svc="ranker"} %d
`

// TestGenericMapping: a server infercast does not know, mapped in the
// config, with millisecond histograms scaled to seconds.
func TestGenericMapping(t *testing.T) {
	clock := newFakeClock()
	srv := newBodyServer(t)
	e := newTestExporterWith(t, clock, func(c *Config) {
		c.GenericMappings = map[string]GenericConfig{"mine": {
			ModelLabel: "svc", RequestsTotal: "my_requests_total", QueueWaiting: "my_queue",
			RequestLatency: "my_latency_ms", HistogramUnitSeconds: 0.001,
		}}
	}, TargetConfig{Name: "g", URL: srv.URL, Dialect: DialectGeneric, Mapping: "mine"})
	srv.set(fmt.Appendf(nil, genericBody, 100, 50, 90, 100, 2000, 100))
	e.Cycle(context.Background())
	clock.Advance(20 * time.Second)
	// +200 requests: 100 under 10 ms, 80 in (10,100] ms, 20 above.
	srv.set(fmt.Appendf(nil, genericBody, 300, 150, 270, 300, 8000, 300))
	e.Cycle(context.Background())

	got := gatherValues(t, e)
	for k, want := range map[string]float64{
		`infercast_model_requests_per_second{model="ranker",window="1m"}`: 10,
		`infercast_model_requests_waiting{model="ranker",target="g"}`:     9,
		`infercast_model_queue_drain_seconds{model="ranker",target="g"}`:  0.9,
		// rank 100 of 200 ends the first bucket: 10 ms.
		`infercast_model_request_latency_seconds{model="ranker",quantile="0.5",window="1m"}`: 0.01,
		// rank 180 ends (0.01,0.1]: 0.1 s.
		`infercast_model_request_latency_seconds{model="ranker",quantile="0.9",window="1m"}`: 0.1,
		`infercast_model_request_latency_mean_seconds{model="ranker",window="1m"}`:           0.03,
	} {
		if v, ok := got[k]; !ok || math.Abs(v-want) > 1e-9 {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
}
