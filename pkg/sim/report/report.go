// Package report renders a backtest as one self-contained HTML page: the
// headline numbers, plots made with gonum/plot and inlined as SVG, and a
// table against the baselines. Nothing is loaded from elsewhere.
package report

import (
	"bytes"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/infercast/infercast/pkg/sim"
)

// Input is what one backtest produced.
type Input struct {
	Scenario  *sim.Scenario
	Summary   sim.SummaryFile
	Policy    *sim.Result
	Baselines map[string]*sim.Result
	// Order lists the baselines in the order they are shown.
	Order []string
	// Sweep, when not nil, is the policy replayed once per value of one
	// of its keys (adapter backtest --sweep).
	Sweep *Sweep
}

// Sweep is a policy replayed once per value of one key of its workload.
type Sweep struct {
	Key  string
	Runs []SweepRun
}

// SweepRun is one value's outcome.
type SweepRun struct {
	Value   string
	Target  float64 // the run's target_availability
	Summary sim.Summary
}

// Cheapest is the index of the cheapest run that meets its own target
// availability; false when none does.
func (s *Sweep) Cheapest() (int, bool) {
	best := -1
	for i, r := range s.Runs {
		if r.Summary.SLOAttainment >= r.Target && (best < 0 || r.Summary.CostDollars < s.Runs[best].Summary.CostDollars) {
			best = i
		}
	}
	return best, best >= 0
}

// maxPoints bounds the points of a plot over the whole run.
const maxPoints = 1500

// Colours, chosen to tell tiers apart at a glance and to survive
// red-green colour blindness.
var (
	colDemand   = color.RGBA{R: 0x20, G: 0x20, B: 0x20, A: 0xff}
	colOnDemand = color.RGBA{R: 0x3b, G: 0x6f, B: 0xb6, A: 0xff}
	colSpot     = color.RGBA{R: 0xf2, G: 0xa3, B: 0x3a, A: 0xff}
	// Opaque pastel fills for the stacked capacity areas.
	colOnDemandFill = color.RGBA{R: 0x9c, G: 0xb9, B: 0xe0, A: 0xff}
	colSpotFill     = color.RGBA{R: 0xf7, G: 0xcb, B: 0x8f, A: 0xff}
	colBandMid      = color.RGBA{R: 0x6a, G: 0x3d, B: 0x9a, A: 0xff}
	colMiss         = color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}
	colOracle       = color.RGBA{R: 0x2e, G: 0x8b, B: 0x57, A: 0xff}
	colBaseline     = []color.RGBA{
		color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 0xff},
		color.RGBA{R: 0xb0, G: 0x7a, B: 0xa1, A: 0xff},
	}
)

// Write renders the page.
func Write(w io.Writer, in Input) error {
	page, err := build(in)
	if err != nil {
		return err
	}
	return pageTmpl.Execute(w, page)
}

type card struct {
	Label, Value, Note string
	Bad                bool
}

type row struct {
	Name                                     string
	Attainment, Met, Late, Dropped, Unserved string
	Cost, OverOracle, OverAware              string
	ODHours, SpotHours, Notices              string
	Main                                     bool
}

type figure struct {
	Title, Caption string
	Legend         []legendItem
	SVG            template.HTML
}

// legendItem is drawn in HTML above its plot, where it never hides data.
type legendItem struct {
	Label string
	Color template.CSS
	Kind  string // "line", "dash" or "area"
}

func item(label string, c color.RGBA, kind string) legendItem {
	return legendItem{Label: label, Kind: kind,
		Color: template.CSS(fmt.Sprintf("rgba(%d,%d,%d,%.2f)", c.R, c.G, c.B, float64(c.A)/255))}
}

type page struct {
	Title     string
	Subtitle  string
	Cards     []card
	Figures   []figure
	Rows      []row
	SweepKey  string
	Sweep     []row // Main marks the cheapest that meets its target
	SweepNote string
	SweepFig  *figure
	Oracle    string
	Aware     string
	Notes     []string
}

