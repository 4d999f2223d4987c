package predict

import (
	"errors"
	"time"
)

// Fit returns an Online forecaster that has observed all of s, ready to
// forecast the intervals after s.End(). It is the batch entry point (one
// series in, forecasts out); the serving loop keeps the Online and feeds it
// interval by interval instead of refitting.
func Fit(s Series, opts Options) (Online, error) {
	if s.Step <= 0 {
		return nil, errors.New("predict: fit: series step must be positive")
	}
	if len(s.Values) == 0 {
		return nil, ErrNoHistory
	}
	o := NewOnline(s.Step, opts)
	for i, v := range s.Values {
		o.Observe(s.Start.Add(time.Duration(i)*s.Step), v)
	}
	return o, nil
}
