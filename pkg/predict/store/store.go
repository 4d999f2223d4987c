// Package store is the adapter's embedded demand history, used when no
// Prometheus is configured: a scraper reads the exporter's /metrics and
// appends chosen series to Prometheus's own TSDB on local disk (so the data
// survives restarts, retention is bounded, and the on-disk format is one
// every Prometheus tool reads), and Increase turns a counter back into a
// predict.Series of requests per step.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/storage"
	"github.com/prometheus/prometheus/tsdb"

	"github.com/infercast/infercast/pkg/predict"
)

// Options configures a Store.
type Options struct {
	// Dir is where the TSDB lives; it is created if missing.
	Dir string
	// Retention bounds how much history is kept (default 15 days; the
	// forecaster reads two weeks). Older blocks are deleted at compaction.
	Retention time.Duration
	// BlockDuration is the span of each on-disk block (default 2h, as in
	// Prometheus). Tests shorten it to see compaction and retention work.
	BlockDuration time.Duration
	Logger        *slog.Logger
	// Registerer receives the TSDB's own metrics (prometheus_tsdb_*); nil
	// registers nothing.
	Registerer prometheus.Registerer
}

// Store is an embedded TSDB holding demand series.
type Store struct {
	db *tsdb.DB
}

// Open opens (or creates) the store in opts.Dir, replaying its write-ahead
// log: what was appended before a restart is there after it.
func Open(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("store: no directory")
	}
	if opts.Retention <= 0 {
		opts.Retention = 15 * 24 * time.Hour
	}
	if opts.BlockDuration <= 0 {
		opts.BlockDuration = 2 * time.Hour
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	o := tsdb.DefaultOptions()
	o.RetentionDuration = opts.Retention.Milliseconds()
	o.MinBlockDuration = opts.BlockDuration.Milliseconds()
	o.MaxBlockDuration = opts.BlockDuration.Milliseconds()
	db, err := tsdb.Open(opts.Dir, log, opts.Registerer, o, nil)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", opts.Dir, err)
	}
	return &Store{db: db}, nil
}

// Close flushes and closes the store.
func (s *Store) Close() error { return s.db.Close() }

// Compact cuts the in-memory head into blocks and applies retention now
// (the TSDB also does it on its own, about once a minute).
func (s *Store) Compact(ctx context.Context) error { return s.db.Compact(ctx) }

// Sample is one value of one series.
type Sample struct {
	Labels labels.Labels // including __name__
	T      time.Time
	V      float64
}

// Append writes samples in one transaction. A sample the TSDB refuses on
// its own — older than its series' newest (a clock that stepped back, or
// an exporter's own timestamps), a second value at one timestamp, or older
// than the head allows — is skipped and counted in skipped, as Prometheus's
// scraper does, so that it does not cost every other sample of the scrape.
// Any other error writes nothing.
func (s *Store) Append(ctx context.Context, samples []Sample) (skipped int, err error) {
	app := s.db.Appender(ctx)
	for _, x := range samples {
		if _, err := app.Append(0, x.Labels, x.T.UnixMilli(), x.V); err != nil {
			if errors.Is(err, storage.ErrOutOfOrderSample) || errors.Is(err, storage.ErrDuplicateSampleForTimestamp) ||
				errors.Is(err, storage.ErrOutOfBounds) || errors.Is(err, storage.ErrTooOldSample) {
				skipped++
				continue
			}
			if rerr := app.Rollback(); rerr != nil {
				err = errors.Join(err, rerr)
			}
			return 0, fmt.Errorf("store: append %s at %s: %w", x.Labels, x.T.UTC().Format(time.RFC3339), err)
		}
	}
	if err := app.Commit(); err != nil {
		return 0, fmt.Errorf("store: commit: %w", err)
	}
	return skipped, nil
}

// MinTime is the oldest time held, for seeing retention at work.
func (s *Store) MinTime(ctx context.Context) (time.Time, error) {
	q, err := s.db.Querier(math.MinInt64, math.MaxInt64)
	if err != nil {
		return time.Time{}, err
	}
	defer q.Close()
	set := q.Select(ctx, false, nil, labels.MustNewMatcher(labels.MatchRegexp, labels.MetricName, ".+"))
	minT := int64(math.MaxInt64)
	for set.Next() {
		it := set.At().Iterator(nil)
		if it.Next() != 0 {
			minT = min(minT, it.AtT())
		}
	}
	if err := set.Err(); err != nil {
		return time.Time{}, err
	}
	if minT == math.MaxInt64 {
		return time.Time{}, errors.New("store: empty")
	}
	return time.UnixMilli(minT), nil
}

