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

	// The surge account: for the last decision interval of every horizon,
	// the sustained rate (the lowest live rate of the last cold start) by
	// its ratio to the horizon's reference, as Σ reference·seconds
	// (surgeRef) and Σ sustained rate·seconds (surgeDemand) per bin, and
	// all demand·seconds (demand), decayed like hist. The requests a
	// sizing of r × reference leaves to sustained surges are then
	// Σ_{bins above r} (surgeDemand − r·surgeRef).
	surgeRef, surgeDemand [calBins]float64
	demand                float64

	// The decay is lazy: hist and total are kept times 2^histLog2W, the
	// surge account times 2^surgeLog2W, weights that grow as the decay
	// would shrink them, so a decision adds weighted entries instead of
	// multiplying 720 bins (see growWeight). The zero value weighs 1.
	histLog2W, surgeLog2W float64
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
	// calMaxLog2W bounds the lazy decay's weights (2^300: 900 days at a
	// 3-day half-life) so that weighted sums stay far from overflow.
	calMaxLog2W = 300
)

// observe records the live rate at now (and the sustained rate, the
// lowest of the last cold start), closes the horizons that ended and
// opens one for the decision at now.
func (c *horizonCalibration) observe(now time.Time, rate, sustained, median float64, horizon, elapsed time.Duration) {
	halves := elapsed.Hours() / calHalfLife.Hours()
	w := growWeight(&c.surgeLog2W, halves, &c.demand, &c.surgeRef, &c.surgeDemand)
	c.demand += rate * elapsed.Seconds() * w
	for i := range c.pending {
		p := &c.pending[i]
		if now.After(p.end) {
			continue
		}
		p.actual = math.Max(p.actual, rate)
		// The horizon's last interval: the demand the replicas launched
		// for it serve once ready.
		if now.After(p.end.Add(-elapsed)) && p.median > 0 && sustained > 0 {
			b := calBin(math.Log(sustained / p.median))
			c.surgeRef[b] += p.median * elapsed.Seconds() * w
			c.surgeDemand[b] += sustained * elapsed.Seconds() * w
		}
	}
	n := 0
	for n < len(c.pending) && now.After(c.pending[n].end) {
		n++
	}
	if n > 0 { // hist decays only when horizons close
		w := growWeight(&c.histLog2W, halves, &c.total, &c.hist)
		for _, p := range c.pending[:n] {
			if p.median > 0 && p.actual > 0 {
				c.hist[calBin(math.Log(p.actual/p.median))] += w
				c.total += w
			}
		}
	}
	c.pending = append(c.pending[:0], c.pending[n:]...)
	c.pending = append(c.pending, pendingPeak{t: now, end: now.Add(horizon), median: median, actual: rate})
}

// growWeight raises the weight 2^*log2W by halves half-lives and returns it;
// past calMaxLog2W it first divides sum and bins by it and restarts at 1.
func growWeight(log2W *float64, halves float64, sum *float64, bins ...*[calBins]float64) float64 {
	*log2W += halves
	if *log2W > calMaxLog2W {
		s := math.Exp2(-*log2W)
		*sum *= s
		for _, b := range bins {
			for i := range b {
				b[i] *= s
			}
		}
		*log2W = 0
	}
	return math.Exp2(*log2W)
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
	// hist and total share a scale; only n needs the true decayed count.
	n := c.total * math.Exp2(-c.histLog2W) * min(max(indep, 0), 1)
	if n < calMinHorizons || q*(n+1) > n {
		return 0, false
	}
	target := q * (n + 1) / n * c.total
	cum := 0.0
	for i, v := range c.hist {
		cum += v
		if cum >= target {
			return calEdge(i), true
		}
	}
	return math.Exp(calMax), true
}

// calBin is the bin of log ratio x.
func calBin(x float64) int {
	return min(max(int((x-calMin)/(calMax-calMin)*calBins), 0), calBins-1)
}

// calEdge is the ratio at bin i's upper edge.
func calEdge(i int) float64 { return calEdges[i] }

// calEdges are the bins' upper edges, computed once: surgeRatio walks them
// at every decision.
var calEdges = func() (e [calBins]float64) {
	for i := range e {
		e[i] = math.Exp(calMin + (float64(i)+1)*(calMax-calMin)/calBins)
	}
	return e
}()

// surgeMaxRatio caps the surge reserve: a sustained rise beyond twice the
// reference (demand resuming after an outage, a new client) is a level
// shift that the reactive floors meet; holding replicas against it all
// the time would double the fleet. Such surges count as ones of twice.
const surgeMaxRatio = 2.0

// surgeRatio is the smallest ratio r (at most surgeMaxRatio) whose sizing,
// r × reference, would have left at most budget of all demand to
// sustained surges above it; false before any demand.
func (c *horizonCalibration) surgeRatio(budget float64) (float64, bool) {
	if c.demand <= 0 {
		return 0, false
	}
	// demand, surgeRef and surgeDemand share a scale, and all is linear.
	top := calBin(math.Log(surgeMaxRatio))
	ref, demand := 0.0, 0.0 // Σ over the bins above the candidate ratio
	for i := top; i < calBins; i++ {
		ref += c.surgeRef[i]
		demand += c.surgeDemand[i]
	}
	// Surges beyond the cap count as ones at the cap.
	allowed := budget*c.demand + demand - calEdge(top)*ref
	for i := top - 1; i >= 0; i-- {
		if demand-calEdge(i)*ref > allowed {
			return calEdge(i + 1), true
		}
		ref += c.surgeRef[i]
		demand += c.surgeDemand[i]
	}
	return calEdge(0), true
}
