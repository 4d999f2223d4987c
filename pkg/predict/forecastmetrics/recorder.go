// Package forecastmetrics exposes the adapter's own view of its forecasts:
// what it forecast per workload and quantile, the model it chose, and the
// realised error of its forecasts by horizon once the actual demand is known.
// The planner loop calls RecordForecast after each forecast and RecordActual
// when an interval's count is final.
package forecastmetrics

import (
	"math"
	"slices"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/pkg/predict"
)

// Options configures a Recorder.
type Options struct {
	// Horizons are the forecast steps (1 = the next interval) exposed and
	// scored; other steps are ignored to bound the series count. Default
	// {1, the forecast's last step}.
	Horizons []int
}

// Recorder is a prometheus.Collector of forecast metrics.
type Recorder struct {
	opts Options

	mu      sync.Mutex
	latest  map[string]predict.Forecast
	pending map[string]map[int64][]pendingForecast // workload -> target unix ms

	forecast, step, model, warnings, origin *prometheus.Desc

	absErr, actual, scored, covered90, covered99 *prometheus.CounterVec
}

type pendingForecast struct {
	horizon       time.Duration
	p50, p90, p99 float64
}

// NewRecorder registers the forecast metrics on reg.
func NewRecorder(reg prometheus.Registerer, opts Options) (*Recorder, error) {
	hl := []string{"workload", "horizon_seconds"}
	r := &Recorder{
		opts:    opts,
		latest:  map[string]predict.Forecast{},
		pending: map[string]map[int64][]pendingForecast{},
		forecast: prometheus.NewDesc("infercast_forecast_requests",
			"Latest forecast of requests per interval, by workload, percentile (50, 90, 99) and horizon (end of the forecast interval after the origin).",
			[]string{"workload", "percentile", "horizon_seconds"}, nil),
		step: prometheus.NewDesc("infercast_forecast_step_seconds",
			"Length of the forecast interval of the workload's latest forecast: infercast_forecast_requests divided by it is requests per second.",
			[]string{"workload"}, nil),
		model: prometheus.NewDesc("infercast_forecast_model_info",
			"Model that produced the latest forecast of a workload (value 1).",
			[]string{"workload", "model"}, nil),
		warnings: prometheus.NewDesc("infercast_forecast_history_warnings",
			"Anomalies (gaps, spikes, outages, level shifts) detected in the workload's recent history and discounted by the forecaster.",
			[]string{"workload"}, nil),
		origin: prometheus.NewDesc("infercast_forecast_origin_timestamp_seconds",
			"Origin of the latest forecast (end of the last interval it used), unix seconds.",
			[]string{"workload"}, nil),
		absErr: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_forecast_absolute_error_requests_total",
			Help: "Sum of |actual - p50 forecast| over scored intervals; divided by infercast_forecast_actual_requests_total it is the WAPE.",
		}, hl),
		actual: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_forecast_actual_requests_total",
			Help: "Sum of the actual requests of the scored intervals.",
		}, hl),
		scored: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_forecast_scored_total",
			Help: "Forecast intervals whose actual demand became known and was scored.",
		}, hl),
		covered90: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_forecast_p90_covered_total",
			Help: "Scored intervals whose actual demand was at or below the p90 forecast (coverage = this / scored).",
		}, hl),
		covered99: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_forecast_p99_covered_total",
			Help: "Scored intervals whose actual demand was at or below the p99 forecast.",
		}, hl),
	}
	for _, c := range []prometheus.Collector{r, r.absErr, r.actual, r.scored, r.covered90, r.covered99} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (r *Recorder) steps(f predict.Forecast) []int {
	hs := r.opts.Horizons
	if len(hs) == 0 {
		hs = []int{1, f.Len()}
	}
	var out []int
	for _, h := range hs {
		if h >= 1 && h <= f.Len() && (len(out) == 0 || out[len(out)-1] != h) {
			out = append(out, h)
		}
	}
	return out
}

