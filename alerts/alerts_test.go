package alerts

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/infercast/infercast/internal/testutil"
)

const (
	rulesFile     = "infercast.rules.yml"
	testsFile     = "infercast.rules.test.yml"
	routingFile   = "alertmanager-example.yml"
	chartCopy     = "../charts/infercast/files/infercast.rules.yml"
	runbookDir    = "../docs/runbooks"
	runbookPrefix = "https://github.com/infercast/infercast/blob/main/docs/runbooks/"
)

type ruleFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadRules(t *testing.T) []rule { return loadRuleFile(t, rulesFile) }

func loadRuleFile(t *testing.T, name string) []rule {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	var f ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var out []rule
	for _, g := range f.Groups {
		out = append(out, g.Rules...)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no rules", name)
	}
	return out
}

// run returns the tool's standard output; on failure the test fails with
// both streams.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	// promtool evaluates hours of rules per test case: minutes on a busy machine.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, stdout.Bytes(), stderr.Bytes())
	}
	return stdout.String()
}

func TestPromtoolCheckRules(t *testing.T) {
	promtool := testutil.Binary(t, "promtool")
	run(t, promtool, "check", "rules", rulesFile, "objectives.example.rules.yml")
}

func TestPromtoolTestRules(t *testing.T) {
	promtool := testutil.Binary(t, "promtool")
	run(t, promtool, "test", "rules", testsFile)
}

func TestAmtoolCheckConfig(t *testing.T) {
	amtool := testutil.Binary(t, "amtool")
	run(t, amtool, "check-config", routingFile)
}

// producedLabels returns the label sets the rules produce, alertname
// included: every alert promtool's unit tests expect (promtool compares
// them in full, so they are what the rules make of their input).
func producedLabels(t *testing.T) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	var ut struct {
		Tests []struct {
			AlertRuleTests []struct {
				Alertname string `yaml:"alertname"`
				ExpAlerts []struct {
					ExpLabels map[string]string `yaml:"exp_labels"`
				} `yaml:"exp_alerts"`
			} `yaml:"alert_rule_test"`
		} `yaml:"tests"`
	}
	if err := yaml.Unmarshal(b, &ut); err != nil {
		t.Fatal(err)
	}
	var out []map[string]string
	for _, tc := range ut.Tests {
		for _, a := range tc.AlertRuleTests {
			for _, e := range a.ExpAlerts {
				ls := map[string]string{"alertname": a.Alertname}
				for k, v := range e.ExpLabels {
					ls[k] = v
				}
				out = append(out, ls)
			}
		}
	}
	// Every alert of the rules is represented.
	have := map[string]bool{}
	for _, ls := range out {
		have[ls["alertname"]] = true
	}
	for _, r := range loadRules(t) {
		if r.Alert != "" && !have[r.Alert] {
			t.Errorf("%s: no expected alert in %s to take its labels from", r.Alert, testsFile)
		}
	}
	return out
}

// wantReceiver is the routing policy the example documents: infercast's
// own health to infra, spend over budget to finops, anything about a model
// or workload to ml-platform, the rest (spot pools, GPU nodes) to infra;
// critical pages, warning goes to chat, info becomes a ticket.
func wantReceiver(ls map[string]string) string {
	team := "infra"
	switch name := ls["alertname"]; {
	case strings.HasPrefix(name, "InfercastExporter"), strings.HasPrefix(name, "InfercastAdapter"):
	case name == "InfercastSpendOverBudget":
		return "finops-slack"
	case ls["model"] != "", ls["workload"] != "":
		team = "ml-platform"
	}
	return team + "-" + map[string]string{"critical": "pager", "warning": "slack", "info": "ticket"}[ls["severity"]]
}

// TestRouting asks amtool where every label set the rules produce goes, so
// the example routes on labels that exist, as it says it does.
func TestRouting(t *testing.T) {
	amtool := testutil.Binary(t, "amtool")
	seen := map[string]bool{}
	for _, ls := range producedLabels(t) {
		args := []string{"config", "routes", "test", "--config.file=" + routingFile}
		for k, v := range ls {
			args = append(args, k+"="+v)
		}
		sort.Strings(args[4:])
		key := strings.Join(args[4:], " ")
		if seen[key] {
			continue
		}
		seen[key] = true
		out := run(t, amtool, args...)
		if got, want := strings.TrimSpace(out), wantReceiver(ls); got != want {
			t.Errorf("%s routed to %q, want %q", key, got, want)
		}
	}
}

