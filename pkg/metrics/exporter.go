package metrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
)

// Quantiles are the latency percentiles exported for every window.
var quantiles = [...]float64{0.5, 0.9, 0.95, 0.99}

var quantileLabels = [...]string{"0.5", "0.9", "0.95", "0.99"}

// Options are the Exporter's dependencies; zero values get defaults.
type Options struct {
	Logger *slog.Logger
	Client *http.Client
	// Now is the clock; tests inject one.
	Now func() time.Time
}

// Exporter scrapes model servers on an interval, normalises what they say
// and serves the result as Prometheus metrics. Scrapes of the exporter never
// trigger scrapes of targets: they read the last completed cycle.
type Exporter struct {
	log    *slog.Logger
	client *http.Client
	now    func() time.Time
	d      descs

	mu       sync.Mutex // guards global, mappings, sources, states
	global   GlobalConfig
	mappings map[string]GenericConfig
	sources  map[string][]Target
	states   map[string]*targetState

	cycleMu sync.Mutex // one cycle at a time
	snap    atomic.Pointer[snapshot]
	cycles  atomic.Uint64
	samples atomic.Uint64

	coldStarts   *prometheus.CounterVec
	coldStartDur *prometheus.HistogramVec

	// Per model since the exporter started, summed over targets from
	// their counters' cumulative increases: completed requests, and the clump
	// sizes of arriving requests. Touched only by publish.
	requests, clumpSizes modelTotal
}

// New returns an Exporter with the global settings of cfg and its static
// targets.
func New(cfg Config, opts Options) (*Exporter, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = defaultHTTPClient()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	e := &Exporter{
		log:     opts.Logger,
		client:  opts.Client,
		now:     opts.Now,
		d:       newDescs(),
		sources: map[string][]Target{},
		states:  map[string]*targetState{},

		requests:   newModelTotal(SigRequests),
		clumpSizes: newModelTotal(SigClumpSizeSum),
		coldStarts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_cold_starts_total",
			Help: "Cold starts of model servers: process restarts of static targets, pod starts and container restarts in Kubernetes.",
		}, []string{"model", "source"}),
		coldStartDur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "infercast_cold_start_duration_seconds",
			Help:    "Time from a model server's start (process start, pod creation or container restart) until it served: its first successful scrape or pod readiness.",
			Buckets: []float64{1, 2.5, 5, 10, 20, 30, 60, 120, 300, 600, 1200},
		}, []string{"model", "source"}),
	}
	if err := e.ApplyConfig(cfg); err != nil {
		return nil, err
	}
	return e, nil
}

// ApplyConfig switches to a new configuration: global settings and the
// static targets. History of targets that stay is kept.
func (e *Exporter) ApplyConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if len(cfg.Global.Windows) == 0 {
		return errors.New("global.windows: at least one window is required")
	}
	targets, err := StaticTargets(cfg)
	if err != nil {
		return err
	}
	e.mu.Lock()
	e.global = cfg.Global
	e.mappings = cfg.GenericMappings
	e.mu.Unlock()
	e.SetTargets(SourceStatic, targets)
	return nil
}

// ResolveDialect returns the dialect a discovered target names: a built-in
// one, or DialectGeneric with the name of a generic_mappings entry of the
// config last applied. Errors say what is wrong, for the caller's log.
func (e *Exporter) ResolveDialect(dialect, mapping string) (*Dialect, error) {
	if dialect != DialectGeneric {
		if mapping != "" {
			return nil, fmt.Errorf("mapping %q is only allowed with dialect generic", mapping)
		}
		d, ok := BuiltinDialect(dialect)
		if !ok {
			return nil, fmt.Errorf("unknown dialect %q (want one of %v)", dialect, DialectNames())
		}
		return d, nil
	}
	if mapping == "" {
		return nil, errors.New("dialect generic needs the name of a generic mapping")
	}
	e.mu.Lock()
	m, ok := e.mappings[mapping]
	e.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("mapping %q is not defined in generic_mappings", mapping)
	}
	return GenericDialect(mapping, m), nil
}

