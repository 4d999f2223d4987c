package history

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/url"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/infercast/infercast/pkg/predict"
)

// MaxPoints is the most points Prometheus returns per series from one
// query_range; longer ranges are split into chunks below it.
const MaxPoints = 11000

// PrometheusConfig configures a Prometheus-compatible source (Prometheus,
// Thanos Query, Mimir: they serve the same query_range API).
type PrometheusConfig struct {
	// Address is the base URL, e.g. http://prometheus:9090.
	Address string
	// Timeout bounds each query_range request (default 30s).
	Timeout time.Duration
	// Retries is how many times a failed chunk is retried on a transient
	// error (server error, timeout, connection refused); bad queries are not
	// retried. Default 3.
	Retries int
	// Backoff is the first wait between retries, doubled each time
	// (default 500ms).
	Backoff time.Duration
	// ChunkPoints is the most points per request (default and maximum
	// MaxPoints - 1).
	ChunkPoints int
	// Client, if set, replaces the default HTTP client (tests, auth).
	Client api.Client
	Logger *slog.Logger
}

// Prometheus reads demand histories through the Prometheus HTTP API.
type Prometheus struct {
	api v1.API
	cfg PrometheusConfig
	log *slog.Logger
}

// NewPrometheus returns a source for the API at cfg.Address.
func NewPrometheus(cfg PrometheusConfig) (*Prometheus, error) {
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	if cfg.Retries < 0 {
		return nil, fmt.Errorf("history: retries %d < 0", cfg.Retries)
	}
	if cfg.Retries == 0 {
		cfg.Retries = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	if cfg.ChunkPoints <= 0 || cfg.ChunkPoints >= MaxPoints {
		cfg.ChunkPoints = MaxPoints - 1
	}
	client := cfg.Client
	if client == nil {
		c, err := api.NewClient(api.Config{Address: cfg.Address})
		if err != nil {
			return nil, fmt.Errorf("history: prometheus client for %q: %w", cfg.Address, err)
		}
		client = c
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Prometheus{api: v1.NewAPI(wholeAnswers{client}), cfg: cfg, log: log}, nil
}

// wholeAnswers asks for complete answers or none: Thanos Query, by default
// (--query.partial-response), answers with the data of the stores that
// replied and a warning when one did not, and a demand history missing a
// store's share would forecast too little. With partial_response=false it
// fails the query instead (422, execution: not transient, so not retried)
// and the loop serves its last good plan until a later decision reads the
// history whole. Prometheus and Mimir ignore the parameter. The
// client's v1 API starts every request's parameters from this URL's query,
// for POST and for its GET fallback alike.
type wholeAnswers struct{ api.Client }

func (c wholeAnswers) URL(ep string, args map[string]string) *url.URL {
	u := c.Client.URL(ep, args)
	q := u.Query()
	q.Set("partial_response", "false")
	u.RawQuery = q.Encode()
	return u
}

// ErrNoSeries is returned (wrapped) when a query returns no series at all.
var ErrNoSeries = errors.New("query returned no series")

// ErrManySeries is returned (wrapped) when a query returns more than one
// series: a demand history is one series, so aggregate in the query (sum).
var ErrManySeries = errors.New("query returned several series")

// Series evaluates query (which must yield one series: the count of requests
// per step, e.g. sum(increase(requests_total[1m])) for step 1m) every step
// from start+step to end. The value evaluated at t becomes the interval
// [t-step, t), so the Series starts at start rounded down to a multiple of
// step since the unix epoch. Steps without a sample, or whose value is
// negative or infinite, are NaN.
func (p *Prometheus) Series(ctx context.Context, query string, start, end time.Time, step time.Duration) (predict.Series, error) {
	if step <= 0 || step%time.Second != 0 {
		return predict.Series{}, fmt.Errorf("history: step %s must be a positive whole number of seconds", step)
	}
	// Aligned to the epoch, as query frontends align range queries
	// (Thanos's step alignment): Truncate aligns to Go's zero time, which
	// is the epoch's only for steps that divide a day.
	start = predict.StepStart(start, step)
	n := int(end.Sub(start) / step)
	if n <= 0 {
		return predict.Series{}, fmt.Errorf("history: empty range %s to %s", start, end)
	}
	s := predict.Series{Start: start, Step: step, Values: make([]float64, n)}
	for i := range s.Values {
		s.Values[i] = math.NaN()
	}
	var labels model.Metric
	chunk := p.cfg.ChunkPoints
	for first := 0; first < n; first += chunk {
		last := min(first+chunk, n) - 1 // index of the chunk's last interval
		r := v1.Range{
			Start: start.Add(time.Duration(first+1) * step),
			End:   start.Add(time.Duration(last+1) * step),
			Step:  step,
		}
		m, err := p.queryRange(ctx, query, r)
		if err != nil {
			return predict.Series{}, err
		}
		switch {
		case len(m) > 1:
			return predict.Series{}, fmt.Errorf("history: %q from %s to %s: %w (%s); aggregate them, e.g. sum(...)",
				query, r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), ErrManySeries, describe(m))
		case len(m) == 0:
			continue // maybe another chunk has data
		}
		if labels == nil {
			labels = m[0].Metric
		} else if !labels.Equal(m[0].Metric) {
			return predict.Series{}, fmt.Errorf("history: %q: %w: %s in one chunk, %s in another",
				query, ErrManySeries, labels, m[0].Metric)
		}
		for _, sp := range m[0].Values {
			t := sp.Timestamp.Time()
			i := int(t.Sub(start)/step) - 1
			if i < 0 || i >= n || !start.Add(time.Duration(i+1)*step).Equal(t) {
				continue
			}
			// A ratio over a zero, or a gauge gone wrong: no count of
			// requests is negative or infinite. Missing, not learnt.
			if v := float64(sp.Value); v >= 0 && !math.IsInf(v, 1) {
				s.Values[i] = v
			}
		}
	}
	if labels == nil {
		return predict.Series{}, fmt.Errorf("history: %q from %s to %s: %w",
			query, start.UTC().Format(time.RFC3339), end.UTC().Format(time.RFC3339), ErrNoSeries)
	}
	return s, nil
}

func describe(m model.Matrix) string {
	var names []string
	for i, ss := range m {
		if i == 5 {
			names = append(names, fmt.Sprintf("and %d more", len(m)-5))
			break
		}
		names = append(names, ss.Metric.String())
	}
	sort.Strings(names[:min(5, len(names))])
	return fmt.Sprintf("%d series: %s", len(m), strings.Join(names, ", "))
}

// queryRange runs one chunk with a per-request timeout, retrying transient
// failures with exponential backoff.
func (p *Prometheus) queryRange(ctx context.Context, query string, r v1.Range) (model.Matrix, error) {
	wait := p.cfg.Backoff
	var lastErr error
	for attempt := 0; attempt <= p.cfg.Retries; attempt++ {
		if attempt > 0 {
			p.log.Warn("query_range failed, retrying", "query", query, "attempt", attempt, "wait", wait, "err", lastErr)
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("history: %q: %w (last error: %v)", query, ctx.Err(), lastErr)
			case <-time.After(wait):
			}
			wait *= 2
		}
		rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		v, warnings, _, err := p.api.QueryRange(rctx, query, r, v1.WithTimeout(p.cfg.Timeout))
		cancel()
		if err == nil {
			if len(warnings) > 0 {
				p.log.Warn("query_range warnings", "query", query, "warnings", strings.Join(warnings, "; "))
			}
			m, ok := v.(model.Matrix)
			if !ok {
				return nil, fmt.Errorf("history: %q returned a %s, want a range vector (matrix)", query, v.Type())
			}
			return m, nil
		}
		lastErr = err
		if ctx.Err() != nil || !transient(err) {
			break
		}
	}
	return nil, fmt.Errorf("history: query_range %q [%s, %s] step %s: %w", query,
		r.Start.UTC().Format(time.RFC3339), r.End.UTC().Format(time.RFC3339), r.Step, lastErr)
}

// transient says whether a retry may succeed: server-side failures and
// timeouts may, a bad query or a 4xx will not.
func transient(err error) bool {
	var apiErr *v1.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Type {
		case v1.ErrServer, v1.ErrTimeout, v1.ErrBadResponse:
			return true
		case v1.ErrClient:
			// 429 Too Many Requests is worth waiting for; other 4xx are not.
			return strings.Contains(apiErr.Msg, "429")
		}
		return false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return true // the per-request timeout, not the caller's
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}
