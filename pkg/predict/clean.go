package predict

import (
	"fmt"
	"math"
	"time"
)

// cleaner decides, interval by interval, what the models may learn from:
// gaps are filled with the one-step forecast, isolated spikes are clipped
// (dips below the forecast are followed), a run of near-zero demand long
// enough is an outage (the models keep their state and the forecast
// follows the zero), and a run of anomalies that is not an outage is a
// level shift (accepted, and the models re-levelled).
type cleaner struct {
	minRun int // anomalies in a row before a run is a shift or an outage

	run      int
	runStart time.Time
	runEnd   time.Time
	// A run that began below the forecast is a dip: the models follow it
	// as it comes, and it is judged against runFrom, the level before it.
	dip     bool
	runFrom float64
	// zeroRun counts near-zero intervals in a row; outage is set while
	// one lasts (the forecast is zero).
	zeroRun   int
	zeroStart time.Time
	outage    bool
	gapOpen   bool
	// afterTrough counts down the intervals after a recurring trough
	// during which resuming demand is accepted as it is.
	afterTrough int

	events []event
	ver    int // bumped on every change to events
}

type event struct {
	kind       string // gap, spike, outage, level-shift
	start, end time.Time
	n          int
	detail     string
}

const maxEvents = 256

// Event is an anomaly the forecaster detected in the history and discounted.
type Event struct {
	// Kind is gap, spike, dropout (near-zero demand, short), outage
	// (near-zero demand, long) or level-shift.
	Kind       string
	Start, End time.Time // first and last interval of the event
	Intervals  int
	Detail     string // level-shift: the change, e.g. "+35%"
}

// Eventer is implemented by the Online forecasters of this package: the
// anomalies seen so far (the most recent 256).
type Eventer interface {
	Events() []Event
}

func (o *online) Events() []Event {
	out := make([]Event, len(o.clean.events))
	for i, e := range o.clean.events {
		out[i] = Event{Kind: e.kind, Start: e.start, End: e.end, Intervals: e.n, Detail: e.detail}
	}
	return out
}

func (c *cleaner) add(e event) {
	c.ver++
	if len(c.events) == maxEvents {
		copy(c.events, c.events[1:])
		c.events = c.events[:maxEvents-1]
	}
	c.events = append(c.events, e)
}

// extend grows the newest event of kind if it is still open, else starts one.
func (c *cleaner) extend(kind string, t time.Time, open bool) {
	c.ver++
	if open && len(c.events) > 0 && c.events[len(c.events)-1].kind == kind {
		e := &c.events[len(c.events)-1]
		e.end, e.n = t, e.n+1
		return
	}
	c.add(event{kind: kind, start: t, end: t, n: 1})
}

// nearZero reports whether count x is near-zero demand where much was
// expected: at least 10 requests a Poisson source would almost never miss.
// The slow level is the yardstick too: a persistence model follows a fast
// ramp down to zero and would no longer expect anything.
func nearZero(x, ref, level float64) bool {
	expected := math.Max(ref, level)
	return !math.IsNaN(x) && expected >= 10 && x <= 0.02*expected
}

