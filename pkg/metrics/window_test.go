package metrics

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"
)

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

const resetBody = `# TYPE process_start_time_seconds gauge
process_start_time_seconds %g
# TYPE vllm:request_success_total counter
vllm:request_success_total{model_name="m"} %g
# TYPE vllm:e2e_request_latency_seconds histogram
vllm:e2e_request_latency_seconds_bucket{model_name="m",le="1"} %g
vllm:e2e_request_latency_seconds_bucket{model_name="m",le="+Inf"} %g
vllm:e2e_request_latency_seconds_sum{model_name="m"} %g
vllm:e2e_request_latency_seconds_count{model_name="m"} %g
`

// TestCounterResetAndColdStart: a server restarts between scrapes (its
// counters drop and its process start time moves): the window's increase
// is what happened before plus after the restart, never negative, and one
// cold start is counted with the time from the new start to the scrape —
// for a static target; a discovered pod's restart is pod discovery's
// container_restart, so it is not counted twice.
func TestCounterResetAndColdStart(t *testing.T) {
	for _, tc := range []struct {
		source     string
		coldStarts float64
	}{{SourceStatic, 1}, {SourceKubernetes, 0}} {
		t.Run(tc.source, func(t *testing.T) { testCounterResetAndColdStart(t, tc.source, tc.coldStarts) })
	}
}

func testCounterResetAndColdStart(t *testing.T, source string, wantColdStarts float64) {
	clock := newFakeClock()
	srv := newBodyServer(t)
	e := newTestExporter(t, clock)
	d, _ := BuiltinDialect(DialectVLLM)
	e.SetTargets(source, []Target{{Name: "a", URL: srv.URL, Dialect: d}})
	start := float64(clock.Now().Unix() - 3600)
	steps := []struct {
		start, n, fast float64
	}{
		{start, 1000, 1000},
		{start, 1300, 1200}, // +300 requests, 200 fast
		// restart 20 s before this scrape; 60 requests since, 60 fast
		{float64(clock.Now().Add(30*time.Second).Unix() - 20), 60, 60},
	}
	for i, s := range steps {
		if i > 0 {
			clock.Advance(15 * time.Second)
		}
		srv.set(fmt.Appendf(nil, resetBody, s.start, s.n, s.fast, s.n, s.n*0.5, s.n))
		e.Cycle(context.Background())
	}
	got := gatherValues(t, e)
	// 360 requests over 30 s.
	if v := got[`infercast_model_requests_per_second{model="m",window="1m"}`]; math.Abs(v-12) > 1e-9 {
		t.Errorf("rate = %v, want 12", v)
	}
	// 260 of 360 under 1 s: p50 at rank 180 lies in (0,1]: 180/260.
	if v := got[`infercast_model_request_latency_seconds{model="m",quantile="0.5",window="1m"}`]; math.Abs(v-180.0/260) > 1e-9 {
		t.Errorf("p50 = %v, want %v", v, 180.0/260)
	}
	if v := got[`infercast_cold_starts_total{model="m",source="process_restart"}`]; v != wantColdStarts {
		t.Errorf("process-restart cold starts = %v, want %v", v, wantColdStarts)
	}
}

