package metrics

// NVIDIA Triton Inference Server
// (https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/metrics.html).
// Triton exposes cumulative counters, not histograms, for latency: durations
// in microseconds (nv_inference_request_duration_us,
// nv_inference_queue_duration_us) give mean latency and queue time over a
// window. Average batch size is nv_inference_count / nv_inference_exec_count
// over the window. nv_inference_first_response_histogram_ms (decoupled models,
// histogram_latencies=true) gives time-to-first-response percentiles.
func tritonDialect() *Dialect {
	return newDialect(DialectTriton, "model").
		counter("nv_inference_request_success", SigRequests, 0).
		counter("nv_inference_count", SigBatchItems, 0).
		counter("nv_inference_exec_count", SigBatchExecs, 0).
		scaledCounter("nv_inference_request_duration_us", SigLatencyTotal, 0, 1e-6).
		scaledCounter("nv_inference_queue_duration_us", SigQueueTotal, 0, 1e-6).
		gauge("nv_inference_pending_request_count", SigWaiting, 0).
		histogram("nv_inference_first_response_histogram_ms", SigTTFT, 0, 1e-3)
}
