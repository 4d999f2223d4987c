package main

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/sim"
)

// writeBacktestTrace writes a daily-shaped trace of n minutes to dir.
func writeBacktestTrace(t *testing.T, dir string, minutes int) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("timestamp,requests\n")
	for i := range minutes {
		// 60..540 requests a minute over a 6-hour cycle.
		n := 300 + 240*math.Sin(2*math.Pi*float64(i)/360)
		fmt.Fprintf(&b, "%d,%d\n", 1_700_000_000+60*i, int(n))
	}
	p := filepath.Join(dir, "trace.csv")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func writeBacktestPool(t *testing.T, dir, name string, data []int) string {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"metadata": map[string]any{"gap_seconds": 60}, "data": data})
	p := filepath.Join(dir, name+".json")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// readCSV reads a whole CSV file the command wrote.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return rows
}

// recordedDecisions replays decisions.csv as a policy.
type recordedDecisions struct {
	byTime map[int64][2]int
}

func (r recordedDecisions) Decide(o *sim.Observation) (int, int) {
	d := r.byTime[o.Time.Unix()]
	return d[0], d[1]
}

func TestBacktestCommand(t *testing.T) {
	dir := t.TempDir()
	trace := writeBacktestTrace(t, dir, 12*60)
	var down []int
	for i := range 12 * 60 {
		v := 1
		if i%90 >= 60 { // down 30 minutes in every 90
			v = 0
		}
		down = append(down, v)
	}
	a := writeBacktestPool(t, dir, "zone-a", down)
	b := writeBacktestPool(t, dir, "zone-b", append(down[45:], down[:45]...))
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"backtest", "--trace", trace, "--spot", a, "--spot", b,
		"--scale", "2", "--cold-start", "120", "--timeout", "30s", "--out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("backtest: %v\nstderr: %s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "infercast") || !strings.Contains(stdout.String(), "reactive") {
		t.Errorf("stdout lacks the summary table:\n%s", stdout.String())
	}

	// summary.json: the policy's fields at the top level, the same fields
	// under each baseline.
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var top map[string]any
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	fields := []string{"requests", "met", "dropped", "slo_attainment", "cost_dollars", "on_demand_replica_hours",
		"spot_replica_hours", "spot_interruptions", "oracle_cost_dollars", "spot_aware_oracle_cost_dollars",
		"cost_over_oracle", "cost_over_spot_aware_oracle"}
	baselines, _ := top["baselines"].(map[string]any)
	for _, f := range fields {
		if _, ok := top[f]; !ok {
			t.Errorf("summary.json lacks %s", f)
		}
		for _, name := range []string{"reactive", "static"} {
			bl, _ := baselines[name].(map[string]any)
			if _, ok := bl[f]; !ok {
				t.Errorf("summary.json lacks baselines.%s.%s", name, f)
			}
		}
	}
	var sum sim.SummaryFile
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	// Flags reached the model.
	if sum.Config.ColdStartSeconds != 120 || sum.Config.TimeoutSeconds != 30 || sum.Scale != 2 || len(sum.SpotPools) != 2 {
		t.Errorf("config = %+v, scale %v, pools %v", sum.Config, sum.Scale, sum.SpotPools)
	}
	if want := 2 * 12 * 60 * 300.0; math.Abs(sum.Requests-want) > 0.02*want {
		t.Errorf("requests = %v, want about %v", sum.Requests, want)
	}

	// decisions.csv: one row per decision time, 15 s apart; replayed
	// through the model it gives summary.json's numbers exactly.
	rows := readCSV(t, filepath.Join(out, "decisions.csv"))
	if strings.Join(rows[0], ",") != "timestamp,desired_on_demand,desired_spot" || len(rows)-1 != sum.Decisions || sum.Decisions != 12*60*4 {
		t.Fatalf("decisions.csv: header %v, %d rows, summary says %d decisions", rows[0], len(rows)-1, sum.Decisions)
	}
	rec := recordedDecisions{byTime: map[int64][2]int{}}
	spotUsed := false
	for i, r := range rows[1:] {
		ts, _ := strconv.ParseInt(r[0], 10, 64)
		od, _ := strconv.Atoi(r[1])
		sp, _ := strconv.Atoi(r[2])
		if want := int64(1_700_000_000 + 15*i); ts != want {
			t.Fatalf("row %d: timestamp %d, want %d", i+2, ts, want)
		}
		rec.byTime[ts] = [2]int{od, sp}
		spotUsed = spotUsed || sp > 0
	}
	if !spotUsed {
		t.Error("the planner never asked for spot")
	}
	tr, err := sim.LoadTrace(context.Background(), trace)
	if err != nil {
		t.Fatal(err)
	}
	var pools []*sim.Pool
	for _, p := range []string{a, b} {
		pl, err := sim.LoadPool(context.Background(), p)
		if err != nil {
			t.Fatal(err)
		}
		pools = append(pools, pl)
	}
	cfg := sim.DefaultConfig()
	cfg.ColdStart, cfg.Timeout = 120*time.Second, 30*time.Second
	sc, err := sim.NewScenario(cfg, tr, 2, pools)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sc.Run(context.Background(), rec, sim.RunOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Summary.CostDollars != sum.CostDollars || res.Summary.Met != sum.Met || res.Summary.SpotInterruptions != sum.SpotInterruptions {
		t.Errorf("replaying decisions.csv: cost %v met %v notices %d; summary.json: %v %v %d",
			res.Summary.CostDollars, res.Summary.Met, res.Summary.SpotInterruptions, sum.CostDollars, sum.Met, sum.SpotInterruptions)
	}

	// report.html: self-contained, with the plots and the table.
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	page := string(html)
	if n := strings.Count(page, "<svg"); n < 4 {
		t.Errorf("report.html has %d plots, want at least 4", n)
	}
	for _, s := range []string{"Against the baselines", "reactive", "static", "Where requests missed the SLO", "Cost over time", "The spot market"} {
		if !strings.Contains(page, s) {
			t.Errorf("report.html lacks %q", s)
		}
	}
	// No external assets: nothing is fetched (xmlns names are not fetches).
	if m := regexp.MustCompile(`(?i)(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*['"]?https?:`).FindString(page); m != "" {
		t.Errorf("report.html loads an external asset: %q", m)
	}
	for _, name := range []string{"decisions.csv", "summary.json", "report.html"} {
		st, err := os.Stat(filepath.Join(out, name))
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v, mode %v", name, err, st.Mode())
		}
	}
}

