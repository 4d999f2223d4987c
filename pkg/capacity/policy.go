package capacity

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/infercast/infercast/internal/strictyaml"
)

// Policy is a validated policy file: the workloads the planner sizes.
type Policy struct {
	Workloads []Workload `yaml:"workloads"`

	// given says, per workload, which keys the file writes (Given).
	given []func(path ...string) bool
}

// Given reports whether the policy file writes the key at path below the
// entry of the workload named workload ("queue_slo"; "tiers", "spot",
// "notice"): a setting written as 0 is given, one the defaults filled in
// is not, and a null is not. A Policy not parsed from a file gives
// nothing. adapter backtest reads it to let the file's 0 win over its own
// defaults.
func (p *Policy) Given(workload string, path ...string) bool {
	for i := range p.Workloads {
		if p.Workloads[i].Name == workload && i < len(p.given) {
			return p.given[i](path...)
		}
	}
	return false
}

// Workload is the policy of one workload. Durations are Go durations
// ("180s", "5m"). Zero values are replaced by the defaults of
// DefaultWorkload before validation.
type Workload struct {
	Name string `yaml:"name"`
	// Demand is the signal the forecast is made from.
	Demand Demand `yaml:"demand"`
	// Mu is the requests/s one replica serves within the latency SLO. With
	// LearnMu, it is the initial value until the learner has enough samples.
	Mu      float64 `yaml:"mu"`
	LearnMu bool    `yaml:"learn_mu"`
	// LatencySLO is the bound on LatencyPercentile of request latency.
	LatencySLO        time.Duration `yaml:"latency_slo"`
	LatencyPercentile float64       `yaml:"latency_percentile"`
	// QueueSLO is how long a request may wait for a replica: the backlog
	// floor drains the queue within it.
	QueueSLO time.Duration `yaml:"queue_slo"`
	// ColdStart is the time from launch to ready. With MeasureColdStart, the
	// caller's measured p90 replaces it once known.
	ColdStart        time.Duration `yaml:"cold_start"`
	MeasureColdStart bool          `yaml:"measure_cold_start"`
	DecisionInterval time.Duration `yaml:"decision_interval"`
	// ForecastStep is the interval the forecaster is fed and forecasts in,
	// a multiple of DecisionInterval (default 1m).
	ForecastStep time.Duration `yaml:"forecast_step"`
	// ForecastQuantile is the quantile of demand sized for (0.5–0.99).
	ForecastQuantile float64 `yaml:"forecast_quantile"`
	// BurstWindow (default 1h) is how far back the live rate's peak
	// counts in the calibrated sizing: bursts come in clusters, so the
	// horizon calibration scales the larger of the median forecast and
	// this window's peak live rate, not the median alone.
	BurstWindow time.Duration `yaml:"burst_window"`
	MinReplicas int           `yaml:"min_replicas"`
	MaxReplicas int           `yaml:"max_replicas"`
	// OnDemandShare is the part of the core always kept on on-demand.
	OnDemandShare float64 `yaml:"on_demand_share"`
	// TargetAvailability is the probability with which the spot layer
	// (with its margin) must still carry its share through an interruption.
	TargetAvailability float64   `yaml:"target_availability"`
	ScaleDown          ScaleDown `yaml:"scale_down"`
	// FallbackHold is how long spot must stay healthy (no pending replica, no
	// notice) before capacity moved to on-demand returns to spot.
	FallbackHold time.Duration `yaml:"fallback_hold"`
	// Tolerance is the HPA's tolerance (0.1): the serving side
	// (pkg/scaler/hpa) compensates reported values for it.
	Tolerance *float64 `yaml:"tolerance"`
	Tiers     Tiers    `yaml:"tiers"`
	// Preview computes and exports targets without acting on them.
	Preview bool `yaml:"preview"`
}

// Demand names the demand signal: a PromQL query giving requests/s, or a
// series of the embedded store.
type Demand struct {
	Query  string `yaml:"query"`
	Series string `yaml:"series"`
}

