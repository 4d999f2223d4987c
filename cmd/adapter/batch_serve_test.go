package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/pkg/batchctl"
)

// batchExporter serves what an infercast exporter exports for a Triton
// model "ranker" at 50 req/s whose average batch cycles through 2, 8 and
// 16 each second, each batch running 50 ms + 10 ms per request after 10 ms
// of queueing, arriving in clumps of 4 (the clump counter a gateway's
// mapping gives) — and the chat counter serve's planner reads.
func batchExporter(t *testing.T) *httptest.Server {
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		el := time.Since(start).Seconds()
		b := []float64{2, 8, 16}[int(el)%3]
		fmt.Fprintf(w, `# TYPE infercast_model_requests_total counter
infercast_model_requests_total{model="ranker"} %d
# TYPE infercast_model_request_clump_size_sum_total counter
infercast_model_request_clump_size_sum_total{model="ranker"} %d
# TYPE infercast_model_batch_size gauge
infercast_model_batch_size{model="ranker",target="triton-0"} %g
# TYPE infercast_model_request_latency_mean_seconds gauge
infercast_model_request_latency_mean_seconds{model="ranker",window="1m"} %g
# TYPE infercast_model_queue_time_mean_seconds gauge
infercast_model_queue_time_mean_seconds{model="ranker",window="1m"} 0.01
# TYPE infercast_model_request_latency_seconds summary
infercast_model_request_latency_seconds{model="ranker",window="1m",quantile="0.99"} 0.2
infercast_model_request_latency_seconds_sum{model="ranker",window="1m"} 10
infercast_model_request_latency_seconds_count{model="ranker",window="1m"} 100
# TYPE chat_requests_total counter
chat_requests_total{pod="a"} %d
`, int(50*el), int(4*50*el), b, 0.01+0.05+0.01*b, int(10*el))
	}))
	t.Cleanup(srv.Close)
	return srv
}

// tritonStub implements Triton's config and load endpoints for one model
// "ranker" that allows batches up to 32 and runs 8, and refuses a load as
// Triton does: above the model's maximum, or a config of another model.
type tritonStub struct {
	mu    sync.Mutex
	cfg   map[string]any
	loads []map[string]any
}

func newTritonStub(t *testing.T) (*tritonStub, *httptest.Server) {
	s := &tritonStub{cfg: map[string]any{"name": "ranker", "platform": "onnxruntime_onnx", "max_batch_size": 8,
		"dynamic_batching": map[string]any{"max_queue_delay_microseconds": 100}}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/models/ranker/config", func(w http.ResponseWriter, _ *http.Request) {
		s.mu.Lock()
		defer s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(s.cfg)
	})
	mux.HandleFunc("POST /v2/repository/models/ranker/load", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Parameters struct {
				Config string `json:"config"`
			} `json:"parameters"`
		}
		var cfg map[string]any
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || json.Unmarshal([]byte(req.Parameters.Config), &cfg) != nil {
			http.Error(w, `{"error":"failed to parse the config"}`, http.StatusBadRequest)
			return
		}
		if mbs, _ := cfg["max_batch_size"].(float64); cfg["name"] != "ranker" || mbs < 1 || mbs > 32 {
			http.Error(w, `{"error":"failed to load 'ranker': max_batch_size exceeds the maximum 32"}`, http.StatusBadRequest)
			return
		}
		s.mu.Lock()
		s.cfg = cfg
		s.loads = append(s.loads, cfg)
		s.mu.Unlock()
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return s, srv
}

func (s *tritonStub) maxBatch() (float64, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, _ := s.cfg["max_batch_size"].(float64)
	if n, ok := s.cfg["max_batch_size"].(int); ok {
		v = float64(n)
	}
	return v, len(s.loads)
}

