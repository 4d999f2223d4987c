package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/infercast/infercast/internal/edgelog"
	"github.com/infercast/infercast/internal/fanout"
	"github.com/infercast/infercast/internal/kubepods"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/metrics/spot"
)

// exporterLive reads a workload's live signals from an infercast exporter's
// /metrics: the request rate and latency percentile of the shortest window,
// the backlog summed over the model's targets, the targets serving the
// model (for learn_mu's throughput per replica), and the p90 cold start. It
// is the live source that needs nothing but the exporter, so the planner's
// reactive floors hold even when the history source is down.
//
// The URL may name several exporters: a host that resolves to several
// addresses (the chart's headless Service: one address per exporter pod, one
// pod per GPU node) is read at every address and the families merged, so
// rates, backlogs and serving targets add up over the nodes and the latency
// is the worst node's. An exporter that fails is left out (logged) as long as
// one answers.
type exporterLive struct {
	url    string
	client *http.Client
	// fan reads the URL at every address it names; nil: at the one the
	// client dials.
	fan *fanout.Reader
	log *slog.Logger
	// unreadable holds which exporters failed at the last read, so that a
	// node's exporter that stays down is a warning when it goes down, not
	// at every read (nil: a warning at every read).
	unreadable *edgelog.State
}

// newExporterLive reads the exporters at url. A URL that does not parse is
// read as it is: every read then fails with the reason.
func newExporterLive(url string, log *slog.Logger) exporterLive {
	l := exporterLive{url: url, client: &http.Client{Timeout: 5 * time.Second}, log: log, unreadable: &edgelog.State{}}
	l.fan, _ = fanout.New(url, l.client, nil)
	return l
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
	sig.Rate = sumOf(shortestWindow(mfs["infercast_model_requests_per_second"], model, gaugeValue))
	if lat := maxOf(shortestWindow(mfs["infercast_model_request_latency_seconds"], model, summaryQuantile(w.LatencyPercentile))); !math.IsNaN(lat) && !math.IsInf(lat, 0) {
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
	sig.Serving = servingTargets(mfs, model)
	if math.IsNaN(sig.Rate) {
		return sig, fmt.Errorf("exporter %s: no request rate for model %q", l.url, model)
	}
	return sig, nil
}

// modelTargetFamilies are the exporter's per-target families of a model
// (labels model and target): a target in one of them serves the model.
var modelTargetFamilies = []string{
	"infercast_model_requests_running", "infercast_model_requests_waiting",
	"infercast_model_batch_size", "infercast_model_kv_cache_usage_ratio",
}

// servingTargets counts the model's targets whose last scrape succeeded
// (infercast_target_up 1): the replicas serving it now, which learn_mu
// divides the rate by. A target that is down may still show its last
// per-model values, so it does not count.
func servingTargets(mfs map[string]*dto.MetricFamily, model string) int {
	up := map[string]bool{}
	for _, m := range mfs["infercast_target_up"].GetMetric() {
		if m.GetGauge().GetValue() == 1 {
			up[label(m, "target")] = true
		}
	}
	serving := map[string]bool{}
	for _, name := range modelTargetFamilies {
		for _, m := range mfs[name].GetMetric() {
			if t := label(m, "target"); label(m, "model") == model && up[t] {
				serving[t] = true
			}
		}
	}
	return len(serving)
}

// fetch reads every exporter the URL names and merges their families (the
// metrics of a family from all of them, in one list).
func (l exporterLive) fetch(ctx context.Context) (map[string]*dto.MetricFamily, error) {
	if l.fan == nil {
		return l.fetchOne(ctx, l.client)
	}
	targets := l.fan.Targets(ctx)
	got := make([]map[string]*dto.MetricFamily, len(targets))
	failed, err := fanout.ReadAll(targets, func(i int, t fanout.Target) (err error) {
		if got[i], err = l.fetchOne(ctx, t.Client); err != nil && len(targets) > 1 {
			err = fmt.Errorf("%s: %w", t.Addr, err)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	l.logUnreadable(targets, got, failed)
	out := map[string]*dto.MetricFamily{}
	for _, mfs := range got {
		for name, mf := range mfs {
			if have, ok := out[name]; ok {
				have.Metric = append(have.Metric, mf.Metric...)
			} else {
				out[name] = mf
			}
		}
	}
	return out, nil
}

// logUnreadable warns when some exporters could not be read (their nodes'
// signals are left out) and says when all read again — once per change of
// which ones failed, not at every read.
func (l exporterLive) logUnreadable(targets []fanout.Target, got []map[string]*dto.MetricFamily, failed []error) {
	if l.log == nil {
		return
	}
	var addrs []string
	for i, t := range targets {
		if got[i] == nil {
			addrs = append(addrs, t.Addr)
		}
	}
	prev, changed := l.unreadable.Set(strings.Join(addrs, ","))
	switch {
	case len(failed) > 0 && changed:
		l.log.Warn("exporters unreadable: their nodes' signals are left out", "url", l.url, "failed", len(failed), "of", len(targets), "err", errors.Join(failed...))
	case len(failed) == 0 && changed:
		l.log.Info("exporters readable again", "url", l.url, "were_unreadable", prev)
	}
}

// fetchOne reads one exporter's families through client.
func (l exporterLive) fetchOne(ctx context.Context, client *http.Client) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := client.Do(req)
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

// shortestWindow returns value(m) of the model's metrics with the shortest
// `window` label: one per exporter read (several when the URL names every
// node's), for the caller to reduce with sumOf, maxOf or meanOf.
func shortestWindow(fam *dto.MetricFamily, model string, value func(*dto.Metric) float64) []float64 {
	var vals []float64
	bestWin := time.Duration(math.MaxInt64)
	for _, m := range fam.GetMetric() {
		if label(m, "model") != model {
			continue
		}
		win, err := time.ParseDuration(label(m, "window"))
		if err != nil || win > bestWin {
			continue
		}
		if win < bestWin {
			vals, bestWin = vals[:0], win
		}
		vals = append(vals, value(m))
	}
	return vals
}

func gaugeValue(m *dto.Metric) float64 { return m.GetGauge().GetValue() }

// sumOf, maxOf and meanOf reduce the values of several exporters, NaN
// values left out; NaN when none is left.
func sumOf(xs []float64) float64 {
	sum, n := 0.0, 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	if n == 0 {
		return math.NaN()
	}
	return sum
}

func maxOf(xs []float64) float64 {
	out := math.NaN()
	for _, x := range xs {
		if !math.IsNaN(x) && !(x <= out) {
			out = x
		}
	}
	return out
}

func meanOf(xs []float64) float64 {
	n := 0
	for _, x := range xs {
		if !math.IsNaN(x) {
			n++
		}
	}
	return sumOf(xs) / float64(n)
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

// nodeNotice is what the cloud announced for one node, as the exporter on
// it reports it (pkg/metrics/spot), labelled node and pool: its spot
// interruption state (infercast_spot_interruption_notice and
// infercast_spot_interruptions_total) and whether a disruption that stops
// it is announced (infercast_instance_disruption_warning of a kind that
// spot.StopsNode, and _start_timestamp_seconds).
type nodeNotice struct {
	node, pool string
	active     bool      // a notice is announced now
	total      float64   // distinct notices since that exporter started
	stops      bool      // a stop is announced…
	stopsAt    time.Time // …to begin then; zero when the provider does not say
}

// departs reports whether the node's announced stop begins within lead of
// now, or has begun (AWS stops it within a window). A stop the provider
// does not time is near: GCP tells GPU VMs an hour ahead.
func (n nodeNotice) departs(now time.Time, lead time.Duration) bool {
	return n.stops && (n.stopsAt.IsZero() || n.stopsAt.Sub(now) <= lead)
}

// noticeSource reads every node's spot interruption state and announced
// stops.
type noticeSource interface {
	notices(ctx context.Context) ([]nodeNotice, error)
}

// Names of the exporter's spot and disruption families.
const (
	spotNoticeMetric   = "infercast_spot_interruption_notice"
	spotTotalMetric    = "infercast_spot_interruptions_total"
	warningMetric      = "infercast_instance_disruption_warning"
	warningStartMetric = warningMetric + "_start_timestamp_seconds"
)

// exporterNotices reads the spot families of one exporter's /metrics (the
// exporter on the adapter's own node, or a single-node setup).
type exporterNotices struct{ l exporterLive }

func (e exporterNotices) notices(ctx context.Context) ([]nodeNotice, error) {
	mfs, err := e.l.fetch(ctx)
	if err != nil {
		return nil, err
	}
	var samples []noticeSample
	for _, name := range []string{spotNoticeMetric, spotTotalMetric, warningMetric, warningStartMetric} {
		for _, m := range mfs[name].GetMetric() {
			v := m.GetGauge().GetValue()
			if name == spotTotalMetric {
				v = m.GetCounter().GetValue()
			}
			samples = append(samples, noticeSample{name: name, node: label(m, "node"), pool: label(m, "pool"),
				kind: label(m, "kind"), value: v})
		}
	}
	return mergeNotices(samples), nil
}

// promNotices reads the spot families of every exporter through Prometheus
// (the DaemonSet case: one exporter per node, all scraped by Prometheus).
// Unlike the demand history (pkg/predict/history asks Thanos for whole
// answers only), a partial answer is taken: the notices of the nodes it
// holds are worth acting on when a store is down.
type promNotices struct {
	api     promv1.API
	timeout time.Duration
}

func newPromNotices(address string, timeout time.Duration) (promNotices, error) {
	c, err := promapi.NewClient(promapi.Config{Address: address})
	if err != nil {
		return promNotices{}, fmt.Errorf("spot notices: %w", err)
	}
	return promNotices{api: promv1.NewAPI(c), timeout: timeout}, nil
}

// spotNoticesQuery selects the four families in one instant query.
const spotNoticesQuery = `{__name__=~"` + spotNoticeMetric + `|` + spotTotalMetric + `|` + warningMetric + `|` + warningStartMetric + `"}`

func (p promNotices) notices(ctx context.Context) ([]nodeNotice, error) {
	if p.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.timeout)
		defer cancel()
	}
	v, _, _, err := p.api.Query(ctx, spotNoticesQuery, time.Now())
	if err != nil {
		return nil, fmt.Errorf("spot notices from Prometheus: %w", err)
	}
	vec, ok := v.(model.Vector)
	if !ok {
		return nil, fmt.Errorf("spot notices from Prometheus: %s result, want a vector", v.Type())
	}
	samples := make([]noticeSample, 0, len(vec))
	for _, s := range vec {
		samples = append(samples, noticeSample{name: string(s.Metric[model.MetricNameLabel]),
			node: string(s.Metric["node"]), pool: string(s.Metric["pool"]), kind: string(s.Metric["kind"]), value: float64(s.Value)})
	}
	return mergeNotices(samples), nil
}

type noticeSample struct {
	name, node, pool, kind string
	value                  float64
}

// mergeNotices joins the families by (node, pool); a node watched by
// several providers' watchers (only one answers on a real cloud) is active
// when any of them is, and its total is theirs summed. A node stops when a
// warning of a kind that stops it is announced; it stops at the earliest
// start of those kinds, or at an unknown time if one of them has none.
func mergeNotices(samples []noticeSample) []nodeNotice {
	type key struct{ node, pool string }
	type stop struct {
		announced bool
		at        time.Time // the earliest start given; zero: none
	}
	byNode := map[key]*nodeNotice{}
	stops := map[key]map[string]*stop{} // by kind, of the kinds that stop a node
	var order []key
	for _, s := range samples {
		warning := s.name == warningMetric || s.name == warningStartMetric
		if math.IsNaN(s.value) || warning && !spot.StopsNode(s.kind) {
			continue
		}
		k := key{s.node, s.pool}
		n := byNode[k]
		if n == nil {
			n = &nodeNotice{node: s.node, pool: s.pool}
			byNode[k] = n
			order = append(order, k)
			stops[k] = map[string]*stop{}
		}
		st := stops[k][s.kind]
		if warning && st == nil {
			st = &stop{}
			stops[k][s.kind] = st
		}
		switch s.name {
		case spotNoticeMetric:
			n.active = n.active || s.value > 0
		case spotTotalMetric:
			n.total += s.value
		case warningMetric:
			st.announced = st.announced || s.value > 0
		case warningStartMetric:
			if at := time.UnixMilli(int64(math.Round(s.value * 1e3))).UTC(); st.at.IsZero() || at.Before(st.at) {
				st.at = at
			}
		}
	}
	out := make([]nodeNotice, 0, len(order))
	for _, k := range order {
		n := byNode[k]
		untimed := false
		for _, st := range stops[k] {
			if !st.announced {
				continue
			}
			n.stops = true
			untimed = untimed || st.at.IsZero()
			if n.stopsAt.IsZero() || st.at.Before(n.stopsAt) {
				n.stopsAt = st.at
			}
		}
		if untimed {
			n.stopsAt = time.Time{}
		}
		out = append(out, *n)
	}
	return out
}

// spotNotices attributes node notices to workloads through their spot
// tier's pools (policy tiers.spot.pools) and turns them into the planner's
// signals: Spot.Terminating is the nodes of those pools under notice now
// (one replica per node: the GPU node of a model server), SpotNotices the
// notices new since the workload's previous decision, SpotNoticeDomains
// the pools they came from. The planner's fallback then moves the
// terminating capacity to on-demand at once and keeps it there for
// fallback_hold after the last notice. Spot.Departing is likewise the
// nodes of those pools whose stop comes within the workload's lead time;
// with pods (--kubernetes.pods), the nodes' outlook counts the pods there,
// in every tier, instead.
type spotNotices struct {
	src noticeSource
	mu  sync.Mutex
	// seen[workload][node/pool] is the node's notice count at the
	// workload's previous decision.
	seen map[string]map[string]float64
	// departed[workload][node] is when the node was last seen departing
	// for the workload, and its pool.
	departed map[string]map[string]departure
}

type departure struct {
	at   time.Time
	pool string
}

// departingHold is how long a node stays departing after its warning was
// last read. The warning goes with the node's exporter the moment the node
// stops, but its pods read ready until the node lifecycle controller marks
// them (node-monitor-grace-period, 40–50 s) and count as lost only from
// then (30 s more without a node watch): dropping the replacements in that
// gap would have the ReplicaSet delete them, its newest pods, and launch
// them again cold a minute later. It also bridges a failed read.
const departingHold = 2 * time.Minute

func newSpotNotices(src noticeSource) *spotNotices {
	return &spotNotices{src: src, seen: map[string]map[string]float64{}, departed: map[string]map[string]departure{}}
}

// attribute fills sig's spot notice fields for w, and returns what is
// announced for the nodes that matter to it at now: departing, whatever
// their pool (held for departingHold after the warning was last read),
// and under notice, in its spot pools. When the notices cannot be read it
// returns the held departing nodes with the error, and no notice fields.
// The first call for a workload only records the counts: notices already
// active count as terminating, not as new.
func (s *spotNotices) attribute(ctx context.Context, w *capacity.Workload, now time.Time, sig *capacity.Signals) (outlook map[string]kubepods.Outlook, err error) {
	nodes, err := s.src.notices(ctx)
	s.mu.Lock()
	defer s.mu.Unlock()
	// Replacements launched now are ready a cold start later; a decision
	// or two of slack, since the next decision may come late.
	lead := max(w.ColdStart, sig.ColdStartP90) + 2*w.DecisionInterval
	departed := s.departed[w.Name]
	if departed == nil {
		departed = map[string]departure{}
		s.departed[w.Name] = departed
	}
	for _, n := range nodes {
		switch {
		case n.active:
			// Under a spot notice: the fallback replaces it, and holds
			// its cover for fallback_hold.
			delete(departed, n.node)
		case n.departs(now, lead):
			departed[n.node] = departure{now, n.pool}
		}
	}
	outlook = map[string]kubepods.Outlook{}
	for node, d := range departed {
		if now.Sub(d.at) > departingHold+2*w.DecisionInterval {
			delete(departed, node)
			continue
		}
		outlook[node] = kubepods.Departing
	}
	if w.Tiers.Spot == nil || len(w.Tiers.Spot.Pools) == 0 {
		return outlook, err
	}
	// Without pods, a departing node of the pools is a departing replica
	// (the GPU node of a model server), also one whose warning is held.
	departing := 0
	for _, d := range departed {
		if slices.Contains(w.Tiers.Spot.Pools, d.pool) {
			departing++
		}
	}
	sig.Spot.Departing = departing
	if err != nil {
		return outlook, err
	}
	prev, known := s.seen[w.Name]
	counts := make(map[string]float64, len(nodes))
	newIn := map[string]bool{}
	terminating, fresh := 0, 0
	for _, n := range nodes {
		if !slices.Contains(w.Tiers.Spot.Pools, n.pool) {
			continue
		}
		if n.active {
			terminating++
			outlook[n.node] = kubepods.UnderNotice
		}
		k := n.node + "/" + n.pool
		counts[k] = n.total
		if !known {
			continue
		}
		// A node first seen (its exporter just started) brings its
		// notices with it; a counter that went down restarted.
		d := n.total - prev[k]
		if last, ok := prev[k]; ok && n.total < last {
			d = n.total
		}
		if d > 0 {
			fresh += int(math.Round(d))
			newIn[n.pool] = true
		}
	}
	s.seen[w.Name] = counts
	sig.Spot.Terminating = terminating
	sig.SpotNotices = fresh
	sig.SpotNoticeDomains = len(newIn)
	return outlook, nil
}

// forget drops the state of workloads no longer in the policy.
func (s *spotNotices) forget(keep func(string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.DeleteFunc(s.seen, func(name string, _ map[string]float64) bool { return !keep(name) })
	maps.DeleteFunc(s.departed, func(name string, _ map[string]departure) bool { return !keep(name) })
}

// planned estimates a spot workload's replicas by tier and state from its
// own past plans, for a serving loop that cannot see pods: replicas wanted
// for a whole cold start are taken as ready, the rest of the latest target
// as starting. The planner needs them where notices reach it: capacity
// moved to on-demand returns only as spot replicas become ready
// (make-before-break), and with no readiness at all it never would.
type planned struct {
	mu   sync.Mutex
	past map[string][]plannedAt // per workload, oldest first
}

type plannedAt struct {
	t        time.Time
	od, spot int
}

func newPlanned() *planned { return &planned{past: map[string][]plannedAt{}} }

// observe records the workload's latest plan (once per plan time) and
// drops what is older than the cold start needs.
func (p *planned) observe(w *capacity.Workload, plan capacity.Plan, ok bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.past[w.Name]
	if ok && (len(h) == 0 || plan.Time.After(h[len(h)-1].t)) {
		h = append(h, plannedAt{plan.Time, plan.Tiers[capacity.TierOnDemand].Replicas, plan.Tiers[capacity.TierSpot].Replicas})
	}
	// Keep the newest entry at or before now - cold start and all after it.
	cut := 0
	for i := range h {
		if !h[len(h)-1].t.Add(-w.ColdStart).Before(h[i].t) {
			cut = i
		}
	}
	p.past[w.Name] = h[cut:]
}

// states fills sig's tier states at now; terminating spot replicas (under
// notice) are not ready. Unknown (no plan a cold start old yet): untouched.
func (p *planned) states(w *capacity.Workload, now time.Time, sig *capacity.Signals) {
	p.mu.Lock()
	defer p.mu.Unlock()
	h := p.past[w.Name]
	if len(h) == 0 || now.Sub(h[0].t) < w.ColdStart {
		return
	}
	readyOD, readySpot := h[0].od, h[0].spot
	for _, x := range h {
		if now.Sub(x.t) >= w.ColdStart {
			readyOD, readySpot = x.od, x.spot // the plan in force a cold start ago…
		} else {
			readyOD, readySpot = min(readyOD, x.od), min(readySpot, x.spot) // …and kept since
		}
	}
	last := h[len(h)-1]
	readySpot = max(0, readySpot-sig.Spot.Terminating)
	sig.OnDemand = capacity.TierState{Ready: readyOD, Starting: max(0, last.od-readyOD)}
	// The replicas on departing nodes are among the estimated ones.
	startingSpot := max(0, last.spot-sig.Spot.Terminating-readySpot)
	sig.Spot = capacity.TierState{Ready: readySpot, Starting: startingSpot,
		Terminating: sig.Spot.Terminating, Departing: min(sig.Spot.Departing, readySpot+startingSpot)}
}

func (p *planned) forget(keep func(string) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	maps.DeleteFunc(p.past, func(name string, _ []plannedAt) bool { return !keep(name) })
}

// withTierSignals is a LiveSource that adds to another source's signals
// what it does not know of the workload's tiers: the spot notices of its
// pools, and the replicas' states: from
// the workload's pods when there is a pod source (--kubernetes.pods), else
// estimated from the workload's past plans (planned) for spot workloads.
// Failing to read notices or pods does not fail the live signals: the
// planner then sees none, or the estimate, and the log says so.
type withTierSignals struct {
	live  capacity.LiveSource
	spot  *spotNotices
	plans interface {
		Get(workload string) (capacity.Plan, bool)
	}
	past    *planned
	pods    podCounter // nil: no pod source
	podErrs *sync.Map  // workload -> last pod error logged, so it is logged once
	log     *slog.Logger
	names   func() map[string]bool // workloads of the current policy
}

func (l withTierSignals) Signals(ctx context.Context, w *capacity.Workload, now time.Time) (capacity.Signals, error) {
	sig, err := l.live.Signals(ctx, w, now)
	if err != nil {
		return sig, err
	}
	// What the cloud announced matters to a workload's spot pools and,
	// through its pods, to every node it runs on.
	var outlook map[string]kubepods.Outlook
	if l.pods != nil || w.Tiers.Spot != nil && len(w.Tiers.Spot.Pools) > 0 {
		var serr error
		if outlook, serr = l.spot.attribute(ctx, w, now, &sig); serr != nil {
			l.log.Warn("spot interruption notices and disruption warnings unavailable", "workload", w.Name, "err", serr)
		}
	}
	fromPods := false
	if l.pods != nil {
		perr := podStates(l.pods, w, outlook, &sig)
		fromPods = perr == nil
		l.logPodError(w.Name, perr)
	}
	if w.Tiers.Spot != nil && len(w.Tiers.Spot.Pools) > 0 && l.plans != nil && l.past != nil {
		plan, ok := l.plans.Get(w.Name)
		l.past.observe(w, plan, ok)
		if !fromPods && sig.OnDemand == (capacity.TierState{}) && sig.Spot.Live() == 0 {
			l.past.states(w, now, &sig)
		}
	}
	if l.names != nil {
		names := l.names()
		keep := func(n string) bool { return names[n] }
		l.spot.forget(keep)
		if l.past != nil {
			l.past.forget(keep)
		}
	}
	return sig, nil
}

// logPodError logs a workload's pod source error when it changes (a
// missing Deployment would otherwise be logged every decision), and the
// recovery.
func (l withTierSignals) logPodError(workload string, err error) {
	if l.podErrs == nil {
		return
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	prev, _ := l.podErrs.Swap(workload, msg)
	switch {
	case prev == msg || (prev == nil && msg == ""):
	case msg != "":
		l.log.Warn("pod states unavailable; estimating them from past plans", "workload", workload, "err", err)
	default:
		l.log.Info("pod states available again", "workload", workload)
	}
}

// withTierSignalsFrom wraps live with the spot notices of the flags' source
// (Prometheus when --prometheus.url is set: it scrapes every node's
// exporter; else the exporter of --exporter.url) and the pod source, if any.
func withTierSignalsFrom(live capacity.LiveSource, cfg serveConfig, policy *capacity.PolicyFile, cache *capacity.Cache, pods podCounter, log *slog.Logger) (capacity.LiveSource, error) {
	var src noticeSource
	switch {
	case cfg.promURL != "":
		p, err := newPromNotices(cfg.promURL, cfg.promTimeout)
		if err != nil {
			return nil, err
		}
		src = p
	case cfg.exporterURL != "":
		src = exporterNotices{newExporterLive(cfg.exporterURL, log)}
	default:
		return live, nil
	}
	names := func() map[string]bool {
		out := map[string]bool{}
		for _, w := range policy.Current().Workloads {
			out[w.Name] = true
		}
		return out
	}
	return withTierSignals{live: live, spot: newSpotNotices(src), plans: cache, past: newPlanned(), pods: pods, podErrs: &sync.Map{},
		log: log, names: names}, nil
}