// Flags override the policy file; the policy file overrides the defaults.
func TestBacktestPolicyFileAndOverrides(t *testing.T) {
	dir := t.TempDir()
	trace := writeBacktestTrace(t, dir, 60)
	pol := filepath.Join(dir, "policy.yaml")
	y := strings.Replace(string(capacity.BacktestPolicy), "mu: 2", "mu: 3", 1)
	y = strings.Replace(y, "cold_start: 180s", "cold_start: 90s", 1)
	y = strings.Replace(y, "price_per_hour: 1.4", "price_per_hour: 1.1", 1)
	if err := os.WriteFile(pol, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"backtest", "--trace", trace, "--policy", pol, "--mu", "4",
		"--compare", "", "--out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("backtest: %v\n%s", err, stderr.String())
	}
	sum := readSummary(t, out)
	c := sum.Config
	if c.Mu != 4 || c.ColdStartSeconds != 90 || c.PriceSpot != 1.1 || c.PriceOnDemand != 4 || c.QueueSLOSeconds != 5 {
		t.Errorf("config = %+v: want mu 4 (flag), cold start 90 and spot $1.1 (file), on-demand $4 and queue SLO 5 (both)", c)
	}
	if len(sum.Baselines) != 0 {
		t.Errorf("--compare '' ran baselines %v", sum.Baselines)
	}
}

