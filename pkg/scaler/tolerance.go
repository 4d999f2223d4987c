package scaler

import (
	"math"
	"sync"
)

// The HPA computes, for an External metric with an AverageValue target
// (KEDA's default, and ours: target 1), in milli-units:
//
//	usageRatio = usage / (target * currentReplicas)
//	if 1-tolerance <= usageRatio <= 1+tolerance { keep currentReplicas }
//	else { desired = ceil(usage / target) }
//
// With target 1 the ratio is desired/current, so any change of less than
// the tolerance (10 % by default) is ignored: at 20 replicas a plan of 21 or
// 22 never takes effect. No fixed report can give both ceil(v) = 21 and
// v/20 > 1.1. The compensator below therefore tracks, per ScaledObject, the
// replica count the HPA is believed to run (the last value it was made to
// honour) and, when a plan moves within the tolerance of it:
//
//   - up: reports the smallest milli-value that clears the tolerance, so the
//     HPA scales up now, to at most ceil(10 %) more than planned: the plan's
//     capacity always arrives, a bad margin costs money, never requests;
//   - down: reports a value that lands exactly on the plan when one exists
//     (ceil(v) = plan and v/current < 1-tolerance), otherwise the plan
//     itself, which the HPA ignores: it keeps the (larger) current count
//     until the plan drifts past the tolerance, when it is honoured exactly.
//
// Each report is a pure function of the plan sequence (not of how often
// KEDA polls), so repeated polls between two plans return the same value.

// compensator keeps the believed replica count per ScaledObject and tier.
type compensator struct {
	tolerance float64
	mu        sync.Mutex
	state     map[compKey]compState
}

type compKey struct {
	namespace, name string
	target          Target
}

type compState struct {
	planned  int     // the plan's replicas the value was computed for
	value    float64 // what is reported while the plan stays at planned
	believed int     // replicas the HPA runs once it has acted on value
}

func newCompensator(tolerance float64) *compensator {
	return &compensator{tolerance: tolerance, state: map[compKey]compState{}}
}

// value returns the metric value to report for a plan of planned replicas.
func (c *compensator) value(k compKey, planned int) float64 {
	if c.tolerance <= 0 {
		return float64(planned)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.state[k]
	if ok && st.planned == planned {
		return st.value
	}
	believed := planned
	if ok {
		believed = st.believed
	}
	v, b := compensate(believed, planned, c.tolerance)
	c.state[k] = compState{planned: planned, value: v, believed: b}
	return v
}

// forget drops the state of every ScaledObject of a workload, e.g. when it
// leaves the policy.
func (c *compensator) forget(keep func(Target) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.state {
		if !keep(k.target) {
			delete(c.state, k)
		}
	}
}

// compensate returns the value to report when the HPA is believed to run
// believed replicas and the plan asks for planned, and the replica count the
// HPA will run once it acts on that value.
func compensate(believed, planned int, tol float64) (value float64, next int) {
	if believed <= 0 || planned <= 0 || planned == believed {
		return float64(planned), planned
	}
	ratio := float64(planned) / float64(believed)
	if ratio < 1-tol || ratio > 1+tol {
		return float64(planned), planned // outside the tolerance: honoured exactly
	}
	// KEDA hands the value to the HPA as a milli-quantity (fmt "%.3f"), so
	// work in integer milli-units, and test each candidate with the HPA's
	// own float expression so rounding cannot land it inside the band.
	ratioOf := func(m float64) float64 { return m / (1000 * float64(believed)) }
	if planned > believed {
		m := math.Floor(float64(believed) * (1 + tol) * 1000)
		for ratioOf(m) <= 1+tol {
			m++
		}
		return m / 1000, int(math.Ceil(m / 1000))
	}
	m := math.Ceil(float64(believed) * (1 - tol) * 1000)
	for ratioOf(m) >= 1-tol {
		m--
	}
	if m > float64(planned-1)*1000 {
		return m / 1000, planned // ceil(m/1000) == planned, and outside the tolerance
	}
	return float64(planned), believed
}
