package metrics

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// modelFamilies are the families a dialect's golden file pins; timing
// families (scrape durations) are left out on purpose. No built-in dialect
// reads clump sizes: pinned, their absence from every golden file.
var modelFamilies = []string{
	"infercast_model_requests_per_second",
	"infercast_model_request_clump_size_sum_total",
	"infercast_model_request_latency_seconds",
	"infercast_model_time_to_first_token_seconds",
	"infercast_model_time_per_output_token_seconds",
	"infercast_model_queue_time_seconds",
	"infercast_model_request_latency_mean_seconds",
	"infercast_model_queue_time_mean_seconds",
	"infercast_model_requests_waiting",
	"infercast_model_requests_running",
	"infercast_model_kv_cache_usage_ratio",
	"infercast_model_batch_size",
	"infercast_model_batch_utilization_ratio",
	"infercast_model_queue_drain_seconds",
	"infercast_target_up",
	"infercast_target_scrape_samples",
	"infercast_cold_starts_total",
}

// TestGoldenDialects scrapes each dialect's fixtures (written to the names
// the servers document) twice, 60 s apart, and compares the exporter's
// output with testdata/golden/<dialect>.prom. The expected numbers follow
// from the fixtures' deltas; vLLM's are also checked by hand in
// TestVLLMByHand.
func TestGoldenDialects(t *testing.T) {
	for _, tc := range []struct {
		dialect, model string
		// fixture names the files in testdata (default: the dialect).
		fixture     string
		maxBatch    int
		openMetrics bool
	}{
		{dialect: DialectVLLM, maxBatch: 64},
		// A vLLM V0 server (0.6.x): only the old names (gpu_cache_usage_perc,
		// time_per_output_token_seconds), no engine label.
		{dialect: DialectVLLM, fixture: "vllm_v0", maxBatch: 256},
		// vLLM V1 with data parallelism: one API server, two engines
		// (engine="0", "1"; vllm/v1/metrics/loggers.py per_engine_labelvalues).
		// Counters, histograms and queue gauges are summed over engines, the
		// KV-cache ratio is their maximum (TestVLLMEnginesByHand).
		{dialect: DialectVLLM, fixture: "vllm_dp", maxBatch: 64},
		// The same vLLM fixtures negotiated as OpenMetrics give the same output.
		{dialect: DialectVLLM, maxBatch: 64, openMetrics: true},
		{dialect: DialectTriton, maxBatch: 16},
		// Triton with --metrics-config counter_latencies=false
		// summary_latencies=true: no duration counters, every counter stuck
		// at 0, latency and queue time only as summaries (µs).
		{dialect: DialectTriton, fixture: "triton_summary", maxBatch: 16},
		{dialect: DialectTGI, model: "bigscience/bloom-560m", maxBatch: 32},
		{dialect: DialectSGLang, maxBatch: 48},
		// Current SGLang labels, two DP-attention ranks (TestSGLangRanksByHand).
		{dialect: DialectSGLang, fixture: "sglang_dp", maxBatch: 48},
		{dialect: DialectRayServe},
		{dialect: DialectQueueProxy},
		// Knative ≥ 1.21 through OpenTelemetry's Prometheus exporter: requests
		// only as the duration histogram's count, the service on target_info.
		{dialect: DialectQueueProxy, fixture: "queueproxy_otel", model: "sklearn-iris-predictor"},
		// Knative 1.19–1.20 (kn_queueproxy_* names) record the duration in
		// whole seconds, so only the histogram's count is read: requests, no
		// latency.
		{dialect: DialectQueueProxy, fixture: "queueproxy_otel_1_20", model: "sklearn-iris-predictor"},
	} {
		fixture := cmp.Or(tc.fixture, tc.dialect)
		name := fixture
		if tc.openMetrics {
			name += "/openmetrics"
		}
		t.Run(name, func(t *testing.T) {
			clock := newFakeClock()
			srv := newBodyServer(t)
			e := newTestExporter(t, clock, TargetConfig{
				Name: "pod-a", URL: srv.URL + "/metrics", Dialect: tc.dialect, Model: tc.model, MaxBatchSize: tc.maxBatch,
			})
			fixtures := filepath.Join("testdata", "dialects", fixture)
			load := func(suffix string) {
				b, err := os.ReadFile(fixtures + suffix)
				if err != nil {
					t.Fatal(err)
				}
				if tc.openMetrics {
					srv.mu.Lock()
					srv.contentType = "application/openmetrics-text; version=1.0.0; charset=utf-8"
					srv.mu.Unlock()
					b = append(b, "# EOF\n"...)
				}
				srv.set(b)
			}
			load("_t0.prom")
			e.Cycle(context.Background())
			clock.Advance(time.Minute)
			load("_t1.prom")
			e.Cycle(context.Background())
			if up := gatherValues(t, e)[`infercast_target_up{dialect="`+tc.dialect+`",source="static",target="pod-a"}`]; up != 1 {
				t.Fatalf("target down: %v", e.states["pod-a"].lastErr)
			}

			golden := filepath.Join("testdata", "golden", fixture+".prom")
			if *update && !tc.openMetrics {
				writeGolden(t, e, golden)
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -run TestGoldenDialects -update)", err)
			}
			if err := testutil.CollectAndCompare(e, bytes.NewReader(want), modelFamilies...); err != nil {
				t.Error(err)
			}
		})
	}
}

