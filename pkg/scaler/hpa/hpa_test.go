package hpa

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/infercast/infercast/pkg/capacity"
)

// hpaDesired is the HPA's replica calculation for an External metric with
// an AverageValue target of 1 (k8s.io/kubernetes pkg/controller/podautoscaler
// replica_calculator.go, GetExternalPerPodMetricReplicas), fed the value the
// way KEDA hands it over: a milli-quantity formatted with "%.3f".
func hpaDesired(current int, value, tol float64) int {
	q := resource.MustParse(fmt.Sprintf("%.3f", value))
	milli := q.MilliValue()
	ratio := float64(milli) / (1000 * float64(current))
	if 1-tol <= ratio && ratio <= 1+tol {
		return current
	}
	return int(math.Ceil(float64(milli) / 1000))
}

func TestCompensate(t *testing.T) {
	tests := []struct {
		name              string
		believed, planned int
		tol               float64
		wantValue         float64
		wantNext          int
	}{
		{"unchanged", 20, 20, 0.1, 20, 20},
		{"first plan", 0, 7, 0.1, 7, 7},
		{"planned zero", 5, 0, 0.1, 0, 0},
		{"beyond tolerance up", 20, 23, 0.1, 23, 23},
		{"beyond tolerance down", 20, 17, 0.1, 17, 17},
		{"small pool: one replica is >10%", 5, 6, 0.1, 6, 6},
		// 21/20 = 1.05 is within: report just past 1.1*20 = 22 → ceil 23.
		{"within up by one", 20, 21, 0.1, 22.001, 23},
		// 22/20 = 1.1 exactly is still within (the HPA compares with <=).
		{"at the bound up", 20, 22, 0.1, 22.001, 23},
		// 18/20 = 0.9 is within: 17.999 has ceil 18 and ratio 0.89995.
		{"within down, exact landing", 20, 18, 0.1, 17.999, 18},
		// 19/20: no value has ceil 19 and ratio < 0.9: report 19, HPA keeps 20.
		{"within down, held", 20, 19, 0.1, 19, 20},
		{"tolerance off", 20, 21, 0, 21, 21},
		{"large pool", 200, 205, 0.1, 220.001, 221},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tol := tt.tol
			var v float64
			var next int
			if tol == 0 {
				c := NewCompensator(Fixed(0))
				v, next = c.Value(Key{}, tt.planned), tt.planned
			} else {
				v, next = Compensate(tt.believed, tt.planned, tol)
			}
			if v != tt.wantValue || next != tt.wantNext {
				t.Fatalf("compensate(%d, %d) = %v, %d; want %v, %d", tt.believed, tt.planned, v, next, tt.wantValue, tt.wantNext)
			}
			if tt.believed > 0 && tt.planned > 0 && tol > 0 {
				// The HPA, running believed replicas, must land on next, and never below the plan.
				got := hpaDesired(tt.believed, v, tol)
				if got != next {
					t.Fatalf("HPA at %d replicas given %v goes to %d, compensator believed %d", tt.believed, v, got, next)
				}
				if got < tt.planned {
					t.Fatalf("HPA runs %d < planned %d", got, tt.planned)
				}
			}
		})
	}
}

// TestCompensatorSequence drives a simulated HPA through a plan sequence:
// every plan is met (never fewer replicas than planned) and the HPA settles.
func TestCompensatorSequence(t *testing.T) {
	c := NewCompensator(Fixed(DefaultTolerance))
	k := Key{Namespace: "ns", Name: "so", Workload: "chat", Tier: "on-demand"}
	hpa := 0
	for i, planned := range []int{20, 21, 21, 22, 25, 24, 18, 18, 30, 3, 1, 2} {
		for poll := 0; poll < 3; poll++ { // KEDA polls several times per plan
			v := c.Value(k, planned)
			if hpa == 0 {
				hpa = int(math.Ceil(v))
			} else {
				hpa = hpaDesired(hpa, v, DefaultTolerance)
			}
		}
		if hpa < planned {
			t.Fatalf("step %d: plan %d, HPA runs %d", i, planned, hpa)
		}
		if limit := int(math.Ceil(float64(planned)*(1+DefaultTolerance))) + 1; hpa > limit {
			t.Fatalf("step %d: plan %d, HPA runs %d > %d", i, planned, hpa, limit)
		}
	}
}

func plan(w string, active bool, onDemand, spot int) capacity.Plan {
	return capacity.Plan{Workload: w, Active: active, Tiers: map[string]capacity.TierTarget{
		capacity.TierOnDemand: {Replicas: onDemand}, capacity.TierSpot: {Replicas: spot}}}
}

func TestServedReplicas(t *testing.T) {
	tests := []struct {
		name    string
		plan    capacity.Plan
		tier    string
		want    int
		wantErr bool
	}{
		{"plain", plan("w", true, 3, 5), capacity.TierSpot, 5, false},
		{"inactive zero", plan("w", false, 0, 0), capacity.TierOnDemand, 0, false},
		{"active all zero floors to 1", plan("w", true, 0, 0), capacity.TierOnDemand, 1, false},
		{"active spot zero in fallback", plan("w", true, 6, 0), capacity.TierSpot, 0, false},
		{"negative", plan("w", true, -1, 2), capacity.TierSpot, 0, true},
		{"preview", previewPlan(plan("w", true, 3, 5)), capacity.TierSpot, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ServedReplicas(tt.plan, tt.tier)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("got %d, %v; want %d, err %v", got, err, tt.want, tt.wantErr)
			}
			var pe *PreviewError
			if isPreview := errors.As(err, &pe); isPreview != (tt.plan.Mode == capacity.ModePreview) {
				t.Fatalf("err %v: a *PreviewError is %t, want %t", err, isPreview, !isPreview)
			}
		})
	}
}

