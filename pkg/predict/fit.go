package predict

import (
	"context"
	"errors"
	"sync"
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

// FitAll fits every series and forecasts steps ahead of each, on workers
// goroutines (at least 1): the adapter's refresh of all its workloads from
// their histories. errs[i] is the error of series[i], if any.
func FitAll(ctx context.Context, series []Series, steps int, opts Options, workers int) (fs []Forecast, errs []error) {
	fs = make([]Forecast, len(series))
	errs = make([]error, len(series))
	next := make(chan int)
	var wg sync.WaitGroup
	for range max(1, workers) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := ctx.Err(); err != nil {
					errs[i] = err
					continue
				}
				o, err := Fit(series[i], opts)
				if err == nil {
					fs[i], err = o.Forecast(steps)
				}
				errs[i] = err
			}
		}()
	}
	for i := range series {
		next <- i
	}
	close(next)
	wg.Wait()
	return fs, errs
}