// SeriesSelector parses demand.series, a series selector of the embedded
// store (chat_requests_total{model="chat"}), with Prometheus's parser: its
// matchers, and the metric it names, which the store must keep.
func (d Demand) SeriesSelector() (metric string, ms []*labels.Matcher, err error) {
	ms, err = parser.NewParser(parser.Options{}).ParseMetricSelector(d.Series)
	if err != nil {
		return "", nil, fmt.Errorf("not a valid series selector: %w", err)
	}
	for _, m := range ms {
		if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
			metric = m.Value
		}
	}
	if metric == "" {
		return "", nil, fmt.Errorf("%q names no metric: the embedded store keeps only the metrics that series name, e.g. chat_requests_total{model=\"chat\"}", d.Series)
	}
	return metric, ms, nil
}

// ScaleDown shapes scale-in.
type ScaleDown struct {
	// Stabilization: the target never drops below the highest target of
	// this window (the HPA's scale-down stabilisation).
	Stabilization time.Duration `yaml:"stabilization"`
	// MaxStepRatio is the largest fraction of a tier removed in one
	// decision (0 < r ≤ 1).
	MaxStepRatio float64 `yaml:"max_step_ratio"`
	// IdleHold keeps the fleet warm when demand stops abruptly (a pause,
	// not a decline): the need stays at its level before the pause for up
	// to this long, so traffic that resumes within it finds ready
	// replicas instead of a cold start. 0 (the default) scales in as usual.
	IdleHold time.Duration `yaml:"idle_hold"`
}

// Tiers are the capacity tiers of a workload. Without Spot every replica
// is on-demand.
type Tiers struct {
	OnDemand *OnDemandTier `yaml:"on_demand"`
	Spot     *SpotTier     `yaml:"spot"`
}

// OnDemandTier is reliable capacity.
type OnDemandTier struct {
	PricePerHour float64 `yaml:"price_per_hour"`
}

// SpotTier is interruptible capacity.
type SpotTier struct {
	PricePerHour float64 `yaml:"price_per_hour"`
	// The prior interruption risk of one replica: a rate per hour, or an AWS
	// Spot Instance Advisor band ("<5%", "5-10%", "10-15%", "15-20%", ">20%").
	// The planner refines it with the interruptions it observes.
	InterruptionRatePerHour *float64 `yaml:"interruption_rate_per_hour"`
	AdvisorBand             string   `yaml:"advisor_band"`
	// Notice is the time between an interruption notice and termination.
	Notice time.Duration `yaml:"notice"`
	// FailureDomains is how many zones (or pools) spot replicas spread over;
	// a domain is reclaimed as a whole.
	FailureDomains int `yaml:"failure_domains"`
	// Pools names the node pools this tier's replicas run in, matched
	// against the `pool` label of the exporter's spot interruption series:
	// a notice on a node of one of them is a notice for this workload.
	Pools []string `yaml:"pools"`
}

// advisorBands maps an AWS advisor band (the share of instances interrupted
// over a month) to the band's upper bound; ">20%" is taken as 30 %.
var advisorBands = map[string]float64{"<5%": 0.05, "5-10%": 0.10, "10-15%": 0.15, "15-20%": 0.20, ">20%": 0.30}

// hoursPerMonth converts the advisor's monthly frequency to a rate.
const hoursPerMonth = 730

// PriorRatePerHour is the prior interruption rate of one spot replica.
func (s *SpotTier) PriorRatePerHour() float64 {
	if s.InterruptionRatePerHour != nil {
		return *s.InterruptionRatePerHour
	}
	if f, ok := advisorBands[s.AdvisorBand]; ok {
		return -math.Log(1-f) / hoursPerMonth
	}
	return 0
}

// DefaultWorkload holds the defaults applied to unset fields.
func DefaultWorkload() Workload {
	tol := 0.1
	return Workload{
		LatencyPercentile:  0.99,
		QueueSLO:           5 * time.Second,
		DecisionInterval:   15 * time.Second,
		ForecastStep:       time.Minute,
		ForecastQuantile:   0.9,
		BurstWindow:        time.Hour,
		TargetAvailability: 0.999,
		ScaleDown:          ScaleDown{Stabilization: 5 * time.Minute, MaxStepRatio: 0.5},
		FallbackHold:       10 * time.Minute,
		Tolerance:          &tol,
	}
}