func previewPlan(p capacity.Plan) capacity.Plan {
	p.Mode = capacity.ModePreview
	return p
}

func TestPerWorkloadTolerance(t *testing.T) {
	c := NewCompensator(func(w string) float64 {
		if w == "exact" {
			return 0 // its HPA sets behavior tolerance: 0
		}
		return 0.1
	})
	for _, w := range []string{"exact", "stock"} {
		c.Value(Key{Workload: w}, 20)
	}
	if v := c.Value(Key{Workload: "exact"}, 21); v != 21 {
		t.Fatalf("tolerance 0: %v, want 21", v)
	}
	if v := c.Value(Key{Workload: "stock"}, 21); v != 22.001 {
		t.Fatalf("tolerance 0.1: %v, want 22.001", v)
	}
}

// stabilisedHPA models the HPA's replica decision at each sync for an
// External AverageValue target of 1 with its default behavior: scale-up
// by at most max(100 %, 4 pods) per sync, scale-down to the highest
// recommendation of the stabilisation window (pkg/controller/podautoscaler
// horizontal.go, stabilizeRecommendationWithBehaviors, and the default
// scale-up policies).
type stabilisedHPA struct {
	replicas int
	window   time.Duration
	recs     []recommendation
}

type recommendation struct {
	n     int
	since time.Time
}

func (h *stabilisedHPA) sync(now time.Time, value, tol float64) {
	rec := hpaDesired(h.replicas, value, tol)
	h.recs = append(h.recs, recommendation{n: rec, since: now})
	down := rec
	for _, r := range h.recs {
		if now.Sub(r.since) < h.window {
			down = max(down, r.n)
		}
	}
	switch {
	case rec > h.replicas:
		h.replicas = min(rec, max(2*h.replicas, h.replicas+4))
	case down < h.replicas:
		h.replicas = down
	}
}

// TestCompensatorThroughStabilisation drives a stock HPA (5-minute
// scale-down stabilisation) with plans that move every 15 s to 5 min: the
// HPA must run at least the plan at the first sync after each plan. The
// sequence of the failure: 20 → 17 (the HPA keeps 20 for 5 minutes) → 21,
// past 10 % of 17 but within 10 % of 20: reported as 21, ignored, one
// replica short for as long as the plan stayed. And 13 → 28: the HPA's
// scale-up limit stops it at 26, within 10 % of 28.
func TestCompensatorThroughStabilisation(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for seq := range 200 {
		now := time.Unix(1_700_000_000, 0)
		c := NewCompensatorWith(Options{Tolerance: Fixed(DefaultTolerance), Now: func() time.Time { return now }, DownscaleWindow: -1})
		k := Key{Namespace: "ns", Name: "so", Workload: "chat", Tier: "on-demand"}
		plans := []int{20, 17, 21}
		if seq == 1 {
			// Past the scale-up limit (26 in one sync) to within 10 % of it.
			plans = []int{13, 28}
		}
		if seq > 1 {
			plans = plans[:0]
			p := 5 + rng.IntN(40)
			for range 30 {
				p = max(1, p+rng.IntN(9)-4)
				plans = append(plans, p)
			}
		}
		// The belief starts at the first plan (what it assumes of an HPA
		// it knows nothing of: docs/serving.md, limits).
		h := &stabilisedHPA{replicas: plans[0], window: DefaultDownscaleWindow}
		for i, planned := range plans {
			holds := 1 + rng.IntN(20) // syncs of 15 s the plan stays
			for s := range holds {
				prev := h.replicas
				h.sync(now, c.Value(k, planned), DefaultTolerance)
				// At least the plan, or as far towards it as the scale-up
				// limit lets one sync go.
				if want := min(planned, max(2*prev, prev+4)); h.replicas < want {
					t.Fatalf("sequence %d step %d (%v), sync %d: plan %d, HPA runs %d (from %d)", seq, i, plans[:i+1], s, planned, h.replicas, prev)
				}
				now = now.Add(15 * time.Second)
			}
		}
	}
}

// TestCompensatorFromCurrent: with the Deployment's status.replicas known,
// the value follows what the HPA runs, and the HPA converges on the plan —
// also after an adapter restart (no belief) and a count it was not told.
func TestCompensatorFromCurrent(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	h := &stabilisedHPA{replicas: 20, window: DefaultDownscaleWindow}
	c := NewCompensatorWith(Options{
		Current: func(Key) (int, bool) { return h.replicas, true },
		Now:     func() time.Time { return now },
	})
	k := Key{Workload: "chat", Tier: "spot"}
	// 13 → 28 is past the scale-up limit (26 in one sync), within 10 % of 28.
	for _, planned := range []int{21, 17, 21, 25, 24, 12, 13, 28, 60, 5} {
		for range 40 { // 10 minutes: past the stabilisation window
			h.sync(now, c.Value(k, planned), DefaultTolerance)
			now = now.Add(15 * time.Second)
		}
		if h.replicas < planned {
			t.Fatalf("plan %d, HPA settled at %d", planned, h.replicas)
		}
		// Exactly the plan, unless no value lands there: a move down
		// within the tolerance whose plan−1 is still within it.
		landable := float64(planned-1) < (1-DefaultTolerance)*float64(h.replicas)
		if h.replicas != planned && landable {
			t.Errorf("plan %d: HPA settled at %d, want the plan", planned, h.replicas)
		}
	}
}
