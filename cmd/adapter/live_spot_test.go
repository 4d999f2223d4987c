package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/infercast/infercast/internal/kubepods"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/metrics/spot"
)

// fakeNotices is a noticeSource whose answer the test sets.
type fakeNotices struct {
	nodes []nodeNotice
	err   error
}

func (f *fakeNotices) notices(context.Context) ([]nodeNotice, error) { return f.nodes, f.err }

func spotWorkload(name string, pools ...string) *capacity.Workload {
	return &capacity.Workload{Name: name, Tiers: capacity.Tiers{Spot: &capacity.SpotTier{Pools: pools}}}
}

func TestSpotNoticesAttribution(t *testing.T) {
	type want struct{ terminating, notices, domains int }
	steps := []struct {
		name  string
		nodes []nodeNotice
		want  want
	}{
		{"first look: active notices terminate, none is new",
			[]nodeNotice{{node: "a1", pool: "spot-a", active: true, total: 1}, {node: "b1", pool: "spot-b", total: 0}, {node: "x1", pool: "other", active: true, total: 3}},
			want{1, 0, 0}},
		{"nothing changed",
			[]nodeNotice{{node: "a1", pool: "spot-a", active: true, total: 1}, {node: "b1", pool: "spot-b", total: 0}, {node: "x1", pool: "other", active: true, total: 3}},
			want{1, 0, 0}},
		{"burst: two nodes of two pools, another pool ignored",
			[]nodeNotice{{node: "a1", pool: "spot-a", active: true, total: 1}, {node: "a2", pool: "spot-a", active: true, total: 1},
				{node: "b1", pool: "spot-b", active: true, total: 1}, {node: "x1", pool: "other", active: true, total: 9}},
			want{3, 2, 2}},
		{"notices end, the nodes are gone",
			[]nodeNotice{{node: "b2", pool: "spot-b", total: 0}},
			want{0, 0, 0}},
		{"a new node of a pool, already under notice: terminating, counted when its counter moves",
			[]nodeNotice{{node: "b2", pool: "spot-b", active: true, total: 0}},
			want{1, 0, 0}},
		{"same node, a second notice",
			[]nodeNotice{{node: "b2", pool: "spot-b", active: true, total: 1}},
			want{1, 1, 1}},
	}
	src := &fakeNotices{}
	s := newSpotNotices(src)
	w := spotWorkload("chat", "spot-a", "spot-b")
	for _, st := range steps {
		src.nodes = st.nodes
		var sig capacity.Signals
		if _, err := s.attribute(context.Background(), w, time.Time{}, &sig); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		got := want{sig.Spot.Terminating, sig.SpotNotices, sig.SpotNoticeDomains}
		if got != st.want {
			t.Errorf("%s: terminating, new notices, domains = %+v, want %+v", st.name, got, st.want)
		}
	}
}

func TestSpotNoticesCounterReset(t *testing.T) {
	src := &fakeNotices{nodes: []nodeNotice{{node: "a1", pool: "p", total: 5}}}
	s := newSpotNotices(src)
	w := spotWorkload("chat", "p")
	var sig capacity.Signals
	for _, total := range []float64{5, 2} { // 5 → 2: the exporter restarted and saw 2 since
		src.nodes[0].total = total
		sig = capacity.Signals{}
		if _, err := s.attribute(context.Background(), w, time.Time{}, &sig); err != nil {
			t.Fatal(err)
		}
	}
	if sig.SpotNotices != 2 || sig.SpotNoticeDomains != 1 {
		t.Errorf("after a counter reset: %d notices from %d domains, want 2 from 1", sig.SpotNotices, sig.SpotNoticeDomains)
	}
}

