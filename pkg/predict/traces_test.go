package predict_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/predict"
	"github.com/infercast/infercast/pkg/predict/history"
)

// TestTraces holds the forecaster to the bar of issue 3 on the real traces:
// p50 WAPE never worse than the best of last value and seasonal naive (day,
// week) on the same rows, at least 15 % below it on both NASA months, and
// p90 coverage in [0.85, 0.95].
func TestTraces(t *testing.T) {
	if testing.Short() {
		t.Skip("replays three real traces")
	}
	dir := filepath.Join(testutil.SharedDir(t), "traces")
	for _, tc := range []struct {
		file        string
		horizon     time.Duration
		minGainNASA float64
		// The longest outage and the level shifts that must be reported.
		minOutage      time.Duration
		minLevelShifts int
	}{
		{"nasa-1995-07.csv", 15 * time.Minute, 0.15, 0, 0},
		{"nasa-1995-08.csv", 15 * time.Minute, 0.15, 37 * time.Hour, 0},
		{"servegen-m-mid.csv", 20 * time.Minute, 0, 0, 3},
	} {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			s, err := history.LoadCSV(filepath.Join(dir, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			res, err := predict.Backtest(s, predict.BacktestConfig{Horizon: tc.horizon, Warmup: predict.DefaultWarmup})
			if err != nil {
				t.Fatal(err)
			}
			rows := res.Rows
			kinds := map[string]int{}
			for _, e := range res.Events {
				kinds[e.Kind]++
				if e.Kind == "outage" || e.Kind == "level-shift" {
					t.Logf("%s %s..%s (%d intervals) %s", e.Kind, e.Start.UTC().Format(time.RFC3339), e.End.UTC().Format(time.RFC3339), e.Intervals, e.Detail)
				}
			}
			t.Logf("events: %v", kinds)
			var longest time.Duration
			for _, e := range res.Events {
				if e.Kind == "outage" {
					longest = max(longest, time.Duration(e.Intervals)*s.Step)
				}
			}
			if longest < tc.minOutage {
				t.Errorf("longest outage reported %s, want at least %s", longest, tc.minOutage)
			}
			if kinds["level-shift"] < tc.minLevelShifts {
				t.Errorf("%d level shifts reported, want at least %d", kinds["level-shift"], tc.minLevelShifts)
			}
			sc := predict.ScoreRows(rows)
			best := sc.BestBaseline()
			models := map[string]int{}
			for _, r := range rows {
				models[r.Model]++
			}
			t.Logf("%s: rows %d, p50 WAPE %.3f, p90 coverage %.3f; last value %.3f, naive day %.3f, naive week %.3f; models %v",
				tc.file, sc.Forecast.N, sc.Forecast.WAPE, sc.Forecast.Coverage90, sc.LastValue.WAPE, sc.NaiveDay.WAPE, sc.NaiveWeek.WAPE, models)
			if sc.Forecast.WAPE > best.WAPE*(1-tc.minGainNASA) {
				t.Errorf("p50 WAPE %.4f, want at most %.4f (best baseline %.4f less %.0f%%)",
					sc.Forecast.WAPE, best.WAPE*(1-tc.minGainNASA), best.WAPE, 100*tc.minGainNASA)
			}
			if c := sc.Forecast.Coverage90; c < 0.85 || c > 0.95 {
				t.Errorf("p90 coverage %.3f, want in [0.85, 0.95]", c)
			}
		})
	}
}