// A key the policy writes as 0 is 0 — in summary.json's config and in the
// workload the planner runs — not the backtest's default; a flag still
// overrides it, and a key left out still takes the default.
func TestBacktestPolicyZeros(t *testing.T) {
	dir := t.TempDir()
	trace := writeBacktestTrace(t, dir, 60)
	zero := strings.Replace(string(capacity.BacktestPolicy), "queue_slo: 5s", "queue_slo: 0s", 1)
	zero = strings.Replace(zero, "notice: 120s", "notice: 0s", 1)
	zero = strings.Replace(zero, "price_per_hour: 4.0", "price_per_hour: 0", 1)
	zero = strings.Replace(zero, "price_per_hour: 1.4", "price_per_hour: 0", 1)
	pol := filepath.Join(dir, "zero.yaml")
	if err := os.WriteFile(pol, []byte(zero), 0o644); err != nil {
		t.Fatal(err)
	}
	config := func(args ...string) sim.ConfigJSON {
		t.Helper()
		out := filepath.Join(t.TempDir(), "out")
		var stdout, stderr bytes.Buffer
		if err := dispatch(context.Background(), append([]string{"backtest", "--trace", trace, "--compare", "", "--out", out}, args...), &stdout, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		return readSummary(t, out).Config
	}
	if c := config("--policy", pol); c.QueueSLOSeconds != 0 || c.NoticeSeconds != 0 || c.PriceOnDemand != 0 || c.PriceSpot != 0 {
		t.Errorf("policy of zeros: config %+v, want queue SLO, notice and both prices 0", c)
	}
	if c := config("--policy", pol, "--queue-slo", "3", "--notice", "30", "--price-on-demand", "2", "--price-spot", "0.5"); c.QueueSLOSeconds != 3 || c.NoticeSeconds != 30 || c.PriceOnDemand != 2 || c.PriceSpot != 0.5 {
		t.Errorf("flags over a policy of zeros: config %+v, want the flags' 3 s, 30 s, $2, $0.5", c)
	}
	// Left out, the same keys take the defaults.
	absent := strings.Replace(zero, "    queue_slo: 0s\n", "", 1)
	absent = strings.Replace(absent, "        notice: 0s\n", "", 1)
	absent = strings.Replace(absent, "        price_per_hour: 0\n", "", 2)
	if absent == zero {
		t.Fatal("the policy's keys were not removed")
	}
	os.WriteFile(pol, []byte(absent), 0o644)
	d := sim.DefaultConfig()
	if c := config("--policy", pol); c.QueueSLOSeconds != d.QueueSLO.Seconds() || c.NoticeSeconds != d.Notice.Seconds() || c.PriceOnDemand != d.PriceOnDemand || c.PriceSpot != d.PriceSpot {
		t.Errorf("policy without the keys: config %+v, want the defaults %+v", c, d.JSON())
	}

	// The planner gets the zeros too.
	os.WriteFile(pol, []byte(zero), 0o644)
	a := &backtestArgs{cfg: sim.DefaultConfig(), set: map[string]bool{}, policy: pol}
	bp, err := loadBacktestPolicy(a)
	if err != nil {
		t.Fatal(err)
	}
	w := bp.w
	if err := mergeBacktestConfig(a, &w, bp.name, bp.given, 3); err != nil {
		t.Fatal(err)
	}
	if w.QueueSLO != 0 || w.Tiers.Spot.Notice != 0 || w.Tiers.OnDemand.PricePerHour != 0 || w.Tiers.Spot.PricePerHour != 0 {
		t.Errorf("planner's workload: queue SLO %v, notice %v, prices %v/%v; want 0 each", w.QueueSLO, w.Tiers.Spot.Notice, w.Tiers.OnDemand.PricePerHour, w.Tiers.Spot.PricePerHour)
	}
}

// A merged value the model cannot run is an error naming where it came
// from: the policy file and key, or the flag.
func TestBacktestMergedConfigErrors(t *testing.T) {
	dir := t.TempDir()
	trace := writeBacktestTrace(t, dir, 30)
	pol := filepath.Join(dir, "slow.yaml")
	os.WriteFile(pol, []byte(strings.Replace(string(capacity.BacktestPolicy), "queue_slo: 5s", "queue_slo: 2m", 1)), 0o644)
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--policy", pol}, pol + `: workload "chat": queue_slo: queue SLO 2m0s is longer than the timeout 1m0s (the default)`},
		{[]string{"--policy", pol, "--timeout", "90s"}, pol + `: workload "chat": queue_slo: queue SLO 2m0s is longer than the timeout 1m30s (--timeout)`},
		{[]string{"--price-spot", "-1"}, "--price-spot: price -1 must be finite and not negative"},
		{[]string{"--mu", "-2"}, "--mu: mu -2 must be positive and finite"},
	} {
		var stdout, stderr bytes.Buffer
		err := dispatch(context.Background(), append([]string{"backtest", "--trace", trace, "--out", out}, tc.args...), &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: err = %v, want one containing %q", tc.args, err, tc.want)
		}
	}
	// With a timeout that allows it, the policy's queue SLO runs.
	var stdout, stderr bytes.Buffer
	if err := dispatch(context.Background(), []string{"backtest", "--trace", trace, "--out", out, "--compare", "", "--policy", pol, "--timeout", "3m"}, &stdout, &stderr); err != nil {
		t.Fatalf("queue_slo 2m, --timeout 3m: %v", err)
	}
}

