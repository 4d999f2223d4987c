package alerts

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/pkg/batchctl"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/predict/forecastmetrics"
)

// describer is a Registerer that keeps the metric names of the
// descriptors registered on it: a Vec without children still describes
// itself, where a registry's Gather would show nothing.
type describer struct{ names map[string]bool }

var fqNameRE = regexp.MustCompile(`fqName: "([^"]+)"`)

func (d *describer) Register(c prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { c.Describe(ch); close(ch) }()
	for desc := range ch {
		if m := fqNameRE.FindStringSubmatch(desc.String()); m != nil {
			d.names[m[1]] = true
		}
	}
	return nil
}

func (d *describer) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		_ = d.Register(c)
	}
}

func (d *describer) Unregister(prometheus.Collector) bool { return true }

// adapterDescriptors returns the names of the metrics the adapter's
// planner, forecaster and batch controller register, constructed as
// `adapter serve` constructs them.
func adapterDescriptors(t *testing.T) map[string]bool {
	t.Helper()
	d := &describer{names: map[string]bool{}}
	capacity.NewMetrics(d)
	if _, err := forecastmetrics.NewRecorder(d, forecastmetrics.Options{}); err != nil {
		t.Fatal(err)
	}
	cfg := batchctl.DefaultConfig(time.Second, 8)
	cfg.Registerer = d
	if _, err := batchctl.New(cfg, nil); err != nil {
		t.Fatal(err)
	}
	if len(d.names) == 0 {
		t.Fatal("the adapter's collectors described no metrics")
	}
	return d.names
}

// TestAdapterDescriptors: the fallback collects the planner's, the
// forecaster's and the batch controller's names.
func TestAdapterDescriptors(t *testing.T) {
	names := adapterDescriptors(t)
	for _, want := range []string{"infercast_plan_mode", "infercast_forecast_scored_total", "infercast_batch_decisions_total"} {
		if !names[want] {
			t.Errorf("%s not described; got %d names", want, len(names))
		}
	}
	used := map[string]bool{}
	exprs, _ := collectExpressions(t)
	for _, e := range exprs {
		ns, err := metricNames(e.expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range ns {
			if strings.HasPrefix(n, "infercast_plan_") || strings.HasPrefix(n, "infercast_forecast_") || strings.HasPrefix(n, "infercast_batch_") {
				used[n] = true
			}
		}
	}
	for n := range used {
		if !names[n] && n != "infercast_plan_horizon_seconds" {
			t.Errorf("%s: used, not described by the adapter's collectors", n)
		}
	}
}