func TestSpotNoticesPerWorkload(t *testing.T) {
	src := &fakeNotices{nodes: []nodeNotice{{node: "a1", pool: "a", total: 0}, {node: "b1", pool: "b", total: 0}}}
	s := newSpotNotices(src)
	wa, wb := spotWorkload("wa", "a"), spotWorkload("wb", "b")
	for _, w := range []*capacity.Workload{wa, wb} {
		if _, err := s.attribute(context.Background(), w, time.Time{}, &capacity.Signals{}); err != nil {
			t.Fatal(err)
		}
	}
	src.nodes[0] = nodeNotice{node: "a1", pool: "a", active: true, total: 1}
	var a, b capacity.Signals
	if _, err := s.attribute(context.Background(), wa, time.Time{}, &a); err != nil {
		t.Fatal(err)
	}
	if _, err := s.attribute(context.Background(), wb, time.Time{}, &b); err != nil {
		t.Fatal(err)
	}
	if a.SpotNotices != 1 || a.Spot.Terminating != 1 || b.SpotNotices != 0 || b.Spot.Terminating != 0 {
		t.Errorf("pool a's notice: wa %d new/%d terminating, wb %d/%d; want 1/1 and 0/0",
			a.SpotNotices, a.Spot.Terminating, b.SpotNotices, b.Spot.Terminating)
	}
}

// TestSpotNoticesWorkloadsWithoutPools: a workload without spot pools
// gets no spot signals, but learns which nodes are departing (for its
// pods); and without a pod source nothing is read for it at all.
func TestSpotNoticesWorkloadsWithoutPools(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	src := &fakeNotices{nodes: []nodeNotice{{node: "a1", pool: "spot-a", active: true, total: 1},
		{node: "d1", pool: "on-demand", stops: true, stopsAt: t0.Add(time.Minute)}}}
	s := newSpotNotices(src)
	for _, w := range []*capacity.Workload{{Name: "od", ColdStart: 3 * time.Minute}, spotWorkload("nopools")} {
		w.ColdStart = 3 * time.Minute
		sig := capacity.Signals{SpotNotices: 7}
		outlook, err := s.attribute(context.Background(), w, t0, &sig)
		if err != nil || sig.SpotNotices != 7 || sig.Spot != (capacity.TierState{}) {
			t.Errorf("%s: %v, notices %d, spot %+v; want untouched", w.Name, err, sig.SpotNotices, sig.Spot)
		}
		if want := map[string]kubepods.Outlook{"d1": kubepods.Departing}; !maps.Equal(outlook, want) {
			t.Errorf("%s: outlook %v, want %v", w.Name, outlook, want)
		}
	}
	src.err = errors.New("must not be read")
	l := withTierSignals{live: fixedLive{sig: capacity.Signals{Rate: 3}}, spot: s, log: slog.New(slog.DiscardHandler)}
	var logs bytes.Buffer
	l.log = slog.New(slog.NewTextHandler(&logs, nil))
	if _, err := l.Signals(context.Background(), &capacity.Workload{Name: "od"}, t0); err != nil || logs.Len() > 0 {
		t.Errorf("no pods, no spot pools: %v, logged %q; want nothing read", err, logs.String())
	}
}

// TestSpotNoticesDeparting: a node whose announced stop comes within the
// workload's cold start and two decisions (or whose stop is untimed, or
// has begun) is departing; a later stop is not yet; a notice outranks it.
// In the spot pools, without pods, departing nodes are departing replicas.
func TestSpotNoticesDeparting(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0).UTC()
	w := spotWorkload("chat", "spot-a")
	w.ColdStart, w.DecisionInterval = 3*time.Minute, 15*time.Second // lead 3m30s
	src := &fakeNotices{nodes: []nodeNotice{
		{node: "a1", pool: "spot-a", stops: true, stopsAt: t0.Add(3*time.Minute + 30*time.Second)}, // just within
		{node: "a2", pool: "spot-a", stops: true, stopsAt: t0.Add(3*time.Minute + 31*time.Second)}, // not yet
		{node: "a3", pool: "spot-a", stops: true},                                                  // untimed (GCP)
		{node: "a4", pool: "spot-a", stops: true, stopsAt: t0.Add(-time.Hour)},                     // within its window
		{node: "a5", pool: "spot-a", stops: true, active: true, total: 1},                          // under notice too
		{node: "d1", pool: "on-demand", stops: true},
		{node: "a6", pool: "spot-a"},
	}}
	var sig capacity.Signals
	outlook, err := newSpotNotices(src).attribute(context.Background(), w, t0, &sig)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]kubepods.Outlook{"a1": kubepods.Departing, "a3": kubepods.Departing, "a4": kubepods.Departing,
		"a5": kubepods.UnderNotice, "d1": kubepods.Departing}
	if !maps.Equal(outlook, want) {
		t.Errorf("outlook %v, want %v", outlook, want)
	}
	if sig.Spot.Departing != 3 || sig.Spot.Terminating != 1 {
		t.Errorf("spot %+v; want 3 departing (a1, a3, a4), 1 terminating (a5)", sig.Spot)
	}
	// A measured cold start longer than the policy's lengthens the lead.
	sig = capacity.Signals{ColdStartP90: 5 * time.Minute}
	if outlook, _ := newSpotNotices(src).attribute(context.Background(), w, t0, &sig); outlook["a2"] != kubepods.Departing {
		t.Errorf("with a 5 min measured cold start, a2 (stop in 3m31s) is %v, want departing", outlook["a2"])
	}
}

