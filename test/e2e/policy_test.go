//go:build e2e

package e2e

import (
	"fmt"
	"strings"
)

// workload is one workload of the e2e policies. Every one has a latency SLO
// of 2 s, at most 60 replicas, a scale-down of up to the whole fleet at once
// and an on-demand tier at $4 an hour; the rest is set here.
type workload struct {
	name   string
	demand string // "series: …" (the embedded store) or "query: …" (PromQL)
	mu     int
	// coldStart, decisionInterval, forecastStep and stabilization are
	// durations as the policy writes them ("10s").
	coldStart, decisionInterval, forecastStep, stabilization string
	minReplicas                                              int
	extra                                                    string // more keys of the workload, indented four spaces
	spot                                                     string // the spot tier's lines, indented six spaces; none if empty
}

// quick is a workload of the fast tests: a 10 s cold start, decisions every
// second on a 5 s forecast step (one-second increments of a 500 ms scrape
// are too noisy: the forecast quantile stays far above the rate) and a 5 s
// scale-down stabilisation, so that falls show within a test's time.
func quick(name, demand string, minReplicas int) workload {
	return workload{name: name, demand: demand, mu: 2, coldStart: "10s", decisionInterval: "1s",
		forecastStep: "5s", stabilization: "5s", minReplicas: minReplicas}
}

// policyYAML is the policy file of ws.
func policyYAML(ws ...workload) string {
	var b strings.Builder
	b.WriteString("workloads:\n")
	for _, w := range ws {
		fmt.Fprintf(&b, `  - name: %s
    demand:
      %s
    mu: %d
    latency_slo: 2s
    cold_start: %s
    decision_interval: %s
    forecast_step: %s
    min_replicas: %d
    max_replicas: 60
%s    scale_down:
      stabilization: %s
      max_step_ratio: 1
    tiers:
      on_demand:
        price_per_hour: 4
%s`, w.name, w.demand, w.mu, w.coldStart, w.decisionInterval, w.forecastStep, w.minReplicas, w.extra, w.stabilization, w.spot)
	}
	return b.String()
}
