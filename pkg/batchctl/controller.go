package batchctl

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Config tunes a Controller.
type Config struct {
	// SLO bounds the p99 of queue delay plus execution.
	SLO time.Duration
	// Margin keeps the predicted p99 under SLO·(1 − Margin).
	Margin float64
	// Bounds are the knobs the model allows.
	Bounds Bounds
	// Fitter tunes the profile fit.
	Fitter FitterConfig
	// Backoff multiplies max_batch_size (and halves the delay) after an
	// observed SLO violation that the model did not predict (Clipper
	// backs off by 10 %: 0.9).
	Backoff float64
	// ProbeStep is how much the back-off cap rises per window without a
	// violation: slow, additive recovery.
	ProbeStep int
	// TrustFactor bounds how far above the largest batch ever observed
	// max_batch_size may be raised in one change: the fit is not trusted
	// far beyond its data.
	TrustFactor float64
	// RateHalfLife smooths the observed arrival rate.
	RateHalfLife time.Duration
	// ClumpHalfLife discounts the observed clumps of simultaneous
	// arrivals (Observation.ClumpSizeSum): how fast the controller
	// forgets that requests came in clumps.
	ClumpHalfLife time.Duration
	// ReversalHold is how long, in multiples of the actuator's
	// MinInterval, a change made for gain may not be undone by another
	// made for gain (a knob moving back the way it came): a rate that
	// oscillates around a decision boundary must not reload a Triton
	// model every MinInterval. Changes that restore the SLO (back-off, a
	// setting predicted to break it) are not held. Zero holds nothing.
	ReversalHold float64
	// RejectLate lets the controller reject requests that can no longer
	// meet the SLO (Knobs.QueueTimeout) rather than batch them: it splits
	// the budget as Nexus does, capping the batch so that a full one runs
	// within half of it (p99), and rejects a request that waited longer
	// than the rest. Under a surge the requests that would miss anyway are
	// turned away at once, instead of lengthening every batch after them.
	// Off by default: it returns errors to clients, which an operator opts
	// into (docs/batching.md).
	RejectLate bool
	// Initial is what the server is assumed to run before the actuator
	// says otherwise (SetApplied).
	Initial Knobs
	Logger  *slog.Logger
	// Registerer receives the infercast_batch_* metrics; nil keeps them
	// unregistered.
	Registerer prometheus.Registerer
}

// DefaultConfig returns a controller configuration for an SLO and the
// largest batch the model allows.
func DefaultConfig(slo time.Duration, modelMaxBatch int) Config {
	return Config{
		SLO:           slo,
		Bounds:        Bounds{MaxBatchSize: modelMaxBatch, Delays: DefaultDelays()},
		Fitter:        DefaultFitterConfig(),
		Backoff:       0.9,
		ProbeStep:     1,
		TrustFactor:   1.5,
		RateHalfLife:  5 * time.Second,
		ClumpHalfLife: time.Minute,
		ReversalHold:  3,
		Initial:       Knobs{MaxBatchSize: modelMaxBatch},
	}
}

func (c Config) validate() error {
	switch {
	case c.SLO <= 0:
		return fmt.Errorf("batchctl: SLO %s must be positive", c.SLO)
	case c.Margin < 0 || c.Margin >= 1:
		return fmt.Errorf("batchctl: margin %g must be in [0, 1)", c.Margin)
	case c.Bounds.MaxBatchSize < 1:
		return fmt.Errorf("batchctl: model max batch size %d must be ≥ 1", c.Bounds.MaxBatchSize)
	case c.Backoff <= 0 || c.Backoff >= 1:
		return fmt.Errorf("batchctl: back-off factor %g must be in (0, 1)", c.Backoff)
	case c.TrustFactor < 1:
		return fmt.Errorf("batchctl: trust factor %g must be ≥ 1", c.TrustFactor)
	case c.ClumpHalfLife < 0:
		return fmt.Errorf("batchctl: clump half-life %s must not be negative", c.ClumpHalfLife)
	case c.ReversalHold < 0 || math.IsNaN(c.ReversalHold):
		return fmt.Errorf("batchctl: reversal hold %g must be ≥ 0", c.ReversalHold)
	}
	return nil
}

