package capacity_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/simplanner"
	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/sim"
)

// backtestWorkload is the policy of the twelve runs.
func backtestWorkload(t testing.TB, cfg sim.Config, pools int) capacity.Workload {
	t.Helper()
	p, err := capacity.ParsePolicy("built-in backtest policy", capacity.BacktestPolicy)
	if v := os.Getenv("INFERCAST_BACKTEST_POLICY"); v != "" {
		p, err = capacity.LoadPolicy(v)
	}
	if err != nil {
		t.Fatal(err)
	}
	w := p.Workloads[0]
	w.Mu = cfg.Mu
	w.ColdStart = cfg.ColdStart
	w.QueueSLO = cfg.QueueSLO
	w.Tiers.OnDemand.PricePerHour = cfg.PriceOnDemand
	w.Tiers.Spot.PricePerHour = cfg.PriceSpot
	w.Tiers.Spot.Notice = cfg.Notice
	w.Tiers.Spot.FailureDomains = max(1, pools)
	return w
}

type run struct {
	trace string
	scale float64
	spot  string
}

// TestBacktestTable runs the twelve backtests (INFERCAST_BACKTEST=1;
// minutes of CPU) and checks the bars.
func TestBacktestTable(t *testing.T) {
	if os.Getenv("INFERCAST_BACKTEST") == "" {
		t.Skip("set INFERCAST_BACKTEST=1 to run the twelve backtests")
	}
	dir := filepath.Join(testutil.SharedDir(t), "traces")
	only := os.Getenv("INFERCAST_BACKTEST_ONLY")
	var runs []run
	for _, tr := range []struct {
		f string
		s float64
	}{{"nasa-1995-07.csv", 10}, {"nasa-1995-08.csv", 10}, {"servegen-m-mid.csv", 0.01}} {
		for _, sp := range []string{"", "high", "medium", "low"} {
			if only != "" && !strings.Contains(tr.f+"/"+sp, only) {
				continue
			}
			runs = append(runs, run{tr.f, tr.s, sp})
		}
	}
	type row struct {
		r        run
		inf, rea sim.Summary
		took     time.Duration
	}
	rows := make([]row, len(runs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, r := range runs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			ctx := context.Background()
			start := time.Now()
			tr, err := sim.LoadTrace(ctx, filepath.Join(dir, r.trace))
			if err != nil {
				t.Error(err)
				return
			}
			var pools []*sim.Pool
			if r.spot != "" {
				for _, z := range []string{"a", "b", "c"} {
					p, err := sim.LoadPool(ctx, filepath.Join(dir, "spot", "spot-"+r.spot+"-"+z+".json"))
					if err != nil {
						t.Error(err)
						return
					}
					pools = append(pools, p)
				}
			}
			cfg := sim.DefaultConfig()
			sc, err := sim.NewScenario(cfg, tr, r.scale, pools)
			if err != nil {
				t.Error(err)
				return
			}
			w := backtestWorkload(t, cfg, len(pools))
			if os.Getenv("INFERCAST_BACKTEST_FIT") != "" {
				w.FitDataStep(tr.Step)
			}
			// The policy adapter backtest runs: the planner and its forecaster.
			var pol sim.Policy = simplanner.New(w)
			var bounds *boundsPolicy
			if os.Getenv("INFERCAST_BACKTEST_BOUNDS") != "" {
				bounds = &boundsPolicy{Policy: pol.(simplanner.Policy), hours: map[string]float64{}, interval: cfg.Interval}
				pol = bounds
			}
			inf, err := sc.Run(ctx, pol, sim.RunOptions{Name: "infercast"})
			if err != nil {
				t.Error(err)
				return
			}
			rea, err := sc.Run(ctx, sim.NewReactive(cfg), sim.RunOptions{Name: "reactive"})
			if err != nil {
				t.Error(err)
				return
			}
			if os.Getenv("INFERCAST_BACKTEST_DIAG") != "" {
				logMisses(t, r, inf)
			}
			if bounds != nil {
				bounds.log(t, r, cfg)
			}
			if os.Getenv("INFERCAST_BACKTEST_DAYS") != "" {
				logDays(t, r, cfg, inf, rea)
			}
			rows[i] = row{r, inf.Summary, rea.Summary, time.Since(start)}
		}()
	}
	wg.Wait()
	var b strings.Builder
	fmt.Fprintln(&b, "| trace | spot | infercast SLO | infercast cost | × oracle | × spot-aware | reactive SLO | reactive × oracle | bar |")
	fmt.Fprintln(&b, "|---|---|---|---|---|---|---|---|---|")
	for _, x := range rows {
		spot := x.r.spot
		if spot == "" {
			spot = "none"
		}
		ok := x.inf.SLOAttainment > x.rea.SLOAttainment && x.inf.CostDollars < x.rea.CostDollars && x.inf.SLOAttainment >= 0.995
		switch x.r.spot {
		case "":
			ok = ok && x.inf.SLOAttainment >= 0.999 && x.inf.CostOverOracle <= 2.0
		case "high":
			ok = ok && x.inf.SLOAttainment >= 0.999 && x.inf.CostOverSpotAwareOracle <= 2.5
		}
		verdict := "met"
		if !ok {
			verdict = "MISSED"
			t.Errorf("%s ×%g spot %s misses the issue's bar", x.r.trace, x.r.scale, spot)
		}
		fmt.Fprintf(&b, "| %s ×%g | %s | %.3f %% | $%.0f | %.2f | %.2f | %.3f %% | %.2f | %s |\n",
			x.r.trace, x.r.scale, spot, 100*x.inf.SLOAttainment, x.inf.CostDollars, x.inf.CostOverOracle, x.inf.CostOverSpotAwareOracle,
			100*x.rea.SLOAttainment, x.rea.CostOverOracle, verdict)
	}
	t.Log("\n" + b.String())
	for _, x := range rows {
		t.Logf("%s %s: attainment %.6f (late %.0f, dropped %.0f), cost over oracle %.4f, over spot-aware %.4f; on-demand %.0f, spot %.0f replica-hours (oracle $%.0f); reactive $%.0f; took %s",
			x.r.trace, x.r.spot, x.inf.SLOAttainment, x.inf.Late, x.inf.Dropped, x.inf.CostOverOracle, x.inf.CostOverSpotAwareOracle,
			x.inf.OnDemandReplicaHours, x.inf.SpotReplicaHours, x.inf.OracleCostDollars, x.rea.CostDollars, x.took.Round(time.Second))
	}
}

