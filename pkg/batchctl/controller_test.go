package batchctl

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeActuator records what it is asked to apply.
type fakeActuator struct {
	limits  Limits
	applied []Knobs
	err     error
}

func (f *fakeActuator) Name() string   { return "fake" }
func (f *fakeActuator) Limits() Limits { return f.limits }
func (f *fakeActuator) Apply(_ context.Context, _ string, k Knobs) error {
	if f.err != nil {
		return f.err
	}
	f.applied = append(f.applied, k)
	return nil
}

var testProfile = Profile{Alpha: 0.05, Beta: 0.01}

// exactObs is a 10 s window of batches of sizes 1, 8, 16 and 32 (two
// each) that ran exactly as testProfile says, with the given arrivals and
// observed p99.
func exactObs(at time.Duration, arrivals, p99 float64) Observation {
	o := Observation{Time: t0.Add(at), Window: 10 * time.Second, Arrivals: arrivals, LatencyP99Seconds: p99}
	for _, b := range []int{1, 8, 16, 32} {
		st := BatchStat{Size: b, Count: 2, ExecSeconds: 2 * testProfile.Exec(float64(b))}
		o.BatchStats = append(o.BatchStats, st)
		o.Batches += 2
		o.Requests += 2 * float64(b)
		o.ExecSeconds += st.ExecSeconds
	}
	return o
}

func newTestController(t *testing.T, act Actuator) (*Controller, *prometheus.Registry) {
	t.Helper()
	cfg := DefaultConfig(500*time.Millisecond, 64)
	cfg.Bounds.Delays = []time.Duration{0}
	cfg.Fitter.MinBatches = 5
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c, err := New(cfg, act)
	if err != nil {
		t.Fatal(err)
	}
	return c, reg
}

func step(t *testing.T, c *Controller, o Observation) Decision {
	t.Helper()
	d, err := c.Step(context.Background(), "m", o, 0)
	if err != nil {
		t.Fatalf("step: %v", err)
	}
	return d
}

func TestControllerLearnsThenChooses(t *testing.T) {
	act := &fakeActuator{}
	c, _ := newTestController(t, act)
	thin := Observation{Time: t0.Add(time.Second), Window: time.Second, Arrivals: 1, Requests: 1, Batches: 1, ExecSeconds: 0.06,
		BatchStats: []BatchStat{{Size: 1, Count: 1, ExecSeconds: 0.06}}}
	if d := step(t, c, thin); d.Reason != ReasonLearning || d.Changed {
		t.Fatalf("after one batch: %+v, want learning", d)
	}
	// 11.4 req/s complete, 10/s arrive: within the 80/s SLO capacity; the
	// choice is max_batch_size 30 (TestChooseHandComputed), down from the
	// Triton default of 64, which is a safety change needing no gain.
	d := step(t, c, exactObs(10*time.Second, 100, 0.2))
	if !d.Changed || d.Applied != (Knobs{MaxBatchSize: 30}) || d.Reason != ReasonChanged {
		t.Fatalf("decision %+v, want a change to max_batch_size=30", d)
	}
	if !near(d.Profile.Alpha, 0.05, 1e-9) || !near(d.Profile.Beta, 0.01, 1e-9) {
		t.Errorf("profile %+v, want alpha 0.05 beta 0.01", d.Profile)
	}
	if len(act.applied) != 1 {
		t.Errorf("actuator called %d times, want 1", len(act.applied))
	}
	if d := step(t, c, exactObs(20*time.Second, 100, 0.2)); d.Changed || d.Reason != ReasonOptimal {
		t.Errorf("steady state: %+v, want optimal without change", d)
	}
}

