package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/infercast/infercast/internal/simplanner"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/sim"
	"github.com/infercast/infercast/pkg/sim/report"
)

func init() {
	register("backtest", command{
		summary: "replay a trace through a policy, report cost and SLO",
		run:     runBacktest,
	})
}

// backtestUsage is printed by -h.
const backtestUsage = `usage: adapter backtest --trace FILE [--policy POLICY.yaml] [--workload NAME]
    [--spot POOL.json ...] [--scale X] [--mu R] [--cold-start S]
    [--queue-slo S] [--timeout S] [--price-on-demand P] [--price-spot P]
    [--notice S] [--compare reactive,static] [--sweep KEY=V1,V2,...] --out DIR

Replays a timestamp,requests trace through infercast's planner on the
cluster model of SIMULATION.md (docs/backtest.md) and writes decisions.csv,
summary.json and report.html to DIR. Flags override the policy file.
--sweep reruns the policy once per value of one of its workload's keys
(forecast_quantile=0.95,0.975,0.99) and adds sweep.csv and a table.
Durations (S) are seconds ("180") or Go durations ("3m").
`

// backtestBaselines are the --compare values, in report order.
var backtestBaselines = []string{"reactive", "static"}

type backtestArgs struct {
	trace, policy, workload, out string
	spots                        []string
	scale                        float64
	compare                      []string
	sweep                        *backtestSweep
	cfg                          sim.Config
	set                          map[string]bool // flags given on the command line
}

// backtestSeconds accepts "180" (seconds) or a Go duration ("3m").
type backtestSeconds struct{ d *time.Duration }

func (s backtestSeconds) String() string {
	if s.d == nil {
		return ""
	}
	return strconv.FormatFloat(s.d.Seconds(), 'f', -1, 64)
}

func (s backtestSeconds) Set(v string) error {
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		switch {
		case math.IsNaN(f) || math.IsInf(f, 0):
			return fmt.Errorf("%q is not a number of seconds", v)
		case f < 0:
			return fmt.Errorf("%q must not be negative", v)
		case f*float64(time.Second) >= math.MaxInt64:
			return fmt.Errorf("%q seconds is longer than a duration holds (%.0f s)", v, time.Duration(math.MaxInt64).Seconds())
		}
		*s.d = time.Duration(f * float64(time.Second))
		return nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("%q is neither seconds nor a duration", v)
	}
	if d < 0 {
		return fmt.Errorf("%q must not be negative", v)
	}
	*s.d = d
	return nil
}

type backtestList struct{ l *[]string }

func (f backtestList) String() string {
	if f.l == nil {
		return ""
	}
	return strings.Join(*f.l, ",")
}

func (f backtestList) Set(v string) error { *f.l = append(*f.l, v); return nil }

