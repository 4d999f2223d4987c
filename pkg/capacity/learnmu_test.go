package capacity

import (
	"testing"
	"time"
)

// TestMuLearner: what the learner hands the planner, from samples whose
// latency stays within the 1 s SLO up to knee requests/s per replica.
func TestMuLearner(t *testing.T) {
	w := testWorkload() // mu 2, latency SLO 1s
	for _, tc := range []struct {
		name    string
		lo, hi  float64 // throughput per replica seen
		knee    float64
		samples int
		want    float64 // 0: the configured mu stays
	}{
		{"too few samples", 1, 9, 5, 2*muBin - 1, 0},
		{"saturated above the configured mu", 1, 9, 5, 200, 5},
		{"saturated below the configured mu", 0.5, 3, 1.5, 200, 1.5},
		{"never saturated, below the configured mu: a lower bound says nothing", 0.2, 1.8, 100, 200, 0},
		{"never saturated, above the configured mu: seen to hold", 1, 3, 100, 200, 3},
		{"every throughput misses the SLO", 1, 9, 0.1, 200, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var l muLearner
			for i := range tc.samples {
				x := tc.lo + (tc.hi-tc.lo)*float64((i*37)%tc.samples)/float64(tc.samples-1)
				lat := 300 * time.Millisecond
				if x > tc.knee {
					lat = 3 * time.Second
				}
				// 4 serving replicas, counted by the tiers' ready replicas.
				l.observe(Signals{Rate: 4 * x, Latency: lat, OnDemand: TierState{Ready: 3}, Spot: TierState{Ready: 1}})
			}
			// Signals without a rate, latency or replica count add nothing.
			l.observe(Signals{Rate: 40, Latency: time.Second})
			l.observe(Signals{Rate: 0, Latency: time.Second, Serving: 4})
			l.observe(Signals{Rate: 40, Serving: 4})
			l.fresh = muBin // fit now
			got := l.learned(&w)
			if tc.want == 0 && got != 0 || tc.want != 0 && (got < tc.want-0.1 || got > tc.want+0.05) {
				t.Fatalf("learned %v, want %v", got, tc.want)
			}
		})
	}
}

// TestMuLearnerWindowIsBounded: old samples leave the window.
func TestMuLearnerWindowIsBounded(t *testing.T) {
	var l muLearner
	for range muWindow + 10 {
		l.observe(Signals{Rate: 10, Latency: time.Second, Serving: 2})
	}
	if len(l.samples) != muWindow {
		t.Fatalf("%d samples kept, want %d", len(l.samples), muWindow)
	}
}
