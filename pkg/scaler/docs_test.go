package scaler

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

// TestMetricsDocumented fails when a metric of the scaler, or one of its
// labels, is missing from the metrics table of docs/serving.md, or when
// promlint objects to one.
func TestMetricsDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newServerMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	// Every vector gets a child, so Gather returns every family.
	m.duration.WithLabelValues("GetMetrics").Observe(0.001)
	m.streams.WithLabelValues("StreamIsActive").Set(0)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(mfs) != 4 {
		t.Fatalf("gathered %d families, want 4", len(mfs))
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "serving.md"))
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(doc), "\n") {
		if f := strings.Split(line, "|"); len(f) > 4 && strings.HasPrefix(strings.TrimSpace(f[1]), "`infercast_scaler_") {
			rows[strings.Trim(strings.TrimSpace(f[1]), "`")] = line
		}
	}
	for _, mf := range mfs {
		row, ok := rows[mf.GetName()]
		if !ok {
			t.Errorf("%s is not in the metrics table of docs/serving.md", mf.GetName())
			continue
		}
		if !strings.Contains(row, mf.GetHelp()) {
			t.Errorf("%s: help %q differs from docs/serving.md", mf.GetName(), mf.GetHelp())
		}
		if typ := strings.ToLower(mf.GetType().String()); !strings.Contains(row, "| "+typ+" |") {
			t.Errorf("%s: type %s not in its row", mf.GetName(), typ)
		}
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			if !strings.Contains(row, "`"+lp.GetName()+"`") {
				t.Errorf("%s: label %s not in its row", mf.GetName(), lp.GetName())
			}
		}
		delete(rows, mf.GetName())
	}
	for name := range rows {
		t.Errorf("docs/serving.md documents %s, which the scaler does not export", name)
	}
}
