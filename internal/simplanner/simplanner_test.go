package simplanner

import (
	"context"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/sim"
)

// Six hours at 60 req/s, then six at 120, with one spot pool that is gone
// from hour 8 to hour 9: through the binding the planner sees its spot
// replicas go pending and carries them on on-demand (the tier states pass
// through), the simulator records its forecast band, and Last is the
// final decision.
func TestPlannerThroughTheSimulator(t *testing.T) {
	p, err := capacity.ParsePolicy("built-in backtest policy", capacity.BacktestPolicy)
	if err != nil {
		t.Fatal(err)
	}
	w := p.Workloads[0]
	counts := make([]float64, 12*60)
	for i := range counts {
		counts[i] = 60 * 60
		if i >= 6*60 {
			counts[i] = 120 * 60
		}
	}
	avail := make([]float64, 12*60)
	for i := range avail {
		if i < 8*60 || i >= 9*60 {
			avail[i] = 1
		}
	}
	tr := &sim.Trace{Name: "step", Start: time.Date(2026, 12, 7, 0, 0, 0, 0, time.UTC), Step: time.Minute, Counts: counts}
	sc, err := sim.NewScenario(sim.DefaultConfig(), tr, 1, []*sim.Pool{{Name: "zone", Gap: time.Minute, Data: avail}})
	if err != nil {
		t.Fatal(err)
	}
	pol := New(w)
	res, err := sc.Run(context.Background(), pol, sim.RunOptions{Name: "infercast"})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	// What no planner avoids here is near 1.7 % of the requests: the first
	// cold start (nothing ready), the step to 120 req/s (unforecastable,
	// the backlog of a cold start behind it) and the minute between the
	// spot replicas' termination (120 s notice) and the on-demand ones'
	// readiness (180 s cold start), with the backlogs they leave.
	if s.SLOAttainment < 0.97 {
		t.Errorf("attainment %.4f, want at least 0.97", s.SLOAttainment)
	}
	// The hour without spot is carried on on-demand: 60 replicas and more.
	if s.OnDemandReplicaHours < 60 {
		t.Errorf("%.1f on-demand replica-hours; the hour without spot needs at least 60", s.OnDemandReplicaHours)
	}
	last := res.Timeline[len(res.Timeline)-1]
	if !last.HasBand || last.Band.Low < 110 || last.Band.Low > 130 || last.Band.Mid < last.Band.Low {
		t.Errorf("last band %+v (has %t), want its lowest median near 120 req/s and the sizing above it", last.Band, last.HasBand)
	}
	plan, _ := pol.Last()
	d := res.Decisions[len(res.Decisions)-1]
	if plan.Tiers[capacity.TierOnDemand].Replicas != d.OnDemand || plan.Tiers[capacity.TierSpot].Replicas != d.Spot {
		t.Errorf("Last() plans %+v, the last decision %+v", plan.Tiers, d)
	}
}