// serve with a batch config tunes a (fake) Triton from the exporter's
// signals: it reads the model's config, learns the profile and the
// arrivals' clumps of 4, and reloads the model with a larger
// max_batch_size; the decision is on /metrics.
func TestServeBatchController(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	triton, tsrv := newTritonStub(t)
	bcfg := filepath.Join(dir, "batch.yaml")
	if err := os.WriteFile(bcfg, []byte(`models:
  - model: ranker
    slo: 500ms
    max_batch_size: 32
    interval: 1s
    actuator:
      kind: triton
      url: `+tsrv.URL+`
`), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := batchExporter(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	out := newLineWriter()
	done := make(chan error, 1)
	go func() {
		done <- dispatch(ctx, []string{"serve",
			"--config.file", pol,
			"--batch.config.file", bcfg,
			"--grpc.listen-address", "127.0.0.1:0",
			"--web.listen-address", "127.0.0.1:0",
			"--exporter.url", exp.URL + "/metrics",
			"--exporter.scrape-interval", "1s",
			"--storage.path", filepath.Join(dir, "data"),
			"--log.level", "warn",
		}, out, io.Discard)
		out.pw.Close()
	}()
	var web string
	re := regexp.MustCompile(`^adapter: metrics and health on (\S+)$`)
	for web == "" {
		select {
		case l, ok := <-out.lines:
			if !ok {
				t.Fatalf("serve exited early: %v", <-done)
			}
			if m := re.FindStringSubmatch(l); m != nil {
				web = m[1]
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not start")
		}
	}
	go func() { // drain the rest of stdout
		for range out.lines {
		}
	}()

	deadline := time.Now().Add(60 * time.Second)
	for {
		mbs, loads := triton.maxBatch()
		if loads > 0 {
			if mbs <= 8 || mbs > 32 {
				t.Fatalf("Triton reloaded with max_batch_size %g, want above the 8 it ran and within the model's 32", mbs)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch controller did not change Triton's config within 60 s")
		}
		time.Sleep(200 * time.Millisecond)
	}
	resp, err := http.Get(web + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if m := regexp.MustCompile(`(?m)^infercast_batch_arrival_clump_size\{model="ranker"\} (\S+)$`).FindStringSubmatch(string(body)); m == nil {
		t.Error("/metrics lacks infercast_batch_arrival_clump_size{model=\"ranker\"}")
	} else if c, err := strconv.ParseFloat(m[1], 64); err != nil || c < 3.5 || c > 4.5 {
		t.Errorf("learned clump size %s, want about 4 from the exporter's clump counter", m[1])
	}
	for _, want := range []string{
		`infercast_batch_changes_total{actuator="triton",model="ranker"} 1`,
		`infercast_batch_predicted_p99_seconds{model="ranker"}`,
		`infercast_batch_recommended_max_batch_size{model="ranker"}`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// A batch config with a typo, or without the exporter to read, is refused
// before anything starts, with an error naming the file, model and field.
func TestServeBatchConfigRefused(t *testing.T) {
	dir := t.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(pol, []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	bcfg := filepath.Join(dir, "batch.yaml")
	if err := os.WriteFile(bcfg, []byte("models:\n  - model: ranker\n    slo: 500ms\n    max_batchsize: 32\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	exp := fakeExporter(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"typo", []string{"--exporter.url", exp.URL + "/metrics"}, `batch config ` + bcfg + `: line 4: models[0] (ranker): unknown key "max_batchsize"`},
		{"no exporter", []string{"--prometheus.url", "http://127.0.0.1:1"}, "--batch.config.file needs --exporter.url"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"serve", "--config.file", pol, "--batch.config.file", bcfg,
				"--grpc.listen-address", "127.0.0.1:0", "--web.listen-address", "127.0.0.1:0",
				"--storage.path", filepath.Join(t.TempDir(), "data"), "--log.level", "error"}, tc.args...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err := dispatch(ctx, args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

// driftActuator is an actuator whose replicas drift: Reconcile answers
// from a script and records the knobs it was asked for.
type driftActuator struct {
	answers []struct {
		n   int
		err error
	}
	asked []batchctl.Knobs
}

func (a *driftActuator) Name() string                                        { return "drift" }
func (a *driftActuator) Limits() batchctl.Limits                             { return batchctl.Limits{} }
func (a *driftActuator) Apply(context.Context, string, batchctl.Knobs) error { return nil }
func (a *driftActuator) Reconcile(_ context.Context, _ string, k batchctl.Knobs) (int, error) {
	a.asked = append(a.asked, k)
	r := a.answers[len(a.asked)-1]
	return r.n, r.err
}

// TestBatchModelReconciles: serve reconciles the replicas to the knobs the
// controller applied, says when it reloaded some, and logs a failure when
// it starts and when it ends, not at every interval.
func TestBatchModelReconciles(t *testing.T) {
	act := &driftActuator{answers: []struct {
		n   int
		err error
	}{{1, nil}, {0, errors.New("replica 10.0.0.2:8000: refused")}, {0, errors.New("replica 10.0.0.2:8000: refused")}, {0, nil}, {0, nil}}}
	cfg := batchctl.DefaultConfig(250*time.Millisecond, 64)
	cfg.Registerer = prometheus.NewRegistry()
	ctl, err := batchctl.New(cfg, act)
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	m := &batchModel{name: "ranker", ctl: ctl, act: act, log: slog.New(slog.NewTextHandler(&logs, nil))}
	m.reconcile(context.Background(), act)
	if len(act.asked) != 0 {
		t.Fatalf("reconciled %v before the controller knew the server's knobs", act.asked)
	}
	k := batchctl.Knobs{MaxBatchSize: 16, MaxQueueDelay: 2 * time.Millisecond}
	ctl.SetApplied("ranker", k)
	for range 5 {
		m.reconcile(context.Background(), act)
	}
	for i, got := range act.asked {
		if got != k {
			t.Errorf("reconcile %d asked for %v, want the applied %v", i, got, k)
		}
	}
	out := logs.String()
	for what, want := range map[string]int{
		"applied to replicas that ran others":   1,
		"reconciling the replicas' batch knobs": 1, // two failures in a row: one line
		"reconciled again":                      1,
	} {
		if n := strings.Count(out, what); n != want {
			t.Errorf("%d lines with %q, want %d:\n%s", n, what, want, out)
		}
	}
}