func TestBacktestErrors(t *testing.T) {
	dir := t.TempDir()
	good := writeBacktestTrace(t, dir, 30)
	uneven := filepath.Join(dir, "uneven.csv")
	os.WriteFile(uneven, []byte("timestamp,requests\n0,1\n60,1\n130,1\n"), 0o644)
	empty := filepath.Join(dir, "empty.csv")
	os.WriteFile(empty, nil, 0o644)
	negative := filepath.Join(dir, "negative.csv")
	os.WriteFile(negative, []byte("timestamp,requests\n0,1\n60,-1\n"), 0o644)
	badSpot := filepath.Join(dir, "spot.json")
	os.WriteFile(badSpot, []byte("{\"metadata\": {\"gap_seconds\": 60},\n \"data\": {\"a\": 1}}"), 0o644)
	millis := filepath.Join(dir, "millis.csv")
	os.WriteFile(millis, []byte("timestamp,requests\n1700000000000,1\n1700000060000,1\n"), 0o644)
	badPolicy := filepath.Join(dir, "policy.yaml")
	os.WriteFile(badPolicy, []byte("workloads:\n  - name: x\n    mu: 2\n    colds_start: 3m\n"), 0o644)
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no trace", []string{"--out", out}, "--trace is required"},
		{"no out", []string{"--trace", good}, "--out is required"},
		{"unknown baseline", []string{"--trace", good, "--out", out, "--compare", "reactive,magic"}, `unknown baseline "magic"`},
		{"bad seconds", []string{"--trace", good, "--out", out, "--cold-start", "soon"}, `"soon" is neither seconds nor a duration`},
		{"uneven trace", []string{"--trace", uneven, "--out", out}, uneven + ":4: unevenly spaced"},
		{"empty trace", []string{"--trace", empty, "--out", out}, empty + ": empty file"},
		{"negative count", []string{"--trace", negative, "--out", out}, negative + ":3: negative count"},
		{"spot of the wrong shape", []string{"--trace", good, "--spot", badSpot, "--out", out}, badSpot + ":2: wrong shape: data is a JSON object"},
		{"bad policy", []string{"--trace", good, "--policy", badPolicy, "--out", out}, badPolicy},
		{"bad mu", []string{"--trace", good, "--mu", "0", "--out", out}, "mu 0 must be positive"},
		{"missing file", []string{"--trace", filepath.Join(dir, "nope.csv"), "--out", out}, "nope.csv"},
		{"milliseconds", []string{"--trace", millis, "--out", out}, millis + ":2: timestamp 1700000000000 is after the year 9999 in unix seconds: milliseconds?"},
		{"a run that fails", []string{"--trace", good, "--mu", "0.00001", "--compare", "reactive", "--out", out}, "backtest reactive: policy reactive"},
		{"sweep without values", []string{"--trace", good, "--out", out, "--sweep", "forecast_quantile"}, `--sweep "forecast_quantile": want KEY=V1,V2,...`},
		{"sweep with an empty value", []string{"--trace", good, "--out", out, "--sweep", "forecast_quantile=0.9,,0.95"}, `an empty value`},
		{"sweep of a typo", []string{"--trace", good, "--out", out, "--sweep", "forecast_quantil=0.9"}, `forecast_quantil: unknown field`},
		{"sweep out of range", []string{"--trace", good, "--out", out, "--sweep", "forecast_quantile=0.9,2"},
			`--sweep forecast_quantile=2: built-in backtest policy:`},
		{"sweep out of range names the field", []string{"--trace", good, "--out", out, "--sweep", "forecast_quantile=0.9,2"},
			`forecast_quantile: 2 must be in [0.5, 0.99]`},
		{"sweep of the cluster", []string{"--trace", good, "--out", out, "--sweep", "cold_start=60s,180s"}, `the backtest sets cold_start from --cold-start`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := dispatch(context.Background(), append([]string{"backtest"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
		})
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a failed backtest left an output directory")
	}
}

// NaN and ±Inf in a float flag, and seconds no duration holds, are refused
// as the flags are read — before the trace is, and long before a run would
// fail writing summary.json.
func TestBacktestNonFiniteFlags(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	for _, tc := range []struct{ flag, value, want string }{
		{"--price-on-demand", "NaN", "--price-on-demand NaN: want a finite number"},
		{"--price-spot", "Inf", "--price-spot +Inf: want a finite number"},
		{"--mu", "Inf", "--mu +Inf: want a finite number"},
		{"--mu", "-Inf", "--mu -Inf: want a finite number"},
		{"--scale", "NaN", "--scale NaN: want a finite number"},
		{"--cold-start", "NaN", `invalid value "NaN" for flag -cold-start: "NaN" is not a number of seconds`},
		{"--notice", "+Inf", `invalid value "+Inf" for flag -notice: "+Inf" is not a number of seconds`},
		{"--timeout", "1e300", `invalid value "1e300" for flag -timeout: "1e300" seconds is longer than a duration holds (9223372037 s)`},
	} {
		var stdout, stderr bytes.Buffer
		err := dispatch(context.Background(), []string{"backtest", "--trace", filepath.Join(dir, "nope.csv"), tc.flag, tc.value, "--out", out}, &stdout, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "nope.csv") {
			t.Errorf("%s %s: err = %v, want one containing %q before the trace is read", tc.flag, tc.value, err, tc.want)
		}
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a refused flag left an output directory")
	}
}

// Every output is rendered before the first is written: one that cannot be
// rendered leaves neither a new directory nor a changed file behind.
func TestBacktestOutputsAllOrNothing(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	ok := func(s string) func(io.Writer) error {
		return func(w io.Writer) error { _, err := io.WriteString(w, s); return err }
	}
	fail := func(io.Writer) error { return errors.New("json: unsupported value: NaN") }
	_, _, err := writeBacktestOutputs(dir, []backtestOutput{{"decisions.csv", ok("new")}, {"summary.json", fail}, {"report.html", ok("new")}})
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "summary.json")+": json: unsupported value: NaN") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("a failed render left the output directory")
	}
	// An earlier run's files stay as they were.
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, "decisions.csv"), []byte("old"), 0o644)
	if _, _, err := writeBacktestOutputs(dir, []backtestOutput{{"decisions.csv", ok("new")}, {"summary.json", fail}}); err == nil {
		t.Fatal("no error")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "decisions.csv")); string(b) != "old" {
		t.Errorf("decisions.csv = %q after a failed render, want the earlier run's", b)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("output directory holds %d files, want the earlier decisions.csv only", len(ents))
	}
	paths, _, err := writeBacktestOutputs(dir, []backtestOutput{{"decisions.csv", ok("new")}, {"summary.json", ok("{}")}})
	if err != nil || len(paths) != 2 || paths[1] != filepath.Join(dir, "summary.json") {
		t.Fatalf("paths %v, err %v", paths, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "decisions.csv")); string(b) != "new" {
		t.Errorf("decisions.csv = %q, want the new run's", b)
	}
}

