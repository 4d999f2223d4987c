package main

import (
	"context"
	"math"
	"time"

	"github.com/infercast/infercast/pkg/batchctl"
)

// batchObserver turns an exporter's series into the batch controller's
// observation of one model over the interval since its previous call, as
// docs/batching.md lays out: completed requests from the requests counter,
// batches from the average batch size, execution time from the mean
// latency less the mean queue time, the p99 from the latency summary.
// The exporter sums a model's targets, but each target batches on its
// own: the observation is one target's share, so the controller plans for
// the rate one server sees (every target gets the same knobs).
type batchObserver struct {
	exporter exporterLive
	model    string
	prevT    time.Time
	prevN    float64
	havePrev bool
}

// observe returns the observation ending at now, and false while there is
// no previous reading to take an increase from (or nothing completed).
func (b *batchObserver) observe(ctx context.Context, now time.Time) (batchctl.Observation, bool, error) {
	mfs, err := b.exporter.fetch(ctx)
	if err != nil {
		return batchctl.Observation{}, false, err
	}
	var totals []float64 // one per exporter read
	for _, m := range mfs["infercast_model_requests_total"].GetMetric() {
		if label(m, "model") == b.model {
			totals = append(totals, m.GetCounter().GetValue())
		}
	}
	total := sumOf(totals)
	if math.IsNaN(total) {
		return batchctl.Observation{}, false, nil
	}
	prevT, prevN, had := b.prevT, b.prevN, b.havePrev
	b.prevT, b.prevN, b.havePrev = now, total, true
	if !had || !now.After(prevT) || total < prevN {
		return batchctl.Observation{}, false, nil
	}
	o := batchctl.Observation{Time: now, Window: now.Sub(prevT), Arrivals: total - prevN, Requests: total - prevN}
	batch, batching, targets := 0.0, 0, 0
	for _, m := range mfs["infercast_model_batch_size"].GetMetric() {
		if label(m, "model") != b.model {
			continue
		}
		targets++
		if v := m.GetGauge().GetValue(); v > 0 {
			batch += v
			batching++
		}
	}
	latMean := meanOf(shortestWindow(mfs["infercast_model_request_latency_mean_seconds"], b.model, gaugeValue))
	queueMean := meanOf(shortestWindow(mfs["infercast_model_queue_time_mean_seconds"], b.model, gaugeValue))
	if batching == 0 || o.Requests == 0 || math.IsNaN(latMean) {
		return batchctl.Observation{}, false, nil
	}
	o.Arrivals /= float64(targets)
	o.Requests /= float64(targets)
	if math.IsNaN(queueMean) {
		queueMean = 0
	}
	o.Batches = o.Requests / (batch / float64(batching))
	o.ExecSeconds = o.Batches * math.Max(latMean-queueMean, 0)
	o.QueueSeconds = queueMean
	if p99 := maxOf(shortestWindow(mfs["infercast_model_request_latency_seconds"], b.model, summaryQuantile(0.99))); !math.IsNaN(p99) && !math.IsInf(p99, 0) {
		o.LatencyP99Seconds = p99
	}
	return o, true, nil
}
