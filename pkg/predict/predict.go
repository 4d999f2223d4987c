// Package predict forecasts demand (requests per interval) with prediction
// intervals. It knows demand, not replicas: pkg/capacity turns its forecasts
// into replica targets.
package predict

import "time"

// StepStart is the start of the step interval t falls in: t rounded down
// to a multiple of step since the unix epoch, as Prometheus's query
// frontends align range queries. (time.Truncate rounds to a multiple since
// Go's zero time, which is the epoch's only for steps that divide a day.)
func StepStart(t time.Time, step time.Duration) time.Time {
	ms, m := t.UnixMilli(), step.Milliseconds()
	r := ms % m
	if r < 0 {
		r += m
	}
	return time.UnixMilli(ms - r).In(t.Location())
}

// Series is a demand history: Values[i] counts the requests that arrived in
// [Start+i*Step, Start+(i+1)*Step). NaN marks an interval with no data (a
// scrape gap), which is different from an interval with zero requests.
type Series struct {
	Start  time.Time
	Step   time.Duration
	Values []float64
}

// End is the end of the last interval of s.
func (s Series) End() time.Time {
	return s.Start.Add(time.Duration(len(s.Values)) * s.Step)
}

// Forecast holds quantiles of demand for the intervals after Origin:
// P50[i] is the median forecast count of [Origin+i*Step, Origin+(i+1)*Step).
type Forecast struct {
	Origin time.Time
	Step   time.Duration
	P50    []float64
	P90    []float64
	P99    []float64
	// Model names the model that produced the forecast (e.g. "holt-winters").
	Model string
	// Warnings says what in the history was detected and discounted: gaps,
	// outages, spikes, level shifts. Empty when the history looked clean.
	Warnings []string
}

// Quantile returns the forecast of interval i at quantile q in [0.5, 0.99],
// interpolating linearly between the stored quantiles and clamping outside them.
func (f Forecast) Quantile(q float64, i int) float64 {
	switch {
	case q <= 0.5:
		return f.P50[i]
	case q <= 0.9:
		w := (q - 0.5) / 0.4
		return f.P50[i]*(1-w) + f.P90[i]*w
	case q < 0.99:
		w := (q - 0.9) / 0.09
		return f.P90[i]*(1-w) + f.P99[i]*w
	default:
		return f.P99[i]
	}
}

// Len is the number of intervals forecast.
func (f Forecast) Len() int { return len(f.P50) }

// Online is a forecaster fed one interval at a time, as the serving loop and
// the backtest both do. Implementations keep their state incrementally so
// that Observe and Forecast stay cheap; they re-select their model on their
// own schedule.
type Online interface {
	// Observe appends the count of the interval that starts at t. Intervals
	// must be observed in order, one Step apart; NaN means no data.
	Observe(t time.Time, count float64)
	// Forecast returns the next steps intervals after the last one observed.
	Forecast(steps int) (Forecast, error)
}