func TestControllerBackoffAndProbe(t *testing.T) {
	act := &fakeActuator{}
	c, reg := newTestController(t, act)
	step(t, c, exactObs(10*time.Second, 100, 0.2)) // → 30
	// 10 req/s, p99 800 ms: far inside the predicted capacity, so the
	// model is wrong: back off by 10 %, 30 → 27.
	d := step(t, c, exactObs(20*time.Second, 100, 0.8))
	if d.Reason != ReasonBackoff || d.Applied.MaxBatchSize != 27 {
		t.Fatalf("decision %+v, want a back-off to 27", d)
	}
	if got := testutil.ToFloat64(c.m.backoffs.WithLabelValues("m")); got != 1 {
		t.Errorf("backoffs_total = %g, want 1", got)
	}
	// Clean windows probe back up one batch at a time, without needing
	// the minimum gain.
	for i, want := range []int{28, 29, 30, 30} {
		d := step(t, c, exactObs(time.Duration(30+10*i)*time.Second, 100, 0.2))
		if d.Applied.MaxBatchSize != want {
			t.Fatalf("probe window %d: max_batch_size %d, want %d (%+v)", i, d.Applied.MaxBatchSize, want, d)
		}
	}
	// A violation under overload (75/s > 0.8·80/s) is not the batch's fault.
	if d := step(t, c, exactObs(80*time.Second, 750, 0.9)); d.Reason == ReasonBackoff {
		t.Errorf("backed off under overload: %+v", d)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP infercast_batch_backoffs_total Multiplicative back-offs after an observed SLO violation within predicted capacity.
# TYPE infercast_batch_backoffs_total counter
infercast_batch_backoffs_total{model="m"} 1
`), "infercast_batch_backoffs_total"); err != nil {
		t.Error(err)
	}
}

func TestControllerRateLimit(t *testing.T) {
	act := &fakeActuator{limits: Limits{MinInterval: time.Minute}}
	c, _ := newTestController(t, act)
	step(t, c, exactObs(10*time.Second, 100, 0.2)) // → 30 at t=10 s
	d := step(t, c, exactObs(20*time.Second, 100, 0.8))
	if d.Reason != ReasonRateLimited || d.Applied.MaxBatchSize != 30 || d.Recommended.MaxBatchSize != 27 {
		t.Fatalf("10 s after a change: %+v, want the back-off to 27 refused by the rate limit", d)
	}
	d = step(t, c, exactObs(70*time.Second, 100, 0.8))
	if d.Reason != ReasonBackoff || d.Applied.MaxBatchSize != 27 {
		t.Fatalf("60 s after the change: %+v, want the back-off applied", d)
	}
	if len(act.applied) != 2 {
		t.Errorf("%d changes applied, want 2: %v", len(act.applied), act.applied)
	}
}

func TestControllerMinGain(t *testing.T) {
	act := &fakeActuator{limits: Limits{MinGain: 0.5}}
	c, _ := newTestController(t, act)
	c.SetApplied("m", Knobs{MaxBatchSize: 20})
	// 20 → 30 raises the SLO capacity by well under 50 %.
	d := step(t, c, exactObs(10*time.Second, 100, 0.2))
	if d.Reason != ReasonBelowMinGain || d.Changed || d.Recommended.MaxBatchSize != 30 {
		t.Fatalf("decision %+v, want the change refused for too little gain", d)
	}
}

func TestControllerApplyFailureKeepsKnobs(t *testing.T) {
	act := &fakeActuator{err: errors.New("server said no"), limits: Limits{MinInterval: time.Minute}}
	c, reg := newTestController(t, act)
	d := step(t, c, exactObs(10*time.Second, 100, 0.2))
	if d.Reason != ReasonApplyFailed || d.Changed || d.Applied.MaxBatchSize != 64 {
		t.Fatalf("decision %+v, want a failure that keeps max_batch_size 64", d)
	}
	// A failure counts against the rate limit: no retry within a minute.
	if d := step(t, c, exactObs(20*time.Second, 100, 0.2)); d.Reason != ReasonRateLimited {
		t.Errorf("retry after 10 s: %+v, want rate limited", d)
	}
	if n := testutil.ToFloat64(c.m.failures.WithLabelValues("m", "fake")); n != 1 {
		t.Errorf("apply failures = %g, want 1", n)
	}
	if n, err := testutil.GatherAndCount(reg, "infercast_batch_applied_max_batch_size"); err != nil || n != 1 {
		t.Errorf("applied gauge series = %d (%v), want 1", n, err)
	}
}

func TestControllerRecommendOnly(t *testing.T) {
	c, _ := newTestController(t, nil) // nil → recommend-only
	d := step(t, c, exactObs(10*time.Second, 100, 0.2))
	if d.Reason != ReasonRecommendOnly || d.Changed || d.Applied.MaxBatchSize != 64 || d.Recommended.MaxBatchSize != 30 {
		t.Fatalf("decision %+v, want 30 recommended and 64 kept", d)
	}
	if got := testutil.ToFloat64(c.m.recBatch.WithLabelValues("m")); got != 30 {
		t.Errorf("recommended gauge %g, want 30", got)
	}
}

func TestControllerProbesWhenUnidentified(t *testing.T) {
	act := &fakeActuator{}
	c, _ := newTestController(t, act)
	c.SetApplied("m", Knobs{MaxBatchSize: 2})
	// Batches of 2 only, filling the cap: alpha and beta cannot be told
	// apart, so probe upward by the trust factor (1.5): 2 → 3.
	o := Observation{Time: t0.Add(time.Second), Window: time.Second, Arrivals: 20, Requests: 20, Batches: 10, ExecSeconds: 0.7,
		BatchStats: []BatchStat{{Size: 2, Count: 10, ExecSeconds: 0.7}}}
	d := step(t, c, o)
	if d.Reason != ReasonLearning || !d.Changed || d.Applied.MaxBatchSize != 3 {
		t.Fatalf("decision %+v, want a probe to 3", d)
	}
}

func TestControllerRejectsBadObservation(t *testing.T) {
	c, _ := newTestController(t, &fakeActuator{})
	_, err := c.Step(context.Background(), "m", Observation{Time: t0}, 0)
	if err == nil || !strings.Contains(err.Error(), "window") {
		t.Fatalf("err = %v, want a window error", err)
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for name, mut := range map[string]func(*Config){
		"zero SLO":      func(c *Config) { c.SLO = 0 },
		"margin 1":      func(c *Config) { c.Margin = 1 },
		"no batch size": func(c *Config) { c.Bounds.MaxBatchSize = 0 },
		"backoff 1":     func(c *Config) { c.Backoff = 1 },
		"trust below 1": func(c *Config) { c.TrustFactor = 0.5 },
		"clump memory":  func(c *Config) { c.ClumpHalfLife = -time.Second },
	} {
		cfg := DefaultConfig(time.Second, 8)
		mut(&cfg)
		if _, err := New(cfg, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func BenchmarkControllerStep(b *testing.B) {
	cfg := DefaultConfig(500*time.Millisecond, 256)
	c, err := New(cfg, &fakeActuator{limits: Limits{MinInterval: time.Hour}})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := 0; i < 100; i++ {
		if _, err := c.Step(ctx, "m", exactObs(time.Duration(i)*10*time.Second, 300, 0.2), 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if _, err := c.Step(ctx, "m", exactObs(time.Duration(100+i)*10*time.Second, 300, 0.2), 0); err != nil {
			b.Fatal(err)
		}
	}
}

var errFake = errors.New("fake failure")

// A forecast above what any setting serves within the SLO plans for it
// before it arrives: overload, the largest batch the model allows.
func TestControllerPlansForForecast(t *testing.T) {
	act := &fakeActuator{}
	c, reg := newTestController(t, act)
	d, err := c.Step(context.Background(), "m", exactObs(10*time.Second, 100, 0.2), 95)
	if err != nil {
		t.Fatal(err)
	}
	if d.Reason != ReasonOverload || d.PlanningRate != 95 || d.Applied.MaxBatchSize != 64 {
		t.Fatalf("decision %+v, want overload planned at 95/s with max_batch_size 64", d)
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP infercast_batch_planning_rate_requests_per_second Arrival rate the recommendation is planned for: the highest of the observed arrival and completion rates, the forecast, and the peak smoothed rate of the actuator's minimum interval between changes.
# TYPE infercast_batch_planning_rate_requests_per_second gauge
infercast_batch_planning_rate_requests_per_second{model="m"} 95
`), "infercast_batch_planning_rate_requests_per_second"); err != nil {
		t.Error(err)
	}
}

