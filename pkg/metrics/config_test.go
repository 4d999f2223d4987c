package metrics

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseConfigInvalid(t *testing.T) {
	const tgt = "targets:\n  - {name: a, url: 'http://127.0.0.1:8000/metrics', dialect: vllm}\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown top-level key", "targetz: []\n", "line 1: targetz: unknown field (did you mean targets?)"},
		{"unknown target key", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm, modle: x}\n", "line 2: targets[0].modle: unknown field (did you mean model?)"},
		{"bad duration", "global: {scrape_interval: fast}\n", "line 1: global.scrape_interval: cannot unmarshal !!str `fast` into time.Duration (want a duration with a unit, e.g. \"180s\")"},
		{"timeout above interval", "global: {scrape_interval: 5s, scrape_timeout: 10s}\n", "line 1: global.scrape_timeout: 10s is longer than global.scrape_interval 5s"},
		// Written as 0 is not left out: no silent default.
		{"zero interval", "global:\n  scrape_interval: 0s\n", "line 2: global.scrape_interval: 0 is not a valid value (leave the key out for its default)"},
		{"zero concurrency", "global: {max_concurrent_scrapes: 0}\n", "line 1: global.max_concurrent_scrapes: 0 is not a valid value (leave the key out for its default)"},
		{"zero target timeout", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm}\n  - name: b\n    url: 'http://y/metrics'\n    dialect: vllm\n    timeout: 0s\n", "line 6: targets[1].timeout: 0 is not a valid value (leave the key out for global.scrape_timeout)"},
		{"zero histogram unit", "generic_mappings:\n  m: {model_label: model, requests_total: r_total, histogram_unit_seconds: 0}\n", "line 2: generic_mappings.m.histogram_unit_seconds: 0 is not a valid value (leave the key out for its default)"},
		{"window below interval", "global: {scrape_interval: 30s, windows: [10s]}\n", "line 1: global.windows[0]: 10s is shorter than global.scrape_interval 30s"},
		{"windows not increasing", "global: {windows: [5m, 1m]}\n", "line 1: global.windows[1]: windows must be strictly increasing"},
		{"negative body limit", "global: {body_size_limit_bytes: -1}\n", "line 1: global.body_size_limit_bytes: must be positive"},
		{"missing name", "targets:\n  - {url: 'http://x/metrics', dialect: vllm}\n", "line 2: targets[0].name: required"},
		{"relative url", "targets:\n  - {name: a, url: '/metrics', dialect: vllm}\n", `line 2: targets[0].url: "/metrics" is not an absolute http(s) URL`},
		{"unknown dialect", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: ollama}\n", `line 2: targets[0].dialect: unknown dialect "ollama" (want one of [generic queueproxy rayserve sglang tgi triton vllm])`},
		{"duplicate names", tgt + "  - {name: a, url: 'http://y/metrics', dialect: tgi}\n", `line 3: targets[1].name: "a" already used by targets[0]`},
		{"generic without mapping", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: generic}\n", "line 2: targets[0].mapping: required with dialect generic"},
		{"undefined mapping", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: generic, mapping: m}\n", `line 2: targets[0].mapping: "m" is not defined in generic_mappings`},
		{"mapping on builtin dialect", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm, mapping: m}\n", "line 2: targets[0].mapping: only allowed with dialect generic"},
		{"empty mapping", "generic_mappings:\n  m: {model_label: model}\n", "line 2: generic_mappings.m.requests_total: a mapping needs at least one metric"},
		{"unknown mapping key", "generic_mappings:\n  m: {requests_total: r, request_clump_size_sum: c}\n", "line 2: generic_mappings.m.request_clump_size_sum: unknown field (known: batch_size, histogram_unit_seconds, kv_cache_usage_ratio, model_label, queue_time_histogram, queue_waiting, request_clump_size_sum_total, request_latency_histogram, requests_total, running, time_per_output_token_histogram, time_to_first_token_histogram)"},
		{"clump counter is the requests counter", "generic_mappings:\n  m: {requests_total: gw_requests_total, request_clump_size_sum_total: gw_requests}\n", `line 2: generic_mappings.m.request_clump_size_sum_total: "gw_requests" is the requests_total counter "gw_requests_total"`},
		{"malformed YAML", "generic_mappings:\n  m: {requests_total: \"\"\n", "line 1: did not find expected ',' or '}'"},
		{"fraction for an integer", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm, max_batch_size: 25.6}\n", "line 2: targets[0].max_batch_size: cannot unmarshal !!float `25.6` into int (want a whole number)"},
		{"fraction for a global integer", "global:\n  body_size_limit_bytes: 1e3\n  max_concurrent_scrapes: 2.5\n", "line 3: global.max_concurrent_scrapes: cannot unmarshal !!float `2.5` into int (want a whole number)"},
		{"negative max batch", "targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm, max_batch_size: -4}\n", "line 2: targets[0].max_batch_size: must not be negative"},
		{"unknown spot provider", "integrations: {spot: {providers: [oracle]}}\n", `line 1: integrations.spot.providers[0]: unknown provider "oracle" (want aws, gcp or azure)`},
		{"relative proc root", "integrations: {gpu: {enabled: true, proc_root: host/proc}}\n", `line 1: integrations.gpu.proc_root: "host/proc" is not an absolute path`},
		{"two documents", tgt + "---\n" + tgt, "line 3: config holds more than one YAML document"},
		{"not a mapping", "- targets\n", "line 1: want a mapping of global, targets, generic_mappings and integrations"},
		{"unknown integration key", "integrations:\n  gpu:\n    enable: true\n", "line 3: integrations.gpu.enable: unknown field (did you mean enabled?)"},
		{"repeated key", "targets:\n  - name: a\n    url: 'http://x/metrics'\n    url: 'http://y/metrics'\n", `line 4: targets[0].url: mapping key "url" already defined at line 3`},
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