// --help shows the synopsis (every flag in it) and each flag's default
// once; a flag error, whichever check finds it, is the error and a hint,
// with no list of flags.
func TestBacktestHelpAndFlagErrors(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if err := dispatch(context.Background(), []string{"backtest", "--help"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("--help: err = %v", err)
	}
	help := stderr.String()
	synopsis, _, _ := strings.Cut(help, "\n\n")
	for _, f := range []string{"trace", "policy", "workload", "spot", "scale", "mu", "cold-start", "queue-slo", "timeout",
		"price-on-demand", "price-spot", "notice", "compare", "sweep", "out"} {
		if !strings.Contains(synopsis, "--"+f+" ") && !strings.Contains(synopsis, "--"+f+"\n") {
			t.Errorf("the synopsis lacks --%s:\n%s", f, synopsis)
		}
	}
	for _, line := range strings.Split(help, "\n") {
		if strings.Count(line, "(default") > 1 {
			t.Errorf("a default shown twice: %q", line)
		}
		if len(line) > 100 && !strings.HasPrefix(line, "    \t") {
			t.Errorf("a usage line of %d characters: %q", len(line), line)
		}
	}
	for _, f := range []string{"cold-start", "queue-slo", "timeout", "notice"} {
		_, rest, _ := strings.Cut(help, "  -"+f+" ")
		desc, _, _ := strings.Cut(rest, "\n  -")
		if strings.Count(desc, "(default ") != 1 {
			t.Errorf("-%s: %q, want one default", f, desc)
		}
	}

	dir := t.TempDir()
	good := writeBacktestTrace(t, dir, 30)
	out := filepath.Join(dir, "out")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--trace", good, "--out", out, "--sweep", "mu=1,2"}, "--sweep mu: the backtest sets mu from --mu"},
		{[]string{"--trace", good, "--out", out, "--compare", "bogus"}, `--compare: unknown baseline "bogus"`},
		{[]string{"--trace", good, "--out", out, "--mu", "abc"}, `invalid value "abc" for flag -mu`},
		{[]string{"--trace", good, "--out", out, "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"--out", out}, "--trace is required"},
	} {
		stderr.Reset()
		err := dispatch(context.Background(), append([]string{"backtest"}, tc.args...), &stdout, &stderr)
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) || !strings.HasSuffix(err.Error(), "\nrun 'adapter backtest --help' for the flags") {
			t.Errorf("%q: err = %v, want %q and the hint", tc.args, err, tc.want)
		}
		if stderr.Len() != 0 {
			t.Errorf("%q printed besides the error:\n%s", tc.args, stderr.String())
		}
	}
}

// The progress display: nothing for the first second, then a bar redrawn
// in place on a terminal, or a line per quarter otherwise.
func TestProgress(t *testing.T) {
	now := time.Unix(0, 0)
	clock := func() time.Time { return now }
	var buf bytes.Buffer
	p := &backtestProgress{w: &buf, runs: 2, now: clock}
	p.begin("infercast")
	now = now.Add(500 * time.Millisecond)
	p.update(50, 100)
	p.end()
	if buf.Len() != 0 {
		t.Fatalf("a run under a second printed %q", buf.String())
	}
	p.begin("reactive")
	for i := 1; i <= 10; i++ {
		now = now.Add(300 * time.Millisecond)
		p.update(i*10, 100)
	}
	p.end()
	want := "backtest: reactive (2/2) 40% after 1.2s\nbacktest: reactive (2/2) 50% after 1.5s\n" +
		"backtest: reactive (2/2) 80% after 2.4s\nbacktest: reactive (2/2) done in 3.0s\n"
	if buf.String() != want {
		t.Errorf("plain progress:\n%q\nwant\n%q", buf.String(), want)
	}

	buf.Reset()
	p = &backtestProgress{w: &buf, tty: true, runs: 1, now: clock}
	p.begin("infercast")
	now = now.Add(2 * time.Second)
	p.update(1, 2)
	p.end()
	got := buf.String()
	if !strings.HasPrefix(got, "\r1/1 infercast  [===============               ]  50%") || !strings.HasSuffix(got, "100%   2.0s\n") {
		t.Errorf("terminal progress = %q", got)
	}
}

// BenchmarkBacktestPlannerNASAJuly backtests the 28-day nasa-1995-07 trace
// (x10, spot-medium pools) through infercast's planner, as the command does:
// go test -run '^$' -bench BacktestPlanner -cpu 1 -benchtime 1x ./cmd/adapter
func BenchmarkBacktestPlannerNASAJuly(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(testutil.SharedDir(b), "traces")
	tr, err := sim.LoadTrace(ctx, filepath.Join(dir, "nasa-1995-07.csv"))
	if err != nil {
		b.Fatal(err)
	}
	var pools []*sim.Pool
	for _, z := range []string{"a", "b", "c"} {
		p, err := sim.LoadPool(ctx, filepath.Join(dir, "spot", "spot-medium-"+z+".json"))
		if err != nil {
			b.Fatal(err)
		}
		pools = append(pools, p)
	}
	a := &backtestArgs{cfg: sim.DefaultConfig(), set: map[string]bool{}}
	bp, err := loadBacktestPolicy(a)
	if err != nil {
		b.Fatal(err)
	}
	w := bp.w
	if err := mergeBacktestConfig(a, &w, bp.name, bp.given, len(pools)); err != nil {
		b.Fatal(err)
	}
	sc, err := sim.NewScenario(a.cfg, tr, 10, pools)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := sc.Run(ctx, newInfercastPolicy(w), sim.RunOptions{Name: "infercast"})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Summary.Decisions), "decisions")
	}
}