// logMisses logs the worst episodes of missed requests of a run (consecutive
// decision intervals with late or dropped requests), to see what fails.
func logMisses(t *testing.T, r run, res *sim.Result) {
	type episode struct {
		from, to   time.Time
		lost, reqs float64
		minReady   int
		maxPending int
	}
	var eps []episode
	var cur *episode
	for i, s := range res.Timeline {
		lost := s.Late + s.Dropped
		if lost > 0 {
			if cur == nil {
				eps = append(eps, episode{from: s.Time, minReady: 1 << 30})
				cur = &eps[len(eps)-1]
				for j := max(0, i-8); j < i; j++ {
					cur.reqs += res.Timeline[j].Arrivals
				}
			}
			cur.to = s.Time
			cur.lost += lost
			cur.minReady = min(cur.minReady, s.ReadyOnDemand+s.ReadySpot)
			cur.maxPending = max(cur.maxPending, s.PendingSpot)
		} else {
			cur = nil
		}
	}
	sort.Slice(eps, func(a, b int) bool { return eps[a].lost > eps[b].lost })
	total := 0.0
	for _, e := range eps {
		total += e.lost
	}
	t.Logf("%s %s: %d episodes, %.0f lost", r.trace, r.spot, len(eps), total)
	for _, e := range eps[:min(len(eps), 12)] {
		t.Logf("  %s +%s lost %.0f, rate before %.1f/s, min ready %d, max pending %d", e.from.UTC().Format("01-02 15:04:05"), e.to.Sub(e.from), e.lost, e.reqs/120, e.minReady, e.maxPending)
	}
}

