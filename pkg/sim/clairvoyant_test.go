package sim

import (
	"context"
	"math"
	"path/filepath"
	"testing"

	"github.com/infercast/infercast/internal/testutil"
)

// clairvoyant is the issue's yardstick: a planner that knows the future
// demand exactly and sizes, all spot, for the peak 15 s interval of the next
// cold start plus one interval, keeping one zone's worth of spot margin.
type clairvoyant struct {
	sc    *Scenario
	pools int
}

func (c clairvoyant) Decide(o *Observation) (int, int) {
	cfg := c.sc.Config
	arr := c.sc.Arrivals()
	per := int(cfg.Interval / cfg.Step)
	horizon := int((cfg.ColdStart + cfg.Interval) / cfg.Step)
	n := 0
	for j := len(o.Arrivals); j < min(len(o.Arrivals)+horizon, len(arr)); j += per {
		a := 0.0
		for _, x := range arr[j:min(j+per, len(arr))] {
			a += x
		}
		n = max(n, int(math.Ceil(a/(cfg.Mu*cfg.Interval.Seconds())-oracleEpsilon)))
	}
	if c.pools > 1 {
		return 0, int(math.Ceil(float64(n) * float64(c.pools) / float64(c.pools-1)))
	}
	return 0, n
}

// The issue reports, from its own implementation of SIMULATION.md, that on
// nasa-1995-07 x10 this planner "reaches 99.99 % at 1.25x [the oracle]
// without a spot file". An independent implementation agreeing on cost to
// the hundredth is evidence both follow the same model.
func TestClairvoyantAgreesWithTheIssue(t *testing.T) {
	if testing.Short() {
		t.Skip("a 28-day run")
	}
	ctx := context.Background()
	tr, err := LoadTrace(ctx, filepath.Join(testutil.SharedDir(t), "traces", "nasa-1995-07.csv"))
	if err != nil {
		t.Fatal(err)
	}
	sc, err := NewScenario(DefaultConfig(), tr, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Run(ctx, clairvoyant{sc: sc}, RunOptions{Name: "clairvoyant"})
	if err != nil {
		t.Fatal(err)
	}
	s := res.Summary
	t.Logf("clairvoyant: %.4f %% at %.3fx the oracle", 100*s.SLOAttainment, s.CostOverOracle)
	if math.Round(100*s.CostOverOracle) != 125 || s.SLOAttainment < 0.9995 {
		t.Errorf("clairvoyant planner: %.4f %% at %.3fx the oracle; the issue's model: 99.99 %% at 1.25x", 100*s.SLOAttainment, s.CostOverOracle)
	}
}