// Decision is the outcome of one controller step for one model.
type Decision struct {
	Model       string     `json:"model"`
	Recommended Knobs      `json:"recommended"`
	Applied     Knobs      `json:"applied"`
	Changed     bool       `json:"changed"`
	Profile     Profile    `json:"profile"`
	Prediction  Prediction `json:"prediction"`
	// PlanningRate is the arrival rate planned for (requests/s).
	PlanningRate float64 `json:"planning_rate_rps"`
	// Clump is the mean number of requests that arrived at the same
	// instant as a request, itself included, as learned (1: Poisson).
	Clump float64 `json:"arrival_clump"`
	// Reason is one of the Reason* constants; Detail says it in words.
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// rejectCapShare: with late rejection, the half-budget batch cap is taken
// when the capacity model, which ignores rejection, gives it at least this
// share of the chosen cap's SLO capacity (and always in overload). Under a
// surge rejection recovers what the model says the smaller cap loses; when
// the loss is larger (clumped arrivals, where a larger cap splits a
// pile-up) the chosen cap stays, and only requests that miss the SLO even
// in a batch of one are rejected. 0.6–0.8 replay the three traces of
// docs/batching.md and the clumped test alike (seed 1); 0.9 keeps the
// large caps that lose the surges (Azure code 1.545× instead of 2.120×,
// conv 9.462× instead of 10.009×).
const rejectCapShare = 0.75

// guardHeadroom: the AIMD guard backs off only for violations at arrival
// rates below this fraction of the predicted SLO capacity, where the model
// is clearly wrong; nearer capacity, a noisy window is the queue's doing,
// and a smaller batch would only serve less.
const guardHeadroom = 0.8

// Hysteresis, so that a rate hovering around a decision boundary does not
// flip the knobs back and forth (a Triton change is a model reload):
//   - overload is entered as soon as nothing meets the SLO at the planning
//     rate, and left only once the rate is below overloadExit of the SLO
//     capacity of the setting to return to;
//   - a longer queue delay (made for GPU efficiency) must keep the p99
//     within budget at delayHeadroom above the planning rate, while a
//     shorter one is taken as soon as the current one breaks the budget;
//   - a smaller batch cap counts as a safety change (no gain needed) only
//     when it is at least capDeadband smaller: ±1 from fit noise is not.
const (
	overloadExit  = 0.9
	delayHeadroom = 0.2
	capDeadband   = 0.1
)

// Controller tunes the batch knobs of each model it is stepped for. Step
// may be called from several goroutines; steps are serialised.
type Controller struct {
	cfg Config
	act Actuator
	log *slog.Logger
	m   *metrics

	mu     sync.Mutex
	models map[string]*modelState
}

type modelState struct {
	fit     *Fitter
	applied Knobs
	rate    float64 // smoothed arrival rate
	// Discounted sums of arrivals and of their clump sizes, in windows
	// that measured clumps: their ratio is the mean clump size.
	clumpArrivals, clumpSizes float64
	done                      float64 // smoothed completion rate
	lastObs                   time.Time
	lastChange                time.Time
	changed                   bool // lastChange is set
	guardBatch                int  // back-off cap on max_batch_size
	guardDelay                time.Duration
	lastRec                   Knobs
	lastReason                string
	overload                  bool // the last choice was the overload setting
	// before is what the server ran before the last applied change
	// (appliedAt), to recognise a change that would undo it.
	before    Knobs
	appliedAt time.Time
	// recent holds the smoothed rates of the actuator's minimum interval
	// between changes, oldest first: their peak is planned for (below).
	recent []stampedRate
}

type stampedRate struct {
	t    time.Time
	rate float64
}

// New returns a controller acting through act (RecommendOnly when nil).
func New(cfg Config, act Actuator) (*Controller, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if act == nil {
		act = RecommendOnly{Logger: cfg.Logger}
	}
	if cfg.Initial.MaxBatchSize < 1 {
		cfg.Initial.MaxBatchSize = cfg.Bounds.MaxBatchSize
	}
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry() // unexported: metrics still work, nobody scrapes them
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, fmt.Errorf("batchctl: registering metrics: %w", err)
	}
	return &Controller{cfg: cfg, act: act, log: cfg.Logger, m: m, models: map[string]*modelState{}}, nil
}

