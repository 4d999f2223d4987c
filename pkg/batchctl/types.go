package batchctl

import (
	"fmt"
	"time"
)

// Knobs are the settings of a dynamic batcher that the controller tunes:
// the batch cap and queue delay, and where the controller may reject late
// requests (Config.RejectLate), the queue timeout.
type Knobs struct {
	// MaxBatchSize is the largest batch the server may form (Triton's
	// max_batch_size and preferred_batch_size, Ray's max_batch_size).
	MaxBatchSize int `json:"max_batch_size"`
	// MaxQueueDelay is how long the oldest queued request may wait for the
	// batch to fill before the batch starts anyway (Triton's
	// max_queue_delay_microseconds, Ray's batch_wait_timeout_s).
	MaxQueueDelay time.Duration `json:"max_queue_delay"`
	// QueueTimeout, when set, rejects a request that has waited longer
	// than this in the queue instead of batching it (Triton's
	// dynamic_batching.default_queue_policy with timeout_action REJECT):
	// it can no longer meet the SLO, and in a batch it would only delay
	// the requests that can. Zero leaves the server's policy as it is.
	QueueTimeout time.Duration `json:"queue_timeout,omitempty"`
}

func (k Knobs) String() string {
	s := fmt.Sprintf("max_batch_size=%d max_queue_delay=%s", k.MaxBatchSize, k.MaxQueueDelay)
	if k.QueueTimeout > 0 {
		s += fmt.Sprintf(" queue_timeout=%s", k.QueueTimeout)
	}
	return s
}

// BatchStat aggregates the batches of one size executed during an
// observation window: what Triton's statistics extension reports per batch
// size (batch_stats[].compute_infer count and ns), or what a simulator sees.
type BatchStat struct {
	Size        int
	Count       float64 // batches of this size executed in the window
	ExecSeconds float64 // their summed execution time
}

// Observation is what the exporter measured for one model over one window.
// The controller sees only this: never the future, never the true profile.
// Zero means "not measured" for the optional fields.
type Observation struct {
	Time   time.Time     // end of the window
	Window time.Duration // its length
	// Arrivals is the number of requests that arrived in the window (a
	// request counter's increase).
	Arrivals float64
	// ClumpSizeSum is, summed over the requests that arrived in the
	// window, the number of requests that arrived at the same instant as
	// each (itself included): ÷ Arrivals it is the mean size of the clump
	// a request arrives in — 1 when no two requests arrive together, more
	// when clients send requests in bursts (fan-out, batch jobs) or
	// timestamps are coarse. Zero means not measured (Poisson is assumed).
	ClumpSizeSum float64
	// Requests and Batches count what completed in the window; with
	// ExecSeconds (the summed execution time of those batches) they give
	// the average batch size and execution time when BatchStats is empty
	// (Triton's nv_inference_count / nv_inference_exec_count and
	// nv_inference_compute_infer_duration_us, the exporter's average batch
	// size).
	Requests    float64
	Batches     float64
	ExecSeconds float64
	// BatchStats is the batch size distribution, when the server exposes
	// it; it makes the profile fit sharper than the averages alone.
	BatchStats []BatchStat
	// QueueSeconds is the mean time a completed request waited in the
	// queue before its batch started.
	QueueSeconds float64
	// LatencyP99Seconds is the observed p99 of queue delay plus execution.
	LatencyP99Seconds float64
	// GPUUtilization is the busy fraction of the model's GPU (0–1), from
	// NVML; zero when unknown.
	GPUUtilization float64
}

// ArrivalRate is the observed arrival rate in requests per second.
func (o Observation) ArrivalRate() float64 {
	if o.Window <= 0 {
		return 0
	}
	return o.Arrivals / o.Window.Seconds()
}

// Validate rejects observations that would corrupt the fit.
func (o Observation) Validate() error {
	switch {
	case o.Window <= 0:
		return fmt.Errorf("observation window %s: must be positive", o.Window)
	case o.Arrivals < 0 || o.Requests < 0 || o.Batches < 0 || o.ExecSeconds < 0 || o.ClumpSizeSum < 0:
		return fmt.Errorf("observation counts must not be negative (arrivals %g, requests %g, batches %g, exec %gs, clump sizes %g)",
			o.Arrivals, o.Requests, o.Batches, o.ExecSeconds, o.ClumpSizeSum)
	case o.QueueSeconds < 0 || o.LatencyP99Seconds < 0:
		return fmt.Errorf("observation times must not be negative (queue %gs, p99 %gs)", o.QueueSeconds, o.LatencyP99Seconds)
	case o.GPUUtilization < 0 || o.GPUUtilization > 1:
		return fmt.Errorf("GPU utilization %g outside 0–1", o.GPUUtilization)
	}
	for _, s := range o.BatchStats {
		if s.Size < 1 || s.Count < 0 || s.ExecSeconds < 0 {
			return fmt.Errorf("batch stat %+v: size must be ≥ 1, count and time ≥ 0", s)
		}
	}
	return nil
}