// FitDataStep raises ForecastStep to the resolution of the demand data
// (a trace's step, a recording rule's interval), rounded up to a multiple
// of the decision interval: a forecaster fed finer intervals than the data
// has sees flat runs and jumps, and learns no spread for the jumps.
func (w *Workload) FitDataStep(dataStep time.Duration) {
	if dataStep <= w.ForecastStep || w.DecisionInterval <= 0 {
		return
	}
	n := (dataStep + w.DecisionInterval - 1) / w.DecisionInterval
	w.ForecastStep = n * w.DecisionInterval
}

// Horizon is the cold start plus one decision interval: replicas launched
// now must serve the demand of [now, now+Horizon].
func (w *Workload) Horizon(coldStart time.Duration) time.Duration {
	return coldStart + w.DecisionInterval
}

// applyDefaults fills the settings the policy leaves out. given says
// whether the workload's YAML sets a key (a path below the workload): a
// setting written as 0 is the user's 0 — validated like any value, and
// where 0 means something (no stabilisation window, relaunching spot at
// once) it means that — never silently the default.
func (w *Workload) applyDefaults(given func(path ...string) bool) {
	d := DefaultWorkload()
	unset := func(zero bool, path ...string) bool { return zero && !given(path...) }
	if unset(w.LatencyPercentile == 0, "latency_percentile") {
		w.LatencyPercentile = d.LatencyPercentile
	}
	if unset(w.QueueSLO == 0, "queue_slo") {
		w.QueueSLO = d.QueueSLO
	}
	if unset(w.DecisionInterval == 0, "decision_interval") {
		w.DecisionInterval = d.DecisionInterval
	}
	if unset(w.ForecastStep == 0, "forecast_step") {
		w.ForecastStep = max(d.ForecastStep, w.DecisionInterval)
	}
	if unset(w.BurstWindow == 0, "burst_window") {
		w.BurstWindow = d.BurstWindow
	}
	if unset(w.ForecastQuantile == 0, "forecast_quantile") {
		w.ForecastQuantile = d.ForecastQuantile
	}
	if unset(w.TargetAvailability == 0, "target_availability") {
		w.TargetAvailability = d.TargetAvailability
	}
	if unset(w.ScaleDown.Stabilization == 0, "scale_down", "stabilization") {
		w.ScaleDown.Stabilization = d.ScaleDown.Stabilization
	}
	if unset(w.ScaleDown.MaxStepRatio == 0, "scale_down", "max_step_ratio") {
		w.ScaleDown.MaxStepRatio = d.ScaleDown.MaxStepRatio
	}
	if unset(w.FallbackHold == 0, "fallback_hold") {
		w.FallbackHold = d.FallbackHold
	}
	if w.Tolerance == nil {
		w.Tolerance = d.Tolerance
	}
	if w.Tiers.OnDemand == nil {
		w.Tiers.OnDemand = &OnDemandTier{}
	}
	if s := w.Tiers.Spot; s != nil && unset(s.FailureDomains == 0, "tiers", "spot", "failure_domains") {
		s.FailureDomains = 1
	}
}

// givenIn reports whether mapping node n sets the key at path.
func givenIn(n *yaml.Node) func(path ...string) bool {
	return func(path ...string) bool {
		v := n
		for _, k := range path {
			if v = strictyaml.Value(v, k); v == nil {
				return false
			}
		}
		return v.Tag != "!!null"
	}
}

var workloadName = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

