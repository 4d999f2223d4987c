package forecastmetrics_test

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/pkg/predict/forecastmetrics"
)

// TestDocumentation fails when a metric, its type, a label or its help
// differs between what the Recorder exports and the table in
// docs/forecasting.md (in either direction).
func TestDocumentation(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "..", "docs", "forecasting.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(infercast_forecast_[a-z0-9_]+)` \\| (\\w+) \\| ([^|]*) \\| (.*) \\|$")
	type entry struct{ typ, labels, help string }
	documented := map[string]entry{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			labels = append(labels, strings.Trim(strings.TrimSpace(l), "`"))
		}
		slices.Sort(labels)
		documented[m[1]] = entry{m[2], strings.Join(labels, ","), strings.ReplaceAll(m[4], `\|`, "|")}
	}
	if len(documented) == 0 {
		t.Fatal("no metrics table found in docs/forecasting.md")
	}

	reg := prometheus.NewRegistry()
	r, err := forecastmetrics.NewRecorder(reg, forecastmetrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.RecordForecast("w", fc())
	r.RecordActual("w", origin, 1)
	r.RecordActual("w", origin.Add(2*time.Minute), 1)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exported := map[string]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		exported[name] = true
		d, ok := documented[name]
		if !ok {
			t.Errorf("%s is exported but not in docs/forecasting.md", name)
			continue
		}
		if typ := strings.ToLower(mf.GetType().String()); typ != d.typ {
			t.Errorf("%s: type %s, documented %s", name, typ, d.typ)
		}
		var labels []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			labels = append(labels, lp.GetName())
		}
		slices.Sort(labels)
		if got := strings.Join(labels, ","); got != d.labels {
			t.Errorf("%s: labels %s, documented %s", name, got, d.labels)
		}
		if mf.GetHelp() != d.help {
			t.Errorf("%s: help %q, documented %q", name, mf.GetHelp(), d.help)
		}
	}
	for name := range documented {
		if !exported[name] {
			t.Errorf("%s is documented but not exported", name)
		}
	}
}
