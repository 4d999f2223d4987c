package metrics

import (
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type fixedCollector struct {
	desc *prometheus.Desc
	fail bool
}

func (c fixedCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }
func (c fixedCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, 1)
	if c.fail {
		ch <- prometheus.NewInvalidMetric(c.desc, errors.New("no driver"))
	}
}

// TestCollectorSetIsolatesFailures: a collector that reports an error (an
// invalid metric) gets success 0 and its bad metric is dropped, so the
// registry's Gather (and the scrape) still succeeds with everyone else's.
func TestCollectorSetIsolatesFailures(t *testing.T) {
	set := NewCollectorSet(nil)
	set.Add("good", fixedCollector{desc: prometheus.NewDesc("good_value", "h", nil, nil)})
	set.Add("bad", fixedCollector{desc: prometheus.NewDesc("bad_value", "h", nil, nil), fail: true})
	got := gatherValues(t, set)
	for k, want := range map[string]float64{
		`infercast_collector_scrape_success{collector="good"}`: 1,
		`infercast_collector_scrape_success{collector="bad"}`:  0,
		`good_value{}`: 1,
		`bad_value{}`:  1, // its valid metric is kept
	} {
		if v, ok := got[k]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
		}
	}
	if _, ok := got[`infercast_collector_scrape_duration_seconds{collector="bad"}`]; !ok {
		t.Error("no duration for the failing collector")
	}
}