// TestLoadConfigFileErrors: a file's errors name the file, the line and
// the key path, as the policy file's do — not yaml.v3's "unmarshal
// errors:\n  line 2: field scrape_intervall not found in type
// metrics.GlobalConfig" — and a problem found after decoding is at the
// line of its key.
func TestLoadConfigFileErrors(t *testing.T) {
	const good = "global:\n  scrape_interval: 5s\n  scrape_timeout: 4s\ntargets:\n  - name: llama-0\n    url: http://127.0.0.1:1/metrics\n    dialect: vllm\n    max_batch_size: 256\n"
	dir := t.TempDir()
	for _, tc := range []struct{ name, old, new, want string }{
		{"typo.yaml", "scrape_interval", "scrape_intervall", "typo.yaml:2: global.scrape_intervall: unknown field (did you mean scrape_interval?)"},
		{"dialect.yaml", "dialect: vllm", "dialect: ollama", `dialect.yaml:7: targets[0].dialect: unknown dialect "ollama" (want one of [generic queueproxy rayserve sglang tgi triton vllm])`},
		{"timeout.yaml", "scrape_timeout: 4s", "scrape_timeout: 10s", "timeout.yaml:3: global.scrape_timeout: 10s is longer than global.scrape_interval 5s"},
		{"duration.yaml", "scrape_interval: 5s", "scrape_interval: 5", "duration.yaml:2: global.scrape_interval: cannot unmarshal !!int `5` into time.Duration (want a duration with a unit, e.g. \"180s\")"},
		{"syntax.yaml", "dialect: vllm", "dialect: vllm: x", "syntax.yaml:7: mapping values are not allowed in this context"},
	} {
		path := filepath.Join(dir, tc.name)
		if err := os.WriteFile(path, []byte(strings.Replace(good, tc.old, tc.new, 1)), 0o600); err != nil {
			t.Fatal(err)
		}
		want := filepath.Join(dir, tc.want)
		if _, err := LoadConfigFile(path); err == nil || err.Error() != want {
			t.Errorf("%s: error\n got: %v\nwant: %s", tc.name, err, want)
		}
	}
}

// TestScrapesNothing: an empty file is a valid configuration that scrapes
// nothing, which the exporter warns about (cmd/exporter).
func TestScrapesNothing(t *testing.T) {
	for _, tc := range []struct {
		yaml string
		want bool
	}{
		{"", true},
		{"global: {scrape_interval: 10s}\n", true},
		{"targets:\n  - {name: a, url: 'http://x/metrics', dialect: vllm}\n", false},
		{"integrations: {kubernetes: {enabled: true}}\n", false},
	} {
		c, err := ParseConfig([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := c.ScrapesNothing(); got != tc.want {
			t.Errorf("%q: ScrapesNothing() = %v, want %v", tc.yaml, got, tc.want)
		}
	}
}
