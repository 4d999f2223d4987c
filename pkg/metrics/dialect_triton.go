package metrics

// NVIDIA Triton Inference Server
// (https://docs.nvidia.com/deeplearning/triton-inference-server/user-guide/docs/user_guide/metrics.html).
// Triton exposes cumulative counters, not histograms, for latency: durations
// in microseconds (nv_inference_request_duration_us,
// nv_inference_queue_duration_us) give mean latency and queue time over a
// window. Average batch size is nv_inference_count / nv_inference_exec_count
// over the window. nv_inference_first_response_histogram_ms (decoupled models,
// histogram_latencies=true) gives time-to-first-response percentiles.
//
// With --metrics-config summary_latencies=true Triton also exports
// summaries (µs): nv_inference_request_summary_us and
// nv_inference_queue_summary_us. With counter_latencies=false as well, the
// duration counters are gone and every counter, nv_inference_request_success
// and the batch counts included, stays at 0: MetricModelReporter's
// IncrementCounter returns early when latency counters are off
// (triton-inference-server/core src/metric_model_reporter.cc; reported as
// triton-inference-server/server#8125). So:
//   - requests are the queue summary's _count where it is exported: it is
//     observed once per successful request, cache hits included, exactly
//     where nv_inference_request_success is incremented
//     (src/infer_stats.cc UpdateSuccessWithDuration, UpdateSuccessCacheHit),
//     and keeps counting when the counters do not;
//   - the summaries' _sum are the fallback for the mean latency and queue
//     time, where the duration counters are absent. The request summary is
//     not exported with the response cache on (InitializeSummaries), which
//     leaves the mean queue time only;
//   - their quantiles are not read: they are the server's own over its
//     sliding window, which cannot be summed over targets or windowed like
//     a histogram's buckets;
//   - with the counters at 0 there is no average batch size.
func tritonDialect() *Dialect {
	return newDialect(DialectTriton, "model").
		counter("nv_inference_queue_summary_us_count", SigRequests, 0).
		counter("nv_inference_request_success", SigRequests, 1).
		counter("nv_inference_count", SigBatchItems, 0).
		counter("nv_inference_exec_count", SigBatchExecs, 0).
		scaledCounter("nv_inference_request_duration_us", SigLatencyTotal, 0, 1e-6).
		scaledCounter("nv_inference_request_summary_us_sum", SigLatencyTotal, 1, 1e-6).
		scaledCounter("nv_inference_queue_duration_us", SigQueueTotal, 0, 1e-6).
		scaledCounter("nv_inference_queue_summary_us_sum", SigQueueTotal, 1, 1e-6).
		gauge("nv_inference_pending_request_count", SigWaiting, 0).
		histogram("nv_inference_first_response_histogram_ms", SigTTFT, 0, 1e-3)
}
