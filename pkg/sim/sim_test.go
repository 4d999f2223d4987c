package sim

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"
)

// start is the trace start of the hand-worked scenarios.
var start = time.Unix(1_000_000, 0).UTC()

// testConfig is a small workload easy to work by hand: dt 5 s, a decision
// every step unless a test says otherwise, one request per second per
// replica, and prices of $1 (on-demand) and $0.5 (spot) per replica-second.
func testConfig() Config {
	return Config{
		Step:          5 * time.Second,
		Interval:      5 * time.Second,
		Mu:            1,
		ColdStart:     10 * time.Second,
		QueueSLO:      5 * time.Second,
		Timeout:       60 * time.Second,
		PriceOnDemand: 3600,
		PriceSpot:     1800,
		Notice:        10 * time.Second,
	}
}

// scenario builds a scenario whose trace has one count per 5 s step.
func scenario(t *testing.T, cfg Config, counts []float64, pools ...*Pool) *Scenario {
	t.Helper()
	tr := &Trace{Name: "test.csv", Start: start, Step: 5 * time.Second, Counts: counts}
	sc, err := NewScenario(cfg, tr, 1, pools)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// script is a policy that follows a plan keyed by seconds after the start,
// holding the last target between entries, and records what it saw.
type script struct {
	plan map[int][2]int
	last [2]int
	seen map[int]Observation
}

func newScript(plan map[int][2]int) *script {
	return &script{plan: plan, seen: map[int]Observation{}}
}

func (s *script) Decide(obs *Observation) (int, int) {
	sec := int(obs.Time.Sub(obs.Start) / time.Second)
	o := *obs
	o.Arrivals = append([]float64(nil), obs.Arrivals...)
	o.SpotByPool = append([]int(nil), obs.SpotByPool...)
	s.seen[sec] = o
	if d, ok := s.plan[sec]; ok {
		s.last = d
	}
	return s.last[0], s.last[1]
}

// pool is a spot pool with 5 s entries.
func pool(name string, data ...float64) *Pool {
	return &Pool{Name: name, Gap: 5 * time.Second, Data: data}
}

func run(t *testing.T, sc *Scenario, p Policy) *Result {
	t.Helper()
	res, err := sc.Run(context.Background(), p, RunOptions{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

type want struct {
	requests, met, late, dropped, unserved float64
	odSeconds, spotSeconds                 float64
	cost                                   float64
	interruptions                          int
}

func check(t *testing.T, s Summary, w want) {
	t.Helper()
	got := want{s.Requests, s.Met, s.Late, s.Dropped, s.Unserved,
		s.OnDemandReplicaHours * 3600, s.SpotReplicaHours * 3600, s.CostDollars, s.SpotInterruptions}
	ok := got.interruptions == w.interruptions
	for _, p := range [][2]float64{{got.requests, w.requests}, {got.met, w.met}, {got.late, w.late},
		{got.dropped, w.dropped}, {got.unserved, w.unserved}, {got.odSeconds, w.odSeconds},
		{got.spotSeconds, w.spotSeconds}, {got.cost, w.cost}} {
		ok = ok && near(p[0], p[1])
	}
	if !ok {
		t.Errorf("summary:\n got %+v\nwant %+v", got, w)
	}
}

// Launch, readiness, FIFO, the queue SLO boundary and billing from launch.
// One on-demand replica launched at t=0 is ready at t=10 (cold start 10 s)
// and serves 5 requests a step:
//
//	t=0:  cohort 0 (5) queues; launch, billed $5
//	t=5:  nothing arrives; billed $5
//	t=10: cohort 10 (5) queues; serves cohort 0 first (waited 10 s > 5 s: late)
//	t=15: cohort 15 (5) queues; serves cohort 10 (waited 5 s <= 5 s: met)
//	end:  cohort 15 still queued
func TestLaunchFIFOAndQueueSLO(t *testing.T) {
	sc := scenario(t, testConfig(), []float64{5, 0, 5, 5})
	p := newScript(map[int][2]int{0: {1, 0}})
	res := run(t, sc, p)
	check(t, res.Summary, want{requests: 15, met: 5, late: 5, unserved: 5, odSeconds: 20, cost: 20})
	if got := res.Summary.SLOAttainment; !near(got, 5.0/15) {
		t.Errorf("attainment = %v, want 1/3", got)
	}
	for sec, ts := range map[int]TierState{0: {}, 5: {Starting: 1}, 10: {Ready: 1}, 15: {Ready: 1}} {
		if got := p.seen[sec].OnDemand; got != ts {
			t.Errorf("t=%d: on-demand %+v, want %+v", sec, got, ts)
		}
	}
	// The policy sees the past only: the queue before the step's arrivals.
	for sec, q := range map[int]float64{0: 0, 5: 5, 10: 5, 15: 5} {
		if got := p.seen[sec].Queue; !near(got, q) {
			t.Errorf("t=%d: queue %v, want %v", sec, got, q)
		}
		if got := len(p.seen[sec].Arrivals); got != sec/5 {
			t.Errorf("t=%d: %d arrival steps visible, want %d", sec, got, sec/5)
		}
	}
	if len(res.Decisions) != 4 || res.Decisions[3].Time != start.Add(15*time.Second) {
		t.Errorf("decisions = %+v", res.Decisions)
	}
}

// Partial service, then the timeout: with capacity 3 a step (mu 0.6), the
// oldest cohort is served first and the rest of a cohort is dropped once
// it has waited more than the timeout (10 s), after that step's serving.
//
//	t=0:  cohort 0 (5); launch (cold start 5 s)
//	t=5:  cohort 5 (4); serve 3 of cohort 0 (waited 5 s: met)
//	t=10: serve 2 of cohort 0 (late), 1 of cohort 5 (met)
//	t=15: serve 3 of cohort 5 (waited 10 s: late); cohort 0 is gone already
//	t=20: nothing left.
func TestFIFOPartialAndDrop(t *testing.T) {
	cfg := testConfig()
	cfg.Mu = 0.6
	cfg.ColdStart = 5 * time.Second
	cfg.Timeout = 10 * time.Second
	sc := scenario(t, cfg, []float64{5, 4, 0, 0, 0})
	res := run(t, sc, newScript(map[int][2]int{0: {1, 0}}))
	check(t, res.Summary, want{requests: 9, met: 4, late: 5, odSeconds: 25, cost: 25})

	// With the replica ready only at t=20 (cold start 20 s): cohort 0 is
	// dropped at t=15 (waited 15 s > 10 s); at t=20 cohort 5 is served 3
	// (waited 15 s: late) before its last 1 is dropped (step 4, then 5).
	cfg.ColdStart = 20 * time.Second
	sc = scenario(t, cfg, []float64{5, 4, 0, 0, 0})
	res = run(t, sc, newScript(map[int][2]int{0: {1, 0}}))
	check(t, res.Summary, want{requests: 9, late: 3, dropped: 6, odSeconds: 25, cost: 25})
}

// Removal order: pending first, then starting (latest ready first), then
// ready (newest first). Cold start 20 s.
//
//	t=0: A (ready 20)   t=5: B (ready 25)   t=25: C (ready 45)   t=30: D (ready 50)
//	t=35: 4 -> 3 removes D (starting, ready latest): C stays, ready at 45
//	t=45: C is ready; 3 -> 2 removes C (ready newest)
//	t=50: 2 -> 1 removes B (ready newer than A)
func TestRemovalOrder(t *testing.T) {
	cfg := testConfig()
	cfg.ColdStart = 20 * time.Second
	sc := scenario(t, cfg, make([]float64, 11))
	p := newScript(map[int][2]int{0: {1, 0}, 5: {2, 0}, 25: {3, 0}, 30: {4, 0}, 35: {3, 0}, 45: {2, 0}, 50: {1, 0}})
	res := run(t, sc, p)
	wantSeen := map[int]TierState{
		35: {Starting: 2, Ready: 2},
		40: {Starting: 1, Ready: 2},
		45: {Ready: 3}, // C became ready at 45: it was kept, D was removed
		50: {Ready: 2},
	}
	for sec, ts := range wantSeen {
		if got := p.seen[sec].OnDemand; got != ts {
			t.Errorf("t=%d: on-demand %+v, want %+v", sec, got, ts)
		}
	}
	// Billing in replica-steps: A 11 (0..50), B 9 (5..45), C 4 (25..40),
	// D 1 (30): a removal is not billed at its step. The run ends at t=50.
	check(t, res.Summary, want{odSeconds: 5 * (11 + 9 + 4 + 1), cost: 5 * (11 + 9 + 4 + 1)})
}

// Pending spot, availability wrap and the notice. One pool with entries
// [0,0,1] of 5 s: unavailable at t=0,5, available at 10, unavailable again
// at 15 (wrapping), available at 25, unavailable at 30. Cold start 0,
// notice 5 s, one request a step, mu 1 (5 a step).
//
//	t=0:  spot launched, pending (unbilled)
//	t=10: starts (billed, ready at once); serves cohort 0 late (waited
//	      10 s), 5 and 10 met (waited 5 s and 0 s)
//	t=15: notice (terminates 20), still serves cohort 15; the decision
//	      launches a replacement, pending; the noticed one is gone after 15
//	t=25: the replacement starts, serves 20 and 25 (met)
//	t=30: notice (terminates 35), serves 30; gone after 30
func TestPendingSpotNoticeAndWrap(t *testing.T) {
	cfg := testConfig()
	cfg.ColdStart = 0
	cfg.Notice = 5 * time.Second
	sc := scenario(t, cfg, []float64{1, 1, 1, 1, 1, 1, 1, 1}, pool("a", 0, 0, 1))
	p := newScript(map[int][2]int{0: {0, 1}})
	res := run(t, sc, p)
	check(t, res.Summary, want{requests: 8, met: 6, late: 1, unserved: 1, spotSeconds: 20, cost: 10, interruptions: 2})
	wantSeen := map[int]TierState{
		0:  {},
		5:  {Pending: 1},
		10: {Ready: 1},
		15: {Terminating: 1},
		20: {Pending: 1},
		25: {Ready: 1},
		30: {Terminating: 1},
		35: {Pending: 1},
	}
	for sec, ts := range wantSeen {
		if got := p.seen[sec].Spot; got != ts {
			t.Errorf("t=%d: spot %+v, want %+v", sec, got, ts)
		}
	}
	if got := p.seen[35].Interruptions; got != 2 {
		t.Errorf("interruptions seen at t=35 = %d, want 2", got)
	}
}

// A replica under notice is not noticed again when its pool flaps, and it
// serves and is billed until it terminates.
func TestNoticeOncePerReplica(t *testing.T) {
	cfg := testConfig()
	cfg.ColdStart = 0
	cfg.Notice = 20 * time.Second
	// available at 0, unavailable at 5, available at 10, unavailable at 15
	sc := scenario(t, cfg, []float64{5, 5, 5, 5, 5, 5}, pool("a", 1, 0))
	p := newScript(map[int][2]int{0: {0, 1}, 5: {0, 0}})
	res := run(t, sc, p)
	// Billed t=0..20 (terminates at 25 <= 20+5): 5 steps; serves 5 a step
	// through t=20 (terminates > t).
	check(t, res.Summary, want{requests: 30, met: 25, unserved: 5, spotSeconds: 25, cost: 12.5, interruptions: 1})
}

// Pool placement: a starting spot replica goes to the available pool with
// the fewest live spot replicas, the lowest index on a tie; removals free
// their pool's slot. Observed through notices: pools go down one by one.
func TestPoolPlacement(t *testing.T) {
	cfg := testConfig()
	cfg.ColdStart = 0
	cfg.Notice = 100 * time.Second
	// Entries of 5 s; the run has 6 steps (t=0..25).
	a := pool("a", 1, 1, 1, 1, 0, 0) // down at 20
	b := pool("b", 1, 1, 1, 1, 1, 0) // down at 25
	c := pool("c", 1, 1, 1, 1, 1, 1)
	sc := scenario(t, cfg, make([]float64, 6), a, b, c)
	// t=0: 4 spot -> a,b,c,a (a:2 b:1 c:1). t=5: 3 -> removes the newest
	// (ready at the same time: the last launched, in a). t=10: 5 -> two
	// more: a (tie a,b,c at 1: lowest index) then b (a:2 b:1 c:1 -> b).
	p := newScript(map[int][2]int{0: {0, 4}, 5: {0, 3}, 10: {0, 5}})
	run(t, sc, p)
	// a:2 b:2 c:1. At 20 pool a goes down: its 2 get notices; the decision
	// replaces them in c (b:2 c:1), then b (tie at 2: lowest index), so
	// b:3 c:2. At 25 pool b goes down: 3 more notices, c's 2 stay ready.
	if got := p.seen[20].Spot; got != (TierState{Ready: 3, Terminating: 2}) {
		t.Errorf("t=20: spot %+v, want 3 ready, 2 terminating", got)
	}
	if got := p.seen[25].Spot; got != (TierState{Ready: 2, Terminating: 5}) {
		t.Errorf("t=25: spot %+v, want 2 ready, 5 terminating", got)
	}
	// Where the policy's non-terminating replicas are, decision by decision.
	for sec, want := range map[int][3]int{0: {0, 0, 0}, 5: {2, 1, 1}, 10: {1, 1, 1}, 15: {2, 2, 1}, 20: {0, 2, 1}, 25: {0, 0, 2}} {
		if got := p.seen[sec].SpotByPool; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("t=%d: spot by pool %v, want %v", sec, got, want)
		}
	}
}

// The oracle and the spot-aware oracle, by hand: mu 1, interval 15 s, so
// one replica serves 15 requests an interval.
func TestOracleCosts(t *testing.T) {
	cfg := testConfig()
	cfg.Interval = 15 * time.Second
	// Intervals: 15 -> 1 replica, 16 -> 2, 0 -> 0, 31 -> 3.
	counts := []float64{5, 5, 5, 6, 5, 5, 0, 0, 0, 30, 1, 0}
	sc := scenario(t, cfg, counts)
	if got := sc.OracleReplicas(); len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 0 || got[3] != 3 {
		t.Fatalf("oracle replicas = %v, want [1 2 0 3]", got)
	}
	o, aw := sc.OracleCosts()
	// 6 replica-intervals of 15 s at $0.5/s.
	if !near(o, 6*15*0.5) || !near(aw, o) {
		t.Errorf("oracle = %v, spot-aware = %v, want 45 and 45", o, aw)
	}
	// With a pool that is down at the start of the second and fourth
	// intervals (t=15, t=45; entries of 15 s wrapping [1,0]), those are
	// priced on-demand: 1*15*0.5 + 2*15*1 + 3*15*1.
	sc = scenario(t, cfg, counts, &Pool{Name: "p", Gap: 15 * time.Second, Data: []float64{1, 0}})
	if _, aw := sc.OracleCosts(); !near(aw, 7.5+30+45) {
		t.Errorf("spot-aware oracle = %v, want %v", aw, 7.5+30+45)
	}

	// On-demand cheaper than spot ($0.25/s against $0.5/s): both oracles
	// pay on-demand's price everywhere, 6 replica-intervals of 15 s.
	cfg.PriceOnDemand = 900
	for _, pools := range [][]*Pool{nil, {{Name: "p", Gap: 15 * time.Second, Data: []float64{1, 0}}}} {
		sc = scenario(t, cfg, counts, pools...)
		if o, aw := sc.OracleCosts(); !near(o, 6*15*0.25) || !near(aw, o) {
			t.Errorf("%d pools, on-demand cheaper: oracle = %v, spot-aware = %v, want 22.5 and 22.5", len(pools), o, aw)
		}
		// A policy that runs the oracle's count on-demand costs no less.
		res := run(t, sc, oracleOnDemand{sc.OracleReplicas()})
		if res.Summary.CostOverOracle < 1 || res.Summary.CostOverSpotAwareOracle < 1 {
			t.Errorf("%d pools: an on-demand policy costs %.3fx the oracle, %.3fx the spot-aware one", len(pools), res.Summary.CostOverOracle, res.Summary.CostOverSpotAwareOracle)
		}
	}
}

// oracleOnDemand asks for the oracle's count of each interval, on-demand.
type oracleOnDemand struct{ counts []int }

func (p oracleOnDemand) Decide(o *Observation) (int, int) {
	return p.counts[int(o.Time.Sub(o.Start)/(15*time.Second))], 0
}

func TestDecisionsOnlyAtIntervals(t *testing.T) {
	cfg := testConfig()
	cfg.Interval = 15 * time.Second
	sc := scenario(t, cfg, make([]float64, 7))
	p := newScript(nil)
	res := run(t, sc, p)
	if len(res.Decisions) != 3 || len(p.seen) != 3 {
		t.Fatalf("%d decisions, want 3 (t=0,15,30)", len(res.Decisions))
	}
	for _, sec := range []int{0, 15, 30} {
		if _, ok := p.seen[sec]; !ok {
			t.Errorf("no decision at t=%d", sec)
		}
	}
}

func TestRunCancelled(t *testing.T) {
	sc := scenario(t, testConfig(), make([]float64, 10))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := sc.Run(ctx, Static{OnDemand: 1}, RunOptions{}); err == nil {
		t.Fatal("Run on a cancelled context returned no error")
	}
}

func TestPolicyAskingTooMuch(t *testing.T) {
	sc := scenario(t, testConfig(), make([]float64, 3))
	if _, err := sc.Run(context.Background(), Static{OnDemand: MaxReplicas + 1}, RunOptions{Name: "greedy"}); err == nil {
		t.Fatal("a policy asking for more than MaxReplicas ran")
	}
}

// A config that would run and then fail to write (NaN or ±Inf in
// summary.json) is refused up front, naming the field.
func TestConfigRejectsNonFinite(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Config)
		want string
	}{
		{"mu NaN", func(c *Config) { c.Mu = math.NaN() }, "mu NaN must be positive"},
		{"mu Inf", func(c *Config) { c.Mu = math.Inf(1) }, "mu +Inf must be positive and finite"},
		{"on-demand NaN", func(c *Config) { c.PriceOnDemand = math.NaN() }, "prices (NaN on-demand, 1800 spot) must be finite"},
		{"spot Inf", func(c *Config) { c.PriceSpot = math.Inf(1) }, "prices (3600 on-demand, +Inf spot) must be finite"},
		{"spot -Inf", func(c *Config) { c.PriceSpot = math.Inf(-1) }, "prices (3600 on-demand, -Inf spot) must be finite"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			tc.set(&cfg)
			if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if err := testConfig().Validate(); err != nil {
		t.Fatalf("the test config: %v", err)
	}
}

// Finite inputs whose products overflow (a scale or a price near the
// largest float) are refused before the run, not after it as a summary of
// +Inf.
func TestScenarioRejectsOverflow(t *testing.T) {
	tr := &Trace{Name: "test.csv", Start: start, Step: 5 * time.Second, Counts: []float64{1, 2, 3}}
	if _, err := NewScenario(testConfig(), tr, 1e308, nil); err == nil || !strings.Contains(err.Error(), "test.csv scaled by 1e+308 holds +Inf requests: scale too large") {
		t.Errorf("scale 1e308: err = %v", err)
	}
	cfg := testConfig()
	cfg.PriceOnDemand = 1e308
	if _, err := NewScenario(cfg, tr, 1, nil); err == nil || !strings.Contains(err.Error(), "prices (1e+308 on-demand, 1800 spot) too large") {
		t.Errorf("price 1e308: err = %v", err)
	}
	// Large but sane values run.
	cfg.PriceOnDemand = 1e6
	if _, err := NewScenario(cfg, tr, 1e6, nil); err != nil {
		t.Errorf("price 1e6, scale 1e6: %v", err)
	}
}