func writeGolden(t *testing.T, c prometheus.Collector, path string) {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	keep := map[string]bool{}
	for _, n := range modelFamilies {
		keep[n] = true
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if keep[mf.GetName()] {
			if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestVLLMByHand checks the vLLM numbers against values computed by hand
// from the fixtures' deltas, independent of the golden file.
func TestVLLMByHand(t *testing.T) {
	e := scrapeFixture(t, DialectVLLM, "vllm", 64)
	const m = `model="meta-llama/Llama-3.1-8B-Instruct"`
	want := map[string]float64{
		// 500 stop + 100 length requests in 60 s.
		`infercast_model_requests_per_second{` + m + `,window="1m"}`: 10,
		// e2e bucket deltas [60,300,540,590,600] over le [0.5,1,2.5,5,+Inf]:
		// rank 300 ends bucket (0.5,1]; rank 540 ends (1,2.5]; 594 is in +Inf.
		`infercast_model_request_latency_seconds{` + m + `,quantile="0.5",window="1m"}`:  1,
		`infercast_model_request_latency_seconds{` + m + `,quantile="0.9",window="1m"}`:  2.5,
		`infercast_model_request_latency_seconds{` + m + `,quantile="0.99",window="1m"}`: 5,
		`infercast_model_request_latency_mean_seconds{` + m + `,window="1m"}`:            1.3,
		// 30 waiting at 10 requests/s.
		`infercast_model_queue_drain_seconds{` + m + `,target="pod-a"}`: 3,
		// the new name's 0.42, not the deprecated name's 0.99.
		`infercast_model_kv_cache_usage_ratio{` + m + `,target="pod-a"}`: 0.42,
		// 16 running of max 64.
		`infercast_model_batch_utilization_ratio{` + m + `,target="pod-a"}`: 0.25,
		// inter_token_latency (new) deltas [2000,14000,19000,19800,20000]:
		// rank 10000 in (0.01,0.025]: 0.01 + 0.015*(8000/12000).
		`infercast_model_time_per_output_token_seconds{` + m + `,quantile="0.5",window="1m"}`: 0.02,
	}
	checkValues(t, e, want)
}

// TestVLLMEnginesByHand checks the two-engine vLLM fixture against numbers
// computed by hand: engine 1 doubles engine 0's counters and histograms.
func TestVLLMEnginesByHand(t *testing.T) {
	e := scrapeFixture(t, DialectVLLM, "vllm_dp", 64)
	const m = `model="meta-llama/Llama-3.1-8B-Instruct"`
	want := map[string]float64{
		// engine 0: 600 requests in 60 s, engine 1: 1200.
		`infercast_model_requests_per_second{` + m + `,window="1m"}`:           30,
		`infercast_model_request_latency_seconds_count{` + m + `,window="1m"}`: 1800,
		// running 16 + 8, waiting 30 + 10.
		`infercast_model_requests_running{` + m + `,target="pod-a"}`:        24,
		`infercast_model_requests_waiting{` + m + `,target="pod-a"}`:        40,
		`infercast_model_batch_utilization_ratio{` + m + `,target="pod-a"}`: 24.0 / 64,
		`infercast_model_queue_drain_seconds{` + m + `,target="pod-a"}`:     40.0 / 30,
		// max(0.42, 0.7): a ratio is not summed over engines.
		`infercast_model_kv_cache_usage_ratio{` + m + `,target="pod-a"}`: 0.7,
	}
	checkValues(t, e, want)
}

// TestSGLangRanksByHand checks the current SGLang labels (engine_type,
// tp_rank, pp_rank, moe_ep_rank, dp_rank) with DP attention, tp 4 and dp 2,
// in SGLang's default reporting: only each attention-TP group's first
// scheduler exports (attn_tp_rank 0: tp_rank 0 for dp_rank 0, tp_rank 2 for
// dp_rank 1), each with its own queue, so they are summed. A filter on
// tp_rank "0" would drop dp_rank 1.
func TestSGLangRanksByHand(t *testing.T) {
	e := scrapeFixture(t, DialectSGLang, "sglang_dp", 48)
	const m = `model="Qwen/Qwen2.5-7B-Instruct"`
	checkValues(t, e, map[string]float64{
		// the tokenizer's counter: one series, 1200 requests in 60 s.
		`infercast_model_requests_per_second{` + m + `,window="1m"}`: 20,
		// running 25 + 15, waiting 4 + 6, queue time 600 + 600 requests.
		`infercast_model_requests_running{` + m + `,target="pod-a"}`:      40,
		`infercast_model_requests_waiting{` + m + `,target="pod-a"}`:      10,
		`infercast_model_queue_time_seconds_count{` + m + `,window="1m"}`: 1200,
		// max(0.55, 0.7).
		`infercast_model_kv_cache_usage_ratio{` + m + `,target="pod-a"}`: 0.7,
	})
}

// scrapeFixture scrapes testdata/dialects/<fixture>_t0.prom and, 60 s
// later, <fixture>_t1.prom as one target.
func scrapeFixture(t *testing.T, dialect, fixture string, maxBatch int) *Exporter {
	t.Helper()
	clock := newFakeClock()
	srv := newBodyServer(t)
	e := newTestExporter(t, clock, TargetConfig{Name: "pod-a", URL: srv.URL, Dialect: dialect, MaxBatchSize: maxBatch})
	srv.setFile(t, "testdata/dialects/"+fixture+"_t0.prom")
	e.Cycle(context.Background())
	clock.Advance(time.Minute)
	srv.setFile(t, "testdata/dialects/"+fixture+"_t1.prom")
	e.Cycle(context.Background())
	return e
}

// checkValues compares the collector's values (gatherValues keys) with want.
func checkValues(t *testing.T, c prometheus.Collector, want map[string]float64) {
	t.Helper()
	got := gatherValues(t, c)
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("%s missing", k)
			continue
		}
		if d := g - v; d > 1e-9 || d < -1e-9 {
			t.Errorf("%s = %g, want %g", k, g, v)
		}
	}
}

// gatherValues flattens a collector's output into "name{sorted labels}" → value.
func gatherValues(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, l := range m.GetLabel() {
				parts = append(parts, l.GetName()+`="`+l.GetValue()+`"`)
			}
			key := mf.GetName() + "{" + strings.Join(parts, ",") + "}"
			if s := m.GetSummary(); s != nil {
				for _, q := range s.GetQuantile() {
					qp := append(slices.Clone(parts), fmt.Sprintf(`quantile="%g"`, q.GetQuantile()))
					slices.Sort(qp)
					out[mf.GetName()+"{"+strings.Join(qp, ",")+"}"] = q.GetValue()
				}
				out[mf.GetName()+"_count"+"{"+strings.Join(parts, ",")+"}"] = float64(s.GetSampleCount())
				out[mf.GetName()+"_sum"+"{"+strings.Join(parts, ",")+"}"] = s.GetSampleSum()
				continue
			}
			switch {
			case m.Gauge != nil:
				out[key] = m.GetGauge().GetValue()
			case m.Counter != nil:
				out[key] = m.GetCounter().GetValue()
			case m.Untyped != nil:
				out[key] = m.GetUntyped().GetValue()
			}
		}
	}
	return out
}