// TestTargetDisappearsAndReturns: while a target is down its model series
// vanish (no stale numbers); when it returns within the window the rate
// spans the gap; after a gap longer than every window it starts afresh.
func TestTargetDisappearsAndReturns(t *testing.T) {
	clock := newFakeClock()
	srv := newBodyServer(t)
	e := newTestExporter(t, clock, TargetConfig{Name: "a", URL: srv.URL, Dialect: DialectVLLM})
	body := func(n float64) []byte { return fmt.Appendf(nil, resetBody, 1.0, n, n, n, n, n) }
	key := `infercast_model_requests_per_second{model="m",window="5m"}`

	srv.set(body(100))
	e.Cycle(context.Background())
	srv.setStatus(503)
	for range 4 {
		clock.Advance(15 * time.Second)
		e.Cycle(context.Background())
		if _, ok := gatherValues(t, e)[key]; ok {
			t.Fatal("rate exported while the target is down")
		}
	}
	clock.Advance(15 * time.Second)
	srv.setStatus(200)
	srv.set(body(175)) // 75 requests in the 75 s since the last good scrape
	e.Cycle(context.Background())
	if v := gatherValues(t, e)[key]; math.Abs(v-1) > 1e-9 {
		t.Errorf("rate after return = %v, want 1", v)
	}

	// Down for longer than the 5 m window: history is dropped.
	srv.setStatus(503)
	clock.Advance(6 * time.Minute)
	e.Cycle(context.Background())
	clock.Advance(15 * time.Second)
	srv.setStatus(200)
	srv.set(body(10000))
	e.Cycle(context.Background())
	if _, ok := gatherValues(t, e)[key]; ok {
		t.Error("rate exported from one scrape after a gap longer than the window")
	}
	clock.Advance(15 * time.Second)
	srv.set(body(10030))
	e.Cycle(context.Background())
	if v := gatherValues(t, e)[key]; math.Abs(v-2) > 1e-9 {
		t.Errorf("rate after fresh start = %v, want 2", v)
	}
}

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	for _, tc := range []struct {
		name string
		q    float64
		les  []float64
		cum  []float64
		want float64
	}{
		{"first bucket from zero", 0.5, []float64{1, 2, inf}, []float64{10, 20, 20}, 1},
		{"interpolated", 0.75, []float64{1, 2, inf}, []float64{10, 20, 20}, 1.5},
		{"in +Inf returns last finite bound", 0.99, []float64{1, 2, inf}, []float64{10, 10, 20}, 2},
		{"no observations", 0.5, []float64{1, inf}, []float64{0, 0}, math.NaN()},
		{"no +Inf bucket", 0.5, []float64{1, 2}, []float64{1, 2}, math.NaN()},
	} {
		got := bucketQuantile(tc.q, tc.les, tc.cum)
		if !(got == tc.want || math.IsNaN(got) && math.IsNaN(tc.want)) {
			t.Errorf("%s: got %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestHistDeltaMergeDifferentBounds(t *testing.T) {
	inf := math.Inf(1)
	var h histDelta
	h.add(histDelta{les: []float64{1, inf}, cum: []float64{10, 20}, count: 20})
	h.add(histDelta{les: []float64{0.5, 1, inf}, cum: []float64{5, 6, 10}, count: 10})
	want := []float64{5, 16, 30}
	if !slices.Equal(h.les, []float64{0.5, 1, inf}) || !slices.Equal(h.cum, want) {
		t.Fatalf("merged les %v cum %v, want cum %v", h.les, h.cum, want)
	}
}

// TestModelsTargetRates: Models reports each model's request rate on each
// of its targets (what spend splits a server of several models by), and
// they add up to the model's rate; a target without a rate yet is absent.
func TestModelsTargetRates(t *testing.T) {
	clock := newFakeClock()
	a, b := newBodyServer(t), newBodyServer(t)
	e := newTestExporter(t, clock)
	d, _ := BuiltinDialect(DialectVLLM)
	e.SetTargets(SourceStatic, []Target{{Name: "a", URL: a.URL, Dialect: d}, {Name: "b", URL: b.URL, Dialect: d}})
	const body = "vllm:request_success_total{model_name=\"m\"} %g\nvllm:request_success_total{model_name=\"n\"} %g\n"
	for i, n := range []float64{0, 150} {
		if i > 0 {
			clock.Advance(15 * time.Second)
		}
		a.set(fmt.Appendf(nil, body, 2*n, n)) // m 20/s, n 10/s
		b.set(fmt.Appendf(nil, "vllm:request_success_total{model_name=\"m\"} %g\n", 3*n))
		e.Cycle(context.Background())
	}
	want := map[string]map[string]float64{"m": {"a": 20, "b": 30}, "n": {"a": 10}}
	models := e.Models()
	if len(models) != 2 {
		t.Fatalf("models %+v", models)
	}
	for _, m := range models {
		sum := 0.0
		for target, r := range m.TargetRates {
			sum += r
			if math.Abs(r-want[m.Model][target]) > 1e-9 {
				t.Errorf("%s on %s: %v req/s, want %v", m.Model, target, r, want[m.Model][target])
			}
		}
		if len(m.TargetRates) != len(want[m.Model]) || math.Abs(sum-m.RequestsPerSecond) > 1e-9 {
			t.Errorf("%s: rates %v, model rate %v", m.Model, m.TargetRates, m.RequestsPerSecond)
		}
	}
}

// TestServedModels: a target's models are those of its last successful
// scrape that read any, kept while its scrapes fail or read none (a
// server loading its weights still holds its GPUs for them), dropped when
// the target changes; a target added since the last cycle is listed with
// none.
func TestServedModels(t *testing.T) {
	clock := newFakeClock()
	a := newBodyServer(t)
	e := newTestExporter(t, clock)
	d, _ := BuiltinDialect(DialectVLLM)
	e.SetTargets(SourceStatic, []Target{{Name: "a", URL: a.URL, Dialect: d}})
	check := func(step string, want map[string][]string, up map[string]bool) {
		t.Helper()
		got := map[string][]string{}
		gotUp := map[string]bool{}
		for _, tm := range e.ServedModels() {
			got[tm.Target.Name], gotUp[tm.Target.Name] = tm.Models, tm.Up
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || fmt.Sprint(gotUp) != fmt.Sprint(up) {
			t.Errorf("%s: served %v up %v, want %v up %v", step, got, gotUp, want, up)
		}
	}
	a.set([]byte("vllm:num_requests_running{model_name=\"n\"} 1\nvllm:num_requests_running{model_name=\"m\"} 1\n"))
	e.Cycle(context.Background())
	check("serving", map[string][]string{"a": {"m", "n"}}, map[string]bool{"a": true})
	a.setStatus(http.StatusServiceUnavailable)
	clock.Advance(15 * time.Second)
	e.Cycle(context.Background())
	check("failing", map[string][]string{"a": {"m", "n"}}, map[string]bool{"a": false})
	a.setStatus(http.StatusOK)
	a.set([]byte("process_start_time_seconds 1\n"))
	clock.Advance(15 * time.Second)
	e.Cycle(context.Background())
	check("reading none", map[string][]string{"a": {"m", "n"}}, map[string]bool{"a": true})
	a.set([]byte("vllm:num_requests_running{model_name=\"m\"} 1\n"))
	clock.Advance(15 * time.Second)
	e.Cycle(context.Background())
	check("one model", map[string][]string{"a": {"m"}}, map[string]bool{"a": true})
	b := newBodyServer(t)
	e.SetTargets(SourceStatic, []Target{{Name: "a", URL: b.URL, Dialect: d}, {Name: "b", URL: b.URL, Dialect: d}})
	check("moved and added", map[string][]string{"a": nil, "b": nil}, map[string]bool{"a": false, "b": false})
}
