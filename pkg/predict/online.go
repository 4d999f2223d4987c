package predict

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// Options tunes an Online forecaster. The zero value gives the defaults.
type Options struct {
	// MaxHorizon is the longest horizon (in steps) whose errors are tracked
	// for selection and intervals; longer forecasts reuse its intervals.
	// Default: one hour of steps, at least 4.
	MaxHorizon int
	// ErrorWindow is how many recent errors per model and horizon make the
	// conformal intervals. Default 2048 (capped at 7 days of steps).
	ErrorWindow int
	// History is how much cleaned history is kept (seasonal naive and the
	// spectral refit read it). Default 15 days.
	History time.Duration
	// SelectionHalfLife is the half-life of the decayed backtest loss that
	// selects the model. Default 12h: demand regimes (servegen's daily
	// level shifts) change within days, and minute series give thousands of
	// scored forecasts in 12 hours.
	SelectionHalfLife time.Duration
	// Reselect is how often (in observed time) the model is re-selected and
	// the spectral model re-fit. Default 24h.
	Reselect time.Duration
	// Recalibrate is how often (in observed time) the interval quantiles are
	// recomputed from the error windows. Default 1h.
	Recalibrate time.Duration
	// UnderWeight is the cost of under-forecasting one request relative to
	// over-forecasting one (the selection loss). Default 2.
	UnderWeight float64
	// Models restricts the candidate models by name (default: all; see
	// ModelNames, and Validate for unknown names). Names:
	// last-value, ew-level-{fast,mid,slow}, seasonal-naive-{day,week},
	// holt-winters-slow (daily), holt-winters-weekly
	// (daily and weekly), spectral, ensemble (mean of ew-level-slow,
	// holt-winters-slow and spectral).
	Models []string
}

// ModelNames lists the candidate model names Options.Models accepts.
var ModelNames = []string{
	"last-value", "ew-level-fast", "ew-level-mid", "ew-level-slow",
	"seasonal-naive-day", "seasonal-naive-week",
	"holt-winters-slow", "holt-winters-weekly",
	"spectral", "ensemble",
}

// Validate reports options that NewOnline would otherwise quietly replace
// by defaults or ignore: negative values and unknown model names. Call it
// where options come from configuration.
func (o Options) Validate() error {
	var errs []error
	for _, v := range []struct {
		name string
		bad  bool
	}{
		{"MaxHorizon", o.MaxHorizon < 0}, {"ErrorWindow", o.ErrorWindow < 0},
		{"History", o.History < 0}, {"SelectionHalfLife", o.SelectionHalfLife < 0},
		{"Reselect", o.Reselect < 0}, {"Recalibrate", o.Recalibrate < 0},
		{"UnderWeight", o.UnderWeight < 0 || math.IsNaN(o.UnderWeight)},
	} {
		if v.bad {
			errs = append(errs, fmt.Errorf("predict: option %s is negative", v.name))
		}
	}
	for _, m := range o.Models {
		if !slices.Contains(ModelNames, m) {
			errs = append(errs, fmt.Errorf("predict: unknown model %q (known: %s)", m, strings.Join(ModelNames, ", ")))
		}
	}
	return errors.Join(errs...)
}

func (o Options) withDefaults(step time.Duration) Options {
	if o.MaxHorizon <= 0 {
		o.MaxHorizon = max(4, int(time.Hour/step))
	}
	if o.ErrorWindow <= 0 {
		o.ErrorWindow = 2048
		if week := int(7 * 24 * time.Hour / step); week > 64 && o.ErrorWindow > week {
			o.ErrorWindow = week
		}
	}
	if o.History <= 0 {
		o.History = 15 * 24 * time.Hour
	}
	if o.SelectionHalfLife <= 0 {
		o.SelectionHalfLife = 12 * time.Hour
	}
	if o.Reselect <= 0 {
		o.Reselect = 24 * time.Hour
	}
	if o.Recalibrate <= 0 {
		o.Recalibrate = time.Hour
	}
	if o.UnderWeight <= 0 {
		o.UnderWeight = 2
	}
	return o
}