// A rate oscillating around a decision boundary must not flip the knobs
// back and forth: every Triton change is a model reload. The windows
// alternate between two arrival rates on either side of a boundary —
// the SLO capacity of max_batch_size 30 (80 req/s: overload or not), or
// the rate up to which a queue delay pays (~55 req/s) — for 40 windows
// of 10 s under a 10 s minimum interval, so a controller without
// hysteresis could change the knobs every window.
func TestControllerHysteresis(t *testing.T) {
	tests := []struct {
		name       string
		delays     []time.Duration
		initial    Knobs
		low, high  float64 // arrivals per 10 s window, alternating
		maxChanges int
		settle     float64 // arrivals per window afterwards, for 10 windows
		want       Knobs   // where it must settle
	}{
		{name: "overload boundary", delays: []time.Duration{0}, initial: Knobs{MaxBatchSize: 64},
			low: 700, high: 900, maxChanges: 2, settle: 500, want: Knobs{MaxBatchSize: 30}},
		{name: "queue delay boundary", delays: DefaultDelays(), initial: Knobs{MaxBatchSize: 30},
			low: 450, high: 600, maxChanges: 2, settle: 100, want: Knobs{MaxBatchSize: 30, MaxQueueDelay: 100 * time.Millisecond}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			act := &fakeActuator{limits: Limits{MinInterval: 10 * time.Second}}
			cfg := DefaultConfig(500*time.Millisecond, 64)
			cfg.Bounds.Delays = tc.delays
			cfg.Fitter.MinBatches = 5
			c, err := New(cfg, act)
			if err != nil {
				t.Fatal(err)
			}
			c.SetApplied("m", tc.initial)
			at := time.Duration(0)
			var reasons []string
			for i := range 40 {
				at += 10 * time.Second
				arr := tc.low
				if i%2 == 1 {
					arr = tc.high
				}
				reasons = append(reasons, step(t, c, exactObs(at, arr, 0.2)).Reason)
			}
			if len(act.applied) > tc.maxChanges {
				t.Errorf("%d changes while the rate oscillated, want at most %d: %v\nreasons %v", len(act.applied), tc.maxChanges, act.applied, reasons)
			}
			// Hysteresis must not freeze it: once the rate settles
			// clearly on one side, the knobs follow.
			var d Decision
			for range 10 {
				at += 10 * time.Second
				d = step(t, c, exactObs(at, tc.settle, 0.2))
			}
			if d.Applied != tc.want {
				t.Errorf("after the rate settled at %g/s: %s (%s: %s), want %s", tc.settle/10, d.Applied, d.Reason, d.Detail, tc.want)
			}
		})
	}
}

