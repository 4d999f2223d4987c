package capacity

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

// TestHorizonCalibration feeds a demand whose busiest 15 s within every
// horizon is 1.5× the median forecast a fifth of the time and 1.0×
// otherwise: the 0.9 quantile of the ratio must come out near 1.5, the 0.5
// quantile near 1.0.
func TestHorizonCalibration(t *testing.T) {
	var c horizonCalibration
	horizon := 60 * time.Second // four decisions
	step := 15 * time.Second
	now := t0
	if _, ok := c.ratio(0.9, 1); ok {
		t.Fatal("calibrated before any outcome")
	}
	for i := 0; i < 4*3000; i++ {
		rate := 10.0
		if (i/4)%5 == 0 && i%4 == 2 { // one spike in every fifth horizon
			rate = 15
		}
		c.observe(now, rate, rate, 10, horizon, step)
		now = now.Add(step)
	}
	hi, ok := c.ratio(0.9, 1)
	if !ok {
		t.Fatal("not calibrated after 12000 decisions")
	}
	lo, _ := c.ratio(0.5, 1)
	// Bins are 1.6 % wide in ratio; horizons overlap, so a spike lands in
	// several of them: the share of horizons with a spike is above a fifth.
	if math.Abs(hi-1.5) > 0.03 || math.Abs(lo-1.0) > 0.03 {
		t.Fatalf("ratio(0.9) = %.3f, ratio(0.5) = %.3f; want about 1.5 and 1.0", hi, lo)
	}
}

// TestCalibrationFiniteSampleQuantile: the calibration is trusted once it
// holds calMinHorizons independent horizons and then reads split
// conformal's ⌈(n+1)q⌉-th smallest of n, not the plain q quantile: of 45
// outcomes, 41 at 1.0× and 4 at 2.0×, the plain 0.9 quantile (the 40.5th)
// is 1.0×, the finite-sample one (the 41.4th) 2.0×; a 0.99 quantile needs
// 99 outcomes and has none yet.
func TestCalibrationFiniteSampleQuantile(t *testing.T) {
	var c horizonCalibration
	step := 15 * time.Second
	horizon := 10 * time.Second // each horizon holds one decision's rate
	now := t0
	for i := 0; i <= 45; i++ {
		if i == 40 { // 39 outcomes so far
			if _, ok := c.ratio(0.9, 1); ok {
				t.Fatal("calibrated with 39 outcomes, fewer than calMinHorizons")
			}
		}
		rate := 10.0
		if i == 5 || i == 15 || i == 25 || i == 35 {
			rate = 20
		}
		c.observe(now, rate, rate, 10, horizon, step)
		now = now.Add(step)
	}
	r, ok := c.ratio(0.9, 1)
	if !ok || math.Abs(r-2) > 0.04 {
		t.Fatalf("ratio(0.9) of 45 outcomes = %.3f, %t; want the finite-sample rank's 2.0", r, ok)
	}
	if _, ok := c.ratio(0.99, 1); ok {
		t.Fatal("0.99 quantile trusted with 45 outcomes: its finite-sample rank does not exist")
	}
	// Outcomes that overlap count for less: at a quarter each, 45 are
	// 11 independent horizons, too few.
	if _, ok := c.ratio(0.9, 0.25); ok {
		t.Fatal("calibrated with 45 outcomes worth 11 independent horizons")
	}
}

// TestSurgeRatioHandComputed: 10,000 horizons of 15 s at a reference of
// 10 req/s whose sustained demand is 10, and 15 in every hundredth. All
// demand is 9,900·10 + 100·15 = 100,500 req/s·interval; a sizing of r ≥ 1
// leaves 100·(15 − 10r) of it to the surges, so a budget of 0.1 % allows
// 15 − 10r ≤ 1.005: r ≥ 1.3995; 1 % allows any r ≥ 1 (below 1 the 9,900
// horizons at the reference count too); none needs 1.5. A surge to 3×
// counts as one to 2× (surgeMaxRatio).
func TestSurgeRatioHandComputed(t *testing.T) {
	feed := func(surge float64) *horizonCalibration {
		c := &horizonCalibration{}
		step := 15 * time.Second
		now := t0
		for i := 0; i <= 10000; i++ {
			rate := 10.0
			if i%100 == 50 {
				rate = surge
			}
			// Each horizon ends at the next decision: its last interval's
			// sustained rate is that decision's.
			c.observe(now, rate, rate, 10, step, step)
			now = now.Add(step)
		}
		return c
	}
	if _, ok := (&horizonCalibration{}).surgeRatio(0.001); ok {
		t.Fatal("surge ratio before any demand")
	}
	c := feed(15)
	for _, tc := range []struct{ budget, want float64 }{{0.001, 1.3995}, {0.01, 1}, {0, 1.5}} {
		// Bins are 1.6 % wide; the answer is the upper edge of the bin
		// that holds the exact ratio. The decay over 42 h weighs the
		// horizons unevenly, by well under a bin.
		got, ok := c.surgeRatio(tc.budget)
		if !ok || got < tc.want-0.001 || got > tc.want*1.02 {
			t.Errorf("surgeRatio(%g) = %.4f, %t; want %.4f up to a bin above", tc.budget, got, ok, tc.want)
		}
	}
	if got, _ := feed(30).surgeRatio(0); got < surgeMaxRatio-0.001 || got > surgeMaxRatio*1.02 {
		t.Errorf("surges to 3×: surgeRatio(0) = %.4f, want the cap %.1f", got, surgeMaxRatio)
	}
}