// online is the Online implementation: a set of incremental models fed the
// cleaned series, each scored on every interval at a grid of horizons
// (a rolling-origin backtest that never stops), the best selected on a
// schedule, and intervals from each model's own recent errors (conformal).
type online struct {
	step time.Duration
	opts Options

	models  []model
	members [][]int // per model: indexes of an ensemble's members, or nil
	refit   []refitter
	hist    *ring
	// zeros marks, interval by interval alongside hist, near-zero demand
	// where much was expected (before cleaning); zeroSince counts such
	// intervals in a row up to the newest. With the cycles known (day,
	// week, the spectral model's), they tell a trough from an outage.
	zeros     bitRing
	heldZeros bitRing // near-zero intervals taken for an outage: the models were held
	zeroSince int
	troughOK  bool // the current stretch repeats one a cycle earlier
	troughLag int  // that cycle, in intervals
	spec      *spectral
	day, week int
	grid      []int // tracked horizons, ascending, last == MaxHorizon
	nm, ng    int
	n         int // intervals observed
	last      time.Time
	started   bool
	reselect  int // steps between re-selections and refits
	recal     int // steps between interval recalibrations
	decay     float64

	// pend[(origin%(H+1))*nm*ng + m*ng + g] is the forecast model m made
	// after observing interval origin for interval origin+grid[g].
	pend []float64
	// errs[(m*ng+g)*W + i] are scaled errors (actual-forecast)/scale.
	errs    []float32
	errN    []int // errors ever written per (m,g)
	errPos  []int // next slot per (m,g)
	loss    []float64
	weight  []float64
	quant   [][3]float64 // cached (q50,q90,q99) of scaled errors per (m,g)
	quantAt []int        // n at which quant was computed, -1 never
	quantN  []int        // errors in the window when quant was computed
	scratch []float64

	chosen   []int // steps (capped at MaxHorizon) -> model index, -1 unset
	chosenAt int

	// Scale of the data (slow EW level) and of one-step errors, for
	// anomaly detection and the floor of the error scale.
	level    float64
	absErr   float64
	recent   [15]float64 // the last one-step absolute errors, a ring
	recentN  int
	clean    cleaner
	lastSeen float64

	// Warnings are formatted only when the events change (or hourly, as
	// old ones age out), not on every Forecast.
	warn       []string
	warnVer    int
	warnAt     int
	warnOutage bool
}

// NewOnline returns an Online forecaster for intervals of step. It panics if
// step is not positive (a programming error, not bad data).
func NewOnline(step time.Duration, opts Options) Online {
	if step <= 0 {
		panic("predict: NewOnline: step must be positive")
	}
	o := &online{step: step, opts: opts.withDefaults(step)}
	o.init()
	return o
}