func (c *Controller) state(model string) *modelState {
	s, ok := c.models[model]
	if !ok {
		s = &modelState{fit: NewFitter(c.cfg.Fitter), applied: c.cfg.Initial,
			guardBatch: c.cfg.Bounds.MaxBatchSize, guardDelay: maxDelay(c.cfg.Bounds)}
		c.models[model] = s
		// Event counters start at 0, so an alert or a rate() sees "none
		// yet" rather than "no data".
		c.m.backoffs.WithLabelValues(model)
		c.m.changes.WithLabelValues(model, c.act.Name())
		c.m.failures.WithLabelValues(model, c.act.Name())
		// The fit and its predictions are unknown (NaN) until the profile
		// is learned: the series exist from the start, and a dashboard or
		// an alert sees "not yet" rather than a false 0.
		for _, g := range []*prometheus.GaugeVec{c.m.alpha, c.m.beta, c.m.jitter, c.m.p99, c.m.capacity} {
			g.WithLabelValues(model).Set(math.NaN())
		}
	}
	return s
}

func maxDelay(b Bounds) time.Duration {
	if len(b.Delays) == 0 {
		return 0
	}
	return b.Delays[len(b.Delays)-1]
}

// SetApplied tells the controller what the server runs now (read from its
// config), so that it neither re-applies it nor mistakes it.
func (c *Controller) SetApplied(model string, k Knobs) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.state(model).applied = k
	c.m.appBatch.WithLabelValues(model, c.act.Name()).Set(float64(k.MaxBatchSize))
	c.m.appDelay.WithLabelValues(model, c.act.Name()).Set(k.MaxQueueDelay.Seconds())
	c.m.appTimeout.WithLabelValues(model, c.act.Name()).Set(k.QueueTimeout.Seconds())
}

// Applied is the model's knobs as the controller last applied or was told
// (SetApplied); false before either.
func (c *Controller) Applied(model string) (Knobs, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.models[model]
	if !ok || s.applied == (Knobs{}) {
		return Knobs{}, false
	}
	return s.applied, true
}