// eagerCalibration is horizonCalibration's decay done eagerly, every bin
// at every decision, as before the lazy weights: the reference for them.
type eagerCalibration struct {
	horizonCalibration
}

func (c *eagerCalibration) observe(now time.Time, rate, sustained, median float64, horizon, elapsed time.Duration) {
	decay := math.Exp2(-elapsed.Hours() / calHalfLife.Hours())
	for i := range c.surgeRef {
		c.surgeRef[i] *= decay
		c.surgeDemand[i] *= decay
	}
	c.demand = c.demand*decay + rate*elapsed.Seconds()
	for i := range c.pending {
		p := &c.pending[i]
		if now.After(p.end) {
			continue
		}
		p.actual = math.Max(p.actual, rate)
		if now.After(p.end.Add(-elapsed)) && p.median > 0 && sustained > 0 {
			b := calBin(math.Log(sustained / p.median))
			c.surgeRef[b] += p.median * elapsed.Seconds()
			c.surgeDemand[b] += sustained * elapsed.Seconds()
		}
	}
	n := 0
	for n < len(c.pending) && now.After(c.pending[n].end) {
		n++
	}
	if n > 0 {
		for i := range c.hist {
			c.hist[i] *= decay
		}
		c.total *= decay
	}
	for _, p := range c.pending[:n] {
		if p.median > 0 && p.actual > 0 {
			c.hist[calBin(math.Log(p.actual/p.median))]++
			c.total++
		}
	}
	c.pending = append(c.pending[:0], c.pending[n:]...)
	c.pending = append(c.pending, pendingPeak{t: now, end: now.Add(horizon), median: median, actual: rate})
}

// TestCalibrationLazyDecay: over 800 half-lives (the weights renormalised
// twice) at irregular intervals, some closing no horizon (hist then does
// not decay), the lazy weights give the eager decay's sums, up to
// rounding, and the same ratio and surgeRatio.
func TestCalibrationLazyDecay(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var lazy horizonCalibration
	var eager eagerCalibration
	horizon := 3 * time.Hour
	now, histRenorms, surgeRenorms, idle := t0, 0, 0, 0
	near := func(got, want float64) bool {
		return math.Abs(got-want) <= 1e-9*math.Max(math.Abs(want), 1e-300)
	}
	for i := 1; i <= 50000; i++ {
		step := time.Duration((0.25 + 1.75*rng.Float64()) * float64(time.Hour))
		now = now.Add(step)
		rate := 10 * math.Exp(0.3*rng.NormFloat64())
		sustained := rate * (0.7 + 0.3*rng.Float64())
		median := 10 * math.Exp(0.1*rng.NormFloat64())
		if len(lazy.pending) > 0 && !now.After(lazy.pending[0].end) {
			idle++
		}
		h, s := lazy.histLog2W, lazy.surgeLog2W
		lazy.observe(now, rate, sustained, median, horizon, step)
		eager.observe(now, rate, sustained, median, horizon, step)
		if lazy.histLog2W < h {
			histRenorms++
		}
		if lazy.surgeLog2W < s {
			surgeRenorms++
		}
		if i%997 != 0 && lazy.histLog2W >= h && lazy.surgeLog2W >= s {
			continue // check after every renormalisation and now and then
		}
		hw, sw := math.Exp2(-lazy.histLog2W), math.Exp2(-lazy.surgeLog2W)
		if !near(lazy.total*hw, eager.total) || !near(lazy.demand*sw, eager.demand) {
			t.Fatalf("decision %d: total %g, demand %g; eager %g, %g", i, lazy.total*hw, lazy.demand*sw, eager.total, eager.demand)
		}
		for b := range calBins {
			if !near(lazy.hist[b]*hw, eager.hist[b]) || !near(lazy.surgeRef[b]*sw, eager.surgeRef[b]) || !near(lazy.surgeDemand[b]*sw, eager.surgeDemand[b]) {
				t.Fatalf("decision %d, bin %d: hist %g, surgeRef %g, surgeDemand %g; eager %g, %g, %g", i, b,
					lazy.hist[b]*hw, lazy.surgeRef[b]*sw, lazy.surgeDemand[b]*sw, eager.hist[b], eager.surgeRef[b], eager.surgeDemand[b])
			}
		}
		for _, q := range []float64{0.5, 0.9, 0.975} {
			for _, indep := range []float64{1, 0.5} {
				got, gotOK := lazy.ratio(q, indep)
				want, wantOK := eager.ratio(q, indep)
				if got != want || gotOK != wantOK {
					t.Fatalf("decision %d: ratio(%g, %g) = %g, %t; eager %g, %t", i, q, indep, got, gotOK, want, wantOK)
				}
			}
		}
		for _, budget := range []float64{0, 0.001, 0.01, 0.05} {
			got, gotOK := lazy.surgeRatio(budget)
			want, wantOK := eager.surgeRatio(budget)
			if got != want || gotOK != wantOK {
				t.Fatalf("decision %d: surgeRatio(%g) = %g, %t; eager %g, %t", i, budget, got, gotOK, want, wantOK)
			}
		}
	}
	if histRenorms < 2 || surgeRenorms < 2 || idle == 0 {
		t.Fatalf("%d and %d renormalisations, %d decisions closing no horizon: the test misses a path", histRenorms, surgeRenorms, idle)
	}
	if _, ok := lazy.ratio(0.975, 1); !ok {
		t.Fatal("ratio never trusted: the test compares nothing")
	}
}
