package metrics

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
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

// gatewayBody is what a gateway in front of the model servers exposes: its
// process start, the requests it passed on, and for each request the size
// of the clump it arrived in, summed.
const gatewayBody = `# TYPE process_start_time_seconds gauge
process_start_time_seconds %g
# TYPE gw_requests_total counter
gw_requests_total{model="m"} %g
# TYPE gw_clump_size_sum_total counter
gw_clump_size_sum_total{model="m"} %g
`

func gatewayMapping(c *Config) {
	c.GenericMappings = map[string]GenericConfig{"gw": {
		ModelLabel: "model", RequestsTotal: "gw_requests_total",
		RequestClumpSizeSumTotal: "gw_clump_size_sum_total", HistogramUnitSeconds: 1,
	}}
}

// TestClumpSizeSumIsACounter: a generic mapping's
// request_clump_size_sum_total is exported per model as
// infercast_model_request_clump_size_sum_total, made monotone exactly as
// infercast_model_requests_total is (TestRequestsTotalIsACounter): first
// sight counts nothing, a process restart or a counter reset never lowers
// it, a down target withholds it and is counted across the gap — and a
// reset of the clump counter alone leaves the request counter alone.
func TestClumpSizeSumIsACounter(t *testing.T) {
	clock := newFakeClock()
	a, b := newBodyServer(t), newBodyServer(t)
	e := newTestExporterWith(t, clock, gatewayMapping,
		TargetConfig{Name: "a", URL: a.URL, Dialect: DialectGeneric, Mapping: "gw"},
		TargetConfig{Name: "b", URL: b.URL, Dialect: DialectGeneric, Mapping: "gw"})
	start := float64(clock.Now().Unix() - 3600)
	// Clumps of 4: every request adds 4 to the clump sizes.
	body := func(start, n, clumps float64) []byte { return fmt.Appendf(nil, gatewayBody, start, n, clumps) }
	noClumps := func(start, n float64) []byte {
		b := body(start, n, 0)
		return b[:bytes.Index(b, []byte("# TYPE gw_clump"))]
	}
	const (
		reqKey   = `infercast_model_requests_total{model="m"}`
		clumpKey = `infercast_model_request_clump_size_sum_total{model="m"}`
	)
	steps := []struct {
		name                string
		a, b                []byte
		bDown               bool
		wantReqs, wantClump float64 // -1: not exported
	}{
		{name: "first sight counts nothing", a: body(start, 1000, 4000), b: body(start, 50, 200), wantReqs: 0, wantClump: 0},
		{name: "increases of both targets", a: body(start, 1300, 5200), b: body(start, 80, 320), wantReqs: 330, wantClump: 1320},
		{name: "a restarts: 60 since", a: body(start+3500, 60, 240), b: body(start, 100, 400), wantReqs: 410, wantClump: 1640},
		{name: "b down: withheld", a: body(start+3500, 70, 280), bDown: true, wantReqs: -1, wantClump: -1},
		{name: "b back, counted across the gap", a: body(start+3500, 70, 280), b: body(start, 130, 520), wantReqs: 450, wantClump: 1800},
		{name: "b's counters reset without a restart", a: body(start+3500, 70, 280), b: body(start, 5, 20), wantReqs: 455, wantClump: 1820},
		{name: "b's clump counter alone resets", a: body(start+3500, 70, 280), b: body(start, 7, 6), wantReqs: 457, wantClump: 1826},
		// A counter that goes or comes back starts b's windows afresh; the
		// request counter, there throughout, counts on across the change
		// (b's 2 requests here, 2 next); the clump counter comes back from
		// zero, its increase across the change lost (24), and no total
		// drops.
		{name: "b stops exposing clumps", a: body(start+3500, 80, 320), b: noClumps(start, 9), wantReqs: 469, wantClump: 1866},
		{name: "b exposes clumps again", a: body(start+3500, 90, 360), b: body(start, 11, 30), wantReqs: 481, wantClump: 1906},
		{name: "both count on", a: body(start+3500, 100, 400), b: body(start, 21, 70), wantReqs: 501, wantClump: 1986},
	}
	for i, s := range steps {
		got := twoTargetCycle(t, e, clock, i, a, b, s.a, s.b, s.bDown)
		for _, c := range []struct {
			key  string
			want float64
		}{{reqKey, s.wantReqs}, {clumpKey, s.wantClump}} {
			v, ok := got[c.key]
			switch {
			case c.want < 0 && ok:
				t.Errorf("%s: %s = %v, want it withheld", s.name, c.key, v)
			case c.want >= 0 && (!ok || v != c.want):
				t.Errorf("%s: %s = %v (present %v), want %v", s.name, c.key, v, ok, c.want)
			}
		}
	}

	// The same family shape as infercast_model_requests_total: a counter
	// labelled by model alone.
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(e)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	shape := map[string]string{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var names []string
			for _, l := range m.GetLabel() {
				names = append(names, l.GetName())
			}
			shape[mf.GetName()] = mf.GetType().String() + " " + strings.Join(names, ",")
		}
	}
	if want := shape["infercast_model_requests_total"]; want != "COUNTER model" || shape["infercast_model_request_clump_size_sum_total"] != want {
		t.Errorf("clump sizes exported as %q, requests as %q; want both COUNTER model",
			shape["infercast_model_request_clump_size_sum_total"], want)
	}
}

