package predict

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Row is one horizon-ahead forecast of a backtest, with the baselines for the
// same target interval: the target is the interval
// [Target, Target+Step), forecast at Origin from intervals ending at or
// before Origin.
type Row struct {
	Origin, Target time.Time
	Actual         float64
	P50, P90, P99  float64
	Model          string
	// Baselines, from the raw series.
	LastValue, NaiveDay, NaiveWeek float64
}

// BacktestConfig says which forecasts a backtest makes.
type BacktestConfig struct {
	// Horizon is how far ahead the scored interval ends: the row is the
	// forecast of the interval [Origin+Horizon-Step, Origin+Horizon).
	Horizon time.Duration
	// Every is the time between origins (a multiple of the step; default
	// one step).
	Every time.Duration
	// Warmup is the history seen before the first origin; 0 is none: the
	// first origin is then the end of the first interval (the last value
	// baseline needs one). DefaultWarmup is what adapter forecast uses.
	Warmup  time.Duration
	Options Options
}

// DefaultWarmup is a week: the weekly seasonal naive baseline then exists
// on every row.
const DefaultWarmup = 7 * 24 * time.Hour

// ErrTraceTooShort is the error (wrapped) of a backtest whose trace ends
// before its first target: the warm-up and the horizon are longer.
var ErrTraceTooShort = errors.New("trace too short")

// Baseline names a baseline forecast a backtest scores against.
type Baseline string

// The baselines, from the raw series: the last interval, and the same
// interval a day and a week before the target.
const (
	LastValue Baseline = "last value"
	NaiveDay  Baseline = "seasonal naive (day)"
	NaiveWeek Baseline = "seasonal naive (week)"
)

// MissingBaseline is a seasonal baseline a backtest could not score, and
// why: its season reaches before the trace for the first target (with a
// warm-up shorter than a week, the first targets have no week-old interval
// to repeat), or the step does not divide a day.
type MissingBaseline struct {
	Baseline Baseline
	Why      string
}

// Backtest feeds s to an Online forecaster interval by interval and, every
// Every, forecasts the interval Horizon ahead. A seasonal baseline whose
// season reaches before the trace for the first target is not scored (it
// is in Missing, and NaN in every row); rows whose actual or any scored
// baseline is missing (NaN) are skipped, so every row compares like with
// like. It never lets a forecast see an interval after its origin.
func Backtest(s Series, cfg BacktestConfig) (BacktestResult, error) {
	rows, missing, o, err := backtest(s, cfg)
	if err != nil {
		return BacktestResult{}, err
	}
	res := BacktestResult{Rows: rows, Missing: missing}
	if e, ok := o.(Eventer); ok {
		res.Events = e.Events()
	}
	return res, nil
}

// BacktestResult is what a backtest produced: the rows, the baselines it
// could not score, and the anomalies the forecaster detected on the way.
type BacktestResult struct {
	Rows    []Row
	Missing []MissingBaseline
	Events  []Event
}

