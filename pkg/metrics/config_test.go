package metrics

import (
	"testing"
	"time"
)

func TestParseConfigInvalid(t *testing.T) {
	const tgt = "targets:\n  - {name: a, url: 'http://127.0.0.1:8000/metrics', dialect: vllm}\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "targetz: []\n", "yaml: unmarshal errors:\n  line 1: field targetz not found in type metrics.Config"},
		{"unknown target key", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm, modle: x}\n", "yaml: unmarshal errors:\n  line 2: field modle not found in type metrics.TargetConfig"},
		{"bad duration", "global: {scrape_interval: fast}\n", "yaml: unmarshal errors:\n  line 1: cannot unmarshal !!str `fast` into time.Duration"},
		{"timeout above interval", "global: {scrape_interval: 5s, scrape_timeout: 10s}\n", "global.scrape_timeout: 10s is longer than global.scrape_interval 5s"},
		{"window below interval", "global: {scrape_interval: 30s, windows: [10s]}\n", "global.windows[0]: 10s is shorter than global.scrape_interval 30s"},
		{"windows not increasing", "global: {windows: [5m, 1m]}\n", "global.windows[1]: windows must be strictly increasing"},
		{"negative body limit", "global: {body_size_limit_bytes: -1}\n", "global.body_size_limit_bytes: must be positive"},
		{"missing name", "targets:\n  - {url: 'http://x/metrics', dialect: vllm}\n", "targets[0].name: required"},
		{"relative url", "targets:\n  - {name: a, url: '/metrics', dialect: vllm}\n", `targets[0].url: "/metrics" is not an absolute http(s) URL`},
		{"unknown dialect", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: ollama}\n", `targets[0].dialect: unknown dialect "ollama" (want one of [generic queueproxy rayserve sglang tgi triton vllm])`},
		{"duplicate names", tgt + "  - {name: a, url: 'http://y/metrics', dialect: tgi}\n", `targets[1].name: "a" already used by targets[0]`},
		{"generic without mapping", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: generic}\n", "targets[0].mapping: required with dialect generic"},
		{"undefined mapping", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: generic, mapping: m}\n", `targets[0].mapping: "m" is not defined in generic_mappings`},
		{"mapping on builtin dialect", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm, mapping: m}\n", "targets[0].mapping: only allowed with dialect generic"},
		{"empty mapping", "generic_mappings:\n  m: {model_label: model}\n", "generic_mappings.m.requests_total: a mapping needs at least one metric"},
		{"unknown mapping key", "generic_mappings:\n  m: {requests_total: r, request_clump_size_sum: c}\n", "yaml: unmarshal errors:\n  line 2: field request_clump_size_sum not found in type metrics.GenericConfig"},
		{"clump counter is the requests counter", "generic_mappings:\n  m: {requests_total: gw_requests_total, request_clump_size_sum_total: gw_requests}\n", `generic_mappings.m.request_clump_size_sum_total: "gw_requests" is the requests_total counter "gw_requests_total"`},
		{"malformed YAML", "generic_mappings:\n  m: {requests_total: \"\"\n", "yaml: line 1: did not find expected ',' or '}'"},
		{"negative max batch", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm, max_batch_size: -4}\n", "targets[0].max_batch_size: must not be negative"},
		{"unknown spot provider", "integrations: {spot: {providers: [oracle]}}\n", `integrations.spot.providers[0]: unknown provider "oracle" (want aws, gcp or azure)`},
		{"relative proc root", "integrations: {gpu: {enabled: true, proc_root: host/proc}}\n", `integrations.gpu.proc_root: "host/proc" is not an absolute path`},
		{"two documents", tgt + "---\n" + tgt, "config holds more than one YAML document"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			if err.Error() != tc.want {
				t.Errorf("error\n got: %s\nwant: %s", err, tc.want)
			}
		})
	}
}

func TestParseConfigDefaultsAndGeneric(t *testing.T) {
	c, err := ParseConfig([]byte(`
global: {scrape_interval: 10s}
targets:
  - {name: a, url: 'https://10.0.0.1:8443/metrics', dialect: generic, mapping: mine, bearer_token_file: /var/run/token}
generic_mappings:
  mine:
    model_label: model
    requests_total: my_requests_total
    queue_waiting: my_waiting
    request_latency_histogram: my_latency_ms
    histogram_unit_seconds: 0.001
`))
	if err != nil {
		t.Fatal(err)
	}
	if c.Global.ScrapeTimeout != 4*time.Second || c.Targets[0].Timeout != 4*time.Second {
		t.Errorf("timeouts %v/%v, want 4s defaults", c.Global.ScrapeTimeout, c.Targets[0].Timeout)
	}
	if len(c.Global.Windows) != 2 || c.Global.Windows[1] != 5*time.Minute {
		t.Errorf("windows %v, want [1m 5m]", c.Global.Windows)
	}
	if c.Integrations.GPU.ProcRoot != DefaultProcRoot {
		t.Errorf("integrations.gpu.proc_root %q, want the default %q", c.Integrations.GPU.ProcRoot, DefaultProcRoot)
	}
	ts, err := StaticTargets(c)
	if err != nil {
		t.Fatal(err)
	}
	d := ts[0].Dialect
	if r, ok := d.rules["my_latency_ms_bucket"]; !ok || r.scale != 0.001 || r.sig != SigLatency {
		t.Errorf("generic histogram rule = %+v, %v", r, ok)
	}
	if _, ok := d.rules["my_requests"]; !ok {
		t.Error("counter without _total not accepted")
	}

	// A mapping of the clump counter alone (a gateway's) is a mapping.
	c, err = ParseConfig([]byte("generic_mappings:\n  gw: {model_label: model, request_clump_size_sum_total: gw_clump_size_sum_total}\n"))
	if err != nil {
		t.Fatal(err)
	}
	d = GenericDialect("gw", c.GenericMappings["gw"])
	for _, n := range []string{"gw_clump_size_sum_total", "gw_clump_size_sum"} {
		if r, ok := d.rules[n]; !ok || r.sig != SigClumpSizeSum || !r.sig.isCounter() {
			t.Errorf("clump counter rule %s = %+v, %v", n, r, ok)
		}
	}
}