func build(in Input) (*page, error) {
	s := in.Summary
	cfg := in.Scenario.Config
	p := &page{
		Title: fmt.Sprintf("Backtest of %s ×%g", baseName(s.Trace), s.Scale),
		Subtitle: fmt.Sprintf("%s to %s · mu %g requests/s per replica · cold start %g s · queue SLO %g s · timeout %g s · $%.2f on-demand, $%.2f spot per replica-hour · spot notice %g s · spot pools: %s",
			s.Start.Format("2 Jan 2006 15:04"), s.End.Format("2 Jan 2006 15:04 MST"), cfg.Mu, cfg.ColdStart.Seconds(), cfg.QueueSLO.Seconds(), cfg.Timeout.Seconds(),
			cfg.PriceOnDemand, cfg.PriceSpot, cfg.Notice.Seconds(), pools(s.SpotPools)),
		Oracle: dollars(s.OracleCostDollars),
		Aware:  dollars(s.SpotAwareOracleCostDollars),
	}
	p.Cards = cards(in)
	p.Rows = append(p.Rows, tableRow("infercast", s.Summary, true))
	for _, name := range in.Order {
		if b, ok := s.Baselines[name]; ok {
			p.Rows = append(p.Rows, tableRow(name, b, false))
		}
	}

	if sw := in.Sweep; sw != nil {
		p.SweepKey = sw.Key
		cheapest, ok := sw.Cheapest()
		for i, r := range sw.Runs {
			p.Sweep = append(p.Sweep, tableRow(r.Value, r.Summary, i == cheapest))
		}
		p.SweepNote = "In bold: the cheapest that meets its own target_availability."
		if !ok {
			p.SweepNote = "None of the values meets its target_availability on this trace."
		}
		fig, err := sweepFigure(in)
		if err != nil {
			return nil, err
		}
		p.SweepFig = &fig
	}

	b := newBuckets(in, maxPoints)
	figs := []func(*buckets) (figure, error){demandFigure, missFigure, costFigure}
	if len(in.Scenario.Pools) > 0 {
		figs = append(figs, spotFigure)
	}
	for _, f := range figs {
		fig, err := f(b)
		if err != nil {
			return nil, err
		}
		p.Figures = append(p.Figures, fig)
	}
	if day, ok := worstDay(in); ok {
		zb := newZoom(in, day)
		fig, err := zoomFigure(zb, in)
		if err != nil {
			return nil, err
		}
		p.Figures = append(p.Figures, fig)
	}
	p.Notes = []string{
		"Met: served within the queue SLO. Late: served after waiting longer. Dropped: waited past the timeout. Unserved: still queued when the trace ended.",
		"Oracle: exactly the replicas each 15 s interval needs, at the cheaper tier's price (spot, unless on-demand costs less), ready at once, never interrupted — no policy can be cheaper. Spot-aware oracle: the same count, priced on-demand while no spot pool has capacity.",
		"Reactive: the Kubernetes HPA on a requests/s metric as KEDA's Prometheus scaler drives it (target 0.7·mu per replica, 60 s rate, 10 % tolerance, 300 s scale-down stabilisation, all on-demand). Static: the peak interval's replicas, on-demand, all the time.",
	}
	return p, nil
}

func cards(in Input) []card {
	s := in.Summary
	var cs []card
	rea, hasRea := s.Baselines["reactive"]
	att := card{Label: "SLO attainment", Value: pct(s.SLOAttainment), Bad: s.SLOAttainment < 0.995}
	if hasRea {
		att.Note = "reactive HPA: " + pct(rea.SLOAttainment)
	}
	cost := card{Label: "cost", Value: dollars(s.CostDollars)}
	if hasRea {
		cost.Note = "reactive HPA: " + dollars(rea.CostDollars)
		cost.Bad = s.CostDollars > rea.CostDollars
	}
	cs = append(cs, att, cost,
		card{Label: "× oracle", Value: fmt.Sprintf("%.2f×", s.CostOverOracle), Note: "oracle: " + dollars(s.OracleCostDollars)},
		card{Label: "× spot-aware oracle", Value: fmt.Sprintf("%.2f×", s.CostOverSpotAwareOracle), Note: "spot-aware oracle: " + dollars(s.SpotAwareOracleCostDollars)},
		card{Label: "requests that missed the SLO", Value: count(s.Requests - s.Met),
			Note: fmt.Sprintf("of %s: %s late, %s dropped", count(s.Requests), count(s.Late), count(s.Dropped+s.Unserved))},
		card{Label: "spot share of replica-hours", Value: pct(ratio(s.SpotReplicaHours, s.SpotReplicaHours+s.OnDemandReplicaHours)),
			Note: fmt.Sprintf("%d spot interruptions", s.SpotInterruptions)},
	)
	return cs
}

