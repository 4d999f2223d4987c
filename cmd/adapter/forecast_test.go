package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// writeTrace writes a 9-day minute trace with a daily cycle and noise.
func writeTrace(t *testing.T) (string, map[int64]float64) {
	t.Helper()
	return writeTraceDays(t, 9)
}

// writeTraceDays writes a minute trace of days days with a daily cycle and
// noise.
func writeTraceDays(t *testing.T, days int) (string, map[int64]float64) {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,requests\n")
	vals := map[int64]float64{}
	const start = 1700000000 - 1700000000%86400
	for i := range days * 1440 {
		v := math.Round(400 + 150*math.Sin(2*math.Pi*float64(i)/1440) + float64((i*7919)%31) - 15)
		ts := int64(start + 60*i)
		vals[ts] = v
		fmt.Fprintf(&b, "%d,%v\n", ts, v)
	}
	path := filepath.Join(t.TempDir(), "trace.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, vals
}

// TestForecastCommand runs the subcommand and checks its file against the
// trace: the rows' layout, that each target is the interval ending the
// horizon after its origin, ordered quantiles, and that the printed WAPE and
// coverage are those of the rows written.
func TestForecastCommand(t *testing.T) {
	trace, vals := writeTrace(t)
	out := filepath.Join(t.TempDir(), "forecasts.csv")
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"forecast", "--trace", trace, "--horizon", "15m", "--every", "5m", "--out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("forecast: %v\n%s", err, stderr.String())
	}
	recs := readCSV(t, out)
	if got := strings.Join(recs[0], ","); got != "origin,target,p50,p90,p99" {
		t.Fatalf("header %q", got)
	}
	rows := recs[1:]
	// Origins from day 7 to the last one whose target exists, every 5 min.
	if want := (2*1440 - 15 + 5) / 5; len(rows) != want {
		t.Errorf("%d rows, want %d", len(rows), want)
	}
	var sumAbs, sum float64
	covered := 0
	for i, r := range rows {
		origin, _ := strconv.ParseInt(r[0], 10, 64)
		target, _ := strconv.ParseInt(r[1], 10, 64)
		p50, _ := strconv.ParseFloat(r[2], 64)
		p90, _ := strconv.ParseFloat(r[3], 64)
		p99, _ := strconv.ParseFloat(r[4], 64)
		if target != origin+14*60 {
			t.Fatalf("row %d: target %d, want origin+14m (%d)", i, target, origin+14*60)
		}
		if !(p50 <= p90 && p90 <= p99) {
			t.Fatalf("row %d: quantiles out of order: %v", i, r)
		}
		actual, ok := vals[target]
		if !ok {
			t.Fatalf("row %d: target %d not in the trace", i, target)
		}
		sumAbs += math.Abs(actual - p50)
		sum += actual
		if actual <= p90 {
			covered++
		}
	}
	m := regexp.MustCompile(`(?m)^infercast\s+([0-9.]+)\s+([0-9.]+)$`).FindStringSubmatch(stdout.String())
	if m == nil {
		t.Fatalf("no infercast line in:\n%s", stdout.String())
	}
	if want := fmt.Sprintf("%.3f", sumAbs/sum); m[1] != want {
		t.Errorf("printed WAPE %s, the rows give %s", m[1], want)
	}
	if want := fmt.Sprintf("%.3f", float64(covered)/float64(len(rows))); m[2] != want {
		t.Errorf("printed coverage %s, the rows give %s", m[2], want)
	}
	for _, name := range []string{"last value", "seasonal naive (day)", "seasonal naive (week)", "detected: 0 gaps"} {
		if !strings.Contains(stdout.String(), name) {
			t.Errorf("baseline %q missing from:\n%s", name, stdout.String())
		}
	}
}

