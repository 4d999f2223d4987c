package sim

import (
	"math"
	"slices"
	"time"
)

// Reactive is the reference most users run today (SIMULATION.md,
// References): the Kubernetes HPA on a requests-per-second metric as KEDA's
// Prometheus scaler drives it, all on-demand. It follows the HPA
// controller's arithmetic for an External metric with an AverageValue
// target:
//
//   - the metric is rate(requests[60s]) at the decision time, from the
//     arrivals before it (over the history there is, at the start);
//   - proposal = ceil(rate / (0.7*mu)), unless |rate/(0.7*mu*current) - 1|
//     is within the 10 % tolerance, where it stays at current;
//   - scale-down is stabilised: the target is the highest proposal of the
//     last 300 s (never above current);
//   - scale-up is limited per decision (15 s, the HPA's sync period) to
//     max(2*current, current+4), the HPA's default scale-up policies;
//   - at least MinReplicas (1: KEDA's scale to zero is off, as it is for
//     model servers whose cold start is minutes).
type Reactive struct {
	Mu            float64
	TargetRatio   float64       // 0.7: target requests/s per replica over mu
	Window        time.Duration // 60 s rate window
	Tolerance     float64       // 0.1
	Stabilisation time.Duration // 300 s scale-down window
	MinReplicas   int           // 1

	current int
	recs    []recommendation
}

type recommendation struct {
	at       time.Time
	replicas int
}

// NewReactive returns the HPA baseline with SIMULATION.md's settings.
func NewReactive(cfg Config) *Reactive {
	return &Reactive{
		Mu:            cfg.Mu,
		TargetRatio:   0.7,
		Window:        60 * time.Second,
		Tolerance:     0.1,
		Stabilisation: 300 * time.Second,
		MinReplicas:   1,
	}
}

// Decide implements Policy.
func (h *Reactive) Decide(obs *Observation) (int, int) {
	k := len(obs.Arrivals)
	w := min(k, int(h.Window/obs.Step))
	rate := 0.0
	if w > 0 {
		sum := 0.0
		for _, a := range obs.Arrivals[k-w:] {
			sum += a
		}
		rate = sum / (float64(w) * obs.Step.Seconds())
	}
	target := h.TargetRatio * h.Mu
	proposal := int(math.Ceil(rate/target - oracleEpsilon))
	if h.current > 0 && math.Abs(rate/(target*float64(h.current))-1) <= h.Tolerance {
		proposal = h.current
	}
	proposal = max(proposal, h.MinReplicas)

	// Scale-down stabilisation: keep the proposals of the window.
	cutoff := obs.Time.Add(-h.Stabilisation)
	h.recs = slices.DeleteFunc(h.recs, func(r recommendation) bool { return !r.at.After(cutoff) })
	h.recs = append(h.recs, recommendation{at: obs.Time, replicas: proposal})
	desired := proposal
	if proposal < h.current {
		highest := 0
		for _, r := range h.recs {
			highest = max(highest, r.replicas)
		}
		desired = min(h.current, highest)
	}
	if desired > h.current {
		desired = min(desired, max(2*h.current, h.current+4))
	}
	h.current = desired
	return desired, 0
}

// Static is a fixed fleet, all on-demand.
type Static struct{ OnDemand int }

// Decide implements Policy.
func (s Static) Decide(*Observation) (int, int) { return s.OnDemand, 0 }

// StaticPeak provisions for the trace's peak decision interval, known in
// hindsight: the oracle's highest count, on-demand, all the time.
func StaticPeak(sc *Scenario) Static {
	return Static{OnDemand: slices.Max(append(sc.OracleReplicas(), 0))}
}
