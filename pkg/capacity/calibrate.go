package capacity

import (
	"math"
	"time"
)

// horizonCalibration learns, from the planner's own history, how the
// busiest demand of a horizon compares with the median forecast made for
// it: the ratio actual peak / forecast median peak, in a decayed histogram
// of log-ratios. Its quantile q sizes the next horizon so that the whole
// horizon, not each step alone, stays under the sized demand with
// probability q, whatever the correlation of the forecaster's errors
// across steps (split conformal prediction on the planner's own outcome).
type horizonCalibration struct {
	pending []pendingPeak // decisions whose horizon has not ended, oldest first
	hist    [calBins]float64
	total   float64
}

type pendingPeak struct {
	t, end time.Time
	median float64 // median forecast peak rate sized for
	actual float64 // busiest live rate seen so far within the horizon
}

const (
	calBins = 240
	calMin  = -1.5 // log ratio range: 0.22× … 9.97×
	calMax  = 2.3
	// calHalfLife is how fast old outcomes fade (in decisions' time).
	calHalfLife = 3 * 24 * time.Hour
	// calMinHorizons is how many independent horizons (outcomes times
	// interval / horizon: consecutive horizons overlap) the calibration
	// needs before it is trusted over the forecaster's own per-step
	// quantiles, whatever the quantile: 520 decisions, 2 h 10 min, at a
	// 15 s interval and a 195 s horizon.
	calMinHorizons = 40
)

// observe records the live rate at now, closes the horizons that ended and
// opens one for the decision at now.
func (c *horizonCalibration) observe(now time.Time, rate float64, median float64, horizon, elapsed time.Duration) {
	for i := range c.pending {
		if !now.After(c.pending[i].end) {
			c.pending[i].actual = math.Max(c.pending[i].actual, rate)
		}
	}
	decay := math.Exp2(-elapsed.Hours() / calHalfLife.Hours())
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
			x := math.Log(p.actual / p.median)
			b := int((x - calMin) / (calMax - calMin) * calBins)
			b = min(max(b, 0), calBins-1)
			c.hist[b]++
			c.total++
		}
	}
	c.pending = append(c.pending[:0], c.pending[n:]...)
	c.pending = append(c.pending, pendingPeak{t: now, end: now.Add(horizon), median: median, actual: rate})
}

// ratio is the q quantile of actual/median peak, and false while too few
// outcomes were seen. indep is the share of an independent outcome that
// one outcome is worth (interval / horizon, at most 1). The quantile is
// split conformal's finite-sample one: of n independent outcomes, the
// ⌈(n+1)q⌉-th smallest, so that the next horizon stays under it with
// probability q however few outcomes there are; false until n is large
// enough for that rank to exist (n ≥ q/(1−q): 39 for 0.975) and at
// least calMinHorizons. With many outcomes it tends to the plain quantile.
func (c *horizonCalibration) ratio(q, indep float64) (float64, bool) {
	n := c.total * min(max(indep, 0), 1)
	if n < calMinHorizons || q*(n+1) > n {
		return 0, false
	}
	target := q * (n + 1) / n * c.total
	cum := 0.0
	for i, v := range c.hist {
		cum += v
		if cum >= target {
			x := calMin + (float64(i)+1)*(calMax-calMin)/calBins // the bin's upper edge
			return math.Exp(x), true
		}
	}
	return math.Exp(calMax), true
}
