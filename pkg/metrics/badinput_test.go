package metrics

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const goodVLLM = `# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="m"} 7
# TYPE vllm:request_success_total counter
vllm:request_success_total{model_name="m"} %d
`

// TestBadInput feeds one target each kind of bad input while a second,
// healthy target is scraped in the same cycle: the bad one is marked down
// (or its bad samples dropped) with a counted reason, the good one is
// unaffected, and the exporter keeps serving.
func TestBadInput(t *testing.T) {
	hugeHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		line := bytes.Repeat([]byte("x 1\n"), 1<<14) // 64 KiB
		for written := 0; written < 100<<20; written += len(line) {
			if _, err := w.Write(line); err != nil {
				return
			}
		}
	})
	hangHandler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	for _, tc := range []struct {
		name    string
		body    string
		handler http.Handler
		wantUp  float64
		reason  string
		// value of the bad target's waiting gauge when it stays up
		wantWaiting float64
		timeout     time.Duration
	}{
		{name: "garbage", body: "this is not { an exposition\n\x00\xff", wantUp: 0, reason: reasonParse},
		{name: "truncated OpenMetrics without EOF", body: "# TYPE a counter\na_total 1\n", wantUp: 0, reason: reasonParse},
		{name: "NaN and Inf values", body: "# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting{model_name=\"m\"} 3\nvllm:num_requests_running{model_name=\"m\"} NaN\nvllm:request_success_total{model_name=\"m\"} +Inf\n", wantUp: 1, reason: "invalid_value", wantWaiting: 3},
		{name: "duplicate series", body: "vllm:num_requests_waiting{model_name=\"m\"} 3\nvllm:num_requests_waiting{model_name=\"m\"} 9\n", wantUp: 1, reason: "duplicate_series", wantWaiting: 3},
		{name: "bucket without le", body: "vllm:e2e_request_latency_seconds_bucket{model_name=\"m\"} 3\n", wantUp: 0, reason: reasonParse},
		{name: "100 MB body", handler: hugeHandler, wantUp: 0, reason: reasonTooLarge},
		{name: "hanging target", handler: hangHandler, wantUp: 0, reason: reasonTimeout, timeout: 300 * time.Millisecond},
		{name: "HTTP 500", handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "boom", 500) }), wantUp: 0, reason: reasonStatus},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := tc.handler
			if h == nil {
				h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					ct := "text/plain; version=0.0.4"
					if strings.HasPrefix(tc.name, "truncated OpenMetrics") {
						ct = "application/openmetrics-text; version=1.0.0"
					}
					w.Header().Set("Content-Type", ct)
					_, _ = w.Write([]byte(tc.body))
				})
			}
			bad := httptest.NewServer(h)
			defer bad.Close()
			good := newBodyServer(t)
			good.set(fmt.Appendf(nil, goodVLLM, 100))
			clock := newFakeClock()
			// The 100 MB body is cut off at 1 MiB; the default limit is 32 MiB.
			e := newTestExporterWith(t, clock, func(c *Config) { c.Global.BodySizeLimitBytes = 1 << 20 },
				TargetConfig{Name: "bad", URL: bad.URL, Dialect: DialectVLLM, Timeout: cmp.Or(tc.timeout, 10*time.Second)},
				TargetConfig{Name: "good", URL: good.URL, Dialect: DialectVLLM},
			)
			e.Cycle(context.Background())
			clock.Advance(15 * time.Second)
			good.set(fmt.Appendf(nil, goodVLLM, 250))
			e.Cycle(context.Background())

			got := gatherValues(t, e) // fails the test if the exporter's output is invalid
			check := func(k string, want float64) {
				t.Helper()
				if v, ok := got[k]; !ok || v != want {
					t.Errorf("%s = %v (present %v), want %v", k, v, ok, want)
				}
			}
			check(`infercast_target_up{dialect="vllm",source="static",target="bad"}`, tc.wantUp)
			check(`infercast_target_up{dialect="vllm",source="static",target="good"}`, 1)
			check(`infercast_target_scrape_errors_total{reason="`+tc.reason+`",target="bad"}`, 2)
			check(`infercast_model_requests_per_second{model="m",window="1m"}`, 10)
			if tc.wantUp == 1 {
				check(`infercast_model_requests_waiting{model="m",target="bad"}`, tc.wantWaiting)
			} else if _, ok := got[`infercast_model_requests_waiting{model="m",target="bad"}`]; ok {
				t.Error("a failed target's gauges are still exported")
			}
		})
	}
}

