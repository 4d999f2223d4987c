package store_test

import (
	"context"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/prometheus/model/labels"
	"go.uber.org/goleak"

	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/predict/history"
	"github.com/infercast/infercast/pkg/predict/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func open(t *testing.T, dir string, o store.Options) *store.Store {
	t.Helper()
	o.Dir = dir
	s, err := store.Open(o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func counter(name string, at time.Time, v float64, lbls ...string) store.Sample {
	return store.Sample{Labels: labels.FromStrings(append([]string{"__name__", name}, lbls...)...), T: at, V: v}
}

var reqs = labels.MustNewMatcher(labels.MatchEqual, "__name__", "requests_total")

func TestIncreaseHandlesResetsGapsAndPods(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	// Two pods scraped every 30s; pod b restarts (reset) in minute 2; no
	// scrape at all in minute 4.
	a := []float64{100, 110, 120, 130, 150, 170, 180, 190, -1, -1, 200, 230}
	b := []float64{5, 6, 7, 8, 2, 4, 6, 8, -1, -1, 9, 10}
	var samples []store.Sample
	for i := range a {
		at := t0.Add(time.Duration(i) * 30 * time.Second)
		if a[i] >= 0 {
			samples = append(samples, counter("requests_total", at, a[i], "pod", "a"), counter("requests_total", at, b[i], "pod", "b"))
		}
	}
	samples = append(samples, counter("other_total", t0, 1e6))
	if _, err := s.Append(ctx, samples); err != nil {
		t.Fatal(err)
	}
	got, err := s.Increase(ctx, t0, t0.Add(6*time.Minute), time.Minute, reqs)
	if err != nil {
		t.Fatal(err)
	}
	// Minute 0: the first samples have no base; only the rise to the 30s
	// sample counts (10 + 1). Minute 2: a 20+20, b reset to 2 then +2.
	// Minute 4 has no sample; minute 5 counts from the last one before.
	want := []float64{11, 22, 44, 24, math.NaN(), 42}
	if len(got.Values) != len(want) {
		t.Fatalf("got %v, want %v", got.Values, want)
	}
	for i := range want {
		if got.Values[i] != want[i] && !(math.IsNaN(want[i]) && math.IsNaN(got.Values[i])) {
			t.Errorf("minute %d: %v, want %v (all %v)", i, got.Values[i], want[i], got.Values)
		}
	}
	if _, err := s.Increase(ctx, t0, t0.Add(time.Hour), time.Minute, labels.MustNewMatcher(labels.MatchEqual, "__name__", "nope")); err == nil ||
		!strings.Contains(err.Error(), "no series matches") {
		t.Errorf("err %v, want no series", err)
	}
}

func TestSurvivesRestart(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := open(t, dir, store.Options{})
	var samples []store.Sample
	for i := range 120 {
		samples = append(samples, counter("requests_total", t0.Add(time.Duration(i)*time.Minute), float64(i*i)))
	}
	if _, err := s.Append(ctx, samples); err != nil {
		t.Fatal(err)
	}
	before, err := s.Increase(ctx, t0, t0.Add(2*time.Hour), 10*time.Minute, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, dir, store.Options{})
	defer s.Close()
	after, err := s.Increase(ctx, t0, t0.Add(2*time.Hour), 10*time.Minute, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range before.Values {
		if before.Values[i] != after.Values[i] {
			t.Fatalf("interval %d: %v before the restart, %v after", i, before.Values[i], after.Values[i])
		}
	}
	// Interval 1 is minutes 10..19: sum of (i^2-(i-1)^2) = 19^2-9^2.
	if before.Values[1] != 19*19-9*9 {
		t.Errorf("interval 1: %v, want %v", before.Values[1], 19*19-9*9)
	}
}

func TestRetentionIsBounded(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), store.Options{Retention: 3 * time.Hour, BlockDuration: time.Hour})
	defer s.Close()
	var samples []store.Sample
	for i := range 12 * 60 {
		samples = append(samples, counter("requests_total", t0.Add(time.Duration(i)*time.Minute), float64(i)))
	}
	if _, err := s.Append(ctx, samples); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx); err != nil {
		t.Fatal(err)
	}
	minT, err := s.MinTime(ctx)
	if err != nil {
		t.Fatal(err)
	}
	newest := t0.Add(12 * time.Hour)
	// Whole blocks go: allow one block beyond the retention.
	if oldest := newest.Add(-3*time.Hour - 2*time.Hour); minT.Before(oldest) {
		t.Errorf("oldest sample %v, want none before %v (retention 3h)", minT, oldest)
	}
}

