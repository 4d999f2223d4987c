package batchctl

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Every infercast_batch_* metric the controller exports, with its type and
// labels, is documented in docs/batching.md, and nothing documented is
// missing from the output; the output passes promlint.
func TestMetricsDocumented(t *testing.T) {
	act := &fakeActuator{}
	c, reg := newTestController(t, act)
	step(t, c, exactObs(10*time.Second, 100, 0.2)) // a change
	step(t, c, exactObs(20*time.Second, 100, 0.8)) // a back-off
	act.err = errFake
	step(t, c, exactObs(30*time.Second, 100, 0.9)) // a failure
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{} // name → "type|labels"
	for _, mf := range mfs {
		var labels []string
		if len(mf.GetMetric()) > 0 {
			for _, lp := range mf.GetMetric()[0].GetLabel() {
				labels = append(labels, lp.GetName())
			}
		}
		slices.Sort(labels)
		got[mf.GetName()] = strings.ToLower(mf.GetType().String()) + "|" + strings.Join(labels, ",")
	}
	if _, ok := got["infercast_batch_apply_failures_total"]; !ok {
		t.Fatal("scenario did not produce every metric")
	}

	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "batching.md"))
	if err != nil {
		t.Fatal(err)
	}
	row := regexp.MustCompile("(?m)^\\| `(infercast_batch_[a-z0-9_]+)` \\| (gauge|counter) \\| ([a-z_, `]*) \\| [^|]+ \\|$")
	documented := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(doc), -1) {
		labels := strings.FieldsFunc(strings.ReplaceAll(m[3], "`", ""), func(r rune) bool { return r == ',' || r == ' ' })
		slices.Sort(labels)
		documented[m[1]] = m[2] + "|" + strings.Join(labels, ",")
	}
	for name, sig := range got {
		if documented[name] != sig {
			t.Errorf("%s (%s) exported but documented as %q", name, sig, documented[name])
		}
	}
	for name := range documented {
		if _, ok := got[name]; !ok {
			t.Errorf("%s documented but not exported", name)
		}
	}
	problems, err := testutil.GatherAndLint(reg)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}
