package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/prometheus/model/labels"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/predict/store"
)

const servePolicy = `workloads:
  - name: chat
    demand:
      series: chat_requests_total
    mu: 2
    latency_slo: 2s
    cold_start: 30s
    decision_interval: 1s
    forecast_step: 1s
    min_replicas: 1
    max_replicas: 50
    tiers:
      on_demand:
        price_per_hour: 4
      spot:
        price_per_hour: 1.4
        advisor_band: "<5%"
        notice: 120s
        failure_domains: 3
`

// fakeExporter serves a counter that grows by 10 requests per scrape-ish,
// as an infercast exporter's /metrics would.
func fakeExporter(t *testing.T) *httptest.Server {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		v := n.Add(10)
		fmt.Fprintf(w, "# TYPE chat_requests_total counter\nchat_requests_total{pod=\"a\"} %d\n", v)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// lineWriter collects the command's stdout and hands each line to a channel.
type lineWriter struct {
	mu    sync.Mutex
	pw    *io.PipeWriter
	lines chan string
}

func newLineWriter() *lineWriter {
	pr, pw := io.Pipe()
	lw := &lineWriter{pw: pw, lines: make(chan string, 16)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lw.lines <- sc.Text()
		}
		close(lw.lines)
	}()
	return lw
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.pw.Write(b)
}