func TestScraperFromARealExporter(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infercast_requests_total", Help: "Requests."}, []string{"model"})
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "infercast_latency_seconds", Help: "Latency."})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "infercast_queue", Help: "Queue."})
	reg.MustRegister(c, lat, g)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()

	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	sc, err := store.NewScraper(s, store.ScraperConfig{
		URL: srv.URL, Interval: time.Second,
		Metrics: []string{"infercast_requests_total", "infercast_latency_seconds_count"},
		Labels:  map[string]string{"source": "exporter"},
	})
	if err != nil {
		t.Fatal(err)
	}
	adds := []float64{0, 30, 45, 10, 0, 25}
	for i, a := range adds {
		c.WithLabelValues("llama").Add(a)
		for range int(a) {
			lat.Observe(0.1)
		}
		g.Set(float64(i))
		n, err := sc.ScrapeOnce(ctx, t0.Add(time.Duration(i)*time.Minute))
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 {
			t.Fatalf("scrape %d kept %d samples, want 2 (counter and histogram count)", i, n)
		}
	}
	for _, name := range []string{"infercast_requests_total", "infercast_latency_seconds_count"} {
		got, err := s.Increase(ctx, t0.Add(time.Minute), t0.Add(6*time.Minute), time.Minute,
			labels.MustNewMatcher(labels.MatchEqual, "__name__", name),
			labels.MustNewMatcher(labels.MatchEqual, "source", "exporter"))
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range got.Values {
			if v != adds[i+1] {
				t.Errorf("%s minute %d: %v, want %v", name, i+1, v, adds[i+1])
			}
		}
	}
	if _, err := s.Increase(ctx, t0, t0.Add(6*time.Minute), time.Minute, labels.MustNewMatcher(labels.MatchEqual, "__name__", "infercast_queue")); err == nil {
		t.Error("a metric not asked for was stored")
	}

	// Run scrapes on its own until cancelled.
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sc.Run(runCtx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Increase(ctx, time.Now().Add(-time.Minute), time.Now().Add(time.Minute), 2*time.Minute, reqsExporter)
		if err == nil && !math.IsNaN(got.Values[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run stored nothing in 10s: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

var reqsExporter = labels.MustNewMatcher(labels.MatchEqual, "__name__", "infercast_requests_total")

func TestScraperErrors(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"server error", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }, "HTTP 500"},
		{"garbage", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			_, _ = w.Write([]byte("requests_total{ 12\n"))
		}, "parse"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			sc, err := store.NewScraper(s, store.ScraperConfig{URL: srv.URL, Metrics: []string{"requests_total"}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := sc.ScrapeOnce(ctx, t0); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err %v, want %q", err, tc.want)
			}
		})
	}
	if _, err := store.NewScraper(s, store.ScraperConfig{}); err == nil {
		t.Error("want an error without URL")
	}
}

// TestCounterIsAHistorySource ties the pieces together: what the scraper
// stored comes back through the history.Source interface the adapter uses.
func TestCounterIsAHistorySource(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	var samples []store.Sample
	for i := range 61 {
		samples = append(samples, counter("requests_total", t0.Add(time.Duration(i)*time.Minute), float64(3*i)))
	}
	if _, err := s.Append(ctx, samples); err != nil {
		t.Fatal(err)
	}
	var src history.Source = store.Counter{Store: s, Matchers: []*labels.Matcher{reqs}}
	got, err := src.Series(ctx, t0.Add(time.Minute), t0.Add(61*time.Minute), 5*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Values) != 12 {
		t.Fatalf("%d intervals, want 12", len(got.Values))
	}
	for i, v := range got.Values {
		if v != 15 {
			t.Errorf("interval %d: %v, want 15 (3 a minute)", i, v)
		}
	}
}

