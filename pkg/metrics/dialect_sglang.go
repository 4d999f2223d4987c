package metrics

// SGLang (https://docs.sglang.ai/references/production_metrics.html), names
// from python/sglang/srt/metrics/collector.py. sglang:token_usage is the
// fraction of KV-cache tokens in use. Newer releases renamed
// time_per_output_token to inter_token_latency; the new name wins.
func sglangDialect() *Dialect {
	return newDialect(DialectSGLang, "model_name").
		counter("sglang:num_requests_total", SigRequests, 0).
		gauge("sglang:num_queue_reqs", SigWaiting, 0).
		gauge("sglang:num_running_reqs", SigRunning, 0).
		gauge("sglang:token_usage", SigKVCache, 0).
		histogram("sglang:e2e_request_latency_seconds", SigLatency, 0, 1).
		histogram("sglang:time_to_first_token_seconds", SigTTFT, 0, 1).
		histogram("sglang:inter_token_latency_seconds", SigTPOT, 0, 1).
		histogram("sglang:time_per_output_token_seconds", SigTPOT, 1, 1).
		histogram("sglang:queue_time_seconds", SigQueueTime, 0, 1)
}
