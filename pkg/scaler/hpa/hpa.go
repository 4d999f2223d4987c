// Package hpa models the HorizontalPodAutoscaler's replica calculation for
// an AverageValue target of 1, and compensates reported values for its
// tolerance. It knows no transport: the KEDA scaler and the custom metrics
// provider both use it.
package hpa

import (
	"fmt"
	"math"
	"sync"

	"github.com/infercast/infercast/pkg/capacity"
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
// v/20 > 1.1. The compensator below therefore tracks, per scaled object, the
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

// DefaultTolerance is the HPA's default --horizontal-pod-autoscaler-tolerance.
const DefaultTolerance = 0.1

// Key names one HPA target: the scaled object (ScaledObject or Deployment)
// and the workload and tier it follows.
type Key struct {
	Namespace, Name string
	Workload, Tier  string
}

// ToleranceFunc returns the HPA tolerance of a workload's HPAs (the
// policy's per-workload tolerance); 0 means the HPA's behavior sets
// tolerance: 0, so plans are reported unchanged.
type ToleranceFunc func(workload string) float64

// Fixed is a ToleranceFunc with one tolerance for every workload.
func Fixed(tol float64) ToleranceFunc { return func(string) float64 { return tol } }

// Compensator keeps the believed replica count per Key. It is safe for
// concurrent use.
type Compensator struct {
	tolerance ToleranceFunc
	mu        sync.Mutex
	state     map[Key]compState
}

type compState struct {
	planned  int     // the plan's replicas the value was computed for
	tol      float64 // the tolerance it was computed with
	value    float64 // what is reported while the plan stays at planned
	believed int     // replicas the HPA runs once it has acted on value
}

// NewCompensator compensates for the tolerance of each workload; nil means
// DefaultTolerance for all.
func NewCompensator(tolerance ToleranceFunc) *Compensator {
	if tolerance == nil {
		tolerance = Fixed(DefaultTolerance)
	}
	return &Compensator{tolerance: tolerance, state: map[Key]compState{}}
}

// Value returns the metric value to report for a plan of planned replicas.
func (c *Compensator) Value(k Key, planned int) float64 {
	tol := c.tolerance(k.Workload)
	if tol <= 0 || tol >= 1 {
		return float64(planned)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.state[k]
	if ok && st.planned == planned && st.tol == tol {
		return st.value
	}
	believed := planned
	if ok {
		believed = st.believed
	}
	v, b := Compensate(believed, planned, tol)
	c.state[k] = compState{planned: planned, tol: tol, value: v, believed: b}
	return v
}

// Forget drops the state of every Key that keep rejects, e.g. tiers that
// left the policy.
func (c *Compensator) Forget(keep func(Key) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.state {
		if !keep(k) {
			delete(c.state, k)
		}
	}
}

// Compensate returns the value to report when the HPA is believed to run
// believed replicas and the plan asks for planned, and the replica count the
// HPA will run once it acts on that value.
func Compensate(believed, planned int, tol float64) (value float64, next int) {
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

// PreviewError says a plan is in preview (policy `preview: true`): its
// targets are computed and exported as metrics (infercast_plan_*), never
// handed to an autoscaler. Both serving faces answer it with an error, so
// the HPA keeps its current replica count (docs/serving.md).
type PreviewError struct{ Workload string }

func (e *PreviewError) Error() string {
	return fmt.Sprintf("workload %q is in preview: targets are exported as metrics only", e.Workload)
}

// Preview returns a *PreviewError when p is in preview mode, else nil.
func Preview(p capacity.Plan) error {
	if p.Mode == capacity.ModePreview {
		return &PreviewError{Workload: p.Workload}
	}
	return nil
}

// ServedReplicas is the replica count to serve for a tier of a plan. While
// the plan is active a tier reports 0 only when another tier carries the
// demand (e.g. spot moved to on-demand in fallback); otherwise at least 1,
// so a live workload is never scaled to nothing by a degenerate plan. A
// negative target is an error: it is never served. A preview plan is never
// served either: the error is a *PreviewError.
func ServedReplicas(p capacity.Plan, tier string) (int, error) {
	if err := Preview(p); err != nil {
		return 0, err
	}
	total := 0
	for name, tt := range p.Tiers {
		if tt.Replicas < 0 {
			return 0, fmt.Errorf("tier %q has %d replicas", name, tt.Replicas)
		}
		total += tt.Replicas
	}
	r := p.Tiers[tier].Replicas
	if p.Active && r == 0 && total == 0 {
		r = 1
	}
	return r, nil
}
