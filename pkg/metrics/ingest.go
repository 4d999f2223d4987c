package metrics

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"
)

// maxModelsPerTarget bounds the models one target may report, so a server
// (or garbage) with an exploding model label cannot exhaust memory.
const maxModelsPerTarget = 64

// maxBucketsPerHistogram bounds the buckets kept per histogram.
const maxBucketsPerHistogram = 128

// histAcc accumulates one histogram of one model within a scrape.
type histAcc struct {
	les, cum   []float64
	sum, count float64
}

func (h *histAcc) reset() {
	h.les, h.cum = h.les[:0], h.cum[:0]
	h.sum, h.count = 0, 0
}

// bucket adds v to the bucket with bound le, keeping bounds sorted.
func (h *histAcc) bucket(le, v float64) error {
	i := len(h.les)
	// Buckets arrive sorted; search from the end.
	for i > 0 && h.les[i-1] > le {
		i--
	}
	if i > 0 && h.les[i-1] == le {
		h.cum[i-1] += v
		return nil
	}
	if len(h.les) >= maxBucketsPerHistogram {
		return fmt.Errorf("histogram has more than %d buckets", maxBucketsPerHistogram)
	}
	h.les = append(h.les, 0)
	h.cum = append(h.cum, 0)
	copy(h.les[i+1:], h.les[i:])
	copy(h.cum[i+1:], h.cum[i:])
	h.les[i], h.cum[i] = le, v
	return nil
}

// modelAcc holds what one scrape said about one model: vals and hists are
// what its series said, summed; inc and incHists (filled by increases) what
// its counters and histograms grew by since the last scrape, series by
// series.
type modelAcc struct {
	seen     uint32 // bit per Signal
	prio     [numSignals]uint8
	vals     [numSignals]float64
	hists    [numHists]histAcc
	inc      [numCounters]float64
	incHists [numHists]histInc
}

// histInc is a histogram's increase since the last scrape; cum is aligned
// with the les of the model's histAcc.
type histInc struct {
	cum        []float64
	sum, count float64
}

func (a *modelAcc) has(s Signal) bool { return a.seen&(1<<s) != 0 }

func (a *modelAcc) reset() {
	a.seen = 0
	for i := range a.hists {
		a.hists[i].reset()
	}
}

// take reports whether a sample at prio should be used for s, clearing what
// a worse-priority name contributed earlier.
func (a *modelAcc) take(s Signal, prio uint8) (add bool) {
	switch {
	case !a.has(s) || prio < a.prio[s]:
		a.seen |= 1 << s
		a.prio[s] = prio
		a.vals[s] = 0
		if s.isHist() {
			a.hists[s-firstHist].reset()
		}
		return true
	case prio == a.prio[s]:
		return true
	}
	return false
}

// ingestStats describes one parsed body.
type ingestStats struct {
	samples    int // every sample in the body
	mapped     int // samples of a model signal the dialect understood
	duplicates int // repeated series, dropped
	invalid    int // NaN, ±Inf or negative counters, dropped
}

// ingester parses bodies of one target. It is reused across scrapes so a
// steady state allocates little; it is not safe for concurrent use.
type ingester struct {
	st           *labels.SymbolTable
	lb           labels.Labels
	seenSeries   map[uint64]struct{}
	accs         map[string]*modelAcc
	processStart float64 // 0 when not exposed
	// fallback is the model of series that carry no model label of their
	// own (Target.DefaultModel); "unknown" when empty. Like the model
	// ingest is given, it must not change for the ingester's life: known
	// caches the models series resolved to.
	fallback string
	// known caches what the labels of a series (by hash of its text) said,
	// so steady-state scrapes skip building labels and parsing bounds, and
	// the last value of a counter or histogram series, for increases.
	known map[uint64]*seriesInfo
	// samples are the counter and histogram samples of the body being
	// ingested, for increases.
	samples []counterSample
	// restartedHists are, during increases, the histogram series whose
	// count or a bucket went down.
	restartedHists map[uint64]struct{}
}

type seriesInfo struct {
	model string
	le    float64
	// hist identifies a histogram series: its labels but the name and le,
	// with its signal and priority.
	hist uint64
	// last is the value of a counter or histogram series at the last
	// scrape that had it, seen that scrape's time (Unix nanoseconds);
	// hasLast is false until increases has seen it.
	last    float64
	seen    int64
	hasLast bool
}

// counterSample is one sample of a counter or histogram in the body being
// ingested; v is scaled to seconds where the rule says.
type counterSample struct {
	info     *seriesInfo
	a        *modelAcc
	v        float64
	sig      Signal
	part     part
	prio     uint8
	requests bool
}

// maxKnownSeries bounds the label cache per target.
const maxKnownSeries = 1 << 14