// validate returns one error per bad field, each with the field's key
// path (its line is the caller's to find).
func (w *Workload) validate() []*strictyaml.Error {
	var errs []*strictyaml.Error
	bad := func(field, format string, a ...any) {
		errs = append(errs, &strictyaml.Error{Path: field, Msg: fmt.Sprintf(format, a...)})
	}
	if w.Name == "" {
		bad("name", "is required")
	} else if !workloadName.MatchString(w.Name) || len(w.Name) > 63 {
		bad("name", "%q must be a DNS label (lower-case letters, digits, '-')", w.Name)
	}
	switch {
	case w.Demand.Query != "" && w.Demand.Series != "":
		bad("demand", "set query or series, not both")
	case w.Demand.Query == "" && w.Demand.Series == "":
		bad("demand", "set query (PromQL) or series (embedded store)")
	case w.Demand.Query != "":
		if _, err := parser.NewParser(parser.Options{}).ParseExpr(w.Demand.Query); err != nil {
			bad("demand.query", "not valid PromQL: %v", err)
		}
	default:
		if _, _, err := w.Demand.SeriesSelector(); err != nil {
			bad("demand.series", "%v", err)
		}
	}
	if !(w.Mu > 0) || math.IsInf(w.Mu, 0) {
		bad("mu", "%v must be a positive requests/s per replica", w.Mu)
	}
	if w.LatencySLO <= 0 {
		bad("latency_slo", "%v must be positive", w.LatencySLO)
	}
	if !(w.LatencyPercentile > 0 && w.LatencyPercentile < 1) {
		bad("latency_percentile", "%v must be in (0, 1)", w.LatencyPercentile)
	}
	if w.QueueSLO < 0 {
		bad("queue_slo", "%v must not be negative", w.QueueSLO)
	}
	if w.ColdStart <= 0 {
		// Required even with measure_cold_start: it is the horizon until a
		// cold start has been measured, and no model server is ready at once.
		bad("cold_start", "%v must be positive (launch to ready; with measure_cold_start, used until one is measured)", w.ColdStart)
	}
	if w.DecisionInterval <= 0 {
		bad("decision_interval", "%v must be positive", w.DecisionInterval)
	}
	if w.ForecastStep <= 0 || (w.DecisionInterval > 0 && w.ForecastStep%w.DecisionInterval != 0) {
		bad("forecast_step", "%v must be a positive multiple of decision_interval %v", w.ForecastStep, w.DecisionInterval)
	}
	if !(w.ForecastQuantile >= 0.5 && w.ForecastQuantile <= 0.99) {
		bad("forecast_quantile", "%v must be in [0.5, 0.99]", w.ForecastQuantile)
	}
	if w.MinReplicas < 0 {
		bad("min_replicas", "%d must not be negative", w.MinReplicas)
	}
	if w.MaxReplicas <= 0 {
		bad("max_replicas", "%d must be positive", w.MaxReplicas)
	} else if w.MaxReplicas < w.MinReplicas {
		bad("max_replicas", "%d is below min_replicas %d", w.MaxReplicas, w.MinReplicas)
	}
	if !(w.OnDemandShare >= 0 && w.OnDemandShare <= 1) {
		bad("on_demand_share", "%v must be in [0, 1]", w.OnDemandShare)
	}
	if !(w.TargetAvailability > 0 && w.TargetAvailability < 1) {
		bad("target_availability", "%v must be in (0, 1)", w.TargetAvailability)
	}
	if w.ScaleDown.Stabilization < 0 {
		bad("scale_down.stabilization", "%v must not be negative", w.ScaleDown.Stabilization)
	}
	if w.BurstWindow < 0 {
		bad("burst_window", "%v must not be negative", w.BurstWindow)
	}
	if w.ScaleDown.IdleHold < 0 {
		bad("scale_down.idle_hold", "%v must not be negative", w.ScaleDown.IdleHold)
	}
	if !(w.ScaleDown.MaxStepRatio > 0 && w.ScaleDown.MaxStepRatio <= 1) {
		bad("scale_down.max_step_ratio", "%v must be in (0, 1]", w.ScaleDown.MaxStepRatio)
	}
	if w.FallbackHold < 0 {
		bad("fallback_hold", "%v must not be negative", w.FallbackHold)
	}
	if t := *w.Tolerance; !(t >= 0 && t < 1) {
		bad("tolerance", "%v must be in [0, 1)", t)
	}
	if p := w.Tiers.OnDemand.PricePerHour; !(p >= 0) || math.IsInf(p, 0) {
		bad("tiers.on_demand.price_per_hour", "%v must not be negative", p)
	}
	if s := w.Tiers.Spot; s != nil {
		if !(s.PricePerHour >= 0) || math.IsInf(s.PricePerHour, 0) {
			bad("tiers.spot.price_per_hour", "%v must not be negative", s.PricePerHour)
		}
		switch {
		case s.InterruptionRatePerHour != nil && s.AdvisorBand != "":
			bad("tiers.spot", "set interruption_rate_per_hour or advisor_band, not both")
		case s.InterruptionRatePerHour != nil:
			if r := *s.InterruptionRatePerHour; !(r >= 0) || math.IsInf(r, 0) {
				bad("tiers.spot.interruption_rate_per_hour", "%v must not be negative", r)
			}
		case s.AdvisorBand != "":
			if _, ok := advisorBands[s.AdvisorBand]; !ok {
				bad("tiers.spot.advisor_band", "%q is not one of \"<5%%\", \"5-10%%\", \"10-15%%\", \"15-20%%\", \">20%%\"", s.AdvisorBand)
			}
		default:
			bad("tiers.spot", "set interruption_rate_per_hour or advisor_band")
		}
		if s.Notice < 0 {
			bad("tiers.spot.notice", "%v must not be negative", s.Notice)
		}
		if s.FailureDomains < 1 {
			bad("tiers.spot.failure_domains", "%d must be at least 1", s.FailureDomains)
		}
		seen := map[string]bool{}
		for i, pool := range s.Pools {
			if pool == "" || seen[pool] {
				bad(fmt.Sprintf("tiers.spot.pools[%d]", i), "%q is empty or repeated", pool)
			}
			seen[pool] = true
		}
	}
	return errs
}

