package batchctl

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Reasons for the last decision, the values of the reason label of
// infercast_batch_last_decision: a closed set, so the label stays bounded.
const (
	ReasonLearning       = "learning"        // too few batches to trust a fit
	ReasonOptimal        = "optimal"         // the applied knobs are the choice
	ReasonChanged        = "changed"         // a better setting was applied
	ReasonOverload       = "overload"        // no setting meets the SLO at the rate
	ReasonBackoff        = "backoff"         // observed SLO violation within predicted capacity
	ReasonRateLimited    = "rate_limited"    // a change was due but the server's interval forbade it
	ReasonHeld           = "held"            // a change would undo a recent one: held against flapping
	ReasonBelowMinGain   = "below_min_gain"  // the predicted gain did not justify a change
	ReasonApplyFailed    = "apply_failed"    // the actuator failed; the server kept its knobs
	ReasonRecommendOnly  = "recommend_only"  // recommendation differs; nothing is applied
	ReasonBadObservation = "bad_observation" // the observation was rejected
)

var allReasons = []string{ReasonLearning, ReasonOptimal, ReasonChanged, ReasonOverload, ReasonBackoff,
	ReasonRateLimited, ReasonHeld, ReasonBelowMinGain, ReasonApplyFailed, ReasonRecommendOnly, ReasonBadObservation}

type metrics struct {
	recBatch, recDelay  *prometheus.GaugeVec
	appBatch, appDelay  *prometheus.GaugeVec
	recTimeout          *prometheus.GaugeVec
	appTimeout          *prometheus.GaugeVec
	alpha, beta, jitter *prometheus.GaugeVec
	p99, capacity, rate *prometheus.GaugeVec
	clump               *prometheus.GaugeVec
	lastDecision        *prometheus.GaugeVec
	decisions, backoffs *prometheus.CounterVec
	changes, failures   *prometheus.CounterVec
	lastChange          *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	g := func(name, help string, labels ...string) *prometheus.GaugeVec {
		return prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	}
	c := func(name, help string, labels ...string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	}
	m := &metrics{
		recBatch:     g("infercast_batch_recommended_max_batch_size", "max_batch_size the controller recommends.", "model"),
		recDelay:     g("infercast_batch_recommended_max_queue_delay_seconds", "max_queue_delay the controller recommends.", "model"),
		appBatch:     g("infercast_batch_applied_max_batch_size", "max_batch_size the server runs with, as last applied or read.", "model", "actuator"),
		appDelay:     g("infercast_batch_applied_max_queue_delay_seconds", "max_queue_delay the server runs with, as last applied or read.", "model", "actuator"),
		recTimeout:   g("infercast_batch_recommended_queue_timeout_seconds", "Queue timeout after which the controller recommends rejecting a request: with reject_late its own, without it the server's own policy as read (0: none).", "model"),
		appTimeout:   g("infercast_batch_applied_queue_timeout_seconds", "Queue timeout after which the server rejects a request (Triton's default_queue_policy with REJECT), as last applied or read; 0: none.", "model", "actuator"),
		alpha:        g("infercast_batch_profile_alpha_seconds", "Fitted fixed execution time of a batch (alpha in alpha + beta*b).", "model"),
		beta:         g("infercast_batch_profile_beta_seconds", "Fitted execution time per request in a batch (beta in alpha + beta*b).", "model"),
		jitter:       g("infercast_batch_profile_jitter_seconds", "Pooled standard deviation of batch execution time around the fit.", "model"),
		p99:          g("infercast_batch_predicted_p99_seconds", "Predicted p99 of queue delay plus execution under the recommended knobs at the planning rate.", "model"),
		capacity:     g("infercast_batch_predicted_throughput_requests_per_second", "Predicted highest arrival rate the recommended knobs serve within the SLO.", "model"),
		rate:         g("infercast_batch_planning_rate_requests_per_second", "Arrival rate the recommendation is planned for: the highest of the observed arrival and completion rates, the forecast, and the peak smoothed rate of the actuator's minimum interval between changes.", "model"),
		clump:        g("infercast_batch_arrival_clump_size", "Mean number of requests arriving at the same instant as a request, itself included, as learned (1: no clumps, Poisson assumed).", "model"),
		lastDecision: g("infercast_batch_last_decision", "1 for the reason of the model's last decision, 0 for the others.", "model", "reason"),
		decisions:    c("infercast_batch_decisions_total", "Controller steps, by the reason of their decision.", "model", "reason"),
		backoffs:     c("infercast_batch_backoffs_total", "Multiplicative back-offs after an observed SLO violation within predicted capacity.", "model"),
		changes:      c("infercast_batch_changes_total", "Knob changes applied to the server.", "model", "actuator"),
		failures:     c("infercast_batch_apply_failures_total", "Failed attempts to apply knobs (the server was rolled back).", "model", "actuator"),
		lastChange:   g("infercast_batch_last_change_timestamp_seconds", "Unix time of the last applied change.", "model"),
	}
	// Several controllers (one per model and actuator in adapter serve)
	// share one registry: the second reuses the first one's vectors.
	for _, v := range []**prometheus.GaugeVec{&m.recBatch, &m.recDelay, &m.appBatch, &m.appDelay, &m.recTimeout, &m.appTimeout, &m.alpha, &m.beta,
		&m.jitter, &m.p99, &m.capacity, &m.rate, &m.clump, &m.lastDecision, &m.lastChange} {
		if err := reg.Register(*v); err != nil {
			are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
			if !ok {
				return nil, err
			}
			if *v, ok = are.ExistingCollector.(*prometheus.GaugeVec); !ok {
				return nil, err
			}
		}
	}
	for _, v := range []**prometheus.CounterVec{&m.decisions, &m.backoffs, &m.changes, &m.failures} {
		if err := reg.Register(*v); err != nil {
			are, ok := errors.AsType[prometheus.AlreadyRegisteredError](err)
			if !ok {
				return nil, err
			}
			if *v, ok = are.ExistingCollector.(*prometheus.CounterVec); !ok {
				return nil, err
			}
		}
	}
	return m, nil
}