func (o *online) init() {
	opts := o.opts
	histLen := max(int(opts.History/o.step), 4*opts.MaxHorizon)
	o.hist = newRing(histLen)
	day, week := seasons(o.step)
	if week > histLen {
		week = 0
	}
	o.zeros, o.heldZeros = newBitRing(histLen), newBitRing(histLen)
	o.day, o.week = day, week
	var all []model
	all = append(all, &lastValue{})
	all = append(all,
		&ewLevel{label: "ew-level-fast", alpha: 0.4},
		&ewLevel{label: "ew-level-mid", alpha: 0.15},
		&ewLevel{label: "ew-level-slow", alpha: 0.05})
	if day > 0 {
		all = append(all, &seasonalNaive{label: "seasonal-naive-day", period: day, hist: o.hist})
		if week > 0 {
			all = append(all, &seasonalNaive{label: "seasonal-naive-week", period: week, hist: o.hist})
		}
		for _, v := range []struct {
			label string
			alpha float64
		}{{"holt-winters-slow", 0.05}} {
			all = append(all, newHoltWinters(v.label, v.alpha, day, 0))
		}
		if week > 0 {
			all = append(all, newHoltWinters("holt-winters-weekly", 0.05, day, week))
		}
	}
	season := day
	o.spec = &spectral{k: 12, minPeriod: max(4, int(30*time.Minute/o.step)), window: histLen,
		season: season, alpha: 0.15, span: max(1, int(opts.Reselect/o.step)) + opts.MaxHorizon + 2}
	all = append(all, o.spec)
	byName := map[string]model{}
	for _, m := range all {
		byName[m.name()] = m
	}
	if hw, sp := byName["holt-winters-slow"], byName["spectral"]; hw != nil && sp != nil {
		all = append(all, &ensemble{label: "ensemble", members: []model{byName["ew-level-slow"], hw, sp}})
	}
	for _, m := range all {
		if len(opts.Models) > 0 && !slices.Contains(opts.Models, m.name()) {
			continue
		}
		o.models = append(o.models, m)
		if r, ok := m.(refitter); ok {
			o.refit = append(o.refit, r)
		}
	}
	// Members of an ensemble that are not candidates of their own still
	// need feeding (and refitting). When all are candidates (placed before
	// the ensemble), the ensemble's scored forecasts are averaged from
	// theirs instead of asked for again.
	o.members = make([][]int, len(o.models))
	for k, m := range o.models {
		if e, ok := m.(*ensemble); ok {
			var idx []int
			for _, mm := range e.members {
				if j := slices.Index(o.models, mm); j >= 0 && j < k {
					idx = append(idx, j)
				}
			}
			if len(idx) == len(e.members) {
				o.members[k] = idx
			}
		}
	}
	for _, m := range o.models {
		e, ok := m.(*ensemble)
		if !ok {
			continue
		}
		for _, mm := range e.members {
			if !slices.Contains(o.models, mm) {
				e.feed = append(e.feed, mm)
				if r, ok := mm.(refitter); ok {
					o.refit = append(o.refit, r)
				}
			}
		}
	}
	if len(o.models) == 0 {
		o.models = []model{&lastValue{}}
	}
	h := opts.MaxHorizon
	for g := 1; g < h; g = max(g+1, int(math.Round(float64(g)*2))) {
		o.grid = append(o.grid, g)
	}
	o.grid = append(o.grid, h)
	o.nm, o.ng = len(o.models), len(o.grid)
	o.pend = make([]float64, (h+1)*o.nm*o.ng)
	for i := range o.pend {
		o.pend[i] = math.NaN()
	}
	w := opts.ErrorWindow
	o.errs = make([]float32, o.nm*o.ng*w)
	o.errN = make([]int, o.nm*o.ng)
	o.errPos = make([]int, o.nm*o.ng)
	o.loss = make([]float64, o.nm*o.ng)
	o.weight = make([]float64, o.nm*o.ng)
	o.quant = make([][3]float64, o.nm*o.ng)
	o.quantAt = make([]int, o.nm*o.ng)
	o.quantN = make([]int, o.nm*o.ng)
	for i := range o.quantAt {
		o.quantAt[i] = -1
	}
	o.scratch = make([]float64, 0, w)
	o.reselect = max(1, int(opts.Reselect/o.step))
	o.recal = max(1, int(opts.Recalibrate/o.step))
	o.decay = math.Exp(-math.Ln2 * float64(o.step) / float64(opts.SelectionHalfLife))
	o.chosen = make([]int, opts.MaxHorizon+1)
	for i := range o.chosen {
		o.chosen[i] = -1
	}
	o.clean = cleaner{minRun: max(3, int(15*time.Minute/o.step))}
}

// seasons returns the day and week lengths in steps, 0 when step does not
// divide them or a season would be under 4 steps.
func seasons(step time.Duration) (day, week int) {
	const d = 24 * time.Hour
	if step > d/4 || d%step != 0 {
		return 0, 0
	}
	return int(d / step), int(7 * d / step)
}

func (o *online) Observe(t time.Time, count float64) {
	if o.started && !t.Equal(o.last.Add(o.step)) {
		// Fill skipped intervals as gaps so phases stay aligned; ignore
		// intervals that go back in time (already observed).
		if t.Before(o.last.Add(o.step)) {
			return
		}
		for u := o.last.Add(o.step); u.Before(t); u = u.Add(o.step) {
			o.observe(u, math.NaN())
		}
	}
	o.observe(t, count)
}

