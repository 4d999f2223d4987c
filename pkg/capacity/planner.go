package capacity

import (
	"fmt"
	"math"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// TierState counts the replicas of one tier by state, as the cluster (or
// the simulator) reports them.
type TierState struct {
	Ready    int // serving
	Starting int // launched, not ready yet
	Pending  int // wanted but not placed (spot: no capacity)
	// Terminating replicas have an interruption notice or are being
	// removed; they do not count towards the tier's target.
	Terminating int
	// Lost replicas are on a node that stopped reporting: they will not
	// serve, yet their Deployment counts them until they are evicted
	// (Kubernetes: the unreachable taint's tolerationSeconds, 300 s by
	// default), so nothing replaces them meanwhile. The tier's target
	// carries them on top, so their replacements launch at once.
	Lost int
	// Departing replicas, among Ready and Starting, are on a node whose
	// stop the cloud announced to come within a cold start or so
	// (maintenance, a retirement, a reboot): they serve until then, but
	// the stop takes them. The tier's target carries them on top, so that
	// their replacements are ready before it.
	Departing int
}

// Live is the replicas that count towards the target: placed and not
// terminating (nor lost).
func (t TierState) Live() int { return t.Ready + t.Starting }

// Signals are the live observations of one workload at a decision time.
// NaN (or zero for durations) means unknown.
type Signals struct {
	Time time.Time
	// Rate is the arrival rate now, requests/s.
	Rate float64
	// Backlog is the number of requests waiting for a replica.
	Backlog float64
	// Latency is the observed latency at the workload's percentile.
	Latency time.Duration
	// ColdStartP90 is the measured p90 cold start (used with
	// measure_cold_start).
	ColdStartP90 time.Duration
	OnDemand     TierState
	Spot         TierState
	// SpotNotices is how many spot replicas got an interruption notice since
	// the previous decision, and SpotNoticeDomains from how many failure
	// domains they came.
	SpotNotices       int
	SpotNoticeDomains int
	// Mu, when positive, is a learned per-replica capacity (learn_mu); the
	// Loop fills it from the samples it keeps (muLearner).
	Mu float64
	// Serving is how many replicas serve now as the live source counts them
	// (the exporter's scraped targets of the model); 0: unknown. learn_mu
	// divides Rate by it (else by the tiers' ready replicas) for the
	// throughput per replica.
	Serving int
	// SpotByDomain counts the placed, non-terminating spot replicas of each
	// failure domain (zone or pool); nil when unknown, then an even spread
	// is assumed.
	SpotByDomain []int
}

// survivingTotal is the smallest spot total such that losing the fullest
// domain leaves at least protect, from the current placement byDomain:
// when it already does, the fullest domain plus protect (removals, from
// whichever domains, never make the fullest fuller); otherwise growing by
// adding replicas to the emptiest domain that can take one (canGrow; nil:
// any) one at a time, as a topology spread places them. When only the
// fullest domain can take new replicas, growing buys no survivor: the
// current total. False when byDomain is unknown (or has one domain); limit
// when limit is reached.
func survivingTotal(byDomain []int, protect, limit int, canGrow []bool) (int, bool) {
	if len(byDomain) < 2 {
		return 0, false
	}
	c := append([]int(nil), byDomain...)
	total, fullest := 0, 0
	for _, v := range c {
		total += v
		fullest = max(fullest, v)
	}
	if total-fullest >= protect {
		// Not the current total: a margin that is no longer needed (the
		// need fell, a domain refilled) must be able to go.
		return min(fullest+protect, limit), true
	}
	for total-fullest < protect {
		if total >= limit {
			return limit, true
		}
		lo, growable := -1, 0
		for i := range c {
			if canGrow == nil || canGrow[i] {
				growable++
				if lo < 0 || c[i] < c[lo] {
					lo = i
				}
			}
		}
		if lo < 0 || (growable == 1 && c[lo] == fullest) {
			return total, true
		}
		c[lo]++
		total++
		fullest = max(fullest, c[lo])
	}
	return total, true
}

// Explanation says why a plan is what it is; it rides along in Plan.
type Explanation struct {
	// Need is the replicas that serve the sized demand, before the spot
	// margin and fallback; BaseNeed those that serve the median forecast
	// and the live signals (the capacity the spot margin protects).
	Need, BaseNeed int
	// Floors are the replicas each reactive floor asked for.
	CurrentRateFloor, BacklogFloor, LatencyFloor int
	// PredictiveNeed is what the forecast alone asked for, the surge
	// reserve included.
	PredictiveNeed int
	// SurgeReserve is the replicas above the calibrated sizing held
	// against sustained surges (demand above the sizing for a whole cold
	// start: a launch then comes too late). They ride spot without an
	// on-demand fallback: insurance bought where it is cheap.
	SurgeReserve int
	// BurstPeak is the peak live rate of the burst window (requests/s;
	// its 97.5th percentile), part of the horizon calibration's reference.
	BurstPeak float64
	// Horizon is cold start + decision interval.
	Horizon time.Duration
	// Mu is the per-replica capacity (requests/s) the plan used, and
	// MuLearned whether it was learned (learn_mu) rather than configured.
	Mu        float64
	MuLearned bool
	// InterruptionRate is the learned interruption rate of one spot replica
	// (per hour), InterruptionProbability the chance of losing one within
	// the replacement window, DomainLossProbability the chance of losing a
	// failure domain within it and WipeoutProbability of spot becoming
	// unobtainable altogether.
	InterruptionRate                                                   float64
	InterruptionProbability, DomainLossProbability, WipeoutProbability float64
	// SpotCarriesCore is false when spot is too risky to carry the demand
	// that live signals already show: then only the forecast headroom
	// rides on spot.
	SpotCarriesCore bool
	// FallbackReplicas is spot capacity carried by on-demand after spot
	// went pending or was interrupted.
	FallbackReplicas int
	// SpotCoverReplicas is on-demand capacity carried by spot while
	// on-demand replicas cannot be placed (pending: no capacity, a quota).
	SpotCoverReplicas int
	// LostReplacements is the replicas the tiers' targets carry on top for
	// lost ones (on a node that stopped reporting, not yet evicted).
	LostReplacements int
	// DepartingReplacements is the replicas the tiers' targets carry on top
	// for departing ones (on a node whose stop is announced).
	DepartingReplacements int
	// Forecast is the forecaster's model, or the error that made the plan
	// reactive.
	Forecast string
}

// String is a one-line account of the plan's reasons, for logs.
func (e Explanation) String() string {
	return fmt.Sprintf("need=%d predictive=%d surge_reserve=%d floors(rate=%d backlog=%d latency=%d) horizon=%s p_interrupt=%.4f p_domain=%.4f p_wipeout=%.4f spot_core=%t fallback=%d spot_cover=%d lost_replacements=%d departing_replacements=%d forecast=%s",
		e.Need, e.PredictiveNeed, e.SurgeReserve, e.CurrentRateFloor, e.BacklogFloor, e.LatencyFloor, e.Horizon,
		e.InterruptionProbability, e.DomainLossProbability, e.WipeoutProbability, e.SpotCarriesCore, e.FallbackReplicas,
		e.SpotCoverReplicas, e.LostReplacements, e.DepartingReplacements, e.Forecast)
}

// reactiveUtilisation is the utilisation reactive mode sizes for: without
// a forecast the growth over the horizon is unknown, so it keeps the
// headroom of the usual HPA setting.
const reactiveUtilisation = 0.7

// priorHours is the weight of the policy's interruption prior, in hours
// of observed exposure.
const priorHours = 24

// surgeBudgetShare is the share of the unavailability the policy allows
// (1 − target_availability) that sustained surges may take: the rest is
// left to demand's short-term noise (the horizon quantile), cold starts
// and spot.
const surgeBudgetShare = 0.1

// Planner sizes one workload. It is pure: no I/O, no clock (time comes
// from Signals), so the serving loop and the backtest drive the same code.
// It keeps state between decisions (stabilisation, fallback, learned
// risk), so one Planner serves one workload, from one goroutine.
type Planner struct {
	w Workload

	last        time.Time
	window      []stamped // raw needs within the scale-down stabilisation window
	baseWindow  []stamped // raw base needs, likewise
	sizedWindow []stamped // demand-sized needs (no catch-up floors), likewise
	rates       []stamped // live rates within the horizon, for reactive mode
	burst       []stamped // live rates within the burst window
	top         []float64 // scratch for burstPeak
	prevNeed    int
	warmNeed    int       // need before demand paused (idle_hold)
	idleSince   time.Time // when demand paused; zero while it flows
	odCover     int       // spot capacity carried by on-demand (fallback)
	lastStress  time.Time // last time spot was pending or interrupted
	lastWipe    time.Time
	prevByDom   []int       // SpotByDomain at the previous decision
	domFull     []time.Time // when launches last skipped a domain (no spot capacity there)
	calib       horizonCalibration
	replica     rateEstimate // spot interruptions per replica-hour
	domain      rateEstimate // domain losses per domain-hour
	wipeout     rateEstimate // spot unobtainable onsets per hour of wanting spot
}

type stamped struct {
	t time.Time
	v float64
}

// NewPlanner returns a planner for w (a workload of a validated Policy).
func NewPlanner(w Workload) *Planner {
	return &Planner{w: w}
}

// Workload is the policy the planner plans with.
func (p *Planner) Workload() Workload { return p.w }

// SetWorkload swaps in a reloaded policy, keeping the learned state.
func (p *Planner) SetWorkload(w Workload) { p.w = w }

// Plan decides the targets at s.Time. fc is the latest forecast (nil, or
// fcErr set, when the forecaster failed: the plan is then reactive). A
// preview workload's plan has mode preview: computed, not to be acted on.
func (p *Planner) Plan(fc *predict.Forecast, fcErr error, s Signals) (Plan, Explanation) {
	plan, ex := p.decide(fc, fcErr, s)
	p.w.markPreview(&plan)
	return plan, ex
}

// markPreview gives plan the preview mode when w is in preview. The loop
// applies it to whatever plan it serves (the last good one included), so
// a reload that turns preview on takes effect at the next decision.
func (w *Workload) markPreview(plan *Plan) {
	if w.Preview {
		plan.Mode = ModePreview
	}
}

// decide is Plan without the preview mode: the rule that made the plan.
func (p *Planner) decide(fc *predict.Forecast, fcErr error, s Signals) (Plan, Explanation) {
	w := &p.w
	now := s.Time
	elapsed := w.DecisionInterval
	if !p.last.IsZero() && now.After(p.last) {
		elapsed = now.Sub(p.last)
	}
	p.last = now

	mu, muLearned := w.Mu, false
	if w.LearnMu && s.Mu > 0 && !math.IsInf(s.Mu, 0) {
		mu, muLearned = s.Mu, true
	}
	cold := w.coldStart(s)
	horizon := w.Horizon(cold)
	rate := finite(s.Rate)
	backlog := finite(s.Backlog)

	ex := Explanation{Horizon: horizon, Mu: mu, MuLearned: muLearned}
	plan := Plan{Workload: w.Name, Time: now, Mode: ModePredictive, Tiers: map[string]TierTarget{}}

	p.floors(s, mu, cold, &ex)
	p.rates = appendWindow(p.rates, stamped{now, rate}, now, horizon)
	p.burst = appendWindow(p.burst, stamped{now, rate}, now, max(w.BurstWindow, w.DecisionInterval))
	burstPeak := p.burstPeak()
	ex.BurstPeak = burstPeak

	// Predictive need: the forecast quantile of the busiest step within the
	// horizon. Without a forecast: reactive, on the recent peak rate.
	forecastRate, medianRate, calBase, reserveRate := p.forecastRates(fc, fcErr, s, horizon, burstPeak, &ex)
	// Sustained: the lowest live rate of the last cold start.
	sustained := rate
	for _, r := range p.rates {
		if now.Sub(r.t) < cold {
			sustained = math.Min(sustained, r.v)
		}
	}
	p.calib.observe(now, rate, sustained, calBase, horizon, elapsed)
	if math.IsNaN(forecastRate) {
		plan.Mode = ModeReactive
		peak := 0.0
		for _, r := range p.rates {
			peak = math.Max(peak, r.v)
		}
		forecastRate, medianRate = peak/reactiveUtilisation, peak
		if fcErr != nil {
			ex.Forecast = "unavailable: " + fcErr.Error()
		} else {
			ex.Forecast = "unavailable"
		}
	}
	plan.ForecastRate = forecastRate + reserveRate
	ex.PredictiveNeed = ceilDiv(plan.ForecastRate, mu)
	ex.SurgeReserve = ex.PredictiveNeed - ceilDiv(forecastRate, mu)

	need, bound := ex.PredictiveNeed, "forecast"
	if plan.Mode == ModeReactive {
		bound = "reactive"
	}
	for _, f := range []struct {
		n    int
		name string
	}{{ex.CurrentRateFloor, "current-rate"}, {ex.BacklogFloor, "backlog"}, {ex.LatencyFloor, "latency"}, {w.MinReplicas, "min-replicas"}} {
		if f.n > need {
			need, bound = f.n, f.name
		}
	}
	// Active (KEDA's IsActive: whether a workload at zero is woken) when
	// demand is live, or the median forecast expects a request within the
	// horizon. Not the sizing quantile: its band is scaled from the
	// workload's busy hours and never reaches zero, so a workload idle
	// every night would never be let go.
	live := rate > 0 || backlog > 0
	plan.Active = live || medianRate*horizon.Seconds() >= 1
	if plan.Active && need < 1 {
		need, bound = 1, "active"
	}

	// The demand-sized need: what the forecast, the current rate and
	// min_replicas ask for, without the backlog and latency floors, which
	// catch up on a shortfall rather than size for demand. Its highest of
	// the stabilisation window is what the idle hold keeps.
	sized := max(ex.PredictiveNeed, ex.CurrentRateFloor, w.MinReplicas)
	p.sizedWindow = appendWindow(p.sizedWindow, stamped{now, float64(sized)}, now, w.ScaleDown.Stabilization)
	for _, x := range p.sizedWindow {
		sized = max(sized, int(x.v))
	}

	need, bound = p.holdDown(need, bound, sized, rate, backlog, mu, now, &plan)
	if need > w.MaxReplicas {
		need, bound = w.MaxReplicas, "max-replicas"
	}
	p.prevNeed = need
	ex.Need = need
	plan.Bound = bound

	// The base need: what the median forecast and the live signals ask
	// for, stabilised alike. It is the capacity the spot margin protects
	// through an interruption; the forecast headroom above it covers
	// demand's upper tail, and counts towards the margin, since losing a
	// pool and meeting the tail at once is the joint, rarer event.
	base := max(ceilDiv(medianRate, mu), w.MinReplicas)
	p.baseWindow = appendWindow(p.baseWindow, stamped{now, float64(base)}, now, w.ScaleDown.Stabilization)
	for _, x := range p.baseWindow {
		base = max(base, int(x.v))
	}
	base = min(base, need)
	ex.BaseNeed = base

	od, spot := p.split(need, base, cold, s, elapsed, &plan, &ex)
	od, spot, ex.DepartingReplacements = p.keepReady(od, spot, s, &plan)
	ex.LostReplacements = s.OnDemand.Lost
	if w.Tiers.Spot != nil {
		ex.LostReplacements += s.Spot.Lost
		plan.Tiers[TierSpot] = spot
	}
	plan.Tiers[TierOnDemand] = od
	return plan, ex
}

// keepReady adjusts the tiers' targets to the fleet as it is: make before
// break between tiers, the lost replicas' replacements, max_replicas, then
// the departing replicas' replacements within it, which it returns.
func (p *Planner) keepReady(od, spot TierTarget, s Signals, plan *Plan) (_, _ TierTarget, departing int) {
	w := &p.w
	// Make before break: capacity moving between tiers (a new split,
	// fallback, its return) must not remove ready replicas of one tier
	// while the other's are still starting. A tier keeps its ready
	// replicas beyond what the ready fleet has in excess of the plan.
	excess := max(0, s.OnDemand.Ready+s.Spot.Ready-(od.Replicas+spot.Replicas))
	if w.Tiers.Spot != nil {
		drop := min(max(0, s.Spot.Ready-spot.Replicas), excess)
		spot.Replicas = max(spot.Replicas, s.Spot.Ready-drop)
		excess -= drop
	}
	od.Replicas = max(od.Replicas, s.OnDemand.Ready-excess)
	// Lost replicas hold a place in their Deployment that no ReplicaSet
	// fills until they are evicted: each tier asks for that many more.
	od.Replicas += s.OnDemand.Lost
	if w.Tiers.Spot != nil {
		spot.Replicas += s.Spot.Lost
	}
	// Never more than max_replicas in all, taking it off the spot margin
	// first: the cap is the user's budget guard.
	if over := od.Replicas + spot.Replicas - w.MaxReplicas; over > 0 {
		cut := min(over, spot.Replicas)
		spot.Replicas -= cut
		spot.Margin = max(0, spot.Margin-cut)
		od.Replicas -= over - cut
		plan.Bound = "max-replicas"
	}
	// Departing replicas hold their place until their node stops: each
	// tier asks for that many more (make-before-break above kept them as it
	// keeps any ready replica: they still serve), but only within
	// max_replicas — cutting a serving replica elsewhere for a replacement
	// that serves a cold start from now would lose capacity now.
	room := max(0, w.MaxReplicas-od.Replicas-spot.Replicas)
	n := min(s.OnDemand.Departing, s.OnDemand.Live(), room)
	od.Replicas += n
	departing += n
	if w.Tiers.Spot != nil {
		n = min(s.Spot.Departing, s.Spot.Live(), room-n)
		spot.Replicas += n
		departing += n
	}
	return od, spot, departing
}

// floors sets the reactive floors: what the live signals need, whatever
// the forecast.
func (p *Planner) floors(s Signals, mu float64, cold time.Duration, ex *Explanation) {
	w := &p.w
	rate := finite(s.Rate)
	backlog := finite(s.Backlog)
	ex.CurrentRateFloor = ceilDiv(rate, mu)
	// Backlog: every request queued behind a backlog waits too, so the
	// backlog that will be there when replicas launched now are ready
	// (it grows while arrivals outrun the ready fleet) is drained within
	// one decision interval (at least the queue SLO) from then on.
	ready := s.OnDemand.Ready + s.Spot.Ready
	if backlog > 0 {
		// Replicas already starting arrive no later than new ones: the
		// backlog grows only by what the live fleet cannot serve, and what
		// its spare capacity drains within the window needs nothing new.
		liveCap := float64(s.OnDemand.Live()+s.Spot.Live()) * mu
		atReady := backlog + math.Max(0, rate-liveCap)*cold.Seconds()
		drain := math.Max(w.QueueSLO.Seconds(), w.DecisionInterval.Seconds())
		left := math.Max(0, atReady-math.Max(0, liveCap-rate)*drain)
		ex.BacklogFloor = max(ceilDiv(rate, mu), ceilDiv(rate+left/drain, mu))
	}
	if s.Latency > 0 && w.LatencySLO > 0 && s.Latency > w.LatencySLO && ready > 0 {
		ratio := math.Min(2, float64(s.Latency)/float64(w.LatencySLO))
		ex.LatencyFloor = max(ready+1, int(math.Ceil(float64(ready)*ratio)))
	}
}

// forecastRates reads the forecast for the horizon: the rate to size for (NaN
// without a usable forecast), the median forecast, the reference the
// horizon calibration scales, and the surge reserve on top.
func (p *Planner) forecastRates(fc *predict.Forecast, fcErr error, s Signals, horizon time.Duration, burstPeak float64, ex *Explanation) (forecastRate, medianRate, calBase, reserveRate float64) {
	w := &p.w
	forecastRate = math.NaN()
	if fcErr == nil && fc != nil && fc.Len() > 0 && fc.Step > 0 {
		// The horizon runs from now, and the forecast from its origin (the
		// end of the last whole interval, up to a step before now): read
		// the steps that reach now + horizon.
		ahead := horizon
		if !fc.Origin.IsZero() && s.Time.After(fc.Origin) {
			ahead += s.Time.Sub(fc.Origin)
		}
		steps := int(math.Ceil(ahead.Seconds() / fc.Step.Seconds()))
		steps = min(max(steps, 1), fc.Len())
		// The quantile of the busiest step: if the steps' errors were
		// independent, P(all ≤ their q_s quantile) = q_s^steps, so each step
		// is read at q^(1/steps); correlated errors make this conservative.
		qs := math.Min(0.99, math.Pow(w.ForecastQuantile, 1/float64(steps)))
		peak, median := 0.0, 0.0
		for i := 0; i < steps; i++ {
			if v := fc.Quantile(qs, i); !math.IsNaN(v) && !math.IsInf(v, 0) && v > peak {
				peak = v
			}
			if v := fc.P50[i]; !math.IsNaN(v) && !math.IsInf(v, 0) && v > median {
				median = v
			}
		}
		forecastRate = peak / fc.Step.Seconds()
		medianRate = median / fc.Step.Seconds()
		ex.Forecast = fc.Model
		// Once the planner has seen enough of its own horizons, it sizes
		// from how the busiest demand of a horizon really compared with
		// its reference: calibrated on the outcome, not per step. The
		// reference is the larger of the median forecast and the burst
		// window's peak live rate (burstPeak): bursts cluster (a burst in the last
		// hour makes another likelier), which no median forecast carries,
		// so the calibrated ratio is narrower and the sizing follows the
		// workload's recent burstiness instead of its worst week.
		calBase = math.Max(medianRate, burstPeak)
		// Consecutive horizons overlap: one outcome is worth interval /
		// horizon of an independent one in the finite-sample quantile.
		indep := math.Min(1, w.DecisionInterval.Seconds()/horizon.Seconds())
		if r, ok := p.calib.ratio(w.ForecastQuantile, indep); ok && calBase > 0 {
			forecastRate = calBase * r
			ex.Forecast += " (horizon-calibrated)"
			// The quantile counts horizons, not requests: a level shift
			// that outlasts a cold start loses a whole cold start of
			// excess, a spike only its own seconds. The surge reserve
			// tops the sizing up until sustained surges would have cost
			// at most their share of the availability budget.
			if sr, ok := p.calib.surgeRatio(surgeBudgetShare * (1 - w.TargetAvailability)); ok && sr > r {
				reserveRate = calBase * (sr - r)
			}
		}
	}
	return forecastRate, medianRate, calBase, reserveRate
}

// holdDown applies the rules that slow a scale-in: the stabilisation
// window, the HPA's tolerance, the step limit, the idle rule and the idle
// hold. sized is the demand-sized need's highest of the window.
func (p *Planner) holdDown(need int, bound string, sized int, rate, backlog, mu float64, now time.Time, plan *Plan) (int, string) {
	w := &p.w
	// Scale-down stabilisation: never below the highest need of the window,
	// and never more than max_step_ratio of the fleet at once. A scale-in
	// then needs the forecast and the live signal to agree for a whole
	// window: the forecast alone never shrinks the fleet.
	p.window = appendWindow(p.window, stamped{now, float64(need)}, now, w.ScaleDown.Stabilization)
	stable := need
	for _, x := range p.window {
		stable = max(stable, int(x.v))
	}
	if stable > need {
		need, bound = stable, "stabilization"
	}
	// The HPA ignores changes within its tolerance; a scale-in that small
	// would only make the target flap, so it waits until it is worth one.
	if need < p.prevNeed && float64(need) >= float64(p.prevNeed)*(1-*w.Tolerance) {
		need, bound = p.prevNeed, "tolerance"
	}
	if floor := int(math.Ceil(float64(p.prevNeed) * (1 - w.ScaleDown.MaxStepRatio))); need < floor {
		need, bound = floor, "scale-down-rate"
	}
	// A workload that may go to zero and is idle gets no replicas, whatever
	// the band or the stabilisation window would keep: KEDA holds it at
	// zero while IsActive is false, so a target above it would only say
	// what is not run (its cooldownPeriod is the hysteresis). The idle hold
	// below overrides this, and then the workload is active.
	if !plan.Active && w.MinReplicas == 0 && need > 0 {
		need, bound = 0, "idle"
	}
	// Idle hold: demand that stops abruptly (under a twentieth of what the
	// fleet was sized for, with nothing queued) is more likely paused than
	// gone; keep the fleet warm for idle_hold so that its return does not
	// meet a cold start. A decline passes through the stabilisation
	// window's levels and never trips this.
	// What is kept is the demand-sized need of before the pause, not a
	// catch-up: a backlog floor's spike (a spot zone lost under load)
	// followed by a quiet minute would otherwise hold the spike for hours.
	if hold := w.ScaleDown.IdleHold; hold > 0 {
		warm := min(p.prevNeed, sized)
		if backlog == 0 && rate*20 < float64(warm)*mu && warm >= 2 {
			if p.idleSince.IsZero() {
				p.idleSince, p.warmNeed = now, warm
			}
		} else if rate*20 >= float64(p.warmNeed)*mu || backlog > 0 {
			p.idleSince, p.warmNeed = time.Time{}, 0
		}
		if !p.idleSince.IsZero() && now.Sub(p.idleSince) < hold && need < p.warmNeed {
			need, bound = p.warmNeed, "idle-hold"
			plan.Active = true // a pause, not the end: keep it up through KEDA too
		}
	}
	return need, bound
}

// split divides need between on-demand and spot: an on-demand core, a spot
// layer with its interruption margin, and the fallback cover.
func (p *Planner) split(need, base int, cold time.Duration, s Signals, elapsed time.Duration, plan *Plan, ex *Explanation) (od, spot TierTarget) {
	w := &p.w
	st := w.Tiers.Spot
	if st == nil {
		return TierTarget{Replicas: need}, TierTarget{}
	}
	now := s.Time
	window := cold + w.DecisionInterval - st.Notice
	budget := 1 - w.TargetAvailability
	prior := st.PriorRatePerHour()
	domains := max(st.FailureDomains, 1)

	// Learn the market from what this workload's spot replicas went through.
	liveSpot := s.Spot.Live() + s.Spot.Terminating
	p.replica.observe(float64(s.SpotNotices), float64(liveSpot)*elapsed.Hours(), elapsed)
	usedDomains := min(domains, liveSpot)
	p.domain.observe(float64(s.SpotNoticeDomains), float64(usedDomains)*elapsed.Hours(), elapsed)
	wanting := 0.0
	if liveSpot+s.Spot.Pending > 0 {
		wanting = elapsed.Hours()
	}
	wipe := 0.0
	// A wipe-out is the onset of spot being unobtainable; the retries of
	// one episode (fallback returns after the hold) count once.
	if s.Spot.Pending > 0 && (p.lastWipe.IsZero() || now.Sub(p.lastWipe) > 2*w.FallbackHold+w.DecisionInterval) {
		wipe = 1
	}
	if s.Spot.Pending > 0 {
		p.lastWipe = now
	}
	p.wipeout.observe(wipe, wanting, elapsed)

	rate := p.replica.rate(prior, priorHours)
	ex.InterruptionRate = rate
	ex.InterruptionProbability = InterruptionProbability(rate, cold, w.DecisionInterval, st.Notice)
	ex.DomainLossProbability = 1 - math.Exp(-p.domain.rate(prior, priorHours)*float64(domains)*math.Max(0, window.Hours()))
	ex.WipeoutProbability = 1 - math.Exp(-p.wipeout.rate(prior, priorHours)*math.Max(0, window.Hours()))

	// The on-demand core: the configured share of the need. When spot may
	// vanish altogether within the replacement window more often than the
	// availability target allows, no margin covers it: on-demand then
	// carries the base need, and spot only the forecast headroom above it,
	// whose loss costs tail risk, not the expected demand.
	core := int(math.Ceil(w.OnDemandShare * float64(need)))
	ex.SpotCarriesCore = ex.WipeoutProbability <= budget
	if !ex.SpotCarriesCore {
		core = max(core, base)
	}
	n := need - core
	protect := max(0, base-core) // spot replicas that must survive an interruption

	canGrow := p.placeable(s.SpotByDomain, now)
	// The spot layer: the smallest total T ≥ n such that protect of T
	// survive with the target probability (binomial, independent
	// interruptions) and, when losing a failure domain within the window is
	// likelier than the budget, after losing the largest domain.
	total := n
	if ex.SpotCarriesCore && protect > 0 {
		if ex.InterruptionProbability > 0 {
			k, ok := SpotMargin(protect, ex.InterruptionProbability, w.TargetAvailability, protect)
			if !ok {
				core, n, protect, total = max(core, base), need-max(core, base), 0, need-max(core, base)
				ex.SpotCarriesCore = false
			} else {
				total = max(total, protect+k)
			}
		}
		if protect > 0 && ex.DomainLossProbability > budget {
			// While launches land in one domain only (the others have no
			// spot capacity), spot has one failure domain in effect.
			placeable := domains
			if canGrow != nil {
				placeable = 0
				for _, ok := range canGrow {
					if ok {
						placeable++
					}
				}
			}
			if k, ok := DomainMargin(protect, domains); ok && placeable > 1 {
				total = max(total, protect+k)
				// Where replicas really are: launches while a domain was
				// down piled them into the others. New replicas go to the
				// emptiest domains that have capacity (topology spread), so
				// grow there until losing the fullest still leaves the
				// protected ones.
				if t, ok := survivingTotal(s.SpotByDomain, protect, 2*protect+domains, canGrow); ok {
					total = max(total, t)
				}
			} else {
				// One domain, or one that can take replicas: losing it
				// loses all spot, which no margin covers.
				core = max(core, base)
				n, protect, total = need-core, 0, need-core
				ex.SpotCarriesCore = false
			}
		}
	}
	margin := total - n
	// Spot with its margin must still be cheaper than on-demand.
	if n > 0 && float64(total)*st.PricePerHour >= float64(n)*w.Tiers.OnDemand.PricePerHour {
		core, n, margin, total = need, 0, 0, 0
	}
	want := total

	// Fallback: spot replicas that are pending or under notice are missing
	// capacity; it moves to on-demand at once and stays there until spot has
	// been healthy for fallback_hold. Then spot relaunches first and the
	// on-demand cover shrinks only as spot replicas become ready
	// (make-before-break).
	trouble := s.Spot.Pending + s.Spot.Terminating
	if trouble > 0 || s.SpotNotices > 0 {
		p.lastStress = now
	}
	// The surge reserve (within the headroom above the base) gets no
	// cover: insurance against a rare surge is worth spot's price, not
	// on-demand's. The first missing spot replicas are the reserve's.
	reserve := min(ex.SurgeReserve, need-base, want)
	if now.Sub(p.lastStress) < w.FallbackHold {
		p.odCover = min(max(p.odCover, trouble-reserve), want-reserve)
		spot = TierTarget{Replicas: want - p.odCover, Margin: max(0, margin-p.odCover)}
	} else {
		p.odCover = min(p.odCover, max(0, want-s.Spot.Ready))
		spot = TierTarget{Replicas: want, Margin: margin}
	}
	ex.FallbackReplicas = p.odCover
	if p.odCover > 0 {
		plan.Mode = ModeFallback
	}
	od = TierTarget{Replicas: core + p.odCover}
	// The mirror of the fallback: on-demand replicas that cannot be placed
	// (no capacity in the region, a quota) are carried by spot while spot
	// can place replicas. The on-demand target keeps them, so that they
	// start as soon as capacity comes; make-before-break (Plan) then
	// retires the spot cover only as they become ready.
	if short := min(s.OnDemand.Pending, od.Replicas); short > 0 && s.Spot.Pending == 0 {
		spot.Replicas += short
		ex.SpotCoverReplicas = short
	}
	return od, spot
}

// placeable says which failure domains can take a new spot replica, from
// where the latest ones landed: a replica placed in one domain while
// another held at least two fewer says the other had no spot capacity
// then (a topology spread places a new replica in the emptiest domain that
// can take it). Such a domain counts as full until a replica lands there,
// or for fallback_hold (spot capacity comes back). Without it, the zone
// margin grew the total for replicas meant for an emptied zone that all
// landed in the fullest one. nil when the placement is unknown.
func (p *Planner) placeable(byDomain []int, now time.Time) []bool {
	if len(byDomain) < 2 {
		p.prevByDom = p.prevByDom[:0]
		return nil
	}
	if len(p.domFull) != len(byDomain) {
		p.domFull = make([]time.Time, len(byDomain))
	}
	if len(p.prevByDom) == len(byDomain) {
		grew := func(i int) bool { return byDomain[i] > p.prevByDom[i] }
		for i := range byDomain {
			if !grew(i) {
				continue
			}
			p.domFull[i] = time.Time{}
			for j := range byDomain {
				if !grew(j) && byDomain[j] < byDomain[i]-1 {
					p.domFull[j] = now
				}
			}
		}
	}
	p.prevByDom = append(p.prevByDom[:0], byDomain...)
	ok := make([]bool, len(byDomain))
	for i := range ok {
		ok[i] = p.domFull[i].IsZero() || now.Sub(p.domFull[i]) >= p.w.FallbackHold
	}
	return ok
}

// burstQuantile is the quantile of the burst window's live rates taken as
// its peak: the top 2.5 % (a minute and a half of an hour) are left out,
// so that one outlying interval does not hold the sizing up for the
// whole window while a run of bursts still does.
const burstQuantile = 0.975

// burstPeak is the burstQuantile of the live rates in the burst window:
// its k-th largest, k = ⌈(1 − burstQuantile)·n⌉.
func (p *Planner) burstPeak() float64 {
	k := max(1, int(math.Ceil((1-burstQuantile)*float64(len(p.burst))-1e-9)))
	top := p.top[:0] // the k largest so far, descending
	for _, r := range p.burst {
		if len(top) == k && r.v <= top[k-1] {
			continue
		}
		if len(top) < k {
			top = append(top, r.v)
		} else {
			top[k-1] = r.v
		}
		for i := len(top) - 1; i > 0 && top[i] > top[i-1]; i-- {
			top[i], top[i-1] = top[i-1], top[i]
		}
	}
	p.top = top
	if len(top) == 0 {
		return 0
	}
	return top[len(top)-1]
}

func appendWindow(xs []stamped, x stamped, now time.Time, window time.Duration) []stamped {
	xs = append(xs, x)
	i := 0
	for i < len(xs) && now.Sub(xs[i].t) > window {
		i++
	}
	return append(xs[:0], xs[i:]...)
}

// ceilDiv is the replicas that serve rate at mu each.
func ceilDiv(rate, mu float64) int {
	if !(rate > 0) || !(mu > 0) {
		return 0
	}
	// A hair of slack so that 4.0000000001 replicas is 4, not 5.
	return int(math.Ceil(rate/mu - 1e-9))
}

func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0
	}
	return v
}