func TestBacktestWorkloadChoice(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "two.yaml")
	builtin := string(capacity.BacktestPolicy)
	_, workloads, _ := strings.Cut(builtin, "workloads:\n")
	second := strings.Replace(workloads, "name: chat", "name: embed", 1)
	second = strings.Replace(second, "mu: 2", "mu: 7", 1)
	if err := os.WriteFile(pol, []byte(builtin+second), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		workload string
		mu       float64
		err      string
	}{{"", 2, ""}, {"embed", 7, ""}, {"batch", 0, `no workload "batch"`}} {
		a := &backtestArgs{cfg: sim.DefaultConfig(), set: map[string]bool{}, policy: pol, workload: tc.workload}
		bp, err := loadBacktestPolicy(a)
		w := bp.w
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("--workload %q: err = %v, want %q", tc.workload, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("--workload %q: %v", tc.workload, err)
		}
		if err := mergeBacktestConfig(a, &w, bp.name, bp.given, 3); err != nil {
			t.Fatal(err)
		}
		if a.cfg.Mu != tc.mu || w.Mu != tc.mu || w.Tiers.Spot.FailureDomains != 3 {
			t.Errorf("--workload %q: config mu %v, workload mu %v, domains %d; want mu %v, 3 domains", tc.workload, a.cfg.Mu, w.Mu, w.Tiers.Spot.FailureDomains, tc.mu)
		}
	}
}

