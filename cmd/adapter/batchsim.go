package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/infercast/infercast/pkg/batchctl"
	"github.com/infercast/infercast/pkg/batchctl/batchsim"
)

func init() {
	register("batch-sim", command{
		summary: "replay a per-request trace through the batch controller",
		run:     runBatchSim,
	})
}

const batchSimUsage = `usage: adapter batch-sim --trace FILE [--profile alpha,beta,jitter] [--slo 500ms]
    [--max-batch 256] [--window 1s] [--min-change 5s] [--seed 1]
    [--reject-late=true] --out DIR

Replays a per-request trace (Azure LLM CSV or Mooncake JSON lines) through a
dynamic batcher on one simulated GPU whose batch of b requests runs for
alpha + beta·b seconds (+ Gaussian jitter), under the batch controller and
under fixed settings: batch 1, Triton's default (no delay, --max-batch) and
every static (batch, delay) pair of a grid. With --reject-late (the default)
the controller may reject requests that can no longer meet the SLO (Triton's
queue timeout), the grid adds queue timeouts, and both are also reported
without. Writes DIR/summary.json with
goodput (the largest multiple of the trace's rate at which 99 % of requests
meet the SLO), p50/p99 latency, SLO attainment and GPU busy time
(docs/batching.md).
`

func runBatchSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("batch-sim", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, batchSimUsage); fs.PrintDefaults() }
	o := batchsim.DefaultOptions()
	var trace, out string
	prof := profileFlag{p: &o.Profile}
	fs.StringVar(&trace, "trace", "", "per-request trace file (required)")
	fs.StringVar(&out, "out", "", "output directory (required)")
	fs.Var(prof, "profile", "simulated execution profile: alpha,beta,jitter in seconds")
	fs.DurationVar(&o.SLO, "slo", o.SLO, "latency SLO on queue delay plus execution (p99 target)")
	fs.IntVar(&o.ModelMaxBatch, "max-batch", o.ModelMaxBatch, "largest batch the model allows (Triton's default runs it)")
	fs.DurationVar(&o.Window, "window", o.Window, "how often the controller observes and may act")
	fs.DurationVar(&o.MinChange, "min-change", o.MinChange, "least time between two knob changes")
	fs.Uint64Var(&o.Seed, "seed", o.Seed, "jitter seed")
	fs.BoolVar(&o.RejectLate, "reject-late", o.RejectLate, "let the controller (and the static grid) reject requests that waited past a queue timeout")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("batch-sim: unexpected arguments %q", fs.Args())
	}
	if trace == "" || out == "" {
		fs.Usage()
		return errors.New("batch-sim: --trace and --out are required")
	}
	if o.SLO <= 0 || o.Window <= 0 || o.MinChange < 0 {
		return fmt.Errorf("batch-sim: --slo and --window must be positive, --min-change not negative")
	}
	tr, err := batchsim.LoadTraceFile(trace)
	if err != nil {
		return fmt.Errorf("batch-sim: %w", err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("batch-sim: %w", err)
	}
	s, err := batchsim.Compare(ctx, tr, o)
	if err != nil {
		return fmt.Errorf("batch-sim: %w", err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(out, "summary.json")
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("batch-sim: %w", err)
	}
	fmt.Fprintf(stdout, "trace %s: %d requests, %.2f req/s; SLO %s; profile alpha=%gs beta=%gs jitter=%gs\n",
		s.Trace, s.Requests, s.TraceRateRPS, o.SLO, o.Profile.Alpha, o.Profile.Beta, o.Profile.Jitter)
	fmt.Fprintf(stdout, "%-28s %-26s %10s %12s %10s %10s %10s %12s\n", "policy", "setting", "goodput_x", "goodput_rps", "p50_s", "p99_s", "rejected", "gpu_busy_s")
	row := func(name string, oc batchsim.Outcome) {
		set := "adaptive"
		if oc.Setting != nil {
			set = fmt.Sprintf("b=%d d=%s", oc.Setting.MaxBatchSize, time.Duration(oc.Setting.MaxQueueDelayMicroseconds)*time.Microsecond)
			if to := oc.Setting.QueueTimeoutMicroseconds; to > 0 {
				set += fmt.Sprintf(" t=%s", time.Duration(to)*time.Microsecond)
			}
		}
		r := oc.AtReference
		fmt.Fprintf(stdout, "%-28s %-26s %10.3f %12.1f %10.3f %10.3f %10d %12.1f\n", name, set, oc.GoodputMultiple, oc.GoodputRPS, r.P50Seconds, r.P99Seconds, r.Rejected, r.GPUBusySeconds)
	}
	row("controller", s.Controller)
	row("best_static", s.BestStatic)
	if w := s.WithoutRejection; w != nil {
		row("controller_without_rejection", w.Controller)
		row("best_static_without_rejection", w.BestStatic)
	}
	row("triton_default", s.TritonDefault)
	row("batch1", s.Batch1)
	fmt.Fprintf(stdout, "(latency and GPU time at %.2fx the trace's rate, the best static goodput)\nwrote %s\n", s.ReferenceMultiple, path)
	return nil
}

// profileFlag parses alpha,beta,jitter in seconds.
type profileFlag struct{ p *batchctl.Profile }

func (f profileFlag) String() string {
	if f.p == nil {
		return ""
	}
	return fmt.Sprintf("%g,%g,%g", f.p.Alpha, f.p.Beta, f.p.Jitter)
}

func (f profileFlag) Set(s string) error {
	parts := strings.Split(s, ",")
	if len(parts) != 3 {
		return fmt.Errorf("want alpha,beta,jitter (seconds), got %q", s)
	}
	var v [3]float64
	for i, p := range parts {
		x, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		if err != nil {
			return fmt.Errorf("profile field %d %q: %w", i+1, p, err)
		}
		v[i] = x
	}
	p := batchctl.Profile{Alpha: v[0], Beta: v[1], Jitter: v[2]}
	if err := p.Validate(); err != nil {
		return err
	}
	*f.p = p
	return nil
}
