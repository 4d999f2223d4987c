package capacity

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParsePolicyValid(t *testing.T) {
	p, err := LoadPolicy("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Workloads) != 2 {
		t.Fatalf("workloads = %d", len(p.Workloads))
	}
	chat, ok := p.Workload("chat")
	if !ok {
		t.Fatal("no chat")
	}
	if chat.Mu != 2 || chat.ColdStart != 180*time.Second || chat.Tiers.Spot.FailureDomains != 3 || chat.Tiers.Spot.Notice != 120*time.Second || chat.BurstWindow != 30*time.Minute {
		t.Fatalf("chat = %+v", chat)
	}
	// "<5%" a month is -ln(0.95)/730 per hour.
	if got, want := chat.Tiers.Spot.PriorRatePerHour(), -math.Log(0.95)/730; math.Abs(got-want) > 1e-12 {
		t.Fatalf("prior rate = %v, want %v", got, want)
	}
	embed, _ := p.Workload("embed")
	// Defaults fill what the file leaves out.
	if embed.DecisionInterval != 15*time.Second || embed.ForecastQuantile != 0.9 || embed.BurstWindow != time.Hour || embed.TargetAvailability != 0.999 ||
		*embed.Tolerance != 0.1 || embed.ScaleDown.Stabilization != 5*time.Minute || !embed.Preview || embed.Tiers.Spot != nil {
		t.Fatalf("embed = %+v", embed)
	}
	if h := chat.Horizon(chat.ColdStart); h != 195*time.Second {
		t.Fatalf("horizon = %v", h)
	}
}

// TestExplicitZeroIsNotTheDefault: a setting left out takes its default;
// the same setting written as 0 is 0 — no stabilisation window, no queue
// slack, spot relaunched at once — not silently the default (an HPA user
// writing stabilization: 0s means it). A null is left out.
func TestExplicitZeroIsNotTheDefault(t *testing.T) {
	parse := func(extra string) Workload {
		t.Helper()
		p, err := ParsePolicy("p.yaml", []byte(minimal+extra))
		if err != nil {
			t.Fatal(err)
		}
		return p.Workloads[0]
	}
	d := DefaultWorkload()
	def := parse("")
	if def.ScaleDown.Stabilization != d.ScaleDown.Stabilization || def.QueueSLO != d.QueueSLO || def.FallbackHold != d.FallbackHold || def.BurstWindow != d.BurstWindow {
		t.Fatalf("defaults not applied: %+v", def)
	}
	zero := parse("    queue_slo: 0s\n    burst_window: 0s\n    fallback_hold: 0s\n    scale_down:\n      stabilization: 0s\n")
	if zero.ScaleDown.Stabilization != 0 || zero.QueueSLO != 0 || zero.FallbackHold != 0 || zero.BurstWindow != 0 {
		t.Errorf("written zeros became %v, %v, %v, %v: want 0 each", zero.ScaleDown.Stabilization, zero.QueueSLO, zero.FallbackHold, zero.BurstWindow)
	}
	if null := parse("    scale_down:\n      stabilization:\n"); null.ScaleDown.Stabilization != d.ScaleDown.Stabilization {
		t.Errorf("a null stabilization became %v, want the default %v", null.ScaleDown.Stabilization, d.ScaleDown.Stabilization)
	}

	// And it plans as it says: demand falls from 40 to 10 req/s; with no
	// window the fleet follows at the next decision (at the scale-down
	// rate), with the default it holds for 5 minutes.
	fall := func(w Workload) int {
		pl := NewPlanner(w)
		pl.Plan(flat(t0, 40, 40, 40), nil, Signals{Time: t0, Rate: 40})
		at := t0.Add(w.DecisionInterval)
		p, _ := pl.Plan(flat(at, 10, 10, 10), nil, Signals{Time: at, Rate: 10})
		return total(p)
	}
	off, held := fall(zero), fall(def)
	if !(off < held) {
		t.Errorf("after the fall: %d replicas without a window, %d with 5m: want fewer without", off, held)
	}
}