func tableRow(name string, s sim.Summary, main bool) row {
	return row{
		Name: name, Main: main,
		Attainment: pct(s.SLOAttainment),
		Met:        count(s.Met), Late: count(s.Late), Dropped: count(s.Dropped), Unserved: count(s.Unserved),
		Cost:       dollars(s.CostDollars),
		OverOracle: fmt.Sprintf("%.2f×", s.CostOverOracle), OverAware: fmt.Sprintf("%.2f×", s.CostOverSpotAwareOracle),
		ODHours: fmt.Sprintf("%.0f", s.OnDemandReplicaHours), SpotHours: fmt.Sprintf("%.0f", s.SpotReplicaHours),
		Notices: fmt.Sprint(s.SpotInterruptions),
	}
}

// buckets aggregates the per-interval timelines into at most maxPoints
// points.
type buckets struct {
	in      Input
	t       []float64 // bucket start, unix seconds
	width   float64   // seconds per bucket
	demand  []float64 // requests/s
	readyOD []float64 // requests/s the ready on-demand replicas serve
	readySp []float64
	band    [3][]float64 // low, mid, high requests/s; NaN without a band
	missed  map[string][]float64
	cost    map[string][]float64 // cumulative $
	oracle  []float64            // cumulative $
	aware   []float64
	pools   []float64 // mean pools available
	pending []float64 // mean spot replicas pending
}

func newBuckets(in Input, points int) *buckets {
	tl := in.Policy.Timeline
	iv := in.Scenario.Config.Interval
	per := max(1, (len(tl)+points-1)/points)
	// A round bucket width reads better than "33m15s".
	for _, w := range []time.Duration{time.Minute, 2 * time.Minute, 5 * time.Minute, 10 * time.Minute, 15 * time.Minute,
		30 * time.Minute, time.Hour, 2 * time.Hour, 3 * time.Hour, 6 * time.Hour, 12 * time.Hour, 24 * time.Hour} {
		if w%iv == 0 && int(w/iv) >= per {
			per = int(w / iv)
			break
		}
	}
	return aggregate(in, 0, len(tl), per)
}

// aggregate buckets samples [from, to) of every timeline, per samples a
// bucket.
func aggregate(in Input, from, to, per int) *buckets {
	cfg := in.Scenario.Config
	tl := in.Policy.Timeline
	b := &buckets{in: in, width: float64(per) * cfg.Interval.Seconds(), missed: map[string][]float64{}, cost: map[string][]float64{}}
	oi, ai := in.Scenario.OracleIntervalCosts()
	var oCum, aCum float64
	for j := range from {
		oCum += oi[j]
		aCum += ai[j]
	}
	mu := cfg.Mu
	for i := from; i < to; i += per {
		end := min(i+per, to)
		n := float64(end - i)
		var arr, od, sp, pend, pl float64
		var lo, mid, hi, nb float64
		for j := i; j < end; j++ {
			x := tl[j]
			arr += x.Arrivals
			od += float64(x.ReadyOnDemand)
			sp += float64(x.ReadySpot)
			pend += float64(x.PendingSpot)
			pl += float64(in.Scenario.AvailablePools(x.Time.Sub(in.Scenario.Trace.Start)))
			if x.HasBand {
				lo, mid, hi, nb = lo+x.Band.Low, mid+x.Band.Mid, hi+x.Band.High, nb+1
			}
			oCum += oi[j]
			aCum += ai[j]
		}
		secs := n * cfg.Interval.Seconds()
		b.t = append(b.t, float64(tl[i].Time.Unix()))
		b.demand = append(b.demand, arr/secs)
		b.readyOD = append(b.readyOD, od/n*mu)
		b.readySp = append(b.readySp, sp/n*mu)
		b.pending = append(b.pending, pend/n)
		b.pools = append(b.pools, pl/n)
		if nb > 0 {
			b.band[0] = append(b.band[0], lo/nb)
			b.band[1] = append(b.band[1], mid/nb)
			b.band[2] = append(b.band[2], hi/nb)
		} else {
			for k := range b.band {
				b.band[k] = append(b.band[k], math.NaN())
			}
		}
		b.oracle = append(b.oracle, oCum)
		b.aware = append(b.aware, aCum)
		add := func(name string, r *sim.Result) {
			var miss float64
			for j := i; j < min(end, len(r.Timeline)); j++ {
				miss += r.Timeline[j].Late + r.Timeline[j].Dropped
			}
			b.missed[name] = append(b.missed[name], miss)
			b.cost[name] = append(b.cost[name], r.Timeline[min(end, len(r.Timeline))-1].Cost)
		}
		add("infercast", in.Policy)
		for _, name := range in.Order {
			if r, ok := in.Baselines[name]; ok {
				add(name, r)
			}
		}
	}
	return b
}