func (o *online) observe(t time.Time, x float64) {
	o.started, o.last = true, t
	if o.n == 0 && math.IsNaN(x) {
		// No data before the workload existed (or before the store
		// started): nothing to learn, and nothing to fill a gap from. The
		// models' phases are relative to their first value, so skipping
		// loses nothing.
		return
	}
	H := o.opts.MaxHorizon
	// The reference one-step forecast: what the selected model said.
	ref := math.NaN()
	if o.n > 0 {
		ref = o.pendAt(o.n-1, o.selected(1), 0)
		if math.IsNaN(ref) {
			ref = o.lastSeen
		}
	}
	zero := nearZero(x, ref, o.level)
	v, score, shift := o.clean.next(t, x, ref, o.absErr, o.level, zero, o.troughRecurs)
	if zero {
		o.zeros.push(true)
		o.heldZeros.push(!score) // the models saw their own forecast
		o.zeroSince++
	} else {
		o.zeros.push(false)
		o.heldZeros.push(false)
		o.zeroSince, o.troughOK = 0, false
	}
	if shift != 0 {
		for _, m := range o.models {
			if s, ok := m.(shifter); ok {
				s.shift(shift)
			}
		}
	}

	// Score the forecasts that targeted this interval.
	if score {
		o.score(x)
	}
	if !math.IsNaN(x) && score {
		// A trough of the cycle forecast as zero says nothing of the
		// noise when demand is there: it would shrink the error scale to
		// nothing and make every morning a spike.
		if !math.IsNaN(ref) && !o.troughOK {
			e := math.Abs(x - ref)
			// During an anomaly (a spike held back, a dip followed) the
			// error is the anomaly itself, not the noise a young
			// forecaster's band is made of.
			if o.clean.run == 0 {
				o.recent[o.recentN%len(o.recent)] = e
				o.recentN++
			}
			if o.absErr == 0 {
				o.absErr = e
			}
			// Clip what one interval can add, so one spike does not
			// blind the detector.
			if o.absErr > 0 {
				e = min(e, 4*o.absErr)
			}
			o.absErr += 0.02 * (e - o.absErr)
		}
		if o.n == 0 {
			o.level = x
		}
		o.level += 0.01 * (x - o.level)
		o.lastSeen = x
	}

	// Feed the cleaned value.
	o.hist.push(v)
	for _, m := range o.models {
		m.observe(v)
	}
	o.n++
	if o.n%o.reselect == 0 {
		for _, r := range o.refit {
			r.refit(o.hist)
		}
		o.chosenAt = -o.reselect // re-select at the next use
	}
	// Forecasts from this origin, for scoring later.
	base := ((o.n - 1) % (H + 1)) * o.nm * o.ng
	for m, mod := range o.models {
		row := o.pend[base+m*o.ng : base+(m+1)*o.ng]
		if idx := o.members[m]; idx != nil {
			// An ensemble of candidates: average their forecasts just made.
			for g := range row {
				var sum float64
				for _, j := range idx {
					sum += o.pend[base+j*o.ng+g]
				}
				row[g] = sum / float64(len(idx)) // NaN if any member is
			}
			continue
		}
		for g, h := range o.grid {
			row[g] = mod.predict(h)
		}
	}
}

func (o *online) pendAt(origin, m, g int) float64 {
	H := o.opts.MaxHorizon
	return o.pend[(origin%(H+1))*o.nm*o.ng+m*o.ng+g]
}

// scale is the unit of scaled errors for a forecast p: errors grow with the
// level, so intervals are relative, with a floor so that near-zero forecasts
// still get a width.
func (o *online) scale(p float64) float64 {
	floor := 0.05 * o.level
	if floor < 1 {
		floor = 1
	}
	if p < 0 {
		p = -p
	}
	if p < floor {
		return floor
	}
	return p
}

