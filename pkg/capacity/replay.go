package capacity

import (
	"math"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// Replay drives a Planner from what a backtest sees at each decision: the
// arrivals of every simulation step so far, the queue, and the replicas by
// tier and state. It is the same planner the serving loop runs, fed the
// same way (one forecaster interval at a time); only the source of the
// signals differs.
//
// It does not import pkg/sim (the planner never imports the simulator).
// pkg/sim or cmd/adapter adapts sim.Observation to ReplayObservation in a
// few lines:
//
//	func (p simPolicy) Decide(o *sim.Observation) (int, int) {
//		return p.r.Decide(capacity.ReplayObservation{
//			Time: o.Time, Start: o.Start, Step: o.Step, Arrivals: o.Arrivals, Queue: o.Queue,
//			OnDemand: capacity.TierState{Ready: o.OnDemand.Ready, Starting: o.OnDemand.Starting,
//				Pending: o.OnDemand.Pending, Terminating: o.OnDemand.Terminating},
//			Spot: capacity.TierState{Ready: o.Spot.Ready, Starting: o.Spot.Starting,
//				Pending: o.Spot.Pending, Terminating: o.Spot.Terminating},
//			Interruptions: o.Interruptions,
//		})
//	}
type Replay struct {
	planner *Planner
	fc      predict.Online

	fed       int // arrivals steps already fed to the forecaster
	lastIntr  int
	last      Plan
	lastEx    Explanation
	band      [3]float64 // low, mid, high forecast rate of the last plan
	hasBand   bool
	fcErr     error
	forecasts int
}

// ReplayObservation is one decision's view of a backtest.
type ReplayObservation struct {
	Time, Start time.Time
	// Step is the simulation step; Arrivals[k] counts the requests of
	// [Start+k*Step, Start+(k+1)*Step), for every step before Time.
	Step     time.Duration
	Arrivals []float64
	// Queue is the number of requests waiting.
	Queue          float64
	OnDemand, Spot TierState
	// Interruptions is the number of spot notices so far.
	Interruptions int
	// SpotByDomain counts the placed, non-terminating spot replicas of each
	// pool (failure domain); nil when the simulator does not say. The
	// binding fills it from the simulator's per-pool counts when it has
	// them: the zone margin then follows where replicas really are.
	SpotByDomain []int
}

// NewReplay plans workload w (validated; FailureDomains set to the number of
// spot pools) with forecaster fc, which must forecast intervals of
// w.ForecastStep.
func NewReplay(w Workload, fc predict.Online) *Replay {
	return &Replay{planner: NewPlanner(w), fc: fc}
}

// Decide plans at o.Time and returns the desired replicas per tier.
func (r *Replay) Decide(o ReplayObservation) (onDemand, spot int) {
	w := r.planner.Workload()
	perBucket := int(w.ForecastStep / o.Step)
	// Feed the forecaster every complete forecast interval.
	for perBucket > 0 && r.fed+perBucket <= len(o.Arrivals) {
		sum := 0.0
		for _, a := range o.Arrivals[r.fed : r.fed+perBucket] {
			sum += a
		}
		r.fc.Observe(o.Start.Add(time.Duration(r.fed)*o.Step), sum)
		r.fed += perBucket
	}
	// The live rate is that of the last decision interval, as a
	// rate(…[interval]) query would see it.
	n := min(len(o.Arrivals), int(w.DecisionInterval/o.Step))
	recent := 0.0
	for _, a := range o.Arrivals[len(o.Arrivals)-n:] {
		recent += a
	}
	rate := 0.0
	if n > 0 {
		rate = recent / (float64(n) * o.Step.Seconds())
	}
	notices := o.Interruptions - r.lastIntr
	r.lastIntr = o.Interruptions
	domains := 0
	if notices > 0 {
		// A pool is reclaimed as a whole: notices that arrive between two
		// decisions come from one failure domain.
		domains = 1
	}
	sig := Signals{
		Time: o.Time, Rate: rate, Backlog: o.Queue,
		OnDemand: o.OnDemand, Spot: o.Spot,
		SpotNotices: notices, SpotNoticeDomains: domains,
		SpotByDomain: o.SpotByDomain,
	}
	var fc *predict.Forecast
	var err error
	if r.fed > 0 {
		// Cover from the forecaster's origin to now + horizon.
		origin := o.Start.Add(time.Duration(r.fed) * o.Step)
		steps := int(math.Ceil(float64(o.Time.Sub(origin)+w.Horizon(w.ColdStart)) / float64(w.ForecastStep)))
		f, ferr := r.fc.Forecast(max(1, steps))
		fc, err = &f, ferr
	} else {
		err = predict.ErrNoHistory
	}
	plan, ex := r.planner.Plan(fc, err, sig)
	r.last, r.lastEx, r.fcErr = plan, ex, err
	r.hasBand = err == nil
	if r.hasBand {
		peak := func(q float64) float64 {
			m := 0.0
			for i := 0; i < fc.Len(); i++ {
				m = math.Max(m, fc.Quantile(q, i))
			}
			return m / fc.Step.Seconds()
		}
		r.band = [3]float64{peak(0.5), peak(0.5), peak(0.99)}
		r.band[0] = func() float64 { // the low edge: the lowest median step
			m := math.Inf(1)
			for i := 0; i < fc.Len(); i++ {
				m = math.Min(m, fc.Quantile(0.5, i))
			}
			return m / fc.Step.Seconds()
		}()
		r.band[1] = plan.ForecastRate
	}
	return plan.Tiers[TierOnDemand].Replicas, plan.Tiers[TierSpot].Replicas
}

// Last returns the last plan and its explanation.
func (r *Replay) Last() (Plan, Explanation) { return r.last, r.lastEx }

// ForecastBand returns the band (requests/s) of the last decision: the
// lowest median step, the rate sized for, and the highest p99 step; false
// when the last decision used no forecast.
func (r *Replay) ForecastBand() (low, mid, high float64, ok bool) {
	return r.band[0], r.band[1], r.band[2], r.hasBand
}
