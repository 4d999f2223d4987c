package batchctl

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const goodConfig = `models:
  - model: ranker
    slo: 250ms
    max_batch_size: 64
    interval: 5s
    queue_delays: [0s, 1ms, 5ms]
    workload: search
    reject_late: true
    actuator:
      kind: triton
      url: http://127.0.0.1:8000
      model: ranker_trt
      min_interval: 10m
      min_gain: 0.2
  - model: chat
    slo: 2s
    max_batch_size: 32
    actuator:
      server: vllm
  - model: embed
    slo: 100ms
    max_batch_size: 16
    actuator: {kind: rayserve, url: "http://ray:8265", application: app, deployment: Embedder}
  - model: rerank
    slo: 1s
    max_batch_size: 8
    actuator: {kind: webhook, url: "https://hooks.example/batch", min_gain: 0.01}
`

func TestParseConfig(t *testing.T) {
	c, err := ParseConfig([]byte(goodConfig))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Models) != 4 {
		t.Fatalf("%d models, want 4", len(c.Models))
	}
	r := &c.Models[0]
	cc := r.ControllerConfig()
	if cc.SLO != 250*time.Millisecond || cc.Bounds.MaxBatchSize != 64 || len(cc.Bounds.Delays) != 3 || cc.Bounds.Delays[2] != 5*time.Millisecond {
		t.Errorf("controller config %+v", cc)
	}
	if !cc.RejectLate || c.Models[1].ControllerConfig().RejectLate {
		t.Errorf("reject_late: %v for ranker (set), %v for chat (unset)", cc.RejectLate, c.Models[1].ControllerConfig().RejectLate)
	}
	if r.Workload != "search" {
		t.Errorf("workload %q, want search", r.Workload)
	}
	if r.IntervalDuration() != 5*time.Second || c.Models[1].IntervalDuration() != DefaultInterval {
		t.Errorf("intervals %s, %s", r.IntervalDuration(), c.Models[1].IntervalDuration())
	}
	if got := c.Models[1].ControllerConfig().Bounds.Delays; len(got) != len(DefaultDelays()) {
		t.Errorf("default delays %v", got)
	}
	act := r.NewActuator(nil)
	if act.Name() != "triton" || act.Limits() != (Limits{MinInterval: 10 * time.Minute, MinGain: 0.2}) {
		t.Errorf("triton actuator %s limits %+v", act.Name(), act.Limits())
	}
	if sn, ok := act.(serverName); !ok || sn.name != "ranker_trt" {
		t.Errorf("triton actuator %T does not apply under the server's name ranker_trt", act)
	}
	for i, want := range []string{"recommend-only", "rayserve", "webhook"} {
		a := c.Models[i+1].NewActuator(nil)
		if a.Name() != want {
			t.Errorf("model %s: actuator %s, want %s", c.Models[i+1].Model, a.Name(), want)
		}
	}
	if lim := c.Models[2].NewActuator(nil).Limits(); lim != DefaultRayServeLimits {
		t.Errorf("rayserve limits %+v, want the defaults", lim)
	}
	// A request to Triton can be a whole model reload: 5 min unless set;
	// 30 s for the others.
	if r.Actuator.timeout != 5*time.Minute {
		t.Errorf("triton timeout %s, want 5m", r.Actuator.timeout)
	}
	if got := c.Models[2].Actuator.timeout; got != 30*time.Second {
		t.Errorf("rayserve timeout %s, want 30s", got)
	}
	// Only what the file sets is overridden.
	if lim := c.Models[3].NewActuator(nil).Limits(); lim != (Limits{MinInterval: DefaultWebhookLimits.MinInterval, MinGain: 0.01}) {
		t.Errorf("webhook limits %+v, want the default interval and min_gain 0.01", lim)
	}
}

