package history

import (
	"context"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// Source is one workload's demand history, wherever it lives: the adapter
// asks it for [start, end) at its forecast step and does not care whether a
// Prometheus, a Thanos, or the embedded store answers.
type Source interface {
	Series(ctx context.Context, start, end time.Time, step time.Duration) (predict.Series, error)
}

// Query is a Source that runs one PromQL query (which must return the
// requests per step as one series) against a Prometheus-compatible API.
type Query struct {
	Prometheus *Prometheus
	PromQL     string
}

// Series implements Source.
func (q Query) Series(ctx context.Context, start, end time.Time, step time.Duration) (predict.Series, error) {
	return q.Prometheus.Series(ctx, q.PromQL, start, end, step)
}

var _ Source = Query{}