func newZoom(in Input, day int) *buckets {
	perDay := int(24 * time.Hour / in.Scenario.Config.Interval)
	from := day * perDay
	to := min(from+perDay, len(in.Policy.Timeline))
	per := max(1, int(time.Minute/in.Scenario.Config.Interval))
	return aggregate(in, from, to, per)
}

// worstDay is the day (counted from the start) where infercast missed the
// most requests, or the day of peak demand when it missed none.
func worstDay(in Input) (int, bool) {
	tl := in.Policy.Timeline
	perDay := int(24 * time.Hour / in.Scenario.Config.Interval)
	if len(tl) < perDay/4 {
		return 0, false
	}
	var miss, demand []float64
	for j, x := range tl {
		d := j / perDay
		for len(miss) <= d {
			miss, demand = append(miss, 0), append(demand, 0)
		}
		miss[d] += x.Late + x.Dropped
		demand[d] = math.Max(demand[d], x.Arrivals)
	}
	best := argmax(miss)
	if miss[best] == 0 {
		best = argmax(demand)
	}
	return best, true
}

func argmax(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] {
			best = i
		}
	}
	return best
}

// sans is the plots' font.
func sans(size vg.Length) font.Font {
	return font.Font{Typeface: "Liberation", Variant: "Sans", Size: size}
}

func newPlot(title, ylabel string, b *buckets) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.Title.TextStyle.Font = sans(13)
	p.Y.Label.Text = ylabel
	p.Y.Label.TextStyle.Font = sans(11)
	p.X.Tick.Label.Font = sans(10)
	p.Y.Tick.Label.Font = sans(10)
	span := b.t[len(b.t)-1] - b.t[0]
	format := "Jan 2"
	if span <= 2*86400 {
		format = "15:04"
	}
	p.X.Tick.Marker = plot.TimeTicks{Format: format, Ticker: timeTicker{}}
	p.X.Min, p.X.Max = b.t[0], b.t[len(b.t)-1]+b.width
	p.Add(plotter.NewGrid())
	p.Y.Min = 0
	return p
}

// timeTicker places at most about ten ticks at round times (minutes, hours
// or days), UTC.
type timeTicker struct{}

func (timeTicker) Ticks(min, max float64) []plot.Tick {
	span := max - min
	steps := []float64{60, 5 * 60, 10 * 60, 15 * 60, 30 * 60, 3600, 3 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400}
	step := steps[len(steps)-1]
	for _, s := range steps {
		if span/s <= 10 {
			step = s
			break
		}
	}
	var ticks []plot.Tick
	for t := math.Ceil(min/step) * step; t <= max; t += step {
		ticks = append(ticks, plot.Tick{Value: t, Label: "x"})
	}
	return ticks
}

func xy(t, y []float64) plotter.XYs {
	pts := make(plotter.XYs, 0, len(t))
	for i := range t {
		if !math.IsNaN(y[i]) {
			pts = append(pts, plotter.XY{X: t[i], Y: y[i]})
		}
	}
	return pts
}

// stepXY draws each bucket as a flat segment, so that capacity reads as
// the step function it is.
func stepXY(t, y []float64, width float64) plotter.XYs {
	pts := make(plotter.XYs, 0, 2*len(t))
	for i := range t {
		pts = append(pts, plotter.XY{X: t[i], Y: y[i]}, plotter.XY{X: t[i] + width, Y: y[i]})
	}
	return pts
}

func line(pts plotter.XYs, c color.Color, width vg.Length, dashed bool) *plotter.Line {
	l, _ := plotter.NewLine(pts)
	l.Color = c
	l.Width = width
	if dashed {
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
	}
	return l
}

