package sim

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
)

// blockSchedule holds a fixed replica count per block of steps, all spot,
// launched a cold start ahead of its block: at every decision it asks for
// the larger of the current block's count and the count of the block a
// replica launched now would be ready in.
type blockSchedule struct {
	block, ahead int // steps
	n            []int
}

func (s blockSchedule) Decide(o *Observation) (int, int) {
	k := len(o.Arrivals)
	last := len(s.n) - 1
	return 0, max(s.n[min(k/s.block, last)], s.n[min((k+s.ahead)/s.block, last)])
}

// levelSizing is n = ceil(m + z·sqrt(m) + c) for a mean demand of m
// replicas, at least one: the square root because the spread of counts
// grows with the level, as for Poisson arrivals.
func levelSizing(m, z, c float64) int {
	return max(1, int(math.Ceil(m+z*math.Sqrt(m)+c-oracleEpsilon)))
}

// TestKnownLevelFrontier measures how far the cost bars are from
// what knowing the demand's level would buy: block-constant fleets sized
// from the exact mean demand of the coming block (a perfect forecast of the
// next 10 minutes or hour, which no planner has), or of the block before
// (last hour's mean, no forecast, no reaction), swept over the headroom.
// It prints each frontier and the cheapest run at >= 99.9 %; what it checks
// is the coupling every sweep must show (more replicas in every block never
// cost less and never meet fewer requests under FIFO), so a simulator that
// loses or double-counts requests fails it. docs/planner.md quotes it.
//
//	INFERCAST_BACKTEST=1 go test -run TestKnownLevelFrontier -v ./pkg/sim/
func TestKnownLevelFrontier(t *testing.T) {
	if os.Getenv("INFERCAST_BACKTEST") == "" {
		t.Skip("set INFERCAST_BACKTEST=1 to sweep the known-level frontiers")
	}
	ctx := context.Background()
	type info struct {
		name  string
		block time.Duration
		lag   int // blocks: 0 is the block itself (known), 1 the one before
	}
	infos := []info{
		{"next 10 min's mean (known)", 10 * time.Minute, 0},
		{"next hour's mean (known)", time.Hour, 0},
		{"last hour's mean", time.Hour, 1},
	}
	steps := func(from, to float64) []float64 {
		var out []float64
		for x := from; x <= to+1e-9; x += 0.125 {
			out = append(out, x)
		}
		return out
	}
	families := []struct {
		name  string
		sweep []float64
		size  func(m, x float64) int
	}{
		{"n = ceil(m + z*sqrt(m)), z", steps(1, 3), func(m, z float64) int { return levelSizing(m, z, 0) }},
		{"n = ceil(m + z*sqrt(m) + 1), z", steps(1, 3), func(m, z float64) int { return levelSizing(m, z, 1) }},
		{"n = ceil(r*m), r", steps(1.5, 3.5), func(m, r float64) int { return max(1, int(math.Ceil(r*m-oracleEpsilon))) }},
	}
	for _, file := range []string{"nasa-1995-07.csv", "nasa-1995-08.csv"} {
		tr, err := LoadTrace(ctx, filepath.Join(testutil.SharedDir(t), "traces", file))
		if err != nil {
			t.Fatal(err)
		}
		sc, err := NewScenario(DefaultConfig(), tr, 10, nil)
		if err != nil {
			t.Fatal(err)
		}
		arr := sc.Arrivals()
		perReplica := sc.Config.Mu * sc.Config.Step.Seconds()
		for _, in := range infos {
			block := int(in.block / sc.Config.Step)
			nb := (len(arr) + block - 1) / block
			mean := make([]float64, nb)
			for b := range nb {
				part := arr[b*block : min((b+1)*block, len(arr))]
				for _, a := range part {
					mean[b] += a
				}
				mean[b] /= float64(len(part)) * perReplica
			}
			for _, f := range families {
				var lines []string
				best := ""
				var prev *Summary
				for i, z := range f.sweep {
					ns := make([]int, nb)
					for b := range nb {
						ns[b] = f.size(mean[max(b-in.lag, 0)], z)
					}
					res, err := sc.Run(ctx, blockSchedule{block: block, ahead: int(sc.Config.ColdStart / sc.Config.Step), n: ns}, RunOptions{Name: "level"})
					if err != nil {
						t.Fatal(err)
					}
					s := res.Summary
					lines = append(lines, fmt.Sprintf("%.3f: %.3f %% at %.3fx", z, 100*s.SLOAttainment, s.CostOverOracle))
					if best == "" && s.SLOAttainment >= 0.999 {
						best = lines[len(lines)-1]
					}
					if prev != nil && (s.CostDollars < prev.CostDollars-1e-6 || s.Met < prev.Met-1e-6) {
						t.Errorf("%s, %s, %s: %.3f costs $%.2f and meets %.1f, less than %.3f ($%.2f, %.1f)",
							file, in.name, f.name, z, s.CostDollars, s.Met, f.sweep[i-1], prev.CostDollars, prev.Met)
					}
					prev = &s
				}
				if best == "" {
					best = "none"
				}
				t.Logf("%s x10, %s, %s; cheapest at >= 99.9 %%: %s\n  %s",
					file, in.name, f.name, best, strings.Join(lines, "\n  "))
			}
		}
	}
}
