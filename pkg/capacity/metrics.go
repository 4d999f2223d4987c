package capacity

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics exports every plan's reasons: per workload and tier the target
// and the margin; per workload the forecast used, the needs, the floor that
// bound, the mode, the learned spot risk, and the health of the history
// source. Register it on an injected registry (never the default one).
// Every metric is listed in docs/planner.md; a test keeps the two in step.
type Metrics struct {
	target, margin                       *prometheus.GaugeVec
	forecast, horizon                    *prometheus.GaugeVec
	need, base, fallback, cover, reserve *prometheus.GaugeVec
	bound, mode                          *prometheus.GaugeVec
	pInterrupt, pDomain, pWipeout        *prometheus.GaugeVec
	decisions                            *prometheus.CounterVec
	lastDecision                         *prometheus.GaugeVec
	historyFailures, liveFailures        *prometheus.CounterVec
	degraded                             *prometheus.GaugeVec
	replicaCapacity                      *prometheus.GaugeVec
	observed                             *prometheus.GaugeVec
	reloadOK, reloadTime                 prometheus.Gauge

	mu       sync.Mutex
	bounds   map[string]string // last bound label per workload, to delete it
	muSource map[string]string // last source of mu per workload, likewise
}

// modes are every Mode, so that the mode gauge shows 0 for the others.
var modes = []Mode{ModePredictive, ModeReactive, ModeFallback, ModePreview}

// NewMetrics creates the planner's metrics and registers them on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	wt := []string{"workload", "tier"}
	w := []string{"workload"}
	g := func(name, help string, labels []string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "infercast_plan_" + name, Help: help}, labels)
	}
	m := &Metrics{
		target:   g("target_replicas", "Replicas the planner asks of a tier, margin and fallback included.", wt),
		margin:   g("margin_replicas", "Part of the tier's target added for spot interruption risk.", wt),
		forecast: g("forecast_requests_per_second", "Demand the plan was sized for: the forecast quantile of the busiest step within cold start + decision interval, the surge reserve included (the recent peak over the reactive utilisation when no forecast is available).", w),
		horizon:  g("horizon_seconds", "Lead time the plan was sized for: the cold start (measured p90 when measure_cold_start) plus the decision interval.", w),
		need:     g("need_replicas", "Replicas that serve the sized demand after floors and stabilisation, before the spot margin and fallback.", w),
		base:     g("base_need_replicas", "Replicas that serve the median forecast: the capacity the spot margin protects.", w),
		fallback: g("fallback_replicas", "Spot capacity carried by on-demand after spot replicas went pending or were interrupted.", w),
		cover:    g("spot_cover_replicas", "On-demand capacity carried by spot while on-demand replicas cannot be placed (pending).", w),
		reserve:  g("surge_reserve_replicas", "Replicas above the calibrated sizing held against sustained surges (demand above the sizing for a whole cold start); on spot, without on-demand fallback.", w),
		bound:    g("bound_info", "The floor or rule that bound the plan (1 for the current one): forecast, reactive, current-rate, backlog, latency, min-replicas, max-replicas, active, stabilization, tolerance, scale-down-rate.", []string{"workload", "bound"}),
		mode:     g("mode", "1 for the mode of the latest plan (predictive, reactive, fallback, preview), 0 for the others.", []string{"workload", "mode"}),
		pInterrupt: g("spot_interruption_probability_ratio",
			"Learned probability that one spot replica is interrupted within the replacement window.", w),
		pDomain: g("spot_domain_loss_probability_ratio",
			"Learned probability that a spot failure domain is reclaimed within the replacement window.", w),
		pWipeout: g("spot_wipeout_probability_ratio",
			"Learned probability that spot capacity becomes unobtainable within the replacement window.", w),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infercast_plan_decisions_total",
			Help: "Plans made, by mode."}, []string{"workload", "mode"}),
		lastDecision: g("last_decision_timestamp_seconds", "Unix time of the latest plan.", w),
		historyFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infercast_plan_history_failures_total",
			Help: "Decisions at which the demand history could not be read or was stale."}, w),
		liveFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infercast_plan_live_failures_total",
			Help: "Decisions at which the live signals (current rate, backlog, latency, replica states) could not be read: the plan had no reactive floors."}, w),
		replicaCapacity: g("replica_capacity_requests_per_second",
			"Requests/s one replica serves within the latency SLO (mu) that the plan was sized with: source 'configured' (the policy's mu) or 'learned' (learn_mu, from the throughput per replica at which the observed latency percentile stayed within the SLO).",
			[]string{"workload", "source"}),
		observed: g("observed_replicas", "Replicas of a tier by state (ready, starting, pending, terminating, lost: on a node that stopped reporting; departing: ready or starting, counted there too, on a node whose announced stop comes within a cold start) as the planner saw them at its latest decision: from the live source (adapter serve: the pods of the tier's Deployment with --kubernetes.pods, else estimated from the planner's own launches and notices; backtest: the simulator).", []string{"workload", "tier", "state"}),
		degraded: g("degraded", "1 while the plan is not from a fresh forecast: 'last-good' (the last good plan is served) or 'reactive' (sized from live signals only).", []string{"workload", "reason"}),
		reloadOK: prometheus.NewGauge(prometheus.GaugeOpts{Name: "infercast_plan_policy_last_reload_successful",
			Help: "1 if the last reload of the policy file succeeded."}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "infercast_plan_policy_last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful reload of the policy file."}),
		bounds:   map[string]string{},
		muSource: map[string]string{},
	}
	reg.MustRegister(m.target, m.margin, m.forecast, m.horizon, m.need, m.base, m.fallback, m.cover, m.reserve, m.bound, m.mode,
		m.pInterrupt, m.pDomain, m.pWipeout, m.decisions, m.lastDecision, m.historyFailures, m.liveFailures, m.degraded,
		m.replicaCapacity, m.observed, m.reloadOK, m.reloadTime)
	return m
}