// Workload returns the workload named name.
func (p *Policy) Workload(name string) (*Workload, bool) {
	for i := range p.Workloads {
		if p.Workloads[i].Name == name {
			return &p.Workloads[i], true
		}
	}
	return nil, false
}

// ParsePolicy parses and validates a policy file. name prefixes every error
// (the file's path); unknown keys are errors; every error names the line,
// the workload and the field.
func ParsePolicy(name string, b []byte) (*Policy, error) {
	doc, err := policyDoc(name, b)
	if err != nil {
		return nil, err
	}
	return parsePolicyDoc(name, doc)
}

// ParsePolicyWith parses a policy like ParsePolicy after setting key (a
// dotted path within a workload's entry: forecast_quantile,
// scale_down.stabilization) to the YAML value in workload's entry (""
// for the first), as if the file said so: an unknown key or a bad value
// is the same error a file would get, naming the key. adapter backtest's
// --sweep runs a policy so, once per value.
func ParsePolicyWith(name string, b []byte, workload, key, value string) (*Policy, error) {
	doc, err := policyDoc(name, b)
	if err != nil {
		return nil, err
	}
	wnodes := workloadNodes(doc)
	var wn *yaml.Node
	for i, n := range wnodes {
		if (workload == "" && i == 0) || (workload != "" && entryName(n) == workload) {
			wn = n
			break
		}
	}
	if wn == nil || wn.Kind != yaml.MappingNode {
		if workload == "" {
			return nil, fmt.Errorf("%s: no workloads", name)
		}
		return nil, fmt.Errorf("%s: no workload %q", name, workload)
	}
	path := strings.Split(key, ".")
	if slices.Contains(path, "") {
		return nil, fmt.Errorf("%s: %q is not a key path (e.g. forecast_quantile, scale_down.stabilization)", name, key)
	}
	n := wn
	for i, k := range path {
		if n.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s:%d: %s: not a mapping, cannot set %s", name, n.Line, strings.Join(path[:i], "."), key)
		}
		child := strictyaml.Value(n, k)
		if child == nil { // absent: added, on the line of its parent
			child = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Line: n.Line}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: k, Line: n.Line}, child)
		}
		n = child
	}
	// A plain scalar with no tag: the decoder resolves it as YAML would
	// resolve the same text in the file.
	*n = yaml.Node{Kind: yaml.ScalarNode, Value: value, Line: n.Line, Column: n.Column}
	return parsePolicyDoc(name, doc)
}

// policyDoc is the document node of policy source b.
func policyDoc(name string, b []byte) (*yaml.Node, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, fmt.Errorf("%s: empty policy: want a workloads list", name)
	}
	return root.Content[0], nil
}

