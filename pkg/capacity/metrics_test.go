package capacity

import (
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
)

// populated returns a registry with every planner metric holding a series.
func populated(t *testing.T) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	p, ex := NewPlanner(testWorkload()).Plan(flat(t0, 20, 25, 30), nil, Signals{Time: t0, Rate: 20})
	m.Observe(p, ex)
	m.Observed("chat", Signals{OnDemand: TierState{Ready: 2}, Spot: TierState{Ready: 3, Pending: 1}}, true)
	m.Failures("chat", true, true)
	m.Degraded("chat", "reactive")
	m.Reloaded(nil)
	return reg
}

// The observed replicas are exported per tier and state, spot only for a
// workload with a spot tier, and forgotten with the workload.
func TestObservedReplicas(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.Observed("chat", Signals{OnDemand: TierState{Ready: 2, Starting: 1, Lost: 2}, Spot: TierState{Ready: 3, Pending: 4, Terminating: 1, Departing: 1}}, true)
	m.Observed("batch", Signals{OnDemand: TierState{Ready: 5}}, false)
	want := map[string]float64{
		"chat/on-demand/ready": 2, "chat/on-demand/starting": 1, "chat/on-demand/pending": 0, "chat/on-demand/terminating": 0, "chat/on-demand/lost": 2,
		"chat/on-demand/departing": 0,
		"chat/spot/ready":          3, "chat/spot/starting": 0, "chat/spot/pending": 4, "chat/spot/terminating": 1, "chat/spot/lost": 0, "chat/spot/departing": 1,
		"batch/on-demand/ready": 5, "batch/on-demand/starting": 0, "batch/on-demand/pending": 0, "batch/on-demand/terminating": 0, "batch/on-demand/lost": 0,
		"batch/on-demand/departing": 0,
	}
	got := observedSeries(t, reg)
	if len(got) != len(want) {
		t.Errorf("%d series, want %d: %v", len(got), len(want), got)
	}
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
	m.Forget("chat")
	if got := observedSeries(t, reg); len(got) != 6 {
		t.Errorf("after forgetting chat: %v, want batch's 6 series", got)
	}
}

// Forgetting a workload removed from the policy drops every series that
// names it, whatever the metric (a gauge left behind would report a plan
// that no longer exists).
func TestForgetDropsEveryWorkloadSeries(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	for _, w := range []string{"chat", "batch"} {
		wl := testWorkload()
		wl.Name = w
		p, ex := NewPlanner(wl).Plan(flat(t0, 20, 25, 30), nil, Signals{Time: t0, Rate: 20})
		m.Observe(p, ex)
		m.Observed(w, Signals{OnDemand: TierState{Ready: 2}, Spot: TierState{Ready: 3}}, true)
		m.Failures(w, true, true)
		m.Degraded(w, "reactive")
	}
	m.Forget("chat")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	batch := 0
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			for _, lp := range mt.GetLabel() {
				if lp.GetName() != "workload" {
					continue
				}
				switch lp.GetValue() {
				case "chat":
					t.Errorf("%s still has a series for the forgotten workload", mf.GetName())
				case "batch":
					batch++
				}
			}
		}
	}
	if batch == 0 {
		t.Error("no series left for batch: Forget dropped the other workload too")
	}
}

func observedSeries(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "infercast_plan_observed_replicas" {
			continue
		}
		for _, mt := range mf.GetMetric() {
			l := map[string]string{}
			for _, lp := range mt.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			got[l["workload"]+"/"+l["tier"]+"/"+l["state"]] = mt.GetGauge().GetValue()
		}
	}
	return got
}

// TestMetricsDocumented fails when an exported metric, its type or a label
// is missing from docs/planner.md's table, or the table lists one that is
// not exported.
func TestMetricsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../../docs/planner.md")
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(infercast_plan_[a-z_]+)` \\| (gauge|counter) \\|([a-z, ]*)\\|")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		documented[m[1]] = m[2] + " " + strings.ReplaceAll(strings.TrimSpace(m[3]), " ", "")
	}
	mfs, err := populated(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]string{}
	for _, mf := range mfs {
		var labels []string
		for _, l := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, l.GetName())
		}
		sort.Strings(labels)
		kind := "gauge"
		if mf.GetType() == dto.MetricType_COUNTER {
			kind = "counter"
		}
		exported[mf.GetName()] = kind + " " + strings.Join(labels, ",")
	}
	for name, want := range exported {
		got, ok := documented[name]
		if !ok {
			t.Errorf("%s (%s) is not in docs/planner.md", name, want)
			continue
		}
		// The table lists labels in reading order; compare as sets.
		gk, gl, _ := strings.Cut(got, " ")
		wk, wl, _ := strings.Cut(want, " ")
		gs := strings.Split(gl, ",")
		sort.Strings(gs)
		if gk != wk || strings.Join(gs, ",") != wl {
			t.Errorf("%s: documented %q, exported %q", name, got, want)
		}
	}
	for name := range documented {
		if _, ok := exported[name]; !ok {
			t.Errorf("docs/planner.md lists %s, which is not exported", name)
		}
	}
}

func TestMetricsLint(t *testing.T) {
	mfs, err := populated(t).Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