// Step feeds one observation of a model, with the forecast arrival rate
// for the coming interval (0 when there is no forecast), and decides. The
// error is non-nil only for a rejected observation; a failed actuation is
// reported in the decision (ReasonApplyFailed) and logged.
func (c *Controller) Step(ctx context.Context, model string, o Observation, forecastRPS float64) (Decision, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := Decision{Model: model}
	if err := o.Validate(); err != nil {
		c.record(model, &d, ReasonBadObservation, err.Error())
		return d, fmt.Errorf("batchctl: model %s: %w", model, err)
	}
	if math.IsNaN(forecastRPS) || forecastRPS < 0 {
		forecastRPS = 0
	}
	s := c.state(model)
	d.Applied, d.Recommended = s.applied, s.applied
	s.fit.AddObservation(o)
	s.rate = smooth(s.rate, o.ArrivalRate(), s.lastObs, o.Time, c.cfg.RateHalfLife)
	s.done = smooth(s.done, o.Requests/o.Window.Seconds(), s.lastObs, o.Time, c.cfg.RateHalfLife)
	clump := s.learnClump(o, c.cfg.ClumpHalfLife)
	d.Clump = clump
	s.lastObs = o.Time
	// Plan for the higher of the smoothed arrival rate, the forecast, and
	// the completion rate: while a backlog drains, requests complete
	// faster than they arrive, and the knobs must keep draining it.
	// A window's raw completion rate enters overload fast (bursts are
	// short); leaving it waits for the smoothed rates, so that the knobs
	// do not flap with every noisy window.
	lambda := math.Max(math.Max(s.rate, s.done), forecastRPS)
	lambda = math.Max(lambda, o.Requests/o.Window.Seconds())
	// A setting may have to stand for the actuator's minimum interval
	// (Triton: 5 minutes, a model reload each), so it is planned for the
	// peak smoothed rate of the last such interval, not the lull of the
	// moment: bursts come in clusters, and a setting made in a lull would
	// meet the next burst unable to change. (On Mooncake under a 5-minute
	// limit: 0.943× → 0.995× the best static goodput; docs/batching.md.)
	lambda = math.Max(lambda, s.heldPeak(o.Time, math.Max(s.rate, s.done), c.act.Limits().MinInterval))
	d.PlanningRate = lambda

	prof, ok := s.fit.Fit(o.Time)
	if !ok {
		c.record(model, &d, ReasonLearning, "too few batches observed to fit the execution profile")
		return d, nil
	}
	d.Profile = prof
	if !prof.Identified {
		c.probeUnidentified(ctx, model, s, o, prof, &d)
		return d, nil
	}
	budget := c.cfg.SLO.Seconds() * (1 - c.cfg.Margin)
	appliedCap := CapacityClumped(prof, s.applied, clump, budget)

	// The AIMD guard judges the window by whichever rate was higher: a
	// draining backlog completes faster than requests arrive.
	observedRate := math.Max(o.ArrivalRate(), o.Requests/o.Window.Seconds())
	backoff := c.guard(model, s, o, observedRate, appliedCap)

	ch := ChooseClumped(prof, lambda, clump, c.cfg.SLO, c.cfg.Margin, c.cfg.Bounds)
	if ch.Feasible && s.overload && lambda > overloadExit*ch.Prediction.SLOCapacityRPS {
		k := Knobs{MaxBatchSize: c.cfg.Bounds.MaxBatchSize}
		ch = Choice{Knobs: k, Prediction: PredictClumped(prof, lambda, clump, k), Reason: fmt.Sprintf(
			"overload easing: %.1f req/s not yet below %.0f%% of the SLO capacity %.1f req/s of %s",
			lambda, 100*overloadExit, ch.Prediction.SLOCapacityRPS, ch.Knobs)}
	}
	s.overload = !ch.Feasible
	if ch.Feasible && ch.Knobs.MaxQueueDelay > s.applied.MaxQueueDelay {
		// Lengthen the delay only as far as holds at a higher rate.
		up := ChooseClumped(prof, lambda*(1+delayHeadroom), clump, c.cfg.SLO, c.cfg.Margin, c.cfg.Bounds)
		upDelay := time.Duration(0)
		if up.Feasible {
			upDelay = up.Knobs.MaxQueueDelay
		}
		ch.Knobs.MaxQueueDelay = max(s.applied.MaxQueueDelay, min(ch.Knobs.MaxQueueDelay, upDelay))
	}
	rec := ch.Knobs
	rec.MaxBatchSize = min(rec.MaxBatchSize, s.guardBatch)
	rec.MaxQueueDelay = min(rec.MaxQueueDelay, s.guardDelay)
	// Probe slowly: never raise the cap beyond TrustFactor × the largest
	// batch observed (or the current cap, if larger).
	// Under overload there is no SLO left to protect: throughput first.
	if ch.Feasible {
		trust := max(s.applied.MaxBatchSize, int(math.Ceil(c.cfg.TrustFactor*float64(max(prof.MaxObservedBatch, 1)))))
		rec.MaxBatchSize = max(1, min(rec.MaxBatchSize, trust))
	}
	if c.cfg.RejectLate {
		rec = rejectLate(prof, rec, budget, !ch.Feasible, func(b int) float64 {
			return CapacityClumped(prof, Knobs{MaxBatchSize: b, MaxQueueDelay: rec.MaxQueueDelay}, clump, budget)
		})
	} else {
		rec.QueueTimeout = s.applied.QueueTimeout // the server's own policy stays
	}
	pred := PredictClumped(prof, lambda, clump, rec)
	pred.SLOCapacityRPS = CapacityClumped(prof, rec, clump, budget)
	d.Recommended, d.Prediction = rec, pred

	reason, detail := ReasonOptimal, ch.Reason
	switch {
	case backoff:
		reason, detail = ReasonBackoff, fmt.Sprintf("observed p99 %.3fs > SLO %s at %.1f req/s, within the predicted SLO capacity %.1f req/s: max_batch_size cap %d",
			o.LatencyP99Seconds, c.cfg.SLO, observedRate, appliedCap, s.guardBatch)
	case !ch.Feasible:
		reason = ReasonOverload
	}
	if rec == s.applied {
		c.record(model, &d, reason, detail)
		return d, nil
	}
	lim := c.act.Limits()
	if lim.RecommendOnly {
		if rec != s.lastRec {
			_ = c.act.Apply(ctx, model, rec) // logs the restart hint
		}
		s.lastRec = rec
		c.record(model, &d, ReasonRecommendOnly, detail)
		return d, nil
	}
	cur := PredictClumped(prof, lambda, clump, s.applied)
	safety := backoff || (cur.P99Seconds > budget && pred.P99Seconds < cur.P99Seconds) ||
		s.applied.MaxBatchSize > c.cfg.Bounds.MaxBatchSize
	gain := 0.0
	if appliedCap > 0 {
		gain = (pred.SLOCapacityRPS - appliedCap) / appliedCap
	} else if pred.SLOCapacityRPS > 0 {
		gain = math.Inf(1)
	}
	if cur.GPUUtilization > 0 {
		gain = math.Max(gain, (cur.GPUUtilization-pred.GPUUtilization)/cur.GPUUtilization)
	}
	// A smaller batch that keeps the SLO capacity shortens what a surge
	// forms; count it as a gain in safety when the capacity holds.
	if float64(rec.MaxBatchSize) <= float64(s.applied.MaxBatchSize)*(1-capDeadband) && pred.SLOCapacityRPS >= appliedCap*(1-capacityTie) {
		safety = true
	}
	// Turning late rejection on, or a timeout that no longer fits the
	// batch cap (a full batch would push the latest admitted request past
	// the SLO), is a change for the SLO: the capacity model, which
	// ignores rejection, cannot price it as a gain.
	if c.cfg.RejectLate && (s.applied.QueueTimeout == 0 ||
		s.applied.QueueTimeout.Seconds()+prof.ExecP99(float64(s.applied.MaxBatchSize)) > budget*(1+capDeadband)) {
		safety = true
	}
	// Probing back up towards the choice after a back-off is how the
	// guard learns the violation has passed: slow by the guard's step and
	// the rate limit, it needs no gain.
	probe := !backoff && s.guardBatch < ch.Knobs.MaxBatchSize && rec.MaxBatchSize > s.applied.MaxBatchSize
	if !safety && !probe && gain < lim.MinGain {
		c.record(model, &d, ReasonBelowMinGain, fmt.Sprintf("%s → %s predicted gain %.1f%% below the minimum %.1f%%",
			s.applied, rec, 100*gain, 100*lim.MinGain))
		return d, nil
	}
	// Only a change that restores the SLO (the guard's back-off, or a
	// setting predicted to meet it where the applied one is not) may undo
	// a recent change; the rest, overload entry and exit included, wait.
	restores := backoff || (cur.P99Seconds > budget && pred.P99Seconds <= budget)
	if hold := time.Duration(c.cfg.ReversalHold * float64(lim.MinInterval)); !restores && !probe && !s.appliedAt.IsZero() &&
		o.Time.Sub(s.appliedAt) < hold && reverses(s.before, s.applied, rec) {
		c.record(model, &d, ReasonHeld, fmt.Sprintf("%s → %s would undo the change from %s made %s ago (held for %s against flapping)",
			s.applied, rec, s.before, o.Time.Sub(s.appliedAt), hold))
		return d, nil
	}
	if s.changed && o.Time.Sub(s.lastChange) < lim.MinInterval {
		c.record(model, &d, ReasonRateLimited, fmt.Sprintf("%s → %s due, but the last change was %s ago (minimum %s)",
			s.applied, rec, o.Time.Sub(s.lastChange), lim.MinInterval))
		return d, nil
	}
	from := s.applied
	if err := c.apply(ctx, model, s, rec, o.Time, &d); err != nil {
		c.log.Warn("applying batch knobs failed; the server keeps its knobs", "model", model,
			"actuator", c.act.Name(), "knobs", rec.String(), "err", err)
		c.record(model, &d, ReasonApplyFailed, err.Error())
		return d, nil
	}
	s.before, s.appliedAt = from, o.Time // what a reversal would undo, and when
	c.log.Info("batch knobs applied", "model", model, "actuator", c.act.Name(), "from", from.String(),
		"to", rec.String(), "reason", reason, "detail", detail, "predicted_p99_s", pred.P99Seconds,
		"predicted_throughput_rps", pred.SLOCapacityRPS)
	if reason == ReasonOptimal {
		reason = ReasonChanged
	}
	c.record(model, &d, reason, detail)
	return d, nil
}