// fixedLive is a LiveSource with a fixed answer.
type fixedLive struct {
	sig capacity.Signals
	err error
}

func (f fixedLive) Signals(context.Context, *capacity.Workload, time.Time) (capacity.Signals, error) {
	return f.sig, f.err
}

func TestWithTierSignalsNotices(t *testing.T) {
	w := spotWorkload("chat", "p")
	src := &fakeNotices{nodes: []nodeNotice{{node: "n", pool: "p", active: true, total: 1}}}
	l := withTierSignals{live: fixedLive{sig: capacity.Signals{Rate: 3}}, spot: newSpotNotices(src), log: slog.New(slog.DiscardHandler)}
	sig, err := l.Signals(context.Background(), w, time.Now())
	if err != nil || sig.Rate != 3 || sig.Spot.Terminating != 1 {
		t.Fatalf("signals %+v, %v; want rate 3 and 1 terminating", sig, err)
	}
	// Notices unreadable: the live signals still count, without notices.
	src.err = errors.New("prometheus down")
	sig, err = l.Signals(context.Background(), w, time.Now())
	if err != nil || sig.Rate != 3 || sig.Spot.Terminating != 0 {
		t.Fatalf("notices failing: signals %+v, %v; want rate 3, no notices, no error", sig, err)
	}
	// The live source failing is the live source's error.
	l.live = fixedLive{err: errors.New("exporter down")}
	if _, err := l.Signals(context.Background(), w, time.Now()); err == nil {
		t.Fatal("live source failed, want its error")
	}
}

