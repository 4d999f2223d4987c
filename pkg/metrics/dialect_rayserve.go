package metrics

// Ray Serve (https://docs.ray.io/en/latest/serve/monitoring.html#built-in-ray-serve-metrics).
// Ray prefixes every metric with ray_; latencies are histograms in
// milliseconds. The model is the Serve deployment. Ray also labels each
// series with its application (python/ray/serve/_private/router.py sets
// deployment and application as separate tags), so deployments of one name
// in two applications merge here; "application/deployment" needs the model
// built from two labels, which the ingester does not do yet.
func rayServeDialect() *Dialect {
	return newDialect(DialectRayServe, "deployment").
		counter("ray_serve_deployment_request_counter_total", SigRequests, 0).
		gauge("ray_serve_deployment_queued_queries", SigWaiting, 0).
		gauge("ray_serve_replica_processing_queries", SigRunning, 0).
		histogram("ray_serve_deployment_processing_latency_ms", SigLatency, 0, 1e-3)
}