func demandFigure(b *buckets) (figure, error) {
	p := newPlot("", "requests/s", b)
	leg := addCapacity(p, b, false)
	caption := fmt.Sprintf("Mean demand per %s against the capacity (replicas × mu) of the replicas that were ready, stacked by tier", human(b.width))
	if hasBand(b) {
		caption += ", and the forecast band the planner sized for: lowest median to highest p99 over the cold-start horizon."
	} else {
		caption += ". This policy reports no forecast."
	}
	return render(p, leg, "Demand, forecast and ready capacity", caption)
}

// addCapacity draws the stacked capacity, the band and the demand; with
// mid, the rate the planner sized for too.
func addCapacity(p *plot.Plot, b *buckets, mid bool) []legendItem {
	total := make([]float64, len(b.t))
	for i := range total {
		total[i] = b.readyOD[i] + b.readySp[i]
	}
	// The band goes underneath, the translucent capacity over it, then the
	// band's edges and the demand on top. The y axis stops a little above
	// demand and capacity: an early, history-less band may be far wider.
	top := 0.0
	for i := range b.t {
		top = math.Max(top, math.Max(b.demand[i], total[i]))
	}
	var leg []legendItem
	withBand := hasBand(b)
	// Opaque fills: the on-demand area lies over the bottom of the spot
	// area, and a translucent one would mix the two colours.
	spot := line(stepXY(b.t, total, b.width), colSpot, 0, false)
	spot.FillColor = colSpotFill
	od := line(stepXY(b.t, b.readyOD, b.width), colOnDemand, 0, false)
	od.FillColor = colOnDemandFill
	p.Add(spot, od)
	leg = append(leg, item("ready on-demand capacity", colOnDemandFill, "area"), item("ready spot capacity", colSpotFill, "area"))
	if withBand {
		lo := line(xy(bandX(b), b.band[0]), colBandMid, 0.9, false)
		hi := line(xy(bandX(b), b.band[2]), colBandMid, 0.9, false)
		p.Add(lo, hi)
		leg = append(leg, item("forecast band", colBandMid, "band"))
		if mid {
			m := line(xy(bandX(b), b.band[1]), colBandMid, 0.9, true)
			p.Add(m)
			leg = append(leg, item("rate sized for", colBandMid, "dash"))
		}
	}
	d := line(xy(b.t, b.demand), colDemand, 0.8, false)
	p.Add(d)
	p.Y.Max = 1.15 * math.Max(top, 1e-9) // after Add, which widens the range
	return append(leg, item("demand", colDemand, "line"))
}

// bandX puts band points mid-bucket.
func bandX(b *buckets) []float64 {
	x := make([]float64, len(b.t))
	for i, t := range b.t {
		x[i] = t + b.width/2
	}
	return x
}

// hasBand reports whether any bucket has a forecast band.
func hasBand(b *buckets) bool {
	for _, v := range b.band[0] {
		if !math.IsNaN(v) {
			return true
		}
	}
	return false
}

func missFigure(b *buckets) (figure, error) {
	p := newPlot("", "requests missed per "+human(b.width), b)
	names := append([]string{"infercast"}, b.in.Order...)
	var leg []legendItem
	for i := len(names) - 1; i >= 0; i-- { // infercast on top
		name := names[i]
		m, ok := b.missed[name]
		if !ok {
			continue
		}
		c, w, kind := colMiss, vg.Length(1.2), "area"
		if i > 0 {
			c, w, kind = colBaseline[(i-1)%len(colBaseline)], 1, "line"
		}
		l := line(stepXY(b.t, m, b.width), c, w, false)
		if i == 0 {
			l.FillColor = withAlpha(colMiss, 0x60)
		}
		p.Add(l)
		leg = append([]legendItem{item(name, c, kind)}, leg...)
	}
	return render(p, leg, "Where requests missed the SLO",
		"Requests served late or dropped, per bucket, for infercast (filled) and the baselines. Flat at zero is the goal.")
}

func costFigure(b *buckets) (figure, error) {
	p := newPlot("", "cumulative cost ($)", b)
	names := append([]string{"infercast"}, b.in.Order...)
	var leg []legendItem
	for i, name := range names {
		c, ok := b.cost[name]
		if !ok {
			continue
		}
		col, w := colOnDemand, vg.Length(2)
		if i > 0 {
			col, w = colBaseline[(i-1)%len(colBaseline)], 1.2
		}
		p.Add(line(xy(b.t, c), col, w, false))
		leg = append(leg, item(name, col, "line"))
	}
	p.Add(line(xy(b.t, b.oracle), colOracle, 1.2, true), line(xy(b.t, b.aware), colOracle, 1.2, false))
	leg = append(leg, item("oracle", colOracle, "dash"), item("spot-aware oracle", colOracle, "line"))
	return render(p, leg, "Cost over time", "What each policy had spent by each moment, against the two oracles.")
}