// TestClumpSizeSumAbsent: without request_clump_size_sum_total in the
// mapping (or with a built-in dialect) there is no clump series, even when
// the target exposes the counter: absent means not measured, never 0.
func TestClumpSizeSumAbsent(t *testing.T) {
	clock := newFakeClock()
	srv := newBodyServer(t)
	e := newTestExporterWith(t, clock, func(c *Config) {
		c.GenericMappings = map[string]GenericConfig{"plain": {ModelLabel: "model", RequestsTotal: "gw_requests_total", HistogramUnitSeconds: 1}}
	},
		TargetConfig{Name: "g", URL: srv.URL, Dialect: DialectGeneric, Mapping: "plain"},
		TargetConfig{Name: "v", URL: srv.URL, Dialect: DialectVLLM})
	start := float64(clock.Now().Unix() - 3600)
	srv.set(fmt.Appendf(nil, gatewayBody, start, 100.0, 400.0))
	e.Cycle(context.Background())
	clock.Advance(15 * time.Second)
	srv.set(fmt.Appendf(nil, gatewayBody, start, 200.0, 800.0))
	e.Cycle(context.Background())
	got := gatherValues(t, e)
	if v := got[`infercast_model_requests_total{model="m"}`]; v != 100 {
		t.Errorf(`infercast_model_requests_total{model="m"} = %v, want 100`, v)
	}
	for k := range got {
		if strings.HasPrefix(k, "infercast_model_request_clump_size_sum_total") {
			t.Errorf("%s exported without a clump mapping", k)
		}
	}
}

// TestClumpSizeSumBadInput: a malformed exposition of the mapped counter
// marks the target down with a parse error that says where; a negative or
// NaN value is dropped as invalid and the rest of the body is read.
func TestClumpSizeSumBadInput(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		wantUp     float64
		reason     string
		wantErr    []string // in the target's last error; none when up
	}{
		{name: "unterminated labels", body: "gw_requests_total{model=\"m\"} 10\ngw_clump_size_sum_total{model=\"m\" 12\n",
			wantUp: 0, reason: reasonParse, wantErr: []string{"parse: ", "gw_clump_size_sum_total{"}},
		{name: "not a number", body: "gw_requests_total{model=\"m\"} 10\ngw_clump_size_sum_total{model=\"m\"} many\n",
			wantUp: 0, reason: reasonParse, wantErr: []string{"parse: ", "gw_clump_size_sum_total{"}},
		{name: "negative", body: "gw_requests_total{model=\"m\"} 10\ngw_clump_size_sum_total{model=\"m\"} -12\n",
			wantUp: 1, reason: "invalid_value"},
		{name: "NaN", body: "gw_requests_total{model=\"m\"} 10\ngw_clump_size_sum_total{model=\"m\"} NaN\n",
			wantUp: 1, reason: "invalid_value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newBodyServer(t)
			e := newTestExporterWith(t, clock, gatewayMapping, TargetConfig{Name: "g", URL: srv.URL, Dialect: DialectGeneric, Mapping: "gw"})
			srv.set([]byte(tc.body))
			e.Cycle(context.Background())
			got := gatherValues(t, e) // fails the test if the exporter's output is invalid
			if v := got[`infercast_target_up{dialect="generic:gw",source="static",target="g"}`]; v != tc.wantUp {
				t.Errorf("target up = %v, want %v", v, tc.wantUp)
			}
			if v := got[`infercast_target_scrape_errors_total{reason="`+tc.reason+`",target="g"}`]; v != 1 {
				t.Errorf("scrape errors %s = %v, want 1", tc.reason, v)
			}
			if _, ok := got[`infercast_model_request_clump_size_sum_total{model="m"}`]; ok {
				t.Error("clump sizes exported from a bad sample")
			}
			e.mu.Lock()
			lastErr := e.states["g"].lastErr
			e.mu.Unlock()
			if len(tc.wantErr) == 0 && lastErr != nil {
				t.Errorf("last error %v, want none", lastErr)
			}
			for _, w := range tc.wantErr {
				if lastErr == nil || !strings.Contains(lastErr.Error(), w) {
					t.Errorf("last error %v, want one that says %q", lastErr, w)
				}
			}
		})
	}
}
