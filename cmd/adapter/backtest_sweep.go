package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/sim/report"
)

// backtestSweep is --sweep KEY=V1,V2,...: the policy replayed once more per
// value of one key of its workload, so that a user sees what a setting
// trades between cost and SLO on their own traffic before choosing it.
type backtestSweep struct {
	key    string
	values []string
}

// sweepModelKeys are the workload keys the backtest sets from the cluster
// model's flags (mergeBacktestConfig): sweeping them would compare
// different clusters, or runs a flag makes identical, not policies.
var sweepModelKeys = map[string]string{
	"mu":                             "--mu",
	"cold_start":                     "--cold-start",
	"queue_slo":                      "--queue-slo",
	"decision_interval":              "the model's 15 s decision interval",
	"tiers.on_demand.price_per_hour": "--price-on-demand",
	"tiers.spot.price_per_hour":      "--price-spot",
	"tiers.spot.notice":              "--notice",
	"tiers.spot.failure_domains":     "the --spot files (one domain per pool)",
}

func parseBacktestSweep(s string) (*backtestSweep, error) {
	key, list, ok := strings.Cut(s, "=")
	key = strings.TrimSpace(key)
	if !ok || key == "" {
		return nil, fmt.Errorf("--sweep %q: want KEY=V1,V2,... (a key of the policy's workload, e.g. forecast_quantile=0.95,0.975,0.99)", s)
	}
	if by, ok := sweepModelKeys[key]; ok {
		return nil, fmt.Errorf("--sweep %s: the backtest sets %s from %s, which describes the simulated cluster, not the policy: run one backtest per value", key, key, by)
	}
	sw := &backtestSweep{key: key}
	for _, v := range strings.Split(list, ",") {
		v = strings.TrimSpace(v)
		if v == "" {
			return nil, fmt.Errorf("--sweep %q: an empty value", s)
		}
		if !slices.Contains(sw.values, v) {
			sw.values = append(sw.values, v)
		}
	}
	return sw, nil
}

// workloads parses the policy source once per value (as if the file said
// key: value) and merges each with the cluster model like the policy
// itself. Every value is checked before anything runs.
func (sw *backtestSweep) workloads(a *backtestArgs, name string, src []byte, pools int) ([]capacity.Workload, error) {
	var out []capacity.Workload
	for _, v := range sw.values {
		pol, err := capacity.ParsePolicyWith(fmt.Sprintf("--sweep %s=%s: %s", sw.key, v, name), src, a.workload, sw.key, v)
		if err != nil {
			return nil, err
		}
		w, err := pickBacktestWorkload(a, name, pol)
		if err != nil {
			return nil, err
		}
		own := *a // the merge writes the model's config: a's stays as it is
		if err := mergeBacktestConfig(&own, &w, name, workloadGiven(pol, w.Name), pools); err != nil {
			return nil, err
		}
		out = append(out, w)
	}
	return out, nil
}

// writeBacktestSweepCSV writes sweep.csv: a row per value, its column named
// after the key.
func writeBacktestSweepCSV(w io.Writer, s *report.Sweep) error {
	cw := csv.NewWriter(w)
	num := func(x float64, prec int) string { return strconv.FormatFloat(x, 'f', prec, 64) }
	cw.Write([]string{s.Key, "target_availability", "requests", "met", "late", "dropped", "slo_attainment", "cost_dollars",
		"cost_over_oracle", "cost_over_spot_aware_oracle", "on_demand_replica_hours", "spot_replica_hours", "spot_interruptions"})
	for _, r := range s.Runs {
		x := r.Summary
		cw.Write([]string{r.Value, num(r.Target, -1), num(x.Requests, 1), num(x.Met, 1), num(x.Late, 1), num(x.Dropped+x.Unserved, 1),
			num(x.SLOAttainment, 6), num(x.CostDollars, 2), num(x.CostOverOracle, 4), num(x.CostOverSpotAwareOracle, 4),
			num(x.OnDemandReplicaHours, 2), num(x.SpotReplicaHours, 2), strconv.Itoa(x.SpotInterruptions)})
	}
	cw.Flush()
	return cw.Error()
}

// printBacktestSweep writes the sweep as a table and names the cheapest
// value that meets its own target_availability.
func printBacktestSweep(w io.Writer, s *report.Sweep) {
	fmt.Fprintf(w, "sweep of %s:\n", s.Key)
	fmt.Fprintf(w, "%-12s %12s %14s %10s %12s %10s\n", s.Key, "SLO", "cost", "x oracle", "x spot-aware", "target met")
	for _, r := range s.Runs {
		met := "no"
		if r.Summary.SLOAttainment >= r.Target {
			met = "yes"
		}
		fmt.Fprintf(w, "%-12s %11.3f%% %14s %10.2f %12.2f %10s\n", r.Value, 100*r.Summary.SLOAttainment,
			"$"+strconv.FormatFloat(r.Summary.CostDollars, 'f', 2, 64), r.Summary.CostOverOracle, r.Summary.CostOverSpotAwareOracle, met)
	}
	if i, ok := s.Cheapest(); ok {
		r := s.Runs[i]
		fmt.Fprintf(w, "cheapest that meets its target_availability: %s=%s ($%.2f, %.2fx the oracle)\n", s.Key, r.Value, r.Summary.CostDollars, r.Summary.CostOverOracle)
	} else {
		fmt.Fprintf(w, "no value of %s meets its target_availability on this trace\n", s.Key)
	}
}
