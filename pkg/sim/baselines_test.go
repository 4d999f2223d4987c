package sim

import (
	"testing"
	"time"
)

// The HPA baseline worked by hand: mu 1, so the target is 0.7 requests/s
// per replica; the rate is over the last 60 s (12 steps).
func TestReactiveByHand(t *testing.T) {
	cfg := testConfig()
	h := NewReactive(cfg)
	obs := func(sec int, rate float64) *Observation {
		a := make([]float64, sec/5)
		for i := range a {
			a[i] = rate * 5
		}
		return &Observation{Start: start, Time: start.Add(time.Duration(sec) * time.Second), Step: 5 * time.Second, Arrivals: a}
	}
	for _, step := range []struct {
		sec  int
		rate float64
		want int
		why  string
	}{
		{0, 0, 1, "no history: the minimum of 1"},
		{60, 0.7, 1, "exactly on target"},
		{75, 7, 5, "wants 10, scale-up limited to max(2x, +4) = 5"},
		{90, 7, 10, "wants 10, limit max(10, 9)"},
		{105, 6.65, 10, "9.5 replicas' worth is within the 10 % tolerance"},
		{120, 3.5, 10, "wants 5, but 10 was proposed within 300 s"},
		{400, 3.5, 10, "the proposal of 105 (10) is still within 300 s"},
		{405, 3.5, 5, "105 has left the window: scale down at once"},
		{420, 0, 5, "idle, but 400 and 405 proposed 5 within 300 s"},
		{720, 0, 1, "idle for 300 s: the minimum"},
	} {
		od, sp := h.Decide(obs(step.sec, step.rate))
		if od != step.want || sp != 0 {
			t.Fatalf("t=%d rate %v: (%d, %d), want (%d, 0): %s", step.sec, step.rate, od, sp, step.want, step.why)
		}
	}
}

// At the start the rate is over the history there is.
func TestReactiveShortHistory(t *testing.T) {
	h := NewReactive(testConfig())
	// 2 steps of 7 requests: 1.4 requests/s, 2 replicas.
	od, _ := h.Decide(&Observation{Start: start, Time: start.Add(10 * time.Second), Step: 5 * time.Second, Arrivals: []float64{7, 7}})
	if od != 2 {
		t.Fatalf("od = %d, want 2", od)
	}
}

func TestStaticPeak(t *testing.T) {
	cfg := testConfig()
	cfg.Interval = 15 * time.Second
	sc := scenario(t, cfg, []float64{5, 5, 5, 30, 30, 1, 0, 0, 0})
	if got := StaticPeak(sc); got.OnDemand != 5 {
		t.Fatalf("static peak = %d, want ceil(61/15) = 5", got.OnDemand)
	}
}