// next returns the value the models should see for interval t with count x,
// given the one-step forecast ref, the typical one-step absolute error and
// the slow level; score says whether forecasts may be scored against x, and
// shift is a level change the models must take on now (0 if none).
// zero is nearZero(x, ref, level), computed once by the caller; recurring
// says whether near-zero demand now repeats near-zero demand of one known
// cycle earlier: a trough of the cycle, not an outage.
func (c *cleaner) next(t time.Time, x, ref, absErr, level float64, zero bool, recurring func() bool) (v float64, score bool, shift float64) {
	if math.IsNaN(x) {
		c.extend("gap", t, c.gapOpen)
		c.gapOpen = true
		if math.IsNaN(ref) {
			return 0, false, 0
		}
		return ref, false, 0
	}
	c.gapOpen = false
	if math.IsNaN(ref) || absErr == 0 {
		return x, true, 0
	}
	sigma := 1.25 * absErr
	d := x - ref
	// Near-zero demand where much was expected is an outage, or a broken
	// source, from its first interval: the forecast follows it at once,
	// the models keep their state, and nothing is scored against it —
	// unless the cycle had it one period ago too (a workload idle every
	// night): that is demand, and the models must learn it to forecast
	// the end of the trough.
	if zero {
		c.run = 0
		if recurring() {
			c.zeroRun, c.outage = 0, false
			c.afterTrough = c.minRun
			return x, true, 0
		}
		if c.zeroRun == 0 {
			c.zeroStart = t
		}
		c.zeroRun++
		c.outage = true
		switch {
		case c.zeroRun == c.minRun:
			c.add(event{kind: "outage", start: c.zeroStart, end: t, n: c.zeroRun})
		case c.zeroRun > c.minRun:
			c.extend("outage", t, true)
		}
		return ref, false, 0
	}
	if c.zeroRun > 0 && c.zeroRun < c.minRun {
		c.add(event{kind: "dropout", start: c.zeroStart, end: t, n: c.zeroRun})
	}
	c.zeroRun, c.outage = 0, false
	if c.afterTrough > 0 {
		// Demand resuming after a trough of the cycle is the cycle too,
		// however abrupt (a batch workload that starts at 06:00): taken
		// as it comes, not held as a spike or a level shift.
		c.afterTrough--
		c.run = 0
		return x, true, 0
	}
	dev := d
	if c.run > 0 && c.dip {
		dev = x - c.runFrom // the models followed the dip: judge it against the level before it
	}
	if math.Abs(dev) <= math.Max(6*sigma, 0.05*math.Max(level, ref)) {
		if c.run > 0 {
			c.add(event{kind: "spike", start: c.runStart, end: c.runEnd, n: c.run})
		}
		c.run = 0
		return x, true, 0
	}
	if c.run == 0 {
		c.runStart, c.runFrom, c.dip = t, ref, d < 0
	}
	c.run++
	c.runEnd = t
	if c.run < c.minRun {
		if c.dip {
			// A dip is taken as it comes: held at the old level, the
			// forecast would only keep capacity the demand no longer
			// needs (a planner's scale-down stabilisation is the
			// hysteresis against short dips), for up to minRun.
			return x, true, 0
		}
		// Hold the models still until the run is long enough to tell a
		// spike from a new level: a burst is the live floors' to serve,
		// not the level's to learn.
		return ref, true, 0
	}
	// Anomalies long enough in a row are a new level: take it on as it is
	// now (the run itself may have been a ramp).
	c.add(event{kind: "level-shift", start: c.runStart, end: t, n: c.run,
		detail: fmt.Sprintf("%+.0f%%", 100*(x-c.runFrom)/math.Max(math.Abs(c.runFrom), 1e-9))})
	c.run = 0
	if c.dip {
		return x, true, 0 // the models are there already
	}
	return x, true, d
}

// warnings describes the events that ended within window before now.
func (c *cleaner) warnings(now time.Time, window time.Duration) []string {
	var out []string
	from := now.Add(-window)
	for i, e := range c.events {
		if e.end.Before(from) {
			continue
		}
		span := fmt.Sprintf("%s to %s", e.start.UTC().Format(time.RFC3339), e.end.UTC().Format(time.RFC3339))
		switch e.kind {
		case "gap":
			out = append(out, fmt.Sprintf("gap: %d intervals without data, %s, filled from the model", e.n, span))
		case "spike":
			out = append(out, fmt.Sprintf("spike: %d anomalous intervals, %s, clipped before fitting", e.n, span))
		case "dropout":
			out = append(out, fmt.Sprintf("dropout: %d intervals of near-zero demand, %s, excluded from fitting", e.n, span))
		case "outage":
			state := "ended"
			if c.outage && i == len(c.events)-1 {
				state = "in progress, forecasting zero"
			}
			out = append(out, fmt.Sprintf("outage: zero demand, %s (%s), excluded from fitting", span, state))
		case "level-shift":
			out = append(out, fmt.Sprintf("level shift: demand moved %s from %s, models re-levelled",
				e.detail, e.start.UTC().Format(time.RFC3339)))
		}
	}
	return out
}

