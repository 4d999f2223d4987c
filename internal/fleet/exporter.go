package fleet

import (
	"fmt"

	"github.com/infercast/infercast/pkg/metrics"
)

// exporterDialects maps the fleet's simulated dialects to the exporter's.
var exporterDialects = map[Dialect]string{
	VLLM: metrics.DialectVLLM, VLLMLegacy: metrics.DialectVLLM,
	Triton: metrics.DialectTriton, TGI: metrics.DialectTGI,
	SGLang: metrics.DialectSGLang, RayServe: metrics.DialectRayServe,
	KServe: metrics.DialectQueueProxy,
}

// ExporterTargets returns the started fleet's servers as exporter targets,
// with each model's max batch size, for `exporter --demo`, `adapter demo`
// and the integration tests.
func ExporterTargets(f *Fleet, cfg Config) ([]metrics.Target, error) {
	maxBatch := map[string]int{}
	for _, s := range cfg.Servers {
		maxBatch[s.Model] = s.MaxBatch
	}
	var out []metrics.Target
	for _, t := range f.Targets() {
		name, ok := exporterDialects[t.Dialect]
		if !ok {
			return nil, fmt.Errorf("fleet dialect %q has no exporter dialect", t.Dialect)
		}
		d, _ := metrics.BuiltinDialect(name)
		out = append(out, metrics.Target{
			Name: t.Name, URL: t.URL, Dialect: d, Model: t.Model,
			MaxBatchSize: maxBatch[t.Model], Timeout: metrics.DefaultScrapeTimeout,
		})
	}
	return out, nil
}