func parseBacktestArgs(args []string, stderr io.Writer) (*backtestArgs, error) {
	a := &backtestArgs{cfg: sim.DefaultConfig(), set: map[string]bool{}}
	fs := flag.NewFlagSet("backtest", flag.ContinueOnError)
	// A flag error is the error and a hint (backtestFlagError), whichever
	// check finds it; only -h prints the usage and the flags.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&a.trace, "trace", "", "`FILE`: timestamp,requests CSV, evenly spaced (required)")
	fs.StringVar(&a.policy, "policy", "", "`POLICY.yaml`: the planner's policy file (default: the built-in backtest policy)")
	fs.StringVar(&a.workload, "workload", "", "the workload of the policy file to plan (default: its first)")
	fs.Var(backtestList{&a.spots}, "spot", "`POOL.json`: a spot pool's availability; repeat once per pool (default: one pool, always available)")
	fs.Float64Var(&a.scale, "scale", 1, "multiply every count by `X`")
	fs.Float64Var(&a.cfg.Mu, "mu", a.cfg.Mu, "requests/s one ready replica serves within its latency SLO")
	fs.Var(backtestSeconds{&a.cfg.ColdStart}, "cold-start", "`S`econds from launch to ready")
	fs.Var(backtestSeconds{&a.cfg.QueueSLO}, "queue-slo", "`S`econds a request may wait and still be met")
	fs.Var(backtestSeconds{&a.cfg.Timeout}, "timeout", "`S`econds after which a waiting request is dropped")
	fs.Float64Var(&a.cfg.PriceOnDemand, "price-on-demand", a.cfg.PriceOnDemand, "$ per on-demand replica-hour")
	fs.Float64Var(&a.cfg.PriceSpot, "price-spot", a.cfg.PriceSpot, "$ per spot replica-hour")
	fs.Var(backtestSeconds{&a.cfg.Notice}, "notice", "`S`econds from a spot interruption notice to termination")
	compare := fs.String("compare", "reactive,static", "baselines to run beside the policy, comma-separated (reactive, static; empty for none)")
	sweep := fs.String("sweep", "", "`KEY=V1,V2,...`: rerun the policy once per value of one key of its workload (e.g. forecast_quantile=0.95,0.975,0.99, scale_down.stabilization=2m,5m) and write sweep.csv")
	fs.StringVar(&a.out, "out", "", "`DIR` for decisions.csv, summary.json and report.html (required)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Fprint(stderr, backtestUsage)
			fmt.Fprintln(stderr, "\nflags:")
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, backtestFlagError(err)
	}
	fs.Visit(func(f *flag.Flag) { a.set[f.Name] = true })
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	if a.trace == "" {
		errs = append(errs, errors.New("--trace is required"))
	}
	if a.out == "" {
		errs = append(errs, errors.New("--out is required"))
	}
	// NaN and ±Inf parse as floats; the model would run on them and fail
	// writing summary.json.
	for _, f := range []struct {
		flag string
		v    float64
	}{{"scale", a.scale}, {"mu", a.cfg.Mu}, {"price-on-demand", a.cfg.PriceOnDemand}, {"price-spot", a.cfg.PriceSpot}} {
		if math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			errs = append(errs, fmt.Errorf("--%s %v: want a finite number", f.flag, f.v))
		}
	}
	for _, c := range strings.Split(*compare, ",") {
		c = strings.TrimSpace(c)
		switch {
		case c == "":
		case !slices.Contains(backtestBaselines, c):
			errs = append(errs, fmt.Errorf("--compare: unknown baseline %q (want %s)", c, strings.Join(backtestBaselines, ", ")))
		case !slices.Contains(a.compare, c):
			a.compare = append(a.compare, c)
		}
	}
	if *sweep != "" {
		var err error
		if a.sweep, err = parseBacktestSweep(*sweep); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, backtestFlagError(err)
	}
	return a, nil
}

// backtestFlagError is a flag error as the command reports it: the error,
// then where the flags are listed, not the whole list.
func backtestFlagError(err error) error {
	return fmt.Errorf("%w\nrun 'adapter backtest --help' for the flags", err)
}

// backtestPolicy is the policy's source (sweeps reparse it) and the
// workload picked from it.
type backtestPolicy struct {
	name  string // for errors: the file, or the built-in policy
	src   []byte
	w     capacity.Workload
	given func(path ...string) bool // the keys w's entry writes (capacity.Policy.Given)
}

// loadBacktestPolicy reads the policy file (or the built-in one) and picks
// the workload to plan.
func loadBacktestPolicy(a *backtestArgs) (backtestPolicy, error) {
	p := backtestPolicy{name: "built-in backtest policy", src: capacity.BacktestPolicy}
	if a.policy != "" {
		var err error
		if p.src, err = os.ReadFile(a.policy); err != nil {
			return p, err
		}
		p.name = a.policy
	}
	pol, err := capacity.ParsePolicy(p.name, p.src)
	if err != nil {
		return p, err
	}
	p.w, err = pickBacktestWorkload(a, p.name, pol)
	p.given = workloadGiven(pol, p.w.Name)
	return p, err
}

// workloadGiven is pol.Given for one workload.
func workloadGiven(pol *capacity.Policy, workload string) func(path ...string) bool {
	return func(path ...string) bool { return pol.Given(workload, path...) }
}

func pickBacktestWorkload(a *backtestArgs, name string, pol *capacity.Policy) (capacity.Workload, error) {
	if len(pol.Workloads) == 0 {
		return capacity.Workload{}, fmt.Errorf("%s: no workloads", name)
	}
	if a.workload == "" {
		return pol.Workloads[0], nil
	}
	w, ok := pol.Workload(a.workload)
	if !ok {
		return capacity.Workload{}, fmt.Errorf("%s: no workload %q", name, a.workload)
	}
	return *w, nil
}

