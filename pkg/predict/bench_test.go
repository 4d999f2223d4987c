package predict_test

import (
	"context"
	"math"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// cpuTime is the process's user+system CPU time. The benchmarks report it
// per op next to the wall time: on a shared machine the wall time measures
// the neighbours as much as the code.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, unit time.Duration, name string) {
	b.ReportMetric(float64(cpuTime(b)-start)/float64(unit)/float64(b.N), name)
}

// noisyDays is 14 days of minute counts with a daily and weekly cycle and
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
	start := cpuTime(b)
	for b.Loop() {
		o, err := predict.Fit(s, predict.Options{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := o.Forecast(60); err != nil {
			b.Fatal(err)
		}
	}
	reportCPU(b, start, time.Millisecond, "cpu-ms/op")
}

// BenchmarkRefresh1000Workloads: re-fit 1,000 workloads of 14 days at
// 1-minute steps from their histories and forecast an hour for each, on
// GOMAXPROCS workers (issue 3: under 60 s on 2 cores). Ten distinct shapes
// are shared between the workloads to keep the input small.
func BenchmarkRefresh1000Workloads(b *testing.B) {
	var base []predict.Series
	for k := range 10 {
		s := noisyDays(14)
		for i := range s.Values {
			s.Values[i] *= float64(k + 1)
		}
		base = append(base, s)
	}
	series := make([]predict.Series, 1000)
	for i := range series {
		series[i] = base[i%len(base)]
	}
	b.ResetTimer()
	start := cpuTime(b)
	for b.Loop() {
		_, errs := predict.FitAll(context.Background(), series, 60, predict.Options{}, runtime.GOMAXPROCS(0))
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	// CPU seconds over 2 is the wall time on 2 dedicated cores.
	reportCPU(b, start, time.Second, "cpu-s/op")
}
