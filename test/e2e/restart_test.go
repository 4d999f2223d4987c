//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
)

// restartPolicy plans "peak" from the cycle of ahead_test.go, read through
// PromQL (Prometheus) or from the embedded store (demand.series).
func restartPolicy(demand string) string {
	return strings.Replace(aheadPolicy, "      query: sum(rate(peak_requests_total[20s]))", "      "+demand, 1)
}

// forecastSnapshot is what the adapter's /metrics say of a workload's
// latest forecast and plan.
type forecastSnapshot struct {
	model, mode string
	origin      time.Time
	p50, p90    float64 // requests in the first forecast interval
}

func (f forecastSnapshot) String() string {
	return fmt.Sprintf("model %s, mode %s, origin %s, first interval p50 %.1f p90 %.1f",
		f.model, f.mode, f.origin.UTC().Format("15:04:05"), f.p50, f.p90)
}

// snapshot reads the latest forecast's model, the plan's mode, the
// forecast's origin and its first interval's p50 and p90.
func (a *adapter) snapshot(ctx context.Context, workload string, step time.Duration) (forecastSnapshot, error) {
	var f forecastSnapshot
	code, body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", a.webPort))
	if err != nil {
		return f, err
	}
	if code != 200 {
		return f, fmt.Errorf("/metrics: %d", code)
	}
	h := strconv.FormatFloat(step.Seconds(), 'f', -1, 64)
	w := fmt.Sprintf("workload=%q", workload)
	var originSeen, p50Seen, p90Seen bool
	for _, l := range strings.Split(body, "\n") {
		m := sampleRe.FindStringSubmatch(l)
		if m == nil || !strings.Contains(m[2], w) {
			continue
		}
		v, err := strconv.ParseFloat(m[3], 64)
		if err != nil {
			continue
		}
		switch {
		case m[1] == "infercast_forecast_model_info" && v == 1:
			f.model = labelValue(m[2], "model")
		case m[1] == "infercast_plan_mode" && v == 1:
			f.mode = labelValue(m[2], "mode")
		case m[1] == "infercast_forecast_origin_timestamp_seconds":
			f.origin, originSeen = time.UnixMilli(int64(v*1000)), true
		case m[1] == "infercast_forecast_requests" && labelValue(m[2], "horizon_seconds") == h:
			switch labelValue(m[2], "percentile") {
			case "50":
				f.p50, p50Seen = v, true
			case "90":
				f.p90, p90Seen = v, true
			}
		}
	}
	if f.model == "" || f.mode == "" || !originSeen || !p50Seen || !p90Seen {
		return f, fmt.Errorf("no complete forecast yet: %s", f)
	}
	return f, nil
}