// Each invalid file is refused with an error that names the model and the
// field.
func TestParseConfigErrors(t *testing.T) {
	model := func(body string) string {
		return "models:\n  - model: ranker\n    slo: 250ms\n    max_batch_size: 64\n" + body
	}
	tests := []struct{ name, in, want string }{
		{"empty", "", "empty file"},
		{"no models", "models: []\n", "models: at least one model"},
		{"unknown top key", "modles: []\n", `line 1: unknown key "modles"`},
		{"typo in a model", model("    slp: 1s\n"), `line 5: models[0] (ranker): unknown key "slp"`},
		{"typo in the actuator", model("    actuator:\n      kind: triton\n      ur: http://x\n"), `line 7: models[0] (ranker): actuator.unknown key "ur"`},
		{"no model name", "models:\n  - slo: 1s\n    max_batch_size: 4\n", "models[0]: model: required"},
		{"no slo", "models:\n  - model: m\n    max_batch_size: 4\n", "models[0] (m): slo: required"},
		{"bad slo", "models:\n  - model: m\n    slo: fast\n    max_batch_size: 4\n", `models[0] (m): slo: time: invalid duration "fast"`},
		{"integer slo", "models:\n  - model: m\n    slo: 250\n    max_batch_size: 4\n", `models[0] (m): slo: time: missing unit`},
		{"no batch size", "models:\n  - model: m\n    slo: 1s\n", "models[0] (m): max_batch_size: 0 must be ≥ 1"},
		{"margin", model("    margin: 1\n"), "models[0] (ranker): margin: 1 must be in [0, 1)"},
		{"interval", model("    interval: 100ms\n"), "models[0] (ranker): interval: 100ms must be at least 1s"},
		{"delays not ascending", model("    queue_delays: [5ms, 1ms]\n"), "models[0] (ranker): queue_delays[1]: 1ms must be above the previous"},
		{"delay beyond slo", model("    queue_delays: [0s, 300ms]\n"), "models[0] (ranker): queue_delays[1]: 300ms is not below the SLO"},
		{"unknown kind", model("    actuator: {kind: tritonn, url: http://x}\n"), `models[0] (ranker): actuator.kind: "tritonn"`},
		{"triton without url", model("    actuator: {kind: triton}\n"), `models[0] (ranker): actuator.url: "": triton needs an http(s) URL`},
		{"triton bad url", model("    actuator: {kind: triton, url: triton:8000}\n"), `actuator.url: "triton:8000"`},
		{"ray without deployment", model("    actuator: {kind: rayserve, url: http://ray:8265, application: a}\n"), "models[0] (ranker): actuator: rayserve needs application and deployment"},
		{"ray cannot reject late", model("    reject_late: true\n    actuator: {kind: rayserve, url: http://ray:8265, application: a, deployment: d}\n"), "models[0] (ranker): reject_late: Ray Serve's @serve.batch has no queue timeout"},
		{"vllm cannot reject late", model("    reject_late: true\n    actuator: {server: vllm}\n"), "models[0] (ranker): reject_late: vllm has no queue timeout"},
		{"recommend-only with url", model("    actuator: {url: http://x}\n"), "models[0] (ranker): actuator: recommend-only changes nothing"},
		{"bad server", model("    actuator: {server: trt}\n"), `models[0] (ranker): actuator.server: "trt"`},
		{"min gain", model("    actuator: {kind: webhook, url: http://x, min_gain: -1}\n"), "models[0] (ranker): actuator.min_gain: -1"},
		{"model twice", model("") + "  - model: ranker\n    slo: 1s\n    max_batch_size: 2\n", "models[1] (ranker): model: listed twice"},
		{"wrong type", model("    margin: lots\n"), "line 5: cannot unmarshal !!str `lots` into float64"},
		// yaml.v3 alone would run it as 25.
		{"fractional batch size", "models:\n  - model: m\n    slo: 1s\n    max_batch_size: 25.6\n", "line 4: models[0].max_batch_size: cannot unmarshal !!float `25.6` into int (want a whole number)"},
		{"key twice", model("    slo: 1s\n"), `line 5: mapping key "slo" already defined`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadFileNamesThePath(t *testing.T) {
	p := filepath.Join(t.TempDir(), "batch.yaml")
	if err := os.WriteFile(p, []byte("models:\n  - model: m\n    slo: 1s\n    max_batch_sise: 4\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadFile(p); err == nil || !strings.Contains(err.Error(), p) || !strings.Contains(err.Error(), `models[0] (m): unknown key "max_batch_sise"`) {
		t.Fatalf("err = %v", err)
	}
	if _, err := LoadFile(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("a missing file was accepted")
	}
}

// adapter serve runs one controller per model on one registry.
func TestControllersShareARegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	for _, m := range []string{"a", "b"} {
		cfg := DefaultConfig(time.Second, 8)
		cfg.Registerer = reg
		c, err := New(cfg, &fakeActuator{})
		if err != nil {
			t.Fatalf("controller %s: %v", m, err)
		}
		c.SetApplied(m, Knobs{MaxBatchSize: 4})
	}
	if n, err := testutil.GatherAndCount(reg, "infercast_batch_applied_max_batch_size"); err != nil || n != 2 {
		t.Errorf("%d applied series (%v), want one per model (2)", n, err)
	}
}
