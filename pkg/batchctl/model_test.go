package batchctl

import (
	"math"
	"testing"
	"time"
)

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// The cases are worked by hand from Predict's formulas, with
// p = (alpha 50 ms, beta 10 ms, jitter 0) so that t(b) = 0.05 + 0.01·b.
func TestPredictHandComputed(t *testing.T) {
	p := Profile{Alpha: 0.05, Beta: 0.01}
	tests := []struct {
		name      string
		lambda    float64
		k         Knobs
		p99, mean float64
		util      float64
	}{
		// b = λα/(1−λβ) = 0.5/0.9 < 1 → 1; wait t(1) = 0.06; p99 = 0.06 + t(1) = 0.12;
		// utilisation 10·0.06/1 = 0.6.
		{"light", 10, Knobs{MaxBatchSize: 30}, 0.12, 1, 0.6},
		// b = 2.5/0.5 = 5; b99 = 5 + 2.326·2 = 9.65 ≤ 30; p99 = t(5) + t(5) = 0.2;
		// utilisation 50·0.1/5 = 1.
		{"busy", 50, Knobs{MaxBatchSize: 30}, 0.2, 5, 1},
		// as above with B = 8: b99 9.65 > 8, the cap binds; ρ = 50·0.13/8 = 0.8125;
		// queue = t(8) + t(8)·ρ/(1−ρ)·ln(100)/8 = 0.13 + 0.13·4.3333·4.60517/8 = 0.454281;
		// p99 = t(5) + 0.454281 + t(5) = 0.654281.
		{"cap binds", 50, Knobs{MaxBatchSize: 8}, 0.654281, 5, 1},
		// delay 10 ms at λ 10: b = 1 + 10·0.01 = 1.1; wait = max(0.01, t(1.1) = 0.061);
		// p99 = 0.061 + 0.061 = 0.122; utilisation 10·0.061/1.1 = 0.554545.
		{"delay collects", 10, Knobs{MaxBatchSize: 30, MaxQueueDelay: 10 * time.Millisecond}, 0.122, 1.1, 0.554545},
		// idle: a lone request waits the delay, then runs t(1).
		{"idle with delay", 0, Knobs{MaxBatchSize: 30, MaxQueueDelay: 20 * time.Millisecond}, 0.08, 1, 0},
		// batch 1 ignores the delay (a batch of one is always full).
		{"batch 1", 0, Knobs{MaxBatchSize: 1, MaxQueueDelay: 20 * time.Millisecond}, 0.06, 1, 0},
		// ρ = 100·t(8)/8 = 1.625 ≥ 1: unstable.
		{"overload", 100, Knobs{MaxBatchSize: 8}, math.Inf(1), 8, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkPrediction(t, Predict(p, tc.lambda, tc.k), tc.p99, tc.mean, tc.util, 1e-5)
		})
	}
}

// checkPrediction compares a prediction with hand-computed values (p99
// within p99Tol; an infinite p99 must be infinite).
func checkPrediction(t *testing.T, got Prediction, p99, mean, util, p99Tol float64) {
	t.Helper()
	if !(near(got.P99Seconds, p99, p99Tol) || (math.IsInf(p99, 1) && math.IsInf(got.P99Seconds, 1))) {
		t.Errorf("p99 = %.7f, want %.7f", got.P99Seconds, p99)
	}
	if !near(got.MeanBatch, mean, 1e-9) {
		t.Errorf("mean batch = %.6f, want %.6f", got.MeanBatch, mean)
	}
	if !near(got.GPUUtilization, util, 1e-5) {
		t.Errorf("utilisation = %.6f, want %.6f", got.GPUUtilization, util)
	}
}