// imds is a fake AWS instance metadata service whose notice the test turns
// on, and whose scheduled events it sets (nil: none).
func imds(t *testing.T, notice *atomic.Bool, events *atomic.Pointer[string]) *httptest.Server {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "token") })
	mux.HandleFunc("GET /latest/meta-data/events/maintenance/scheduled", func(w http.ResponseWriter, _ *http.Request) {
		if e := events.Load(); e != nil {
			fmt.Fprint(w, *e)
			return
		}
		fmt.Fprint(w, "[]")
	})
	mux.HandleFunc("GET /latest/meta-data/spot/instance-action", func(w http.ResponseWriter, _ *http.Request) {
		if !notice.Load() {
			http.NotFound(w, nil)
			return
		}
		fmt.Fprintf(w, `{"action":"terminate","time":%q}`, time.Now().Add(2*time.Minute).UTC().Format(time.RFC3339))
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// TestExporterNotices reads the series a real spot.Watcher exposes, polling
// a fake IMDS, through exporterNotices: the notice, and the scheduled
// events that stop the node, from when they begin.
func TestExporterNotices(t *testing.T) {
	var notice atomic.Bool
	var events atomic.Pointer[string]
	md := imds(t, &notice, &events)
	src, err := spot.NewSource(spot.AWS, md.URL)
	if err != nil {
		t.Fatal(err)
	}
	watch, err := spot.NewWatcher(spot.Options{Source: src, Node: "node-1", Pool: "gpu-spot"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(watch)
	exp := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	t.Cleanup(exp.Close)
	en := exporterNotices{exporterLive{url: exp.URL, client: exp.Client()}}

	event := func(code, notBefore string) string {
		return fmt.Sprintf(`{"NotBefore": %q, "Code": %q, "Description": "scheduled", "EventId": "instance-event-%s", "NotAfter": "", "State": "active"}`,
			notBefore, code, code)
	}
	list := func(events ...string) *string { s := "[" + strings.Join(events, ",") + "]"; return &s }
	stop := time.Date(2026, 12, 9, 6, 0, 0, 0, time.UTC)
	for _, step := range []struct {
		notice bool
		events *string
		want   nodeNotice
	}{
		{false, nil, nodeNotice{node: "node-1", pool: "gpu-spot"}},
		{false, list(event("system-maintenance", "9 Dec 2026 05:00:00 GMT")), nodeNotice{node: "node-1", pool: "gpu-spot"}}, // not a stop
		{false, list(event("system-maintenance", "9 Dec 2026 05:00:00 GMT"), event("instance-retirement", "9 Dec 2026 07:00:00 GMT"),
			event("instance-stop", "9 Dec 2026 06:00:00 GMT")),
			nodeNotice{node: "node-1", pool: "gpu-spot", stops: true, stopsAt: stop}}, // the earliest stop
		{true, nil, nodeNotice{node: "node-1", pool: "gpu-spot", active: true, total: 1}},
		{true, nil, nodeNotice{node: "node-1", pool: "gpu-spot", active: true, total: 1}}, // the same notice counts once
	} {
		notice.Store(step.notice)
		events.Store(step.events)
		if err := watch.Poll(context.Background()); err != nil {
			t.Fatal(err)
		}
		got, err := en.notices(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0] != step.want {
			t.Fatalf("notice %t: got %+v, want [%+v]", step.notice, got, step.want)
		}
	}
}

func TestMergeNotices(t *testing.T) {
	got := mergeNotices([]noticeSample{
		{name: spotNoticeMetric, node: "n", pool: "p", value: 0},
		{name: spotNoticeMetric, node: "n", pool: "p", value: 1}, // a second provider's watcher
		{name: spotTotalMetric, node: "n", pool: "p", value: 2},
		{name: spotTotalMetric, node: "n", pool: "p", value: 1},
		{name: spotTotalMetric, node: "m", pool: "p", value: math.NaN()},
	})
	want := []nodeNotice{{node: "n", pool: "p", active: true, total: 3}}
	if len(got) != 1 || got[0] != want[0] {
		t.Fatalf("got %+v, want %+v", got, want)
	}

	// Warnings: only the kinds that stop a node, announced; the earliest
	// start of those, or none if one of them is untimed.
	got = mergeNotices([]noticeSample{
		{name: warningMetric, node: "a", pool: "p", kind: spot.WarnRebalance, value: 1},         // a risk, not a stop
		{name: warningMetric, node: "a", pool: "p", kind: spot.WarnSystemMaintenance, value: 1}, // maybe not a stop
		{name: warningStartMetric, node: "a", pool: "p", kind: spot.WarnSystemMaintenance, value: 1e9},
		{name: warningMetric, node: "a", pool: "p", kind: spot.WarnInstanceStop, value: 0}, // not announced
		{name: warningMetric, node: "b", pool: "p", kind: spot.WarnInstanceStop, value: 1},
		{name: warningStartMetric, node: "b", pool: "p", kind: spot.WarnInstanceStop, value: 2e9},
		{name: warningMetric, node: "b", pool: "p", kind: spot.WarnInstanceRetirement, value: 1},
		{name: warningStartMetric, node: "b", pool: "p", kind: spot.WarnInstanceRetirement, value: 1.5e9 + 0.25},
		{name: warningMetric, node: "c", pool: "p", kind: spot.WarnMaintenanceTerminate, value: 1}, // GCP: untimed
		{name: warningMetric, node: "d", pool: "p", kind: spot.WarnReboot, value: 1},
		{name: warningStartMetric, node: "d", pool: "p", kind: spot.WarnReboot, value: 1e9},
		{name: warningMetric, node: "d", pool: "p", kind: spot.WarnTerminate, value: 1}, // announced, its start not (yet) read
		{name: spotNoticeMetric, node: "d", pool: "p", value: 0},
	})
	want = []nodeNotice{{node: "a", pool: "p"},
		{node: "b", pool: "p", stops: true, stopsAt: time.UnixMilli(1_500_000_000_250).UTC()},
		{node: "c", pool: "p", stops: true}, {node: "d", pool: "p", stops: true}}
	if !slices.Equal(got, want) {
		t.Fatalf("warnings: got %+v, want %+v", got, want)
	}
}

func TestForecastReselectFlag(t *testing.T) {
	base := []string{"--config.file", "p.yaml", "--prometheus.url", "http://127.0.0.1:9"}
	c, err := parseServeFlags(append(base, "--forecast.reselect-interval", "30m"), io.Discard)
	if err != nil || c.forecastReselect != 30*time.Minute {
		t.Fatalf("30m: %v, %v", c.forecastReselect, err)
	}
	if _, err := parseServeFlags(append(base, "--hpa.downscale-stabilization", "-1s"), io.Discard); err == nil {
		t.Fatal("a negative --hpa.downscale-stabilization was accepted")
	}
	if c, err := parseServeFlags(base, io.Discard); err != nil || c.hpaDownscale != 5*time.Minute {
		t.Fatalf("default --hpa.downscale-stabilization = %s, %v; want the HPA's 5m", c.hpaDownscale, err)
	}
	if _, err := parseServeFlags(append(base, "--forecast.reselect-interval", "-1s"), io.Discard); err == nil {
		t.Fatal("a negative --forecast.reselect-interval was accepted")
	}
}

// planCache is the adapter's plan cache as withTierSignals reads it.
type planCache map[string]capacity.Plan

func (c planCache) Get(w string) (capacity.Plan, bool) { p, ok := c[w]; return p, ok }

const spotPolicy = `workloads:
  - name: gpu
    demand: {query: "sum(rate(x[1m]))"}
    mu: 1
    latency_slo: 2s
    cold_start: 60s
    decision_interval: 10s
    forecast_step: 10s
    min_replicas: 1
    max_replicas: 100
    on_demand_share: 0.2
    fallback_hold: 60s
    scale_down: {stabilization: 10s, max_step_ratio: 1}
    tiers:
      on_demand: {price_per_hour: 4}
      spot:
        price_per_hour: 1
        interruption_rate_per_hour: 0
        notice: 120s
        failure_domains: 2
        pools: [spot-a, spot-b]
`

// TestSpotNoticeEpisode drives the real planner through a notice on two
// spot nodes, as adapter serve does: the on-demand target rises by the two
// replicas at once and the spot target falls by them; once the notices end,
// spot returns after fallback_hold and the on-demand cover leaves only a
// cold start later, when the returned spot replicas are taken as ready.
func TestSpotNoticeEpisode(t *testing.T) {
	pol, err := capacity.ParsePolicy("p.yaml", []byte(spotPolicy))
	if err != nil {
		t.Fatal(err)
	}
	w := &pol.Workloads[0]
	planner := capacity.NewPlanner(*w)
	src := &fakeNotices{nodes: []nodeNotice{{node: "a1", pool: "spot-a"}, {node: "a2", pool: "spot-a"}, {node: "b1", pool: "spot-b"}}}
	cache := planCache{}
	l := withTierSignals{live: fixedLive{sig: capacity.Signals{Rate: 20, Backlog: math.NaN()}}, spot: newSpotNotices(src),
		plans: cache, past: newPlanned(), log: slog.New(slog.DiscardHandler)}
	start := time.Unix(1_700_000_000, 0)
	plan := func(at time.Duration) (od, spot int) {
		now := start.Add(at)
		sig, err := l.Signals(context.Background(), w, now)
		if err != nil {
			t.Fatal(err)
		}
		sig.Time = now
		p, _ := planner.Plan(nil, errors.New("no forecast: reactive"), sig)
		cache[w.Name] = p
		return p.Tiers[capacity.TierOnDemand].Replicas, p.Tiers[capacity.TierSpot].Replicas
	}
	var od0, spot0 int
	at := time.Duration(0)
	for ; at <= 3*time.Minute; at += 10 * time.Second {
		od0, spot0 = plan(at)
	}
	if spot0 < 3 || od0 < 1 {
		t.Fatalf("steady state: on-demand %d, spot %d; want spot carrying most of it", od0, spot0)
	}
	// Two nodes of the pools get a notice.
	src.nodes[0] = nodeNotice{node: "a1", pool: "spot-a", active: true, total: 1}
	src.nodes[2] = nodeNotice{node: "b1", pool: "spot-b", active: true, total: 1}
	od, spot := plan(at)
	if od != od0+2 || spot != spot0-2 {
		t.Fatalf("at the notices: on-demand %d, spot %d; want %d and %d (two spot replicas moved to on-demand at once)", od, spot, od0+2, spot0-2)
	}
	// Under notice for 2 minutes, then the nodes are gone (their series too).
	for end := at + 2*time.Minute; at < end; at += 10 * time.Second {
		if od, spot = plan(at); od != od0+2 || spot != spot0-2 {
			t.Fatalf("%v under notice: on-demand %d, spot %d; want %d and %d", at, od, spot, od0+2, spot0-2)
		}
	}
	src.nodes = []nodeNotice{{node: "a2", pool: "spot-a"}}
	gone := at
	var spotBack, odBack time.Duration
	for ; at < gone+5*time.Minute && odBack == 0; at += 10 * time.Second {
		od, spot = plan(at)
		if spotBack == 0 && spot == spot0 {
			spotBack = at - gone
		}
		if spotBack > 0 && od == od0 {
			odBack = at - gone
		}
		if od < od0 || od+spot < od0+spot0 {
			t.Fatalf("%v after the notices: on-demand %d, spot %d: below the steady %d + %d", at-gone, od, spot, od0, spot0)
		}
	}
	t.Logf("steady on-demand %d spot %d; notices moved 2; spot back %v and on-demand back %v after they ended", od0, spot0, spotBack, odBack)
	// Spot returns after fallback_hold (60 s) from the last notice; the
	// cover leaves once those spot replicas had a cold start (60 s).
	if spotBack < w.FallbackHold-10*time.Second || spotBack > w.FallbackHold+20*time.Second {
		t.Errorf("spot back to %d %v after the notices ended; want about fallback_hold %v", spot0, spotBack, w.FallbackHold)
	}
	if odBack < spotBack+w.ColdStart || odBack > spotBack+w.ColdStart+20*time.Second {
		t.Errorf("on-demand back to %d %v after the notices ended, spot %v; want a cold start (%v) after spot", od0, odBack, spotBack, w.ColdStart)
	}
}

// TestDepartureEpisode drives the real planner through an announced stop
// of a spot node, as adapter serve does without pods: nothing moves while
// the stop is further than the cold start and two decisions; within that,
// the spot target carries one replacement on top (no fallback: a
// scheduled stop is not an interruption), through a failed read of the
// notices, and for departingHold after the node (and its warning) has
// gone, until its pods would count as lost; then it drops back.
func TestDepartureEpisode(t *testing.T) {
	w := spotPolicyWorkload(t)
	planner := capacity.NewPlanner(*w)
	start := time.Unix(1_700_000_000, 0).UTC()
	stop := start.Add(10 * time.Minute)
	a1, a2, b1 := nodeNotice{node: "a1", pool: "spot-a"}, nodeNotice{node: "a2", pool: "spot-a", stops: true, stopsAt: stop},
		nodeNotice{node: "b1", pool: "spot-b"}
	src := &fakeNotices{nodes: []nodeNotice{a1, a2, b1}}
	cache := planCache{}
	l := withTierSignals{live: fixedLive{sig: capacity.Signals{Rate: 20, Backlog: math.NaN()}}, spot: newSpotNotices(src),
		plans: cache, past: newPlanned(), log: slog.New(slog.DiscardHandler)}
	lead := w.ColdStart + 2*w.DecisionInterval
	var lastSeen time.Time // the last decision that read a2's warning
	var od0, spot0 int
	for at := time.Duration(0); at <= 14*time.Minute; at += w.DecisionInterval {
		now := start.Add(at)
		src.err = nil
		switch {
		case now.After(stop):
			src.nodes = []nodeNotice{a1, b1} // a2 stopped: its exporter's series are gone
		case stop.Sub(now) == 30*time.Second:
			src.err = errors.New("prometheus: timeout") // one failed read
		case stop.Sub(now) <= lead:
			lastSeen = now
		}
		sig, err := l.Signals(context.Background(), w, now)
		if err != nil {
			t.Fatal(err)
		}
		sig.Time = now
		p, ex := planner.Plan(nil, errors.New("no forecast: reactive"), sig)
		cache[w.Name] = p
		od, spot := p.Tiers[capacity.TierOnDemand].Replicas, p.Tiers[capacity.TierSpot].Replicas
		held := !lastSeen.IsZero() && now.Sub(lastSeen) <= departingHold+2*w.DecisionInterval
		switch {
		case at == 3*time.Minute:
			od0, spot0 = od, spot
			if spot0 < 3 {
				t.Fatalf("steady state: on-demand %d, spot %d; want spot carrying most of it", od0, spot0)
			}
		case at > 3*time.Minute && !held:
			if od != od0 || spot != spot0 || ex.DepartingReplacements != 0 {
				t.Fatalf("%v to the stop: on-demand %d, spot %d, departing %d; want %d, %d, 0 (%s)", stop.Sub(now), od, spot,
					ex.DepartingReplacements, od0, spot0, ex)
			}
		case at > 3*time.Minute:
			if od != od0 || spot != spot0+1 || ex.DepartingReplacements != 1 || p.Mode == capacity.ModeFallback {
				t.Fatalf("%v to the stop: on-demand %d, spot %d, mode %s; want %d, %d + 1 replacement, no fallback (%s)",
					stop.Sub(now), od, spot, p.Mode, od0, spot0, ex)
			}
		}
	}
}

// TestLiveExporterSignals reads every live signal from an exporter's
// exposition, the serving replicas included: targets of the workload's
// model whose last scrape succeeded.
func TestLiveExporterSignals(t *testing.T) {
	const body = `# TYPE infercast_model_requests_per_second gauge
infercast_model_requests_per_second{model="chat",window="1m"} 42
infercast_model_requests_per_second{model="chat",window="5m"} 30
infercast_model_requests_per_second{model="embed",window="1m"} 7
# TYPE infercast_model_request_latency_seconds summary
infercast_model_request_latency_seconds{model="chat",window="1m",quantile="0.9"} 0.4
infercast_model_request_latency_seconds{model="chat",window="1m",quantile="0.99"} 1.5
infercast_model_request_latency_seconds_sum{model="chat",window="1m"} 10
infercast_model_request_latency_seconds_count{model="chat",window="1m"} 40
# TYPE infercast_model_requests_waiting gauge
infercast_model_requests_waiting{model="chat",target="a"} 3
infercast_model_requests_waiting{model="chat",target="b"} 1
infercast_model_requests_waiting{model="chat",target="c"} 9
infercast_model_requests_waiting{model="embed",target="d"} 5
# TYPE infercast_model_requests_running gauge
infercast_model_requests_running{model="chat",target="a"} 4
infercast_model_requests_running{model="chat",target="e"} 2
# TYPE infercast_target_up gauge
infercast_target_up{target="a",dialect="vllm",source="static"} 1
infercast_target_up{target="b",dialect="vllm",source="static"} 1
infercast_target_up{target="c",dialect="vllm",source="static"} 0
infercast_target_up{target="d",dialect="vllm",source="static"} 1
infercast_target_up{target="e",dialect="vllm",source="static"} 1
`
	exp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	}))
	t.Cleanup(exp.Close)
	w := spotWorkload("chat")
	w.LatencyPercentile = 0.99
	sig, err := exporterLive{url: exp.URL, client: exp.Client()}.Signals(context.Background(), w, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// Serving: a, b and e are up and serve chat; c is down, d serves embed.
	if sig.Rate != 42 || sig.Latency != 1500*time.Millisecond || sig.Backlog != 13 || sig.Serving != 3 {
		t.Fatalf("signals %+v; want rate 42, latency 1.5s, backlog 13, serving 3", sig)
	}
}