func newIngester() *ingester {
	return &ingester{
		st:             labels.NewSymbolTable(),
		seenSeries:     map[uint64]struct{}{},
		accs:           map[string]*modelAcc{},
		known:          map[uint64]*seriesInfo{},
		restartedHists: map[uint64]struct{}{},
	}
}

var errTooManyModels = errors.New("too many distinct models")

// ingest parses body (text exposition or OpenMetrics, per contentType) with
// Prometheus's own scrape parser and normalises what d maps. model, when
// set, is the model of every series (Target.Model); else a series' model
// is its first non-empty label of d's ModelLabels, else g.fallback. On
// error the accumulated state must be discarded by the caller.
func (g *ingester) ingest(body []byte, contentType string, d *Dialect, model string) (ingestStats, error) {
	var st ingestStats
	for _, a := range g.accs {
		a.reset()
	}
	clear(g.seenSeries)
	g.samples = g.samples[:0]
	g.processStart = 0
	p, err := textparse.New(body, contentType, g.st, textparse.ParserOptions{
		FallbackContentType:     "text/plain",
		OpenMetricsSkipSTSeries: true,
	})
	if p == nil {
		return st, fmt.Errorf("unsupported content type %q: %w", contentType, err)
	}
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return st, fmt.Errorf("parse: %w", err)
		}
		if e != textparse.EntrySeries {
			continue
		}
		series, _, v := p.Series()
		st.samples++
		var (
			r  rule
			ok bool
		)
		if len(series) > 0 && series[0] == '{' {
			// A quoted UTF-8 name: only the parsed labels know it.
			p.Labels(&g.lb)
			r, ok = d.rules[g.lb.Get(labels.MetricName)]
		} else {
			r, ok = d.rules[string(metricName(series))] // no copy: map index
		}
		if !ok {
			continue
		}
		h := xxhash.Sum64(series)
		if _, dup := g.seenSeries[h]; dup {
			st.duplicates++
			continue
		}
		g.seenSeries[h] = struct{}{}
		if math.IsNaN(v) || math.IsInf(v, 0) || (r.sig.isCounter() || r.sig.isHist()) && v < 0 && r.part != partSum {
			st.invalid++
			continue
		}
		if r.sig == SigProcessStart {
			g.processStart = max(g.processStart, v)
			continue
		}
		st.mapped++
		info := g.known[h]
		if info == nil {
			p.Labels(&g.lb)
			ri, err := resolveSeries(&g.lb, d, r, model, g.fallback)
			if err != nil {
				return st, fmt.Errorf("%s: %w", metricName(series), err)
			}
			if len(g.known) >= maxKnownSeries {
				// Churning labels: rebuild rather than grow. The last
				// values go too: their series add nothing next scrape.
				clear(g.known)
			}
			info = &ri
			g.known[h] = info
		}
		a := g.accs[info.model]
		if a == nil {
			if len(g.accs) >= maxModelsPerTarget {
				return st, fmt.Errorf("%w: more than %d", errTooManyModels, maxModelsPerTarget)
			}
			a = &modelAcc{}
			g.accs[info.model] = a
		}
		if r.sig.isCounter() || r.sig.isHist() {
			cs := counterSample{info: info, a: a, v: v, sig: r.sig, part: r.part, prio: r.prio, requests: r.requests}
			if r.part == partValue || r.part == partSum {
				cs.v *= r.scale
			}
			g.samples = append(g.samples, cs)
		}
		if r.requests && a.take(SigRequests, r.prio) {
			a.vals[SigRequests] += v
		}
		if !a.take(r.sig, r.prio) {
			continue
		}
		switch r.part {
		case partValue:
			if r.sig == SigKVCache {
				// A ratio: several engines of one model are not summed.
				a.vals[r.sig] = max(a.vals[r.sig], v)
			} else {
				a.vals[r.sig] += v * r.scale
			}
		case partSum:
			a.hists[r.sig-firstHist].sum += v * r.scale
		case partCount:
			a.hists[r.sig-firstHist].count += v
		case partBucket:
			if err := a.hists[r.sig-firstHist].bucket(info.le, v); err != nil {
				return st, fmt.Errorf("%s: %w", metricName(series), err)
			}
		}
	}
	return st, nil
}

