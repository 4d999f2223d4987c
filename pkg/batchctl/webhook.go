package batchctl

import (
	"context"
	"fmt"
	"net/http"
	"time"
)

// Webhook POSTs the knobs as JSON to a URL, for servers or operators this
// package does not know:
//
//	{"model":"m","max_batch_size":16,"max_queue_delay_seconds":0.005,
//	 "max_queue_delay_microseconds":5000}
//
// Any 2xx reply is success; anything else is a failure that the receiver
// must have left without effect.
type Webhook struct {
	URL    string
	Client *http.Client
	Limit  Limits
}

// DefaultWebhookLimits: a change at most every 30 s, for ≥ 5 % gain.
var DefaultWebhookLimits = Limits{MinInterval: 30 * time.Second, MinGain: 0.05}

func (w *Webhook) Name() string { return "webhook" }

func (w *Webhook) Limits() Limits {
	if w.Limit != (Limits{}) {
		return w.Limit
	}
	return DefaultWebhookLimits
}

// WebhookPayload is the body of the webhook's POST.
type WebhookPayload struct {
	Model                     string  `json:"model"`
	MaxBatchSize              int     `json:"max_batch_size"`
	MaxQueueDelaySeconds      float64 `json:"max_queue_delay_seconds"`
	MaxQueueDelayMicroseconds int64   `json:"max_queue_delay_microseconds"`
	// QueueTimeoutSeconds, when present, is how long a request may wait
	// in the queue before the server should reject it (reject_late).
	QueueTimeoutSeconds float64 `json:"queue_timeout_seconds,omitempty"`
}

func (w *Webhook) Apply(ctx context.Context, model string, k Knobs) error {
	p := WebhookPayload{Model: model, MaxBatchSize: k.MaxBatchSize,
		MaxQueueDelaySeconds: k.MaxQueueDelay.Seconds(), MaxQueueDelayMicroseconds: k.MaxQueueDelay.Microseconds(),
		QueueTimeoutSeconds: k.QueueTimeout.Seconds()}
	if err := doJSON(ctx, w.Client, http.MethodPost, w.URL, p, nil); err != nil {
		return fmt.Errorf("webhook: %w", err)
	}
	return nil
}
