package metrics

import (
	"math"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var fuzzContentTypes = []string{
	"text/plain; version=0.0.4",
	"application/openmetrics-text; version=1.0.0",
	"",
	"application/json",
}

// FuzzIngest drives the scrape-and-normalise path (Prometheus's parser,
// every dialect's normaliser, windows, aggregation and the exporter's own
// exposition) with arbitrary bodies. Whatever the body, nothing panics, a
// failed parse leaves no model results, the output is valid for a
// Prometheus registry, and rates and percentiles are never negative.
// Seeds: the dialect fixtures plus testdata/fuzz/FuzzIngest.
func FuzzIngest(f *testing.F) {
	fixtures, _ := filepath.Glob("testdata/dialects/*.prom")
	for _, p := range fixtures {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, b, uint8(0))
	}
	f.Fuzz(func(t *testing.T, first, second []byte, sel uint8) {
		ct := fuzzContentTypes[int(sel)%len(fuzzContentTypes)]
		windows := []time.Duration{time.Minute, 5 * time.Minute}
		now := time.Unix(1_750_000_000, 0)
		var states []*targetState
		for _, name := range append(DialectNames()[1:], DialectGeneric) {
			var d *Dialect
			if name == DialectGeneric {
				d = GenericDialect("fuzz", GenericConfig{RequestsTotal: "requests_total", QueueWaiting: "waiting", RequestLatency: "latency_seconds", HistogramUnitSeconds: 1})
			} else {
				d, _ = BuiltinDialect(name)
			}
			s := newTargetState(Target{Name: name, Dialect: d, Source: SourceStatic, MaxBatchSize: 8})
			for i, body := range [][]byte{first, second} {
				err := s.process(body, ct, now.Add(time.Duration(i)*15*time.Second), windows)
				if err != nil && len(s.models) != 0 {
					t.Fatalf("%s: failed parse left %d model results", name, len(s.models))
				}
			}
			states = append(states, s)
		}
		snap := aggregate(states, windows)
		for _, m := range snap.models {
			for _, w := range m.windows {
				if w.rate < 0 {
					t.Fatalf("negative rate %v for %q", w.rate, m.model)
				}
				for h := range numHists {
					for _, q := range w.q[h] {
						if q < 0 && !math.IsNaN(q) {
							t.Fatalf("negative percentile %v for %q", q, m.model)
						}
					}
				}
			}
		}
		e := &Exporter{d: newDescs(), sources: map[string][]Target{}, states: map[string]*targetState{},
			coldStarts:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "c_total", Help: "h"}, []string{"model", "source"}),
			coldStartDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "d", Help: "h"}, []string{"model", "source"}),
			now:          time.Now}
		e.snap.Store(snap)
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(e)
		if _, err := reg.Gather(); err != nil {
			t.Fatalf("exporter output invalid after fuzzed input: %v", err)
		}
	})
}
