package history_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/predict"
	"github.com/infercast/infercast/pkg/predict/history"
)

// promWithTrace backfills the first days of nasa-1995-07 into a real
// Prometheus (promtool tsdb create-blocks-from openmetrics), starts it on
// 127.0.0.1 and returns its URL and the trace. Each interval's count is
// written at the end of its interval, where a scrape would have seen it.
// A second series under the same name lets tests ask for several series.
func promWithTrace(t *testing.T, days int) (string, predict.Series) {
	t.Helper()
	prom := testutil.Binary(t, "prometheus")
	promtool := testutil.Binary(t, "promtool")
	full, err := history.LoadCSV(filepath.Join(testutil.SharedDir(t), "traces", "nasa-1995-07.csv"))
	if err != nil {
		t.Fatal(err)
	}
	s := predict.Series{Start: full.Start, Step: full.Step, Values: full.Values[:days*1440]}

	dir := t.TempDir()
	om := filepath.Join(dir, "trace.om")
	f, err := os.Create(om)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintln(w, "# HELP trace_requests Requests per minute of a replayed trace.")
	fmt.Fprintln(w, "# TYPE trace_requests gauge")
	for _, name := range []string{"nasa", "double"} {
		for i, v := range s.Values {
			end := s.Start.Add(time.Duration(i+1) * s.Step).Unix()
			if name == "double" {
				v *= 2
			}
			fmt.Fprintf(w, "trace_requests{trace=%q} %v %d\n", name, v, end)
		}
	}
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	data := filepath.Join(dir, "data")
	if out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", om, data).CombinedOutput(); err != nil {
		t.Fatalf("promtool: %v\n%s", err, out)
	}
	cfg := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte("global:\n  scrape_interval: 1m\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, prom, "--config.file="+cfg, "--storage.tsdb.path="+data,
		"--storage.tsdb.retention.time=100y", "--web.listen-address="+addr)
	logs := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
	})
	base := "http://" + addr
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(base + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 30s: %v\n%s", err, logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return base, s
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func TestPrometheusSource(t *testing.T) {
	base, trace := promWithTrace(t, 8) // 11,520 minutes: over the 11,000-point limit
	ctx := context.Background()
	end := trace.End()

	t.Run("long range is chunked and exact", func(t *testing.T) {
		for _, chunk := range []int{0, 997} { // default chunks, and many small ones
			p, err := history.NewPrometheus(history.PrometheusConfig{Address: base, ChunkPoints: chunk})
			if err != nil {
				t.Fatal(err)
			}
			s, err := p.Series(ctx, `trace_requests{trace="nasa"}`, trace.Start, end, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if !s.Start.Equal(trace.Start) || s.Step != time.Minute || len(s.Values) != len(trace.Values) {
				t.Fatalf("chunk %d: got start %v step %v len %d, want %v 1m %d", chunk, s.Start, s.Step, len(s.Values), trace.Start, len(trace.Values))
			}
			for i := range s.Values {
				if s.Values[i] != trace.Values[i] {
					t.Fatalf("chunk %d: interval %d: %v, want %v", chunk, i, s.Values[i], trace.Values[i])
				}
			}
		}
	})

	p, err := history.NewPrometheus(history.PrometheusConfig{Address: base, Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("range beyond the data is NaN", func(t *testing.T) {
		var src history.Source = history.Query{Prometheus: p, PromQL: `trace_requests{trace="nasa"}`}
		s, err := src.Series(ctx, end.Add(-time.Hour), end.Add(time.Hour), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		// Prometheus's 5-minute lookback repeats the last sample a little
		// past the end; after that there is no data.
		if v := s.Values[len(s.Values)-1]; !math.IsNaN(v) {
			t.Errorf("last interval %v, want NaN (no data)", v)
		}
		if v := s.Values[59]; v != trace.Values[len(trace.Values)-1] {
			t.Errorf("interval 59 %v, want the trace's last %v", v, trace.Values[len(trace.Values)-1])
		}
	})
	for _, tc := range []struct {
		name, query string
		want        error
		text        string
	}{
		{"several series", `trace_requests`, history.ErrManySeries, `trace="double"`},
		{"no series", `trace_requests{trace="none"}`, history.ErrNoSeries, `none`},
		{"bad query", `sum(trace_requests`, nil, "bad_data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Series(ctx, tc.query, trace.Start, trace.Start.Add(time.Hour), time.Minute)
			if err == nil {
				t.Fatal("want an error")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("err %q does not mention %q", err, tc.text)
			}
		})
	}

	t.Run("transient failures are retried", func(t *testing.T) {
		target, _ := url.Parse(base)
		proxy := httputil.NewSingleHostReverseProxy(target)
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if calls.Add(1) <= 2 {
				http.Error(w, "overloaded", http.StatusServiceUnavailable)
				return
			}
			proxy.ServeHTTP(w, r)
		}))
		defer srv.Close()
		p, err := history.NewPrometheus(history.PrometheusConfig{Address: srv.URL, Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		s, err := p.Series(ctx, `trace_requests{trace="nasa"}`, trace.Start, trace.Start.Add(time.Hour), time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if calls.Load() != 3 || s.Values[0] != trace.Values[0] {
			t.Errorf("%d calls, first value %v; want 3 calls and %v", calls.Load(), s.Values[0], trace.Values[0])
		}
		// A bad query is not retried.
		calls.Store(10)
		if _, err := p.Series(ctx, `sum(`, trace.Start, trace.Start.Add(time.Hour), time.Minute); err == nil {
			t.Fatal("want an error")
		}
		if calls.Load() != 11 {
			t.Errorf("bad query made %d calls, want 1", calls.Load()-10)
		}
	})

	t.Run("timeout and give up", func(t *testing.T) {
		var calls atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			calls.Add(1)
			select {
			case <-r.Context().Done():
			case <-time.After(time.Second):
			}
		}))
		defer srv.Close()
		p, err := history.NewPrometheus(history.PrometheusConfig{Address: srv.URL, Timeout: 50 * time.Millisecond, Retries: 2, Backoff: time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p.Series(ctx, `up`, trace.Start, trace.Start.Add(time.Hour), time.Minute)
		if err == nil || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err %v, want a deadline error", err)
		}
		if calls.Load() != 3 {
			t.Errorf("%d calls, want 3 (1 + 2 retries)", calls.Load())
		}
	})
}

// TestPrometheusValuesAndAlignment: values no request count can have
// (negative, +Inf from a ratio over zero, NaN) are missing, not learnt; and
// the range starts at a multiple of the step since the epoch, as query
// frontends align it, also for a step (7m) that does not divide a day.
func TestPrometheusValuesAndAlignment(t *testing.T) {
	const step = 7 * time.Minute
	var gotStart atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		gotStart.Store(r.Form.Get("start"))
		start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		ts := func(i int) float64 { return start + float64(i)*step.Seconds() }
		fmt.Fprintf(w, `{"status":"success","data":{"resultType":"matrix","result":[{"metric":{},"values":[[%.3f,"5"],[%.3f,"+Inf"],[%.3f,"-3"],[%.3f,"NaN"],[%.3f,"7"]]}]}}`,
			ts(0), ts(1), ts(2), ts(3), ts(4))
	}))
	defer srv.Close()
	p, err := history.NewPrometheus(history.PrometheusConfig{Address: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	from := time.Date(2026, 3, 2, 10, 3, 0, 0, time.UTC)
	s, err := p.Series(context.Background(), `sum(rate(x[7m]))`, from, from.Add(5*step), step)
	if err != nil {
		t.Fatal(err)
	}
	if ms := s.Start.UnixMilli(); ms%step.Milliseconds() != 0 || s.Start.After(from) || from.Sub(s.Start) >= step {
		t.Errorf("series starts at %s, want the last multiple of 7m since the epoch at or before %s", s.Start, from)
	}
	first, _ := strconv.ParseFloat(gotStart.Load().(string), 64)
	if int64(first*1000)%step.Milliseconds() != 0 {
		t.Errorf("range query starts at %v, not on the epoch's 7m grid", first)
	}
	want := []float64{5, math.NaN(), math.NaN(), math.NaN(), 7}
	for i, w := range want {
		if v := s.Values[i]; v != w && !(math.IsNaN(v) && math.IsNaN(w)) {
			t.Errorf("value %d = %v, want %v (all %v)", i, v, w, s.Values)
		}
	}
}

// A Thanos Query with a store down answers what the other stores hold, and
// a warning, unless asked for whole answers only (partial_response=false);
// a history missing a store's share would forecast too little, so the
// source asks, and the query fails instead — by POST and by the GET
// fallback (for a server that refuses POST) alike.
func TestPrometheusAsksForWholeAnswers(t *testing.T) {
	for _, refusePost := range []bool{false, true} {
		t.Run(fmt.Sprintf("refuse POST %v", refusePost), func(t *testing.T) {
			var asked atomic.Value
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if refusePost && r.Method == http.MethodPost {
					http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
					return
				}
				if err := r.ParseForm(); err != nil {
					t.Error(err)
				}
				asked.Store(r.Method + " " + r.Form.Get("partial_response"))
				if r.Form.Get("partial_response") == "false" {
					// What Thanos answers (its query API maps an error
					// that is not promql.ErrStorage to execution, 422).
					w.Header().Set("Content-Type", "application/json")
					w.WriteHeader(http.StatusUnprocessableEntity)
					fmt.Fprint(w, `{"status":"error","errorType":"execution","error":"expanding series: receive series from store-b: connection refused"}`)
					return
				}
				start, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
				fmt.Fprintf(w, `{"status":"success","warnings":["receive series from store-b: connection refused"],"data":{"resultType":"matrix","result":[{"metric":{},"values":[[%.3f,"5"]]}]}}`, start)
			}))
			defer srv.Close()
			p, err := history.NewPrometheus(history.PrometheusConfig{Address: srv.URL, Retries: 1, Backoff: time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			from := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
			s, err := p.Series(context.Background(), `sum(rate(x[5m]))`, from, from.Add(time.Hour), time.Minute)
			if err == nil {
				t.Fatalf("a partial answer was taken: %v", s.Values[:3])
			}
			want := "GET false"
			if !refusePost {
				want = "POST false"
			}
			if got, _ := asked.Load().(string); got != want {
				t.Errorf("last request %q, want %q", got, want)
			}
			if !strings.Contains(err.Error(), "store-b") {
				t.Errorf("err %v does not say why", err)
			}
		})
	}
}