func spotFigure(b *buckets) (figure, error) {
	p := newPlot("", "pools / replicas", b)
	pl := line(stepXY(b.t, b.pools, b.width), colOracle, 0, false)
	pl.FillColor = withAlpha(colOracle, 0x40)
	pe := line(xy(b.t, b.pending), colMiss, 1, false)
	p.Add(pl, pe)
	leg := []legendItem{item("spot pools with capacity", withA(colOracle, 0x40), "area"), item("infercast's spot replicas waiting for a pool", colMiss, "line")}
	return render(p, leg, "The spot market", "How many spot pools had capacity (never shown to the policy), and how many of infercast's spot replicas waited for one.")
}

func zoomFigure(b *buckets, in Input) (figure, error) {
	p := newPlot("", "requests/s", b)
	leg := addCapacity(p, b, true)
	if m := b.missed["infercast"]; len(m) > 0 {
		// Misses as red ticks along the bottom, scaled to the plot.
		top := 0.0
		for i := range b.t {
			top = math.Max(top, math.Max(b.demand[i], b.readyOD[i]+b.readySp[i]))
		}
		var pts plotter.XYs
		peak := 0.0
		for _, v := range m {
			peak = math.Max(peak, v)
		}
		if peak > 0 {
			for i, v := range m {
				pts = append(pts, plotter.XY{X: b.t[i], Y: v / peak * top * 0.25})
			}
			l := line(pts, colMiss, 1, false)
			l.FillColor = withAlpha(colMiss, 0x70)
			p.Add(l)
			leg = append(leg, item(fmt.Sprintf("missed requests, scaled (peak: %s in a minute)", count(peak)), colMiss, "area"))
		}
	}
	day := time.Unix(int64(b.t[0]), 0).UTC()
	return render(p, leg, "Close-up: "+day.Format("Mon 2 Jan 2006")+" (UTC)",
		"The day with the most missed requests (or the busiest day, if none were missed), minute by minute.")
}

// render draws p as an inline SVG.
// sweepFigure draws the sweep's runs as cost against attainment, in the
// order of the values, with the target: the trade-off a user picks a
// setting from. The baselines are in the table above: the static one
// would squeeze the runs into a corner.
func sweepFigure(in Input) (figure, error) {
	sw := in.Sweep
	p := plot.New()
	p.X.Label.Text, p.Y.Label.Text = "cost × oracle", "SLO attainment (%)"
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font = sans(11)
		a.Tick.Label.Font = sans(10)
	}
	p.Add(plotter.NewGrid())
	pts := make(plotter.XYs, len(sw.Runs))
	labels := plotter.XYLabels{XYs: make(plotter.XYs, len(sw.Runs)), Labels: make([]string, len(sw.Runs))}
	for i, r := range sw.Runs {
		pts[i] = plotter.XY{X: r.Summary.CostOverOracle, Y: 100 * r.Summary.SLOAttainment}
		labels.XYs[i], labels.Labels[i] = pts[i], " "+r.Value
	}
	ln, sc, err := plotter.NewLinePoints(pts)
	if err != nil {
		return figure{}, fmt.Errorf("report: sweep: %w", err)
	}
	ln.Color, ln.Width = colOnDemand, 1.5
	sc.Color, sc.Shape, sc.Radius = colOnDemand, draw.CircleGlyph{}, 3
	lb, err := plotter.NewLabels(labels)
	if err != nil {
		return figure{}, fmt.Errorf("report: sweep: %w", err)
	}
	for i := range lb.TextStyle {
		lb.TextStyle[i].Font = sans(10)
	}
	p.Add(ln, sc, lb)
	leg := []legendItem{item("infercast, one point per value of "+sw.Key, colOnDemand, "line")}
	// The target, when the runs share one (a sweep of target_availability
	// has one per run): the cheapest point above it is the pick.
	target := sw.Runs[0].Target
	for _, r := range sw.Runs {
		if r.Target != target {
			target = math.NaN()
		}
	}
	if !math.IsNaN(target) {
		lo, hi := pts[0].X, pts[0].X
		for _, q := range pts {
			lo, hi = math.Min(lo, q.X), math.Max(hi, q.X)
		}
		p.Add(line(plotter.XYs{{X: lo, Y: 100 * target}, {X: hi, Y: 100 * target}}, colOracle, 1.2, true))
		// Room for the last point's label.
		p.X.Max = hi + 0.08*(hi-lo) + 0.01
		leg = append(leg, item(fmt.Sprintf("target_availability %s", pct(target)), colOracle, "dash"))
	}
	return render(p, leg, "Cost against SLO attainment",
		"Up and to the left is better. The policy's runs are joined in the order of the values given.")
}