// The controller learns the mean clump size from ClumpSizeSum (discounted
// with ClumpHalfLife, 1 min by default), keeps it through windows that do
// not measure it, and plans with it: at 50 req/s, clumps of 5 take the cap
// of TestChooseClumpedHandComputed, 24, where measured single arrivals
// keep the Poisson choice, 30.
func TestControllerLearnsClumps(t *testing.T) {
	clumped := func(at time.Duration, arrivals, sizes float64) Observation {
		o := exactObs(at, arrivals, 0.2)
		o.ClumpSizeSum = sizes
		return o
	}
	c, _ := newTestController(t, &fakeActuator{})
	steps := []struct {
		o    Observation
		want float64
	}{
		{clumped(10*time.Second, 500, 2500), 5},
		{clumped(20*time.Second, 500, 0), 5}, // not measured: unchanged
		// 10 s later the history weighs 2^(−10/60) = 0.890899:
		// (0.890899·2500 + 500)/(0.890899·500 + 500) = 2.884604.
		{clumped(30*time.Second, 500, 500), 2.884604},
	}
	for i, s := range steps {
		d := step(t, c, s.o)
		if !near(d.Clump, s.want, 1e-6) {
			t.Fatalf("step %d: learned clump %.6f, want %.6f", i, d.Clump, s.want)
		}
	}

	for _, tc := range []struct {
		name    string
		sizes   float64
		wantCap int
	}{{"single arrivals", 500, 30}, {"clumps of 5", 2500, 24}} {
		t.Run(tc.name, func(t *testing.T) {
			act := &fakeActuator{}
			c, _ := newTestController(t, act)
			var d Decision
			for i := 1; i <= 3; i++ {
				d = step(t, c, clumped(time.Duration(i)*10*time.Second, 500, tc.sizes))
			}
			if d.Recommended.MaxBatchSize != tc.wantCap || d.Applied != d.Recommended {
				t.Errorf("recommended %v applied %v (%s: %s), want max_batch_size=%d applied", d.Recommended, d.Applied, d.Reason, d.Detail, tc.wantCap)
			}
		})
	}
}

