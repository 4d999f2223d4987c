package capacity

import (
	"fmt"
	"math"
	"os"
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

	// The demand-weighted outcomes, for sizing to an availability: per bin
	// of log(rate/reference), the live rates that fell in it and their
	// references, over every live rate within every closed horizon.
	// Σ over bins above λ of (rate − λ·reference) is the demand a sizing
	// of λ × reference would have left above it.
	riskRate, riskRef [calBins]float64
	riskDemand        float64   // Σ of all those live rates
	recent            []stamped // live rates within the longest open horizon

	level, meanSum float64
}

var XGamma, XEmax, XLo, XHi, XTarget = 0.005, 0.1, 0.95, 0.995, 0.001

type pendingPeak struct {
	t, end      time.Time
	median      float64 // median forecast peak rate sized for
	actual      float64 // busiest live rate seen so far within the horizon
	sized       float64
	sum, excess float64
}

const (
	calBins = 240
	calMin  = -1.5 // log ratio range: 0.22× … 9.97×
	calMax  = 2.3
	// calHalfLife is how fast old outcomes fade (in decisions' time).
	calHalfLife = 3 * 24 * time.Hour
	// calMinWeight is how many outcomes the calibration needs before it is
	// trusted over the forecaster's own per-step quantiles.
	calMinWeight = 2000
)

// observe records the live rate at now, closes the horizons that ended and
// opens one for the decision at now.
func (c *horizonCalibration) observe(now time.Time, rate float64, median, sized, q0 float64, horizon, elapsed time.Duration) {
	c.recent = append(c.recent, stamped{now, rate})
	for i := range c.pending {
		if !now.After(c.pending[i].end) {
			c.pending[i].actual = math.Max(c.pending[i].actual, rate)
			if now.After(c.pending[i].t) {
				c.pending[i].sum += rate
				c.pending[i].excess += math.Max(0, rate-c.pending[i].sized)
			}
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
			c.riskRate[i] *= decay
			c.riskRef[i] *= decay
		}
		c.total *= decay
		c.riskDemand *= decay
	}
	for _, p := range c.pending[:n] {
		if c.total >= calMinWeight && p.sized > 0 && p.sum > 0 {
			if c.level == 0 {
				c.level, c.meanSum = q0, p.sum
			}
			c.meanSum += (p.sum - c.meanSum) * (1 - decay)
			err := math.Min(XEmax, p.excess/p.sum)
			c.level += XGamma * p.sum / c.meanSum * (err - XTarget)
			c.level = min(max(c.level, XLo), XHi)
		}
		if p.median > 0 && p.actual > 0 {
			x := math.Log(p.actual / p.median)
			b := int((x - calMin) / (calMax - calMin) * calBins)
			b = min(max(b, 0), calBins-1)
			c.hist[b]++
			c.total++
			c.addRisk(p)
		}
	}
	c.pending = append(c.pending[:0], c.pending[n:]...)
	// Keep the live rates that an open horizon still needs.
	keep := 0
	if len(c.pending) > 0 {
		for keep < len(c.recent) && !c.recent[keep].t.After(c.pending[0].t) {
			keep++
		}
	} else {
		keep = len(c.recent)
	}
	c.recent = append(c.recent[:0], c.recent[keep:]...)
	c.pending = append(c.pending, pendingPeak{t: now, end: now.Add(horizon), median: median, actual: rate, sized: sized})
}

// ratio is the q quantile of actual/median peak, and false while too few
// outcomes were seen.
func (c *horizonCalibration) ratio(q float64) (float64, bool) {
	if c.total < calMinWeight {
		return 0, false
	}
	target := q * c.total
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

// addRisk adds the live rates of p's horizon (after its decision, up to
// its end) to the demand-weighted outcomes.
func (c *horizonCalibration) addRisk(p pendingPeak) {
	for _, r := range c.recent {
		if !r.t.After(p.t) {
			continue
		}
		if r.t.After(p.end) {
			break
		}
		c.riskDemand += r.v
		if r.v <= 0 {
			continue
		}
		b := calBin(math.Log(r.v / p.median))
		c.riskRate[b] += r.v
		c.riskRef[b] += p.median
	}
}

func calBin(x float64) int {
	b := int(math.Floor((x - calMin) / (calMax - calMin) * calBins))
	return min(max(b, 0), calBins-1)
}

// availabilityRatio is the smallest ratio λ such that sizing every past
// horizon for λ × its reference would have left at most the share 1 − a of
// its demand above the sizing (conformal risk control on the planner's
// own outcomes), and false while too few outcomes were seen. The loss is
// monotone in λ, so the answer is found scanning down from the top bin.
func (c *horizonCalibration) availabilityRatio(a, limit float64) (float64, bool) {
	if c.total < calMinWeight || !(c.riskDemand > 0) {
		return 0, false
	}
	budget := (1 - a) * c.riskDemand
	aboveRate, aboveRef := 0.0, 0.0
	for b := calBins - 1; b >= 0; b-- {
		lambda := math.Exp(calMin + float64(b)*(calMax-calMin)/calBins) // the bin's lower edge
		if lambda >= limit {
			aboveRate += limit * c.riskRef[b]
		} else {
			aboveRate += c.riskRate[b]
		}
		aboveRef += c.riskRef[b]
		if aboveRate-lambda*aboveRef > budget {
			return math.Exp(calMin + float64(b+1)*(calMax-calMin)/calBins), true
		}
	}
	return math.Exp(calMin), true
}

func init() {
	if v := os.Getenv("XG"); v != "" {
		fmt.Sscanf(v, "%g,%g,%g,%g,%g", &XGamma, &XEmax, &XLo, &XHi, &XTarget)
	}
}