// Observe records plan p and its explanation. Calls for one workload come
// from one goroutine (the loop).
func (m *Metrics) Observe(p Plan, ex Explanation) {
	w := p.Workload
	for tier, t := range p.Tiers {
		m.target.WithLabelValues(w, tier).Set(float64(t.Replicas))
		m.margin.WithLabelValues(w, tier).Set(float64(t.Margin))
	}
	m.forecast.WithLabelValues(w).Set(p.ForecastRate)
	if ex.Horizon > 0 {
		m.horizon.WithLabelValues(w).Set(ex.Horizon.Seconds())
	}
	m.need.WithLabelValues(w).Set(float64(ex.Need))
	m.base.WithLabelValues(w).Set(float64(ex.BaseNeed))
	m.fallback.WithLabelValues(w).Set(float64(ex.FallbackReplicas))
	m.cover.WithLabelValues(w).Set(float64(ex.SpotCoverReplicas))
	m.reserve.WithLabelValues(w).Set(float64(ex.SurgeReserve))
	m.mu.Lock()
	if old, ok := m.bounds[w]; ok && old != p.Bound {
		m.bound.DeleteLabelValues(w, old)
	}
	m.bounds[w] = p.Bound
	m.bound.WithLabelValues(w, p.Bound).Set(1)
	if ex.Mu > 0 {
		src := "configured"
		if ex.MuLearned {
			src = "learned"
		}
		if old, ok := m.muSource[w]; ok && old != src {
			m.replicaCapacity.DeleteLabelValues(w, old)
		}
		m.muSource[w] = src
		m.replicaCapacity.WithLabelValues(w, src).Set(ex.Mu)
	}
	m.mu.Unlock()
	m.Mode(w, p.Mode)
	m.pInterrupt.WithLabelValues(w).Set(ex.InterruptionProbability)
	m.pDomain.WithLabelValues(w).Set(ex.DomainLossProbability)
	m.pWipeout.WithLabelValues(w).Set(ex.WipeoutProbability)
	m.decisions.WithLabelValues(w, string(p.Mode)).Inc()
	m.lastDecision.WithLabelValues(w).Set(float64(p.Time.UnixNano()) / 1e9)
}

// Observed records the replicas of each tier of workload w by state, as
// the planner saw them (spot only when the workload has a spot tier).
func (m *Metrics) Observed(w string, sig Signals, spot bool) {
	set := func(tier string, t TierState) {
		for state, n := range map[string]int{"ready": t.Ready, "starting": t.Starting, "pending": t.Pending, "terminating": t.Terminating, "lost": t.Lost, "departing": t.Departing} {
			m.observed.WithLabelValues(w, tier, state).Set(float64(n))
		}
	}
	set(TierOnDemand, sig.OnDemand)
	if spot {
		set(TierSpot, sig.Spot)
	}
}

// Mode records the mode of workload w's latest plan. Observe calls it; the
// loop calls it alone when it serves the last good plan, whose preview
// mode follows the current policy.
func (m *Metrics) Mode(w string, mode Mode) {
	for _, md := range modes {
		v := 0.0
		if md == mode {
			v = 1
		}
		m.mode.WithLabelValues(w, string(md)).Set(v)
	}
}

// Degraded records why workload w is not planned from a fresh forecast
// ("" when it is).
func (m *Metrics) Degraded(w, reason string) {
	for _, r := range []string{"last-good", "reactive"} {
		v := 0.0
		if r == reason {
			v = 1
		}
		m.degraded.WithLabelValues(w, r).Set(v)
	}
}

// Failures counts a decision without usable history and one without live
// signals. Both counters exist from a workload's first decision, at 0, so
// that increase() sees the first failure (it cannot from a series that
// starts at 1) and alerts find the series.
func (m *Metrics) Failures(w string, history, live bool) {
	h, l := m.historyFailures.WithLabelValues(w), m.liveFailures.WithLabelValues(w)
	if history {
		h.Inc()
	}
	if live {
		l.Inc()
	}
}

// Forget drops the series of a workload removed from the policy.
func (m *Metrics) Forget(w string) {
	for _, v := range []*prometheus.GaugeVec{m.target, m.margin, m.forecast, m.horizon, m.need, m.base, m.fallback, m.cover, m.reserve, m.bound, m.mode,
		m.pInterrupt, m.pDomain, m.pWipeout, m.lastDecision, m.degraded, m.replicaCapacity, m.observed} {
		v.DeletePartialMatch(prometheus.Labels{"workload": w})
	}
	m.decisions.DeletePartialMatch(prometheus.Labels{"workload": w})
	m.historyFailures.DeletePartialMatch(prometheus.Labels{"workload": w})
	m.liveFailures.DeletePartialMatch(prometheus.Labels{"workload": w})
	m.mu.Lock()
	delete(m.bounds, w)
	delete(m.muSource, w)
	m.mu.Unlock()
}

// Reloaded implements ReloadObserver.
func (m *Metrics) Reloaded(err error) {
	if err != nil {
		m.reloadOK.Set(0)
		return
	}
	m.reloadOK.Set(1)
	m.reloadTime.Set(float64(time.Now().UnixNano()) / 1e9)
}
