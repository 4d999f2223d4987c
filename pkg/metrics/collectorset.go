package metrics

import (
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// ErrCollector is a collector that can say it failed; the Exporter is one.
type ErrCollector interface {
	prometheus.Collector
	CollectErr(ch chan<- prometheus.Metric) error
}

// CollectorSet runs named collectors concurrently on every scrape and
// exports infercast_collector_scrape_success and
// infercast_collector_scrape_duration_seconds for each, so one failing
// collector (no GPU driver, an unreachable metadata service) never fails the
// scrape: its bad metrics are dropped and its success is 0.
type CollectorSet struct {
	log      *slog.Logger
	mu       sync.RWMutex
	names    []string
	cs       map[string]prometheus.Collector
	success  *prometheus.Desc
	duration *prometheus.Desc
}

// NewCollectorSet returns an empty set.
func NewCollectorSet(log *slog.Logger) *CollectorSet {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &CollectorSet{
		log: log,
		cs:  map[string]prometheus.Collector{},
		success: prometheus.NewDesc("infercast_collector_scrape_success",
			"1 when the collector produced its metrics without error on this scrape, else 0.", []string{"collector"}, nil),
		duration: prometheus.NewDesc("infercast_collector_scrape_duration_seconds",
			"Time the collector took on this scrape.", []string{"collector"}, nil),
	}
}

// Add registers c under name; call before the set is registered.
func (s *CollectorSet) Add(name string, c prometheus.Collector) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.cs[name]; !dup {
		s.names = append(s.names, name)
		slices.Sort(s.names)
	}
	s.cs[name] = c
}

// Describe implements prometheus.Collector.
func (s *CollectorSet) Describe(ch chan<- *prometheus.Desc) {
	ch <- s.success
	ch <- s.duration
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, n := range s.names {
		s.cs[n].Describe(ch)
	}
}

// Collect implements prometheus.Collector.
func (s *CollectorSet) Collect(ch chan<- prometheus.Metric) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var wg sync.WaitGroup
	for _, n := range s.names {
		c := s.cs[n]
		wg.Go(func() { s.run(n, c, ch) })
	}
	wg.Wait()
}

func (s *CollectorSet) run(name string, c prometheus.Collector, ch chan<- prometheus.Metric) {
	start := time.Now()
	ok := true
	if ec, is := c.(ErrCollector); is {
		if err := ec.CollectErr(ch); err != nil {
			ok = false
			s.log.Debug("collector failed", "collector", name, "err", err)
		}
	} else {
		// A plain Collector reports failure by sending an invalid metric;
		// drop those (they would fail the whole scrape) and count a failure.
		inner := make(chan prometheus.Metric, 64)
		done := make(chan struct{})
		go func() {
			defer close(done)
			var m dto.Metric
			for metric := range inner {
				if err := metric.Write(&m); err != nil {
					if ok {
						s.log.Debug("collector failed", "collector", name, "err", err)
					}
					ok = false
					continue
				}
				ch <- metric
			}
		}()
		c.Collect(inner)
		close(inner)
		<-done
	}
	v := 0.0
	if ok {
		v = 1
	}
	ch <- prometheus.MustNewConstMetric(s.success, prometheus.GaugeValue, v, name)
	ch <- prometheus.MustNewConstMetric(s.duration, prometheus.GaugeValue, time.Since(start).Seconds(), name)
}