// StaticTargets resolves the dialects of cfg's targets.
func StaticTargets(cfg Config) ([]Target, error) {
	out := make([]Target, 0, len(cfg.Targets))
	for _, tc := range cfg.Targets {
		var d *Dialect
		if tc.Dialect == DialectGeneric {
			d = GenericDialect(tc.Mapping, cfg.GenericMappings[tc.Mapping])
		} else {
			var ok bool
			if d, ok = BuiltinDialect(tc.Dialect); !ok {
				return nil, errors.New("unknown dialect " + tc.Dialect)
			}
		}
		t := Target{
			Name: tc.Name, URL: tc.URL, Dialect: d, Model: tc.Model,
			MaxBatchSize: tc.MaxBatchSize, BearerTokenFile: tc.BearerTokenFile,
			Timeout: cmp.Or(tc.Timeout, cfg.Global.ScrapeTimeout), Source: SourceStatic,
		}
		if len(d.ModelLabels) == 0 {
			// TGI, a generic mapping without model_label: no series names
			// a model, so without model: the target's name does.
			t.DefaultModel = tc.Name
		}
		out = append(out, t)
	}
	return out, nil
}

// SetTargets replaces the targets of one source (static config, Kubernetes
// discovery). A target keeps its history while its name, URL and dialect
// stay the same.
func (e *Exporter) SetTargets(source string, targets []Target) {
	// States are owned by a running cycle's goroutines; wait for it.
	e.cycleMu.Lock()
	defer e.cycleMu.Unlock()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.sources[source] = slices.Clone(targets)
	want := map[string]Target{}
	for _, src := range slices.Sorted(mapsKeys(e.sources)) {
		for _, t := range e.sources[src] {
			t.Source = src
			if t.Timeout == 0 {
				t.Timeout = e.global.ScrapeTimeout
			}
			want[t.Name] = t
		}
	}
	for name, s := range e.states {
		t, ok := want[name]
		if !ok || t.URL != s.t.URL || t.Dialect.Name != s.t.Dialect.Name || t.Model != s.t.Model || t.DefaultModel != s.t.DefaultModel {
			delete(e.states, name)
		}
	}
	for name, t := range want {
		if s, ok := e.states[name]; ok {
			s.t = t // timeout, token file, batch size may change freely
			continue
		}
		e.states[name] = newTargetState(t)
	}
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Ready reports whether a full cycle has completed since start.
func (e *Exporter) Ready() bool { return e.snap.Load() != nil }

// ScrapeInterval is the current cycle interval.
func (e *Exporter) ScrapeInterval() time.Duration {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.global.ScrapeInterval
}

// Run runs a cycle every scrape interval until ctx ends.
func (e *Exporter) Run(ctx context.Context) error {
	for {
		start := e.now()
		e.Cycle(ctx)
		wait := e.ScrapeInterval() - e.now().Sub(start)
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// RecordColdStart counts one cold start of model from source, lasting d.
// Kubernetes discovery reports pod starts and container restarts here.
func (e *Exporter) RecordColdStart(model, source string, d time.Duration) {
	e.coldStarts.WithLabelValues(model, source).Inc()
	e.coldStartDur.WithLabelValues(model, source).Observe(d.Seconds())
}

// Cycle scrapes every target once, concurrently up to the configured limit,
// and publishes the aggregated result.
func (e *Exporter) Cycle(ctx context.Context) {
	e.cycleMu.Lock()
	defer e.cycleMu.Unlock()
	e.mu.Lock()
	g := e.global
	states := make([]*targetState, 0, len(e.states))
	for _, s := range e.states {
		states = append(states, s)
	}
	e.mu.Unlock()
	slices.SortFunc(states, func(a, b *targetState) int { return cmp.Compare(a.t.Name, b.t.Name) })

	start := e.now()
	sem := make(chan struct{}, max(g.MaxConcurrentScrapes, 1))
	var wg sync.WaitGroup
	for _, s := range states {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			wasUp := s.up
			s.scrape(ctx, e.client, g.BodySizeLimitBytes, e.now, g.Windows)
			if ctx.Err() == nil {
				e.logScrape(s, wasUp)
			}
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return // stopping: a cycle cut short is not published
	}
	e.publish(states, g.Windows, e.now().Sub(start))
}

// IngestForTest-free entry point used by the benchmark and fuzz tests:
// process runs the parse+normalise+window path on an in-memory body.
func (s *targetState) process(body []byte, contentType string, now time.Time, windows []time.Duration) error {
	err := s.ingestBody(body, contentType, now, windows)
	s.recordErr(err)
	if err != nil {
		s.models = s.models[:0]
	}
	return err
}

// maxErrLen bounds an error in a log line: a garbage body must not flood logs.
const maxErrLen = 512

func boundErr(err error) string {
	s := err.Error()
	if len(s) > maxErrLen {
		s = s[:maxErrLen] + "…"
	}
	return s
}

func (e *Exporter) logScrape(s *targetState, wasUp bool) {
	if s.lastErr == nil && s.stats.mapped > 0 && s.unread {
		s.unread = false
		e.log.Info("target's metrics are read again", "target", s.t.Name, "dialect", s.t.Dialect.Name)
	}
	switch {
	case s.lastErr != nil && wasUp:
		e.log.Warn("target scrape failed", "target", s.t.Name, "url", s.t.URL, "err", boundErr(s.lastErr))
	case s.lastErr != nil:
		e.log.Debug("target scrape failed", "target", s.t.Name, "err", boundErr(s.lastErr))
	case s.stats.duplicates > 0 || s.stats.invalid > 0:
		e.log.Warn("target sent bad samples; dropped them", "target", s.t.Name,
			"duplicate_series", s.stats.duplicates, "invalid_values", s.stats.invalid)
	case s.stats.samples > 0 && s.stats.mapped == 0:
		// Up, but nothing of it is read: without this line a wrong dialect
		// looks like a healthy target with no traffic.
		if !s.unread {
			s.unread = true
			e.log.Warn("target's metrics hold none of the names its dialect reads: a wrong dialect, or a server that has not served yet",
				"target", s.t.Name, "dialect", s.t.Dialect.Name, "samples", s.stats.samples)
		}
		return
	case !wasUp:
		e.log.Info("target scrape succeeded", "target", s.t.Name, "samples", s.stats.samples)
	}
}

// snapshot is one cycle's result, immutable once published.
type snapshot struct {
	at            time.Time
	cycleDuration time.Duration
	windows       []string
	targets       []targetSnap
	models        []modelSnap
	requestsTotal map[string]float64 // completed requests per model since start
	clumpSizeSum  map[string]float64 // clump sizes of arrivals per model since start
}

type targetSnap struct {
	name, dialect, source string
	up                    bool
	duration              float64
	samples               int
	errs                  map[string]float64
	models                []modelTargetSnap
	served                []string     // targetState.served
	state                 *targetState // whose result this is: identity only, never read
}

// Per model-and-target gauges; NaN means not reported.
type modelTargetSnap struct {
	model                                         string
	waiting, running, kv, batch, batchUtil, drain float64
	rate                                          float64 // requests/s over the shortest window
}

type modelSnap struct {
	model   string
	windows []modelWindowSnap
}

type modelWindowSnap struct {
	rate      float64                           // requests/s, NaN when unknown
	q         [numHists][len(quantiles)]float64 // NaN when no observations
	hcount    [numHists]float64                 // observations in the window
	hsum      [numHists]float64                 // their sum, seconds
	latMean   float64
	queueMean float64
}

func (e *Exporter) publish(states []*targetState, windows []time.Duration, took time.Duration) {
	snap := aggregate(states, windows)
	snap.at = e.now()
	snap.cycleDuration = took
	var samples int
	for _, s := range states {
		samples += s.stats.samples
		for _, c := range s.coldStarts {
			e.RecordColdStart(c.model, ColdStartProcessRestart, c.duration)
		}
		s.coldStarts = s.coldStarts[:0]
	}
	snap.requestsTotal = e.requests.count(states)
	snap.clumpSizeSum = e.clumpSizes.count(states)
	e.samples.Add(uint64(samples))
	e.cycles.Add(1)
	e.snap.Store(snap)
}

// modelTotal is a counter per model since the exporter started: the sum
// over the model's targets of one counter signal's increases, from the
// targets' cumulative increases (modelSeries.latest). infercast_model_requests_total and
// infercast_model_request_clump_size_sum_total are two of them.
type modelTotal struct {
	sig   Signal
	prev  map[string]float64 // by target and model: the last cumulative value
	total map[string]float64 // by model
}

func newModelTotal(sig Signal) modelTotal {
	return modelTotal{sig: sig, prev: map[string]float64{}, total: map[string]float64{}}
}

// count adds every target's increase since the previous cycle to its
// model's total and returns the totals to publish. A target seen for the
// first time adds nothing (its history predates the exporter), and a
// counter that went backwards (its history restarted) adds nothing: the
// total never drops, so it is a counter that Prometheus and the adapter's
// store can rate. Models with too many targets down are left out of what
// is returned (incompleteModels).
func (c *modelTotal) count(states []*targetState) map[string]float64 {
	live := make(map[string]bool, len(states))
	for _, s := range states {
		live[s.t.Name] = true
		for _, r := range s.models {
			v, ok := r.series.latest(c.sig)
			if !ok {
				continue
			}
			key := s.t.Name + "\x00" + r.model
			if prev, had := c.prev[key]; had && v > prev {
				c.total[r.model] += v - prev
			} else if _, known := c.total[r.model]; !known {
				c.total[r.model] = 0
			}
			c.prev[key] = v
		}
	}
	for key := range c.prev {
		// A target that is down keeps its last value, so its increase
		// across the gap is counted when it returns; one that left the
		// configuration is forgotten (its model's total stays).
		if target, _, _ := strings.Cut(key, "\x00"); !live[target] {
			delete(c.prev, key)
		}
	}
	out := maps.Clone(c.total)
	for _, model := range c.incompleteModels(states) {
		delete(out, model)
	}
	return out
}

// incompleteModels lists the models a tenth or more of whose targets (of
// those exposing the counter) are down this cycle (known from the last
// value kept for each target and model: a down target reports no models).
// Their totals are withheld until the targets answer again: a hung
// server's counter would read as flat, a fall in demand that a planner
// scales in on, when it is only unknown. Withheld, the series goes stale
// and the history shows a gap; when the targets return, the total carries
// their increase across it, so a rate over a window spanning the gap is
// still right. One down target among more than ten only lowers the sum by
// its share, which is exported.
func (c *modelTotal) incompleteModels(states []*targetState) []string {
	up := make(map[string]bool, len(states))
	for _, s := range states {
		up[s.t.Name] = s.up
	}
	all, down := map[string]int{}, map[string]int{}
	for key := range c.prev {
		target, model, _ := strings.Cut(key, "\x00")
		all[model]++
		if !up[target] {
			down[model]++
		}
	}
	var out []string
	for model, n := range down {
		if 10*n >= all[model] {
			out = append(out, model)
		}
	}
	return out
}

// aggregate turns per-target state into the published snapshot: gauges per
// model and target, rates and percentiles per model over all its targets.
func aggregate(states []*targetState, windows []time.Duration) *snapshot {
	snap := &snapshot{windows: make([]string, len(windows))}
	for i, w := range windows {
		snap.windows[i] = model.Duration(w).String()
	}
	type agg struct {
		rate, rateN                    float64
		hists                          [numHists]histDelta
		latSum, latN, queueSum, queueN float64
	}
	perModel := map[string][]agg{}
	nan := math.NaN()
	for _, s := range states {
		ts := targetSnap{
			name: s.t.Name, dialect: s.t.Dialect.Name, source: s.t.Source, up: s.up,
			duration: s.duration.Seconds(), samples: s.stats.samples, errs: maps2(s.errCounts),
			served: s.served, state: s,
		}
		for _, r := range s.models {
			m := r.series
			mt := modelTargetSnap{model: r.model, waiting: nan, running: nan, kv: nan, batch: nan, batchUtil: nan, drain: nan, rate: nan}
			g := func(sig Signal) float64 {
				if m.gaugeSet&(1<<sig) != 0 {
					return m.gauges[sig]
				}
				return nan
			}
			mt.waiting, mt.running, mt.kv = g(SigWaiting), g(SigRunning), g(SigKVCache)
			mt.batch = g(SigBatchSize)
			var w0 *windowStats
			if len(m.wsOK) > 0 && m.wsOK[0] {
				w0 = &m.ws[0]
			}
			if w0 != nil && w0.counterSet&(1<<SigBatchExecs|1<<SigBatchItems) == 1<<SigBatchExecs|1<<SigBatchItems && w0.counters[SigBatchExecs] > 0 {
				mt.batch = w0.counters[SigBatchItems] / w0.counters[SigBatchExecs]
			} else if math.IsNaN(mt.batch) {
				mt.batch = mt.running // continuous batching: the running requests are the batch
			}
			if w0 != nil && w0.counterSet&(1<<SigRequests) != 0 {
				mt.rate = w0.counters[SigRequests] / w0.dt // the model's rate sums these
			}
			if s.t.MaxBatchSize > 0 && !math.IsNaN(mt.batch) {
				mt.batchUtil = mt.batch / float64(s.t.MaxBatchSize)
			}
			if !math.IsNaN(mt.waiting) {
				switch {
				case mt.waiting == 0:
					mt.drain = 0
				case w0 != nil && w0.counterSet&(1<<SigRequests) != 0:
					tput := w0.counters[SigRequests] / w0.dt
					if tput > 0 {
						mt.drain = mt.waiting / tput
					} else {
						mt.drain = math.Inf(1) // a backlog and nothing completing
					}
				}
			}
			ts.models = append(ts.models, mt)

			as := perModel[r.model]
			if as == nil {
				as = make([]agg, len(windows))
				perModel[r.model] = as
			}
			for wi := range windows {
				if !m.wsOK[wi] {
					continue
				}
				ws, a := &m.ws[wi], &as[wi]
				if ws.counterSet&(1<<SigRequests) != 0 {
					a.rate += ws.counters[SigRequests] / ws.dt
					a.rateN++
				}
				for h := range numHists {
					if ws.histSet&(1<<h) != 0 {
						a.hists[h].add(ws.hists[h])
					}
				}
				if ws.histSet&(1<<(SigLatency-firstHist)) != 0 {
					a.latSum += ws.hists[SigLatency-firstHist].sum
					a.latN += ws.hists[SigLatency-firstHist].count
				} else if ws.counterSet&(1<<SigLatencyTotal|1<<SigRequests) == 1<<SigLatencyTotal|1<<SigRequests {
					a.latSum += ws.counters[SigLatencyTotal]
					a.latN += ws.counters[SigRequests]
				}
				if ws.histSet&(1<<(SigQueueTime-firstHist)) != 0 {
					a.queueSum += ws.hists[SigQueueTime-firstHist].sum
					a.queueN += ws.hists[SigQueueTime-firstHist].count
				} else if ws.counterSet&(1<<SigQueueTotal|1<<SigRequests) == 1<<SigQueueTotal|1<<SigRequests {
					a.queueSum += ws.counters[SigQueueTotal]
					a.queueN += ws.counters[SigRequests]
				}
			}
		}
		slices.SortFunc(ts.models, func(a, b modelTargetSnap) int { return cmp.Compare(a.model, b.model) })
		snap.targets = append(snap.targets, ts)
	}
	for _, name := range slices.Sorted(mapsKeys(perModel)) {
		ms := modelSnap{model: name, windows: make([]modelWindowSnap, len(windows))}
		for wi, a := range perModel[name] {
			out := &ms.windows[wi]
			out.rate, out.latMean, out.queueMean = nan, nan, nan
			if a.rateN > 0 {
				out.rate = a.rate
			}
			for h := range numHists {
				hd := &a.hists[h]
				ensureMonotonic(hd.cum)
				for qi, q := range quantiles {
					out.q[h][qi] = bucketQuantile(q, hd.les, hd.cum)
				}
				out.hcount[h], out.hsum[h] = hd.count, hd.sum
			}
			if a.latN > 0 {
				out.latMean = a.latSum / a.latN
			}
			if a.queueN > 0 {
				out.queueMean = a.queueSum / a.queueN
			}
		}
		snap.models = append(snap.models, ms)
	}
	return snap
}

func maps2(m map[string]float64) map[string]float64 {
	out := make(map[string]float64, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// ModelUsage is one model's load after the last cycle, for spend
// accounting.
type ModelUsage struct {
	Model string
	// RequestsPerSecond over the shortest window, summed over targets; 0
	// until a window has data.
	RequestsPerSecond float64
	// Targets serving the model in the last successful scrapes.
	Targets []Target
	// TargetRates is the model's request rate on each of its targets, by
	// target name, over the shortest window; a target is absent while its
	// rate is unknown. A target serving several models has a rate for
	// each.
	TargetRates map[string]float64
}

// Models reports every model seen in the last cycle, sorted by name.
func (e *Exporter) Models() []ModelUsage {
	snap := e.snap.Load()
	if snap == nil {
		return nil
	}
	e.mu.Lock()
	byName := make(map[string]Target, len(e.states))
	for name, s := range e.states {
		byName[name] = s.t
	}
	e.mu.Unlock()
	idx := map[string]int{}
	var out []ModelUsage
	for _, m := range snap.models {
		u := ModelUsage{Model: m.model, TargetRates: map[string]float64{}}
		if len(m.windows) > 0 && !math.IsNaN(m.windows[0].rate) {
			u.RequestsPerSecond = m.windows[0].rate
		}
		idx[m.model] = len(out)
		out = append(out, u)
	}
	for _, t := range snap.targets {
		for _, mt := range t.models {
			i, ok := idx[mt.model]
			if !ok {
				i = len(out)
				idx[mt.model] = i
				out = append(out, ModelUsage{Model: mt.model, TargetRates: map[string]float64{}})
			}
			if tg, ok := byName[t.name]; ok {
				out[i].Targets = append(out[i].Targets, tg)
			}
			if !math.IsNaN(mt.rate) {
				out[i].TargetRates[t.name] = mt.rate
			}
		}
	}
	slices.SortFunc(out, func(a, b ModelUsage) int { return cmp.Compare(a.Model, b.Model) })
	return out
}

// TargetModels is what one target serves, for spend accounting.
type TargetModels struct {
	Target Target
	// Models are those of the target's last successful scrape that read
	// any, sorted; nil until one did. They are kept while later scrapes
	// fail or read none (a server loading its weights, hung or
	// crash-looping still holds its GPUs for them), for as long as the
	// target is known: a target removed, or whose URL, dialect or model
	// changed, starts afresh.
	Models []string
	// Up is whether the target's last scrape succeeded.
	Up bool
}

// ServedModels reports every known target, sorted by name, with the
// models it serves as of the last cycle (none for a target added since).
func (e *Exporter) ServedModels() []TargetModels {
	snap := e.snap.Load()
	last := map[string]*targetSnap{}
	if snap != nil {
		for i := range snap.targets {
			last[snap.targets[i].name] = &snap.targets[i]
		}
	}
	e.mu.Lock()
	out := make([]TargetModels, 0, len(e.states))
	for name, s := range e.states {
		tm := TargetModels{Target: s.t}
		if ts, ok := last[name]; ok && ts.state == s {
			tm.Models, tm.Up = slices.Clone(ts.served), ts.up
		}
		out = append(out, tm)
	}
	e.mu.Unlock()
	slices.SortFunc(out, func(a, b TargetModels) int { return cmp.Compare(a.Target.Name, b.Target.Name) })
	return out
}
