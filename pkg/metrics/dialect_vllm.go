package metrics

// vLLM (https://docs.vllm.ai/en/latest/design/metrics.html). Names from
// vllm/v1/metrics/loggers.py and the V0 vllm/engine/metrics.py. Where vLLM
// renamed a metric, both names are read and the new one wins when a server
// exposes both during the deprecation period:
//   - vllm:gpu_cache_usage_perc → vllm:kv_cache_usage_perc (a 0–1 fraction
//     despite "perc")
//   - vllm:time_per_output_token_seconds → vllm:inter_token_latency_seconds
//
// Batch size is not exported by vLLM; with continuous batching the running
// requests are the batch, so utilisation is running / max_num_seqs.
func vllmDialect() *Dialect {
	return newDialect(DialectVLLM, "model_name").
		counter("vllm:request_success_total", SigRequests, 0).
		gauge("vllm:num_requests_waiting", SigWaiting, 0).
		gauge("vllm:num_requests_running", SigRunning, 0).
		gauge("vllm:kv_cache_usage_perc", SigKVCache, 0).
		gauge("vllm:gpu_cache_usage_perc", SigKVCache, 1).
		histogram("vllm:e2e_request_latency_seconds", SigLatency, 0, 1).
		histogram("vllm:time_to_first_token_seconds", SigTTFT, 0, 1).
		histogram("vllm:inter_token_latency_seconds", SigTPOT, 0, 1).
		histogram("vllm:time_per_output_token_seconds", SigTPOT, 1, 1).
		histogram("vllm:request_queue_time_seconds", SigQueueTime, 0, 1)
}