func parsePolicyDoc(name string, doc *yaml.Node) (*Policy, error) {
	wnodes := workloadNodes(doc)
	if errs := strictyaml.Check(doc, reflect.TypeOf(Policy{}), ""); len(errs) > 0 {
		return nil, locate(name, wnodes, errs[0])
	}
	if len(wnodes) == 0 {
		return nil, fmt.Errorf("%s: no workloads", name)
	}
	// Decode workload by workload, so a type error names its workload.
	p := Policy{Workloads: make([]Workload, len(wnodes))}
	var errs []error
	for i, wn := range wnodes {
		var werrs []*strictyaml.Error
		if err := wn.Decode(&p.Workloads[i]); err != nil {
			werrs = strictyaml.DecodeErrors(wn, err)
		}
		// yaml.v3 truncates max_replicas: 5.9 to 5: a type error too.
		werrs = strictyaml.Merge(werrs, strictyaml.NonIntegers(wn, reflect.TypeOf(Workload{}), ""))
		for _, e := range werrs {
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", name, e.Line, workloadLabel(wn, i), e))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	seen := map[string]bool{}
	for i := range p.Workloads {
		w := &p.Workloads[i]
		p.given = append(p.given, givenIn(wnodes[i]))
		w.applyDefaults(p.given[i])
		label := fmt.Sprintf("workload %q", w.Name)
		if w.Name == "" {
			label = fmt.Sprintf("workloads[%d]", i)
		}
		var werrs []*strictyaml.Error
		if seen[w.Name] && w.Name != "" {
			werrs = append(werrs, &strictyaml.Error{Path: "name", Msg: "duplicate workload"})
		}
		seen[w.Name] = true
		werrs = append(werrs, w.validate()...)
		for _, e := range werrs {
			// The line of the field; the workload's for a field it
			// leaves to its default.
			line := strictyaml.Line(wnodes[i], e.Path)
			if line == 0 {
				line = wnodes[i].Line
			}
			errs = append(errs, fmt.Errorf("%s:%d: %s: %w", name, line, label, e))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &p, nil
}

// LoadPolicy reads and parses the policy file at path.
func LoadPolicy(path string) (*Policy, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return ParsePolicy(path, b)
}

func workloadNodes(doc *yaml.Node) []*yaml.Node {
	if v := strictyaml.Value(doc, "workloads"); v != nil && v.Kind == yaml.SequenceNode {
		return v.Content
	}
	return nil
}

// locate formats e, a problem found under the policy's document, as
// FILE:LINE: WORKLOAD: PATH: PROBLEM, the path below its workload's entry
// (FILE:LINE: PATH: PROBLEM above the workloads).
func locate(name string, wnodes []*yaml.Node, e *strictyaml.Error) error {
	if rest, ok := strings.CutPrefix(e.Path, "workloads["); ok {
		idx, after, _ := strings.Cut(rest, "]")
		if i, err := strconv.Atoi(idx); err == nil && i >= 0 && i < len(wnodes) {
			in := &strictyaml.Error{Line: e.Line, Path: strings.TrimPrefix(after, "."), Msg: e.Msg}
			return fmt.Errorf("%s:%d: %s: %w", name, e.Line, workloadLabel(wnodes[i], i), in)
		}
	}
	return fmt.Errorf("%s:%d: %w", name, e.Line, e)
}

// workloadLabel names the workload of node n for error messages.
func workloadLabel(n *yaml.Node, i int) string {
	if name := entryName(n); name != "" {
		return fmt.Sprintf("workload %q", name)
	}
	return fmt.Sprintf("workload [%d]", i)
}

// entryName is the name: of a workload's entry, "" without one.
func entryName(n *yaml.Node) string {
	if v := strictyaml.Value(n, "name"); v != nil {
		return v.Value
	}
	return ""
}

// PolicyFile is a reloadable policy file: Reload swaps in a new policy only
// when the whole file is valid, so a bad edit loses nothing.
type PolicyFile struct {
	path string
	obs  ReloadObserver

	mu      sync.RWMutex
	current *Policy
}

// ReloadObserver is told the outcome of every reload (metrics, logs).
type ReloadObserver interface {
	Reloaded(err error)
}

// OpenPolicyFile loads path; obs may be nil.
func OpenPolicyFile(path string, obs ReloadObserver) (*PolicyFile, error) {
	f := &PolicyFile{path: path, obs: obs}
	if err := f.Reload(context.Background()); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload re-reads the file; on error the previous policy stays.
func (f *PolicyFile) Reload(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	p, err := LoadPolicy(f.path)
	if err == nil {
		f.mu.Lock()
		f.current = p
		f.mu.Unlock()
	}
	if f.obs != nil {
		f.obs.Reloaded(err)
	}
	return err
}

// Current returns the last valid policy. Callers must not modify it.
func (f *PolicyFile) Current() *Policy {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.current
}
