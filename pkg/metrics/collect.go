package metrics

import (
	"errors"
	"maps"
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
)

// descs are built once; Collect only fills values.
type descs struct {
	requests, clumpSizes, rate, latMean, queueMean *prometheus.Desc
	quantile                                       [numHists]*prometheus.Desc
	waiting, running, kv, batch, util, drain       *prometheus.Desc
	up, scrapeDur, scrapeSamples, scrapeErrs       *prometheus.Desc
	cycleDur, cycles, samples, targets, lastCycle  *prometheus.Desc
}

func newDescs() descs {
	mw := []string{"model", "window"}
	mt := []string{"model", "target"}
	d := descs{
		requests:   prometheus.NewDesc("infercast_model_requests_total", "Completed requests since the exporter started, summed over the model's targets; target restarts and counter resets do not lower it.", []string{"model"}, nil),
		clumpSizes: prometheus.NewDesc("infercast_model_request_clump_size_sum_total", "For each request that arrived since the exporter started, the number of requests that arrived at the same instant (itself included), summed over the requests and over the model's targets that expose such a counter (a gateway's or request log's, named by a generic mapping's request_clump_size_sum_total); its increase divided by the requests that arrived is the mean clump size a request arrives in. Target restarts and counter resets do not lower it.", []string{"model"}, nil),
		rate:       prometheus.NewDesc("infercast_model_requests_per_second", "Completed requests per second over the window, summed over the model's targets.", mw, nil),
		latMean:    prometheus.NewDesc("infercast_model_request_latency_mean_seconds", "Mean end-to-end request latency over the window (from histogram sums, or Triton's duration counters).", mw, nil),
		queueMean:  prometheus.NewDesc("infercast_model_queue_time_mean_seconds", "Mean time requests spent queued over the window (from histogram sums, or Triton's queue duration counter).", mw, nil),
		waiting:    prometheus.NewDesc("infercast_model_requests_waiting", "Requests waiting in the server's queue (the backlog), as last scraped.", mt, nil),
		running:    prometheus.NewDesc("infercast_model_requests_running", "Requests being processed, as last scraped.", mt, nil),
		kv:         prometheus.NewDesc("infercast_model_kv_cache_usage_ratio", "Fraction of the KV cache in use (0–1), as last scraped.", mt, nil),
		batch:      prometheus.NewDesc("infercast_model_batch_size", "Average batch size over the shortest window (Triton: inference count / execution count), else the current batch or running requests.", mt, nil),
		util:       prometheus.NewDesc("infercast_model_batch_utilization_ratio", "Batch size divided by the target's configured max_batch_size (0–1).", mt, nil),
		drain:      prometheus.NewDesc("infercast_model_queue_drain_seconds", "Estimated time to drain the backlog at the throughput of the shortest window; +Inf when requests wait and none complete.", mt, nil),

		up:            prometheus.NewDesc("infercast_target_up", "1 when the last scrape of the target succeeded and its body parsed, else 0.", []string{"target", "dialect", "source"}, nil),
		scrapeDur:     prometheus.NewDesc("infercast_target_scrape_duration_seconds", "Duration of the last scrape of the target, parsing included.", []string{"target"}, nil),
		scrapeSamples: prometheus.NewDesc("infercast_target_scrape_samples", "Samples in the target's last scraped body.", []string{"target"}, nil),
		scrapeErrs:    prometheus.NewDesc("infercast_target_scrape_errors_total", "Failed or partly bad scrapes of the target, by reason (timeout, http, status, body_too_large, parse, credentials, duplicate_series, invalid_value).", []string{"target", "reason"}, nil),

		cycleDur:  prometheus.NewDesc("infercast_exporter_cycle_duration_seconds", "Duration of the last full cycle over all targets.", nil, nil),
		cycles:    prometheus.NewDesc("infercast_exporter_cycles_total", "Full scrape cycles completed.", nil, nil),
		samples:   prometheus.NewDesc("infercast_exporter_samples_ingested_total", "Samples read from targets' bodies.", nil, nil),
		targets:   prometheus.NewDesc("infercast_exporter_targets", "Targets known, by source (static, kubernetes).", []string{"source"}, nil),
		lastCycle: prometheus.NewDesc("infercast_exporter_last_cycle_timestamp_seconds", "Unix time the last full cycle completed.", nil, nil),
	}
	names := [numHists]string{
		"infercast_model_request_latency_seconds",
		"infercast_model_time_to_first_token_seconds",
		"infercast_model_time_per_output_token_seconds",
		"infercast_model_queue_time_seconds",
	}
	helps := [numHists]string{
		"End-to-end request latency over the window: percentiles from the servers' histogram increases summed over the model's targets; _count and _sum are the requests and seconds within the window (not cumulative).",
		"Time to first token over the window: percentiles from histogram increases summed over the model's targets; _count and _sum are within the window (not cumulative).",
		"Time per output token (inter-token latency) over the window: percentiles from histogram increases summed over the model's targets; _count and _sum are within the window (not cumulative).",
		"Time requests spent queued over the window: percentiles from histogram increases summed over the model's targets; _count and _sum are within the window (not cumulative).",
	}
	for i := range numHists {
		d.quantile[i] = prometheus.NewDesc(names[i], helps[i], mw, nil)
	}
	return d
}

