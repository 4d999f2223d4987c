package metrics

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRequestsTotalIsACounter: infercast_model_requests_total counts what
// the targets completed while the exporter watched them, never what came
// before, and never drops at a process restart, a counter reset or a
// target that goes away and comes back. While one of its two targets is
// down the model's total is withheld (stale, a gap in the history), not
// exported flat as if demand had stopped.
func TestRequestsTotalIsACounter(t *testing.T) {
	clock := newFakeClock()
	a, b := newBodyServer(t), newBodyServer(t)
	e := newTestExporter(t, clock,
		TargetConfig{Name: "a", URL: a.URL, Dialect: DialectVLLM},
		TargetConfig{Name: "b", URL: b.URL, Dialect: DialectVLLM})
	start := float64(clock.Now().Unix() - 3600)
	body := func(start, n float64) []byte { return fmt.Appendf(nil, resetBody, start, n, n, n, n*0.5, n) }
	key := `infercast_model_requests_total{model="m"}`
	steps := []struct {
		name       string
		a, b       []byte
		bDown      bool
		wantTotal  float64 // -1: not exported
		restartedA bool
	}{
		{name: "first sight counts nothing", a: body(start, 1000), b: body(start, 50), wantTotal: 0},
		{name: "increases of both targets", a: body(start, 1300), b: body(start, 80), wantTotal: 330},
		{name: "a restarts: 60 since", a: body(start+3500, 60), b: body(start, 100), wantTotal: 410},
		{name: "b down: withheld", a: body(start+3500, 70), bDown: true, wantTotal: -1},
		{name: "b back, counted across the gap", a: body(start+3500, 70), b: body(start, 130), wantTotal: 450},
		{name: "b's counter resets without a restart", a: body(start+3500, 70), b: body(start, 5), wantTotal: 455},
	}
	for i, s := range steps {
		got, ok := twoTargetCycle(t, e, clock, i, a, b, s.a, s.b, s.bDown)[key]
		if s.wantTotal < 0 {
			if ok {
				t.Fatalf("%s: %s = %v, want it withheld", s.name, key, got)
			}
			continue
		}
		if got != s.wantTotal {
			t.Fatalf("%s: %s = %v, want %v", s.name, key, got, s.wantTotal)
		}
	}
}

// TestRequestsTotalOneDownAmongMany: one down target among eleven lowers
// the model's total by its share and the total is still exported.
func TestRequestsTotalOneDownAmongMany(t *testing.T) {
	clock := newFakeClock()
	up, down := newBodyServer(t), newBodyServer(t)
	var targets []TargetConfig
	for i := range 10 {
		targets = append(targets, TargetConfig{Name: fmt.Sprint("up-", i), URL: up.URL, Dialect: DialectVLLM})
	}
	targets = append(targets, TargetConfig{Name: "flaky", URL: down.URL, Dialect: DialectVLLM})
	e := newTestExporter(t, clock, targets...)
	start := float64(clock.Now().Unix() - 3600)
	body := func(n float64) []byte { return fmt.Appendf(nil, resetBody, start, n, n, n, n*0.5, n) }
	key := `infercast_model_requests_total{model="m"}`
	up.set(body(100))
	down.set(body(100))
	e.Cycle(context.Background())
	clock.Advance(15 * time.Second)
	up.set(body(110))
	down.setStatus(503)
	e.Cycle(context.Background())
	if got, ok := gatherValues(t, e)[key]; !ok || got != 100 {
		t.Fatalf("%s = %v (exported %v), want 100 from the ten targets up", key, got, ok)
	}
}
