package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"
	"golang.org/x/crypto/bcrypt"

	"github.com/infercast/infercast/internal/exporterdemo"
	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/metrics/cost"
	"github.com/infercast/infercast/pkg/metrics/gpu"
	"github.com/infercast/infercast/pkg/metrics/kube"
	"github.com/infercast/infercast/pkg/metrics/spot"
	"k8s.io/client-go/kubernetes/fake"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var updateDocs = flag.Bool("update-docs", false, "regenerate the table in docs/metrics.md")

// running is an exporter started by startRun.
type running struct {
	addr   string
	cancel context.CancelFunc
	done   chan error
	client *http.Client
}

func startRun(t *testing.T, o options) *running {
	t.Helper()
	return startRunLog(t, o, slog.New(slog.NewTextHandler(io.Discard, nil)))
}

// startRunLog is startRun with the exporter logging to log.
func startRunLog(t *testing.T, o options, log *slog.Logger) *running {
	t.Helper()
	addrc := make(chan string, 1)
	o.listening = addrc
	if o.listenAddress == "" {
		o.listenAddress = "127.0.0.1:0"
	}
	if o.telemetryPath == "" {
		o.telemetryPath = "/metrics"
	}
	if o.maxRequests == 0 {
		o.maxRequests = 4
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{cancel: cancel, done: make(chan error, 1), client: &http.Client{Timeout: 10 * time.Second}}
	go func() { r.done <- run(ctx, o, log) }()
	select {
	case r.addr = <-addrc:
	case err := <-r.done:
		t.Fatalf("run returned before listening: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("exporter did not listen within 30s")
	}
	t.Cleanup(func() { r.stop(t) })
	return r
}

// stop cancels run and checks that it shuts down cleanly.
func (r *running) stop(t *testing.T) {
	t.Helper()
	if r.cancel == nil {
		return
	}
	r.cancel()
	r.cancel = nil
	r.client.CloseIdleConnections()
	select {
	case err := <-r.done:
		if err != nil {
			t.Errorf("run returned %v on shutdown, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("run did not return within 30s of cancel")
	}
}

// reload asks the exporter to reload its config (POST /-/reload).
func (r *running) reload(t *testing.T) (int, string) {
	t.Helper()
	resp, err := r.client.Post("http://"+r.addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (r *running) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := r.client.Get("http://" + r.addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func (r *running) waitReady(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if code, _ := r.get(t, "/readyz"); code == http.StatusOK {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal("not ready within 60s")
}

// waitFor polls /metrics until cond holds on the parsed families.
func (r *running) waitFor(t *testing.T, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for {
		_, body := r.get(t, "/metrics")
		mfs := testutil.ParseExposition(t, body)
		if cond(mfs) {
			return mfs
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "exporter.yaml")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// fastDemo scrapes every second so windows fill within a test.
const fastDemo = "global: {scrape_interval: 1s, scrape_timeout: 1s}\n"

// TestDemoLintAndDocs runs `exporter --demo` in-process and checks its live
// output with promlint and against docs/metrics.md.
func TestDemoLintAndDocs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the demo fleet")
	}
	r := startRun(t, options{demo: true, configFile: writeConfig(t, fastDemo)})
	r.waitReady(t)
	mfs := r.waitFor(t, "every windowed family", func(m map[string]*dto.MetricFamily) bool {
		for _, n := range []string{"infercast_model_request_latency_seconds", "infercast_model_time_to_first_token_seconds",
			"infercast_model_time_per_output_token_seconds", "infercast_model_queue_time_seconds", "infercast_model_batch_size"} {
			if m[n] == nil {
				return false
			}
		}
		return true
	})
	_, body := r.get(t, "/metrics")

	t.Run("promlint", func(t *testing.T) {
		problems, err := promlint.New(strings.NewReader(body)).Lint()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	})

	t.Run("every family of the demo is filled", func(t *testing.T) {
		for _, name := range exporterdemo.Families {
			if mfs[name] == nil || len(mfs[name].GetMetric()) == 0 {
				t.Errorf("%s missing from the demo's output", name)
			}
		}
		for _, m := range mfs["infercast_target_up"].GetMetric() {
			if m.GetGauge().GetValue() != 1 {
				t.Errorf("demo target down: %v", m.GetLabel())
			}
		}
		sim := false
		for _, m := range mfs["infercast_gpu_info"].GetMetric() {
			for _, l := range m.GetLabel() {
				sim = sim || l.GetName() == "simulated" && l.GetValue() == "true"
			}
		}
		if !sim {
			t.Error(`demo GPUs are not marked simulated="true" (this machine has no GPU)`)
		}
	})

	t.Run("docs/metrics.md", func(t *testing.T) {
		const path = "../../docs/metrics.md"
		described := describedFamilies(t)
		if *updateDocs {
			writeMetricsDoc(t, path, mfs, described)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		documented := parseMetricsDoc(string(b))
		for name, mf := range mfs {
			if !strings.HasPrefix(name, "infercast_") {
				continue // Go runtime and process metrics: documented upstream
			}
			labels, ok := documented[name]
			if !ok {
				t.Errorf("%s is exported but not documented in docs/metrics.md", name)
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if !slices.Contains(labels, l.GetName()) {
						t.Errorf("%s: label %q is exported but not documented", name, l.GetName())
					}
				}
			}
		}
		// Families that appear only on events (errors, cold starts) are
		// checked through their descriptors.
		for name, d := range described {
			labels, ok := documented[name]
			if !ok {
				t.Errorf("%s can be exported but is not documented in docs/metrics.md", name)
				continue
			}
			for _, l := range d.labels {
				if !slices.Contains(labels, l) {
					t.Errorf("%s: label %q can be exported but is not documented", name, l)
				}
			}
		}
	})
}

// docRow matches a reference table row: | `name` | type | `a`, `b` | help |
var docRow = regexp.MustCompile("^\\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \\| (\\w+) \\| ([^|]*) \\| (.*) \\|$")

func parseMetricsDoc(doc string) map[string][]string {
	out := map[string][]string{}
	for _, line := range strings.Split(doc, "\n") {
		m := docRow.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "—" {
				labels = append(labels, l)
			}
		}
		out[m[1]] = labels
	}
	return out
}

const (
	docBegin = "<!-- BEGIN GENERATED TABLE: go test ./cmd/exporter -run TestDemoLintAndDocs -update-docs -->"
	docEnd   = "<!-- END GENERATED TABLE -->"
)

// writeMetricsDoc regenerates the table between the markers from the live
// output; families only exported on events (errors, cold starts) are kept
// from the existing table.
func writeMetricsDoc(t *testing.T, path string, mfs map[string]*dto.MetricFamily, described map[string]descInfo) {
	t.Helper()
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(old)
	i, j := strings.Index(s, docBegin), strings.Index(s, docEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the generated-table markers", path)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(s[i:j], "\n") {
		if m := docRow.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
			rows[m[1]] = strings.TrimSpace(line)
		}
	}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "infercast_") {
			continue
		}
		set := map[string]bool{}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				set[l.GetName()] = true
			}
		}
		switch mf.GetType() {
		case dto.MetricType_SUMMARY:
			set["quantile"] = true
		case dto.MetricType_HISTOGRAM:
			set["le"] = true
		}
		if prev, ok := rows[name]; ok { // keep labels seen only on events
			for _, l := range parseMetricsDoc(prev)[name] {
				set[l] = true
			}
		}
		labels := slices.Sorted(func(yield func(string) bool) {
			for l := range set {
				if !yield(l) {
					return
				}
			}
		})
		ls := "—"
		if len(labels) > 0 {
			ls = "`" + strings.Join(labels, "`, `") + "`"
		}
		help := strings.ReplaceAll(mf.GetHelp(), "|", "\\|")
		rows[name] = fmt.Sprintf("| `%s` | %s | %s | %s |", name, strings.ToLower(mf.GetType().String()), ls, help)
	}
	for name, d := range described {
		if _, ok := rows[name]; ok {
			continue
		}
		ls := "—"
		if len(d.labels) > 0 {
			ls = "`" + strings.Join(d.labels, "`, `") + "`"
		}
		rows[name] = fmt.Sprintf("| `%s` | %s | %s | %s |", name, d.typ, ls, strings.ReplaceAll(d.help, "|", "\\|"))
	}
	var buf bytes.Buffer
	buf.WriteString(docBegin + "\n\n| metric | type | labels | help |\n|---|---|---|---|\n")
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for n := range rows {
			if !yield(n) {
				return
			}
		}
	}) {
		buf.WriteString(rows[name] + "\n")
	}
	buf.WriteString("\n")
	s = s[:i] + buf.String() + s[j:]
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func gaugeValue(mfs map[string]*dto.MetricFamily, name string) (float64, bool) {
	mf := mfs[name]
	if mf == nil || len(mf.GetMetric()) == 0 {
		return 0, false
	}
	return mf.GetMetric()[0].GetGauge().GetValue(), true
}

// TestReload: POST /-/reload and SIGHUP re-read the file; a bad file keeps
// the running config and sets config_last_reload_successful to 0.
func TestReload(t *testing.T) {
	srv := newStubServer(t)
	cfgPath := writeConfig(t, fastDemo)
	r := startRun(t, options{configFile: cfgPath})
	r.waitReady(t)

	if code, _ := r.get(t, "/-/reload"); code != http.StatusMethodNotAllowed {
		t.Errorf("GET /-/reload = %d, want 405", code)
	}

	// A good change adds a target.
	if err := os.WriteFile(cfgPath, []byte(fastDemo+"targets:\n  - {name: stub, url: '"+srv+"', dialect: vllm}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, body := r.reload(t); code != http.StatusOK {
		t.Fatalf("reload = %d %s", code, body)
	}
	r.waitFor(t, "the reloaded target", func(m map[string]*dto.MetricFamily) bool {
		v, ok := gaugeValue(m, "infercast_target_up")
		return ok && v == 1
	})

	// A bad file is refused with the field named; the metric says so.
	if err := os.WriteFile(cfgPath, []byte(fastDemo+"targets:\n  - {name: stub, url: '"+srv+"', dialect: nope}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, body := r.reload(t)
	if code != http.StatusBadRequest || !strings.Contains(body, `targets[0].dialect: unknown dialect "nope"`) {
		t.Errorf("bad reload = %d %q", code, body)
	}
	mfs := testutil.ParseExposition(t, func() string { _, b := r.get(t, "/metrics"); return b }())
	if v, _ := gaugeValue(mfs, "infercast_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("last_reload_successful = %v after a bad reload, want 0", v)
	}
	if v, _ := gaugeValue(mfs, "infercast_target_up"); v != 1 {
		t.Error("the running target was dropped by a failed reload")
	}

	// SIGHUP after fixing the file.
	if err := os.WriteFile(cfgPath, []byte(fastDemo), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	r.waitFor(t, "reload by SIGHUP", func(m map[string]*dto.MetricFamily) bool {
		v, _ := gaugeValue(m, "infercast_exporter_config_last_reload_successful")
		return v == 1 && m["infercast_target_up"] == nil
	})
}

// spendByTeam sums infercast_spend_dollars_per_hour by team.
func spendByTeam(mfs map[string]*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, m := range mfs["infercast_spend_dollars_per_hour"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "team" {
				out[l.GetValue()] += m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// TestReloadPricesAndTeams: a reload applies the price catalogue the
// config names, read again, and its teams; a catalogue that does not parse
// fails the reload, naming the file and line, and keeps the running prices
// and teams (and the rest of the config). The demo's node is a spot
// g5.12xlarge.
func TestReloadPricesAndTeams(t *testing.T) {
	dir := t.TempDir()
	prices := filepath.Join(dir, "prices.yaml")
	setup := func(spot, onDemand, team string) {
		t.Helper()
		cat := "instance_types:\n  g5.12xlarge: {on_demand: " + onDemand + ", spot: " + spot + ", gpus: 4}\n"
		if err := os.WriteFile(prices, []byte(cat), 0o644); err != nil {
			t.Fatal(err)
		}
		cfg := fastDemo + "integrations:\n  cost:\n    catalogue_file: " + prices + "\n    teams: {chat: " + team + "}\n"
		if err := os.WriteFile(filepath.Join(dir, "exporter.yaml"), []byte(cfg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	setup("4", "10", "alpha")
	r := startRun(t, options{configFile: filepath.Join(dir, "exporter.yaml"), demo: true})
	var before float64
	r.waitFor(t, "spend under team alpha", func(m map[string]*dto.MetricFamily) bool {
		before = 0
		for _, v := range spendByTeam(m) {
			before += v
		}
		return spendByTeam(m)["alpha"] > 0
	})
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-6*math.Max(1, b) }
	total := func(m map[string]*dto.MetricFamily) (sum float64) {
		for _, v := range spendByTeam(m) {
			sum += v
		}
		return sum
	}

	setup("8", "10", "beta")
	if code, body := r.reload(t); code != http.StatusOK {
		t.Fatalf("reload = %d %s", code, body)
	}
	r.waitFor(t, "doubled spot prices and team beta", func(m map[string]*dto.MetricFamily) bool {
		byTeam := spendByTeam(m)
		_, alpha := byTeam["alpha"]
		return near(total(m), 2*before) && byTeam["beta"] > 0 && !alpha
	})

	setup("4", "0", "gamma") // on_demand 0 is no price: the catalogue is refused
	code, body := r.reload(t)
	if code != http.StatusBadRequest || !strings.Contains(body, prices+": price catalogue: line 2: instance_types[\"g5.12xlarge\"].on_demand: must be a positive $/hour, got 0") {
		t.Errorf("reload of a bad catalogue = %d %q, want 400 naming the file, line and field", code, body)
	}
	mfs := testutil.ParseExposition(t, func() string { _, b := r.get(t, "/metrics"); return b }())
	if v, _ := gaugeValue(mfs, "infercast_exporter_config_last_reload_successful"); v != 0 {
		t.Errorf("last_reload_successful = %v after a bad catalogue, want 0", v)
	}
	if byTeam := spendByTeam(mfs); !near(total(mfs), 2*before) || byTeam["beta"] == 0 || byTeam["gamma"] != 0 {
		t.Errorf("after a failed reload: spend %v, want the running prices (total %v) and team beta", byTeam, 2*before)
	}
}

// TestWarnsWhenNothingToScrape: a configuration without targets and
// without pod discovery (an empty file) is valid, but the exporter says
// that it will scrape nothing — at start and after a reload — instead of
// serving no model's metrics without a word.
func TestWarnsWhenNothingToScrape(t *testing.T) {
	const warning = "no model server will be scraped"
	var logs testutil.SyncBuffer
	cfgPath := writeConfig(t, "targets:\n  - {name: a, url: 'http://127.0.0.1:1/metrics', dialect: vllm}\n")
	r := startRunLog(t, options{configFile: cfgPath}, slog.New(slog.NewTextHandler(&logs, nil)))
	if strings.Contains(logs.String(), warning) {
		t.Fatalf("warned with a target configured:\n%s", logs.String())
	}
	if err := os.WriteFile(cfgPath, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	resp, err := r.client.Post("http://"+r.addr+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("reload of an empty file = %d", resp.StatusCode)
	}
	if !strings.Contains(logs.String(), warning) {
		t.Errorf("no warning after reloading an empty file:\n%s", logs.String())
	}
	r.stop(t)

	var empty testutil.SyncBuffer
	startRunLog(t, options{configFile: writeConfig(t, "")}, slog.New(slog.NewTextHandler(&empty, nil))).stop(t)
	if !strings.Contains(empty.String(), warning) {
		t.Errorf("no warning starting on an empty file:\n%s", empty.String())
	}
}

func TestRunRefusesBadSetup(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    options
		want string
	}{
		{"no config and no demo", options{}, "--config.file is required (or --demo for the built-in fleet)"},
		{"bad config", options{configFile: "/nonexistent/exporter.yaml"}, "reading config: open /nonexistent/exporter.yaml: no such file or directory"},
		{"bad web config", options{demo: true, webConfigFile: "/nonexistent/web.yaml"}, "--web.config.file: open /nonexistent/web.yaml: no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := tc.o
			o.listenAddress = "127.0.0.1:0"
			err := run(context.Background(), o, slog.New(slog.DiscardHandler))
			if err == nil || err.Error() != tc.want {
				t.Errorf("run() = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFlags(t *testing.T) {
	o, err := parseFlags([]string{"--web.listen-address=127.0.0.1:1234", "--web.telemetry-path=/m", "--demo", "--log.level=debug"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.listenAddress != "127.0.0.1:1234" || o.telemetryPath != "/m" || !o.demo || o.logLevel != "debug" {
		t.Errorf("parsed %+v", o)
	}
	if _, err := parseFlags([]string{"--no-such-flag"}, io.Discard); err == nil {
		t.Error("unknown flag accepted")
	}
}

// newStubServer serves a minimal vLLM body.
func newStubServer(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	n := 0
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, _ *http.Request) {
		n++
		fmt.Fprintf(w, "vllm:num_requests_waiting{model_name=\"m\"} 2\nvllm:request_success_total{model_name=\"m\"} %s\n", strconv.Itoa(n))
	})
	s := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	ln, err := (&netListenConfig{}).listen()
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Error(err)
		}
	}()
	t.Cleanup(func() { _ = s.Close() })
	return "http://" + ln.Addr().String() + "/metrics"
}

type netListenConfig struct{}

func (netListenConfig) listen() (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(context.Background(), "tcp", "127.0.0.1:0")
}

type descInfo struct {
	help, typ string
	labels    []string
}

var descString = regexp.MustCompile(`^Desc\{fqName: ("(?:[^"\\]|\\.)*"), help: ("(?:[^"\\]|\\.)*"), unit: "[^"]*", constLabels: \{[^}]*\}, variableLabels: \{([^}]*)\}\}$`)

// describedFamilies lists every infercast family the exporter's collectors
// describe, including those only exported on events.
func describedFamilies(t *testing.T) map[string]descInfo {
	t.Helper()
	exp, err := metrics.New(metrics.DefaultConfig(), metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	set := metrics.NewCollectorSet(nil)
	set.Add("targets", exp)
	set.Add("gpu", gpu.Demo(nil))
	w, err := spot.NewWatcher(spot.Options{Source: &spot.AWSSource{}})
	if err != nil {
		t.Fatal(err)
	}
	set.Add("spot", w)
	set.Add("cost", cost.NewCollector(cost.UsageFunc(func(context.Context) ([]cost.Usage, error) { return nil, nil }), cost.DemoCatalogue(), time.Second, nil))
	d, err := kube.New(kube.Options{Client: fake.NewClientset(), Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	set.Add("kube", d)
	ch := make(chan *prometheus.Desc, 256)
	go func() {
		set.Describe(ch)
		metrics.NewReloader("", exp, nil).Describe(ch)
		close(ch)
	}()
	out := map[string]descInfo{}
	for d := range ch {
		m := descString.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatalf("cannot read descriptor %s", d)
		}
		name, _ := strconv.Unquote(m[1])
		help, _ := strconv.Unquote(m[2])
		var labels []string
		for _, l := range strings.Split(m[3], ",") {
			if l != "" {
				labels = append(labels, l)
			}
		}
		typ := "gauge"
		switch {
		case strings.HasSuffix(name, "_total"):
			typ = "counter"
		case name == "infercast_cold_start_duration_seconds":
			typ, labels = "histogram", append(labels, "le")
		}
		slices.Sort(labels)
		out[name] = descInfo{help: help, typ: typ, labels: labels}
	}
	return out
}

// TestWebConfigBasicAuth: --web.config.file (exporter-toolkit) protects
// every endpoint with basic auth.
func TestWebConfigBasicAuth(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(t.TempDir(), "web.yaml")
	if err := os.WriteFile(web, []byte("basic_auth_users:\n  prom: "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, options{configFile: writeConfig(t, fastDemo), webConfigFile: web})
	if code, _ := r.get(t, "/metrics"); code != http.StatusUnauthorized {
		t.Errorf("without credentials: HTTP %d, want 401", code)
	}
	req, err := http.NewRequest(http.MethodGet, "http://"+r.addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth("prom", "s3cret")
	resp, err := r.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("with credentials: HTTP %d, want 200", resp.StatusCode)
	}
}

// TestWebConfigTLS: --web.config.file with tls_server_config serves every
// endpoint over HTTPS with the given certificate; plain HTTP is refused and a
// client that does not trust the certificate cannot connect.
func TestWebConfigTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t, "infercast exporter test")
	certPEM, keyPEM := ca.Issue(t, "127.0.0.1", true)
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if err := os.WriteFile(certFile, certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	web := filepath.Join(dir, "web.yaml")
	if err := os.WriteFile(web, []byte("tls_server_config:\n  cert_file: "+certFile+"\n  key_file: "+keyFile+"\n  min_version: TLS12\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := startRun(t, options{configFile: writeConfig(t, fastDemo), webConfigFile: web})

	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.PEM) {
		t.Fatal("test CA does not parse")
	}
	tlsClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer tlsClient.CloseIdleConnections()
	resp, err := tlsClient.Get("https://" + r.addr + "/metrics")
	if err != nil {
		t.Fatalf("scrape over https: %v", err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.TLS == nil || !strings.Contains(string(b), "infercast_exporter_config_last_reload_successful 1") {
		t.Errorf("https /metrics: HTTP %d, TLS %v, body has the exporter's metrics: %v", resp.StatusCode, resp.TLS != nil,
			strings.Contains(string(b), "infercast_exporter_config_last_reload_successful"))
	}
	mfs := testutil.ParseExposition(t, string(b))
	if len(mfs) == 0 {
		t.Error("no metric families over https")
	}

	// Plain HTTP to the TLS port gets Go's 400, never the metrics.
	if code, body := r.get(t, "/metrics"); code != http.StatusBadRequest || strings.Contains(body, "infercast_") {
		t.Errorf("plain http: HTTP %d %q, want 400 without metrics", code, body)
	}
	// A client that does not trust the certificate fails the handshake.
	untrusting := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12}}}
	defer untrusting.CloseIdleConnections()
	if resp, err := untrusting.Get("https://" + r.addr + "/metrics"); err == nil {
		resp.Body.Close()
		t.Error("a client without the CA connected")
	} else if _, ok := errors.AsType[*tls.CertificateVerificationError](err); !ok {
		t.Errorf("untrusted client: %v, want a certificate verification error", err)
	}
}