// apply sets rec on model's server through the actuator and, when it
// takes, makes it the applied knobs. A failure counts against the rate
// limit too: a server that refuses should not be hammered.
func (c *Controller) apply(ctx context.Context, model string, s *modelState, rec Knobs, now time.Time, d *Decision) error {
	if err := c.act.Apply(ctx, model, rec); err != nil {
		c.m.failures.WithLabelValues(model, c.act.Name()).Inc()
		s.lastChange, s.changed = now, true
		return err
	}
	s.applied, s.lastChange, s.changed = rec, now, true
	d.Applied, d.Changed = rec, true
	c.m.changes.WithLabelValues(model, c.act.Name()).Inc()
	c.m.lastChange.WithLabelValues(model).Set(float64(now.UnixNano()) / 1e9)
	return nil
}

// probeUnidentified decides while the batch sizes seen are too uniform to
// separate alpha from beta: choosing from a through-origin fit would pin
// the batch where it is. It keeps the knobs and, where batches fill the
// cap, probes upward so that larger batches can be seen.
func (c *Controller) probeUnidentified(ctx context.Context, model string, s *modelState, o Observation, prof Profile, d *Decision) {
	rec := s.applied
	detail := fmt.Sprintf("batch sizes up to %d too uniform to separate alpha and beta", prof.MaxObservedBatch)
	rec.MaxBatchSize = min(c.cfg.Bounds.MaxBatchSize, int(math.Ceil(float64(s.applied.MaxBatchSize)*c.cfg.TrustFactor)))
	if c.cfg.RejectLate && s.applied.QueueTimeout > 0 {
		// The through-origin fit overstates larger batches: a probe
		// stays within what its half-budget cap allows.
		rec = rejectLate(prof, rec, c.cfg.SLO.Seconds()*(1-c.cfg.Margin), true, nil)
	}
	if prof.MaxObservedBatch >= s.applied.MaxBatchSize && rec.MaxBatchSize > s.applied.MaxBatchSize {
		d.Recommended = rec
		if c.act.Limits().RecommendOnly || (s.changed && o.Time.Sub(s.lastChange) < c.act.Limits().MinInterval) {
			c.record(model, d, ReasonLearning, detail+"; probe upward due")
			return
		}
		from := s.applied
		if err := c.apply(ctx, model, s, rec, o.Time, d); err != nil {
			c.record(model, d, ReasonApplyFailed, err.Error())
			return
		}
		c.log.Info("batch knobs probed upward", "model", model, "actuator", c.act.Name(), "from", from.String(), "to", rec.String())
		detail += "; probed upward"
	}
	c.record(model, d, ReasonLearning, detail)
}

