package metrics

import (
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reloader re-reads a config file into an Exporter (SIGHUP, POST /-/reload)
// and exports whether the last attempt worked, as
// infercast_exporter_config_last_reload_successful and
// infercast_exporter_config_last_reload_success_timestamp_seconds.
type Reloader struct {
	path string
	exp  *Exporter
	log  *slog.Logger

	mu          sync.Mutex
	onLoad      []func(Config) (func(), error)
	onApplied   []func(Config)
	ok          float64
	lastSuccess time.Time
	okDesc      *prometheus.Desc
	tsDesc      *prometheus.Desc
}

// NewReloader returns a Reloader of path into exp. With path "" (a demo run
// on built-in defaults) it exports success until a reload is attempted,
// which then fails: there is no file to read.
func NewReloader(path string, exp *Exporter, log *slog.Logger) *Reloader {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Reloader{
		path: path, exp: exp, log: log, ok: 1, lastSuccess: time.Now(),
		okDesc: prometheus.NewDesc("infercast_exporter_config_last_reload_successful",
			"1 when the last configuration reload succeeded (or none was attempted), else 0.", nil, nil),
		tsDesc: prometheus.NewDesc("infercast_exporter_config_last_reload_success_timestamp_seconds",
			"Unix time of the last successful configuration load.", nil, nil),
	}
}

// OnLoad registers f, called with every config a reload reads, before
// any of it is applied: f reads what the config names beyond the
// Exporter's part (a price catalogue file) and returns what applies it
// (nil: nothing), or an error that fails the reload with the running
// config kept whole.
func (r *Reloader) OnLoad(f func(Config) (apply func(), err error)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onLoad = append(r.onLoad, f)
}

// OnApplied registers f, called with the new config after each successful
// reload (targets from discovery re-resolve their generic mappings).
func (r *Reloader) OnApplied(f func(Config)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.onApplied = append(r.onApplied, f)
}

// Reload applies the config file again; on error the running config stays.
func (r *Reloader) Reload() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	cfg, err := r.reload()
	if err != nil {
		r.ok = 0
		return err
	}
	for _, f := range r.onApplied {
		f(cfg)
	}
	r.ok = 1
	r.lastSuccess = time.Now()
	r.log.Info("configuration reloaded", "file", r.path)
	return nil
}

func (r *Reloader) reload() (Config, error) {
	if r.path == "" {
		return Config{}, errors.New("no --config.file to reload")
	}
	cfg, err := LoadConfigFile(r.path)
	if err != nil {
		return Config{}, err
	}
	var applies []func()
	for _, f := range r.onLoad {
		apply, err := f(cfg)
		if err != nil {
			return Config{}, err
		}
		if apply != nil {
			applies = append(applies, apply)
		}
	}
	if err := r.exp.ApplyConfig(cfg); err != nil {
		return Config{}, err
	}
	for _, apply := range applies {
		apply()
	}
	return cfg, nil
}

// Describe implements prometheus.Collector.
func (r *Reloader) Describe(ch chan<- *prometheus.Desc) { ch <- r.okDesc; ch <- r.tsDesc }

// Collect implements prometheus.Collector.
func (r *Reloader) Collect(ch chan<- prometheus.Metric) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(r.okDesc, prometheus.GaugeValue, r.ok)
	ch <- prometheus.MustNewConstMetric(r.tsDesc, prometheus.GaugeValue, float64(r.lastSuccess.UnixNano())/1e9)
}
