// Package hpa models the HorizontalPodAutoscaler's replica calculation for
// an AverageValue target of 1, and compensates reported values for its
// tolerance. It knows no transport: the KEDA scaler and the custom metrics
// provider both use it.
package hpa

import (
	"fmt"
	"math"
	"slices"
	"sync"
	"time"

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
//
// The HPA divides by the replicas its target runs now (status.replicas),
// which the belief can miss: its scale-down stabilisation (300 s by
// default) keeps the highest recommendation of the window, so after a
// plan of 20 → 17 it may still run 20, and a plan of 21 — past 10 % of 17
// but within 10 % of 20 — would be reported as 21 and ignored: one replica
// short for as long as the plan stays. So an up-move clears the tolerance
// of the highest count the HPA may still run (the highest of the window,
// below the plan). Where the Deployment's status.replicas is known
// (Options.Current) none of this is a belief: every value is computed from
// it, and the HPA converges on the plan.

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

// DefaultDownscaleWindow is the HPA's default scale-down stabilisation
// window (behavior.scaleDown.stabilizationWindowSeconds, 300).
const DefaultDownscaleWindow = 5 * time.Minute

// CurrentFunc returns the replicas the HPA of k divides by — its target
// Deployment's status.replicas — and whether they are known.
type CurrentFunc func(k Key) (replicas int, ok bool)

// Options configure a Compensator.
type Options struct {
	// Tolerance per workload; nil means DefaultTolerance for all.
	Tolerance ToleranceFunc
	// Current, when set and known, replaces the belief.
	Current CurrentFunc
	// DownscaleWindow is the HPAs' scale-down stabilisation window: how
	// long one may keep a count it was asked to leave. 0 means the HPAs set
	// it to 0 (the chart's ScaledObjects do); negative means the default.
	DownscaleWindow time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Compensator keeps, per Key, the replica counts the HPA may be running.
// It is safe for concurrent use.
type Compensator struct {
	tolerance ToleranceFunc
	current   CurrentFunc
	window    time.Duration
	now       func() time.Time
	mu        sync.Mutex
	state     map[Key]compState
}

type compState struct {
	planned int     // the plan's replicas the value was computed for
	tol     float64 // the tolerance it was computed with
	value   float64 // what is reported while the plan stays at planned
	counts  []possibleCount
}

// possibleCount is a replica count the HPA may be running: the count its
// last value moved it to (or kept it at), or one it was asked to leave and
// may keep until its downscale window passes.
type possibleCount struct {
	n     int
	until time.Time // zero: until the HPA is given another value
}

// NewCompensator compensates for the tolerance of each workload, with the
// HPA's default downscale window; nil means DefaultTolerance for all.
func NewCompensator(tolerance ToleranceFunc) *Compensator {
	return NewCompensatorWith(Options{Tolerance: tolerance, DownscaleWindow: -1})
}

// NewCompensatorWith returns a Compensator configured by o.
func NewCompensatorWith(o Options) *Compensator {
	c := &Compensator{tolerance: o.Tolerance, current: o.Current, window: o.DownscaleWindow, now: o.Now, state: map[Key]compState{}}
	if c.tolerance == nil {
		c.tolerance = Fixed(DefaultTolerance)
	}
	if c.window < 0 {
		c.window = DefaultDownscaleWindow
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Value returns the metric value to report for a plan of planned replicas.
func (c *Compensator) Value(k Key, planned int) float64 {
	tol := c.tolerance(k.Workload)
	if tol <= 0 || tol >= 1 {
		return float64(planned)
	}
	if c.current != nil {
		if n, ok := c.current(k); ok && n > 0 {
			return choose([]int{n}, planned, tol)
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.state[k]
	if ok && st.planned == planned && st.tol == tol {
		// Polls between two plans get the same value: the belief cannot
		// tell whether the HPA has acted on it yet.
		return st.value
	}
	now := c.now()
	if !ok {
		// Nothing known (a new object, or the adapter restarted): the HPA
		// is taken to run the plan.
		st.counts = []possibleCount{{n: planned}}
	}
	live := st.counts[:0]
	for _, pc := range st.counts {
		if pc.until.IsZero() || now.Before(pc.until) {
			live = append(live, pc)
		}
	}
	st.counts = live
	ns := make([]int, len(live))
	for i, pc := range live {
		ns[i] = pc.n
	}
	v := choose(ns, planned, tol)
	st.counts = advance(st.counts, v, tol, now, c.window)
	st.planned, st.tol, st.value = planned, tol, v
	c.state[k] = st
	return v
}

// choose is the value to report when the HPA may run any of counts: never
// fewer than planned from any of them, exactly planned where it can be.
// An up-move must clear the tolerance of the highest count below the
// plan (the lower ones then clear it too); otherwise the plan lands
// exactly on the lowest count when Compensate can land it.
func choose(counts []int, planned int, tol float64) float64 {
	from, below := 0, false
	for _, n := range counts {
		if n < planned && (!below || n > from) {
			from, below = n, true
		}
	}
	if !below {
		from = slices.Min(counts)
	}
	for range 64 {
		v, _ := Compensate(from, planned, tol)
		// The HPA's scale-up rate limit can stop it within the tolerance
		// of v, below the plan: compensate from where it stops instead.
		stuck := -1
		for _, n := range counts {
			if s := settle(n, v, tol); s < planned && s > stuck {
				stuck = s
			}
		}
		if stuck < 0 || stuck == from {
			return v
		}
		from = stuck
	}
	return float64(planned)
}

// advance moves every count the HPA may run by the value v it is now
// given: the HPA settles where v takes it (settle), and a count it leaves
// downwards stays possible for its downscale window.
func advance(counts []possibleCount, v, tol float64, now time.Time, window time.Duration) []possibleCount {
	var out []possibleCount
	add := func(pc possibleCount) {
		for i := range out {
			if out[i].n == pc.n {
				if pc.until.IsZero() || (!out[i].until.IsZero() && pc.until.After(out[i].until)) {
					out[i].until = pc.until
				}
				return
			}
		}
		out = append(out, pc)
	}
	for _, pc := range counts {
		s := settle(pc.n, v, tol)
		if s < pc.n && window > 0 {
			add(possibleCount{n: pc.n, until: now.Add(window)})
		}
		add(possibleCount{n: s})
	}
	return out
}

// settle is where the HPA running current replicas ends up when given v
// at every sync: its recommendation (Compensate's expression), scale-up
// limited to the default behavior's max(100 %, 4 pods) per sync.
func settle(current int, v, tol float64) int {
	if current <= 0 {
		return int(math.Ceil(v))
	}
	n := current
	for range 64 {
		ratio := math.Round(v*1000) / (1000 * float64(n))
		if 1-tol <= ratio && ratio <= 1+tol {
			return n
		}
		rec := int(math.Ceil(math.Round(v*1000) / 1000))
		if rec <= n {
			return rec
		}
		next := min(rec, max(2*n, n+4))
		if next == rec {
			return rec
		}
		n = next
	}
	return n
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

// TierActive says whether a tier of a plan must run: the workload is active
// and the tier serves replicas. A tier the plan leaves at 0 while another
// carries the demand (spot moved to on-demand) is inactive, so that KEDA
// scales it to zero (with minReplicaCount 0) instead of holding the one
// replica its HPA never goes below.
func TierActive(p capacity.Plan, tier string) (bool, error) {
	if !p.Active {
		return false, nil
	}
	n, err := ServedReplicas(p, tier)
	return n > 0, err
}