// Policy.Given tells a key written as 0 from one left to its default, per
// workload, at any depth; a null is not given.
func TestPolicyGiven(t *testing.T) {
	src := minimal + "    queue_slo: 0s\n    tiers:\n      on_demand: {price_per_hour: 0}\n      spot:\n        advisor_band: \"<5%\"\n        notice:\n" +
		"  - name: embed\n    demand: {series: embed}\n    mu: 2\n    latency_slo: 1s\n    cold_start: 180s\n    max_replicas: 10\n    tiers: {spot: {advisor_band: \"<5%\", notice: 0s}}\n"
	p, err := ParsePolicy("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		workload string
		path     []string
		want     bool
	}{
		{"chat", []string{"queue_slo"}, true},
		{"chat", []string{"mu"}, true},
		{"chat", []string{"tiers", "on_demand", "price_per_hour"}, true},
		{"chat", []string{"tiers", "spot", "price_per_hour"}, false},
		{"chat", []string{"tiers", "spot", "notice"}, false}, // null
		{"chat", []string{"decision_interval"}, false},       // defaulted
		{"embed", []string{"queue_slo"}, false},
		{"embed", []string{"tiers", "spot", "notice"}, true},
		{"embed", []string{"tiers", "on_demand", "price_per_hour"}, false},
		{"batch", []string{"mu"}, false},
	} {
		if got := p.Given(tc.workload, tc.path...); got != tc.want {
			t.Errorf("Given(%q, %v) = %v, want %v", tc.workload, tc.path, got, tc.want)
		}
	}
	if chat, _ := p.Workload("chat"); chat.QueueSLO != 0 || chat.DecisionInterval != DefaultWorkload().DecisionInterval {
		t.Errorf("chat: queue SLO %v, decision interval %v", chat.QueueSLO, chat.DecisionInterval)
	}
	if (&Policy{Workloads: p.Workloads}).Given("chat", "queue_slo") {
		t.Error("a Policy not parsed from a file gave a key")
	}
}

// minimal is a valid workload that the cases below break one field at a time.
const minimal = `workloads:
  - name: chat
    demand: {series: chat}
    mu: 2
    latency_slo: 1s
    cold_start: 180s
    max_replicas: 10
`

// TestIntegerFieldsTakeWholeNumbers: an integer field takes a whole number
// however it is written (10, 10.0, 1e1), and the same from --sweep.
func TestIntegerFieldsTakeWholeNumbers(t *testing.T) {
	for _, v := range []string{"10", "10.0", "1e1"} {
		p, err := ParsePolicy("p.yaml", []byte(strings.Replace(minimal, "max_replicas: 10", "max_replicas: "+v, 1)))
		if err != nil {
			t.Fatalf("max_replicas: %s: %v", v, err)
		}
		if got := p.Workloads[0].MaxReplicas; got != 10 {
			t.Errorf("max_replicas: %s = %d, want 10", v, got)
		}
	}
	p, err := ParsePolicyWith("p.yaml", []byte(minimal), "", "min_replicas", "2.0")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Workloads[0].MinReplicas; got != 2 {
		t.Errorf("--sweep min_replicas=2.0 gave %d, want 2", got)
	}
}

func TestParsePolicyInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, file, want string
	}{
		{"empty", ``, `p.yaml: empty policy: want a workloads list`},
		{"no workloads", `workloads: []`, `p.yaml: no workloads`},
		{"unknown top-level key", "workload: []\n", `p.yaml:1: workload: unknown field (did you mean workloads?)`},
		{"unknown workload key, a typo", minimal + "    max_replica: 3\n",
			`p.yaml:8: workload "chat": max_replica: unknown field (did you mean max_replicas?)`},
		{"unknown workload key", minimal + "    replicas: 3\n",
			`p.yaml:8: workload "chat": replicas: unknown field (known: burst_window, cold_start, decision_interval, demand, fallback_hold, forecast_quantile, forecast_step, latency_percentile, latency_slo, learn_mu, max_replicas, measure_cold_start, min_replicas, mu, name, on_demand_share, preview, queue_slo, scale_down, target_availability, tiers, tolerance)`},
		{"unknown nested key", minimal + "    tiers:\n      spot:\n        notic: 120s\n",
			`p.yaml:10: workload "chat": tiers.spot.notic: unknown field (did you mean notice?)`},
		{"unknown nested key, no likely typo", minimal + "    tiers:\n      spot:\n        warning: 120s\n",
			`p.yaml:10: workload "chat": tiers.spot.warning: unknown field (known: advisor_band, failure_domains, interruption_rate_per_hour, notice, pools, price_per_hour)`},
		// Type errors name the line of the value, the workload and the field.
		{"bad duration", strings.Replace(minimal, "180s", "180", 1),
			"p.yaml:6: workload \"chat\": cold_start: cannot unmarshal !!int `180` into time.Duration (want a duration with a unit, e.g. \"180s\")"},
		{"long bad duration", strings.Replace(minimal, "latency_slo: 1s", "latency_slo: one second please", 1),
			"p.yaml:5: workload \"chat\": latency_slo: cannot unmarshal !!str `one sec...` into time.Duration (want a duration with a unit, e.g. \"180s\")"},
		{"bad number", strings.Replace(minimal, "mu: 2", "mu: fast", 1),
			"p.yaml:4: workload \"chat\": mu: cannot unmarshal !!str `fast` into float64"},
		{"list for a number", strings.Replace(minimal, "max_replicas: 10", "max_replicas: [10]", 1),
			"p.yaml:7: workload \"chat\": max_replicas: cannot unmarshal !!seq into int"},
		{"nested, flow style", minimal + "    tiers: {spot: {price_per_hour: 1, interruption_rate_per_hour: 0, notice: 2}}\n",
			"p.yaml:8: workload \"chat\": tiers.spot.notice: cannot unmarshal !!int `2` into time.Duration (want a duration with a unit, e.g. \"180s\")"},
		{"list item", minimal + "    tiers:\n      spot:\n        pools: [a, {b: 1}]\n",
			"p.yaml:10: workload \"chat\": tiers.spot.pools[1]: cannot unmarshal !!map into string"},
		{"two in one workload, second workload", minimal + strings.NewReplacer("name: chat", "name: embed", "mu: 2", "mu: x", "180s", "3").Replace(strings.TrimPrefix(minimal, "workloads:\n")),
			"p.yaml:10: workload \"embed\": mu: cannot unmarshal !!str `x` into float64\n" +
				"p.yaml:12: workload \"embed\": cold_start: cannot unmarshal !!int `3` into time.Duration (want a duration with a unit, e.g. \"180s\")"},
		// yaml.v3 would truncate a fraction into an integer field: 5.9
		// replicas ran as 5.
		{"fraction for an integer", strings.Replace(minimal, "max_replicas: 10", "max_replicas: 5.9", 1),
			"p.yaml:7: workload \"chat\": max_replicas: cannot unmarshal !!float `5.9` into int (want a whole number)"},
		{"fractions, nested, in the file's order", strings.Replace(minimal, "180s", "180", 1) + "    min_replicas: 1.5\n    tiers: {spot: {price_per_hour: 1, interruption_rate_per_hour: 0, failure_domains: 2.5}}\n",
			"p.yaml:6: workload \"chat\": cold_start: cannot unmarshal !!int `180` into time.Duration (want a duration with a unit, e.g. \"180s\")\n" +
				"p.yaml:8: workload \"chat\": min_replicas: cannot unmarshal !!float `1.5` into int (want a whole number)\n" +
				"p.yaml:9: workload \"chat\": tiers.spot.failure_domains: cannot unmarshal !!float `2.5` into int (want a whole number)"},
		{"infinite replicas", strings.Replace(minimal, "max_replicas: 10", "max_replicas: .inf", 1),
			"p.yaml:7: workload \"chat\": max_replicas: cannot unmarshal !!float `.inf` into int"},
		{"repeated key", minimal + "    mu: 3\n",
			`p.yaml:8: workload "chat": mu: mapping key "mu" already defined at line 4`},
		{"missing name", strings.Replace(minimal, "name: chat", "name: \"\"", 1),
			`p.yaml:2: workloads[0]: name: is required`},
		{"bad name", strings.Replace(minimal, "name: chat", "name: Chat_1", 1),
			`p.yaml:2: workload "Chat_1": name: "Chat_1" must be a DNS label (lower-case letters, digits, '-')`},
		{"duplicate", minimal + strings.TrimPrefix(minimal, "workloads:\n"),
			`p.yaml:8: workload "chat": name: duplicate workload`},
		{"no demand", strings.Replace(minimal, "demand: {series: chat}", "demand: {}", 1),
			`p.yaml:3: workload "chat": demand: set query (PromQL) or series (embedded store)`},
		{"both demands", strings.Replace(minimal, "{series: chat}", "{series: chat, query: up}", 1),
			`p.yaml:3: workload "chat": demand: set query or series, not both`},
		{"bad promql", strings.Replace(minimal, "{series: chat}", "{query: 'sum(rate(x[1m]'}", 1),
			`p.yaml:3: workload "chat": demand.query: not valid PromQL: 1:15: parse error: unclosed left parenthesis`},
		{"bad series", strings.Replace(minimal, "{series: chat}", "{series: 'chat{model=}'}", 1),
			`p.yaml:3: workload "chat": demand.series: not a valid series selector: 1:12: parse error: unexpected "}" in label matching, expected string`},
		{"series without a metric", strings.Replace(minimal, "{series: chat}", `{series: '{model="chat"}'}`, 1),
			`p.yaml:3: workload "chat": demand.series: "{model=\"chat\"}" names no metric: the embedded store keeps only the metrics that series name, e.g. chat_requests_total{model="chat"}`},
		{"series with a name pattern", strings.Replace(minimal, "{series: chat}", `{series: '{__name__=~"chat.*"}'}`, 1),
			`p.yaml:3: workload "chat": demand.series: "{__name__=~\"chat.*\"}" names no metric: the embedded store keeps only the metrics that series name, e.g. chat_requests_total{model="chat"}`},
		{"zero mu", strings.Replace(minimal, "mu: 2", "mu: 0", 1),
			`p.yaml:4: workload "chat": mu: 0 must be a positive requests/s per replica`},
		{"no slo", strings.Replace(minimal, "latency_slo: 1s", "latency_slo: 0s", 1),
			`p.yaml:5: workload "chat": latency_slo: 0s must be positive`},
		{"negative cold start", strings.Replace(minimal, "180s", "-1s", 1),
			`p.yaml:6: workload "chat": cold_start: -1s must be positive (launch to ready; with measure_cold_start, used until one is measured)`},
		{"no cold start", strings.Replace(minimal, "    cold_start: 180s\n", "    measure_cold_start: true\n", 1),
			`p.yaml:2: workload "chat": cold_start: 0s must be positive (launch to ready; with measure_cold_start, used until one is measured)`},
		{"quantile", minimal + "    forecast_quantile: 0.999\n",
			`p.yaml:8: workload "chat": forecast_quantile: 0.999 must be in [0.5, 0.99]`},
		{"burst window", minimal + "    burst_window: -1m\n",
			`p.yaml:8: workload "chat": burst_window: -1m0s must not be negative`},
		{"forecast step", minimal + "    forecast_step: 20s\n",
			`p.yaml:8: workload "chat": forecast_step: 20s must be a positive multiple of decision_interval 15s`},
		{"max below min", minimal + "    min_replicas: 20\n",
			`p.yaml:7: workload "chat": max_replicas: 10 is below min_replicas 20`},
		{"share", minimal + "    on_demand_share: 1.5\n",
			`p.yaml:8: workload "chat": on_demand_share: 1.5 must be in [0, 1]`},
		{"availability", minimal + "    target_availability: 1\n",
			`p.yaml:8: workload "chat": target_availability: 1 must be in (0, 1)`},
		{"step ratio", minimal + "    scale_down: {max_step_ratio: 2}\n",
			`p.yaml:8: workload "chat": scale_down.max_step_ratio: 2 must be in (0, 1]`},
		{"tolerance", minimal + "    tolerance: 1\n",
			`p.yaml:8: workload "chat": tolerance: 1 must be in [0, 1)`},
		{"spot without risk", minimal + "    tiers: {spot: {price_per_hour: 1}}\n",
			`p.yaml:8: workload "chat": tiers.spot: set interruption_rate_per_hour or advisor_band`},
		{"spot bad band", minimal + "    tiers: {spot: {price_per_hour: 1, advisor_band: \"7%\"}}\n",
			`p.yaml:8: workload "chat": tiers.spot.advisor_band: "7%" is not one of "<5%", "5-10%", "10-15%", "15-20%", ">20%"`},
		{"spot both risks", minimal + "    tiers: {spot: {advisor_band: \"<5%\", interruption_rate_per_hour: 0.1}}\n",
			`p.yaml:8: workload "chat": tiers.spot: set interruption_rate_per_hour or advisor_band, not both`},
		// A 0 written out is the user's 0, not the default: where 0 is no
		// value the error says so.
		{"zero interval", minimal + "    decision_interval: 0s\n",
			`p.yaml:8: workload "chat": decision_interval: 0s must be positive`},
		{"zero quantile", minimal + "    forecast_quantile: 0\n",
			`p.yaml:8: workload "chat": forecast_quantile: 0 must be in [0.5, 0.99]`},
		{"zero step ratio", minimal + "    scale_down: {max_step_ratio: 0}\n",
			`p.yaml:8: workload "chat": scale_down.max_step_ratio: 0 must be in (0, 1]`},
		{"zero failure domains", minimal + "    tiers: {spot: {price_per_hour: 1, interruption_rate_per_hour: 0.1, failure_domains: 0}}\n",
			`p.yaml:8: workload "chat": tiers.spot.failure_domains: 0 must be at least 1`},
		{"spot negative", minimal + "    tiers: {spot: {price_per_hour: -1, interruption_rate_per_hour: -0.1, notice: -1s, failure_domains: -2}}\n",
			"p.yaml:8: workload \"chat\": tiers.spot.price_per_hour: -1 must not be negative\n" +
				"p.yaml:8: workload \"chat\": tiers.spot.interruption_rate_per_hour: -0.1 must not be negative\n" +
				"p.yaml:8: workload \"chat\": tiers.spot.notice: -1s must not be negative\n" +
				"p.yaml:8: workload \"chat\": tiers.spot.failure_domains: -2 must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := ParsePolicy("p.yaml", []byte(tc.file))
			if err == nil {
				t.Fatalf("no error; policy %+v", p)
			}
			if err.Error() != tc.want {
				t.Fatalf("error:\n%s\nwant:\n%s", err, tc.want)
			}
		})
	}
}