// Late rejection splits the budget as Nexus does, by hand for testProfile
// (no jitter) and a 0.5 s budget: a full batch must run within 0.25 s less
// the 10 ms step of slack, 0.05 + 0.01·b ≤ 0.24, so b ≤ 19, and the
// timeout is the rest, 0.5 − 0.24 = 0.26 s. Without the cap, only what
// misses even alone is rejected: 0.5 − 0.06 = 0.44 s.
func TestRejectLateHandComputed(t *testing.T) {
	capOf := func(share float64) func(int) float64 {
		return func(b int) float64 {
			if b == 30 {
				return 100
			}
			return 100 * share
		}
	}
	tests := []struct {
		name     string
		k        Knobs
		budget   float64
		overload bool
		share    float64 // SLO capacity of the capped batch ÷ the chosen one's
		want     Knobs
	}{
		{"overload caps", Knobs{MaxBatchSize: 256}, 0.5, true, 0, Knobs{MaxBatchSize: 19, QueueTimeout: 260 * time.Millisecond}},
		{"cap keeps capacity", Knobs{MaxBatchSize: 30}, 0.5, false, rejectCapShare, Knobs{MaxBatchSize: 19, QueueTimeout: 260 * time.Millisecond}},
		{"cap loses capacity", Knobs{MaxBatchSize: 30}, 0.5, false, rejectCapShare - 0.01, Knobs{MaxBatchSize: 30, QueueTimeout: 440 * time.Millisecond}},
		{"delay below half the timeout", Knobs{MaxBatchSize: 30, MaxQueueDelay: 200 * time.Millisecond}, 0.5, true, 0,
			Knobs{MaxBatchSize: 19, MaxQueueDelay: 130 * time.Millisecond, QueueTimeout: 260 * time.Millisecond}},
		{"already small", Knobs{MaxBatchSize: 8}, 0.5, true, 0, Knobs{MaxBatchSize: 8, QueueTimeout: 370 * time.Millisecond}},
		{"budget below a lone request", Knobs{MaxBatchSize: 30}, 0.05, true, 0, Knobs{MaxBatchSize: 1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := rejectLate(testProfile, tc.k, tc.budget, tc.overload, capOf(tc.share)); got != tc.want {
				t.Errorf("rejectLate(%v) = %v, want %v", tc.k, got, tc.want)
			}
		})
	}
}

