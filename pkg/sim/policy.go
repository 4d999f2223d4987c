package sim

import "time"

// Policy is a scaling policy under test. The simulator calls Decide at every
// decision time (every Config.Interval), in order, on one goroutine.
//
// The policy sees only the past (SIMULATION.md step 3): the arrivals before
// the decision time, the queue, and its own replicas by tier and state. Spot
// availability is never shown to it: a policy learns of a spot shortage only
// through its effects, spot replicas that stay pending or get a notice.
type Policy interface {
	// Decide returns the desired replicas of each tier, counting replicas
	// that are not terminating. Negative values count as zero. obs and the
	// slices it holds are only valid during the call and must not be
	// modified.
	Decide(obs *Observation) (desiredOnDemand, desiredSpot int)
}

// Observation is what a policy sees at a decision time. The simulator reuses
// one Observation for the whole run and extends Arrivals in place, so a
// call costs nothing in proportion to the history's length.
type Observation struct {
	// Time is the decision time t.
	Time time.Time
	// Start is the start of the run (the trace's first timestamp).
	Start time.Time
	// Step is dt: Arrivals[k] counts the requests of [Start+k*Step, Start+(k+1)*Step).
	Step time.Duration
	// Arrivals holds one count per step for every step before Time (scaled).
	// Its capacity is its length: the future cannot be read by reslicing.
	Arrivals []float64
	// Queue is the number of requests waiting at t, before the arrivals of
	// [t, t+dt) join.
	Queue float64
	// OnDemand and Spot are the policy's replicas at t.
	OnDemand, Spot TierState
	// SpotByPool counts the placed spot replicas that are not terminating
	// (starting or ready) in each spot pool, as a serving loop reads its
	// pods' zones. It says where the policy's replicas are, not where spot
	// capacity is: a pool without replicas may have capacity or not.
	SpotByPool []int

	// Outcomes so far, as a serving loop sees them in its latency metrics.
	Met, Late, Dropped float64
	// Interruptions is the number of spot notices so far.
	Interruptions int
}

// TierState counts one tier's replicas at a decision time. Pending, Starting
// and Ready count replicas that are not terminating; Terminating counts the
// replicas under an interruption notice, which still serve while ready until
// they terminate.
type TierState struct {
	Pending     int // spot only: launched, waiting for an available pool, unbilled
	Starting    int // launched, billed, not yet ready
	Ready       int // serving
	Terminating int // under notice
}

// Live is the count Decide's targets are compared with: every replica that
// is not terminating.
func (s TierState) Live() int { return s.Pending + s.Starting + s.Ready }

// Band is a demand forecast band in requests/s.
type Band struct {
	Low, Mid, High float64
}

// BandReporter is implemented by policies that size for a forecast; the
// report draws the band it returns after each decision.
type BandReporter interface {
	// ForecastBand returns the band the last decision was sized for, and
	// false when that decision used no forecast.
	ForecastBand() (Band, bool)
}

// PolicyFunc adapts a function to Policy.
type PolicyFunc func(obs *Observation) (int, int)

// Decide calls f.
func (f PolicyFunc) Decide(obs *Observation) (int, int) { return f(obs) }