// guard is the AIMD guard: an observed violation the model did not
// predict (the observed rate was within the applied setting's SLO
// capacity) means the model is wrong for now: it caps the batch and the
// delay multiplicatively (true: backed off). A violation under overload
// is not the batch's fault: a smaller batch would only serve less. A
// window within the SLO lets the caps grow back additively.
func (c *Controller) guard(model string, s *modelState, o Observation, observedRate, appliedCap float64) bool {
	if o.Requests > 0 && o.LatencyP99Seconds > c.cfg.SLO.Seconds() && observedRate <= guardHeadroom*appliedCap {
		s.guardBatch = max(1, int(math.Floor(float64(s.applied.MaxBatchSize)*c.cfg.Backoff)))
		s.guardDelay = s.applied.MaxQueueDelay / 2
		c.m.backoffs.WithLabelValues(model).Inc()
		return true
	}
	if o.LatencyP99Seconds <= c.cfg.SLO.Seconds() {
		s.guardBatch = min(c.cfg.Bounds.MaxBatchSize, s.guardBatch+max(c.cfg.ProbeStep, 1))
		if s.guardDelay < maxDelay(c.cfg.Bounds) {
			s.guardDelay = max(2*s.guardDelay, time.Millisecond)
		}
	}
	return false
}

// rejectLate sets the queue timeout of k. In overload, or when the
// capacity model allows (rejectCapShare, capOf gives a cap's SLO capacity),
// it splits the budget as Nexus does: the batch is capped so that a full
// one runs within half the budget (p99 of the fitted profile), and the
// timeout is the other half — every request admitted to a batch can still
// meet the SLO, a request left behind by a full batch waits less than the
// timeout, and the rest are rejected at once. Otherwise the cap stays and
// only requests that would miss the SLO even in a batch of one are
// rejected. The timeout is floored to a 10 ms step, so that fit noise does
// not move it every window (the cap keeps a step of slack for it); the
// delay stays below half of it. A budget that a lone request does not fit
// sets no timeout.
func rejectLate(p Profile, k Knobs, budget float64, overload bool, capOf func(int) float64) Knobs {
	const step = 10 * time.Millisecond
	b := max(k.MaxBatchSize, 1)
	for b > 1 && p.ExecP99(float64(b))+step.Seconds() > budget/2+1e-9 { // 1 ns: fit round-off
		b--
	}
	left := budget - p.ExecP99(1)
	if overload || capOf(b) >= rejectCapShare*capOf(k.MaxBatchSize) {
		k.MaxBatchSize = b
		left = budget - p.ExecP99(float64(b))
	}
	k.QueueTimeout = time.Duration(left * float64(time.Second)).Round(time.Microsecond).Truncate(step)
	if k.QueueTimeout <= 0 {
		k.QueueTimeout = 0
	}
	if k.QueueTimeout > 0 {
		k.MaxQueueDelay = min(k.MaxQueueDelay, k.QueueTimeout/2)
	}
	return k
}

