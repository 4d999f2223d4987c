package hpa

import (
	"errors"
	"fmt"
	"math"
	"testing"

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
