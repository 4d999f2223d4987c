package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"golang.org/x/term"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/predict"
)

// demoHPAs plays the HPA of each tier's ScaledObject: it reads the metric
// through KEDA's generated client from our external scaler endpoint, and
// computes replicas as the HPA does for an AverageValue target of 1
// (ceil of the value, ignoring changes within the tolerance).
type demoHPAs struct {
	client    externalscaler.ExternalScalerClient
	tolerance float64
}

func newDemoHPAs(c externalscaler.ExternalScalerClient, tol float64) *demoHPAs {
	return &demoHPAs{client: c, tolerance: tol}
}

func (h *demoHPAs) desired(ctx context.Context, tier string, current int) (int, error) {
	ref := &externalscaler.ScaledObjectRef{
		Name: "chat-" + tier, Namespace: "demo",
		ScalerMetadata: map[string]string{"workload": demoWorkload, "tier": tier},
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	spec, err := h.client.GetMetricSpec(ctx, ref)
	if err != nil || len(spec.GetMetricSpecs()) == 0 {
		return current, fmt.Errorf("GetMetricSpec: %v", err)
	}
	ms := spec.GetMetricSpecs()[0]
	resp, err := h.client.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: ref, MetricName: ms.GetMetricName()})
	if err != nil || len(resp.GetMetricValues()) == 0 {
		return current, fmt.Errorf("GetMetrics: %v", err)
	}
	value, target := resp.GetMetricValues()[0].GetMetricValueFloat(), ms.GetTargetSizeFloat()
	if !(target > 0) {
		return current, fmt.Errorf("target size %v", target)
	}
	// KEDA hands the value over as a milli-quantity.
	milli := math.Round(value * 1000)
	if current == 0 {
		return int(math.Ceil(milli / 1000 / target)), nil
	}
	ratio := milli / (1000 * target * float64(current))
	if 1-h.tolerance <= ratio && ratio <= 1+h.tolerance {
		return current, nil
	}
	return int(math.Ceil(milli / 1000 / target)), nil
}

// demoView shows what the demo decides: a live terminal view redrawn every
// decision interval, or plain lines every simulated 15 minutes when the
// output is not a terminal.
type demoView struct {
	w       io.Writer
	live    bool
	demand  []float64 // requests/s, one per decision, for the sparklines
	p90     []float64 // the band's p90 at each decision (NaN: none)
	lastOut time.Time
	lines   int
	// Cumulative counters for the summary.
	decisions    int
	odHours      float64
	spotHours    float64
	allODDollars float64
}

func newDemoView(w io.Writer, mode string) *demoView {
	live := mode == "live"
	if mode == "auto" {
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			live = true
		}
	}
	return &demoView{w: w, live: live}
}

func (v *demoView) observe(r *demoRun, now time.Time, rate float64) {
	v.decisions++
	v.demand = append(v.demand, rate)
	b, _ := r.band()
	v.p90 = append(v.p90, b.p90)
	od, spot, _ := r.cluster.Tiers(now)
	hours := demoDecision.Hours()
	v.odHours += float64(od.Ready+od.Starting+od.Terminating) * hours
	v.spotHours += float64(spot.Ready+spot.Starting+spot.Terminating) * hours
	// What the same capacity would cost all on-demand.
	v.allODDollars += float64(od.Ready+od.Starting+od.Terminating+spot.Ready+spot.Starting+spot.Terminating) * hours * r.cluster.priceOD
	if v.live {
		if time.Since(v.lastOut) < 200*time.Millisecond {
			return
		}
		v.lastOut = time.Now()
		fmt.Fprint(v.w, "\x1b[H\x1b[2J")
		fmt.Fprint(v.w, v.frame(r, now, rate))
		return
	}
	if sim := now.Sub(r.origin); sim%(15*time.Minute) == 0 {
		fmt.Fprintln(v.w, v.line(r, now, rate))
	}
}