func render(p *plot.Plot, legend []legendItem, title, caption string) (figure, error) {
	c := vgsvg.New(vg.Points(900), vg.Points(300))
	p.Draw(draw.New(c))
	var buf bytes.Buffer
	if _, err := c.WriteTo(&buf); err != nil {
		return figure{}, fmt.Errorf("report: %s: %w", title, err)
	}
	svg := buf.String()
	i := strings.Index(svg, "<svg")
	if i < 0 {
		return figure{}, fmt.Errorf("report: %s: no <svg> in the rendered plot", title)
	}
	svg = svg[i:]
	// Let the page size the plot: drop the fixed size, keep the viewBox.
	svg = strings.Replace(svg, `width="900pt" height="300pt"`, `width="100%" role="img"`, 1)
	return figure{Title: title, Caption: caption, Legend: legend, SVG: template.HTML(svg)}, nil
}

// withA is c with alpha a, not premultiplied (for CSS).
func withA(c color.RGBA, a uint8) color.RGBA { c.A = a; return c }

func withAlpha(c color.RGBA, a uint8) color.Color {
	// Premultiplied alpha, as image/color expects.
	f := float64(a) / 255
	return color.RGBA{R: uint8(float64(c.R) * f), G: uint8(float64(c.G) * f), B: uint8(float64(c.B) * f), A: a}
}

func pct(x float64) string { return fmt.Sprintf("%.3f %%", 100*x) }

func dollars(x float64) string {
	if x >= 10000 {
		return "$" + thousands(int64(math.Round(x)))
	}
	return fmt.Sprintf("$%.2f", x)
}

func count(x float64) string {
	if x < 100 && x != math.Trunc(x) {
		return fmt.Sprintf("%.1f", x)
	}
	return thousands(int64(math.Round(x)))
}

