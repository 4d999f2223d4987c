package alerts

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

const dashboardDir = "../dashboards/json"

// promql is Prometheus's own parser with its default options: no
// experimental functions, which the Prometheus 2.x of promtool lacks too.
var promql = parser.NewParser(parser.Options{})

// expression is one PromQL expression and where it was found.
type expression struct {
	where, expr string
}

// grafanaDurations stand in for Grafana's interval variables, which are
// not PromQL; every other variable sits inside a quoted matcher value.
var grafanaDurations = strings.NewReplacer(
	"$__rate_interval", "5m", "${__rate_interval}", "5m",
	"$__interval", "1m", "${__interval}", "1m",
	"$__range", "1h", "${__range}", "1h",
)

// labelValuesRE matches Grafana's label_values(selector, label) variable
// query; the selector is PromQL.
var labelValuesRE = regexp.MustCompile(`^label_values\((.*),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)

// collectExpressions returns every PromQL expression of the rules and the
// committed dashboards (panel queries and variable queries).
func collectExpressions(t *testing.T) (exprs []expression, recorded map[string]bool) {
	t.Helper()
	recorded = map[string]bool{}
	// The objectives the chart renders from values (the example file has
	// their form) are recording rules too.
	for _, r := range loadRuleFile(t, "objectives.example.rules.yml") {
		recorded[r.Record] = true
	}
	for _, r := range loadRules(t) {
		name := r.Alert
		if r.Record != "" {
			name = r.Record
			recorded[r.Record] = true
		}
		exprs = append(exprs, expression{rulesFile + ": " + name, r.Expr})
	}
	files, err := filepath.Glob(filepath.Join(dashboardDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no dashboards in %s", dashboardDir)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Templating struct {
				List []struct {
					Name  string `json:"name"`
					Type  string `json:"type"`
					Query any    `json:"query"`
				} `json:"list"`
			} `json:"templating"`
			Panels []struct {
				Title   string `json:"title"`
				Targets []struct {
					Expr string `json:"expr"`
				} `json:"targets"`
			} `json:"panels"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		base := filepath.Base(f)
		for _, v := range d.Templating.List {
			q, ok := v.Query.(string)
			if v.Type != "query" || !ok {
				continue
			}
			m := labelValuesRE.FindStringSubmatch(q)
			if m == nil {
				t.Errorf("%s: variable %s: query %q is not label_values(selector, label)", base, v.Name, q)
				continue
			}
			exprs = append(exprs, expression{base + ": variable " + v.Name, m[1]})
		}
		for _, p := range d.Panels {
			for _, q := range p.Targets {
				exprs = append(exprs, expression{base + ": " + p.Title, q.Expr})
			}
		}
	}
	return exprs, recorded
}

// metricNames parses expr and returns the metric names its selectors name.
func metricNames(expr string) ([]string, error) {
	e, err := promql.ParseExpr(grafanaDurations.Replace(expr))
	if err != nil {
		return nil, err
	}
	var names []string
	var bad error
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		name := vs.Name
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName {
				if m.Type != labels.MatchEqual {
					bad = fmt.Errorf("selector %s matches metric names by regexp: the name check cannot follow it", vs)
				}
				name = m.Value
			}
		}
		if name == "" {
			bad = fmt.Errorf("selector %s names no metric", vs)
		}
		names = append(names, name)
		return nil
	})
	return names, bad
}

func TestExpressionsParse(t *testing.T) {
	exprs, _ := collectExpressions(t)
	for _, e := range exprs {
		if _, err := metricNames(e.expr); err != nil {
			t.Errorf("%s: %q: %v", e.where, e.expr, err)
		}
	}
}

// TestMetricNamesParseFails proves the checks above can fail.
func TestMetricNamesParseFails(t *testing.T) {
	for _, bad := range []string{`sum(rate(x[5m])`, `{job="a"}`, `{__name__=~"infercast_.*"}`, `rate(x[$__wrong])`} {
		if _, err := metricNames(bad); err == nil {
			t.Errorf("%q: accepted", bad)
		}
	}
	got, err := metricNames(`sum by (le) (rate(a_bucket{x=~"$namespace"}[$__rate_interval])) / on() group_left b:rec:ratio5m + {__name__="c"}`)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(got)
	if strings.Join(got, ",") != "a_bucket,b:rec:ratio5m,c" {
		t.Errorf("names %v", got)
	}
}