func (v *demoView) line(r *demoRun, now time.Time, rate float64) string {
	p, _ := r.cache.Get(demoWorkload)
	od, spot, _ := r.cluster.Tiers(now)
	band := "-"
	if b, ok := r.band(); ok {
		band = fmt.Sprintf("%5s/%5s/%5s/s", formatRate(b.p50), formatRate(b.p90), formatRate(b.p99))
		if b.stale(now) {
			band += " (stale)"
		}
	}
	return fmt.Sprintf("%s demand %6s/s  forecast p50/p90/p99 %s  sized for %6s/s  on-demand %2d/%-2d  spot %2d/%-2d (margin %d, pending %d)  mode %-10s zones up %d/3  interruptions %d  cost $%.2f",
		now.Format("Mon 15:04"), formatRate(rate), band, formatRate(p.ForecastRate),
		od.Ready, p.Tiers[capacity.TierOnDemand].Replicas, spot.Ready, p.Tiers[capacity.TierSpot].Replicas,
		p.Tiers[capacity.TierSpot].Margin, spot.Pending, p.Mode, r.cluster.ZonesUp(), r.cluster.Interruptions(), r.cluster.costDollars)
}

func (v *demoView) frame(r *demoRun, now time.Time, rate float64) string {
	p, _ := r.cache.Get(demoWorkload)
	od, spot, _ := r.cluster.Tiers(now)
	st, _ := r.fleet.State(demoWorkload)
	var b strings.Builder
	fmt.Fprintf(&b, "infercast demo — simulated %s (%.0fx real time)   Ctrl-C to stop\n\n", now.Format("Mon 2 Jan 15:04:05"), r.cfg.speed)
	// Demand and the band's p90 share a scale, so the eye can compare
	// them; it spans their range, not 0 to the peak, to show the shape.
	demand, p90 := lastN(v.demand, 96), lastN(v.p90, 96)
	lo, hi := span(append(slices.Clone(demand), p90...))
	fmt.Fprintf(&b, "demand      %7s req/s   %s\n", formatRate(rate), sparkline(demand, lo, hi))
	if fb, ok := r.band(); ok {
		fmt.Fprintf(&b, "forecast p90 %6s req/s   %s   (▁ %s, █ %s req/s)\n", formatRate(fb.p90), sparkline(p90, lo, hi), formatRate(lo), formatRate(hi))
		why := fmt.Sprintf("busiest step up to %s, model %s", fb.until.Format("15:04"), fb.model)
		if fb.stale(now) {
			why = "stale: the latest forecast ended " + fb.until.Format("Mon 15:04")
		}
		fmt.Fprintf(&b, "band        p50 %s · p90 %s · p99 %s req/s   (%s)\n", formatRate(fb.p50), formatRate(fb.p90), formatRate(fb.p99), why)
	} else {
		fmt.Fprintf(&b, "band        - (no forecast yet)\n")
	}
	fmt.Fprintf(&b, "sized for   %7s req/s   (forecast over cold start + decision interval)\n", formatRate(p.ForecastRate))
	fmt.Fprintf(&b, "plan        mode %-10s bound by %-14s active %v\n\n", p.Mode, p.Bound, p.Active)
	fmt.Fprintf(&b, "                ready  starting  pending  under notice   target (margin)\n")
	fmt.Fprintf(&b, "  on-demand     %5d  %8d  %7d  %12d   %6d\n", od.Ready, od.Starting, od.Pending, od.Terminating, p.Tiers[capacity.TierOnDemand].Replicas)
	fmt.Fprintf(&b, "  spot          %5d  %8d  %7d  %12d   %6d (%d)\n\n", spot.Ready, spot.Starting, spot.Pending, spot.Terminating, p.Tiers[capacity.TierSpot].Replicas, p.Tiers[capacity.TierSpot].Margin)
	fmt.Fprintf(&b, "spot market  %d/3 zones up, %d interruptions so far\n", r.cluster.ZonesUp(), r.cluster.Interruptions())
	fmt.Fprintf(&b, "chat server  queue %d, running %d\n", st.Waiting, st.Running)
	if d := r.lastBatch; d.Model != "" {
		fmt.Fprintf(&b, "batching     %s (Triton, recommend-only, SLO %s): max_batch_size %d, max_queue_delay %s; predicted p99 %.0f ms (%s)\n",
			d.Model, demoBatchSLO, d.Recommended.MaxBatchSize, d.Recommended.MaxQueueDelay, 1000*d.Prediction.P99Seconds, d.Reason)
	}
	fmt.Fprintf(&b, "cost         $%.2f so far; the same replica-hours all on-demand: $%.2f\n", r.cluster.costDollars, v.allODDollars)
	return b.String()
}