func thousands(n int64) string {
	s := fmt.Sprint(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var out []string
	for len(s) > 3 {
		out = append([]string{s[len(s)-3:]}, out...)
		s = s[:len(s)-3]
	}
	out = append([]string{s}, out...)
	r := strings.Join(out, ",")
	if neg {
		r = "-" + r
	}
	return r
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func human(seconds float64) string {
	d := time.Duration(seconds * float64(time.Second))
	switch {
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	default:
		return d.String()
	}
}

func baseName(p string) string {
	if i := strings.LastIndexAny(p, `/\`); i >= 0 {
		return p[i+1:]
	}
	return p
}

func pools(names []string) string {
	if len(names) == 0 {
		return "none (spot always available)"
	}
	s := append([]string(nil), names...)
	sort.Strings(s)
	return strings.Join(s, ", ")
}

var pageTmpl = template.Must(template.New("report").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}}</title>
<style>
  body { font-family: "Liberation Sans", Arial, Helvetica, sans-serif; margin: 0; background: #f6f7f9; color: #1d2330; }
  main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; }
  h1 { font-size: 26px; margin: 0 0 6px; }
  .sub { color: #5b6475; font-size: 13px; line-height: 1.5; margin-bottom: 20px; }
  .cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(180px, 1fr)); gap: 12px; margin-bottom: 22px; }
  .card { background: #fff; border-radius: 8px; padding: 14px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.08); border-top: 4px solid #3b6fb6; }
  .card.bad { border-top-color: #c0392b; }
  .card .label { font-size: 12px; color: #5b6475; text-transform: uppercase; letter-spacing: .04em; }
  .card .value { font-size: 26px; font-weight: bold; margin: 4px 0; }
  .card .note { font-size: 12px; color: #5b6475; }
  figure { background: #fff; border-radius: 8px; margin: 0 0 18px; padding: 14px 16px 10px; box-shadow: 0 1px 2px rgba(0,0,0,.08); }
  figure h2 { font-size: 17px; margin: 0 0 4px; }
  figcaption { font-size: 13px; color: #5b6475; margin-bottom: 6px; }
  figure svg { display: block; height: auto; }
  .legend { font-size: 13px; margin: 4px 0 2px; display: flex; flex-wrap: wrap; gap: 4px 18px; }
  .key { display: inline-flex; align-items: center; gap: 6px; }
  .sw { display: inline-block; width: 22px; height: 12px; }
  .sw.area { background: var(--c); }
  .sw.band { height: 6px; border-top: 2px solid var(--c); border-bottom: 2px solid var(--c); }
  .sw.line { height: 0; border-top: 2px solid var(--c); }
  .sw.dash { height: 0; border-top: 2px dashed var(--c); }
  table { border-collapse: collapse; width: 100%; background: #fff; border-radius: 8px; overflow: hidden; box-shadow: 0 1px 2px rgba(0,0,0,.08); font-size: 14px; }
  th, td { padding: 8px 10px; text-align: right; border-bottom: 1px solid #e6e8ec; }
  th:first-child, td:first-child { text-align: left; }
  th { background: #eef1f5; font-size: 12px; color: #3c4454; }
  tr.main td { font-weight: bold; background: #f3f7fd; }
  h2.sec { font-size: 19px; margin: 26px 0 10px; }
  .notes { font-size: 12px; color: #5b6475; line-height: 1.55; }
</style>
</head>
<body>
<main>
<h1>{{.Title}}</h1>
<div class="sub">{{.Subtitle}}</div>
<div class="cards">
{{- range .Cards}}
  <div class="card{{if .Bad}} bad{{end}}"><div class="label">{{.Label}}</div><div class="value">{{.Value}}</div><div class="note">{{.Note}}</div></div>
{{- end}}
</div>
{{range .Figures}}
{{template "figure" .}}
{{end}}
<h2 class="sec">Against the baselines</h2>
<table>
{{template "header" "policy"}}
{{- range .Rows}}
{{template "row" .}}
{{- end}}
<tr><td>oracle</td><td>100 %</td><td colspan="4"></td><td>{{.Oracle}}</td><td>1.00×</td><td colspan="4"></td></tr>
<tr><td>spot-aware oracle</td><td>100 %</td><td colspan="4"></td><td>{{.Aware}}</td><td></td><td>1.00×</td><td colspan="3"></td></tr>
</table>
{{- if .Sweep}}
<h2 class="sec">The policy with other values of {{.SweepKey}}</h2>
<p class="notes">The same trace and cluster, the policy rerun once per value. {{.SweepNote}}</p>
{{- with .SweepFig}}
{{template "figure" .}}
{{- end}}
<table>
{{template "header" .SweepKey}}
{{- range .Sweep}}
{{template "row" .}}
{{- end}}
</table>
{{- end}}
<h2 class="sec">Reading this page</h2>
<div class="notes">{{range .Notes}}<p>{{.}}</p>{{end}}</div>
</main>
</body>
</html>
{{define "figure"}}<figure>
  <h2>{{.Title}}</h2>
  <figcaption>{{.Caption}}</figcaption>
  <div class="legend">{{range .Legend}}<span class="key"><span class="sw {{.Kind}}" style="--c: {{.Color}}"></span>{{.Label}}</span>{{end}}</div>
  {{.SVG}}
</figure>{{end}}
{{- define "header"}}<tr><th>{{.}}</th><th>SLO attainment</th><th>met</th><th>late</th><th>dropped</th><th>unserved at end</th><th>cost</th><th>× oracle</th><th>× spot-aware oracle</th><th>on-demand replica-h</th><th>spot replica-h</th><th>spot interruptions</th></tr>{{end}}
{{- define "row"}}<tr{{if .Main}} class="main"{{end}}><td>{{.Name}}</td><td>{{.Attainment}}</td><td>{{.Met}}</td><td>{{.Late}}</td><td>{{.Dropped}}</td><td>{{.Unserved}}</td><td>{{.Cost}}</td><td>{{.OverOracle}}</td><td>{{.OverAware}}</td><td>{{.ODHours}}</td><td>{{.SpotHours}}</td><td>{{.Notices}}</td></tr>{{end}}`))
