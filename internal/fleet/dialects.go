package fleet

import (
	"fmt"
	"math"
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// Dialect names the metric vocabulary a simulated server speaks.
type Dialect string

// The dialects a fleet can simulate, each with the metric names and labels
// the real server exports.
const (
	// VLLM is vLLM's V1 engine (vllm/v1/metrics/loggers.py): vllm:* with a
	// model_name label, kv_cache_usage_perc and inter_token_latency_seconds.
	VLLM Dialect = "vllm"
	// VLLMLegacy is vLLM's V0 names (vllm/engine/metrics.py):
	// gpu_cache_usage_perc and time_per_output_token_seconds.
	VLLMLegacy Dialect = "vllm-v0"
	// Triton is NVIDIA Triton Inference Server (nv_inference_*, labels
	// model and version; durations are cumulative microsecond counters).
	Triton Dialect = "triton"
	// TGI is Hugging Face text-generation-inference's router (tgi_*; no
	// model label: one model per server).
	TGI Dialect = "tgi"
	// SGLang is sglang/srt/metrics/collector.py (sglang:*, model_name).
	SGLang Dialect = "sglang"
	// RayServe is Ray Serve's built-in metrics (ray_serve_*, latencies in
	// milliseconds, labels deployment, replica, route, application).
	RayServe Dialect = "rayserve"
	// KServe is the Knative queue-proxy in front of a KServe predictor
	// (revision_*, latencies in milliseconds).
	KServe Dialect = "kserve"
)

// Dialects lists every dialect a fleet can simulate.
func Dialects() []Dialect {
	return []Dialect{VLLM, VLLMLegacy, Triton, TGI, SGLang, RayServe, KServe}
}

func (d Dialect) valid() bool {
	for _, x := range Dialects() {
		if d == x {
			return true
		}
	}
	return false
}

// recorder turns the queueing model's events into one dialect's metrics.
type recorder interface {
	finished(r *request)
	rejected(n int)
	batches(sizes []int)
	gauges(m *model, tokensPerSecond float64)
}

// Buckets copied from the servers, so quantiles computed downstream have the
// resolution they would have in production.
var (
	// vllm/v1/metrics/loggers.py request_latency_buckets.
	vllmLatencyBuckets = []float64{0.3, 0.5, 0.8, 1.0, 1.5, 2.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0}
	vllmTTFTBuckets    = []float64{0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0}
	vllmITLBuckets     = []float64{0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 20.0, 40.0, 80.0}
	// ray/serve/_private/constants.py DEFAULT_LATENCY_BUCKET_MS.
	rayBucketsMS = []float64{1, 2, 5, 10, 20, 50, 100, 200, 300, 400, 500, 1000, 2000, 5000, 10000, 60000, 120000, 300000, 600000}
	// knative.dev/serving queue-proxy default latency distribution (ms).
	knativeBucketsMS = []float64{5, 10, 20, 40, 60, 80, 100, 150, 200, 250, 300, 350, 400, 450, 500, 600, 700, 800, 900, 1000, 2000, 5000, 10000}
	// TGI's router sets exponential duration buckets.
	tgiDurationBuckets = prometheus.ExponentialBuckets(0.0001, 2, 20)
	tgiTokenBuckets    = prometheus.ExponentialBuckets(1, 2, 14)
)

func newRecorder(d Dialect, s *server, reg *prometheus.Registry) (recorder, error) {
	switch d {
	case VLLM, VLLMLegacy:
		return newVLLM(s, reg, d == VLLMLegacy), nil
	case Triton:
		return newTriton(s, reg), nil
	case TGI:
		return newTGI(reg), nil
	case SGLang:
		return newSGLang(s, reg), nil
	case RayServe:
		return newRay(s, reg), nil
	case KServe:
		return newKnative(s, reg), nil
	}
	return nil, fmt.Errorf("unknown dialect %q", d)
}

func ttft(r *request) float64 { return r.start - r.arrived + r.prefill }
func queueTime(r *request) float64 {
	return r.start - r.arrived
}
func e2e(r *request) float64 { return r.finish - r.arrived }
func itl(r *request) float64 {
	if r.output <= 1 {
		return 0
	}
	return (r.finish - r.start - r.prefill) / float64(r.output-1)
}

// --- vLLM ---

type vllmRecorder struct {
	running, waiting, kv                         prometheus.Gauge
	success                                      *prometheus.CounterVec
	prompt, generation                           prometheus.Counter
	e2e, ttft, itl, queue, prefill, decode, infr prometheus.Observer
	promptLen, genLen                            prometheus.Observer
}

func newVLLM(s *server, reg *prometheus.Registry, legacy bool) *vllmRecorder {
	l := prometheus.Labels{"model_name": s.cfg.Model}
	if !legacy {
		l["engine"] = "0"
	}
	f := factory{reg, l}
	kvName, kvHelp := "vllm:kv_cache_usage_perc", "KV-cache usage. 1 means 100 percent usage."
	itlName := "vllm:inter_token_latency_seconds"
	if legacy {
		kvName, kvHelp = "vllm:gpu_cache_usage_perc", "GPU KV-cache usage. 1 means 100 percent usage."
		itlName = "vllm:time_per_output_token_seconds"
	}
	v := &vllmRecorder{
		running:    f.gauge("vllm:num_requests_running", "Number of requests in model execution batches."),
		waiting:    f.gauge("vllm:num_requests_waiting", "Number of requests waiting to be processed."),
		kv:         f.gauge(kvName, kvHelp),
		success:    f.counterVec("vllm:request_success_total", "Count of successfully processed requests.", "finished_reason"),
		prompt:     f.counter("vllm:prompt_tokens_total", "Number of prefill tokens processed."),
		generation: f.counter("vllm:generation_tokens_total", "Number of generation tokens processed."),
		e2e:        f.histogram("vllm:e2e_request_latency_seconds", "Histogram of e2e request latency in seconds.", vllmLatencyBuckets),
		ttft:       f.histogram("vllm:time_to_first_token_seconds", "Histogram of time to first token in seconds.", vllmTTFTBuckets),
		itl:        f.histogram(itlName, "Histogram of inter-token latency in seconds.", vllmITLBuckets),
		queue:      f.histogram("vllm:request_queue_time_seconds", "Histogram of time spent in WAITING phase for request.", vllmLatencyBuckets),
		prefill:    f.histogram("vllm:request_prefill_time_seconds", "Histogram of time spent in PREFILL phase for request.", vllmLatencyBuckets),
		decode:     f.histogram("vllm:request_decode_time_seconds", "Histogram of time spent in DECODE phase for request.", vllmLatencyBuckets),
		infr:       f.histogram("vllm:request_inference_time_seconds", "Histogram of time spent in RUNNING phase for request.", vllmLatencyBuckets),
		promptLen:  f.histogram("vllm:request_prompt_tokens", "Number of prefill tokens processed.", tokenBuckets()),
		genLen:     f.histogram("vllm:request_generation_tokens", "Number of generation tokens processed.", tokenBuckets()),
	}
	// vLLM creates a series per finish reason up front.
	for _, reason := range []string{"stop", "length", "abort"} {
		v.success.WithLabelValues(reason)
	}
	return v
}

func tokenBuckets() []float64 {
	// vLLM's build_1_2_5_buckets up to the max model length.
	var b []float64
	for m := 1.0; m <= 10000; m *= 10 {
		b = append(b, m, 2*m, 5*m)
	}
	return b
}

func (v *vllmRecorder) finished(r *request) {
	reason := "stop"
	if r.output >= meanOutput*3/2 {
		reason = "length"
	}
	v.success.WithLabelValues(reason).Inc()
	v.prompt.Add(float64(r.prompt))
	v.generation.Add(float64(r.output))
	v.e2e.Observe(e2e(r))
	v.ttft.Observe(ttft(r))
	v.itl.Observe(itl(r))
	v.queue.Observe(queueTime(r))
	v.prefill.Observe(r.prefill)
	v.decode.Observe(r.finish - r.start - r.prefill)
	v.infr.Observe(r.finish - r.start)
	v.promptLen.Observe(float64(r.prompt))
	v.genLen.Observe(float64(r.output))
}
func (v *vllmRecorder) rejected(int)  {}
func (v *vllmRecorder) batches([]int) {}
func (v *vllmRecorder) gauges(m *model, _ float64) {
	v.running.Set(float64(len(m.running)))
	v.waiting.Set(float64(len(m.queue)))
	v.kv.Set(m.kvUsage())
}

// --- Triton ---

type tritonRecorder struct {
	success, failure, count, exec              prometheus.Counter
	queueUS, inferUS, inputUS, outputUS, reqUS prometheus.Counter
	pending                                    prometheus.Gauge
}

func newTriton(s *server, reg *prometheus.Registry) *tritonRecorder {
	f := factory{reg, prometheus.Labels{"model": s.cfg.Model, "version": "1"}}
	ff := factory{reg, prometheus.Labels{"model": s.cfg.Model, "version": "1", "reason": "REJECTED"}}
	return &tritonRecorder{
		success:  f.counter("nv_inference_request_success", "Number of successful inference requests, all batch sizes"),
		failure:  ff.counter("nv_inference_request_failure", "Number of failed inference requests, all batch sizes"),
		count:    f.counter("nv_inference_count", "Number of inferences performed (does not include cached requests)"),
		exec:     f.counter("nv_inference_exec_count", "Number of model executions performed (does not include cached requests)"),
		reqUS:    f.counter("nv_inference_request_duration_us", "Cumulative inference request duration in microseconds (includes cached requests)"),
		queueUS:  f.counter("nv_inference_queue_duration_us", "Cumulative inference queuing duration in microseconds (includes cached requests)"),
		inputUS:  f.counter("nv_inference_compute_input_duration_us", "Cumulative compute input duration in microseconds (does not include cached requests)"),
		inferUS:  f.counter("nv_inference_compute_infer_duration_us", "Cumulative compute inference duration in microseconds (does not include cached requests)"),
		outputUS: f.counter("nv_inference_compute_output_duration_us", "Cumulative inference compute output duration in microseconds (does not include cached requests)"),
		pending:  f.gauge("nv_inference_pending_request_count", "Instantaneous number of pending requests awaiting execution per-model."),
	}
}

func (t *tritonRecorder) finished(r *request) {
	t.success.Inc()
	t.count.Inc()
	t.reqUS.Add(math.Round(e2e(r) * 1e6))
	t.queueUS.Add(math.Round(queueTime(r) * 1e6))
	t.inputUS.Add(math.Round(r.prefill * 1e6))
	t.inferUS.Add(math.Round((r.finish - r.start - r.prefill) * 1e6))
	t.outputUS.Add(50)
}
func (t *tritonRecorder) rejected(n int) { t.failure.Add(float64(n)) }
func (t *tritonRecorder) batches(sizes []int) {
	// The dynamic batcher runs the requests admitted to one replica in one
	// substep as one execution.
	for _, n := range sizes {
		if n > 0 {
			t.exec.Inc()
		}
	}
}
func (t *tritonRecorder) gauges(m *model, _ float64) { t.pending.Set(float64(len(m.queue))) }

// --- TGI ---

type tgiRecorder struct {
	count, success, failure              prometheus.Counter
	duration, queue, inference, perToken prometheus.Observer
	generated, inputLen, nextSize        prometheus.Observer
	queueSize, batchSize, batchMaxTokens prometheus.Gauge
}

func newTGI(reg *prometheus.Registry) *tgiRecorder {
	f := factory{reg, nil}
	ff := factory{reg, prometheus.Labels{"err": "overloaded"}}
	return &tgiRecorder{
		count:          f.counter("tgi_request_count", "Total number of requests"),
		success:        f.counter("tgi_request_success", "Number of successful requests"),
		failure:        ff.counter("tgi_request_failure", "Number of failed requests"),
		duration:       f.histogram("tgi_request_duration", "Total time spent processing the request (e2e latency)", tgiDurationBuckets),
		queue:          f.histogram("tgi_request_queue_duration", "Time spent in the queue per request", tgiDurationBuckets),
		inference:      f.histogram("tgi_request_inference_duration", "Request inference duration", tgiDurationBuckets),
		perToken:       f.histogram("tgi_request_mean_time_per_token_duration", "Mean time per token per request", tgiDurationBuckets),
		generated:      f.histogram("tgi_request_generated_tokens", "Generated tokens per request", tgiTokenBuckets),
		inputLen:       f.histogram("tgi_request_input_length", "Input token length per request", tgiTokenBuckets),
		nextSize:       f.histogram("tgi_batch_next_size", "Batch size of the next batch", tgiTokenBuckets),
		queueSize:      f.gauge("tgi_queue_size", "Current queue size"),
		batchSize:      f.gauge("tgi_batch_current_size", "Current batch size"),
		batchMaxTokens: f.gauge("tgi_batch_current_max_tokens", "Maximum tokens for the current batch"),
	}
}

func (g *tgiRecorder) finished(r *request) {
	g.count.Inc()
	g.success.Inc()
	g.duration.Observe(e2e(r))
	g.queue.Observe(queueTime(r))
	g.inference.Observe(r.finish - r.start)
	g.perToken.Observe(itl(r))
	g.generated.Observe(float64(r.output))
	g.inputLen.Observe(float64(r.prompt))
}
func (g *tgiRecorder) rejected(n int) {
	g.count.Add(float64(n))
	g.failure.Add(float64(n))
}
func (g *tgiRecorder) batches(sizes []int) {
	for _, n := range sizes {
		if n > 0 {
			g.nextSize.Observe(float64(n))
		}
	}
}
func (g *tgiRecorder) gauges(m *model, _ float64) {
	g.queueSize.Set(float64(len(m.queue)))
	// One endpoint stands for all replicas: the batch gauge is the mean
	// batch per replica, as a single TGI shard would report it.
	if m.replicas > 0 {
		g.batchSize.Set(math.Ceil(float64(len(m.running)) / float64(m.replicas)))
	}
	g.batchMaxTokens.Set(float64(m.maxBatch * (meanPrompt + meanOutput)))
}

// --- SGLang ---

type sglangRecorder struct {
	running, queue, tokenUsage, genThroughput prometheus.Gauge
	prompt, generation, requests              prometheus.Counter
	ttft, e2e, itl, queueTime                 prometheus.Observer
}

func newSGLang(s *server, reg *prometheus.Registry) *sglangRecorder {
	f := factory{reg, prometheus.Labels{"model_name": s.cfg.Model}}
	return &sglangRecorder{
		running:       f.gauge("sglang:num_running_reqs", "The number of running requests."),
		queue:         f.gauge("sglang:num_queue_reqs", "The number of requests in the waiting queue."),
		tokenUsage:    f.gauge("sglang:token_usage", "The token usage."),
		genThroughput: f.gauge("sglang:gen_throughput", "The generation throughput (token/s)."),
		prompt:        f.counter("sglang:prompt_tokens_total", "Number of prefill tokens processed."),
		generation:    f.counter("sglang:generation_tokens_total", "Number of generation tokens processed."),
		requests:      f.counter("sglang:num_requests_total", "Number of requests processed."),
		ttft:          f.histogram("sglang:time_to_first_token_seconds", "Histogram of time to first token in seconds.", vllmTTFTBuckets),
		e2e:           f.histogram("sglang:e2e_request_latency_seconds", "Histogram of End-to-end request latency in seconds", vllmLatencyBuckets),
		itl:           f.histogram("sglang:inter_token_latency_seconds", "Histogram of inter-token latency in seconds.", vllmITLBuckets),
		queueTime:     f.histogram("sglang:queue_time_seconds", "Histogram of queueing time in seconds.", vllmLatencyBuckets),
	}
}

func (g *sglangRecorder) finished(r *request) {
	g.prompt.Add(float64(r.prompt))
	g.generation.Add(float64(r.output))
	g.requests.Inc()
	g.ttft.Observe(ttft(r))
	g.e2e.Observe(e2e(r))
	g.itl.Observe(itl(r))
	g.queueTime.Observe(queueTime(r))
}
func (g *sglangRecorder) rejected(int)  {}
func (g *sglangRecorder) batches([]int) {}
func (g *sglangRecorder) gauges(m *model, tps float64) {
	g.running.Set(float64(len(m.running)))
	g.queue.Set(float64(len(m.queue)))
	g.tokenUsage.Set(m.kvUsage())
	g.genThroughput.Set(tps)
}

// --- Ray Serve ---

type rayRecorder struct {
	app, deployment, route string
	requests, routerReqs   *prometheus.CounterVec
	// requestsGauge is the same count as the deprecated gauge Ray ≥ 2.10
	// exports beside every counter by default (RAY_EXPORT_COUNTER_AS_GAUGE).
	requestsGauge *prometheus.GaugeVec
	processing    *prometheus.HistogramVec
	httpLatency   *prometheus.HistogramVec
	processingQ   *prometheus.GaugeVec
	queued        prometheus.Gauge
}

func newRay(s *server, reg *prometheus.Registry) *rayRecorder {
	dep := s.cfg.Model
	app := "default"
	route := "/" + s.cfg.Model
	f := factory{reg, nil}
	return &rayRecorder{
		app: app, deployment: dep, route: route,
		requests:      f.counterVecL("ray_serve_deployment_request_counter_total", "The number of queries that have been processed in this replica.", "deployment", "replica", "route", "application"),
		requestsGauge: f.gaugeVecL("ray_serve_deployment_request_counter", "The number of queries that have been processed in this replica.", "deployment", "replica", "route", "application"),
		routerReqs:    f.counterVecL("ray_serve_num_router_requests_total", "The number of requests processed by the router.", "deployment", "route", "application"),
		processing:    f.histogramVecL("ray_serve_deployment_processing_latency_ms", "The latency for queries to be processed.", rayBucketsMS, "deployment", "replica", "route", "application"),
		httpLatency:   f.histogramVecL("ray_serve_http_request_latency_ms", "The end-to-end latency of HTTP requests (measured from the Serve HTTP proxy).", rayBucketsMS, "route", "application", "method", "status_code"),
		processingQ:   f.gaugeVecL("ray_serve_replica_processing_queries", "The current number of queries being processed.", "deployment", "replica", "application"),
		queued: factory{reg, prometheus.Labels{"deployment": dep, "application": app}}.gauge(
			"ray_serve_deployment_queued_queries", "The current number of queries to this deployment waiting to be assigned to a replica."),
	}
}

func (g *rayRecorder) replica(i int) string { return g.deployment + "#r" + strconv.Itoa(i) }

func (g *rayRecorder) finished(r *request) {
	rep := g.replica(r.replica)
	g.requests.WithLabelValues(g.deployment, rep, g.route, g.app).Inc()
	g.requestsGauge.WithLabelValues(g.deployment, rep, g.route, g.app).Inc()
	g.routerReqs.WithLabelValues(g.deployment, g.route, g.app).Inc()
	g.processing.WithLabelValues(g.deployment, rep, g.route, g.app).Observe((r.finish - r.start) * 1000)
	g.httpLatency.WithLabelValues(g.route, g.app, "POST", "200").Observe(e2e(r) * 1000)
}
func (g *rayRecorder) rejected(int)  {}
func (g *rayRecorder) batches([]int) {}
func (g *rayRecorder) gauges(m *model, _ float64) {
	g.queued.Set(float64(len(m.queue)))
	g.processingQ.Reset()
	for i := 0; i < m.replicas && i < len(m.perReplica); i++ {
		g.processingQ.WithLabelValues(g.deployment, g.replica(i), g.app).Set(float64(m.perReplica[i]))
	}
}

// --- Knative queue-proxy (KServe) ---

type knativeRecorder struct {
	count, appCount     prometheus.Counter
	rejectedCount       prometheus.Counter
	latency, appLatency prometheus.Observer
	depth               prometheus.Gauge
}

func newKnative(s *server, reg *prometheus.Registry) *knativeRecorder {
	svc := s.cfg.Model + "-predictor"
	base := prometheus.Labels{
		"configuration_name": svc, "namespace_name": "default", "service_name": svc,
		"revision_name": svc + "-00001", "pod_name": svc + "-00001-deployment-0",
		"container_name": "queue-proxy",
	}
	with := func(extra map[string]string) prometheus.Labels {
		l := prometheus.Labels{}
		for k, v := range base {
			l[k] = v
		}
		for k, v := range extra {
			l[k] = v
		}
		return l
	}
	ok := with(map[string]string{"response_code": "200", "response_code_class": "2xx"})
	busy := with(map[string]string{"response_code": "503", "response_code_class": "5xx"})
	depth := with(nil)
	// The app latency family has no container_name in Knative's docs.
	appOK := with(map[string]string{"response_code": "200", "response_code_class": "2xx"})
	delete(appOK, "container_name")
	// Both request_count series must share a label set; build them on one vec.
	countVec := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "revision_request_count", Help: "The number of requests that are routed to queue-proxy"}, keys(ok))
	reg.MustRegister(countVec)
	return &knativeRecorder{
		count:         countVec.With(ok),
		rejectedCount: countVec.With(busy),
		appCount:      factory{reg, ok}.counter("revision_app_request_count", "The number of requests that are routed to user-container"),
		latency:       factory{reg, ok}.histogram("revision_request_latencies", "The response time in millisecond", knativeBucketsMS),
		appLatency:    factory{reg, appOK}.histogram("revision_app_request_latencies", "The response time in millisecond", knativeBucketsMS),
		depth:         factory{reg, depth}.gauge("revision_queue_depth", "The current number of items in the serving and waiting queue, or not reported if unlimited concurrency."),
	}
}