// logDays logs a run day by day (UTC): requests, what infercast and the
// reactive baseline missed and cost, and the oracle's cost, to see where a
// run's cost over the oracle and its missed requests are spent.
func logDays(t *testing.T, r run, cfg sim.Config, inf, rea *sim.Result) {
	type day struct {
		key                                        string
		reqs, miss, reaMiss, cost, reaCost, oracle float64
	}
	var days []day
	prev, reaPrev := 0.0, 0.0
	for i, s := range inf.Timeline {
		k := s.Time.UTC().Format("01-02")
		if len(days) == 0 || days[len(days)-1].key != k {
			days = append(days, day{key: k})
		}
		d := &days[len(days)-1]
		q := rea.Timeline[i]
		d.reqs += s.Arrivals
		d.miss += s.Late + s.Dropped
		d.reaMiss += q.Late + q.Dropped
		d.cost += s.Cost - prev
		d.reaCost += q.Cost - reaPrev
		prev, reaPrev = s.Cost, q.Cost
		// The oracle: ceil(arrivals / (mu · interval)) spot replicas.
		n := math.Ceil(s.Arrivals/(cfg.Mu*cfg.Interval.Seconds()) - 1e-9)
		d.oracle += n * cfg.Interval.Hours() * cfg.PriceSpot
	}
	t.Logf("%s %s by day: requests, missed (reactive), cost / oracle = ×, reactive cost", r.trace, r.spot)
	for _, d := range days {
		ratio := "    —"
		if d.oracle > 0 {
			ratio = fmt.Sprintf("%5.2f", d.cost/d.oracle)
		}
		t.Logf("  %s %9.0f %7.0f (%7.0f)  $%6.0f / $%5.0f = %s×  $%6.0f", d.key, d.reqs, d.miss, d.reaMiss, d.cost, d.oracle, ratio, d.reaCost)
	}
}

// boundsPolicy records, decision by decision, which rule bound the plan
// (INFERCAST_BACKTEST_BOUNDS=1): where a run's replica-hours go.
type boundsPolicy struct {
	simplanner.Policy
	interval   time.Duration
	hours      map[string]float64 // replica-hours decided under each bound
	predictive float64            // replica-hours the forecast alone asked for
	added      [2]int             // replicas added by decisions, on-demand and spot
	last       [2]int
}

func (p *boundsPolicy) Decide(o *sim.Observation) (int, int) {
	od, spot := p.Policy.Decide(o)
	plan, ex := p.Last()
	p.hours[plan.Bound] += float64(od+spot) * p.interval.Hours()
	p.predictive += float64(ex.PredictiveNeed) * p.interval.Hours()
	for i, n := range [2]int{od, spot} {
		p.added[i] += max(0, n-p.last[i])
		p.last[i] = n
	}
	return od, spot
}

func (p *boundsPolicy) log(t *testing.T, r run, cfg sim.Config) {
	total := 0.0
	var names []string
	for b, h := range p.hours {
		total += h
		names = append(names, b)
	}
	sort.Slice(names, func(i, j int) bool { return p.hours[names[i]] > p.hours[names[j]] })
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, " %s %.0f h;", n, p.hours[n])
	}
	t.Logf("%s %s: %.0f replica-hours decided, by bound:%s the forecast alone asked for %.0f h; replicas added by decisions: %d on-demand, %d spot (%.0f and %.0f h of cold start if each was launched)",
		r.trace, r.spot, total, b.String(), p.predictive, p.added[0], p.added[1],
		float64(p.added[0])*cfg.ColdStart.Hours(), float64(p.added[1])*cfg.ColdStart.Hours())
}