// Clumps: c is the mean size of the clump a request arrives in. The same
// profile, t(b) = 0.05 + 0.01·b, jitter 0; z = 2.3263479.
func TestPredictClumpedHandComputed(t *testing.T) {
	p := Profile{Alpha: 0.05, Beta: 0.01}
	tests := []struct {
		name      string
		lambda, c float64
		k         Knobs
		p99, mean float64
		util      float64
	}{
		// b = 5 (the fixed point, and the clump); wait t(5) = 0.1; the p99
		// request's batch is 5 + z·(√(5·4) − √4) = 5 + 5.750980 = 10.750980
		// ≤ 30: p99 = 0.1 + t(10.750980) = 0.2575098; utilisation 50·0.1/5.
		{"clumps busy", 50, 5, Knobs{MaxBatchSize: 30}, 0.2575098, 5, 1},
		// B = 8: the smooth part's p99 batch 9.652 > 8 binds as in the
		// Poisson "cap binds" case (queue 0.454281), and the p99 request's
		// batch is the cap, t(8) = 0.13: p99 = 0.1 + 0.454281 + 0.13.
		{"cap bounds the pile-up", 50, 5, Knobs{MaxBatchSize: 8}, 0.684281, 5, 1},
		// A lone clump of 5 waits the 20 ms delay (it does not fill 30)
		// and runs t(5) = 0.1.
		{"lone clump", 0, 5, Knobs{MaxBatchSize: 30, MaxQueueDelay: 20 * time.Millisecond}, 0.12, 5, 0},
		// A lone clump of 5 fills a cap of 4: no delay, t(4) = 0.09.
		{"lone clump fills the cap", 0, 5, Knobs{MaxBatchSize: 4, MaxQueueDelay: 20 * time.Millisecond}, 0.09, 4, 0},
		// Clumps every 100 s: b = the clump, 5; λ/c·t(5) = 0.001 < 1 %
		// find the server busy, so no wait; the p99 batch 10.750980:
		// p99 = t(10.750980) = 0.1575098; utilisation 0.05·0.1/5.
		{"rare clumps", 0.05, 5, Knobs{MaxBatchSize: 30}, 0.1575098, 5, 0.001},
		// c = 1 is the Poisson model: the "busy" case above.
		{"no clumps", 50, 1, Knobs{MaxBatchSize: 30}, 0.2, 5, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			checkPrediction(t, PredictClumped(p, tc.lambda, tc.c, tc.k), tc.p99, tc.mean, tc.util, 1e-6)
		})
	}
}

// With clumps of 5 (SLO 0.5 s, same profile) the p99 request's batch
// reaches the cap near capacity, so p99 = t(b) + t(B) while the smooth
// part does not bind (b + z·√(b−1) ≤ B):
//   - B = 24: binding starts at b = 15.22 (15.22 + z·√14.22 = 24.0), where
//     p99 = t(15.22) + t(24) = 0.492 ≤ 0.5: capacity 15.22/t(15.22) = 75.3/s;
//   - B = 25: t(b) + t(25) ≤ 0.5 → b = 15, capacity 15/0.2 = 75.0/s;
//   - B = 23: binding at b = 14.46, capacity 14.46/0.1946 = 74.3/s;
//   - B = 64 (no cap reached): 2·b + 2.875·√(b−1) = 40 → b = 14.68,
//     capacity 74.6/s.
//
// The most capacity is at B = 24, below the model's largest batch, where
// Poisson arrivals (the same call with clump 1) take 30.
func TestChooseClumpedHandComputed(t *testing.T) {
	p := Profile{Alpha: 0.05, Beta: 0.01}
	slo := 500 * time.Millisecond
	bounds := Bounds{MaxBatchSize: 64, Delays: []time.Duration{0}}
	c := ChooseClumped(p, 50, 5, slo, 0, bounds)
	if c.Knobs != (Knobs{MaxBatchSize: 24}) || !c.Feasible {
		t.Fatalf("choice %v feasible=%v, want max_batch_size=24 no delay", c.Knobs, c.Feasible)
	}
	if got := c.Prediction.SLOCapacityRPS; got < 75.1 || got > 75.35 {
		t.Errorf("SLO capacity %.3f, want 75.1–75.35", got)
	}
	for _, k := range []struct {
		b        int
		lo, high float64
	}{{23, 74.1, 74.4}, {25, 74.85, 75.0}, {64, 74.45, 74.7}} {
		if got := CapacityClumped(p, Knobs{MaxBatchSize: k.b}, 5, 0.5); got < k.lo || got > k.high {
			t.Errorf("capacity of B=%d: %.3f, want %.2f–%.2f", k.b, got, k.lo, k.high)
		}
	}
	if !near(c.Prediction.P99Seconds, 0.2575098, 1e-6) {
		t.Errorf("p99 at 50/s %.7f, want 0.2575098 (the \"clumps busy\" case)", c.Prediction.P99Seconds)
	}
	if poisson := ChooseClumped(p, 50, 1, slo, 0, bounds); poisson.Knobs != (Knobs{MaxBatchSize: 30}) {
		t.Errorf("clump 1: %v, want Choose's max_batch_size=30", poisson.Knobs)
	}
}

