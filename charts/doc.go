// Package charts holds infercast's Helm chart (charts/infercast) and its
// tests: helm lint, helm template with default and non-default values,
// kubeconform -strict against schemas generated from a real kube-apiserver,
// and the chart's promises (hardening, RBAC, TLS, monitoring objects).
package charts
