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
// target that goes away and comes back.
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
		wantTotal  float64
		restartedA bool
	}{
		{name: "first sight counts nothing", a: body(start, 1000), b: body(start, 50), wantTotal: 0},
		{name: "increases of both targets", a: body(start, 1300), b: body(start, 80), wantTotal: 330},
		{name: "a restarts: 60 since", a: body(start+3500, 60), b: body(start, 100), wantTotal: 410},
		{name: "b down", a: body(start+3500, 70), bDown: true, wantTotal: 420},
		{name: "b back, counted across the gap", a: body(start+3500, 70), b: body(start, 130), wantTotal: 450},
		{name: "b's counter resets without a restart", a: body(start+3500, 70), b: body(start, 5), wantTotal: 455},
	}
	for i, s := range steps {
		if i > 0 {
			clock.Advance(15 * time.Second)
		}
		a.set(s.a)
		if s.bDown {
			b.setStatus(503)
		} else {
			b.setStatus(200)
			b.set(s.b)
		}
		e.Cycle(context.Background())
		if got := gatherValues(t, e)[key]; got != s.wantTotal {
			t.Fatalf("%s: %s = %v, want %v", s.name, key, got, s.wantTotal)
		}
	}
}