// shifter is a model whose level can be moved at once after a level shift.
type shifter interface{ shift(d float64) }

func (m *lastValue) shift(d float64)   { m.x += d }
func (m *ewLevel) shift(d float64)     { m.level += d }
func (m *holtWinters) shift(d float64) { m.level += d }
func (m *spectral) shift(d float64)    { m.resid += d }

// troughRecurs reports whether the near-zero demand of the interval being
// observed repeats near-zero demand one cycle earlier — a day, a week, or
// the spectral model's main cycle if it swings to zero (±1 interval: its
// period is not a whole number of steps) — before the current stretch of
// near-zero demand began: a stretch cannot confirm itself, so an outage
// longer than a cycle stays an outage. Only cycles that can empty the
// series count: every fitted cycle would find, in a bursty series with
// pauses, some earlier pause at one of its periods.
//
// The first time a stretch is confirmed, the earlier stretch (taken for an
// outage then, the models fed their own forecasts) and this one so far are
// written into the history as the zeros they were, so that the seasonal
// models forecast the rest of this trough, and its end, from the last one.
func (o *online) troughRecurs() bool {
	if o.troughOK {
		return true
	}
	// The shortest cycle first: its last trough is the most recent.
	type lag struct{ from, to int } // intervals back
	var lags [3]lag
	if p := o.spec.mainPeriod(); p > 0 {
		lags[0] = lag{int(math.Floor(p)), int(math.Ceil(p))}
	}
	lags[1], lags[2] = lag{o.day, o.day}, lag{o.week, o.week}
	for _, l := range lags {
		for k := max(l.from, 1); k <= l.to; k++ {
			// zeros.at(k-1) is the interval k steps before this one.
			if k-1 >= o.zeroSince && o.zeros.at(k-1) {
				o.troughOK, o.troughLag = true, k
				o.zeroHistory(k - 1)
				return true
			}
		}
	}
	return false
}

// zeroHistory sets to 0 the cleaned history of the intervals taken for an
// outage (the models were fed their own forecast) in the stretch of
// near-zero intervals around k (intervals before the newest) and in the
// current stretch: they were troughs. The rest keep the counts they had.
func (o *online) zeroHistory(k int) {
	unheld := func(j int) {
		if o.heldZeros.at(j) {
			o.hist.set(j, 0)
		}
	}
	for j := k; j < o.hist.len() && o.zeros.at(j); j++ {
		unheld(j)
	}
	for j := k - 1; j >= 0 && o.zeros.at(j); j-- {
		unheld(j)
	}
	for j := range o.zeroSince {
		unheld(j)
	}
}

// bitRing is a ring of flags; at(k) is the flag k pushes before the newest.
type bitRing struct {
	words []uint64
	size  int
	n     int
}

func newBitRing(size int) bitRing {
	return bitRing{words: make([]uint64, (size+63)/64), size: size}
}

func (r *bitRing) push(b bool) {
	if r.size == 0 {
		return
	}
	i := r.n % r.size
	if b {
		r.words[i/64] |= 1 << (i % 64)
	} else {
		r.words[i/64] &^= 1 << (i % 64)
	}
	r.n++
}

// at is false for flags not held.
func (r *bitRing) at(k int) bool {
	if k < 0 || k >= min(r.n, r.size) {
		return false
	}
	i := (r.n - 1 - k) % r.size
	return r.words[i/64]&(1<<(i%64)) != 0
}