func TestServe(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := fakeExporter(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- dispatch(ctx, []string{ // no subcommand: serve is the default
			"--config.file", pol,
			"--grpc.listen-address", "127.0.0.1:0",
			"--web.listen-address", "127.0.0.1:0",
			"--custom-metrics.listen-address", "127.0.0.1:0",
			"--custom-metrics.authentication", "none",
			"--exporter.url", exp.URL + "/metrics",
			"--exporter.scrape-interval", "200ms",
			"--storage.path", filepath.Join(dir, "data"),
			"--log.level", "warn",
		}, out, io.Discard)
		out.pw.Close()
	}()

	addr := map[string]string{}
	re := regexp.MustCompile(`^adapter: (.*) on (?:https?://)?(\S+)$`)
	for len(addr) < 3 {
		select {
		case l, ok := <-out.lines:
			if !ok {
				t.Fatalf("serve exited early: %v", <-done)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				addr[strings.Fields(m[1])[0]] = m[2]
			}
		case <-time.After(60 * time.Second):
			t.Fatalf("addresses not printed; got %v", addr)
		}
	}

	conn, err := grpc.NewClient(addr["KEDA"], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewExternalScalerClient(conn)
	ref := &pb.ScaledObjectRef{Name: "chat", Namespace: "default",
		ScalerMetadata: map[string]string{"workload": "chat", "tier": "on-demand"}}

	// The first plan arrives within a few decision intervals.
	deadline := time.Now().Add(60 * time.Second)
	var vals *pb.GetMetricsResponse
	for {
		rctx, rc := context.WithTimeout(ctx, 5*time.Second)
		vals, err = client.GetMetrics(rctx, &pb.GetMetricsRequest{ScaledObjectRef: ref, MetricName: "infercast-chat-on-demand"})
		rc()
		if err == nil {
			break
		}
		if status.Code(err) != codes.Unavailable || time.Now().After(deadline) {
			t.Fatalf("GetMetrics: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if v := vals.MetricValues[0]; v.MetricName != "infercast-chat-on-demand" || v.MetricValueFloat < 0 {
		t.Fatalf("on-demand value = %v", v)
	}
	spotRef := &pb.ScaledObjectRef{Name: "chat-spot", Namespace: "default",
		ScalerMetadata: map[string]string{"workload": "chat", "tier": "spot"}}
	spot, err := client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: spotRef, MetricName: "infercast-chat-spot"})
	if err != nil {
		t.Fatal(err)
	}
	// min_replicas 1: the two tiers together run at least one replica.
	if sum := vals.MetricValues[0].MetricValueFloat + spot.MetricValues[0].MetricValueFloat; sum < 1 {
		t.Fatalf("on-demand + spot = %v; want >= 1 (min_replicas 1)", sum)
	}
	if _, err := client.IsActive(ctx, ref); err != nil {
		t.Fatalf("IsActive: %v", err)
	}
	_, err = client.GetMetricSpec(ctx, &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"workload": "nope", "tier": "spot"}})
	if status.Code(err) != codes.InvalidArgument {
		t.Fatalf("unknown workload: %v", err)
	}

	web := "http://" + addr["metrics"]
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 200} {
		resp, err := http.Get(web + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	resp, err := http.Get(web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`infercast_scaler_requests_total{code="OK",method="GetMetrics"}`, "infercast_plan_"} {
		if !strings.Contains(string(body), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// The custom metrics API answers for Deployment chat-spot.
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: insecureTLS()}}
	resp, err = hc.Get("https://" + addr["custom"] + "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/chat-spot/infercast_desired_replicas")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"name":"chat-spot"`) {
		t.Fatalf("custom metrics: %d %s", resp.StatusCode, body)
	}

	// POST /-/reload: a bad file is refused and the policy kept; a good one
	// adds a workload, which KEDA's calls accept at once.
	if err := os.WriteFile(pol, []byte("workloads: [{name: x, bogus: 1}]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(web+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("reload of a bad policy: %d", resp.StatusCode)
	}
	embed := &pb.ScaledObjectRef{ScalerMetadata: map[string]string{"workload": "embed", "tier": "on-demand"}}
	if _, err := client.GetMetricSpec(ctx, embed); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("embed before reload: %v", err)
	}
	more := servePolicy + strings.ReplaceAll(strings.SplitN(servePolicy, "\n", 2)[1], "name: chat", "name: embed")
	if err := os.WriteFile(pol, []byte(more), 0o600); err != nil {
		t.Fatal(err)
	}
	resp, err = http.Post(web+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload: %d", resp.StatusCode)
	}
	if _, err := client.GetMetricSpec(ctx, embed); err != nil {
		t.Fatalf("embed after reload: %v", err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Fatalf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

func TestServeFlags(t *testing.T) {
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"no policy":  {[]string{"--exporter.url", "http://x"}, "--config.file is required"},
		"no source":  {[]string{"--config.file", "p.yaml"}, "--prometheus.url, or --exporter.url"},
		"bad auth":   {[]string{"--config.file", "p.yaml", "--exporter.url", "x", "--custom-metrics.authentication", "off"}, "want delegated or none"},
		"stray arg":  {[]string{"--config.file", "p.yaml", "extra"}, "unexpected arguments"},
		"bad policy": {[]string{"--config.file", "/nonexistent/p.yaml", "--exporter.url", "x"}, "nonexistent"},
		"bad loglvl": {[]string{"--config.file", "p.yaml", "--exporter.url", "x", "--log.level", "loud"}, "--log.level"},
	} {
		t.Run(name, func(t *testing.T) {
			err := runServe(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v; want %q", err, tc.want)
			}
		})
	}
}

func insecureTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} } // self-signed test server

// TestServeStoresSeriesAddedByReload: the embedded store keeps the series
// of the current policy, so a workload a reload adds starts being stored
// at the next scrape, without a restart.
func TestServeStoresSeriesAddedByReload(t *testing.T) {
	var n atomic.Int64
	exp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		v := n.Add(10)
		fmt.Fprintf(w, "# TYPE chat_requests_total counter\nchat_requests_total{pod=\"a\"} %d\n", v)
		fmt.Fprintf(w, "# TYPE embed_requests_total counter\nembed_requests_total{pod=\"b\"} %d\n", 2*v)
	}))
	t.Cleanup(exp.Close)
	dir := t.TempDir()
	st, err := store.Open(store.Options{Dir: filepath.Join(dir, "store")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := capacity.OpenPolicyFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	sc, err := newPolicyScraper(st, pol, store.ScraperConfig{URL: exp.URL, Interval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	t1 := time.Now().Truncate(time.Minute).Add(-10 * time.Minute)
	scrape := func(at time.Time, want int) {
		t.Helper()
		got, err := sc.scrapeOnce(ctx, at)
		if err != nil || got != want {
			t.Fatalf("scrape at %v: %d samples, %v; want %d", at, got, err, want)
		}
	}
	embed := labels.MustNewMatcher(labels.MatchEqual, labels.MetricName, "embed_requests_total")
	scrape(t1, 1) // chat's series only
	scrape(t1.Add(time.Minute), 1)
	if _, err := st.Increase(ctx, t1, t1.Add(5*time.Minute), time.Minute, embed); !errors.Is(err, store.ErrNoSeries) {
		t.Fatalf("embed stored before the reload that adds it: %v", err)
	}

	added := servePolicy + strings.Replace(strings.Replace(strings.TrimPrefix(servePolicy, "workloads:\n"),
		"name: chat", "name: embed", 1), "series: chat_requests_total", "series: embed_requests_total{pod=\"b\"}", 1)
	if err := os.WriteFile(path, []byte(added), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := pol.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	scrape(t1.Add(2*time.Minute), 2) // chat's and embed's
	scrape(t1.Add(3*time.Minute), 2)
	s, err := st.Increase(ctx, t1, t1.Add(5*time.Minute), time.Minute, embed)
	if err != nil {
		t.Fatalf("embed after the reload: %v", err)
	}
	// 30 → 40 (×2) between the scrapes after the reload: 20 in the 4th minute.
	if got := s.Values[3]; got != 20 {
		t.Fatalf("embed's increase in the minute after the reload = %v, want 20 (series %v)", got, s.Values)
	}
}
