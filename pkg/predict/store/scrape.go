package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/prometheus/model/labels"

	"github.com/infercast/infercast/internal/fanout"
)

// acceptHeader asks for the protobuf format first and text as a fallback,
// as Prometheus does.
const acceptHeader = `application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.7,text/plain;version=0.0.4;q=0.3,*/*;q=0.1`

// ScraperConfig says what to scrape and what to keep.
type ScraperConfig struct {
	// URL is the exporter's metrics endpoint, e.g. http://exporter:9400/metrics.
	// A host that resolves to several addresses (a headless Service: one
	// exporter per node) is scraped at every one, each sample labelled
	// instance="ADDRESS:PORT", as Prometheus does; so Increase sums the
	// nodes.
	URL string
	// Lookup resolves the URL's host (nil: DNS).
	Lookup func(ctx context.Context, host string) ([]string, error)
	// Interval between scrapes (default 15s); each scrape's timeout is the
	// interval too.
	Interval time.Duration
	// Metrics are the metric names to keep (for histograms and summaries:
	// NAME_count and NAME_sum). Empty keeps none: the store holds what the
	// forecaster needs, not everything the exporter says.
	Metrics []string
	// Labels are added to every stored series (e.g. source="exporter").
	Labels map[string]string
	// Client defaults to a client with the interval as timeout.
	Client *http.Client
	Logger *slog.Logger
}

// Scraper appends chosen series from an exporter's /metrics to a Store.
type Scraper struct {
	cfg   ScraperConfig
	fan   *fanout.Reader
	store *Store
	log   *slog.Logger
}

// NewScraper returns a scraper into st.
func NewScraper(st *Store, cfg ScraperConfig) (*Scraper, error) {
	if cfg.URL == "" {
		return nil, errors.New("store: scraper without URL")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: cfg.Interval}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	fan, err := fanout.New(cfg.URL, cfg.Client, cfg.Lookup)
	if err != nil {
		return nil, fmt.Errorf("store: scraper URL: %w", err)
	}
	return &Scraper{cfg: cfg, fan: fan, store: st, log: log}, nil
}

// Run scrapes every Interval until ctx ends. A failed scrape is logged and
// the next one tried: one bad scrape is a gap, not a stop.
func (s *Scraper) Run(ctx context.Context) error {
	tick := time.NewTicker(s.cfg.Interval)
	defer tick.Stop()
	for {
		if _, err := s.ScrapeOnce(ctx, time.Now()); err != nil && ctx.Err() == nil {
			s.log.Warn("scrape failed", "url", s.cfg.URL, "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// ScrapeOnce scrapes every exporter the URL names once, stamps samples
// without their own timestamp with now, appends the chosen ones and returns
// how many. An exporter that fails is left out (logged) while one answers.
func (s *Scraper) ScrapeOnce(ctx context.Context, now time.Time) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Interval)
	defer cancel()
	targets := s.fan.Targets(ctx)
	got := make([][]Sample, len(targets))
	failed, err := fanout.ReadAll(targets, func(i int, t fanout.Target) (err error) {
		got[i], err = s.scrape(ctx, t, now)
		return err
	})
	if err != nil {
		return 0, err
	}
	if len(failed) > 0 {
		s.log.Warn("scrape failed at some exporters: their nodes' samples are missing", "failed", len(failed), "of", len(targets), "err", errors.Join(failed...))
	}
	samples := slices.Concat(got...)
	if len(samples) == 0 {
		return 0, nil
	}
	skipped, err := s.store.Append(ctx, samples)
	if err != nil {
		return 0, err
	}
	if skipped > 0 {
		s.log.Warn("samples the store refused (older than their series' newest, or a second value at one time) were left out; the rest of the scrape is kept", "skipped", skipped, "of", len(samples))
	}
	return len(samples) - skipped, nil
}

// scrape reads one exporter and returns the samples to keep.
func (s *Scraper) scrape(ctx context.Context, t fanout.Target, now time.Time) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("store: scrape %s: %w", s.cfg.URL, err)
	}
	req.Header.Set("Accept", acceptHeader)
	req.Header.Set("X-Prometheus-Scrape-Timeout-Seconds", strconv.FormatFloat(s.cfg.Interval.Seconds(), 'f', -1, 64))
	resp, err := t.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("store: scrape %s at %s: %w", s.cfg.URL, t.Addr, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
		return nil, fmt.Errorf("store: scrape %s at %s: HTTP %s", s.cfg.URL, t.Addr, resp.Status)
	}
	dec := expfmt.NewDecoder(resp.Body, expfmt.ResponseFormat(resp.Header))
	var samples []Sample
	for {
		var mf dto.MetricFamily
		if err := dec.Decode(&mf); err != nil {
			if errors.Is(err, io.EOF) {
				return samples, nil
			}
			return nil, fmt.Errorf("store: scrape %s at %s: parse: %w", s.cfg.URL, t.Addr, err)
		}
		samples = s.keep(samples, &mf, now, t.Addr)
	}
}

func (s *Scraper) keep(dst []Sample, mf *dto.MetricFamily, now time.Time, instance string) []Sample {
	name := mf.GetName()
	for _, m := range mf.GetMetric() {
		t := now
		if m.TimestampMs != nil {
			t = time.UnixMilli(m.GetTimestampMs())
		}
		add := func(n string, v float64) {
			if !slices.Contains(s.cfg.Metrics, n) {
				return
			}
			b := labels.NewBuilder(labels.EmptyLabels())
			b.Set(labels.MetricName, n)
			for _, lp := range m.GetLabel() {
				b.Set(lp.GetName(), lp.GetValue())
			}
			for k, v := range s.cfg.Labels {
				b.Set(k, v)
			}
			if b.Get("instance") == "" {
				b.Set("instance", instance)
			}
			dst = append(dst, Sample{Labels: b.Labels(), T: t, V: v})
		}
		switch mf.GetType() {
		case dto.MetricType_COUNTER:
			add(name, m.GetCounter().GetValue())
		case dto.MetricType_GAUGE:
			add(name, m.GetGauge().GetValue())
		case dto.MetricType_UNTYPED:
			add(name, m.GetUntyped().GetValue())
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			add(name+"_count", float64(m.GetHistogram().GetSampleCount()))
			add(name+"_sum", m.GetHistogram().GetSampleSum())
		case dto.MetricType_SUMMARY:
			add(name+"_count", float64(m.GetSummary().GetSampleCount()))
			add(name+"_sum", m.GetSummary().GetSampleSum())
		}
	}
	return dst
}