func TestErrorsNeverCarryTheToken(t *testing.T) {
	tokFile := t.TempDir() + "/token"
	const secret = "s3cr3t-t0ken"
	if err := writeFile(tokFile, secret+"\n"); err != nil {
		t.Fatal(err)
	}
	var gotAuth string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotAuth = r.Header.Get("Authorization")
		http.Error(w, "denied: "+r.Header.Get("Authorization"), http.StatusForbidden)
	}))
	defer srv.Close()
	tgt := Target{Name: "x", URL: srv.URL, Dialect: vllmDialect(), BearerTokenFile: tokFile, Timeout: time.Second}
	var buf bytes.Buffer
	_, err := fetch(context.Background(), srv.Client(), &tgt, 1<<20, &buf)
	if gotAuth != "Bearer "+secret {
		t.Fatalf("server saw Authorization %q", gotAuth)
	}
	if err == nil || strings.Contains(err.Error(), secret) {
		t.Fatalf("err = %v; want an error without the token", err)
	}
	tgt.BearerTokenFile = tokFile + ".missing"
	if _, err := fetch(context.Background(), srv.Client(), &tgt, 1<<20, &buf); err == nil || reasonOf(err) != reasonCredential {
		t.Fatalf("missing token file: err = %v, want reason %s", err, reasonCredential)
	}
}

// A cycle cut short because the exporter is stopping is not the targets'
// failure: nothing is logged as failed, counted as a scrape error or
// published, and the targets keep the state of their last finished scrape.
// (A stopping demo logged every target's scrape as "timed out after 4s".)
func TestStoppingMidScrapeIsNotATargetFailure(t *testing.T) {
	var hang atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hang.Load() {
			<-r.Context().Done()
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		_, _ = fmt.Fprintf(w, goodVLLM, 100)
	}))
	defer srv.Close()
	var logs bytes.Buffer
	cfg := DefaultConfig()
	cfg.Targets = []TargetConfig{{Name: "m", URL: srv.URL, Dialect: DialectVLLM, Timeout: 10 * time.Second}}
	cfg.applyDefaults()
	clock := newFakeClock()
	e, err := New(cfg, Options{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e.Cycle(context.Background())
	hang.Store(true)
	clock.Advance(15 * time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	e.Cycle(ctx) // returns once the stop cuts the hanging scrape short
	got := gatherValues(t, e)
	if v := got[`infercast_target_up{dialect="vllm",source="static",target="m"}`]; v != 1 {
		t.Errorf("target up %v after a stop mid-scrape, want 1 (its last finished scrape)", v)
	}
	for k, v := range got {
		if strings.HasPrefix(k, "infercast_target_scrape_errors_total") && v != 0 {
			t.Errorf("%s = %v: a stop counted as the target's error", k, v)
		}
	}
	if strings.Contains(logs.String(), "scrape failed") {
		t.Errorf("a stop logged as a failed scrape:\n%s", logs.String())
	}
}

// TestUnreadBodyIsWarnedOnce: a target that answers with metrics none of
// which its dialect reads (here vLLM's, scraped as Triton) is up and
// exports nothing for a model — a wrong dialect looks like a healthy target
// without traffic. It is warned about once, not at every scrape, and a line
// says when its metrics are read again.
func TestUnreadBodyIsWarnedOnce(t *testing.T) {
	srv := newBodyServer(t)
	var logs bytes.Buffer
	cfg := DefaultConfig()
	cfg.Targets = []TargetConfig{{Name: "m", URL: srv.URL + "/metrics", Dialect: DialectTriton}}
	cfg.applyDefaults()
	clock := newFakeClock()
	e, err := New(cfg, Options{Now: clock.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	cycle := func(body string) {
		srv.set([]byte(body))
		e.Cycle(context.Background())
		clock.Advance(15 * time.Second)
	}
	vllm := fmt.Sprintf(goodVLLM, 100)
	for range 3 {
		cycle(vllm)
	}
	if n := strings.Count(logs.String(), "none of the names its dialect reads"); n != 1 {
		t.Fatalf("warned %d times over three unread scrapes, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "dialect=triton") {
		t.Errorf("the warning does not name the dialect:\n%s", logs.String())
	}
	if v := gatherValues(t, e)[`infercast_target_up{dialect="triton",source="static",target="m"}`]; v != 1 {
		t.Errorf("target up = %v, want 1: an unread body is not a failed scrape", v)
	}
	cycle("# TYPE nv_inference_pending_request_count gauge\nnv_inference_pending_request_count{model=\"resnet\",version=\"1\"} 3\n")
	cycle(vllm)
	if n := strings.Count(logs.String(), "none of the names its dialect reads"); n != 2 {
		t.Errorf("warned %d times, want twice (again after it was read in between):\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "metrics are read again"); n != 1 {
		t.Errorf("%d 'read again' lines, want 1:\n%s", n, logs.String())
	}
}