func (k *knativeRecorder) finished(r *request) {
	k.count.Inc()
	k.appCount.Inc()
	k.latency.Observe(e2e(r) * 1000)
	k.appLatency.Observe((r.finish - r.start) * 1000)
}
func (k *knativeRecorder) rejected(n int) { k.rejectedCount.Add(float64(n)) }
func (k *knativeRecorder) batches([]int)  {}
func (k *knativeRecorder) gauges(m *model, _ float64) {
	k.depth.Set(float64(len(m.queue) + len(m.running)))
}

// --- helpers ---

// factory registers metrics with constant labels on one registry.
type factory struct {
	reg    *prometheus.Registry
	labels prometheus.Labels
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(g)
	return g
}

func (f factory) counter(name, help string) prometheus.Counter {
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, label string) *prometheus.CounterVec {
	return f.counterVecL(name, help, label)
}

func (f factory) counterVecL(name, help string, labels ...string) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: f.labels}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gaugeVecL(name, help string, labels ...string) *prometheus.GaugeVec {
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: f.labels}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Observer {
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: f.labels})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVecL(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: name, Help: help, Buckets: buckets, ConstLabels: f.labels}, labels)
	f.reg.MustRegister(h)
	return h
}

func keys(l prometheus.Labels) []string {
	out := make([]string, 0, len(l))
	for k := range l {
		out = append(out, k)
	}
	return out
}
