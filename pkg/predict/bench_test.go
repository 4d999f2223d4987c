package predict_test

import (
	"math"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// noisyWeek is 14 days of minute counts with a daily and weekly cycle and
// deterministic noise, like the NASA trace.
func noisyDays(days int) predict.Series {
	n := days * 1440
	s := predict.Series{Start: t0, Step: time.Minute, Values: make([]float64, n)}
	for i := range s.Values {
		d := float64(i) / 1440
		s.Values[i] = math.Round(50 * (1 + 0.5*math.Sin(2*math.Pi*d) + 0.2*math.Sin(2*math.Pi*d/7)) * (1 + 0.2*(float64((i*7919)%101)/100-0.5)))
	}
	return s
}

// BenchmarkFitForecast14Days: fit one 14-day series at 1-minute steps and
// forecast an hour (issue 3: under 50 ms).
func BenchmarkFitForecast14Days(b *testing.B) {
	s := noisyDays(14)
	b.ResetTimer()
	for b.Loop() {
		o, err := predict.Fit(s, predict.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.Forecast(60); err != nil {
			b.Fatal(err)
		}
	}
}
