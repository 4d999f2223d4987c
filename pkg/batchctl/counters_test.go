package batchctl

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestEventCountersStartAtZero: a model's back-off, change and failure
// counters exist at 0 from its first step, so "none yet" is not "no data".
func TestEventCountersStartAtZero(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig(500*time.Millisecond, 16)
	cfg.Registerer = reg
	c, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	o := Observation{Time: time.Unix(1000, 0), Window: time.Second, Arrivals: 20, Requests: 20, Batches: 10, ExecSeconds: 0.7}
	if _, err := c.Step(context.Background(), "m", o, 0); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"infercast_batch_backoffs_total": false, "infercast_batch_changes_total": false, "infercast_batch_apply_failures_total": false}
	for _, mf := range mfs {
		if _, ok := want[mf.GetName()]; !ok {
			continue
		}
		for _, m := range mf.GetMetric() {
			if v := m.GetCounter().GetValue(); v != 0 {
				t.Errorf("%s = %v after one quiet step, want 0", mf.GetName(), v)
			}
		}
		want[mf.GetName()] = len(mf.GetMetric()) == 1
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s not exported for the model after its first step", name)
		}
	}
}