// RecordForecast stores f as the workload's latest forecast and remembers
// its exposed steps for scoring when RecordActual brings their actuals.
func (r *Recorder) RecordForecast(workload string, f predict.Forecast) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.latest[workload] = f
	p := r.pending[workload]
	if p == nil {
		p = map[int64][]pendingForecast{}
		r.pending[workload] = p
	}
	for _, h := range r.steps(f) {
		target := f.Origin.Add(time.Duration(h-1) * f.Step)
		p[target.UnixMilli()] = append(p[target.UnixMilli()], pendingForecast{
			horizon: time.Duration(h) * f.Step,
			p50:     f.P50[h-1], p90: f.P90[h-1], p99: f.P99[h-1],
		})
	}
	// Forget targets long past: their actual will not come.
	horizon := time.Duration(f.Len()) * f.Step
	cutoff := f.Origin.Add(-2 * horizon).UnixMilli()
	for t := range p {
		if t < cutoff {
			delete(p, t)
		}
	}
}

// Latest returns a copy of the workload's latest forecast, and false when
// none was recorded since the workload appeared or was forgotten. It lets
// a view show the band the planner sized from without a second forecast.
func (r *Recorder) Latest(workload string) (predict.Forecast, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f, ok := r.latest[workload]
	if !ok {
		return predict.Forecast{}, false
	}
	f.P50, f.P90, f.P99 = slices.Clone(f.P50), slices.Clone(f.P90), slices.Clone(f.P99)
	f.Warnings = slices.Clone(f.Warnings)
	return f, true
}

// RecordActual scores the forecasts made for the interval starting at t
// against its final count v (NaN is ignored: no data is not zero demand).
func (r *Recorder) RecordActual(workload string, t time.Time, v float64) {
	if math.IsNaN(v) {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[workload]
	fs := p[t.UnixMilli()]
	delete(p, t.UnixMilli())
	for _, f := range fs {
		h := strconv.FormatFloat(f.horizon.Seconds(), 'f', -1, 64)
		r.absErr.WithLabelValues(workload, h).Add(math.Abs(v - f.p50))
		r.actual.WithLabelValues(workload, h).Add(v)
		r.scored.WithLabelValues(workload, h).Inc()
		r.covered90.WithLabelValues(workload, h).Add(0)
		r.covered99.WithLabelValues(workload, h).Add(0)
		if v <= f.p90 {
			r.covered90.WithLabelValues(workload, h).Inc()
		}
		if v <= f.p99 {
			r.covered99.WithLabelValues(workload, h).Inc()
		}
	}
}

// Forget drops a workload that no longer exists, with all its series.
func (r *Recorder) Forget(workload string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.latest, workload)
	delete(r.pending, workload)
	for _, c := range []*prometheus.CounterVec{r.absErr, r.actual, r.scored, r.covered90, r.covered99} {
		c.DeletePartialMatch(prometheus.Labels{"workload": workload})
	}
}

// Describe implements prometheus.Collector.
func (r *Recorder) Describe(ch chan<- *prometheus.Desc) {
	ch <- r.forecast
	ch <- r.step
	ch <- r.model
	ch <- r.warnings
	ch <- r.origin
}

// Collect implements prometheus.Collector: the latest forecasts, as they
// are at scrape time.
func (r *Recorder) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	names := make([]string, 0, len(r.latest))
	for w := range r.latest {
		names = append(names, w)
	}
	sort.Strings(names)
	for _, w := range names {
		f := r.latest[w]
		for _, h := range r.steps(f) {
			hs := strconv.FormatFloat((time.Duration(h) * f.Step).Seconds(), 'f', -1, 64)
			ch <- prometheus.MustNewConstMetric(r.forecast, prometheus.GaugeValue, f.P50[h-1], w, "50", hs)
			ch <- prometheus.MustNewConstMetric(r.forecast, prometheus.GaugeValue, f.P90[h-1], w, "90", hs)
			ch <- prometheus.MustNewConstMetric(r.forecast, prometheus.GaugeValue, f.P99[h-1], w, "99", hs)
		}
		ch <- prometheus.MustNewConstMetric(r.step, prometheus.GaugeValue, f.Step.Seconds(), w)
		ch <- prometheus.MustNewConstMetric(r.model, prometheus.GaugeValue, 1, w, f.Model)
		ch <- prometheus.MustNewConstMetric(r.warnings, prometheus.GaugeValue, float64(len(f.Warnings)), w)
		ch <- prometheus.MustNewConstMetric(r.origin, prometheus.GaugeValue, float64(f.Origin.UnixMilli())/1000, w)
	}
}