// score records, for every model and tracked horizon, the error of the
// forecast that targeted this interval (actual x): the scaled error for the
// intervals and the asymmetric loss for the selection. It is the hot loop of
// Observe, so it is written out flat.
func (o *online) score(x float64) {
	H := o.opts.MaxHorizon
	w := o.opts.ErrorWindow
	under, decay := o.opts.UnderWeight, o.decay
	floor := max(1, 0.05*o.level)
	for g, h := range o.grid {
		origin := o.n - h
		if origin < 0 {
			break
		}
		base := (origin % (H + 1)) * o.nm * o.ng
		for m := range o.nm {
			i := m*o.ng + g
			p := o.pend[base+i]
			if p != p { // NaN: the model could not forecast then
				continue
			}
			e := x - p
			sc := p
			if sc < 0 {
				sc = -sc
			}
			if sc < floor {
				sc = floor
			}
			pos := o.errPos[i]
			o.errs[i*w+pos] = float32(e / sc)
			if pos++; pos == w {
				pos = 0
			}
			o.errPos[i] = pos
			o.errN[i]++
			l := e
			if l < 0 {
				l = -l
			} else {
				l *= under
			}
			o.loss[i] = decay*o.loss[i] + l
			o.weight[i] = decay*o.weight[i] + 1
		}
	}
}

// selected returns the model with the lowest decayed loss over the tracked
// horizons up to steps, re-deciding once per Reselect.
func (o *online) selected(steps int) int {
	steps = min(steps, o.opts.MaxHorizon)
	if o.n-o.chosenAt >= o.reselect {
		for i := range o.chosen {
			o.chosen[i] = -1
		}
		o.chosenAt = o.n - o.n%o.reselect
	}
	if m := o.chosen[steps]; m >= 0 {
		return m
	}
	best, bestScore := -1, math.Inf(1)
	var maxW float64
	for i := range o.weight {
		maxW = math.Max(maxW, o.weight[i])
	}
	for m := range o.models {
		score, ok := 0.0, true
		for g, h := range o.grid {
			if g > 0 && h > steps {
				break
			}
			i := m*o.ng + g
			// A model scored on much less of the window (a seasonal model
			// still warming up) is not comparable yet.
			if o.weight[i] < 0.8*maxW || o.weight[i] == 0 {
				ok = false
				break
			}
			score += o.loss[i] / o.weight[i]
		}
		if ok && score < bestScore {
			best, bestScore = m, score
		}
	}
	if best < 0 {
		best = 0
	}
	o.chosen[steps] = best
	return best
}

// quantiles returns the cached (q50, q90, q99) of model m's scaled errors at
// grid horizon g, recomputing when older than Recalibrate.
func (o *online) quantiles(m, g int) ([3]float64, bool) {
	i := m*o.ng + g
	n := min(o.errN[i], o.opts.ErrorWindow)
	if n < 20 {
		return [3]float64{}, false
	}
	// Recompute once per Recalibrate, and sooner while the window is
	// young: quantiles from the first twenty errors (a level shift among
	// them) must not stand for an hour of one-second steps.
	if o.quantAt[i] >= 0 && o.n-o.quantAt[i] < o.recal && 4*n < 5*o.quantN[i] {
		return o.quant[i], true
	}
	w := o.opts.ErrorWindow
	s := o.scratch[:0]
	for _, e := range o.errs[i*w : i*w+n] {
		s = append(s, float64(e))
	}
	o.scratch = s
	q := selectQuantiles(s)
	// Errors at horizon h overlap: consecutive ones share h-1 steps, so
	// one event — a level shift, demand starting or stopping — puts about
	// h of them in the window at once. Counted as independent samples,
	// n errors at horizon h are n/h (the divisor capped so that a full
	// window still counts as a hundred).
	overlap := min(o.grid[g], max(1, w/minTailErrors))
	indep := n / overlap
	if indep < minSpreadErrors {
		// Too few for the 90th percentile not to be that one event: it
		// is taken without the largest errors one event would leave.
		k := min(overlap, n/4)
		q[1] = math.Max(q[0], selectQuantile(s, 0.9*float64(n-k-1)/float64(n-1)))
	}
	if indep < minTailErrors {
		// The 99th percentile of fewer than a hundred is their largest,
		// often one event: until there are enough, take the tail from
		// the 50-90 spread with a Gaussian's ratio.
		q[2] = math.Max(q[1], q[0]+(q[1]-q[0])*2.3263/1.2816)
	}
	o.quant[i], o.quantAt[i], o.quantN[i] = q, o.n, n
	return q, true
}

// minTailErrors is how many independent scored errors the empirical 99th
// percentile needs before it is used, minSpreadErrors the 90th.
const (
	minTailErrors   = 100
	minSpreadErrors = 20
)

