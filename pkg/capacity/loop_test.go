package capacity

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/infercast/infercast/pkg/predict"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeHistory serves a constant demand of rate requests/s, or err.
type fakeHistory struct {
	mu   sync.Mutex
	rate float64
	err  error
}

func (h *fakeHistory) Demand(_ context.Context, _ *Workload, from, to time.Time, step time.Duration) (predict.Series, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return predict.Series{}, h.err
	}
	s := predict.Series{Start: from, Step: step}
	for t := from; t.Before(to); t = t.Add(step) {
		s.Values = append(s.Values, h.rate*step.Seconds())
	}
	return s, nil
}

type fakeLive struct {
	sig Signals
	err error
}

func (l *fakeLive) Signals(context.Context, *Workload, time.Time) (Signals, error) {
	return l.sig, l.err
}

type staticPolicy struct{ p *Policy }

func (s staticPolicy) Current() *Policy { return s.p }

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newTestLoop(t *testing.T, h *fakeHistory, l *fakeLive) (*Loop, *Cache, *prometheus.Registry, *clock) {
	t.Helper()
	w := testWorkload()
	w.Tiers.Spot = nil
	reg := prometheus.NewRegistry()
	c := NewCache()
	clk := &clock{t: t0}
	loop, err := NewLoop(LoopConfig{
		Policy: staticPolicy{&Policy{Workloads: []Workload{w}}}, History: h, Live: l, Cache: c,
		Metrics: NewMetrics(reg), Now: clk.now,
		NewForecaster: func(step time.Duration) predict.Online { return predict.NewOnline(step, predict.Options{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	return loop, c, reg, clk
}

func total(p Plan) int {
	n := 0
	for _, t := range p.Tiers {
		n += t.Replicas
	}
	return n
}

func TestLoopPlansAndDegrades(t *testing.T) {
	h := &fakeHistory{rate: 20}
	l := &fakeLive{sig: Signals{Rate: 20}}
	loop, cache, reg, clk := newTestLoop(t, h, l)
	ctx := context.Background()

	loop.Step(ctx)
	p, ok := cache.Get("chat")
	if !ok || p.Mode != ModePredictive || total(p) < 10 {
		t.Fatalf("first plan %+v", p)
	}
	good := total(p)
	w := testWorkload()
	if v, want := gauge(t, reg, "infercast_plan_horizon_seconds", map[string]string{"workload": "chat"}), w.Horizon(w.ColdStart).Seconds(); v != want {
		t.Fatalf("horizon gauge %v, want cold start + decision interval = %v", v, want)
	}
	if v := gauge(t, reg, "infercast_plan_mode", map[string]string{"workload": "chat", "mode": "predictive"}); v != 1 {
		t.Fatalf("mode gauge %v", v)
	}

	// The history source fails: the last good plan holds for one horizon.
	h.mu.Lock()
	h.err = errors.New("prometheus: connection refused")
	h.mu.Unlock()
	clk.t = clk.t.Add(time.Minute)
	loop.Step(ctx)
	p, _ = cache.Get("chat")
	if total(p) != good || p.Mode != ModePredictive || !p.Time.Equal(clk.t) {
		t.Fatalf("within the horizon: plan %+v, want the last good (%d)", p, good)
	}
	if v := gauge(t, reg, "infercast_plan_degraded", map[string]string{"workload": "chat", "reason": "last-good"}); v != 1 {
		t.Fatalf("degraded{last-good} = %v", v)
	}
	// Past the horizon: reactive, from live signals.
	clk.t = clk.t.Add(5 * time.Minute)
	loop.Step(ctx)
	p, _ = cache.Get("chat")
	if p.Mode != ModeReactive || total(p) < 10 {
		t.Fatalf("past the horizon: plan %+v, want reactive ≥ 10", p)
	}
	if v := gauge(t, reg, "infercast_plan_degraded", map[string]string{"workload": "chat", "reason": "reactive"}); v != 1 {
		t.Fatalf("degraded{reactive} = %v", v)
	}
	if v := gauge(t, reg, "infercast_plan_history_failures_total", map[string]string{"workload": "chat"}); v != 2 {
		t.Fatalf("history failures %v, want 2", v)
	}
	// It recovers.
	h.mu.Lock()
	h.err = nil
	h.mu.Unlock()
	clk.t = clk.t.Add(time.Minute)
	loop.Step(ctx)
	p, _ = cache.Get("chat")
	if p.Mode != ModePredictive {
		t.Fatalf("after recovery: mode %s", p.Mode)
	}
	if v := gauge(t, reg, "infercast_plan_degraded", map[string]string{"workload": "chat", "reason": "reactive"}); v != 0 {
		t.Fatalf("degraded{reactive} = %v after recovery", v)
	}
}

func TestLoopNeverZeroWhileDemandIsLive(t *testing.T) {
	// No history ever, live signals broken too, but a backlog is queued.
	h := &fakeHistory{err: errors.New("down")}
	l := &fakeLive{sig: Signals{Rate: math.NaN(), Backlog: 3}}
	loop, cache, _, _ := newTestLoop(t, h, l)
	loop.Step(context.Background())
	p, _ := cache.Get("chat")
	if total(p) < 1 || !p.Active || math.IsNaN(p.ForecastRate) || p.ForecastRate < 0 {
		t.Fatalf("plan %+v with live demand", p)
	}
	for _, tt := range p.Tiers {
		if tt.Replicas < 0 {
			t.Fatalf("negative target %+v", p)
		}
	}
}

func TestLoopRunStops(t *testing.T) {
	loop, cache, _, _ := newTestLoop(t, &fakeHistory{rate: 5}, &fakeLive{sig: Signals{Rate: 5}})
	loop.cfg.Tick = time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	ch := cache.Changed()
	go func() { done <- loop.Run(ctx) }()
	<-ch // a plan was made
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// gauge returns the value of the series of name with exactly labels.
func gauge(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

// recordingForecasts counts what the loop tells a forecast recorder.
type recordingForecasts struct {
	forecasts, actuals int
	lastActual         time.Time
	forgot             []string
}

func (r *recordingForecasts) RecordForecast(string, predict.Forecast) { r.forecasts++ }
func (r *recordingForecasts) RecordActual(_ string, t time.Time, _ float64) {
	r.actuals++
	r.lastActual = t
}
func (r *recordingForecasts) Forget(w string) { r.forgot = append(r.forgot, w) }

// TestLoopScoresItsForecasts: every forecast and every observed interval
// reach the recorder, so the realised forecast error can be exported.
func TestLoopScoresItsForecasts(t *testing.T) {
	h := &fakeHistory{rate: 20}
	w := testWorkload()
	rec := &recordingForecasts{}
	clk := &clock{t: t0}
	pol := staticPolicy{&Policy{Workloads: []Workload{w}}}
	loop, err := NewLoop(LoopConfig{
		Policy: pol, History: h, Live: &fakeLive{sig: Signals{Rate: 20}}, Cache: NewCache(),
		Forecasts: rec, Now: clk.now,
		NewForecaster: func(step time.Duration) predict.Online { return predict.NewOnline(step, predict.Options{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	loop.Step(context.Background())
	// The first decision feeds a day of history, one interval per step.
	day := int(24 * time.Hour / w.ForecastStep)
	if rec.forecasts != 1 || rec.actuals != day {
		t.Fatalf("after the first decision: %d forecasts, %d actuals; want 1 and %d", rec.forecasts, rec.actuals, day)
	}
	clk.t = clk.t.Add(w.ForecastStep)
	loop.Step(context.Background())
	if rec.forecasts != 2 || rec.actuals != day+1 || !rec.lastActual.Equal(clk.t.Truncate(w.ForecastStep).Add(-w.ForecastStep)) {
		t.Fatalf("after one more interval: %d forecasts, %d actuals (last %v)", rec.forecasts, rec.actuals, rec.lastActual)
	}
	pol.p.Workloads = nil
	loop.Step(context.Background())
	if len(rec.forgot) != 1 || rec.forgot[0] != w.Name {
		t.Fatalf("a workload removed from the policy was not forgotten: %v", rec.forgot)
	}
}

// TestLoopPreviewAppliesToLastGoodPlan: a reload that turns preview on
// while the history is down must not leave the last good plan, made while
// acting, to be served as an acting one; and turning it off again serves
// the last good plan as made.
func TestLoopPreviewAppliesToLastGoodPlan(t *testing.T) {
	h := &fakeHistory{rate: 20}
	w := testWorkload()
	w.Tiers.Spot = nil
	pol := staticPolicy{&Policy{Workloads: []Workload{w}}}
	c := NewCache()
	clk := &clock{t: t0}
	reg := prometheus.NewRegistry()
	loop, err := NewLoop(LoopConfig{
		Policy: pol, History: h, Live: &fakeLive{sig: Signals{Rate: 20}}, Cache: c, Metrics: NewMetrics(reg), Now: clk.now,
		NewForecaster: func(step time.Duration) predict.Online { return predict.NewOnline(step, predict.Options{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	loop.Step(ctx)
	if p, _ := c.Get("chat"); p.Mode != ModePredictive {
		t.Fatalf("first plan mode %s, want predictive", p.Mode)
	}
	h.mu.Lock()
	h.err = errors.New("prometheus: connection refused")
	h.mu.Unlock()
	for _, preview := range []bool{true, false} {
		pol.p.Workloads[0].Preview = preview
		clk.t = clk.t.Add(w.DecisionInterval)
		loop.Step(ctx)
		p, _ := c.Get("chat")
		want := ModePredictive
		if preview {
			want = ModePreview
		}
		if p.Mode != want || total(p) < 10 {
			t.Fatalf("last good plan with preview %t: %+v; want mode %s and its targets", preview, p, want)
		}
		if v := gauge(t, reg, "infercast_plan_mode", map[string]string{"workload": "chat", "mode": string(want)}); v != 1 {
			t.Fatalf("last good plan with preview %t: infercast_plan_mode{mode=%q} = %v, want 1", preview, want, v)
		}
	}
}

// rampForecaster forecasts no demand until arrives after its origin and
// rate requests/s from then on, for as many steps as it is asked.
type rampForecaster struct {
	step    time.Duration
	last    time.Time // start of the last interval observed
	arrives time.Duration
	rate    float64
}

func (f *rampForecaster) Observe(t time.Time, _ float64) { f.last = t }

func (f *rampForecaster) Forecast(steps int) (predict.Forecast, error) {
	fc := predict.Forecast{Origin: f.last.Add(f.step), Step: f.step, Model: "ramp"}
	for i := range steps {
		v := 0.0
		if time.Duration(i)*f.step >= f.arrives {
			v = f.rate * f.step.Seconds()
		}
		fc.P50 = append(fc.P50, v)
		fc.P90 = append(fc.P90, v)
		fc.P99 = append(fc.P99, v)
	}
	return fc, nil
}

// TestLoopForecastsTheMeasuredColdStart: with measure_cold_start, a measured
// p90 cold start longer than the configured one lengthens the planner's
// horizon, and the forecast must reach that far: demand forecast to arrive
// within the measured horizon, but after the configured one, is planned for
// (and wakes the workload at zero).
func TestLoopForecastsTheMeasuredColdStart(t *testing.T) {
	for _, measured := range []time.Duration{0, 10 * time.Minute} {
		w := testWorkload()
		w.Tiers.Spot = nil
		w.ColdStart = time.Minute
		w.MeasureColdStart = true
		c := NewCache()
		loop, err := NewLoop(LoopConfig{
			Policy: staticPolicy{&Policy{Workloads: []Workload{w}}}, History: &fakeHistory{rate: 0},
			Live:  &fakeLive{sig: Signals{Rate: 0, Backlog: 0, ColdStartP90: measured}},
			Cache: c, Now: (&clock{t: t0.Add(30 * time.Second)}).now,
			NewForecaster: func(step time.Duration) predict.Online {
				// 40 requests/s from 6 minutes on: 20 replicas at mu 2.
				return &rampForecaster{step: step, arrives: 6 * time.Minute, rate: 40}
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		loop.Step(context.Background())
		p, ok := c.Get("chat")
		if !ok {
			t.Fatal("no plan")
		}
		if measured == 0 {
			// Within the configured horizon (1m15s) nothing arrives.
			if total(p) != 0 || p.Active {
				t.Fatalf("configured cold start: plan %+v; want nothing planned, inactive", p)
			}
			continue
		}
		if total(p) != 20 || !p.Active {
			t.Fatalf("measured cold start %v: plan %+v (total %d); want 20 replicas for the demand arriving at 6m, active", measured, p, total(p))
		}
	}
}

// loadLive is a fleet of serving replicas whose latency percentile stays
// within the SLO up to knee requests/s per replica and misses it above; its
// rate is set per decision by the test.
type loadLive struct {
	rate    float64
	serving int
	knee    float64
}

func (l *loadLive) Signals(context.Context, *Workload, time.Time) (Signals, error) {
	lat := 500 * time.Millisecond
	if l.rate/float64(l.serving) > l.knee {
		lat = 2 * time.Second
	}
	return Signals{Rate: l.rate, Backlog: 0, Latency: lat, Serving: l.serving}, nil
}

// TestLoopLearnsMu: with learn_mu, the loop learns the per-replica capacity
// from the live throughput per serving replica and latency, plans with it
// instead of the configured mu once it has enough samples, and says which
// it used; without learn_mu the configured mu stays.
func TestLoopLearnsMu(t *testing.T) {
	const knee = 5.0 // requests/s per replica within the 1 s SLO; the policy says 2
	run := func(learn bool) (Plan, *prometheus.Registry) {
		w := testWorkload()
		w.Tiers.Spot = nil
		w.LearnMu = learn
		reg := prometheus.NewRegistry()
		c := NewCache()
		clk := &clock{t: t0}
		live := &loadLive{serving: 10, knee: knee}
		loop, err := NewLoop(LoopConfig{
			Policy: staticPolicy{&Policy{Workloads: []Workload{w}}}, History: &fakeHistory{rate: 40},
			Live: live, Cache: c, Metrics: NewMetrics(reg), Now: clk.now,
			NewForecaster: func(step time.Duration) predict.Online { return predict.NewOnline(step, predict.Options{}) },
		})
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		// Busy and quiet decisions: 1 to 9 requests/s per replica, in a
		// scrambled order, latency within the SLO up to the knee.
		for i := range 4 * muWindow / 36 {
			live.rate = float64(live.serving) * (1 + float64((i*37)%81)/10)
			loop.Step(ctx)
			if i == 2*muBin-2 {
				if p, _ := c.Get("chat"); learn && gauge(t, reg, "infercast_plan_replica_capacity_requests_per_second", map[string]string{"workload": "chat", "source": "configured"}) != 2 {
					t.Fatalf("too few samples: mu should still be the configured 2 (plan %+v)", p)
				}
			}
			clk.t = clk.t.Add(w.DecisionInterval)
		}
		// Then steady demand of 40 requests/s for longer than the
		// stabilisation window, so the target follows the mu in use.
		live.rate = 40
		for range int(2*w.ScaleDown.Stabilization/w.DecisionInterval) + 1 {
			loop.Step(ctx)
			clk.t = clk.t.Add(w.DecisionInterval)
		}
		p, _ := c.Get("chat")
		return p, reg
	}

	configured, creg := run(false)
	if v := gauge(t, creg, "infercast_plan_replica_capacity_requests_per_second", map[string]string{"workload": "chat", "source": "configured"}); v != 2 {
		t.Fatalf("without learn_mu: mu %v, want the configured 2", v)
	}
	learned, lreg := run(true)
	mu := gauge(t, lreg, "infercast_plan_replica_capacity_requests_per_second", map[string]string{"workload": "chat", "source": "learned"})
	if math.Abs(mu-knee) > 0.5 {
		t.Fatalf("learned mu %v, want %v ± 0.5", mu, knee)
	}
	// The same demand needs fewer replicas at the learned capacity.
	if want := ceilDiv(math.Max(learned.ForecastRate, 40), mu); total(learned) != want {
		t.Fatalf("with learn_mu: %d replicas (plan %+v); want %d = ceil(max(forecast %.1f, rate 40) / mu %.2f)",
			total(learned), learned, want, learned.ForecastRate, mu)
	}
	if total(configured) < 2*total(learned) {
		t.Fatalf("configured mu 2: %d replicas, learned mu %.2f: %d; want the learned plan under half", total(configured), mu, total(learned))
	}
	t.Logf("learned mu %.2f: %d replicas; configured mu 2: %d replicas", mu, total(learned), total(configured))
}

// TestLoopWithoutLiveSignals: when the live source fails the plan goes on
// from the forecast alone (no current-rate floor), every such decision is
// counted, and the log says so once per distinct failure, and once when
// the signals return, rather than at every decision.
func TestLoopWithoutLiveSignals(t *testing.T) {
	h := &fakeHistory{rate: 20}
	l := &fakeLive{sig: Signals{Rate: 20}}
	loop, cache, reg, clk := newTestLoop(t, h, l)
	var logs bytes.Buffer
	loop.cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	ctx := context.Background()
	step := func() Plan {
		t.Helper()
		loop.Step(ctx)
		clk.t = clk.t.Add(15 * time.Second)
		p, ok := cache.Get("chat")
		if !ok {
			t.Fatal("no plan")
		}
		return p
	}
	failures := func() float64 {
		return gauge(t, reg, "infercast_plan_live_failures_total", map[string]string{"workload": "chat"})
	}
	forecastOnly := total(step())
	if v := failures(); v != 0 {
		t.Errorf("live failures = %v after a good decision, want the counter present at 0", v)
	}

	// Demand jumps to 5× what the history knows, and the live source,
	// which would show it, fails: the plan cannot see the jump.
	l.sig.Rate = 100
	l.err = errors.New("exporter: connection refused")
	for range 3 {
		if p := step(); p.Mode != ModePredictive || total(p) > forecastOnly+1 {
			t.Fatalf("live signals down: plan %+v (%d replicas), want the forecast's ≈ %d", p, total(p), forecastOnly)
		}
	}
	l.err = errors.New("exporter: no request rate for model \"chat\"")
	step()
	if v := failures(); v != 4 {
		t.Errorf("live failures = %v, want 4", v)
	}
	l.err = nil
	if p := step(); total(p) < 2*forecastOnly {
		t.Errorf("live signals back at 5× the history: plan %d replicas, want the current-rate floor (≥ %d)", total(p), 2*forecastOnly)
	}
	step()
	if v := failures(); v != 4 {
		t.Errorf("live failures = %v after recovery, want still 4", v)
	}

	text := logs.String()
	if n := strings.Count(text, "level=WARN msg=\"live signals unavailable"); n != 2 {
		t.Errorf("%d warnings for two distinct failures over four decisions, want 2:\n%s", n, text)
	}
	if !strings.Contains(text, "connection refused") || !strings.Contains(text, "no request rate") {
		t.Errorf("warnings do not carry the errors:\n%s", text)
	}
	if n := strings.Count(text, "level=INFO msg=\"live signals back"); n != 1 {
		t.Errorf("%d recovery lines, want 1:\n%s", n, text)
	}
}

// hangingHistory answers the first read and then blocks until its caller
// gives up, as a Prometheus that retries for minutes does.
type hangingHistory struct {
	fakeHistory
	hang bool
}

func (h *hangingHistory) Demand(ctx context.Context, w *Workload, from, to time.Time, step time.Duration) (predict.Series, error) {
	if h.hang {
		<-ctx.Done()
		return predict.Series{}, ctx.Err()
	}
	return h.fakeHistory.Demand(ctx, w, from, to, step)
}

// TestLoopBoundsTheHistoryRead: a history source that hangs does not hold
// the plan back: the read is given up after HistoryTimeout and the loop
// serves the last good plan, as for any failure of the history.
func TestLoopBoundsTheHistoryRead(t *testing.T) {
	h := &hangingHistory{fakeHistory: fakeHistory{rate: 20}}
	w := testWorkload()
	w.Tiers.Spot = nil
	c := NewCache()
	clk := &clock{t: t0}
	loop, err := NewLoop(LoopConfig{
		Policy: staticPolicy{&Policy{Workloads: []Workload{w}}}, History: h, Live: &fakeLive{sig: Signals{Rate: 20}}, Cache: c,
		Now: clk.now, HistoryTimeout: 50 * time.Millisecond,
		NewForecaster: func(step time.Duration) predict.Online { return predict.NewOnline(step, predict.Options{}) },
	})
	if err != nil {
		t.Fatal(err)
	}
	loop.Step(context.Background())
	good, _ := c.Get("chat")
	h.hang = true
	clk.t = clk.t.Add(time.Minute)
	done := make(chan struct{})
	go func() { loop.Step(context.Background()); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the loop waited on a hanging history source")
	}
	p, _ := c.Get("chat")
	if !p.Time.Equal(clk.t) || total(p) != total(good) {
		t.Errorf("plan %+v, want the last good plan (%d replicas) served at %s", p, total(good), clk.t)
	}
}
