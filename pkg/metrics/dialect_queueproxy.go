package metrics

// Knative Serving's queue-proxy sidecar, which also fronts KServe
// InferenceServices in serverless mode
// (https://knative.dev/docs/serving/observability/metrics/serving-metrics/).
// Latencies are histograms in milliseconds; the model is the Knative
// service (KServe names it <inferenceservice>-predictor).
// revision_queue_depth counts requests queued or in flight in the proxy.
func queueProxyDialect() *Dialect {
	return newDialect(DialectQueueProxy, "service_name", "configuration_name").
		counter("revision_request_count", SigRequests, 0).
		gauge("revision_queue_depth", SigWaiting, 0).
		histogram("revision_request_latencies", SigLatency, 0, 1e-3).
		// Some exporters of the same OpenCensus views drop the prefix.
		counter("request_count", SigRequests, 1).
		gauge("queue_depth", SigWaiting, 1).
		histogram("request_latencies", SigLatency, 1, 1e-3)
}
