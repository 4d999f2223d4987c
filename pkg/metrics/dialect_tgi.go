package metrics

// Hugging Face Text Generation Inference
// (https://huggingface.co/docs/text-generation-inference/reference/metrics).
// TGI serves one model per process and puts no model label on its metrics:
// the target's configured model (or its name) is used. The current batch is
// the running requests, so batch size falls back to them.
func tgiDialect() *Dialect {
	return newDialect(DialectTGI).
		counter("tgi_request_success", SigRequests, 0).
		gauge("tgi_queue_size", SigWaiting, 0).
		gauge("tgi_batch_current_size", SigRunning, 0).
		histogram("tgi_request_duration", SigLatency, 0, 1).
		histogram("tgi_request_queue_duration", SigQueueTime, 0, 1).
		histogram("tgi_request_mean_time_per_token_duration", SigTPOT, 0, 1)
}