// TestRoutingLabelsExist: the example groups and inhibits only by labels
// the rules produce, and each inhibition's source and target are alerts
// that exist and share its `equal` labels.
func TestRoutingLabelsExist(t *testing.T) {
	b, err := os.ReadFile(routingFile)
	if err != nil {
		t.Fatal(err)
	}
	type route struct {
		GroupBy []string `yaml:"group_by"`
		Routes  []route  `yaml:"routes"`
	}
	var cfg struct {
		Route        route `yaml:"route"`
		InhibitRules []struct {
			Source []string `yaml:"source_matchers"`
			Target []string `yaml:"target_matchers"`
			Equal  []string `yaml:"equal"`
		} `yaml:"inhibit_rules"`
	}
	if err := yaml.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	produced := producedLabels(t)
	names := map[string]bool{}
	for _, ls := range produced {
		for k := range ls {
			names[k] = true
		}
	}
	var walk func(r route)
	walk = func(r route) {
		for _, l := range r.GroupBy {
			if !names[l] && l != "..." {
				t.Errorf("group_by %s: no alert carries it", l)
			}
		}
		for _, c := range r.Routes {
			walk(c)
		}
	}
	walk(cfg.Route)
	if len(cfg.InhibitRules) == 0 {
		t.Fatal("no inhibit rules")
	}
	for _, ir := range cfg.InhibitRules {
		var sources, targets []map[string]string
		for _, ls := range produced {
			if matchAll(t, ir.Source, ls) {
				sources = append(sources, ls)
			}
			if matchAll(t, ir.Target, ls) {
				targets = append(targets, ls)
			}
		}
		if len(sources) == 0 || len(targets) == 0 {
			t.Errorf("inhibit %v -> %v: %d alerts match the source, %d the target", ir.Source, ir.Target, len(sources), len(targets))
			continue
		}
		// It takes effect for some pair: both carry the equal labels, alike.
		takes := false
		for _, src := range sources {
			for _, tgt := range targets {
				ok := true
				for _, l := range ir.Equal {
					ok = ok && src[l] != "" && src[l] == tgt[l]
				}
				takes = takes || ok
			}
		}
		if !takes {
			t.Errorf("inhibit %v -> %v: no source and target alert share the labels %v", ir.Source, ir.Target, ir.Equal)
		}
	}
}

var matcherRE = regexp.MustCompile(`^([a-zA-Z_][a-zA-Z0-9_]*)(=~|!~|!=|=)"(.*)"$`)

// matchAll reports whether ls matches every Alertmanager matcher of ms
// (the quoted name<op>"value" form the example uses).
func matchAll(t *testing.T, ms []string, ls map[string]string) bool {
	t.Helper()
	for _, m := range ms {
		p := matcherRE.FindStringSubmatch(m)
		if p == nil {
			t.Fatalf("matcher %q: want name<op>\"value\"", m)
		}
		v := ls[p[1]]
		var ok bool
		switch p[2] {
		case "=":
			ok = v == p[3]
		case "!=":
			ok = v != p[3]
		case "=~", "!~":
			ok = regexp.MustCompile("^(?:"+p[3]+")$").MatchString(v) == (p[2] == "=~")
		}
		if !ok {
			return false
		}
	}
	return true
}

var severities = []string{"critical", "warning", "info"}