// --sweep reruns the policy once per value: a value equal to the policy's
// own reproduces the main run exactly, the values trade cost for
// attainment, and sweep.csv, the printed table and the report carry them.
func TestBacktestSweep(t *testing.T) {
	dir := t.TempDir()
	trace := writeBacktestTrace(t, dir, 24*60)
	out := filepath.Join(dir, "out")
	own := strconv.FormatFloat(mustBuiltinWorkload(t).ForecastQuantile, 'f', -1, 64)
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"backtest", "--trace", trace, "--out", out, "--compare", "reactive",
		"--sweep", "forecast_quantile=0.6, 0.99," + own + ",0.6"}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	sum := readSummary(t, out)
	rows := readCSV(t, filepath.Join(out, "sweep.csv"))
	if len(rows) != 4 || rows[0][0] != "forecast_quantile" || rows[0][7] != "cost_dollars" || rows[0][6] != "slo_attainment" {
		t.Fatalf("sweep.csv = %q (want a header and one row per distinct value)", rows)
	}
	byValue := map[string][]float64{}
	for _, r := range rows[1:] {
		att, _ := strconv.ParseFloat(r[6], 64)
		cost, _ := strconv.ParseFloat(r[7], 64)
		byValue[r[0]] = []float64{att, cost}
	}
	if got := byValue[own]; math.Abs(got[1]-sum.CostDollars) > 0.005 || math.Abs(got[0]-sum.SLOAttainment) > 1e-6 {
		t.Errorf("forecast_quantile=%s (the policy's own) gave %v, the main run $%.2f at %.6f", own, got, sum.CostDollars, sum.SLOAttainment)
	}
	lo, hi := byValue["0.6"], byValue["0.99"]
	if !(hi[1] > lo[1] && hi[0] >= lo[0]) {
		t.Errorf("forecast_quantile 0.99 ($%.2f, %.6f) should cost more than 0.6 ($%.2f, %.6f) and attain no less", hi[1], hi[0], lo[1], lo[0])
	}
	if !strings.Contains(stdout.String(), "sweep of forecast_quantile:") || !strings.Contains(stdout.String(), filepath.Join(out, "sweep.csv")) {
		t.Errorf("stdout = %s", stdout.String())
	}
	html, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"The policy with other values of forecast_quantile", "Cost against SLO attainment", "<td>0.99</td>"} {
		if !strings.Contains(string(html), want) {
			t.Errorf("report.html lacks %q", want)
		}
	}
}

