package predict_test

import (
	"fmt"
	"math"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// A workload with a daily cycle, fed one minute at a time as the serving
// loop does; the forecast is of the next quarter of an hour.
func ExampleNewOnline() {
	start := time.Date(2026, 1, 5, 0, 0, 0, 0, time.UTC)
	o := predict.NewOnline(time.Minute, predict.Options{})
	for i := range 10 * 1440 {
		count := math.Round(600 + 300*math.Sin(2*math.Pi*float64(i)/1440))
		o.Observe(start.Add(time.Duration(i)*time.Minute), count)
	}
	f, err := o.Forecast(15)
	if err != nil {
		fmt.Println(err)
		return
	}
	last := f.Len() - 1
	fmt.Printf("origin %s\n", f.Origin.Format(time.RFC3339))
	fmt.Printf("interval starting %s: p50 %.0f, p90 ≥ p50: %v\n",
		f.Origin.Add(time.Duration(last)*f.Step).Format("15:04"), f.P50[last], f.P90[last] >= f.P50[last])
	// Output:
	// origin 2026-01-15T00:00:00Z
	// interval starting 00:14: p50 618, p90 ≥ p50: true
}
