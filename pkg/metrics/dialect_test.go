package metrics

import (
	"math"
	"testing"
)

// TestCounterSpellings: a counter's name without _total is read where the
// _total one is absent, and ignored where both are exposed — Ray ≥ 2.10
// exports every counter as <name>_total and, by default, as a deprecated
// gauge <name> of the same value, which summed would double the request
// rate.
func TestCounterSpellings(t *testing.T) {
	const labels = `{deployment="llm",replica="r1"}`
	for _, tc := range []struct {
		name, body string
		want       float64
	}{
		{"_total only", "ray_serve_deployment_request_counter_total" + labels + " 400\n", 400},
		{"bare only", "ray_serve_deployment_request_counter" + labels + " 400\n", 400},
		{"both, _total first", "ray_serve_deployment_request_counter_total" + labels + " 400\n" +
			"ray_serve_deployment_request_counter" + labels + " 400\n", 400},
		{"both, bare first", "# TYPE ray_serve_deployment_request_counter gauge\n" +
			"ray_serve_deployment_request_counter" + labels + " 400\n" +
			"# TYPE ray_serve_deployment_request_counter_total counter\n" +
			"ray_serve_deployment_request_counter_total" + labels + " 400\n", 400},
		// Two replicas of one deployment still add up.
		{"two replicas", "ray_serve_deployment_request_counter_total" + labels + " 400\n" +
			`ray_serve_deployment_request_counter_total{deployment="llm",replica="r2"} 100` + "\n" +
			"ray_serve_deployment_request_counter" + labels + " 400\n" +
			`ray_serve_deployment_request_counter{deployment="llm",replica="r2"} 100` + "\n", 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := newIngester()
			if _, err := g.ingest([]byte(tc.body), "text/plain; version=0.0.4", rayServeDialect(), ""); err != nil {
				t.Fatal(err)
			}
			a := g.accs["llm"]
			if a == nil || !a.has(SigRequests) {
				t.Fatalf("no request count read: %+v", g.accs)
			}
			if got := a.vals[SigRequests]; got != tc.want {
				t.Errorf("requests = %v, want %v", got, tc.want)
			}
		})
	}
}

// TestQueueProxyDepthIsInFlight: every queue-proxy generation's queue depth
// is breaker.InFlight(), requests queued or executing (knative/serving
// pkg/queue/breaker.go), so it is read as running and never as a backlog:
// as waiting, an idle-queue server would show a drain time of one latency.
func TestQueueProxyDepthIsInFlight(t *testing.T) {
	for _, name := range []string{"kn_serving_queue_depth", "kn_queueproxy_depth", "revision_queue_depth", "queue_depth"} {
		t.Run(name, func(t *testing.T) {
			g := newIngester()
			if _, err := g.ingest([]byte(name+`{service_name="svc"} 7`+"\n"), "text/plain; version=0.0.4", queueProxyDialect(), ""); err != nil {
				t.Fatal(err)
			}
			a := g.accs["svc"]
			if a == nil || !a.has(SigRunning) || a.vals[SigRunning] != 7 {
				t.Fatalf("running not read as 7: %+v", a)
			}
			if a.has(SigWaiting) {
				t.Errorf("in-flight depth read as waiting (%v)", a.vals[SigWaiting])
			}
		})
	}
}

// TestTritonCountersAndSummaries: with both counter and summary latencies
// on, the request count is read once (the queue summary's count, equal to
// nv_inference_request_success there, not their sum) and the duration
// counters win over the summaries' sums.
func TestTritonCountersAndSummaries(t *testing.T) {
	const l = `{model="m",version="1"}`
	body := "nv_inference_request_success" + l + " 100\n" +
		"nv_inference_request_duration_us" + l + " 2e6\n" +
		"nv_inference_queue_duration_us" + l + " 5e5\n" +
		"nv_inference_request_summary_us_sum" + l + " 9e9\n" +
		"nv_inference_request_summary_us_count" + l + " 100\n" +
		"nv_inference_queue_summary_us_sum" + l + " 8e9\n" +
		"nv_inference_queue_summary_us_count" + l + " 100\n"
	g := newIngester()
	if _, err := g.ingest([]byte(body), "text/plain; version=0.0.4", tritonDialect(), ""); err != nil {
		t.Fatal(err)
	}
	a := g.accs["m"]
	for _, c := range []struct {
		s    Signal
		want float64
	}{{SigRequests, 100}, {SigLatencyTotal, 2}, {SigQueueTotal, 0.5}} {
		if got := a.vals[c.s]; math.Abs(got-c.want) > 1e-9 {
			t.Errorf("signal %d = %v, want %v", c.s, got, c.want)
		}
	}
}