// A run into an --out an earlier run used replaces that run's outputs and
// removes the ones it does not write (sweep.csv without --sweep); other
// files there stay.
func TestBacktestReusedOut(t *testing.T) {
	dir := t.TempDir()
	trace := writeBacktestTrace(t, dir, 60)
	out := filepath.Join(dir, "out")
	run := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if err := dispatch(context.Background(), append([]string{"backtest", "--trace", trace, "--compare", "", "--out", out}, args...), &stdout, &stderr); err != nil {
			t.Fatalf("%v\n%s", err, stderr.String())
		}
		return stdout.String()
	}
	run("--sweep", "forecast_quantile=0.9,0.95")
	if _, err := os.Stat(filepath.Join(out, "sweep.csv")); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(out, "notes.txt"), []byte("mine"), 0o644)
	stdout := run("--scale", "2")
	if _, err := os.Stat(filepath.Join(out, "sweep.csv")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("sweep.csv of the earlier run: %v, want it removed", err)
	}
	if !strings.Contains(stdout, "removed an earlier run's "+filepath.Join(out, "sweep.csv")) {
		t.Errorf("stdout does not say sweep.csv was removed:\n%s", stdout)
	}
	var names []string
	ents, _ := os.ReadDir(out)
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if got := strings.Join(names, ","); got != "decisions.csv,notes.txt,report.html,summary.json" {
		t.Errorf("--out holds %s, want this run's three files and notes.txt", got)
	}
	if strings.Contains(run("--scale", "3"), "removed") {
		t.Error("a run with nothing to remove says it removed something")
	}
}

// Spot files of the same name in different directories are told apart in
// summary.json and the printed summary.
func TestBacktestPoolNames(t *testing.T) {
	dir := t.TempDir()
	trace := writeBacktestTrace(t, dir, 60)
	var spots []string
	for _, d := range []string{"d1", "d2"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
		spots = append(spots, "--spot", writeBacktestPool(t, filepath.Join(dir, d), "zone", []int{1, 1, 0}))
	}
	out := filepath.Join(dir, "out")
	var stdout, stderr bytes.Buffer
	if err := dispatch(context.Background(), append([]string{"backtest", "--trace", trace, "--compare", "", "--out", out}, spots...), &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	sum := readSummary(t, out)
	if got := strings.Join(sum.SpotPools, ", "); got != "d1/zone, d2/zone" {
		t.Errorf("summary.json spot_pools = %q, want d1/zone, d2/zone", got)
	}
	if !strings.Contains(stdout.String(), "spot pools: d1/zone, d2/zone\n") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func mustBuiltinWorkload(t *testing.T) capacity.Workload {
	t.Helper()
	p, err := capacity.ParsePolicy("built-in", capacity.BacktestPolicy)
	if err != nil {
		t.Fatal(err)
	}
	return p.Workloads[0]
}

// readSummary reads the summary.json a backtest wrote to out.
func readSummary(t *testing.T, out string) sim.SummaryFile {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var sum sim.SummaryFile
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	return sum
}
