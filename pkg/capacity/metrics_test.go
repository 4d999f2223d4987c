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
	m.HistoryFailed("chat")
	m.Degraded("chat", "reactive")
	m.Reloaded(nil)
	return reg
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
