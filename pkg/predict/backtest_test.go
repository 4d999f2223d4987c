package predict_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// daily is a minute series of days days with a daily cycle.
func daily(days int) predict.Series {
	s := predict.Series{Start: time.Unix(1700006400, 0).UTC(), Step: time.Minute}
	for i := range days * 1440 {
		s.Values = append(s.Values, 100+50*math.Sin(2*math.Pi*float64(i)/1440)+float64(i%7))
	}
	return s
}

// TestBacktestWarmup: Warmup is where forecasting and scoring start — 0 is
// no warm-up (it was silently 7 days), a negative one is an error — and a
// seasonal baseline whose season reaches before the trace for the first
// target is left out of the run, not every row for want of it (a trace
// shorter than a week had no rows at all).
func TestBacktestWarmup(t *testing.T) {
	const h = 15
	cfg := func(warmup time.Duration) predict.BacktestConfig {
		return predict.BacktestConfig{Horizon: h * time.Minute, Warmup: warmup}
	}
	three := daily(3)
	for _, tc := range []struct {
		name    string
		s       predict.Series
		warmup  time.Duration
		first   int // the first origin, in intervals
		missing []predict.Baseline
	}{
		{"no warm-up", three, 0, 1, []predict.Baseline{predict.NaiveDay, predict.NaiveWeek}},
		{"a day on three", three, 24 * time.Hour, 1440, []predict.Baseline{predict.NaiveWeek}},
		{"a day on eight", daily(8), 24 * time.Hour, 1440, []predict.Baseline{predict.NaiveWeek}},
		{"a week on eight", daily(8), predict.DefaultWarmup, 7 * 1440, nil},
		// 6 days 23h50m: the first target starts at 7 days and 4 minutes.
		{"just under a week", daily(8), 7*24*time.Hour - 10*time.Minute, 7*1440 - 10, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := predict.Backtest(tc.s, cfg(tc.warmup))
			if err != nil {
				t.Fatal(err)
			}
			n := len(tc.s.Values)
			if want := n - h - tc.first + 1; len(res.Rows) != want {
				t.Fatalf("%d rows, want %d", len(res.Rows), want)
			}
			if got, want := res.Rows[0].Origin, tc.s.Start.Add(time.Duration(tc.first)*time.Minute); !got.Equal(want) {
				t.Errorf("first origin %v, want %v", got, want)
			}
			var missing []predict.Baseline
			for _, m := range res.Missing {
				missing = append(missing, m.Baseline)
			}
			if !slices.Equal(missing, tc.missing) {
				t.Errorf("missing %v, want %v", res.Missing, tc.missing)
			}
			sc := predict.ScoreRows(res.Rows)
			for _, b := range []struct {
				name predict.Baseline
				s    predict.Score
				v    float64
			}{{predict.NaiveDay, sc.NaiveDay, res.Rows[0].NaiveDay}, {predict.NaiveWeek, sc.NaiveWeek, res.Rows[0].NaiveWeek}} {
				isMissing := slices.Contains(tc.missing, b.name)
				if isMissing != (b.s.N == 0) || isMissing != math.IsNaN(b.v) {
					t.Errorf("%s: missing %v, scored on %d rows, first value %v", b.name, isMissing, b.s.N, b.v)
				}
			}
			if best := sc.BestBaseline(); best.N == 0 || math.IsNaN(best.WAPE) {
				t.Errorf("best baseline %+v is not a scored one", best)
			}
		})
	}
	for _, m := range mustBacktest(t, three, cfg(24*time.Hour)).Missing {
		if want := "needs 7 days of history before a target; the first target starts 24h14m0s into the trace"; m.Baseline != predict.NaiveWeek || m.Why != want {
			t.Errorf("missing %+v, want the week: %q", m, want)
		}
	}

	if _, err := predict.Backtest(three, cfg(-time.Hour)); err == nil || !strings.Contains(err.Error(), "warm-up -1h0m0s is negative") {
		t.Errorf("negative warm-up: %v", err)
	}
	if _, err := predict.Backtest(three, cfg(predict.DefaultWarmup)); !errors.Is(err, predict.ErrTraceTooShort) {
		t.Errorf("a week's warm-up on three days: %v, want ErrTraceTooShort", err)
	}
}

func mustBacktest(t *testing.T, s predict.Series, cfg predict.BacktestConfig) predict.BacktestResult {
	t.Helper()
	res, err := predict.Backtest(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return res
}
