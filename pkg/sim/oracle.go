package sim

import (
	"math"
	"time"
)

// oracleEpsilon keeps floating-point residue of spreading counts over steps
// from adding a replica: 30.000000000004 requests need one replica of 30.
const oracleEpsilon = 1e-9

// OracleReplicas is the oracle's count for every decision interval
// (SIMULATION.md, References): ceil(arrivals / (mu * interval)).
func (sc *Scenario) OracleReplicas() []int {
	cfg := sc.Config
	per := int(cfg.Interval / cfg.Step)
	n := (len(sc.arrivals) + per - 1) / per
	out := make([]int, n)
	perReplica := cfg.Mu * cfg.Interval.Seconds()
	for j := range n {
		a := 0.0
		for k := j * per; k < min((j+1)*per, len(sc.arrivals)); k++ {
			a += sc.arrivals[k]
		}
		out[j] = int(math.Ceil(a/perReplica - oracleEpsilon))
	}
	return out
}

// OracleCosts returns the cost of the oracle (every replica at the cheaper
// tier's price, ready at once, never interrupted) and of the spot-aware
// oracle (the same count, priced on-demand where no spot pool is available
// at the interval's start, at the cheaper tier's price elsewhere). A last
// partial interval is priced for its length.
//
// SIMULATION.md prices the oracle at spot; where spot is the cheaper tier
// (as in all its scenarios) that is the same number. Where on-demand is
// cheaper, a policy that runs all on-demand would otherwise beat an
// oracle that "no policy can be cheaper" than.
func (sc *Scenario) OracleCosts() (oracle, spotAware float64) {
	o, a := sc.OracleIntervalCosts()
	for j := range o {
		oracle += o[j]
		spotAware += a[j]
	}
	return oracle, spotAware
}

// OracleIntervalCosts returns the two oracles' costs of every decision
// interval.
func (sc *Scenario) OracleIntervalCosts() (oracle, spotAware []float64) {
	cfg := sc.Config
	total := time.Duration(len(sc.arrivals)) * cfg.Step
	counts := sc.OracleReplicas()
	oracle = make([]float64, len(counts))
	spotAware = make([]float64, len(counts))
	cheaper := min(cfg.PriceSpot, cfg.PriceOnDemand)
	for j, n := range counts {
		start := time.Duration(j) * cfg.Interval
		hours := min(cfg.Interval, total-start).Hours() * float64(n)
		oracle[j] = hours * cheaper
		price := cfg.PriceOnDemand
		if sc.SpotAvailableAnywhere(start) {
			price = cheaper
		}
		spotAware[j] = hours * price
	}
	return oracle, spotAware
}

// SpotAvailableAnywhere reports whether some spot pool has capacity at
// offset d after the start.
func (sc *Scenario) SpotAvailableAnywhere(d time.Duration) bool {
	return sc.AvailablePools(d) > 0
}

// AvailablePools counts the spot pools with capacity at offset d.
func (sc *Scenario) AvailablePools(d time.Duration) int {
	n := 0
	for i := range sc.numPools() {
		if sc.spotAvailable(i, d) {
			n++
		}
	}
	return n
}
