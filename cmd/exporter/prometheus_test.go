package main

import (
	"context"
	"fmt"
	"math"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/infercast/infercast/internal/fleet"
	"github.com/infercast/infercast/internal/testutil"
)

// TestThroughPrometheus runs a real Prometheus (2.42 from Debian, or any
// later one) on 127.0.0.1 that scrapes the exporter every second; the
// exporter scrapes simulated vLLM and Triton servers. Percentiles, rates,
// batch sizes and the backlog are read back through Prometheus's HTTP API
// and checked against what the fleet was driven with and against PromQL's
// own histogram_quantile/increase over the same servers, which Prometheus
// also scrapes directly as the reference.
func TestThroughPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts Prometheus and runs for about a minute")
	}
	promBin := testutil.Binary(t, "prometheus")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fc := fleet.Config{Seed: 7, Servers: []fleet.ServerConfig{
		{Dialect: fleet.VLLM, Model: "chat", Replicas: 2, Mu: 4, MaxBatch: 32, Rate: 5},
		{Dialect: fleet.Triton, Model: "ranker", Replicas: 2, Mu: 200, MaxBatch: 16, Rate: 240},
		{Dialect: fleet.RayServe, Model: "classify", Replicas: 2, Mu: 50, MaxBatch: 8, Rate: 60},
	}}
	f, err := fleet.New(fc, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(ctx); err != nil {
		t.Fatal(err)
	}
	fleetDone := make(chan error, 1)
	go func() { fleetDone <- f.Run(ctx, 50*time.Millisecond) }()
	defer func() {
		cancel()
		<-fleetDone
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		_ = f.Close(sctx)
	}()
	urls := map[string]string{}
	for _, tg := range f.Targets() {
		urls[tg.Model] = tg.URL
	}

	cfg := fmt.Sprintf(`global: {scrape_interval: 1s, scrape_timeout: 1s, windows: [10s, 30s]}
targets:
  - {name: chat-0, url: %q, dialect: vllm, max_batch_size: 32}
  - {name: ranker-0, url: %q, dialect: triton, max_batch_size: 16}
  - {name: classify-0, url: %q, dialect: rayserve}
`, urls["chat"], urls["ranker"], urls["classify"])
	r := startRun(t, options{configFile: writeConfig(t, cfg)})
	r.waitReady(t)

	promAddr := freeAddr(t)
	dir := t.TempDir()
	hostport := func(u string) string { return strings.TrimSuffix(strings.TrimPrefix(u, "http://"), "/metrics") }
	promCfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: exporter
    static_configs: [{targets: [%q]}]
  - job_name: reference
    static_configs: [{targets: [%q, %q]}]
`, r.addr, hostport(urls["chat"]), hostport(urls["ranker"]))
	if err := os.WriteFile(filepath.Join(dir, "prometheus.yml"), []byte(promCfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promBin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+promAddr,
		"--log.level=warn")
	out, err := os.Create(filepath.Join(dir, "prometheus.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			b, _ := os.ReadFile(filepath.Join(dir, "prometheus.log"))
			t.Logf("prometheus log:\n%s", b)
		}
	}()
	client, err := api.NewClient(api.Config{Address: "http://" + promAddr})
	if err != nil {
		t.Fatal(err)
	}
	prom := promv1.NewAPI(client)
	waitPromReady(t, promAddr)

	// query returns the single value of an instant query at ts.
	query := func(q string, ts time.Time) float64 {
		t.Helper()
		qctx, qcancel := context.WithTimeout(ctx, 10*time.Second)
		defer qcancel()
		v, warns, _, err := prom.Query(qctx, q, ts)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		if len(warns) > 0 {
			t.Logf("%s: warnings %v", q, warns)
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 1 {
			t.Fatalf("%s: want one sample, got %v", q, v)
		}
		return float64(vec[0].Value)
	}
	// Wait until Prometheus holds 35 s of the exporter's full 30 s windows.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		qctx, qcancel := context.WithTimeout(ctx, 5*time.Second)
		v, _, _, err := prom.Query(qctx, `count_over_time(infercast_model_requests_per_second{model="chat",window="30s"}[40s])`, time.Now())
		qcancel()
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) == 1 && vec[0].Value >= 35 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has no 35 s of exporter windows after 2 minutes (err %v, value %v)", err, v)
		}
		time.Sleep(time.Second)
	}

	within := func(what string, got, want, rel float64) {
		t.Helper()
		if math.IsNaN(got) || math.Abs(got-want) > rel*math.Abs(want) {
			t.Errorf("%s = %.4g, want %.4g ± %.0f%%", what, got, want, rel*100)
		} else {
			t.Logf("%s = %.4g (reference %.4g)", what, got, want)
		}
	}
	// Evaluate a couple of seconds back so both jobs have their samples.
	at := time.Now().Add(-2 * time.Second)

	// Request rates against the arrival rates the fleet was driven with
	// (below capacity, so completions match arrivals; Poisson noise over
	// 30 s is about 8% for chat, 1% for ranker).
	within("chat requests/s", query(`infercast_model_requests_per_second{model="chat",window="30s"}`, at), 5, 0.35)
	within("ranker requests/s", query(`infercast_model_requests_per_second{model="ranker",window="30s"}`, at), 240, 0.1)
	// Ray Serve exports its request counter twice (and a deprecated gauge
	// of the same count): once counted.
	within("classify requests/s", query(`infercast_model_requests_per_second{model="classify",window="30s"}`, at), 60, 0.1)

	// Percentiles against PromQL over the same server's raw histogram.
	for _, q := range []string{"0.5", "0.9", "0.99"} {
		got := query(`infercast_model_request_latency_seconds{model="chat",window="30s",quantile="`+q+`"}`, at)
		ref := query(`histogram_quantile(`+q+`, sum by (le) (increase(vllm:e2e_request_latency_seconds_bucket{job="reference",model_name="chat"}[30s])))`, at)
		within("chat e2e p"+q, got, ref, 0.25)
		got = query(`infercast_model_time_to_first_token_seconds{model="chat",window="30s",quantile="`+q+`"}`, at)
		ref = query(`histogram_quantile(`+q+`, sum by (le) (increase(vllm:time_to_first_token_seconds_bucket{job="reference",model_name="chat"}[30s])))`, at)
		within("chat ttft p"+q, got, ref, 0.25)
	}
	// Triton: mean latency from µs counters, average batch from counts.
	within("ranker mean latency",
		query(`infercast_model_request_latency_mean_seconds{model="ranker",window="30s"}`, at),
		query(`sum(increase(nv_inference_request_duration_us{job="reference",model="ranker"}[30s])) / sum(increase(nv_inference_request_success{job="reference",model="ranker"}[30s])) / 1e6`, at), 0.25)
	within("ranker batch size",
		query(`infercast_model_batch_size{model="ranker"}`, at),
		query(`sum(increase(nv_inference_count{job="reference",model="ranker"}[10s])) / sum(increase(nv_inference_exec_count{job="reference",model="ranker"}[10s]))`, at), 0.25)

	// Overload chat (capacity 2 replicas x 4/s = 8/s) so a backlog builds.
	if err := f.SetArrivalRate("chat", 24); err != nil {
		t.Fatal(err)
	}
	time.Sleep(12 * time.Second)
	at = time.Now().Add(-2 * time.Second)
	backlog := query(`infercast_model_requests_waiting{model="chat"}`, at)
	within("chat backlog", backlog, query(`vllm:num_requests_waiting{job="reference",model_name="chat"}`, at), 0.25)
	st, err := f.State("chat")
	if err != nil {
		t.Fatal(err)
	}
	if backlog < 50 || float64(st.Waiting) < backlog {
		t.Errorf("backlog %v read through Prometheus; the fleet now holds %d waiting (growing ~16/s): want ≥ 50 and ≤ now", backlog, st.Waiting)
	}
	// Overloaded, chat completes at its capacity of 8/s: the backlog drains
	// in backlog/8 s.
	within("chat drain time", query(`infercast_model_queue_drain_seconds{model="chat"}`, at), backlog/8, 0.35)
}

func freeAddr(t *testing.T) string {
	t.Helper()
	var lc net.ListenConfig
	ln, err := lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

func waitPromReady(t *testing.T, addr string) {
	t.Helper()
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := c.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatal("prometheus not ready within 60s")
}
