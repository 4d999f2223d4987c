package cost

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const goodCatalogue = `
instance_types:
  g5.xlarge: {on_demand: 1.0, spot: 0.4, gpus: 1}
  g5.12xlarge: {on_demand: 5.6, spot: 2.4, gpus: 4}
  m5.large: {on_demand: 0.1}
node_pools:
  reserved-a100: {on_demand: 20, spot: 8, gpus: 8}
`

func mustCatalogue(t *testing.T) *Catalogue {
	t.Helper()
	c, err := ParseCatalogue(strings.NewReader(goodCatalogue))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestParseCatalogue(t *testing.T) {
	c := mustCatalogue(t)
	if p := c.InstanceTypes["g5.12xlarge"]; p.OnDemand != 5.6 || p.Spot != 2.4 || p.GPUs != 4 {
		t.Errorf("g5.12xlarge = %+v", p)
	}
	if DemoCatalogue() == nil {
		t.Error("no demo catalogue")
	}
}

func TestParseCatalogueErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "price catalogue: empty"},
		{"no entries", "instance_types: {}\n", "no instance_types or node_pools"},
		{"unknown top key", "instance_type:\n  g5.xlarge: {on_demand: 1}\n", "field instance_type not found"},
		{"unknown entry key", "instance_types:\n  g5.xlarge: {ondemand: 1}\n", "line 2: field ondemand not found"},
		{"missing on_demand", "instance_types:\n  g5.xlarge: {spot: 0.3}\n", `line 2: instance_types["g5.xlarge"].on_demand: must be a positive $/hour, got 0`},
		{"negative spot", "node_pools:\n  gpu: {on_demand: 3, spot: -1}\n", `line 2: node_pools["gpu"].spot: must be >= 0`},
		{"spot above on-demand", "instance_types:\n  x: {on_demand: 1, spot: 2}\n", `line 2: instance_types["x"].spot: 2 is above on_demand 1`},
		{"field on its own line", "instance_types:\n  x:\n    on_demand: 1\n    gpus: -8\n", `line 4: instance_types["x"].gpus: must be >= 0, got -8`},
		{"empty name", "instance_types:\n  g5.xlarge: {on_demand: 1}\n  \"\": {on_demand: 1}\n", `line 3: instance_types: empty name`},
		{"negative gpus", "instance_types:\n  x: {on_demand: 1, gpus: -8}\n", `instance_types["x"].gpus: must be >= 0, got -8`},
		{"nan", "instance_types:\n  x: {on_demand: .nan}\n", `instance_types["x"].on_demand`},
		{"wrong type", "instance_types:\n  x: {on_demand: cheap}\n", "cannot unmarshal !!str `cheap` into float64"},
		{"duplicate", "instance_types:\n  x: {on_demand: 1}\n  x: {on_demand: 2}\n", `mapping key "x" already defined`},
		{"two bad entries", "instance_types:\n  a: {on_demand: 0}\n  b: {on_demand: 0}\n", `line 3: instance_types["b"].on_demand`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseCatalogue(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestNodeFromLabels(t *testing.T) {
	for _, tc := range []struct {
		name    string
		labels  map[string]string
		want    Node
		wantErr string
	}{
		{"no labels", nil, Node{Tier: OnDemand}, ""},
		{"karpenter spot", map[string]string{"karpenter.sh/capacity-type": "spot", "node.kubernetes.io/instance-type": "g5.xlarge", "karpenter.sh/nodepool": "gpu"},
			Node{Tier: Spot, InstanceType: "g5.xlarge", Pool: "gpu", TierLabel: "karpenter.sh/capacity-type"}, ""},
		{"karpenter on-demand", map[string]string{"karpenter.sh/capacity-type": "on-demand"}, Node{Tier: OnDemand, TierLabel: "karpenter.sh/capacity-type"}, ""},
		{"karpenter reserved", map[string]string{"karpenter.sh/capacity-type": "reserved"}, Node{Tier: OnDemand, TierLabel: "karpenter.sh/capacity-type"}, ""},
		{"eks spot", map[string]string{"eks.amazonaws.com/capacityType": "SPOT", "eks.amazonaws.com/nodegroup": "ng-1"},
			Node{Tier: Spot, Pool: "ng-1", TierLabel: "eks.amazonaws.com/capacityType"}, ""},
		{"eks on demand", map[string]string{"eks.amazonaws.com/capacityType": "ON_DEMAND"}, Node{Tier: OnDemand, TierLabel: "eks.amazonaws.com/capacityType"}, ""},
		{"eks and karpenter agree", map[string]string{"eks.amazonaws.com/capacityType": "SPOT", "karpenter.sh/capacity-type": "spot"},
			Node{Tier: Spot, TierLabel: "eks.amazonaws.com/capacityType"}, ""},
		{"gke spot", map[string]string{"cloud.google.com/gke-spot": "true", "cloud.google.com/gke-nodepool": "l4-pool", "node.kubernetes.io/instance-type": "g2-standard-8"},
			Node{Tier: Spot, InstanceType: "g2-standard-8", Pool: "l4-pool", TierLabel: "cloud.google.com/gke-spot"}, ""},
		{"gke preemptible", map[string]string{"cloud.google.com/gke-preemptible": "true"}, Node{Tier: Spot, TierLabel: "cloud.google.com/gke-preemptible"}, ""},
		{"aks spot", map[string]string{"kubernetes.azure.com/scalesetpriority": "spot", "kubernetes.azure.com/agentpool": "gpuspot"},
			Node{Tier: Spot, Pool: "gpuspot", TierLabel: "kubernetes.azure.com/scalesetpriority"}, ""},
		{"aks regular", map[string]string{"kubernetes.azure.com/scalesetpriority": "regular"}, Node{Tier: OnDemand, TierLabel: "kubernetes.azure.com/scalesetpriority"}, ""},
		{"beta instance type", map[string]string{"beta.kubernetes.io/instance-type": "m5.large"}, Node{Tier: OnDemand, InstanceType: "m5.large"}, ""},
		{"unknown value", map[string]string{"karpenter.sh/capacity-type": "Spot"}, Node{}, `karpenter.sh/capacity-type="Spot": unknown capacity type`},
		{"disagree", map[string]string{"karpenter.sh/capacity-type": "on-demand", "eks.amazonaws.com/capacityType": "SPOT"}, Node{}, "node labels disagree"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NodeFromLabels(tc.labels)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

var (
	spotG5   = map[string]string{"karpenter.sh/capacity-type": "spot", "node.kubernetes.io/instance-type": "g5.12xlarge"}
	odG5     = map[string]string{"karpenter.sh/capacity-type": "on-demand", "node.kubernetes.io/instance-type": "g5.12xlarge"}
	poolA100 = map[string]string{"eks.amazonaws.com/capacityType": "ON_DEMAND", "eks.amazonaws.com/nodegroup": "reserved-a100", "node.kubernetes.io/instance-type": "g5.xlarge"}
	unknown  = map[string]string{"node.kubernetes.io/instance-type": "x9.huge"}
	cpuOnly  = map[string]string{"node.kubernetes.io/instance-type": "m5.large", "cloud.google.com/gke-spot": "true"}
)

// on is a replica on a named node, its share of the node unknown.
func on(node string, labels map[string]string, gpus float64) Replica {
	return Replica{Node: node, NodeLabels: labels, GPUs: gpus}
}

func TestCompute(t *testing.T) {
	cat := mustCatalogue(t)
	for _, tc := range []struct {
		name     string
		usage    Usage
		od, spot float64
		unpriced int
		perK     float64
		hasPerK  bool
	}{
		{"gpu share on each tier", Usage{Team: "t", Model: "m", RequestsPerSecond: 2, Replicas: []Replica{on("s1", spotG5, 1), on("s1", spotG5, 2), on("od1", odG5, 4)}},
			5.6, 2.4 * 3 / 4, 0, (5.6 + 1.8) / (2 * 3600) * 1000, true},
		{"whole node without gpus", Usage{Team: "t", Model: "m", Replicas: []Replica{on("a", odG5, 0)}}, 5.6, 0, 0, 0, false},
		{"share capped at the node", Usage{Team: "t", Model: "m", RequestsPerSecond: 1, Replicas: []Replica{on("a", odG5, 8)}}, 5.6, 0, 0, 5.6 / 3.6, true},
		{"pool price wins", Usage{Team: "t", Model: "m", Replicas: []Replica{on("a", poolA100, 2)}}, 20 * 2 / 8.0, 0, 0, 0, false},
		{"unknown instance", Usage{Team: "t", Model: "m", Replicas: []Replica{on("x", unknown, 1), on("a", odG5, 4)}}, 5.6, 0, 1, 0, false},
		{"none per 1,000 while a replica is unpriced", Usage{Team: "t", Model: "m", RequestsPerSecond: 2, Replicas: []Replica{on("x", unknown, 1), on("a", odG5, 4)}}, 5.6, 0, 1, 0, false},
		{"no spot price", Usage{Team: "t", Model: "m", Replicas: []Replica{on("c", cpuOnly, 0)}}, 0, 0, 1, 0, false},
		{"bad labels", Usage{Team: "t", Model: "m", Replicas: []Replica{on("b", map[string]string{"karpenter.sh/capacity-type": "?"}, 1)}}, 0, 0, 1, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := Compute(cat, []Usage{tc.usage})
			if len(got) != 1 {
				t.Fatalf("%d results", len(got))
			}
			s := got[0]
			if !near(s.DollarsPerHr[OnDemand], tc.od) || !near(s.DollarsPerHr[Spot], tc.spot) {
				t.Errorf("spend od=%v spot=%v, want %v %v", s.DollarsPerHr[OnDemand], s.DollarsPerHr[Spot], tc.od, tc.spot)
			}
			if s.Unpriced != tc.unpriced {
				t.Errorf("unpriced = %d, want %d", s.Unpriced, tc.unpriced)
			}
			if s.HasPerThousand != tc.hasPerK || !near(s.PerThousand, tc.perK) {
				t.Errorf("per 1000 = %v (%v), want %v (%v)", s.PerThousand, s.HasPerThousand, tc.perK, tc.hasPerK)
			}
		})
	}
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

func TestCollector(t *testing.T) {
	usage := []Usage{
		{Team: "search", Model: "ranker", RequestsPerSecond: 100, Replicas: []Replica{on("spot-1", spotG5, 4), on("od-1", odG5, 4)}},
		{Team: "chat", Model: "llama", RequestsPerSecond: 10, Replicas: []Replica{on("od-2", odG5, 2)}},
		// The same model reported from a second place is merged; its
		// unpriced replica leaves ranker without a cost per 1,000 requests.
		{Team: "search", Model: "ranker", RequestsPerSecond: 50, Replicas: []Replica{on("x", unknown, 1)}},
	}
	var fail error
	c := NewCollector(UsageFunc(func(ctx context.Context) ([]Usage, error) {
		if _, ok := ctx.Deadline(); !ok {
			t.Error("Usage called without a deadline")
		}
		return usage, fail
	}), mustCatalogue(t), 0, nil)
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	want := `
# HELP infercast_cost_per_thousand_requests_dollars Dollars per 1,000 requests at the current spend and request rate (absent when no requests, or while a replica is unpriced).
# TYPE infercast_cost_per_thousand_requests_dollars gauge
infercast_cost_per_thousand_requests_dollars{model="llama",team="chat"} 0.07777777777777777
# HELP infercast_spend_dollars_per_hour What a model's replicas cost now, in dollars per hour, by capacity tier.
# TYPE infercast_spend_dollars_per_hour gauge
infercast_spend_dollars_per_hour{model="llama",team="chat",tier="on-demand"} 2.8
infercast_spend_dollars_per_hour{model="llama",team="chat",tier="spot"} 0
infercast_spend_dollars_per_hour{model="ranker",team="search",tier="on-demand"} 5.6
infercast_spend_dollars_per_hour{model="ranker",team="search",tier="spot"} 2.4
# HELP infercast_spend_unpriced_replicas Replicas left out of spend: node not in the price catalogue, no price for its tier, or unreadable labels.
# TYPE infercast_spend_unpriced_replicas gauge
infercast_spend_unpriced_replicas{model="llama",team="chat"} 0
infercast_spend_unpriced_replicas{model="ranker",team="search"} 1
# HELP infercast_spend_usage_up 1 when the last usage read succeeded, else 0.
# TYPE infercast_spend_usage_up gauge
infercast_spend_usage_up 1
`
	names := []string{"infercast_cost_per_thousand_requests_dollars", "infercast_spend_dollars_per_hour", "infercast_spend_unpriced_replicas", "infercast_spend_usage_up"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	checkDocumented(t, reg)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}

	// A catalogue reload changes prices at the next scrape.
	cheaper := mustCatalogue(t)
	cheaper.InstanceTypes["g5.12xlarge"] = Price{OnDemand: 2.8, Spot: 1.2, GPUs: 4}
	c.SetCatalogue(cheaper)
	if got := testutil.ToFloat64(onlySeries(t, reg, "infercast_spend_dollars_per_hour", "chat")); got != 1.4 {
		t.Errorf("after reload llama spend = %v, want 1.4", got)
	}

	fail = errors.New("discovery not synced")
	if err := testutil.GatherAndCompare(reg, strings.NewReader("# HELP infercast_spend_usage_up 1 when the last usage read succeeded, else 0.\n# TYPE infercast_spend_usage_up gauge\ninfercast_spend_usage_up 0\n"), names...); err != nil {
		t.Error(err)
	}
}

// onlySeries returns a collector yielding the on-demand spend of one team,
// gathered from reg, for testutil.ToFloat64.
func onlySeries(t *testing.T, reg *prometheus.Registry, name, team string) prometheus.Collector {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["team"] == team && labels["tier"] == "on-demand" {
				g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x", Help: "x"})
				g.Set(m.GetGauge().GetValue())
				return g
			}
		}
	}
	t.Fatalf("no %s for team %s", name, team)
	return nil
}

// spendOf is each model's total spend over the tiers, by model name.
func spendOf(ss []Spend) map[string]float64 {
	out := map[string]float64{}
	for _, s := range ss {
		for _, v := range s.DollarsPerHr {
			out[s.Model] += v
		}
	}
	return out
}

// TestNodeChargedOnce: the replicas on one node, of every model, never
// cost more than the node: replicas of unknown share (no GPUs, or a node
// whose catalogue entry has no gpus) split what the others leave, one
// known to hold none of the node's GPUs takes nothing of it, and
// known shares over the whole node are scaled down to it. A share read
// from the node's allocatable wins over the catalogue's GPU count (a
// time-sliced GPU is one of 16 devices on a 4-GPU node).
func TestNodeChargedOnce(t *testing.T) {
	m5 := map[string]string{"node.kubernetes.io/instance-type": "m5.large"} // on-demand 0.1, no gpus
	shared := func(node string, labels map[string]string, share float64) Replica {
		return Replica{Node: node, NodeLabels: labels, GPUs: 1, Share: share}
	}
	for _, tc := range []struct {
		name  string
		usage []Usage
		want  map[string]float64
	}{
		{"cpu-only replicas split the node", []Usage{
			{Model: "a", Replicas: []Replica{on("n", odG5, 0), on("n", odG5, 0), on("n", odG5, 0)}},
			{Model: "b", Replicas: []Replica{on("n", odG5, 0)}},
		}, map[string]float64{"a": 5.6 * 3 / 4, "b": 5.6 / 4}},
		{"node without gpus in the catalogue", []Usage{
			{Model: "a", Replicas: []Replica{on("n", m5, 1), on("n", m5, 1)}},
			{Model: "b", Replicas: []Replica{on("n", m5, 1)}},
		}, map[string]float64{"a": 0.2 / 3, "b": 0.1 / 3}},
		{"unknown shares take what is left", []Usage{
			{Model: "gpu", Replicas: []Replica{on("n", odG5, 2)}},
			{Model: "cpu", Replicas: []Replica{on("n", odG5, 0), on("n", odG5, 0)}},
		}, map[string]float64{"gpu": 5.6 / 2, "cpu": 5.6 / 2}},
		{"known to hold no gpu", []Usage{
			{Model: "gpu", Replicas: []Replica{on("n", odG5, 2)}},
			{Model: "cpu", Replicas: []Replica{{Node: "n", NodeLabels: odG5, ShareKnown: true}}},
		}, map[string]float64{"gpu": 5.6 / 2, "cpu": 0}},
		{"nothing left", []Usage{
			{Model: "gpu", Replicas: []Replica{on("n", odG5, 4)}},
			{Model: "cpu", Replicas: []Replica{on("n", odG5, 0)}},
		}, map[string]float64{"gpu": 5.6, "cpu": 0}},
		{"over-committed", []Usage{
			{Model: "a", Replicas: []Replica{shared("n", odG5, 0.75)}},
			{Model: "b", Replicas: []Replica{shared("n", odG5, 0.75), on("n", odG5, 0)}},
		}, map[string]float64{"a": 5.6 / 2, "b": 5.6 / 2}},
		{"share from allocatable wins", []Usage{
			{Model: "a", Replicas: []Replica{shared("n", odG5, 1.0/16), shared("n", odG5, 1.0/16)}},
		}, map[string]float64{"a": 5.6 / 8}},
		{"nodes apart", []Usage{
			{Model: "a", Replicas: []Replica{on("n1", odG5, 0), on("n2", odG5, 0)}},
		}, map[string]float64{"a": 2 * 5.6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := spendOf(Compute(mustCatalogue(t), tc.usage))
			for m, want := range tc.want {
				if !near(got[m], want) {
					t.Errorf("%s costs %v, want %v (all: %v)", m, got[m], want, got)
				}
			}
		})
	}
}

// TestServerOfSeveralModels: a server (Triton, Ray Serve, KServe) serving
// several models is one replica of each and holds its part of the node
// once, split among them by their request rates on it, else equally; its
// GPUs are split alike.
func TestServerOfSeveralModels(t *testing.T) {
	triton := func(model string, rps float64) Usage {
		return Usage{Team: "t", Model: model, RequestsPerSecond: rps, Replicas: []Replica{
			{Node: "n", NodeLabels: odG5, Server: "ml/triton-0", GPUs: 2, Share: 0.5, RequestsPerSecond: rps}}}
	}
	for _, tc := range []struct {
		name     string
		usage    []Usage
		want     map[string]float64
		wantGPUs map[string]float64
	}{
		{"by request rate", []Usage{triton("a", 30), triton("b", 10), triton("c", 0)},
			map[string]float64{"a": 2.8 * 3 / 4, "b": 2.8 / 4, "c": 0}, map[string]float64{"a": 1.5, "b": 0.5, "c": 0}},
		{"equally without requests", []Usage{triton("a", 0), triton("b", 0)},
			map[string]float64{"a": 1.4, "b": 1.4}, map[string]float64{"a": 1, "b": 1}},
		{"one server among the node's", []Usage{
			{Model: "a", Replicas: []Replica{{Node: "n", NodeLabels: odG5, Server: "ml/ray-0"}}},
			{Model: "b", Replicas: []Replica{{Node: "n", NodeLabels: odG5, Server: "ml/ray-0"}}},
			{Model: "c", Replicas: []Replica{{Node: "n", NodeLabels: odG5, Server: "ml/cpu-0"}}},
		}, map[string]float64{"a": 5.6 / 4, "b": 5.6 / 4, "c": 5.6 / 2}, nil},
		{"one name on two nodes is two servers", []Usage{
			{Model: "a", Replicas: []Replica{{Node: "n1", NodeLabels: odG5, Server: "x"}}},
			{Model: "b", Replicas: []Replica{{Node: "n2", NodeLabels: odG5, Server: "x"}}},
		}, map[string]float64{"a": 5.6, "b": 5.6}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ss := Compute(mustCatalogue(t), tc.usage)
			got := spendOf(ss)
			for m, want := range tc.want {
				if !near(got[m], want) {
					t.Errorf("%s costs %v, want %v (all: %v)", m, got[m], want, got)
				}
			}
			for _, s := range ss {
				if want, ok := tc.wantGPUs[s.Model]; ok && !near(s.GPUs[OnDemand], want) {
					t.Errorf("%s holds %v GPUs, want %v", s.Model, s.GPUs[OnDemand], want)
				}
			}
		})
	}
}
