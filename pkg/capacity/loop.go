package capacity

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/infercast/infercast/internal/edgelog"
	"github.com/infercast/infercast/pkg/predict"
)

// HistorySource reads a workload's demand history: the requests of each
// interval of step in [from, to). It is implemented over Prometheus's HTTP
// API or the embedded store (pkg/predict/history, cmd/adapter).
type HistorySource interface {
	Demand(ctx context.Context, w *Workload, from, to time.Time, step time.Duration) (predict.Series, error)
}

// LiveSource reads a workload's live signals at now: the current rate, the
// backlog, the latency percentile, the measured cold start, the replicas by
// tier and state, and the spot notices since the last call. It is
// implemented over Prometheus or the exporter scraped directly.
type LiveSource interface {
	Signals(ctx context.Context, w *Workload, now time.Time) (Signals, error)
}

// ForecastRecorder scores forecasts against what happened.
type ForecastRecorder interface {
	RecordForecast(workload string, f predict.Forecast)
	RecordActual(workload string, t time.Time, v float64)
	Forget(workload string)
}

// PolicySource returns the current policy (a *PolicyFile, reloaded on
// SIGHUP or POST /-/reload by the caller).
type PolicySource interface {
	Current() *Policy
}

// LoopConfig wires a Loop.
type LoopConfig struct {
	Policy  PolicySource
	History HistorySource
	Live    LiveSource
	Cache   *Cache
	Metrics *Metrics // may be nil
	// Forecasts, when set, is told every forecast the loop makes and every
	// interval of demand it observes, so the forecast's realised error and
	// coverage are measured (pkg/predict/forecastmetrics.Recorder).
	Forecasts ForecastRecorder
	Logger    *slog.Logger
	// NewForecaster returns a forecaster for intervals of step
	// (predict.NewOnline in production).
	NewForecaster func(step time.Duration) predict.Online
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Tick is how often the loop wakes (default: the shortest decision
	// interval of the policy, read at start); each workload is planned at its
	// own decision interval.
	Tick time.Duration
	// HistoryTimeout bounds one workload's read of its demand history
	// (default: its decision interval, at least 30 s): the workloads are
	// planned one after another, and a history source that retries for
	// minutes would hold every plan back, where the loop can plan from the
	// last good plan or the live signals at once.
	HistoryTimeout time.Duration
}

// Loop plans every workload of the policy every decision interval: it feeds
// the forecaster the demand history, reads the live signals, plans, and
// writes the plan to the Cache and the metrics. When the history fails or
// goes stale it serves the last good plan for one horizon, then plans
// reactively from live signals, and says so in a metric and the log.
type Loop struct {
	cfg   LoopConfig
	state map[string]*workloadState
}

type workloadState struct {
	w        Workload
	planner  *Planner
	fc       predict.Online
	fed      time.Time // end of the last interval fed to the forecaster
	next     time.Time // next decision time
	lastGood Plan
	goodAt   time.Time
	hasGood  bool
	mu       *muLearner // nil unless the policy sets learn_mu
	// live is the last live-signals error: a failure is a warning when it
	// starts or changes, not at every decision.
	live edgelog.State
}

// NewLoop returns a Loop; Run starts it.
func NewLoop(cfg LoopConfig) (*Loop, error) {
	if cfg.Policy == nil || cfg.History == nil || cfg.Live == nil || cfg.Cache == nil || cfg.NewForecaster == nil {
		return nil, errors.New("capacity: loop needs a policy, history and live sources, a cache and a forecaster")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Loop{cfg: cfg, state: map[string]*workloadState{}}, nil
}

// Run plans until ctx ends.
func (l *Loop) Run(ctx context.Context) error {
	tick := l.cfg.Tick
	if tick <= 0 {
		tick = time.Minute
		if p := l.cfg.Policy.Current(); p != nil {
			for _, w := range p.Workloads {
				tick = min(tick, w.DecisionInterval)
			}
		}
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		l.Step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step plans every workload whose decision time has come. It is Run's body,
// exported so that tests and `adapter demo` can drive the loop in
// compressed time.
func (l *Loop) Step(ctx context.Context) {
	now := l.cfg.Now()
	pol := l.cfg.Policy.Current()
	if pol == nil {
		return
	}
	seen := map[string]bool{}
	for i := range pol.Workloads {
		w := pol.Workloads[i]
		seen[w.Name] = true
		st, ok := l.state[w.Name]
		if !ok || st.w.ForecastStep != w.ForecastStep {
			st = &workloadState{w: w, planner: NewPlanner(w), fc: l.cfg.NewForecaster(w.ForecastStep)}
			l.state[w.Name] = st
		} else if st.w != w {
			st.w = w
			st.planner.SetWorkload(w)
		}
		if now.Before(st.next) {
			continue
		}
		st.next = now.Add(w.DecisionInterval)
		if err := ctx.Err(); err != nil {
			return
		}
		l.plan(ctx, st, now)
	}
	for name := range l.state {
		if !seen[name] {
			delete(l.state, name)
			if l.cfg.Metrics != nil {
				l.cfg.Metrics.Forget(name)
			}
			if l.cfg.Forecasts != nil {
				l.cfg.Forecasts.Forget(name)
			}
		}
	}
}

func (l *Loop) plan(ctx context.Context, st *workloadState, now time.Time) {
	w := &st.w
	log := l.cfg.Logger.With("workload", w.Name)

	// The live signals first: the measured cold start sets how far ahead
	// the forecast must reach.
	sig, liveErr := l.cfg.Live.Signals(ctx, w, now)
	if liveErr != nil {
		sig = Signals{Rate: math.NaN(), Backlog: math.NaN()}
	}
	st.logLive(log, liveErr)
	sig.Time = now
	horizon := w.Horizon(w.forecastColdStart(sig))
	feedMuLearner(st, &sig, liveErr)

	hctx, cancel := context.WithTimeout(ctx, l.historyTimeout(w))
	histErr := l.feed(hctx, st, now)
	cancel()
	var fc *predict.Forecast
	fcErr := histErr
	if histErr == nil {
		steps := int(math.Ceil(float64(now.Sub(st.fed)+horizon) / float64(w.ForecastStep)))
		f, err := st.fc.Forecast(max(1, steps))
		fc, fcErr = &f, err
		if err == nil && l.cfg.Forecasts != nil {
			l.cfg.Forecasts.RecordForecast(w.Name, f)
		}
	}

	degraded := ""
	var plan Plan
	var ex Explanation
	switch {
	case fcErr != nil && st.hasGood && now.Sub(st.goodAt) <= horizon:
		// A short outage of the history: the last good plan is still sized
		// for demand up to its horizon.
		degraded = "last-good"
		plan = st.lastGood
		plan.Time = now
		log.Warn("demand history unavailable: serving the last good plan", "err", fcErr, "plan_age", now.Sub(st.goodAt))
	case fcErr != nil && liveErr != nil && st.hasGood:
		// Nothing fresh at all: the last good plan beats guessing.
		degraded = "last-good"
		plan = st.lastGood
		plan.Time = now
		log.Error("demand history and live signals unavailable: serving the last good plan", "err", errors.Join(fcErr, liveErr))
	default:
		plan, ex = st.planner.decide(fc, fcErr, sig)
		if fcErr != nil {
			degraded = "reactive"
			log.Warn("demand history unavailable: planning from live signals", "err", fcErr)
		} else if liveErr == nil {
			st.lastGood, st.goodAt, st.hasGood = plan, now, true
		}
	}
	// Preview follows the current policy, not the plan's: a last good plan
	// made before preview was turned on must not be acted on either.
	w.markPreview(&plan)
	sanitize(&plan, sig)
	l.cfg.Cache.Set(plan)
	if m := l.cfg.Metrics; m != nil {
		m.Failures(w.Name, fcErr != nil, liveErr != nil)
		m.Degraded(w.Name, degraded)
		if liveErr == nil {
			m.Observed(w.Name, sig, w.Tiers.Spot != nil)
		}
		if degraded != "last-good" {
			m.Observe(plan, ex)
		} else {
			m.Mode(w.Name, plan.Mode)
		}
	}
	log.Debug("planned", "mode", plan.Mode, "bound", plan.Bound, "forecast_rps", plan.ForecastRate, "why", ex.String())
}

// logLive reports the live signals' state changes: a warning when they
// fail or fail differently, a line when they return; a failure that
// persists is a debug line per decision (infercast_plan_live_failures_total
// and the InfercastAdapterWithoutLiveSignals alert count it).
func (st *workloadState) logLive(log *slog.Logger, err error) {
	now := ""
	if err != nil {
		now = err.Error()
	}
	prev, changed := st.live.Set(now)
	switch {
	case err == nil && changed:
		log.Info("live signals back: the reactive floors bind again", "was", prev)
	case err == nil:
	case changed:
		log.Warn("live signals unavailable: planning without the reactive floors (current rate, backlog, latency)", "err", err)
	default:
		log.Debug("live signals still unavailable", "err", err)
	}
}

func (l *Loop) historyTimeout(w *Workload) time.Duration {
	if l.cfg.HistoryTimeout > 0 {
		return l.cfg.HistoryTimeout
	}
	return max(w.DecisionInterval, 30*time.Second)
}

// feed gives the forecaster every complete interval since the last one it
// saw; it fails when the source fails or its data is stale (the latest
// interval is missing).
func (l *Loop) feed(ctx context.Context, st *workloadState, now time.Time) error {
	w := &st.w
	step := w.ForecastStep
	to := predict.StepStart(now, step)
	from := st.fed
	if from.IsZero() {
		// First decision: a day of history warms the forecaster up.
		from = to.Add(-24 * time.Hour)
	}
	if !to.After(from) {
		return nil
	}
	s, err := l.cfg.History.Demand(ctx, w, from, to, step)
	if err != nil {
		return fmt.Errorf("reading demand history: %w", err)
	}
	if s.Step != step {
		return fmt.Errorf("demand history has step %v, want %v", s.Step, step)
	}
	// Feed in order, one step apart, from where the forecaster stopped.
	fed := 0
	for i, v := range s.Values {
		t := s.Start.Add(time.Duration(i) * step)
		if t.Before(from) || !t.Before(to) {
			continue
		}
		if !st.fed.IsZero() {
			for gap := st.fed; gap.Before(t); gap = gap.Add(step) {
				st.fc.Observe(gap, math.NaN()) // intervals the source skipped
			}
		}
		st.fc.Observe(t, v)
		if l.cfg.Forecasts != nil && !math.IsNaN(v) {
			l.cfg.Forecasts.RecordActual(w.Name, t, v)
		}
		st.fed = t.Add(step)
		fed++
	}
	if fed == 0 || to.Sub(st.fed) >= 2*step {
		return fmt.Errorf("demand history is stale: latest interval ends %v, %v ago", st.fed.UTC().Format(time.RFC3339), to.Sub(st.fed))
	}
	return nil
}

// feedMuLearner feeds the workload's learner the live signals of this decision
// and, with learn_mu, hands the planner the learned per-replica capacity in
// sig.Mu (0 keeps the configured mu). Without learn_mu no samples are kept.
func feedMuLearner(st *workloadState, sig *Signals, liveErr error) {
	if !st.w.LearnMu {
		st.mu = nil
		return
	}
	if st.mu == nil {
		st.mu = &muLearner{}
	}
	if liveErr == nil {
		st.mu.observe(*sig)
	}
	sig.Mu = st.mu.learned(&st.w)
}

// coldStart is the cold start the planner sizes for: the measured p90
// when the policy measures it and one is known, else the configured one.
func (w *Workload) coldStart(s Signals) time.Duration {
	if w.MeasureColdStart && s.ColdStartP90 > 0 {
		return s.ColdStartP90
	}
	return w.ColdStart
}

// forecastColdStart is the cold start the forecast and the last good plan
// must cover: the planner's (coldStart), and never less than the
// configured one. The forecast must reach at least as far as the planner
// sizes, or it would read only the steps it got and miss demand arriving
// within its horizon.
func (w *Workload) forecastColdStart(sig Signals) time.Duration {
	return max(w.ColdStart, w.coldStart(sig))
}

// sanitize guarantees the scaler never serves garbage: no negative target,
// and at least one replica while demand is live.
func sanitize(p *Plan, sig Signals) {
	total := 0
	for tier, t := range p.Tiers {
		if t.Replicas < 0 {
			t.Replicas = 0
		}
		t.Margin = min(max(t.Margin, 0), t.Replicas)
		p.Tiers[tier] = t
		total += t.Replicas
	}
	if math.IsNaN(p.ForecastRate) || math.IsInf(p.ForecastRate, 0) || p.ForecastRate < 0 {
		p.ForecastRate = 0
	}
	live := finite(sig.Rate) > 0 || finite(sig.Backlog) > 0
	if live {
		p.Active = true
	}
	if p.Active && total == 0 {
		t := p.Tiers[TierOnDemand]
		t.Replicas = 1
		if p.Tiers == nil {
			p.Tiers = map[string]TierTarget{}
		}
		p.Tiers[TierOnDemand] = t
	}
}