// increases fills each model's inc and incHists with what its counters and
// histograms grew by since the last scrape, series by series, and then
// remembers this scrape's values. A model's counter is often several
// series (a Ray Serve replica's, a Triton model version's, a vLLM
// engine's, a finished_reason's): summed before, one series going away or
// restarting would read as the whole model restarting.
//
// A series' increase is its new value less its last when it grew, and its
// new value when it went down (it restarted, as Prometheus's rate reads
// it); a histogram series restarts as a whole when its count or any bucket
// went down (its sum may shrink: negative observations). When restarted
// says the server's process restarted, every series adds its new value:
// all of it was counted since. Otherwise a series first seen adds nothing
// for its first sample, which is its baseline, as a target's first scrape
// and a new model's are: a series whose last value was lost never adds its
// whole history as one step, at the cost of what a new series (a replica
// just started) counted before its first scrape. A series absent from the
// scrape adds nothing; its last value is kept for forget, so one that
// returns within it adds its increase across the gap; after, it is new.
func (g *ingester) increases(restarted bool, now time.Time, forget time.Duration) {
	t := now.UnixNano()
	for i := range g.samples {
		if info := g.samples[i].info; info.hasLast && t-info.seen > int64(forget) {
			info.hasLast = false // back after longer than forget: new
		}
	}
	clear(g.restartedHists)
	if !restarted {
		for i := range g.samples {
			s := &g.samples[i]
			if (s.part == partBucket || s.part == partCount) && s.info.hasLast && s.v < s.info.last {
				g.restartedHists[s.info.hist] = struct{}{}
			}
		}
	}
	for _, a := range g.accs {
		if a.seen == 0 {
			continue
		}
		a.inc = [numCounters]float64{}
		for i := range a.incHists {
			hi := &a.incHists[i]
			n := len(a.hists[i].les)
			hi.cum = slices.Grow(hi.cum[:0], n)[:n]
			clear(hi.cum)
			hi.sum, hi.count = 0, 0
		}
	}
	for i := range g.samples {
		s := &g.samples[i]
		info := s.info
		var d float64
		switch {
		case restarted:
			d = s.v
		case !info.hasLast:
			d = 0
		case s.part == partValue:
			d = s.v - info.last
			if d < 0 {
				d = s.v
			}
		default:
			d = s.v - info.last
			if len(g.restartedHists) > 0 {
				if _, ok := g.restartedHists[info.hist]; ok {
					d = s.v
				}
			}
		}
		info.last, info.seen, info.hasLast = s.v, t, true
		a := s.a
		if s.requests && a.prio[SigRequests] == s.prio {
			a.inc[SigRequests] += d
		}
		if a.prio[s.sig] != s.prio {
			continue // a name of another priority is read for the signal
		}
		if !s.sig.isHist() {
			a.inc[s.sig] += d
			continue
		}
		hi := &a.incHists[s.sig-firstHist]
		switch s.part {
		case partSum:
			hi.sum += d
		case partCount:
			hi.count += d
		case partBucket:
			if j, ok := slices.BinarySearch(a.hists[s.sig-firstHist].les, info.le); ok {
				hi.cum[j] += d
			}
		}
	}
	for h, info := range g.known {
		if info.hasLast && t-info.seen > int64(forget) {
			delete(g.known, h)
		}
	}
}

// resolveSeries reads the model, its histogram and, for a bucket, the
// scaled bound from a series' labels: the model is override when set, else
// the series' own model label, else fallback, else "unknown".
func resolveSeries(lb *labels.Labels, d *Dialect, r rule, override, fallback string) (seriesInfo, error) {
	info := seriesInfo{model: override}
	if info.model == "" {
		for _, l := range d.ModelLabels {
			if m := lb.Get(l); m != "" {
				info.model = m
				break
			}
		}
	}
	info.model = cmp.Or(info.model, fallback, "unknown")
	if r.sig.isHist() {
		var x xxhash.Digest
		x.Reset()
		_, _ = x.Write([]byte{byte(r.sig), r.prio})
		lb.Range(func(l labels.Label) {
			if l.Name == labels.MetricName || l.Name == "le" {
				return
			}
			_, _ = x.WriteString(l.Name)
			_, _ = x.Write([]byte{0xff})
			_, _ = x.WriteString(l.Value)
			_, _ = x.Write([]byte{0xff})
		})
		info.hist = x.Sum64()
	}
	if r.part == partBucket {
		le, err := parseLe(lb.Get("le"))
		if err != nil {
			return info, err
		}
		if !math.IsInf(le, 1) {
			le *= r.scale
		}
		info.le = le
	}
	return info, nil
}

func parseLe(s string) (float64, error) {
	switch s {
	case "+Inf", "Inf", "inf", "+inf":
		return math.Inf(1), nil
	case "":
		return 0, errors.New("bucket without le label")
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) {
		return 0, fmt.Errorf("bad le %q", s)
	}
	return f, nil
}

// metricName is the name part of an unquoted series.
func metricName(series []byte) []byte {
	if i := bytes.IndexByte(series, '{'); i >= 0 {
		return series[:i]
	}
	return series
}