func TestChooseHandComputed(t *testing.T) {
	p := Profile{Alpha: 0.05, Beta: 0.01}
	slo := 500 * time.Millisecond
	// Uncapped, p99 = 2·t(b) reaches 0.5 s at b = 20, i.e. λ = 20/t(20) = 80/s:
	// the SLO capacity of any cap that does not bind there. A cap binds when
	// b + 2.326·√(b−1) > B; at 0.2 % below 80/s (79.84/s) b = 3.992/0.2016 =
	// 19.80 and b99 = 29.89, so B = 30 is the smallest batch whose capacity is
	// within the 0.2 % tie; B = 29 binds at b ≈ 19.2, λ ≈ 79.3/s.
	t.Run("batch size with the most SLO capacity", func(t *testing.T) {
		c := Choose(p, 50, slo, 0, Bounds{MaxBatchSize: 64, Delays: []time.Duration{0}})
		if c.Knobs != (Knobs{MaxBatchSize: 30}) || !c.Feasible {
			t.Fatalf("choice %v feasible=%v, want max_batch_size=30 no delay", c.Knobs, c.Feasible)
		}
		if c.Prediction.SLOCapacityRPS < 79.8 || c.Prediction.SLOCapacityRPS > 80.0 {
			t.Errorf("SLO capacity %.3f, want 79.8–80", c.Prediction.SLOCapacityRPS)
		}
		// p99 at λ 50 is the "busy" case of TestPredictHandComputed.
		if !near(c.Prediction.P99Seconds, 0.2, 1e-9) {
			t.Errorf("p99 %.6f, want 0.2", c.Prediction.P99Seconds)
		}
	})
	// At λ 10, a 10 ms delay grows batches from 1 to 1.1 and cuts
	// utilisation from 0.6 to 0.5545 (7.6 % ≥ 1 %), and p99 is 0.122 s.
	// At high rates batches fill before the delay expires, so the SLO
	// capacity stays the same: the delay is worth it.
	t.Run("delay for efficiency at light load", func(t *testing.T) {
		c := Choose(p, 10, slo, 0, Bounds{MaxBatchSize: 64, Delays: []time.Duration{0, 10 * time.Millisecond}})
		want := Knobs{MaxBatchSize: 30, MaxQueueDelay: 10 * time.Millisecond}
		if c.Knobs != want {
			t.Fatalf("choice %v, want %v", c.Knobs, want)
		}
	})
	// The margin shrinks the budget: 2·t(b) ≤ 0.4 → b = 15, λ = 15/0.2 = 75,
	// b99 = 15 + 2.326·√14 = 23.7 → B = 24 (23 binds: b + 2.326√(b−1) = 23
	// at b ≈ 14.3 < 15·0.998).
	t.Run("margin", func(t *testing.T) {
		c := Choose(p, 10, slo, 0.2, Bounds{MaxBatchSize: 64})
		if c.Knobs.MaxBatchSize != 24 {
			t.Fatalf("choice %v, want max_batch_size=24", c.Knobs)
		}
		if c.Prediction.SLOCapacityRPS < 74.8 || c.Prediction.SLOCapacityRPS > 75.0 {
			t.Errorf("SLO capacity %.3f, want 74.8–75", c.Prediction.SLOCapacityRPS)
		}
	})
	// Beyond 80/s nothing meets the SLO: take the model's largest batch.
	t.Run("overload", func(t *testing.T) {
		c := Choose(p, 90, slo, 0, Bounds{MaxBatchSize: 64, Delays: []time.Duration{0, 10 * time.Millisecond}})
		if c.Feasible || c.Knobs != (Knobs{MaxBatchSize: 64}) {
			t.Fatalf("choice %v feasible=%v, want infeasible max_batch_size=64 no delay", c.Knobs, c.Feasible)
		}
	})
	// A lone request takes 60 ms: a 50 ms SLO cannot be met.
	t.Run("impossible SLO", func(t *testing.T) {
		c := Choose(p, 1, 50*time.Millisecond, 0, Bounds{MaxBatchSize: 64})
		if c.Feasible || c.Knobs != (Knobs{MaxBatchSize: 1}) || c.Prediction.SLOCapacityRPS != 0 {
			t.Fatalf("choice %+v, want infeasible batch 1 with zero capacity", c)
		}
	})
}

func TestCapacityMonotoneInBudget(t *testing.T) {
	p := Profile{Alpha: 0.05, Beta: 0.01, Jitter: 0.005}
	k := Knobs{MaxBatchSize: 32}
	prev := 0.0
	for _, budget := range []float64{0.1, 0.2, 0.3, 0.5, 1} {
		c := Capacity(p, k, budget)
		if c < prev {
			t.Errorf("capacity fell from %.2f to %.2f as the budget grew to %gs", prev, c, budget)
		}
		if c > 32/p.Exec(32) {
			t.Errorf("capacity %.2f beyond full batches back to back", c)
		}
		prev = c
	}
}
