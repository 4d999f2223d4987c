// Package alerts holds infercast's Prometheus rules (infercast.rules.yml),
// their promtool unit tests (infercast.rules.test.yml) and an Alertmanager
// routing example; its Go tests lint and run them with the real promtool and
// amtool and hold every expression to the metric names infercast exports.
package alerts
