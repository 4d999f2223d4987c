package metrics

import (
	"context"
	"fmt"
	"testing"
)

// TestTargetModelOverridesFallbackDoesNot: a target's Model (a static
// target's model:, a pod's infercast.io/model annotation) names every
// series' model; its DefaultModel (a pod's app.kubernetes.io/name label,
// which most charts set whatever the pod serves) names only the series
// that carry no model label of their own, so a multi-model server's models
// and vLLM's model_name are kept.
func TestTargetModelOverridesFallbackDoesNot(t *testing.T) {
	const (
		triton = "nv_inference_pending_request_count{model=\"a\",version=\"1\"} 1\n" +
			"nv_inference_pending_request_count{model=\"b\",version=\"1\"} 2\n"
		vllm = "vllm:num_requests_running{model_name=\"m\"} 1\n"
		// Knative through OpenTelemetry: the service is on target_info only.
		otel = "kn_serving_queue_depth 3\n"
	)
	for _, tc := range []struct {
		name, dialect, body, model, fallback string
		want                                 []string
	}{
		{"multi-model server, label fallback", DialectTriton, triton, "", "chart", []string{"a", "b"}},
		{"multi-model server, annotated", DialectTriton, triton, "x", "chart", []string{"x"}},
		{"vLLM, label fallback", DialectVLLM, vllm, "", "chart", []string{"m"}},
		{"series without a model label, label fallback", DialectQueueProxy, otel, "", "chart", []string{"chart"}},
		{"series without a model label, annotated", DialectQueueProxy, otel, "svc", "chart", []string{"svc"}},
		{"series without a model label, neither", DialectQueueProxy, otel, "", "", []string{"unknown"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newBodyServer(t)
			srv.set([]byte(tc.body))
			e := newTestExporter(t, newFakeClock())
			d, _ := BuiltinDialect(tc.dialect)
			e.SetTargets(SourceKubernetes, []Target{{Name: "ns/pod-0", URL: srv.URL, Dialect: d, Model: tc.model, DefaultModel: tc.fallback}})
			e.Cycle(context.Background())
			served := e.ServedModels()
			if len(served) != 1 || fmt.Sprint(served[0].Models) != fmt.Sprint(tc.want) {
				t.Errorf("served %+v, want models %v", served, tc.want)
			}
		})
	}
}

// TestTargetModelChangeStartsAfresh: a target whose fallback model
// changes (its pod relabelled) starts afresh, as one whose model does:
// its series' models were resolved with the old one.
func TestTargetModelChangeStartsAfresh(t *testing.T) {
	srv := newBodyServer(t)
	srv.set([]byte("kn_serving_queue_depth 3\n"))
	e := newTestExporter(t, newFakeClock())
	d, _ := BuiltinDialect(DialectQueueProxy)
	for _, fallback := range []string{"old", "new"} {
		e.SetTargets(SourceKubernetes, []Target{{Name: "ns/pod-0", URL: srv.URL, Dialect: d, DefaultModel: fallback}})
		e.Cycle(context.Background())
		if served := e.ServedModels(); len(served) != 1 || fmt.Sprint(served[0].Models) != "["+fallback+"]" {
			t.Errorf("served %+v, want [%s]", served, fallback)
		}
	}
}

// TestStaticTargetNamesModelWhereSeriesNameNone: a static target of a
// dialect whose series carry no model label (TGI, a generic mapping
// without model_label) and no model: reports its series under its name;
// model: still wins. A dialect with model labels leaves a series that
// lacks one as model unknown (Knative through OpenTelemetry: give it
// model:).
func TestStaticTargetNamesModelWhereSeriesNameNone(t *testing.T) {
	const (
		tgi     = "tgi_queue_size 2\n"
		generic = "my_queue 9\n"
		otel    = "kn_serving_queue_depth 3\n"
	)
	for _, tc := range []struct {
		name, dialect, mapping, body, model string
		want                                string
	}{
		{"tgi without model", DialectTGI, "", tgi, "", "[bloom-0]"},
		{"tgi with model", DialectTGI, "", tgi, "bigscience/bloom", "[bigscience/bloom]"},
		{"generic without model_label", DialectGeneric, "plain", generic, "", "[bloom-0]"},
		{"generic with model_label, series without it", DialectGeneric, "labelled", generic, "", "[unknown]"},
		{"queueproxy, series without a model label", DialectQueueProxy, "", otel, "", "[unknown]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := newBodyServer(t)
			srv.set([]byte(tc.body))
			e := newTestExporterWith(t, newFakeClock(), func(c *Config) {
				c.GenericMappings = map[string]GenericConfig{
					"plain":    {QueueWaiting: "my_queue"},
					"labelled": {QueueWaiting: "my_queue", ModelLabel: "svc"},
				}
			}, TargetConfig{Name: "bloom-0", URL: srv.URL, Dialect: tc.dialect, Mapping: tc.mapping, Model: tc.model})
			e.Cycle(context.Background())
			served := e.ServedModels()
			if len(served) != 1 || fmt.Sprint(served[0].Models) != tc.want {
				t.Errorf("served %+v, want models %s", served, tc.want)
			}
		})
	}
}