func (v *demoView) final(r *demoRun) {
	if v.live {
		fmt.Fprintln(v.w)
	}
	saving := 0.0
	if v.allODDollars > 0 {
		saving = 1 - r.cluster.costDollars/v.allODDollars
	}
	fmt.Fprintf(v.w, "demo: %d decisions; %.1f on-demand and %.1f spot replica-hours; %d spot interruptions; cost $%.2f (%.0f%% below all on-demand)\n",
		v.decisions, v.odHours, v.spotHours, r.cluster.Interruptions(), r.cluster.costDollars, 100*saving)
	if d := r.lastBatch; d.Model != "" {
		fmt.Fprintf(v.w, "demo: batch controller on %s recommends max_batch_size %d, max_queue_delay %s (profile alpha %.1f ms, beta %.2f ms; %s)\n",
			d.Model, d.Recommended.MaxBatchSize, d.Recommended.MaxQueueDelay, 1000*d.Profile.Alpha, 1000*d.Profile.Beta, d.Reason)
	}
}

// forecastBand is the forecast the planner last sized from, as an operator
// reads it: for each percentile, the busiest step of the forecast, in
// requests/s like the demand. The loop forecasts from the last whole step
// up to now + horizon (cold start + decision interval), the span the
// planner reads, so this is the band of demand over the planner's horizon.
type forecastBand struct {
	p50, p90, p99 float64
	until         time.Time // end of the forecast's last step
	model         string
}

// stale says the forecast no longer reaches now: the planner could not
// forecast since (history unavailable) and plans from elsewhere.
func (b forecastBand) stale(now time.Time) bool { return !b.until.After(now) }

// band is the band of the workload's latest forecast, false before the
// first one or when it has no finite value.
func (r *demoRun) band() (forecastBand, bool) {
	f, _ := r.forecasts.Latest(demoWorkload) // none: an empty forecast
	return bandOf(f)
}

// bandOf is f's band; false (and NaN rates) when a percentile has no
// finite step.
func bandOf(f predict.Forecast) (forecastBand, bool) {
	b := forecastBand{p50: math.NaN(), p90: math.NaN(), p99: math.NaN(), model: f.Model,
		until: f.Origin.Add(time.Duration(f.Len()) * f.Step)}
	if f.Len() == 0 || f.Step <= 0 {
		return b, false
	}
	busiest := func(counts []float64) float64 {
		hi := math.NaN()
		for _, c := range counts {
			if !math.IsNaN(c) && !math.IsInf(c, 0) && (math.IsNaN(hi) || c > hi) {
				hi = c
			}
		}
		return hi / f.Step.Seconds()
	}
	b.p50, b.p90, b.p99 = busiest(f.P50), busiest(f.P90), busiest(f.P99)
	return b, !math.IsNaN(b.p50) && !math.IsNaN(b.p90) && !math.IsNaN(b.p99)
}

// span is the smallest and largest finite values of xs (0, 0 when none).
func span(xs []float64) (lo, hi float64) {
	lo, hi = math.Inf(1), math.Inf(-1)
	for _, x := range xs {
		if !math.IsNaN(x) && !math.IsInf(x, 0) {
			lo, hi = min(lo, x), max(hi, x)
		}
	}
	if lo > hi {
		return 0, 0
	}
	return lo, hi
}

// lastN is the last n values of xs.
func lastN(xs []float64, n int) []float64 { return xs[max(0, len(xs)-n):] }

// sparkline draws xs with block characters from lo (▁) to hi (█); a NaN
// (no value) is a space.
func sparkline(xs []float64, lo, hi float64) string {
	blocks := []rune("▁▂▃▄▅▆▇█")
	var b strings.Builder
	for _, x := range xs {
		if math.IsNaN(x) {
			b.WriteRune(' ')
			continue
		}
		i := 0
		if hi > lo {
			i = max(0, min(len(blocks)-1, int((x-lo)/(hi-lo)*float64(len(blocks)-1)+0.5)))
		}
		b.WriteRune(blocks[i])
	}
	return b.String()
}