func backtest(s Series, cfg BacktestConfig) ([]Row, []MissingBaseline, Online, error) {
	step := s.Step
	if step <= 0 {
		return nil, nil, nil, fmt.Errorf("predict: backtest: step %s", step)
	}
	if cfg.Horizon < step || cfg.Horizon%step != 0 {
		return nil, nil, nil, fmt.Errorf("predict: backtest: horizon %s is not a positive multiple of the step %s", cfg.Horizon, step)
	}
	if cfg.Every == 0 {
		cfg.Every = step
	}
	if cfg.Every < step || cfg.Every%step != 0 {
		return nil, nil, nil, fmt.Errorf("predict: backtest: --every %s is not a positive multiple of the step %s", cfg.Every, step)
	}
	if cfg.Warmup < 0 {
		return nil, nil, nil, fmt.Errorf("predict: backtest: warm-up %s is negative", cfg.Warmup)
	}
	h := int(cfg.Horizon / step)
	every := int(cfg.Every / step)
	// The first origin: the warm-up's intervals are known, and at least
	// one (the last value baseline).
	first := max(int((cfg.Warmup+step-1)/step), 1)
	if first+h > len(s.Values) {
		return nil, nil, nil, fmt.Errorf("predict: backtest: %w: %d intervals (%s), need more than the warm-up %s plus the horizon %s",
			ErrTraceTooShort, len(s.Values), time.Duration(len(s.Values))*step, cfg.Warmup, cfg.Horizon)
	}
	day, week := seasons(step)
	// A baseline whose season reaches before the trace for the first
	// target is left out of the whole run, rather than the rows before
	// it is there left out for want of it: --warmup says where scoring
	// starts.
	firstTarget := first + h - 1
	var missing []MissingBaseline
	for _, b := range []struct {
		name   Baseline
		period *int
		needs  string
	}{{NaiveDay, &day, "1 day"}, {NaiveWeek, &week, "7 days"}} {
		switch {
		case *b.period == 0:
			missing = append(missing, MissingBaseline{b.name, fmt.Sprintf("the step %s does not divide a day", step)})
		case firstTarget < *b.period:
			missing = append(missing, MissingBaseline{b.name, fmt.Sprintf("needs %s of history before a target; the first target starts %s into the trace",
				b.needs, time.Duration(firstTarget)*step)})
			*b.period = 0
		}
	}
	opts := cfg.Options
	if opts.MaxHorizon < h {
		opts.MaxHorizon = max(h, opts.MaxHorizon)
	}
	o := NewOnline(step, opts)
	var rows []Row
	for i, v := range s.Values {
		o.Observe(s.Start.Add(time.Duration(i)*step), v)
		origin := i + 1 // intervals 0..i are known
		if origin < first || (origin-first)%every != 0 || origin+h > len(s.Values) {
			continue
		}
		target := origin + h - 1
		r := Row{
			Origin:    s.Start.Add(time.Duration(origin) * step),
			Target:    s.Start.Add(time.Duration(target) * step),
			Actual:    s.Values[target],
			LastValue: s.Values[origin-1],
			NaiveDay:  at(s.Values, target-day, day),
			NaiveWeek: at(s.Values, target-week, week),
		}
		if anyNaN(r.Actual, r.LastValue) || (day > 0 && math.IsNaN(r.NaiveDay)) || (week > 0 && math.IsNaN(r.NaiveWeek)) {
			continue
		}
		f, err := o.Forecast(h)
		if err != nil {
			return nil, nil, nil, err
		}
		r.P50, r.P90, r.P99, r.Model = f.P50[h-1], f.P90[h-1], f.P99[h-1], f.Model
		rows = append(rows, r)
	}
	return rows, missing, o, nil
}

func at(v []float64, i, period int) float64 {
	if period == 0 || i < 0 {
		return math.NaN()
	}
	return v[i]
}

func anyNaN(xs ...float64) bool {
	for _, x := range xs {
		if math.IsNaN(x) {
			return true
		}
	}
	return false
}

// Score summarises forecasts: WAPE = sum|actual-forecast| / sum actual, and
// the share of actuals at or below the p90 forecast. A baseline a backtest
// could not score (NaN in the rows) has N 0 and a NaN WAPE.
type Score struct {
	N          int
	WAPE       float64
	Coverage90 float64
}

// Scores are the forecaster's and the baselines' scores on the same rows.
type Scores struct {
	Forecast, LastValue, NaiveDay, NaiveWeek Score
}

// BestBaseline is the lowest baseline WAPE among those scored.
func (s Scores) BestBaseline() Score {
	b := s.LastValue
	for _, c := range []Score{s.NaiveDay, s.NaiveWeek} {
		if c.N > 0 && c.WAPE < b.WAPE {
			b = c
		}
	}
	return b
}

// ScoreRows scores the rows of a backtest.
func ScoreRows(rows []Row) Scores {
	var sum, eF, eL, eD, eW float64
	var cov int
	for _, r := range rows {
		sum += r.Actual
		eF += math.Abs(r.Actual - r.P50)
		eL += math.Abs(r.Actual - r.LastValue)
		eD += math.Abs(r.Actual - r.NaiveDay)
		eW += math.Abs(r.Actual - r.NaiveWeek)
		if r.Actual <= r.P90 {
			cov++
		}
	}
	n := len(rows)
	sc := func(e float64) Score { return Score{N: n, WAPE: e / sum} }
	out := Scores{Forecast: sc(eF), LastValue: sc(eL), NaiveDay: sc(eD), NaiveWeek: sc(eW)}
	if n > 0 {
		out.Forecast.Coverage90 = float64(cov) / float64(n)
	}
	// Baselines have no interval: coverage is the share at or below the
	// point forecast.
	for _, b := range []struct {
		s *Score
		f func(Row) float64
	}{{&out.LastValue, func(r Row) float64 { return r.LastValue }},
		{&out.NaiveDay, func(r Row) float64 { return r.NaiveDay }},
		{&out.NaiveWeek, func(r Row) float64 { return r.NaiveWeek }}} {
		c := 0
		for _, r := range rows {
			if r.Actual <= b.f(r) {
				c++
			}
		}
		if n > 0 {
			b.s.Coverage90 = float64(c) / float64(n)
		}
		if n > 0 && math.IsNaN(b.f(rows[0])) {
			*b.s = Score{WAPE: math.NaN()} // not scored (Backtest's Missing)
		}
	}
	return out
}
