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

// OracleCosts returns the cost of the oracle (every replica spot, ready at
// once, never interrupted) and of the spot-aware oracle (the same count,
// priced on-demand where no spot pool is available at the interval's
// start). A last partial interval is priced for its length.
func (sc *Scenario) OracleCosts() (oracle, spotAware float64) {
	cfg := sc.Config
	total := time.Duration(len(sc.arrivals)) * cfg.Step
	for j, n := range sc.OracleReplicas() {
		start := time.Duration(j) * cfg.Interval
		hours := min(cfg.Interval, total-start).Hours() * float64(n)
		oracle += hours * cfg.PriceSpot
		price := cfg.PriceOnDemand
		for i := range sc.numPools() {
			if sc.spotAvailable(i, start) {
				price = cfg.PriceSpot
				break
			}
		}
		spotAware += hours * price
	}
	return oracle, spotAware
}