func TestForecastCommandErrors(t *testing.T) {
	trace, _ := writeTrace(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.csv")
	if err := os.WriteFile(bad, []byte("timestamp,requests\n100,1\n160,-4\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	nan := filepath.Join(dir, "nan.csv")
	if err := os.WriteFile(nan, []byte("timestamp,requests\n0,100\n60,101\n120,NaN\n180,103\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.csv")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no trace", []string{"--out", out}, "--trace and --out are required"},
		{"no out", []string{"--trace", trace}, "--trace and --out are required"},
		{"missing file", []string{"--trace", filepath.Join(dir, "nope.csv"), "--out", out}, "nope.csv"},
		{"negative count", []string{"--trace", bad, "--out", out}, "bad.csv:3: requests -4 is negative"},
		// Refused as adapter backtest refuses it (forecast took it for a gap).
		{"NaN count", []string{"--trace", nan, "--out", out}, nan + `:4: requests "NaN" is not a number`},
		{"horizon off the step", []string{"--trace", trace, "--horizon", "90s", "--out", out}, "not a positive multiple of the step"},
		{"warm-up too long", []string{"--trace", trace, "--warmup", "240h", "--out", out}, "trace too short: 12960 intervals (216h0m0s), need more than the warm-up 240h0m0s plus the horizon 15m0s"},
		{"negative warm-up", []string{"--trace", trace, "--warmup", "-1h", "--out", out}, "--warmup -1h0m0s must not be negative"},
		{"stray argument", []string{"--trace", trace, "--out", out, "extra"}, "unexpected arguments"},
		// It said "open DIR/nodir/.forecasts-3528553588.csv: ...", a name
		// the user never gave.
		{"out in a missing directory", []string{"--trace", trace, "--out", filepath.Join(dir, "nodir", "x.csv")},
			"forecast: --out " + filepath.Join(dir, "nodir", "x.csv") + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := dispatch(context.Background(), append([]string{"forecast"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want it to contain %q", err, tc.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Errorf("a failed run left %s behind", out)
			}
		})
	}
}

// TestForecastWarmup: --warmup says where forecasting and scoring start,
// whatever the trace's length. A trace shorter than a week is forecast and
// scored against the baselines that fit (every row was dropped for want of
// a week-old interval, and nothing was written); on 8 days, --warmup 24h
// scores from day 1 (it scored from day 7); 0 is from the end of the
// first interval (it was silently 7 days).
func TestForecastWarmup(t *testing.T) {
	short, _ := writeTraceDays(t, 3)
	eight, _ := writeTraceDays(t, 8)
	const start = 1700000000 - 1700000000%86400
	for _, tc := range []struct {
		name        string
		trace       string
		warmup      string
		firstOrigin int64
		rows        int
		notScored   []string
		scoredToo   []string
	}{
		{"3 days, 1 day warm-up", short, "24h", start + 86400, 2*1440 - 14,
			[]string{"seasonal naive (week)            -             -   not scored: needs 7 days of history before a target; the first target starts 24h14m0s into the trace"},
			[]string{"last value", "seasonal naive (day)"}},
		{"3 days, no warm-up", short, "0", start + 60, 3*1440 - 15,
			[]string{"seasonal naive (day)             -             -   not scored: needs 1 day of history before a target; the first target starts 15m0s into the trace",
				"seasonal naive (week)            -             -   not scored: needs 7 days of history before a target"},
			[]string{"last value"}},
		{"8 days, 1 day warm-up", eight, "24h", start + 86400, 7*1440 - 14,
			[]string{"seasonal naive (week)            -             -   not scored"}, []string{"seasonal naive (day)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "f.csv")
			var stdout, stderr bytes.Buffer
			err := dispatch(context.Background(), []string{"forecast", "--trace", tc.trace, "--horizon", "15m", "--warmup", tc.warmup, "--out", out}, &stdout, &stderr)
			if err != nil {
				t.Fatalf("forecast: %v\n%s", err, stderr.String())
			}
			rows := readCSV(t, out)[1:]
			if len(rows) != tc.rows {
				t.Errorf("%d rows written, want %d", len(rows), tc.rows)
			}
			if origin, _ := strconv.ParseInt(rows[0][0], 10, 64); origin != tc.firstOrigin {
				t.Errorf("first origin %d, want %d (%+d s)", origin, tc.firstOrigin, tc.firstOrigin-origin)
			}
			for _, want := range tc.notScored {
				if !strings.Contains(stdout.String(), want) {
					t.Errorf("want %q in:\n%s", want, stdout.String())
				}
			}
			for _, name := range tc.scoredToo {
				if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `\s+[0-9.]+\s+[0-9.]+$`).MatchString(stdout.String()) {
					t.Errorf("%q not scored in:\n%s", name, stdout.String())
				}
			}
			if !regexp.MustCompile(`(?m)^p50 WAPE vs best baseline: [-+][0-9.]+%$`).MatchString(stdout.String()) {
				t.Errorf("no comparison with the best scored baseline in:\n%s", stdout.String())
			}
		})
	}
	// The default warm-up on a short trace says what the week is for.
	out := filepath.Join(t.TempDir(), "f.csv")
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"forecast", "--trace", short, "--horizon", "15m", "--out", out}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "the weekly seasonal naive baseline, which needs 7 days of history") {
		t.Errorf("error %v, want it to say the week-long warm-up is for the weekly baseline", err)
	}
}
