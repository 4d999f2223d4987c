package batchctl

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// Actuator applies knobs to one kind of model server.
type Actuator interface {
	// Name identifies the actuator in metrics and logs ("triton", ...).
	Name() string
	// Limits says how often the server tolerates a change and how much a
	// change must be worth.
	Limits() Limits
	// Apply sets the model's knobs; on failure the server must be left
	// as it was (actuators roll back what they changed).
	Apply(ctx context.Context, model string, k Knobs) error
}

// Limits is what a server tolerates.
type Limits struct {
	// MinInterval is the least time between two applied changes of one
	// model (a Triton change reloads the model).
	MinInterval time.Duration
	// MinGain is the least relative predicted gain — in SLO-bounded
	// throughput, or in GPU time saved — that justifies a change. Changes
	// that restore the SLO (back-off, or a setting predicted to break it)
	// need no gain.
	MinGain float64
	// RecommendOnly actuators never change the server: the controller
	// exports and logs its recommendation, and the applied knobs stay
	// what the server runs.
	RecommendOnly bool
}

// RecommendOnly is the default actuator: it changes nothing, and logs what
// to restart the server with when the recommendation changes. It is the
// only choice for servers whose batching cannot change at runtime, such as
// vLLM (its --max-num-seqs and --scheduler-delay-factor are start-up flags).
type RecommendOnly struct {
	// Server names the server kind ("vllm", "tgi", "triton", "ray", or
	// empty), to say which flag to restart with.
	Server string
	Logger *slog.Logger
}

func (r RecommendOnly) Name() string { return "recommend-only" }

func (r RecommendOnly) Limits() Limits { return Limits{RecommendOnly: true} }

// Apply logs the recommendation; it never fails and never changes anything.
func (r RecommendOnly) Apply(_ context.Context, model string, k Knobs) error {
	if r.Logger != nil {
		r.Logger.Info("batch recommendation (recommend-only: restart the server to apply)",
			"model", model, "max_batch_size", k.MaxBatchSize, "max_queue_delay", k.MaxQueueDelay, "queue_timeout", k.QueueTimeout,
			"restart_with", RestartHint(r.Server, k))
	}
	return nil
}

// RestartHint says how to apply k to a server that reads its batching
// settings only at start-up.
func RestartHint(server string, k Knobs) string {
	switch server {
	case "vllm":
		// vLLM batches continuously: the batch cap is the number of
		// sequences scheduled together; it has no queue-delay knob.
		return fmt.Sprintf("vllm serve ... --max-num-seqs %d (vLLM batches continuously and has no queue delay)", k.MaxBatchSize)
	case "tgi":
		return fmt.Sprintf("text-generation-launcher ... --max-batch-size %d", k.MaxBatchSize)
	case "triton":
		policy := ""
		if k.QueueTimeout > 0 {
			policy = fmt.Sprintf(" default_queue_policy { timeout_action: REJECT default_timeout_microseconds: %d }", k.QueueTimeout.Microseconds())
		}
		return fmt.Sprintf("config.pbtxt: max_batch_size: %d, dynamic_batching { preferred_batch_size: [ %d ] max_queue_delay_microseconds: %d%s }",
			k.MaxBatchSize, k.MaxBatchSize, k.MaxQueueDelay.Microseconds(), policy)
	case "ray":
		return fmt.Sprintf("@serve.batch(max_batch_size=%d, batch_wait_timeout_s=%g)", k.MaxBatchSize, k.MaxQueueDelay.Seconds())
	default:
		return k.String()
	}
}
