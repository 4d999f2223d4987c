package main

import (
	"context"
	"log/slog"
	"math"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/infercast/infercast/internal/edgelog"
	"github.com/infercast/infercast/pkg/batchctl"
)

// batchObserver turns an exporter's series into the batch controller's
// observation of one model over the interval since its previous call, as
// docs/batching.md lays out: completed requests from the requests counter,
// batches from the average batch size, execution time from the mean
// latency less the mean queue time, the p99 from the latency summary, and
// the clump sizes of the arrivals from the clump counter, where a gateway
// or request log exports one (else zero: not measured, Poisson assumed).
// The exporter sums a model's targets, but each target batches on its
// own: the observation is one target's share, so the controller plans for
// the rate one server sees (every target gets the same knobs).
type batchObserver struct {
	exporter exporterLive
	model    string
	prevT    time.Time
	prevN    float64
	havePrev bool
	// prevClumps is the clump counter at prevT; haveClumps is false when
	// it was absent then, so an increase always spans the same interval
	// as the requests'.
	prevClumps float64
	haveClumps bool

	// stats reads the server's per-batch-size execution statistics when
	// its actuator can (Triton's statistics extension): the window's batch
	// size distribution, a sharper fit than the exporter's averages. nil:
	// the averages alone.
	stats     batchctl.StatsReader
	prevStats map[string]map[int]batchctl.BatchCounter
	statsErr  edgelog.State // the last statistics error, logged when it changes
	log       *slog.Logger  // nil: nothing logged
}

// batchStats reads the server's statistics and returns the window's
// increase since the previous reading (none on the first, or after a
// failed one). A failure is logged when it starts or changes; the
// observation then goes on from the averages.
func (b *batchObserver) batchStats(ctx context.Context) []batchctl.BatchStat {
	if b.stats == nil {
		return nil
	}
	cur, err := b.stats.BatchStats(ctx, b.model)
	if err != nil {
		if _, changed := b.statsErr.Set(err.Error()); changed && b.log != nil && ctx.Err() == nil {
			b.log.Warn("reading the server's batch statistics: fitting from the exporter's averages until they return", "err", err)
		}
		b.prevStats = nil
		return nil
	}
	b.statsErr.Set("")
	inc := batchctl.BatchIncrease(b.prevStats, cur)
	b.prevStats = cur
	return inc
}

// modelCounter sums the model's series of a counter family over the
// exporters read; NaN when none has one.
func modelCounter(fam *dto.MetricFamily, model string) float64 {
	var totals []float64 // one per exporter read
	for _, m := range fam.GetMetric() {
		if label(m, "model") == model {
			totals = append(totals, m.GetCounter().GetValue())
		}
	}
	return sumOf(totals)
}

// observe returns the observation ending at now, and false while there is
// no previous reading to take an increase from (or nothing completed).
func (b *batchObserver) observe(ctx context.Context, now time.Time) (batchctl.Observation, bool, error) {
	mfs, err := b.exporter.fetch(ctx)
	if err != nil {
		return batchctl.Observation{}, false, err
	}
	total := modelCounter(mfs["infercast_model_requests_total"], b.model)
	if math.IsNaN(total) {
		return batchctl.Observation{}, false, nil
	}
	clumps := modelCounter(mfs["infercast_model_request_clump_size_sum_total"], b.model)
	stats := b.batchStats(ctx)
	prevT, prevN, had := b.prevT, b.prevN, b.havePrev
	prevClumps, hadClumps := b.prevClumps, b.haveClumps
	b.prevT, b.prevN, b.havePrev = now, total, true
	b.prevClumps, b.haveClumps = clumps, !math.IsNaN(clumps)
	if !had || !now.After(prevT) || total < prevN {
		return batchctl.Observation{}, false, nil
	}
	o := batchctl.Observation{Time: now, Window: now.Sub(prevT), Arrivals: total - prevN, Requests: total - prevN, BatchStats: stats}
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
	if hadClumps && clumps >= prevClumps { // NaN (absent now) fails too
		// A decrease is a reset (the exporter restarted): no clumps
		// measured this window, not a negative count.
		o.ClumpSizeSum = (clumps - prevClumps) / float64(targets)
	}
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