// TestRangeErrorsAtTheFieldsLine: a value out of range is reported at the
// line of its key — neg.yaml:22 for a min_replicas on line 22, not the
// workload's first line — and a field left to its default at the line of
// the deepest key the file does write (the workload, or tiers.spot).
func TestRangeErrorsAtTheFieldsLine(t *testing.T) {
	const file = `workloads:
  - name: chat
    demand:
      series: chat
    mu: 2
    latency_slo: 1s
    cold_start: 180s
    min_replicas: -1
    max_replicas: 10
    scale_down:
      max_step_ratio: 2
    tiers:
      spot:
        price_per_hour: 1
        pools: [a, a]
  - name: embed
    demand: {series: embed}
    mu: 1
    latency_slo: 1s
    max_replicas: 3
`
	_, err := ParsePolicy("p.yaml", []byte(file))
	want := `p.yaml:8: workload "chat": min_replicas: -1 must not be negative
p.yaml:11: workload "chat": scale_down.max_step_ratio: 2 must be in (0, 1]
p.yaml:13: workload "chat": tiers.spot: set interruption_rate_per_hour or advisor_band
p.yaml:15: workload "chat": tiers.spot.pools[1]: "a" is empty or repeated
p.yaml:16: workload "embed": cold_start: 0s must be positive (launch to ready; with measure_cold_start, used until one is measured)`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

type recordReloads struct{ errs []error }

func (r *recordReloads) Reloaded(err error) { r.errs = append(r.errs, err) }

func TestPolicyFileReloadKeepsLastGood(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(minimal), 0o600); err != nil {
		t.Fatal(err)
	}
	obs := &recordReloads{}
	f, err := OpenPolicyFile(path, obs)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(minimal, "mu: 2", "mu: -1", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(context.Background()); err == nil {
		t.Fatal("bad file reloaded")
	}
	if w, _ := f.Current().Workload("chat"); w.Mu != 2 {
		t.Fatalf("bad reload replaced the policy: mu %v", w.Mu)
	}
	if err := os.WriteFile(path, []byte(strings.Replace(minimal, "mu: 2", "mu: 3", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := f.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	if w, _ := f.Current().Workload("chat"); w.Mu != 3 {
		t.Fatalf("mu %v after reload, want 3", w.Mu)
	}
	if len(obs.errs) != 3 || obs.errs[0] != nil || obs.errs[1] == nil || obs.errs[2] != nil {
		t.Fatalf("observed reloads %v", obs.errs)
	}
}

func TestParsePolicyWith(t *testing.T) {
	src, err := os.ReadFile("testdata/policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	parse := func(workload, key, value string) (*Policy, error) {
		return ParsePolicyWith("p.yaml", src, workload, key, value)
	}
	// A key the entry has, one nested, and one it leaves to the defaults
	// (embed has no scale_down): each set as the file would set it, the
	// rest of the policy untouched.
	p, err := parse("", "forecast_quantile", "0.95")
	if err != nil {
		t.Fatal(err)
	}
	if chat, _ := p.Workload("chat"); chat.ForecastQuantile != 0.95 || chat.BurstWindow != 30*time.Minute || chat.Tiers.Spot.Notice != 120*time.Second {
		t.Fatalf("chat = %+v", chat)
	}
	if p, err = parse("chat", "tiers.spot.price_per_hour", "1.1"); err != nil {
		t.Fatal(err)
	}
	if chat, _ := p.Workload("chat"); chat.Tiers.Spot.PricePerHour != 1.1 || chat.Tiers.OnDemand.PricePerHour != 4 {
		t.Fatalf("chat tiers = %+v %+v", chat.Tiers.Spot, chat.Tiers.OnDemand)
	}
	if p, err = parse("embed", "scale_down.stabilization", "2m"); err != nil {
		t.Fatal(err)
	}
	embed, _ := p.Workload("embed")
	chat, _ := p.Workload("chat")
	if embed.ScaleDown.Stabilization != 2*time.Minute || embed.ScaleDown.MaxStepRatio != chat.ScaleDown.MaxStepRatio || embed.Mu != 40 {
		t.Fatalf("embed = %+v", embed)
	}
	if chat.ScaleDown.Stabilization != 5*time.Minute {
		t.Fatalf("the other workload changed: %+v", chat.ScaleDown)
	}
	// The source is not edited in place: it parses as before.
	if p, err = ParsePolicy("p.yaml", src); err != nil {
		t.Fatal(err)
	}
	if chat, _ := p.Workload("chat"); chat.ForecastQuantile != 0.9 {
		t.Fatalf("source changed: forecast_quantile %v", chat.ForecastQuantile)
	}

	for _, tc := range []struct{ workload, key, value, want string }{
		{"", "forecast_quantil", "0.9", `forecast_quantil: unknown field`},
		// --sweep min_replicas=1.5,2 ran 1.5 as 1 under the label 1.5.
		{"chat", "min_replicas", "1.5", "workload \"chat\": min_replicas: cannot unmarshal !!float `1.5` into int (want a whole number)"},
		{"embed", "tiers.spot.failure_domains", "2.5", "tiers.spot.failure_domains: cannot unmarshal !!float `2.5` into int (want a whole number)"},
		{"", "forecast_quantile", "2", `workload "chat": forecast_quantile: 2 must be in [0.5, 0.99]`},
		{"chat", "scale_down.stabilization", "soon", `workload "chat": scale_down.stabilization: cannot unmarshal`},
		{"chat", "mu.rate", "2", `p.yaml:7: mu: not a mapping, cannot set mu.rate`},
		{"chat", "scale_down..stabilization", "2m", `"scale_down..stabilization" is not a key path`},
		{"chatbot", "mu", "3", `p.yaml: no workload "chatbot"`},
	} {
		_, err := parse(tc.workload, tc.key, tc.value)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s %s=%s: error %v, want %q", tc.workload, tc.key, tc.value, err, tc.want)
		}
	}
}
