package forecastmetrics_test

import (
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infercast/infercast/pkg/predict"
	"github.com/infercast/infercast/pkg/predict/forecastmetrics"
)

var origin = time.Unix(1_700_000_400, 0)

func fc() predict.Forecast {
	return predict.Forecast{
		Origin: origin, Step: time.Minute,
		P50: []float64{100, 110, 120}, P90: []float64{130, 140, 150}, P99: []float64{160, 170, 180},
		Model: "ensemble", Warnings: []string{"gap: ..."},
	}
}

func TestRecorderExposesForecastAndScoresActuals(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	r, err := forecastmetrics.NewRecorder(reg, forecastmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.RecordForecast("chat", fc())
	// The interval forecast 1 step ahead comes in at 125 (over p90? no:
	// 125 <= 130), the one 3 steps ahead at 155 (over p90 150).
	r.RecordActual("chat", origin, 125)
	r.RecordActual("chat", origin.Add(time.Minute), 1e6) // step 2 is not scored
	r.RecordActual("chat", origin.Add(2*time.Minute), 155)
	r.RecordActual("chat", origin.Add(2*time.Minute), 999) // scored once only
	r.RecordActual("other", origin, 1)                     // nothing pending
	r.RecordActual("chat", origin, math.NaN())

	want := `
# HELP infercast_forecast_absolute_error_requests_total Sum of |actual - p50 forecast| over scored intervals; divided by infercast_forecast_actual_requests_total it is the WAPE.
# TYPE infercast_forecast_absolute_error_requests_total counter
infercast_forecast_absolute_error_requests_total{horizon_seconds="180",workload="chat"} 35
infercast_forecast_absolute_error_requests_total{horizon_seconds="60",workload="chat"} 25
# HELP infercast_forecast_actual_requests_total Sum of the actual requests of the scored intervals.
# TYPE infercast_forecast_actual_requests_total counter
infercast_forecast_actual_requests_total{horizon_seconds="180",workload="chat"} 155
infercast_forecast_actual_requests_total{horizon_seconds="60",workload="chat"} 125
# HELP infercast_forecast_history_warnings Anomalies (gaps, spikes, outages, level shifts) detected in the workload's recent history and discounted by the forecaster.
# TYPE infercast_forecast_history_warnings gauge
infercast_forecast_history_warnings{workload="chat"} 1
# HELP infercast_forecast_model_info Model that produced the latest forecast of a workload (value 1).
# TYPE infercast_forecast_model_info gauge
infercast_forecast_model_info{model="ensemble",workload="chat"} 1
# HELP infercast_forecast_origin_timestamp_seconds Origin of the latest forecast (end of the last interval it used), unix seconds.
# TYPE infercast_forecast_origin_timestamp_seconds gauge
infercast_forecast_origin_timestamp_seconds{workload="chat"} 1.7000004e+09
# HELP infercast_forecast_p90_covered_total Scored intervals whose actual demand was at or below the p90 forecast (coverage = this / scored).
# TYPE infercast_forecast_p90_covered_total counter
infercast_forecast_p90_covered_total{horizon_seconds="180",workload="chat"} 0
infercast_forecast_p90_covered_total{horizon_seconds="60",workload="chat"} 1
# HELP infercast_forecast_p99_covered_total Scored intervals whose actual demand was at or below the p99 forecast.
# TYPE infercast_forecast_p99_covered_total counter
infercast_forecast_p99_covered_total{horizon_seconds="180",workload="chat"} 1
infercast_forecast_p99_covered_total{horizon_seconds="60",workload="chat"} 1
# HELP infercast_forecast_requests Latest forecast of requests per interval, by workload, percentile (50, 90, 99) and horizon (end of the forecast interval after the origin).
# TYPE infercast_forecast_requests gauge
infercast_forecast_requests{horizon_seconds="180",percentile="50",workload="chat"} 120
infercast_forecast_requests{horizon_seconds="180",percentile="90",workload="chat"} 150
infercast_forecast_requests{horizon_seconds="180",percentile="99",workload="chat"} 180
infercast_forecast_requests{horizon_seconds="60",percentile="50",workload="chat"} 100
infercast_forecast_requests{horizon_seconds="60",percentile="90",workload="chat"} 130
infercast_forecast_requests{horizon_seconds="60",percentile="99",workload="chat"} 160
# HELP infercast_forecast_scored_total Forecast intervals whose actual demand became known and was scored.
# TYPE infercast_forecast_scored_total counter
infercast_forecast_scored_total{horizon_seconds="180",workload="chat"} 1
infercast_forecast_scored_total{horizon_seconds="60",workload="chat"} 1
# HELP infercast_forecast_step_seconds Length of the forecast interval of the workload's latest forecast: infercast_forecast_requests divided by it is requests per second.
# TYPE infercast_forecast_step_seconds gauge
infercast_forecast_step_seconds{workload="chat"} 60
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}

	r.Forget("chat")
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Errorf("after Forget: %d series, %v; want 0", n, err)
	}
}

func TestRecorderHorizonsOption(t *testing.T) {
	reg := prometheus.NewRegistry()
	r, err := forecastmetrics.NewRecorder(reg, forecastmetrics.Options{Horizons: []int{2, 9}})
	if err != nil {
		t.Fatal(err)
	}
	r.RecordForecast("chat", fc())
	// Step 2 exists, step 9 does not: 3 quantiles of one horizon + model,
	// warnings, origin.
	if n := testutil.CollectAndCount(r, "infercast_forecast_requests"); n != 3 {
		t.Errorf("%d forecast series, want 3", n)
	}
	if _, err := forecastmetrics.NewRecorder(reg, forecastmetrics.Options{}); err == nil {
		t.Error("registering twice on one registry must fail")
	}
}

func TestRecorderLatest(t *testing.T) {
	r, err := forecastmetrics.NewRecorder(prometheus.NewRegistry(), forecastmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := r.Latest("chat"); ok {
		t.Fatal("Latest before any forecast: ok")
	}
	r.RecordForecast("chat", fc())
	later := fc()
	later.Origin, later.P50[0] = origin.Add(time.Minute), 105
	r.RecordForecast("other", fc())
	r.RecordForecast("chat", later)

	got, ok := r.Latest("chat")
	if !ok {
		t.Fatal("Latest after RecordForecast: not ok")
	}
	if !got.Origin.Equal(later.Origin) || got.Step != time.Minute || got.Model != "ensemble" ||
		!slices.Equal(got.P50, []float64{105, 110, 120}) || !slices.Equal(got.P90, []float64{130, 140, 150}) ||
		!slices.Equal(got.P99, []float64{160, 170, 180}) || !slices.Equal(got.Warnings, []string{"gap: ..."}) {
		t.Errorf("Latest = %+v, want the second forecast of chat %+v", got, later)
	}
	// A copy: what the caller does with it does not reach the recorder.
	got.P50[0], got.P90[0], got.P99[0], got.Warnings[0] = -1, -1, -1, "changed"
	if again, _ := r.Latest("chat"); again.P50[0] != 105 || again.P90[0] != 130 || again.P99[0] != 160 || again.Warnings[0] != "gap: ..." {
		t.Errorf("Latest shares its slices with the recorder: %+v", again)
	}

	r.Forget("chat")
	if _, ok := r.Latest("chat"); ok {
		t.Error("Latest after Forget: ok")
	}
	if _, ok := r.Latest("other"); !ok {
		t.Error("Forget(chat) dropped other's forecast")
	}
}
