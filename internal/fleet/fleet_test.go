package fleet

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var epoch = time.Unix(1_800_000_000, 0)

func newFleet(t *testing.T, cfg Config) *Fleet {
	t.Helper()
	if cfg.Start.IsZero() {
		cfg.Start = epoch
	}
	f, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := f.Close(ctx); err != nil {
			t.Error(err)
		}
	})
	return f
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// scrape fetches and parses one target with the Prometheus text parser.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(pmodel.LegacyValidation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(get(t, url)))
	if err != nil {
		t.Fatalf("parse %s: %v", url, err)
	}
	return mfs
}

func target(t *testing.T, f *Fleet, model string) Target {
	t.Helper()
	for _, tg := range f.Targets() {
		if tg.Model == model {
			return tg
		}
	}
	t.Fatalf("no target for model %q", model)
	return Target{}
}

// value sums a family's samples (counter, gauge or histogram count).
func value(t *testing.T, mfs map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("family %q missing", name)
	}
	sum := 0.0
	for _, m := range mf.GetMetric() {
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum
}

func TestDialectsExposeRealNames(t *testing.T) {
	// Names and labels from each server's source or documentation.
	want := map[Dialect]map[string][]string{
		VLLM: {
			"vllm:num_requests_running": {"model_name", "engine"}, "vllm:num_requests_waiting": {"model_name"},
			"vllm:kv_cache_usage_perc": {"model_name"}, "vllm:e2e_request_latency_seconds": {"model_name"},
			"vllm:time_to_first_token_seconds": {"model_name"}, "vllm:inter_token_latency_seconds": {"model_name"},
			"vllm:request_queue_time_seconds": {"model_name"}, "vllm:request_success_total": {"model_name", "finished_reason"},
			"vllm:prompt_tokens_total": {"model_name"}, "vllm:generation_tokens_total": {"model_name"},
			"process_start_time_seconds": nil,
		},
		VLLMLegacy: {
			"vllm:gpu_cache_usage_perc": {"model_name"}, "vllm:time_per_output_token_seconds": {"model_name"},
			"vllm:num_requests_running": {"model_name"}, "vllm:e2e_request_latency_seconds": {"model_name"},
		},
		Triton: {
			"nv_inference_request_success": {"model", "version"}, "nv_inference_count": {"model", "version"},
			"nv_inference_exec_count": {"model", "version"}, "nv_inference_queue_duration_us": {"model", "version"},
			"nv_inference_compute_infer_duration_us": {"model", "version"}, "nv_inference_request_duration_us": {"model", "version"},
			"nv_inference_pending_request_count": {"model", "version"}, "nv_inference_request_failure": {"model", "version", "reason"},
		},
		TGI: {
			"tgi_request_count": nil, "tgi_request_success": nil, "tgi_request_duration": nil,
			"tgi_request_queue_duration": nil, "tgi_request_mean_time_per_token_duration": nil,
			"tgi_queue_size": nil, "tgi_batch_current_size": nil, "tgi_batch_next_size": nil,
		},
		SGLang: {
			"sglang:num_running_reqs": {"model_name"}, "sglang:num_queue_reqs": {"model_name"},
			"sglang:token_usage": {"model_name"}, "sglang:time_to_first_token_seconds": {"model_name"},
			"sglang:e2e_request_latency_seconds": {"model_name"}, "sglang:inter_token_latency_seconds": {"model_name"},
			"sglang:queue_time_seconds": {"model_name"}, "sglang:num_requests_total": {"model_name"},
		},
		RayServe: {
			"ray_serve_deployment_request_counter_total": {"deployment", "replica", "route", "application"},
			// Ray ≥ 2.10's deprecated gauge of the same count.
			"ray_serve_deployment_request_counter":       {"deployment", "replica", "route", "application"},
			"ray_serve_deployment_processing_latency_ms": {"deployment", "replica", "route", "application"},
			"ray_serve_replica_processing_queries":       {"deployment", "replica", "application"},
			"ray_serve_deployment_queued_queries":        {"deployment", "application"},
			"ray_serve_num_router_requests_total":        {"deployment", "route", "application"},
			"ray_serve_http_request_latency_ms":          {"route", "application"},
		},
		KServe: {
			"revision_request_count":         {"revision_name", "pod_name", "response_code", "namespace_name"},
			"revision_request_latencies":     {"revision_name", "pod_name"},
			"revision_app_request_count":     {"revision_name"},
			"revision_app_request_latencies": {"revision_name"},
			"revision_queue_depth":           {"revision_name"},
		},
	}
	f := newFleet(t, Default())
	f.Advance(2 * time.Minute)
	seen := map[Dialect]bool{}
	for _, tg := range f.Targets() {
		seen[tg.Dialect] = true
		mfs := scrape(t, tg.URL)
		for name, labels := range want[tg.Dialect] {
			mf, ok := mfs[name]
			if !ok {
				t.Errorf("%s (%s): family %q missing", tg.Name, tg.Dialect, name)
				continue
			}
			if len(mf.GetMetric()) == 0 {
				t.Errorf("%s: family %q has no series", tg.Name, name)
				continue
			}
			have := map[string]string{}
			for _, lp := range mf.GetMetric()[0].GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for _, l := range labels {
				if _, ok := have[l]; !ok {
					t.Errorf("%s: %q lacks label %q (has %v)", tg.Name, name, l, have)
				}
			}
			if v, ok := have["model_name"]; ok && v != tg.Model {
				t.Errorf("%s: %q model_name=%q, want %q", tg.Name, name, v, tg.Model)
			}
		}
	}
	for _, d := range Dialects() {
		if !seen[d] {
			t.Errorf("Default() has no %s server", d)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	ok := ServerConfig{Dialect: VLLM, Model: "m", Replicas: 1, Mu: 1, MaxBatch: 1}
	with := func(mod func(*ServerConfig)) Config {
		s := ok
		mod(&s)
		return Config{Servers: []ServerConfig{s}}
	}
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty", Config{}, "no servers"},
		{"no model", with(func(s *ServerConfig) { s.Model = "" }), "model is required"},
		{"dialect", with(func(s *ServerConfig) { s.Dialect = "bento" }), `unknown dialect "bento"`},
		{"replicas", with(func(s *ServerConfig) { s.Replicas = -1 }), "replicas must be >= 0"},
		{"mu", with(func(s *ServerConfig) { s.Mu = 0 }), "mu must be > 0"},
		{"batch", with(func(s *ServerConfig) { s.MaxBatch = 0 }), "max_batch must be >= 1"},
		{"rate", with(func(s *ServerConfig) { s.Rate = -2 }), "rate must be >= 0"},
		{"dup model", Config{Servers: []ServerConfig{ok, ok}}, `servers[1] (model "m"): duplicate model`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	good := "seed: 7\nservers:\n- dialect: triton\n  model: r\n  replicas: 2\n  mu: 10\n  max_batch: 4\n  rate: 3\n"
	c, err := ParseConfig(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	if c.Seed != 7 || len(c.Servers) != 1 || c.Servers[0].Dialect != Triton || c.Servers[0].MaxBatch != 4 {
		t.Fatalf("parsed %+v", c)
	}
	_, err = ParseConfig(strings.NewReader(strings.Replace(good, "max_batch", "maxbatch", 1)))
	if err == nil || !strings.Contains(err.Error(), "field maxbatch not found") {
		t.Fatalf("unknown key: err = %v", err)
	}
}

// TestLoadVersusCapacity drives one vLLM model below, above and back below
// capacity and checks that the queue, throughput and latency follow.
func TestLoadVersusCapacity(t *testing.T) {
	cfg := Config{Seed: 3, Servers: []ServerConfig{{Dialect: VLLM, Model: "chat", Replicas: 2, Mu: 4, MaxBatch: 32, Rate: 4}}}
	f := newFleet(t, cfg) // capacity 8 req/s
	url := target(t, f, "chat").URL

	f.Advance(5 * time.Minute)
	st, _ := f.State("chat")
	if st.Waiting > 0 {
		t.Errorf("at half capacity: %d waiting, want 0", st.Waiting)
	}
	mfs := scrape(t, url)
	done := value(t, mfs, "vllm:request_success_total")
	if done < 0.85*4*300 || done > 1.1*4*300 {
		t.Errorf("at 4 req/s for 300 s: %v completed, want about 1200", done)
	}
	e2eBefore := meanHist(t, mfs, "vllm:e2e_request_latency_seconds")
	queueBefore := meanHist(t, mfs, "vllm:request_queue_time_seconds")

	// Twice capacity for two minutes: the backlog grows by about 8/s.
	if err := f.SetArrivalRate("chat", 16); err != nil {
		t.Fatal(err)
	}
	f.Advance(2 * time.Minute)
	st, _ = f.State("chat")
	if st.Waiting < 600 {
		t.Errorf("at twice capacity for 120 s: %d waiting, want > 600", st.Waiting)
	}
	if st.Running != 64 {
		t.Errorf("saturated: %d running, want all 64 batch slots", st.Running)
	}
	mfs = scrape(t, url)
	if got := value(t, mfs, "vllm:num_requests_waiting"); int(got) != st.Waiting {
		t.Errorf("vllm:num_requests_waiting = %v, state says %d", got, st.Waiting)
	}
	if q := meanHist(t, mfs, "vllm:request_queue_time_seconds"); q <= queueBefore+1 {
		t.Errorf("mean queue time %v s did not grow from %v s under overload", q, queueBefore)
	}
	if e := meanHist(t, mfs, "vllm:e2e_request_latency_seconds"); e <= e2eBefore {
		t.Errorf("mean e2e %v s did not grow from %v s", e, e2eBefore)
	}

	// Scale out to 6 replicas (24 req/s): the backlog drains.
	if err := f.SetReplicas("chat", 6); err != nil {
		t.Fatal(err)
	}
	f.Advance(3 * time.Minute)
	st, _ = f.State("chat")
	if st.Waiting > 0 {
		t.Errorf("after scale-out: %d still waiting", st.Waiting)
	}
}

func meanHist(t *testing.T, mfs map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf, ok := mfs[name]
	if !ok || len(mf.GetMetric()) == 0 {
		t.Fatalf("histogram %q missing", name)
	}
	h := mf.GetMetric()[0].GetHistogram()
	if h.GetSampleCount() == 0 {
		t.Fatalf("histogram %q empty", name)
	}
	return h.GetSampleSum() / float64(h.GetSampleCount())
}

func TestTritonBatchGrowsWithLoad(t *testing.T) {
	cfg := Config{Seed: 5, Servers: []ServerConfig{{Dialect: Triton, Model: "r", Replicas: 2, Mu: 200, MaxBatch: 16, Rate: 20}}}
	f := newFleet(t, cfg)
	url := target(t, f, "r").URL
	avgBatch := func() float64 {
		mfs := scrape(t, url)
		return value(t, mfs, "nv_inference_count") / value(t, mfs, "nv_inference_exec_count")
	}
	f.Advance(time.Minute)
	low := avgBatch()
	if err := f.Restart("r-triton"); err != nil {
		t.Fatal(err)
	}
	if err := f.SetArrivalRate("r", 350); err != nil {
		t.Fatal(err)
	}
	f.Advance(time.Minute)
	high := avgBatch()
	if low < 1 || high <= low*2 || high > 16 {
		t.Errorf("average batch at 20 req/s = %.2f, at 350 req/s = %.2f: want 1 <= low, high > 2*low, high <= 16", low, high)
	}
}

func TestDeterministic(t *testing.T) {
	run := func(seed uint64) []byte {
		cfg := Default()
		cfg.Seed = seed
		f := newFleet(t, cfg)
		f.Advance(90 * time.Second)
		var all []byte
		for _, tg := range f.Targets() {
			all = append(all, get(t, tg.URL)...)
		}
		return all
	}
	a, b, c := run(11), run(11), run(12)
	if !bytes.Equal(a, b) {
		t.Error("same seed, different exposition")
	}
	if bytes.Equal(a, c) {
		t.Error("different seeds, same exposition")
	}
}

func TestRestartResetsCountersAndStartTime(t *testing.T) {
	f := newFleet(t, Default())
	url := target(t, f, "chat").URL
	f.Advance(time.Minute)
	before := scrape(t, url)
	if value(t, before, "vllm:request_success_total") == 0 {
		t.Fatal("no requests completed in a minute")
	}
	if got := value(t, before, "process_start_time_seconds"); got != float64(epoch.Unix()) {
		t.Errorf("process_start_time_seconds = %v, want %d", got, epoch.Unix())
	}
	f.Advance(30 * time.Second)
	if err := f.Restart("chat-vllm"); err != nil {
		t.Fatal(err)
	}
	after := scrape(t, url)
	if got := value(t, after, "process_start_time_seconds"); got != float64(epoch.Unix()+90) {
		t.Errorf("after restart process_start_time_seconds = %v, want %d", got, epoch.Unix()+90)
	}
	if got := value(t, after, "vllm:request_success_total"); got != 0 {
		t.Errorf("after restart request_success_total = %v, want 0", got)
	}
	if err := f.Restart("nope"); err == nil {
		t.Error("Restart of unknown server: no error")
	}
}

func TestHang(t *testing.T) {
	f := newFleet(t, Default())
	tg := target(t, f, "ranker")
	if err := f.SetHang(tg.Name, true); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tg.URL, nil)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatal("hanging server answered")
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want deadline exceeded", err)
	}
	// Other servers keep answering.
	scrape(t, target(t, f, "chat").URL)
	if err := f.SetHang(tg.Name, false); err != nil {
		t.Fatal(err)
	}
	scrape(t, tg.URL)
}

func TestCloseReleasesHangingScrape(t *testing.T) {
	cfg := Default()
	cfg.Start = epoch
	f, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Start(t.Context()); err != nil {
		t.Fatal(err)
	}
	tg := target(t, f, "chat")
	_ = f.SetHang(tg.Name, true)
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, tg.URL, nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	// Give the scrape time to arrive before closing (not asserted on).
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.Close(ctx); err != nil {
		t.Fatal(err)
	}
	<-done
	http.DefaultClient.CloseIdleConnections()
}

func TestRunAdvancesWithWallClock(t *testing.T) {
	cfg := Default()
	cfg.Start = epoch
	f, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- f.Run(ctx, 5*time.Millisecond) }()
	for f.Now().Sub(epoch) < 50*time.Millisecond {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if err := f.Run(t.Context(), 0); err == nil {
		t.Error("Run with tick 0: no error")
	}
}

func TestUnknownModel(t *testing.T) {
	f := newFleet(t, Default())
	if err := f.SetArrivalRate("nope", 1); err == nil {
		t.Error("SetArrivalRate unknown model: no error")
	}
	if err := f.SetReplicas("chat", -1); err == nil {
		t.Error("SetReplicas -1: no error")
	}
	if err := f.SetHang("nope", true); err == nil {
		t.Error("SetHang unknown server: no error")
	}
	if _, err := f.Handler("nope"); err == nil {
		t.Error("Handler unknown server: no error")
	}
}