// mergeBacktestConfig applies the precedence defaults < policy file < flags:
// a value the workload's entry writes (given, even 0: "a key written as 0
// is 0") replaces the default where the flag was not given, and the result
// is written back into the workload so that the planner sizes for the very
// cluster it is tested on. A merged value the model cannot run is an
// error naming where it came from: the flag, or the policy file and key.
// polName names the policy in errors. --sweep refuses the keys it reads
// (sweepModelKeys).
func mergeBacktestConfig(a *backtestArgs, w *capacity.Workload, polName string, given func(path ...string) bool, pools int) error {
	c := &a.cfg
	from := map[string]string{} // flag -> where its value came from
	origin := func(flag string) string {
		if s, ok := from[flag]; ok {
			return s
		}
		if a.set[flag] {
			return "--" + flag
		}
		return "the default"
	}
	// take says whether the policy's value at path sets flag's value.
	take := func(flag string, path ...string) bool {
		if a.set[flag] || !given(path...) {
			return false
		}
		from[flag] = fmt.Sprintf("%s: workload %q: %s", polName, w.Name, strings.Join(path, "."))
		return true
	}
	if take("mu", "mu") {
		c.Mu = w.Mu
	}
	if take("cold-start", "cold_start") {
		c.ColdStart = w.ColdStart
	}
	if take("queue-slo", "queue_slo") {
		c.QueueSLO = w.QueueSLO
	}
	if od := w.Tiers.OnDemand; od != nil && take("price-on-demand", "tiers", "on_demand", "price_per_hour") {
		c.PriceOnDemand = od.PricePerHour
	}
	if sp := w.Tiers.Spot; sp != nil {
		if take("price-spot", "tiers", "spot", "price_per_hour") {
			c.PriceSpot = sp.PricePerHour
		}
		if take("notice", "tiers", "spot", "notice") {
			c.Notice = sp.Notice
		}
	}

	var errs []error
	bad := func(flag, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", origin(flag), fmt.Sprintf(format, args...)))
	}
	if !(c.Mu > 0) || math.IsInf(c.Mu, 0) {
		bad("mu", "mu %v must be positive and finite", c.Mu)
	}
	for _, d := range []struct {
		flag, what string
		v          time.Duration
	}{{"cold-start", "cold start", c.ColdStart}, {"queue-slo", "queue SLO", c.QueueSLO}, {"timeout", "timeout", c.Timeout}, {"notice", "notice", c.Notice}} {
		if d.v < 0 {
			bad(d.flag, "%s %v must not be negative", d.what, d.v)
		}
	}
	if c.Timeout < c.QueueSLO {
		bad("queue-slo", "queue SLO %v is longer than the timeout %v (%s): a request would be dropped before it could be late", c.QueueSLO, c.Timeout, origin("timeout"))
	}
	for _, p := range []struct {
		flag string
		v    float64
	}{{"price-on-demand", c.PriceOnDemand}, {"price-spot", c.PriceSpot}} {
		if !(p.v >= 0) || math.IsInf(p.v, 0) {
			bad(p.flag, "price %v must be finite and not negative", p.v)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}

	w.Mu, w.ColdStart, w.QueueSLO = c.Mu, c.ColdStart, c.QueueSLO
	if w.Tiers.OnDemand != nil {
		w.Tiers.OnDemand.PricePerHour = c.PriceOnDemand
	}
	if sp := w.Tiers.Spot; sp != nil {
		sp.PricePerHour, sp.Notice = c.PriceSpot, c.Notice
		sp.FailureDomains = max(1, pools)
	}
	return nil
}

// newInfercastPolicy is where the backtest builds infercast's policy: the
// planner that `adapter serve` runs, fed by the same online forecaster
// (internal/simplanner, which the planner's own backtest tests use too).
func newInfercastPolicy(w capacity.Workload) sim.Policy { return simplanner.New(w) }

func runBacktest(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	a, err := parseBacktestArgs(args, stderr)
	if err != nil {
		return err
	}
	pol, err := loadBacktestPolicy(a)
	if err != nil {
		return err
	}
	w := pol.w
	tr, err := sim.LoadTrace(ctx, a.trace)
	if err != nil {
		return err
	}
	var pools []*sim.Pool
	for _, f := range a.spots {
		p, err := sim.LoadPool(ctx, f)
		if err != nil {
			return err
		}
		pools = append(pools, p)
	}
	for i, name := range sim.PoolNames(a.spots) {
		pools[i].Name = name // d1/zone and d2/zone, not zone twice
	}
	if err := mergeBacktestConfig(a, &w, pol.name, pol.given, len(pools)); err != nil {
		return err
	}
	var variants []capacity.Workload
	if a.sweep != nil {
		if variants, err = a.sweep.workloads(a, pol.name, pol.src, len(pools)); err != nil {
			return err
		}
	}
	if w.DecisionInterval != a.cfg.Interval {
		// SIMULATION.md fixes the decision interval; say so rather than
		// silently deciding at another pace than the policy asks.
		fmt.Fprintf(stderr, "backtest: the policy's decision_interval is %v; the model decides every %v\n", w.DecisionInterval, a.cfg.Interval)
	}
	sc, err := sim.NewScenario(a.cfg, tr, a.scale, pools)
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	// The directory is made once every output is rendered; refuse now an
	// --out that cannot be one.
	if st, err := os.Stat(a.out); err == nil && !st.IsDir() {
		return fmt.Errorf("backtest: --out %s: not a directory", a.out)
	}

	prog := newBacktestProgress(stderr, 1+len(a.compare)+len(variants))
	run := func(name string, p sim.Policy) (*sim.Result, error) {
		prog.begin(name)
		res, err := sc.Run(ctx, p, sim.RunOptions{Name: name, Progress: prog.update})
		prog.end()
		if err != nil {
			return nil, fmt.Errorf("backtest %s: %w", name, err)
		}
		return res, nil
	}
	res, err := run("infercast", newInfercastPolicy(w))
	if err != nil {
		return err
	}
	baselines := map[string]*sim.Result{}
	for _, name := range a.compare {
		var p sim.Policy
		switch name {
		case "reactive":
			p = sim.NewReactive(a.cfg)
		case "static":
			p = sim.StaticPeak(sc)
		}
		if baselines[name], err = run(name, p); err != nil {
			return err
		}
	}

	var sweep *report.Sweep
	if a.sweep != nil {
		sweep = &report.Sweep{Key: a.sweep.key}
		for i, vw := range variants {
			r, err := run(a.sweep.key+"="+a.sweep.values[i], newInfercastPolicy(vw))
			if err != nil {
				return err
			}
			sweep.Runs = append(sweep.Runs, report.SweepRun{Value: a.sweep.values[i], Target: vw.TargetAvailability, Summary: r.Summary})
		}
	}

	sum := sim.NewSummaryFile(sc, res, baselines)
	sum.PolicyFile, sum.Workload = a.policy, w.Name
	if a.policy == "" {
		sum.PolicyFile = "built-in"
	}
	outs := []backtestOutput{
		{"decisions.csv", func(f io.Writer) error { return sim.WriteDecisions(f, res.Decisions) }},
		{"summary.json", func(f io.Writer) error { return sim.WriteSummary(f, sum) }},
	}
	if sweep != nil {
		outs = append(outs, backtestOutput{"sweep.csv", func(f io.Writer) error { return writeBacktestSweepCSV(f, sweep) }})
	}
	in := report.Input{Scenario: sc, Summary: sum, Policy: res, Baselines: baselines, Order: a.compare, Sweep: sweep}
	outs = append(outs, backtestOutput{"report.html", func(f io.Writer) error { return report.Write(f, in) }})
	written, removed, err := writeBacktestOutputs(a.out, outs)
	if err != nil {
		return err
	}
	printBacktestSummary(stdout, sum, a.compare)
	if sweep != nil {
		printBacktestSweep(stdout, sweep)
	}
	fmt.Fprintf(stdout, "wrote %s\n", strings.Join(written, ", "))
	if len(removed) > 0 {
		fmt.Fprintf(stdout, "removed an earlier run's %s\n", strings.Join(removed, ", "))
	}
	return nil
}

// backtestOutput is one file the backtest writes to --out.
type backtestOutput struct {
	name  string
	write func(io.Writer) error
}

// backtestOutputFiles are every file the backtest may write to --out: one a
// run does not write (sweep.csv without --sweep) is an earlier run's, and is
// removed so that --out describes one run only.
var backtestOutputFiles = []string{"decisions.csv", "summary.json", "sweep.csv", "report.html"}

// writeBacktestOutputs renders every output in memory first, and only when
// all of them rendered makes dir and writes them, each through a temporary
// file: an output that cannot be rendered (a value JSON cannot hold)
// leaves nothing behind, not the files before it. Then it removes the
// backtestOutputFiles this run did not write. It returns the paths
// written and removed.
func writeBacktestOutputs(dir string, outs []backtestOutput) (written, removed []string, err error) {
	data := make([][]byte, len(outs))
	for i, o := range outs {
		var b bytes.Buffer
		if err := o.write(&b); err != nil {
			return nil, nil, fmt.Errorf("backtest: %s: %w", filepath.Join(dir, o.name), err)
		}
		data[i] = b.Bytes()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("backtest: %w", err)
	}
	for i, o := range outs {
		path := filepath.Join(dir, o.name)
		if err := writeBacktestFile(path, data[i]); err != nil {
			return nil, nil, err
		}
		written = append(written, path)
	}
	for _, name := range backtestOutputFiles {
		if slices.ContainsFunc(outs, func(o backtestOutput) bool { return o.name == name }) {
			continue
		}
		path := filepath.Join(dir, name)
		switch err := os.Remove(path); {
		case err == nil:
			removed = append(removed, path)
		case !errors.Is(err, os.ErrNotExist):
			return nil, nil, fmt.Errorf("backtest: an earlier run's %s: %w", name, err)
		}
	}
	return written, removed, nil
}

// writeBacktestFile writes path through a temporary file, so that a failed
// write never leaves half a file behind.
func writeBacktestFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("backtest: %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		tmp.Close()
		return fmt.Errorf("backtest: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("backtest: %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("backtest: %w", err)
	}
	return nil
}

// printBacktestSummary writes the headline numbers as a small table.
func printBacktestSummary(w io.Writer, s sim.SummaryFile, order []string) {
	fmt.Fprintf(w, "%s x%g, %s to %s, spot pools: %s\n", s.Trace, s.Scale,
		s.Start.Format(time.DateTime), s.End.Format(time.DateTime), backtestPoolNames(s.SpotPools))
	fmt.Fprintf(w, "%-10s %12s %14s %10s %12s %10s\n", "policy", "SLO", "cost", "x oracle", "x spot-aware", "notices")
	line := func(name string, x sim.Summary) {
		fmt.Fprintf(w, "%-10s %11.3f%% %14s %10.2f %12.2f %10d\n", name, 100*x.SLOAttainment,
			"$"+strconv.FormatFloat(x.CostDollars, 'f', 2, 64), x.CostOverOracle, x.CostOverSpotAwareOracle, x.SpotInterruptions)
	}
	line("infercast", s.Summary)
	for _, name := range order {
		line(name, s.Baselines[name])
	}
	fmt.Fprintf(w, "%-10s %12s %14s\n", "oracle", "", "$"+strconv.FormatFloat(s.OracleCostDollars, 'f', 2, 64))
	fmt.Fprintf(w, "%-10s %12s %14s\n", "spot-aware", "", "$"+strconv.FormatFloat(s.SpotAwareOracleCostDollars, 'f', 2, 64))
}

func backtestPoolNames(xs []string) string {
	if len(xs) == 0 {
		return "none (always available)"
	}
	return strings.Join(xs, ", ")
}

// backtestProgress shows how far the runs are: a bar redrawn in place on a
// terminal, plain lines otherwise; nothing for a run shorter than a second.
type backtestProgress struct {
	w        io.Writer
	tty      bool
	runs, n  int
	name     string
	start    time.Time
	shown    bool
	lastLine int // the last quarter reached, printed as a plain line
	now      func() time.Time
}

func newBacktestProgress(w io.Writer, runs int) *backtestProgress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &backtestProgress{w: w, tty: tty, runs: runs, now: time.Now}
}