// TestScraperReadsEveryExporter: a URL whose host resolves to two exporters
// (a headless Service over two GPU nodes) is scraped at both; each sample
// carries its exporter's instance, so Increase sums the nodes. One exporter
// down: the other's samples are still stored, without an error.
func TestScraperReadsEveryExporter(t *testing.T) {
	ctx := context.Background()
	var counters [2]prometheus.Counter
	var down atomic.Bool
	var handlers []http.Handler
	for i := range counters {
		reg := prometheus.NewRegistry()
		counters[i] = prometheus.NewCounter(prometheus.CounterOpts{Name: "infercast_requests_total", Help: "Requests.", ConstLabels: prometheus.Labels{"model": "llama"}})
		reg.MustRegister(counters[i])
		h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
		handlers = append(handlers, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if i == 1 && down.Load() {
				http.Error(w, "down", http.StatusServiceUnavailable)
				return
			}
			h.ServeHTTP(w, r)
		}))
	}
	port := testutil.ServeNodes(t, handlers...)
	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	sc, err := store.NewScraper(s, store.ScraperConfig{
		URL: "http://exporters.test:" + port + "/metrics", Interval: time.Second,
		Metrics: []string{"infercast_requests_total"},
		Lookup: func(context.Context, string) ([]string, error) {
			return []string{"127.0.0.1", "127.0.0.2"}, nil
		},
		Client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	adds := [][2]float64{{0, 0}, {10, 5}, {20, 5}, {0, 7}, {30, 0}}
	for i, a := range adds {
		counters[0].Add(a[0])
		counters[1].Add(a[1])
		if n, err := sc.ScrapeOnce(ctx, t0.Add(time.Duration(i)*time.Minute)); err != nil || n != 2 {
			t.Fatalf("scrape %d: %d samples, %v; want 2 (one a node)", i, n, err)
		}
	}
	increase := func(ms ...*labels.Matcher) []float64 {
		t.Helper()
		got, err := s.Increase(ctx, t0.Add(time.Minute), t0.Add(time.Duration(len(adds))*time.Minute), time.Minute, append(ms, reqsExporter)...)
		if err != nil {
			t.Fatal(err)
		}
		return got.Values
	}
	nodeB := labels.MustNewMatcher(labels.MatchEqual, "instance", "127.0.0.2:"+port)
	for i, v := range increase() {
		if a := adds[i+1]; v != a[0]+a[1] {
			t.Errorf("minute %d: %v, want both nodes' %v", i+1, v, a[0]+a[1])
		}
	}
	for i, v := range increase(nodeB) {
		if v != adds[i+1][1] {
			t.Errorf("node B minute %d: %v, want %v", i+1, v, adds[i+1][1])
		}
	}
	down.Store(true)
	counters[0].Add(4)
	if n, err := sc.ScrapeOnce(ctx, t0.Add(time.Duration(len(adds))*time.Minute)); err != nil || n != 1 {
		t.Fatalf("node B down: %d samples, %v; want node A's 1 and no error", n, err)
	}
}

// A headless Service with one exporter resolves to one address, with two
// to two: the first exporter's series keeps its instance label when the
// second comes and goes (it was the Service's host:port alone, then the
// pod's IP:port, a new series whose first minute was lost each time).
func TestScraperKeepsAnExportersSeriesWhenASecondComes(t *testing.T) {
	ctx := context.Background()
	var counters [2]prometheus.Counter
	var handlers []http.Handler
	for i := range counters {
		reg := prometheus.NewRegistry()
		counters[i] = prometheus.NewCounter(prometheus.CounterOpts{Name: "infercast_requests_total", Help: "Requests.", ConstLabels: prometheus.Labels{"model": "llama"}})
		reg.MustRegister(counters[i])
		handlers = append(handlers, promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	}
	port := testutil.ServeNodes(t, handlers...)
	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	var nodes atomic.Int32
	nodes.Store(1)
	sc, err := store.NewScraper(s, store.ScraperConfig{
		URL: "http://exporters.test:" + port + "/metrics", Interval: time.Second,
		Metrics: []string{"infercast_requests_total"},
		Lookup: func(context.Context, string) ([]string, error) {
			return []string{"127.0.0.1", "127.0.0.2"}[:nodes.Load()], nil
		},
		Client: &http.Client{Transport: &http.Transport{
			DisableKeepAlives: true,
			// One exporter: the client as it is dials the Service's name.
			DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, "127.0.0.1:"+port)
			},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	nodesAt := []int32{1, 1, 2, 2, 1, 1}
	for i, n := range nodesAt {
		nodes.Store(n)
		counters[0].Add(10)
		if _, err := sc.ScrapeOnce(ctx, t0.Add(time.Duration(i)*time.Minute)); err != nil {
			t.Fatalf("scrape %d: %v", i, err)
		}
	}
	nodeA := labels.MustNewMatcher(labels.MatchEqual, "instance", "127.0.0.1:"+port)
	got, err := s.Increase(ctx, t0.Add(time.Minute), t0.Add(time.Duration(len(nodesAt))*time.Minute), time.Minute, reqsExporter, nodeA)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.Values {
		if v != 10 {
			t.Errorf("minute %d (%d exporters): node A's increase %v, want 10 (all %v)", i+1, nodesAt[i+1], v, got.Values)
		}
	}
}

// TestIncreaseAcrossALongGap: the store was down two hours (an adapter
// restart) while the counter kept counting at 10 req/s. The rise across
// the gap is not put in the minute after it — where in the gap it
// happened is unknown; it made that minute hold 72,000 requests — the
// gap's minutes have no data, and the minutes either side count their
// own scrapes. A short gap within one interval, or up to five minutes
// (Prometheus's lookback), still counts.
func TestIncreaseAcrossALongGap(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	var samples []store.Sample
	at := func(d time.Duration) { samples = append(samples, counter("requests_total", t0.Add(d), 10*d.Seconds())) }
	for d := time.Duration(0); d <= 10*time.Minute; d += 15 * time.Second {
		at(d)
	}
	resume := 10*time.Minute + 2*time.Hour
	for d := resume; d <= resume+10*time.Minute; d += 15 * time.Second {
		at(d)
	}
	if _, err := s.Append(ctx, samples); err != nil {
		t.Fatal(err)
	}
	got, err := s.Increase(ctx, t0, t0.Add(resume+10*time.Minute), time.Minute, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got.Values {
		m := time.Duration(i) * time.Minute
		switch {
		case m == 0 || m == resume: // the first scrape has no base (after the gap: its rise is not counted)
			if v != 450 {
				t.Errorf("minute %d: %v, want 450 (the three rises after the minute's first scrape)", i, v)
			}
		case m == 10*time.Minute: // one scrape, at its start, before the gap
			if v != 150 {
				t.Errorf("minute %d: %v, want 150", i, v)
			}
		case m < 10*time.Minute, m > resume: // scraped throughout: 600 a minute
			if v != 600 {
				t.Errorf("minute %d: %v, want 600", i, v)
			}
		case m > 10*time.Minute && m < resume:
			if !math.IsNaN(v) {
				t.Errorf("minute %d (in the gap): %v, want no data", i, v)
			}
		}
	}
}

// TestAppendSkipsWhatTheTSDBRefuses: a sample older than its series'
// newest, or a second value at one timestamp, is refused by the TSDB; it
// is skipped and counted, and the rest of the batch is kept (it cost the
// whole scrape: every node's samples).
func TestAppendSkipsWhatTheTSDBRefuses(t *testing.T) {
	ctx := context.Background()
	s := open(t, t.TempDir(), store.Options{})
	defer s.Close()
	if _, err := s.Append(ctx, []store.Sample{counter("requests_total", t0.Add(time.Minute), 100, "pod", "a")}); err != nil {
		t.Fatal(err)
	}
	skipped, err := s.Append(ctx, []store.Sample{
		counter("requests_total", t0, 90, "pod", "a"),                     // older than pod a's newest
		counter("requests_total", t0.Add(time.Minute), 101, "pod", "a"),   // a second value at its newest time
		counter("requests_total", t0.Add(2*time.Minute), 160, "pod", "a"), // fine
		counter("requests_total", t0.Add(2*time.Minute), 7, "pod", "b"),   // fine
	})
	if err != nil || skipped != 2 {
		t.Fatalf("Append = %d skipped, %v; want 2, nil", skipped, err)
	}
	got, err := s.Increase(ctx, t0.Add(2*time.Minute), t0.Add(3*time.Minute), time.Minute, reqs)
	if err != nil {
		t.Fatal(err)
	}
	if got.Values[0] != 60 {
		t.Errorf("minute 2: %v, want 60 (pod a 100 → 160; pod b's first sample has no base)", got.Values[0])
	}
}
