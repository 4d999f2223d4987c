package capacity

import (
	"math"
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
	if _, ok := c.ratio(0.9); ok {
		t.Fatal("calibrated before any outcome")
	}
	for i := 0; i < 4*3000; i++ {
		rate := 10.0
		if (i/4)%5 == 0 && i%4 == 2 { // one spike in every fifth horizon
			rate = 15
		}
		c.observe(now, rate, 10, horizon, step)
		now = now.Add(step)
	}
	hi, ok := c.ratio(0.9)
	if !ok {
		t.Fatal("not calibrated after 12000 decisions")
	}
	lo, _ := c.ratio(0.5)
	// Bins are 1.6 % wide in ratio; horizons overlap, so a spike lands in
	// several of them: the share of horizons with a spike is above a fifth.
	if math.Abs(hi-1.5) > 0.03 || math.Abs(lo-1.0) > 0.03 {
		t.Fatalf("ratio(0.9) = %.3f, ratio(0.5) = %.3f; want about 1.5 and 1.0", hi, lo)
	}
}