func (p *backtestProgress) begin(name string) {
	p.n++
	p.name, p.start, p.shown, p.lastLine = name, p.now(), false, 0
}

func (p *backtestProgress) update(done, total int) {
	elapsed := p.now().Sub(p.start)
	if elapsed < time.Second || total == 0 {
		return
	}
	p.shown = true
	frac := float64(done) / float64(total)
	if p.tty {
		const width = 30
		fill := int(frac * width)
		fmt.Fprintf(p.w, "\r%d/%d %-10s [%s%s] %3.0f%% %5.1fs", p.n, p.runs, p.name,
			strings.Repeat("=", fill), strings.Repeat(" ", width-fill), 100*frac, elapsed.Seconds())
		return
	}
	if q := int(frac * 4); q > p.lastLine && q < 4 {
		p.lastLine = q
		fmt.Fprintf(p.w, "backtest: %s (%d/%d) %d%% after %.1fs\n", p.name, p.n, p.runs, int(100*frac), elapsed.Seconds())
	}
}

func (p *backtestProgress) end() {
	if !p.shown {
		return
	}
	if p.tty {
		p.update(1, 1)
		fmt.Fprintln(p.w)
		return
	}
	fmt.Fprintf(p.w, "backtest: %s (%d/%d) done in %.1fs\n", p.name, p.n, p.runs, p.now().Sub(p.start).Seconds())
}