// TestMetricNamesAreExported is the name check: every metric a dashboard or
// rule reads is one that infercast really exports, collected from live runs
// of `exporter --demo` and `adapter demo` (or a recording rule's output).
func TestMetricNamesAreExported(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the exporter and adapter")
	}
	exprs, recorded := collectExpressions(t)
	want := map[string][]string{} // name -> where
	for _, e := range exprs {
		names, err := metricNames(e.expr)
		if err != nil {
			t.Fatalf("%s: %v", e.where, err)
		}
		for _, n := range names {
			if !recorded[n] {
				want[n] = append(want[n], e.where)
			}
		}
	}

	// Building both binaries takes minutes on a busy 2-core machine.
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	bin := t.TempDir()
	build(ctx, t, bin, "./cmd/exporter", "./cmd/adapter")
	exporterWeb := freeAddr(t)
	procs := []*liveProcess{start(ctx, t, filepath.Join(bin, "exporter"),
		[]string{"--demo", "--web.listen-address=" + exporterWeb}, exporterWeb)}
	exported := map[string]bool{}
	adapter := filepath.Join(bin, "adapter")
	if hasSubcommand(ctx, t, adapter, "demo") {
		web := freeAddr(t)
		procs = append(procs, start(ctx, t, adapter,
			[]string{"demo", "--web.listen-address=" + web, "--grpc.listen-address=" + freeAddr(t)}, web))
	} else {
		// No `adapter demo` to run yet: the adapter's metric descriptors,
		// from the very collectors `adapter serve` registers.
		t.Log("adapter has no demo subcommand yet: adapter names from its packages' collectors")
		for n := range adapterDescriptors(t) {
			exported[n] = true
		}
	}

	// Demo families fill in over time (cold starts, interruptions,
	// forecasts): scrape until every wanted name has appeared, or give up
	// after 90 seconds and report what never did.
	client := &http.Client{Timeout: 10 * time.Second}
	deadline := time.Now().Add(90 * time.Second)
	for {
		for _, p := range procs {
			p.scrapeInto(ctx, client, exported)
		}
		if allFound(exported, want) || time.Now().After(deadline) {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatal(ctx.Err())
		case <-time.After(2 * time.Second):
		}
	}
	for _, p := range procs {
		if p.scrapes == 0 {
			t.Fatalf("%s: never served /metrics at %s; last log lines:\n%s", p.cmdline, p.web, strings.Join(p.stop(), "\n"))
		}
	}

	var missing []string
	for n, where := range want {
		gap := knownGap(n)
		if exported[n] && gap != "" {
			t.Errorf("%s is exported now: remove its entry from knownGaps", n)
		}
		if !exported[n] && !prometheusSynthetic[n] {
			sort.Strings(where)
			if gap != "" {
				t.Logf("known gap, not exported yet: %s — %s (used by %s)", n, gap, strings.Join(where, "; "))
				continue
			}
			missing = append(missing, fmt.Sprintf("%s (used by %s)", n, strings.Join(where, "; ")))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not exported by exporter --demo or adapter demo: %s", m)
	}
}

// knownGaps are names the rules and dashboards need that the live runs do
// not export yet, each with who owes it; a key ending in "_" covers a
// prefix. The test logs them instead of failing, and fails once one is
// exported so the entry is removed. Every entry is an open request in the
// report to the lead; TestAdapterDescriptors checks that the adapter's
// packages do define the planner's, forecaster's and batch controller's names.
var knownGaps = map[string]string{}

func knownGap(name string) string {
	if g := knownGaps[name]; g != "" {
		return g
	}
	for k, g := range knownGaps {
		if strings.HasSuffix(k, "_") && strings.HasPrefix(name, k) {
			return g
		}
	}
	return ""
}

// hasSubcommand asks the adapter's usage whether it has subcommand name.
func hasSubcommand(ctx context.Context, t *testing.T, exe, name string) bool {
	t.Helper()
	out, err := exec.CommandContext(ctx, exe, "help").CombinedOutput()
	if err != nil {
		t.Fatalf("%s help: %v\n%s", exe, err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[0] == name {
			return true
		}
	}
	return false
}

func allFound(seen map[string]bool, want map[string][]string) bool {
	for n := range want {
		if !seen[n] {
			return false
		}
	}
	return true
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return dir
}

// build compiles the commands pkgs into dir, in one go build so they
// share the work.
func build(ctx context.Context, t *testing.T, dir string, pkgs ...string) {
	t.Helper()
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + "/"}, pkgs...)...)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build %v: %v\n%s", pkgs, err, out)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// liveProcess is a running exporter or adapter whose /metrics is scraped.
type liveProcess struct {
	cmdline, web string
	scrapes      int
	cancel       context.CancelFunc
	cmd          *exec.Cmd
	logTail      chan []string
}

// start runs exe with args in its own temporary directory; the test's
// cleanup stops it.
func start(ctx context.Context, t *testing.T, exe string, args []string, web string) *liveProcess {
	t.Helper()
	ctx, cancel := context.WithCancel(ctx)
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Dir = t.TempDir()
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = io.Discard
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &liveProcess{
		cmdline: filepath.Base(exe) + " " + strings.Join(args, " "), web: web,
		cancel: cancel, cmd: cmd, logTail: make(chan []string, 1),
	}
	go func() {
		var lines []string
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			lines = append(lines, sc.Text())
			if len(lines) > 20 {
				lines = lines[1:]
			}
		}
		p.logTail <- lines
	}()
	t.Cleanup(func() { p.stop() })
	return p
}

// stop ends the process (once) and returns its last log lines.
func (p *liveProcess) stop() []string {
	if p.cmd == nil {
		return nil
	}
	p.cancel()
	_ = p.cmd.Wait()
	p.cmd = nil
	return <-p.logTail
}

// scrapeInto adds every sample name of one scrape to seen, with the
// _bucket/_sum/_count series of histograms and summaries.
func (p *liveProcess) scrapeInto(ctx context.Context, c *http.Client, seen map[string]bool) {
	fams, err := scrape(ctx, c, "http://"+p.web+"/metrics")
	if err != nil {
		return // not up yet; the caller retries until its deadline
	}
	p.scrapes++
	for name, f := range fams {
		seen[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
			seen[name+"_bucket"], seen[name+"_sum"], seen[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			seen[name+"_sum"], seen[name+"_count"] = true, true
		}
	}
}

func scrape(ctx context.Context, c *http.Client, url string) (map[string]*dto.MetricFamily, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", string(expfmt.NewFormat(expfmt.TypeTextPlain)))
	resp, err := c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: %s", url, resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(resp.Body)
}

// prometheusSynthetic are the series Prometheus itself writes for every
// scrape and alert; the health alerts read `up`.
var prometheusSynthetic = map[string]bool{
	"up": true, "scrape_duration_seconds": true, "scrape_samples_scraped": true,
	"scrape_samples_post_metric_relabeling": true, "scrape_series_added": true,
	"ALERTS": true, "ALERTS_FOR_STATE": true,
}
