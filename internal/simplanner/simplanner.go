// Package simplanner is infercast's policy in a backtest: the capacity
// planner that `adapter serve` runs (capacity.Replay, fed by the online
// forecaster) bound to the simulator's Policy. The planner never imports
// the simulator; this binding is the one place that knows both, so that
// `adapter backtest` and the planner's backtest tests drive the same code.
package simplanner

import (
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/predict"
	"github.com/infercast/infercast/pkg/sim"
)

// Policy is a sim.Policy and a sim.BandReporter.
type Policy struct{ r *capacity.Replay }

// New returns w's planner with a fresh online forecaster.
func New(w capacity.Workload) Policy {
	return Policy{capacity.NewReplay(w, predict.NewOnline(w.ForecastStep, predict.Options{}))}
}

// Decide implements sim.Policy.
func (p Policy) Decide(o *sim.Observation) (int, int) {
	return p.r.Decide(capacity.ReplayObservation{
		Time: o.Time, Start: o.Start, Step: o.Step, Arrivals: o.Arrivals, Queue: o.Queue,
		OnDemand:      tierState(o.OnDemand),
		Spot:          tierState(o.Spot),
		Interruptions: o.Interruptions,
		SpotByDomain:  o.SpotByPool,
	})
}

func tierState(s sim.TierState) capacity.TierState {
	return capacity.TierState{Ready: s.Ready, Starting: s.Starting, Pending: s.Pending, Terminating: s.Terminating}
}

// ForecastBand implements sim.BandReporter.
func (p Policy) ForecastBand() (sim.Band, bool) {
	lo, mid, hi, ok := p.r.ForecastBand()
	return sim.Band{Low: lo, Mid: mid, High: hi}, ok
}

// Last is the latest decision's plan and its explanation.
func (p Policy) Last() (capacity.Plan, capacity.Explanation) { return p.r.Last() }