// labelValue is the value of label name in a sample's label text.
func labelValue(labels, name string) string {
	for _, kv := range strings.Split(labels, ",") {
		if v, ok := strings.CutPrefix(kv, name+"="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return ""
}

// TestAdapterRestartKeepsForecast: the adapter restarted (same ports, same
// --storage.path) forecasts at once from the full history, as before the
// restart: the same model, a predictive plan, the first forecast interval
// on the learnt cycle and its band as narrow as before (not the wide band
// of a forecaster warming up), with Prometheus and with the embedded store
// as the history source.
func TestAdapterRestartKeepsForecast(t *testing.T) {
	b := findBinaries(t, "adapter")
	defer phase(t, "TestAdapterRestartKeepsForecast total")()
	promBin := testutil.Binary(t, "prometheus")
	for _, source := range []string{"prometheus", "embedded store"} {
		t.Run(strings.ReplaceAll(source, " ", "-"), func(t *testing.T) {
			defer phase(t, "restart with "+source)()
			dir := logDir(t)
			s := seasonal{mean: 17, amp: 13, period: 40 * time.Minute}
			// On the rise, where a forecaster that lost the cycle (one that
			// repeats the last value) is furthest from it.
			s.trough = time.Now().Add(-s.period / 4)
			d := newDemand(t)
			d.setCurve("peak_requests_total", s.count)
			now := time.Now()
			from, to := now.Add(-25*time.Hour), now.Add(-time.Second)
			var a *adapter
			if source == "prometheus" {
				pr := newPrometheus(t, promBin, dir, d.srv.Listener.Addr().String())
				backfill(t, pr.data, "peak_requests_total", fmt.Sprintf(`instance=%q,job="demand",pod="sim-0"`, d.srv.Listener.Addr().String()),
					s.count, from, to, 2*time.Second)
				pr.start(t)
				a = newAdapterWith(t, b.adapter, dir, restartPolicy("query: sum(rate(peak_requests_total[20s]))"),
					"--prometheus.url", pr.url(), "--prometheus.timeout", "10s", "--forecast.reselect-interval", "2h")
			} else {
				a = newAdapterWith(t, b.adapter, dir, restartPolicy("series: peak_requests_total"),
					"--exporter.url", d.srv.URL+"/metrics", "--exporter.scrape-interval", "500ms", "--forecast.reselect-interval", "2h")
				// The embedded store is a Prometheus TSDB: the same blocks
				// give it the day of history the exporter's scrapes would have.
				backfill(t, a.storage, "peak_requests_total", `pod="sim-0"`, s.count, from, to, 2*time.Second)
			}
			a.start(t)
			first := waitSnapshot(t, a, s, "first forecast")
			// Run for one more forecast step, so that history the adapter
			// read live (the embedded store: scraped itself, in its WAL)
			// is part of what the restart must not lose.
			var before forecastSnapshot
			func() {
				defer phase(t, "one more forecast step")()
				eventually(t, "forecast a step on", 2*time.Minute, time.Second, func(ctx context.Context) (bool, string) {
					f, err := a.snapshot(ctx, "peak", aheadStep)
					if err != nil {
						return false, err.Error()
					}
					before = f
					return f.origin.After(first.origin), f.String()
				}, a.p)
			}()
			checkSnapshot(t, before, s, "before the restart")
			func() {
				defer phase(t, "adapter restarted")()
				a.p.stop()
				a.start(t)
			}()
			after := waitSnapshot(t, a, s, "right after the restart")
			if after.model != before.model {
				t.Errorf("forecast model %s after the restart, %s before: the forecaster re-warmed", after.model, before.model)
			}
			band := func(f forecastSnapshot) float64 { return (f.p90 - f.p50) / f.p50 }
			if math.Abs(band(after)-band(before)) > 0.02 {
				t.Errorf("p90 band %.1f%% of p50 after the restart, %.1f%% before: the intervals were not kept", 100*band(after), 100*band(before))
			}
		})
	}
}

// waitSnapshot waits for the adapter's first complete forecast and checks
// it is a real one (checkSnapshot).
func waitSnapshot(t *testing.T, a *adapter, s seasonal, when string) forecastSnapshot {
	t.Helper()
	var f forecastSnapshot
	eventually(t, "forecast "+when, time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		var err error
		f, err = a.snapshot(ctx, "peak", aheadStep)
		if err != nil {
			return false, err.Error()
		}
		return true, f.String()
	}, a.p)
	checkSnapshot(t, f, s, when)
	return f
}

// checkSnapshot fails unless f is a real forecast: predictive, its first
// interval within 5 % of the cycle's demand there.
func checkSnapshot(t *testing.T, f forecastSnapshot, s seasonal, when string) {
	t.Helper()
	truth := s.count(f.origin.Add(aheadStep)) - s.count(f.origin)
	t.Logf("%s: %s; demand in that interval %.1f", when, f, truth)
	if f.mode != "predictive" {
		t.Errorf("%s: plan mode %s, want predictive", when, f.mode)
	}
	if math.Abs(f.p50/truth-1) > 0.05 {
		t.Errorf("%s: forecast p50 %.1f for the interval from %s, demand there %.1f: off by more than 5%%", when, f.p50, f.origin.UTC().Format("15:04:05"), truth)
	}
}
