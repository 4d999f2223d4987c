package kube

import "github.com/prometheus/client_golang/prometheus"

// Describe implements prometheus.Collector.
func (d *Discovery) Describe(ch chan<- *prometheus.Desc) {
	ch <- d.targetsDesc
	ch <- d.invalidDesc
	ch <- d.syncedDesc
}

// Collect implements prometheus.Collector.
func (d *Discovery) Collect(ch chan<- prometheus.Metric) {
	d.mu.Lock()
	defer d.mu.Unlock()
	byDialect := map[string]int{}
	for _, t := range d.last {
		byDialect[t.Dialect]++
	}
	for dialect, n := range byDialect {
		ch <- prometheus.MustNewConstMetric(d.targetsDesc, prometheus.GaugeValue, float64(n), dialect)
	}
	ch <- prometheus.MustNewConstMetric(d.invalidDesc, prometheus.GaugeValue, float64(d.invalid))
	synced := 0.0
	if d.synced {
		synced = 1
	}
	ch <- prometheus.MustNewConstMetric(d.syncedDesc, prometheus.GaugeValue, synced)
}
