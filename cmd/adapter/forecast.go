package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/infercast/infercast/pkg/predict"
	"github.com/infercast/infercast/pkg/predict/history"
)

func init() {
	register("forecast", command{
		summary: "forecast a trace and score the forecasts against baselines",
		run:     runForecast,
	})
}

const forecastUsage = `usage: adapter forecast --trace FILE --horizon 15m [--every 1m] [--warmup 168h] --out forecasts.csv

Replays a timestamp,requests trace through the online forecaster of
pkg/predict (docs/forecasting.md). Every --every, from --warmup after the
start, it forecasts the trace interval that ends --horizon after the origin,
using only intervals that end at or before the origin, and writes one row
origin,target,p50,p90,p99 (unix seconds; counts per trace interval). It
prints the WAPE of p50 and the p90 coverage on those rows, and the same for
last value and seasonal naive (day, week) on the same rows.

The default --warmup of 7 days gives every row a week-old interval for the
weekly seasonal naive baseline. A shorter one (--warmup 0: from the end of
the first interval) forecasts from there on and scores against the
baselines whose season fits in the history before the first target; the
others are reported as not scored.

Flags:
`

func runForecast(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("forecast", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, forecastUsage); fs.PrintDefaults() }
	trace := fs.String("trace", "", "timestamp,requests CSV to forecast")
	horizon := fs.Duration("horizon", 15*time.Minute, "how far ahead the scored interval ends")
	every := fs.Duration("every", 0, "time between forecast origins (default: the trace step)")
	warmup := fs.Duration("warmup", predict.DefaultWarmup, "history before the first origin (0: from the end of the first interval)")
	out := fs.String("out", "", "CSV file to write the forecasts to")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("forecast: unexpected arguments %q", fs.Args())
	}
	if *trace == "" || *out == "" {
		fs.Usage()
		return errors.New("forecast: --trace and --out are required")
	}
	if *warmup < 0 {
		return fmt.Errorf("forecast: --warmup %s must not be negative (0 forecasts from the end of the first interval)", *warmup)
	}
	s, err := history.LoadCSV(*trace)
	if err != nil {
		return fmt.Errorf("forecast: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	res, err := predict.Backtest(s, predict.BacktestConfig{Horizon: *horizon, Every: *every, Warmup: *warmup})
	if errors.Is(err, predict.ErrTraceTooShort) && *warmup >= predict.DefaultWarmup {
		return fmt.Errorf("forecast: %s: %w (a --warmup of 7 days is for the weekly seasonal naive baseline, which needs 7 days of history: a shorter --warmup forecasts this trace and scores it against the baselines that fit)", *trace, err)
	}
	if err != nil {
		return fmt.Errorf("forecast: %s: %w", *trace, err)
	}
	rows := res.Rows
	if len(rows) == 0 {
		return fmt.Errorf("forecast: %s: no rows to score (every target, or a baseline for it, fell in a gap of the trace)", *trace)
	}
	if err := writeForecasts(*out, rows); err != nil {
		return fmt.Errorf("forecast: --out %s: %w", *out, err)
	}
	printScores(stdout, filepath.Base(*trace), s.Step, *horizon, rows, res.Missing)
	printEvents(stdout, res.Events, s.Step)
	return nil
}

// writeForecasts writes the rows to path through a temporary file, so that a
// failed run never leaves half a file behind. Its errors are about path,
// not the temporary file: they say what went wrong (no such file or
// directory, permission denied), the caller names path.
func writeForecasts(path string, rows []predict.Row) (err error) {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".forecasts-*.csv")
	if err != nil {
		return withoutTempName(err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
			err = withoutTempName(err)
		}
	}()
	w := bufio.NewWriter(tmp)
	fmt.Fprintln(w, "origin,target,p50,p90,p99")
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
	for _, r := range rows {
		fmt.Fprintf(w, "%d,%d,%s,%s,%s\n", r.Origin.Unix(), r.Target.Unix(), num(r.P50), num(r.P90), num(r.P99))
	}
	if err := w.Flush(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// withoutTempName drops the temporary file's name from a file error.
func withoutTempName(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError // the rename
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

func printScores(w io.Writer, name string, step, horizon time.Duration, rows []predict.Row, missing []predict.MissingBaseline) {
	sc := predict.ScoreRows(rows)
	fmt.Fprintf(w, "%s: step %s, horizon %s (the interval ending %s after each origin), %d forecasts\n",
		name, step, horizon, horizon, len(rows))
	fmt.Fprintf(w, "%-24s %9s %13s\n", "forecaster", "p50 WAPE", "p90 coverage")
	fmt.Fprintf(w, "%-24s %9.3f %13.3f\n", "infercast", sc.Forecast.WAPE, sc.Forecast.Coverage90)
	// Baselines have no interval: their coverage is the share of actuals at
	// or below their point forecast.
	for _, b := range []struct {
		name predict.Baseline
		sc   predict.Score
	}{{predict.LastValue, sc.LastValue}, {predict.NaiveDay, sc.NaiveDay}, {predict.NaiveWeek, sc.NaiveWeek}} {
		if i := slices.IndexFunc(missing, func(m predict.MissingBaseline) bool { return m.Baseline == b.name }); i >= 0 {
			fmt.Fprintf(w, "%-24s %9s %13s   not scored: %s\n", b.name, "-", "-", missing[i].Why)
			continue
		}
		fmt.Fprintf(w, "%-24s %9.3f %13.3f\n", b.name, b.sc.WAPE, b.sc.Coverage90)
	}
	fmt.Fprintln(w, "(a baseline has no interval: its coverage is the share of actuals at or below its point forecast)")
	best := sc.BestBaseline()
	fmt.Fprintf(w, "p50 WAPE vs best baseline: %+.1f%%\n", 100*(sc.Forecast.WAPE/best.WAPE-1))
	models := map[string]int{}
	for _, r := range rows {
		models[r.Model]++
	}
	names := make([]string, 0, len(models))
	for m := range models {
		names = append(names, m)
	}
	sort.Slice(names, func(i, j int) bool { return models[names[i]] > models[names[j]] })
	fmt.Fprint(w, "models chosen:")
	for _, m := range names {
		fmt.Fprintf(w, " %s %.1f%%", m, 100*float64(models[m])/float64(len(rows)))
	}
	fmt.Fprintln(w)
}

// printEvents says what the forecaster detected in the history and
// discounted: every outage and level shift, and a count of the rest.
func printEvents(w io.Writer, events []predict.Event, step time.Duration) {
	counts := map[string]int{}
	for _, e := range events {
		counts[e.Kind]++
	}
	fmt.Fprintf(w, "detected: %d gaps, %d spikes, %d dropouts, %d outages, %d level shifts\n",
		counts["gap"], counts["spike"], counts["dropout"], counts["outage"], counts["level-shift"])
	for _, e := range events {
		switch e.Kind {
		case "outage":
			fmt.Fprintf(w, "  outage      %s .. %s (%s of near-zero demand: forecast followed it, models kept their state)\n",
				e.Start.UTC().Format(time.RFC3339), e.End.UTC().Format(time.RFC3339), time.Duration(e.Intervals)*step)
		case "level-shift":
			fmt.Fprintf(w, "  level shift %s (%s, confirmed after %s: models re-levelled)\n",
				e.Start.UTC().Format(time.RFC3339), e.Detail, time.Duration(e.Intervals)*step)
		}
	}
}