// maxGap is how far apart two samples may be for the rise between them to
// be counted in the later one's interval: Prometheus's lookback delta, past
// which it takes a series for stale.
const maxGap = 5 * time.Minute

// ErrNoSeries is returned (wrapped) when no series matches.
var ErrNoSeries = errors.New("no series matches")

// Increase returns the increase of the counters matching ms per step over
// [start, end): Values[i] counts what was added in
// [start+i*step, start+(i+1)*step), summed over the matching series (pods).
// Each rise between consecutive samples is counted in the interval of the
// later sample; a drop is a counter reset, after which the new value is the
// increase. A rise across a gap longer than maxGap (the store was down, or
// the exporter unreachable) into another interval is not counted: where in
// the gap it happened is unknown, and counted at its end it made one
// interval hold hours of requests (a restart after two hours at 10 req/s
// read as 72,000 requests in a minute). Intervals where no series has a
// sample are NaN (no data).
func (s *Store) Increase(ctx context.Context, start, end time.Time, step time.Duration, ms ...*labels.Matcher) (predict.Series, error) {
	if step <= 0 {
		return predict.Series{}, fmt.Errorf("store: step %s", step)
	}
	n := int(end.Sub(start) / step)
	if n <= 0 {
		return predict.Series{}, fmt.Errorf("store: empty range %s to %s", start, end)
	}
	out := predict.Series{Start: start, Step: step, Values: make([]float64, n)}
	for i := range out.Values {
		out.Values[i] = math.NaN()
	}
	// Read from one step before the range so the first interval has the
	// sample before it (its base).
	lookback := max(step, 5*time.Minute)
	q, err := s.db.Querier(start.Add(-lookback).UnixMilli(), end.UnixMilli()-1)
	if err != nil {
		return predict.Series{}, fmt.Errorf("store: querier: %w", err)
	}
	defer q.Close()
	set := q.Select(ctx, false, nil, ms...)
	found := 0
	// slot is the step interval a time falls in (negative before start).
	slot := func(ms int64) int64 {
		d := ms - start.UnixMilli()
		q := d / step.Milliseconds()
		if d < 0 && d%step.Milliseconds() != 0 {
			q--
		}
		return q
	}
	for set.Next() {
		found++
		it := set.At().Iterator(nil)
		prev, prevT := math.NaN(), int64(0)
		for it.Next() != 0 { // chunkenc.ValNone == 0
			t, v := it.At()
			if math.IsNaN(v) { // a stale marker ends the series for now
				prev = math.NaN()
				continue
			}
			i := int(time.UnixMilli(t).Sub(start) / step)
			d := math.NaN()
			switch {
			case math.IsNaN(prev):
			case t-prevT > maxGap.Milliseconds() && slot(prevT) != slot(t):
				// Unattributed: see above.
			case v >= prev:
				d = v - prev
			default:
				d = v // reset: counted from zero again
			}
			prev, prevT = v, t
			if t < start.UnixMilli() || i >= n {
				continue
			}
			if math.IsNaN(out.Values[i]) {
				out.Values[i] = 0
			}
			if !math.IsNaN(d) {
				out.Values[i] += d
			}
		}
		if err := it.Err(); err != nil {
			return predict.Series{}, fmt.Errorf("store: read %s: %w", set.At().Labels(), err)
		}
	}
	if err := set.Err(); err != nil {
		return predict.Series{}, fmt.Errorf("store: select: %w", err)
	}
	if found == 0 {
		return predict.Series{}, fmt.Errorf("store: %v: %w", ms, ErrNoSeries)
	}
	return out, nil
}

// Counter is a history.Source over the store: the increase per step of the
// counters matching Matchers (summed over pods).
type Counter struct {
	Store    *Store
	Matchers []*labels.Matcher
}

// Series returns the counter's increase per step over [start, end).
func (c Counter) Series(ctx context.Context, start, end time.Time, step time.Duration) (predict.Series, error) {
	return c.Store.Increase(ctx, start, end, step, c.Matchers...)
}