// learnClump adds a window's clumps of simultaneous arrivals to the
// discounted sums and returns the mean clump size learned so far: 1 (Poisson)
// until a window measures clumps. A window that does not measure them
// (ClumpSizeSum 0) changes nothing.
func (s *modelState) learnClump(o Observation, halfLife time.Duration) float64 {
	if o.ClumpSizeSum > 0 && o.Arrivals > 0 {
		w := 0.0 // the first window, or no memory: this window alone
		if !s.lastObs.IsZero() && halfLife > 0 {
			w = math.Exp2(-max(o.Time.Sub(s.lastObs).Seconds(), 0) / halfLife.Seconds())
		}
		// Each arrival is in a clump of at least itself; scrapes of two
		// counters at slightly different instants must not make it less.
		s.clumpArrivals = w*s.clumpArrivals + o.Arrivals
		s.clumpSizes = w*s.clumpSizes + max(o.ClumpSizeSum, o.Arrivals)
	}
	if s.clumpArrivals <= 0 {
		return 1
	}
	return max(s.clumpSizes/s.clumpArrivals, 1)
}

// reverses reports whether moving from cur to next moves a knob back the
// way the last change (from before to cur) moved it.
func reverses(before, cur, next Knobs) bool {
	sign := func(x int64) int64 { return int64(cmp.Compare(x, 0)) }
	opposite := func(a, b, c int64) bool { return sign(b-a)*sign(c-b) < 0 }
	return opposite(int64(before.MaxBatchSize), int64(cur.MaxBatchSize), int64(next.MaxBatchSize)) ||
		opposite(int64(before.MaxQueueDelay), int64(cur.MaxQueueDelay), int64(next.MaxQueueDelay))
}

