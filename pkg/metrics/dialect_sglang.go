package metrics

// SGLang (https://docs.sglang.ai/references/production_metrics.html), names
// from python/sglang/srt/metrics/collector.py. sglang:token_usage is the
// fraction of KV-cache tokens in use. Newer releases renamed
// time_per_output_token to inter_token_latency; the new name wins.
//
// Older releases label everything with model_name alone. Current ones add,
// on the tokenizer's metrics (requests, e2e latency, TTFT, ITL),
// engine_type, and on the scheduler's (running, queue, token usage, queue
// time) engine_type, tp_rank, pp_rank, moe_ep_rank and, with data
// parallelism, dp_rank (scheduler_metrics_mixin.py init_metrics). By default
// only the first scheduler of each attention-TP group exports (attn_tp_rank
// 0: SchedulerMetricsReporter's current_scheduler_metrics_enabled): one per
// DP rank, each with its own queue, so the series are summed. With DP
// attention that scheduler's tp_rank is dp_rank × attn_tp_size, not 0
// (data_parallel_controller.py passes the global tp_rank), so keeping
// tp_rank "0" alone would drop every DP rank but the first.
//
// Not handled: --enable-metrics-for-all-schedulers makes every TP rank of a
// group export the same running, queue and queue-time values, which are
// then summed (tp 2: twice the truth); and with pipeline parallelism every
// stage exports its copy of the queue (stage 0 receives the requests and
// forwards them: scheduler.py recv_requests), summed likewise. Telling
// them apart needs the lowest tp_rank per dp_rank and pp_rank 0 within one
// scrape, which the ingester does not do per series yet.
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