// Describe implements prometheus.Collector.
func (e *Exporter) Describe(ch chan<- *prometheus.Desc) {
	d := &e.d
	for _, x := range []*prometheus.Desc{d.requests, d.clumpSizes, d.rate, d.latMean, d.queueMean, d.waiting, d.running, d.kv, d.batch, d.util, d.drain,
		d.up, d.scrapeDur, d.scrapeSamples, d.scrapeErrs, d.cycleDur, d.cycles, d.samples, d.targets, d.lastCycle} {
		ch <- x
	}
	for _, x := range d.quantile {
		ch <- x
	}
	e.coldStarts.Describe(ch)
	e.coldStartDur.Describe(ch)
}

// Collect implements prometheus.Collector.
func (e *Exporter) Collect(ch chan<- prometheus.Metric) { _ = e.CollectErr(ch) }

// ErrNotReady is returned by CollectErr before the first cycle completed.
var ErrNotReady = errors.New("no scrape cycle completed yet")

// CollectErr sends the metrics of the last cycle and reports whether there
// was one; CollectorSet turns that into infercast_collector_scrape_success.
func (e *Exporter) CollectErr(ch chan<- prometheus.Metric) error {
	e.coldStarts.Collect(ch)
	e.coldStartDur.Collect(ch)
	e.mu.Lock()
	bySource := map[string]int{}
	for _, s := range e.states {
		bySource[s.t.Source]++
	}
	for src := range e.sources {
		if _, ok := bySource[src]; !ok {
			bySource[src] = 0
		}
	}
	e.mu.Unlock()
	d := &e.d
	for _, src := range slices.Sorted(mapsKeys(bySource)) {
		ch <- prometheus.MustNewConstMetric(d.targets, prometheus.GaugeValue, float64(bySource[src]), src)
	}
	ch <- prometheus.MustNewConstMetric(d.cycles, prometheus.CounterValue, float64(e.cycles.Load()))
	ch <- prometheus.MustNewConstMetric(d.samples, prometheus.CounterValue, float64(e.samples.Load()))
	snap := e.snap.Load()
	if snap == nil {
		return ErrNotReady
	}
	ch <- prometheus.MustNewConstMetric(d.cycleDur, prometheus.GaugeValue, snap.cycleDuration.Seconds())
	ch <- prometheus.MustNewConstMetric(d.lastCycle, prometheus.GaugeValue, float64(snap.at.UnixNano())/1e9)
	gauge := func(desc *prometheus.Desc, v float64, lv ...string) {
		if !math.IsNaN(v) {
			ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, lv...)
		}
	}
	for _, t := range snap.targets {
		up := 0.0
		if t.up {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(d.up, prometheus.GaugeValue, up, t.name, t.dialect, t.source)
		ch <- prometheus.MustNewConstMetric(d.scrapeDur, prometheus.GaugeValue, t.duration, t.name)
		ch <- prometheus.MustNewConstMetric(d.scrapeSamples, prometheus.GaugeValue, float64(t.samples), t.name)
		for _, r := range slices.Sorted(mapsKeys(t.errs)) {
			if t.errs[r] > 0 {
				ch <- prometheus.MustNewConstMetric(d.scrapeErrs, prometheus.CounterValue, t.errs[r], t.name, r)
			}
		}
		for _, m := range t.models {
			gauge(d.waiting, m.waiting, m.model, t.name)
			gauge(d.running, m.running, m.model, t.name)
			gauge(d.kv, m.kv, m.model, t.name)
			gauge(d.batch, m.batch, m.model, t.name)
			gauge(d.util, m.batchUtil, m.model, t.name)
			gauge(d.drain, m.drain, m.model, t.name)
		}
	}
	for _, model := range slices.Sorted(maps.Keys(snap.requestsTotal)) {
		ch <- prometheus.MustNewConstMetric(d.requests, prometheus.CounterValue, snap.requestsTotal[model], model)
	}
	for _, model := range slices.Sorted(maps.Keys(snap.clumpSizeSum)) {
		ch <- prometheus.MustNewConstMetric(d.clumpSizes, prometheus.CounterValue, snap.clumpSizeSum[model], model)
	}
	for _, m := range snap.models {
		for wi, w := range m.windows {
			win := snap.windows[wi]
			gauge(d.rate, w.rate, m.model, win)
			gauge(d.latMean, w.latMean, m.model, win)
			gauge(d.queueMean, w.queueMean, m.model, win)
			for h := range numHists {
				if w.hcount[h] <= 0 || math.IsNaN(w.q[h][0]) {
					continue // no observations in the window
				}
				qs := make(map[float64]float64, len(quantiles))
				for qi, q := range quantiles {
					qs[q] = w.q[h][qi]
				}
				ch <- prometheus.MustNewConstSummary(d.quantile[h], uint64(math.Round(w.hcount[h])), w.hsum[h], qs, m.model, win)
			}
		}
	}
	return nil
}