// heldPeak records the smoothed rate at now and returns the highest of
// the last window (just rate when window is 0).
func (s *modelState) heldPeak(now time.Time, rate float64, window time.Duration) float64 {
	s.recent = append(s.recent, stampedRate{now, rate})
	i := 0
	for i < len(s.recent) && now.Sub(s.recent[i].t) > window {
		i++
	}
	s.recent = append(s.recent[:0], s.recent[i:]...)
	peak := 0.0
	for _, r := range s.recent {
		peak = math.Max(peak, r.rate)
	}
	return peak
}

// smooth is an exponentially weighted moving average over irregular steps.
func smooth(prev, x float64, last, now time.Time, halfLife time.Duration) float64 {
	if last.IsZero() || halfLife <= 0 {
		return x
	}
	dt := now.Sub(last).Seconds()
	if dt <= 0 {
		return prev
	}
	w := math.Exp2(-dt / halfLife.Seconds())
	return w*prev + (1-w)*x
}

// record sets the decision's reason and exports the decision.
func (c *Controller) record(model string, d *Decision, reason, detail string) {
	d.Reason, d.Detail = reason, detail
	for _, r := range allReasons {
		v := 0.0
		if r == reason {
			v = 1
		}
		c.m.lastDecision.WithLabelValues(model, r).Set(v)
	}
	c.m.decisions.WithLabelValues(model, reason).Inc()
	if reason == ReasonBadObservation {
		return
	}
	c.m.recBatch.WithLabelValues(model).Set(float64(d.Recommended.MaxBatchSize))
	c.m.recDelay.WithLabelValues(model).Set(d.Recommended.MaxQueueDelay.Seconds())
	c.m.appBatch.WithLabelValues(model, c.act.Name()).Set(float64(d.Applied.MaxBatchSize))
	c.m.appDelay.WithLabelValues(model, c.act.Name()).Set(d.Applied.MaxQueueDelay.Seconds())
	c.m.recTimeout.WithLabelValues(model).Set(d.Recommended.QueueTimeout.Seconds())
	c.m.appTimeout.WithLabelValues(model, c.act.Name()).Set(d.Applied.QueueTimeout.Seconds())
	c.m.rate.WithLabelValues(model).Set(d.PlanningRate)
	c.m.clump.WithLabelValues(model).Set(d.Clump)
	if reason == ReasonLearning {
		return
	}
	c.m.alpha.WithLabelValues(model).Set(d.Profile.Alpha)
	c.m.beta.WithLabelValues(model).Set(d.Profile.Beta)
	c.m.jitter.WithLabelValues(model).Set(d.Profile.Jitter)
	c.m.p99.WithLabelValues(model).Set(d.Prediction.P99Seconds)
	c.m.capacity.WithLabelValues(model).Set(d.Prediction.SLOCapacityRPS)
	if s := c.models[model]; s != nil && s.lastReason != reason {
		c.log.Debug("batch decision", "model", model, "reason", reason, "detail", detail)
		s.lastReason = reason
	}
}