// TestAlertMetadata: every alert says how bad it is, what and why, and where
// its runbook is; the runbook exists and names the alert.
func TestAlertMetadata(t *testing.T) {
	seen := map[string]bool{}
	for _, r := range loadRules(t) {
		if r.Alert == "" {
			continue
		}
		if seen[r.Alert] {
			t.Errorf("alert %s defined twice", r.Alert)
		}
		seen[r.Alert] = true
		if !slices.Contains(severities, r.Labels["severity"]) {
			t.Errorf("%s: severity %q, want one of %v", r.Alert, r.Labels["severity"], severities)
		}
		for _, a := range []string{"summary", "description", "runbook_url"} {
			if strings.TrimSpace(r.Annotations[a]) == "" {
				t.Errorf("%s: annotation %s missing", r.Alert, a)
			}
		}
		want := runbookPrefix + r.Alert + ".md"
		if r.Annotations["runbook_url"] != want {
			t.Errorf("%s: runbook_url %q, want %q", r.Alert, r.Annotations["runbook_url"], want)
		}
		b, err := os.ReadFile(filepath.Join(runbookDir, r.Alert+".md"))
		if err != nil {
			t.Errorf("%s: runbook: %v", r.Alert, err)
			continue
		}
		if !bytes.HasPrefix(b, []byte("# "+r.Alert+"\n")) {
			t.Errorf("%s: runbook must start with \"# %s\"", r.Alert, r.Alert)
		}
	}
	// No orphan runbooks either: each documents a live alert.
	files, err := filepath.Glob(filepath.Join(runbookDir, "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".md")
		if name != "README" && !seen[name] {
			t.Errorf("runbook %s documents no alert in %s", f, rulesFile)
		}
	}
}

type unitTests struct {
	RuleFiles []string `yaml:"rule_files"`
	Tests     []struct {
		Name           string `yaml:"name"`
		AlertRuleTests []struct {
			EvalTime  string `yaml:"eval_time"`
			Alertname string `yaml:"alertname"`
			ExpAlerts []any  `yaml:"exp_alerts"`
		} `yaml:"alert_rule_test"`
	} `yaml:"tests"`
}

// TestEveryAlertFiresAndStaysSilent: promtool checks what the test file
// expects; this makes sure the file expects, for every alert, at least one
// case where it fires and one where it stays silent.
func TestEveryAlertFiresAndStaysSilent(t *testing.T) {
	b, err := os.ReadFile(testsFile)
	if err != nil {
		t.Fatal(err)
	}
	var ut unitTests
	if err := yaml.Unmarshal(b, &ut); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(ut.RuleFiles, rulesFile) {
		t.Fatalf("%s does not test %s (rule_files: %v)", testsFile, rulesFile, ut.RuleFiles)
	}
	firing, silent := map[string]int{}, map[string]int{}
	for _, tc := range ut.Tests {
		for _, a := range tc.AlertRuleTests {
			if len(a.ExpAlerts) > 0 {
				firing[a.Alertname]++
			} else {
				silent[a.Alertname]++
			}
		}
	}
	var alerts []string
	for _, r := range loadRules(t) {
		if r.Alert != "" {
			alerts = append(alerts, r.Alert)
		}
	}
	sort.Strings(alerts)
	for _, a := range alerts {
		if firing[a] == 0 {
			t.Errorf("%s: no test case where it fires", a)
		}
		if silent[a] == 0 {
			t.Errorf("%s: no test case where it stays silent", a)
		}
		delete(firing, a)
		delete(silent, a)
	}
	for a := range firing {
		t.Errorf("test cases for unknown alert %s", a)
	}
	for a := range silent {
		t.Errorf("test cases for unknown alert %s", a)
	}
}

// TestChartCopy: the chart's PrometheusRule embeds a copy of the rules
// (Helm reads only files inside the chart); it must not drift.
func TestChartCopy(t *testing.T) {
	want, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(chartCopy)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s: cp alerts/%s charts/infercast/files/", chartCopy, rulesFile, rulesFile)
	}
}

var alertNameRE = regexp.MustCompile(`^Infercast[A-Z][A-Za-z0-9]+$`)

func TestAlertNames(t *testing.T) {
	for _, r := range loadRules(t) {
		if r.Alert != "" && !alertNameRE.MatchString(r.Alert) {
			t.Errorf("alert %q: want %s", r.Alert, alertNameRE)
		}
		if r.Record != "" && !strings.Contains(r.Record, ":") {
			t.Errorf("recording rule %q: want level:metric:operations", r.Record)
		}
		if r.Alert != "" && r.For == "" && r.Labels["severity"] != "info" {
			t.Errorf("%s: no `for`: a single bad evaluation pages", r.Alert)
		}
	}
}
