package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/infercast/infercast/pkg/capacity"
)

// exporterLive reads a workload's live signals from an infercast exporter's
// /metrics: the request rate and latency percentile of the shortest window,
// the backlog summed over the model's targets, and the p90 cold start. It
// is the live source that needs nothing but the exporter, so the planner's
// reactive floors hold even when the history source is down.
type exporterLive struct {
	url    string
	client *http.Client
}

// maxExporterBody bounds what is read from the exporter.
const maxExporterBody = 32 << 20

func (l exporterLive) Signals(ctx context.Context, w *capacity.Workload, now time.Time) (capacity.Signals, error) {
	sig := capacity.Signals{Time: now, Rate: math.NaN(), Backlog: math.NaN()}
	mfs, err := l.fetch(ctx)
	if err != nil {
		return sig, err
	}
	model := workloadModel(w)
	sig.Rate = shortestWindow(mfs["infercast_model_requests_per_second"], model, func(m *dto.Metric) float64 { return m.GetGauge().GetValue() })
	if lat := shortestWindow(mfs["infercast_model_request_latency_seconds"], model, summaryQuantile(w.LatencyPercentile)); !math.IsNaN(lat) && !math.IsInf(lat, 0) {
		sig.Latency = time.Duration(lat * float64(time.Second))
	}
	if fam := mfs["infercast_model_requests_waiting"]; fam != nil {
		sum, seen := 0.0, false
		for _, m := range fam.GetMetric() {
			if label(m, "model") == model && !math.IsNaN(m.GetGauge().GetValue()) {
				sum += m.GetGauge().GetValue()
				seen = true
			}
		}
		if seen {
			sig.Backlog = sum
		}
	}
	if fam := mfs["infercast_cold_start_duration_seconds"]; fam != nil {
		for _, m := range fam.GetMetric() {
			if label(m, "model") == model {
				if p90 := histogramQuantile(0.9, m.GetHistogram()); p90 > 0 {
					sig.ColdStartP90 = max(sig.ColdStartP90, time.Duration(p90*float64(time.Second)))
				}
			}
		}
	}
	if math.IsNaN(sig.Rate) {
		return sig, fmt.Errorf("exporter %s: no request rate for model %q", l.url, model)
	}
	return sig, nil
}

func (l exporterLive) fetch(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := l.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("exporter: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("exporter %s: %s", l.url, resp.Status)
	}
	dec := expfmt.NewDecoder(io.LimitReader(resp.Body, maxExporterBody), expfmt.ResponseFormat(resp.Header))
	out := map[string]*dto.MetricFamily{}
	for {
		mf := &dto.MetricFamily{}
		if err := dec.Decode(mf); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, fmt.Errorf("exporter %s: %w", l.url, err)
		}
		out[mf.GetName()] = mf
	}
}

// workloadModel is the model a workload's signals are exported under: the
// `model` matcher of its demand.series, else the workload's name.
func workloadModel(w *capacity.Workload) string {
	if w.Demand.Series != "" {
		if ms, err := parser.NewParser(parser.Options{}).ParseMetricSelector(w.Demand.Series); err == nil {
			for _, m := range ms {
				if m.Name == "model" {
					return m.Value
				}
			}
		}
	}
	return w.Name
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// shortestWindow returns value(m) of the model's metric with the shortest
// `window` label.
func shortestWindow(fam *dto.MetricFamily, model string, value func(*dto.Metric) float64) float64 {
	best, bestWin := math.NaN(), time.Duration(math.MaxInt64)
	for _, m := range fam.GetMetric() {
		if label(m, "model") != model {
			continue
		}
		win, err := time.ParseDuration(label(m, "window"))
		if err != nil || win >= bestWin {
			continue
		}
		best, bestWin = value(m), win
	}
	return best
}

// summaryQuantile picks the summary's smallest quantile at or above q (the
// exporter publishes 0.5, 0.9, 0.95, 0.99), so a floor errs towards more
// capacity.
func summaryQuantile(q float64) func(*dto.Metric) float64 {
	return func(m *dto.Metric) float64 {
		v, at := math.NaN(), math.Inf(1)
		for _, sq := range m.GetSummary().GetQuantile() {
			if sq.GetQuantile() >= q-1e-9 && sq.GetQuantile() < at {
				v, at = sq.GetValue(), sq.GetQuantile()
			}
		}
		return v
	}
}

// histogramQuantile is Prometheus's histogram_quantile over one cumulative
// histogram: linear interpolation within the bucket holding the rank.
func histogramQuantile(q float64, h *dto.Histogram) float64 {
	total := float64(h.GetSampleCount())
	if h == nil || total == 0 {
		return 0
	}
	rank := q * total
	lower, below := 0.0, 0.0
	for _, b := range h.GetBucket() {
		upper, count := b.GetUpperBound(), float64(b.GetCumulativeCount())
		if count >= rank {
			if math.IsInf(upper, 1) || count == below {
				return lower
			}
			return lower + (upper-lower)*(rank-below)/(count-below)
		}
		lower, below = upper, count
	}
	return lower
}

// formatRate prints a rate for the demo view and logs.
func formatRate(v float64) string {
	if math.IsNaN(v) {
		return "-"
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}