// ErrNoHistory is returned by Forecast before any interval was observed.
var ErrNoHistory = errors.New("predict: no history observed yet")

func (o *online) Forecast(steps int) (Forecast, error) {
	if o.n == 0 {
		return Forecast{}, ErrNoHistory
	}
	if steps <= 0 {
		return Forecast{}, fmt.Errorf("predict: forecast of %d steps", steps)
	}
	m := o.selected(steps)
	mod := o.models[m]
	f := Forecast{
		Origin: o.last.Add(o.step),
		Step:   o.step,
		P50:    make([]float64, steps),
		P90:    make([]float64, steps),
		P99:    make([]float64, steps),
		Model:  mod.name(),
	}
	calibrated := true
	medErr := math.NaN() // computed once, when a step is uncalibrated
	for h := 1; h <= steps; h++ {
		p := mod.predict(h)
		if math.IsNaN(p) {
			p = o.lastSeen
		}
		q, ok := o.quantAtHorizon(m, h)
		if !ok {
			calibrated = false
			// Before errors exist: a random walk's spread, from the
			// recent one-step errors and never less than a Poisson
			// count's sqrt(p) (requests per interval are counts).
			if math.IsNaN(medErr) {
				medErr = o.recentMedianError()
			}
			sd := math.Max(1.4826*medErr, math.Sqrt(math.Max(p, 0))) * math.Sqrt(float64(h)) / o.scale(p)
			q = [3]float64{0, 1.2816 * sd, 2.3263 * sd}
		}
		if o.clean.outage {
			p, q = 0, [3]float64{}
		}
		// In a trough of the cycle only the cycle knows when demand comes
		// back (a level model would say zero forever): the steps follow
		// the last cycle's demand, without a band while it was near zero
		// (the few requests of its edges count: they wake the workload).
		if o.troughOK && h <= o.troughLag {
			p = o.hist.at(o.troughLag - h)
			if o.zeros.at(o.troughLag - h) {
				q = [3]float64{}
			}
		}
		s := o.scale(p)
		p50 := math.Max(0, p+s*q[0])
		p90 := math.Max(p50, p+s*q[1])
		p99 := math.Max(p90, p+s*q[2])
		f.P50[h-1], f.P90[h-1], f.P99[h-1] = p50, p90, p99
	}
	if !calibrated {
		f.Warnings = append(f.Warnings, "intervals not yet calibrated: too few scored forecasts")
	}
	if o.troughOK {
		f.Model += " (in a trough: as " + (time.Duration(o.troughLag) * o.step).String() + " ago)"
	}
	if o.warnAt == 0 || o.warnVer != o.clean.ver || o.warnOutage != o.clean.outage || o.n-o.warnAt >= o.recal {
		o.warn = o.clean.warnings(o.last, 7*24*time.Hour)
		o.warnVer, o.warnAt, o.warnOutage = o.clean.ver, o.n, o.clean.outage
	}
	f.Warnings = append(f.Warnings, o.warn...)
	return f, nil
}

// recentMedianError is the lower median of the last one-step absolute
// errors: robust, so one level shift in a short history does not hold the
// uncalibrated band wide until it ages out of a slow average (absErr).
func (o *online) recentMedianError() float64 {
	n := min(o.recentN, len(o.recent))
	if n == 0 {
		return 0
	}
	s := o.recent // a copy: the ring keeps its order
	slices.Sort(s[:n])
	return s[(n-1)/2] // the lower median: one outlier of two does not count
}

// quantAtHorizon interpolates the error quantiles between grid horizons.
func (o *online) quantAtHorizon(m, h int) ([3]float64, bool) {
	g := 0
	for g < o.ng-1 && o.grid[g+1] <= h {
		g++
	}
	lo, ok := o.quantiles(m, g)
	if !ok || g == o.ng-1 || o.grid[g] == h {
		return lo, ok
	}
	hi, ok := o.quantiles(m, g+1)
	if !ok {
		return lo, true
	}
	w := float64(h-o.grid[g]) / float64(o.grid[g+1]-o.grid[g])
	var q [3]float64
	for i := range q {
		q[i] = lo[i]*(1-w) + hi[i]*w
	}
	return q, true
}