// With reject_late the controller applies the split at once (turning
// rejection on is a change for the SLO, not one that must show a gain)
// and exports the timeout; without it, the server's own queue policy is
// left as it was read.
func TestControllerRejectsLate(t *testing.T) {
	// At testProfile the SLO capacity of 19 must keep rejectCapShare of
	// the chosen 30's, or the cap would not be taken.
	if c19, c30 := Capacity(testProfile, Knobs{MaxBatchSize: 19}, 0.5), Capacity(testProfile, Knobs{MaxBatchSize: 30}, 0.5); c19 < rejectCapShare*c30 {
		t.Fatalf("capacity of 19 is %.1f, below %.2f × %.1f: the cap would not be taken", c19, rejectCapShare, c30)
	}
	act := &fakeActuator{}
	cfg := DefaultConfig(500*time.Millisecond, 64)
	cfg.Bounds.Delays = []time.Duration{0}
	cfg.Fitter.MinBatches = 5
	cfg.RejectLate = true
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	c, err := New(cfg, act)
	if err != nil {
		t.Fatal(err)
	}
	want := Knobs{MaxBatchSize: 19, QueueTimeout: 260 * time.Millisecond}
	d := step(t, c, exactObs(10*time.Second, 100, 0.2))
	if !d.Changed || d.Applied != want {
		t.Fatalf("decision %+v, want %v applied", d, want)
	}
	if got := testutil.ToFloat64(c.m.recTimeout.WithLabelValues("m")); got != 0.26 {
		t.Errorf("recommended queue timeout %g s, want 0.26", got)
	}
	if d := step(t, c, exactObs(20*time.Second, 100, 0.2)); d.Changed || d.Applied != want {
		t.Errorf("steady state: %+v, want %v kept", d, want)
	}

	plain, _ := newTestController(t, &fakeActuator{})
	plain.SetApplied("m", Knobs{MaxBatchSize: 64, QueueTimeout: time.Second})
	if d := step(t, plain, exactObs(10*time.Second, 100, 0.2)); d.Applied != (Knobs{MaxBatchSize: 30, QueueTimeout: time.Second}) {
		t.Errorf("without reject_late: applied %v, want max_batch_size 30 with the server's 1s timeout kept", d.Applied)
	}
}

// TestControllerPlansForTheHeldPeak: a setting that must stand for the
// actuator's minimum interval is planned for the peak smoothed rate of
// the last such interval, so a lull right after a burst does not set the
// knobs for the lull; once the burst is older than the interval, the
// planning rate follows the rate again. Without a minimum interval it
// follows the rate at once.
func TestControllerPlansForTheHeldPeak(t *testing.T) {
	run := func(minInterval time.Duration) []float64 {
		c, _ := newTestController(t, &fakeActuator{limits: Limits{MinInterval: minInterval}})
		var rates []float64
		for i, arrivals := range []float64{950, 100, 100, 100, 100, 100, 100, 100, 100} { // 95/s, then 10/s
			rates = append(rates, step(t, c, exactObs(time.Duration(i+1)*10*time.Second, arrivals, 0.2)).PlanningRate)
		}
		return rates
	}
	held, free := run(time.Minute), run(0)
	if held[0] != 95 || free[0] != 95 {
		t.Fatalf("the burst's window planned at %v / %v, want 95", held[0], free[0])
	}
	for i := 1; i <= 6; i++ { // windows at 20 … 70 s: the burst (10 s) is within a minute
		if held[i] != 95 {
			t.Errorf("%d s, burst %d s ago under a 1 min interval: planning rate %v, want the held 95", (i+1)*10, i*10, held[i])
		}
		if !(free[i] < 95) {
			t.Errorf("%d s without a minimum interval: planning rate %v, want the rate, below the burst's 95", (i+1)*10, free[i])
		}
	}
	// At 90 s the burst is 80 s old: what is held is the last minute's
	// peak of the decaying smoothed rate, its value at 30 s at most.
	if held[8] >= 95 || held[8] > free[2] || held[8] < free[8] {
		t.Errorf("90 s, the burst 80 s old: planning rate %v, want between the rate's own %v and its value at 30 s, %v", held[8], free[8], free[2])
	}
}
