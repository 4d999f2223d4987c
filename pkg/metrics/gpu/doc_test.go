package gpu

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/internal/testutil"
)

// checkDocumented fails for every metric, type or label the collector
// emits that docs/exporter-subsystems.md does not document.
func checkDocumented(t *testing.T, g prometheus.Gatherer) map[string]bool {
	t.Helper()
	return testutil.CheckDocumented(t, g, "docs/exporter-subsystems.md")
}
