package metrics

// Knative Serving's queue-proxy sidecar, which also fronts KServe
// InferenceServices in serverless mode
// (https://knative.dev/docs/serving/observability/metrics/serving-metrics/).
// The model is the Knative service (KServe names it
// <inferenceservice>-predictor). Three generations of names, newest first:
//
//   - Knative ≥ 1.21, OpenTelemetry: kn.serving.invocation.duration (a
//     histogram in seconds whose count is the only request count) and
//     kn.serving.queue.depth; through the Prometheus exporter
//     kn_serving_invocation_duration_seconds_* and kn_serving_queue_depth.
//     The service is a resource attribute, which that exporter puts on
//     target_info rather than on each series unless configured to: the
//     model then comes from the target (its model, or the pod's
//     annotation or app.kubernetes.io/name label).
//   - Knative 1.19–1.20, the same instruments as kn.queueproxy.app.duration
//     and kn.queueproxy.depth. These versions record the duration as
//     float64(latency / time.Second), an integer division
//     (pkg/queue/request_metric.go appRequestMetricsHandler.ServeHTTP), so
//     every sub-second request lands at 0 and a 300 ms service reads p99
//     ≤ 5 ms; 1.21 fixed it ("Fix sub-second precision metric reporting",
//     knative/serving#16358) in the same release that renamed the
//     instruments (#16290), so the old name always means whole seconds:
//     only its _count is read, as the request count, and neither its
//     buckets nor its sum.
//   - Knative ≤ 1.18, OpenCensus: revision_request_count,
//     revision_queue_depth and revision_request_latencies (milliseconds),
//     with service_name and configuration_name labels; some exporters of
//     the same views drop the revision_ prefix.
//
// The queue depth is not a backlog: it is breaker.InFlight(), the requests
// queued *or executing* in the proxy (knative/serving pkg/queue/breaker.go:
// a request holds its slot until its handler returns), so it is read as
// running, never as waiting — as waiting, a server with no queue would show
// a drain time of one mean latency. Knative records it only when a request
// arrives (pkg/queue/request_metric.go appRequestMetricsHandler.ServeHTTP in
// 1.19–1.20, pkg/queue/metrics/request_metric.go under OpenCensus; 1.21
// renamed the instrument), so after traffic stops the last value stays until
// the next request; and without a concurrency limit (containerConcurrency
// 0, Knative's default, which KServe keeps unless the predictor sets one)
// there is no breaker and the gauge is never exported (its help text: "or
// not reported if unlimited concurrency"). The queue-proxy exports no
// backlog of its own.
func queueProxyDialect() *Dialect {
	return newDialect(DialectQueueProxy, "service_name", "configuration_name", "kn_service_name", "kn_configuration_name").
		countingHistogram("kn_serving_invocation_duration_seconds", SigLatency, 0, 1).
		gauge("kn_serving_queue_depth", SigRunning, 0).
		counter("kn_queueproxy_app_duration_seconds_count", SigRequests, 1).
		gauge("kn_queueproxy_depth", SigRunning, 1).
		counter("revision_request_count", SigRequests, 2).
		gauge("revision_queue_depth", SigRunning, 2).
		histogram("revision_request_latencies", SigLatency, 2, 1e-3).
		counter("request_count", SigRequests, 3).
		gauge("queue_depth", SigRunning, 3).
		histogram("request_latencies", SigLatency, 3, 1e-3)
}
