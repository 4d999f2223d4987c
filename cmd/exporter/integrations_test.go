package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infercast/infercast/internal/testutil/fakegpu"
	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/metrics/cost"
	"github.com/infercast/infercast/pkg/metrics/kube"
)

// TestKubeWiring: discovered pods become scrape targets (source
// kubernetes, named namespace/pod) with their max batch size; a pod of
// dialect generic uses the config's mapping it names, again after a reload
// changed it; pods with an unknown dialect or an unusable mapping are
// skipped; cold starts land in the exporter's families with their kind as
// source, and spend usage joins request rates with the pods' GPUs, teams
// and node, for every discovered pod.
func TestKubeWiring(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `vllm:num_requests_waiting{model_name="x"} 4`)
		fmt.Fprintln(w, `vllm:num_requests_running{model_name="x"} 2`)
	}))
	defer srv.Close()
	custom := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `my_queue{svc="custom"} 3`)
		fmt.Fprintln(w, `my_running{svc="custom"} 6`)
		fmt.Fprintln(w, `my_backlog{svc="custom"} 7`)
	}))
	defer custom.Close()
	const mapping = "generic_mappings:\n  mine: {model_label: svc, queue_waiting: %s, running: my_running}\n"
	cfg, err := metrics.ParseConfig(fmt.Appendf(nil, mapping, "my_queue"))
	if err != nil {
		t.Fatal(err)
	}
	exp, err := metrics.New(cfg, metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	node := map[string]string{"karpenter.sh/capacity-type": "spot", "node.kubernetes.io/instance-type": "g5.xlarge"}
	in := &integrations{log: slog.New(slog.DiscardHandler), exp: exp, gpus: map[string]float64{}, pods: map[string]kube.Target{},
		nodeLabels: func() map[string]string { return node }}
	in.onKubeTargets([]kube.Target{
		{Namespace: "ml", Pod: "llama-0", URL: srv.URL, Dialect: "vllm", Model: "llama", Team: "chat", GPUs: 2, MaxBatchSize: 8, Ready: true},
		{Namespace: "ml", Pod: "custom-0", URL: custom.URL, Dialect: "generic", Mapping: "mine", MaxBatchSize: 12, Ready: true},
		{Namespace: "ml", Pod: "odd-0", URL: srv.URL, Dialect: "ollama", Model: "odd"},
		{Namespace: "ml", Pod: "nomap-0", URL: custom.URL, Dialect: "generic"},
		{Namespace: "ml", Pod: "undefined-0", URL: custom.URL, Dialect: "generic", Mapping: "theirs"},
		{Namespace: "ml", Pod: "stray-0", URL: srv.URL, Dialect: "vllm", Mapping: "mine"},
	})
	exp.Cycle(context.Background())
	in.onColdStart(kube.ColdStart{Kind: kube.PodStart, Namespace: "ml", Pod: "llama-0", Model: "llama", Duration: 90 * time.Second})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(exp)
	want := `# HELP infercast_target_up 1 when the last scrape of the target succeeded and its body parsed, else 0.
# TYPE infercast_target_up gauge
infercast_target_up{dialect="generic:mine",source="kubernetes",target="ml/custom-0"} 1
infercast_target_up{dialect="vllm",source="kubernetes",target="ml/llama-0"} 1
# HELP infercast_model_requests_waiting Requests waiting in the server's queue (the backlog), as last scraped.
# TYPE infercast_model_requests_waiting gauge
infercast_model_requests_waiting{model="custom",target="ml/custom-0"} 3
infercast_model_requests_waiting{model="llama",target="ml/llama-0"} 4
# HELP infercast_model_batch_utilization_ratio Batch size divided by the target's configured max_batch_size (0–1).
# TYPE infercast_model_batch_utilization_ratio gauge
infercast_model_batch_utilization_ratio{model="custom",target="ml/custom-0"} 0.5
infercast_model_batch_utilization_ratio{model="llama",target="ml/llama-0"} 0.25
# HELP infercast_cold_starts_total Cold starts of model servers: process restarts of static targets, pod starts and container restarts in Kubernetes.
# TYPE infercast_cold_starts_total counter
infercast_cold_starts_total{model="llama",source="pod_start"} 1
`
	names := []string{"infercast_target_up", "infercast_model_requests_waiting", "infercast_model_batch_utilization_ratio", "infercast_cold_starts_total"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	// Spend: every discovered pod, those of an unusable dialect included
	// (they hold their GPUs all the same), under the model it serves, else
	// the one it names, else unknown.
	byServer := map[string]cost.Usage{}
	for _, u := range in.usage(nil) {
		if len(u.Replicas) != 1 {
			t.Fatalf("usage %+v: want one replica", u)
		}
		byServer[u.Replicas[0].Server] = u
	}
	if u, ok := byServer["ml/llama-0"]; !ok || u.Model != "llama" || u.Team != "chat" ||
		u.Replicas[0].GPUs != 2 || u.Replicas[0].NodeLabels["karpenter.sh/capacity-type"] != "spot" {
		t.Errorf("llama-0's usage = %+v", u)
	}
	models := map[string]string{}
	for server, u := range byServer {
		models[server] = u.Model
	}
	wantModels := map[string]string{"ml/llama-0": "llama", "ml/custom-0": "custom", "ml/odd-0": "odd",
		"ml/nomap-0": "unknown", "ml/undefined-0": "unknown", "ml/stray-0": "unknown"}
	if fmt.Sprint(models) != fmt.Sprint(wantModels) {
		t.Errorf("spend's servers and models %v, want %v", models, wantModels)
	}

	// A reload that changes the mapping reaches the discovered pod.
	cfg, err = metrics.ParseConfig(fmt.Appendf(nil, mapping, "my_backlog"))
	if err != nil {
		t.Fatal(err)
	}
	if err := exp.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	in.refreshKube()
	exp.Cycle(context.Background())
	want = `# HELP infercast_model_requests_waiting Requests waiting in the server's queue (the backlog), as last scraped.
# TYPE infercast_model_requests_waiting gauge
infercast_model_requests_waiting{model="custom",target="ml/custom-0"} 7
infercast_model_requests_waiting{model="llama",target="ml/llama-0"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "infercast_model_requests_waiting"); err != nil {
		t.Errorf("after the mapping changed: %v", err)
	}
}

// TestNodeName: the configured node wins; otherwise NODE_NAME, which the
// chart sets from the downward API, names the node for discovery and for
// the spot watchers' node label alike.
func TestNodeName(t *testing.T) {
	t.Setenv("NODE_NAME", "gpu-node-7")
	if got := nodeName(metrics.KubernetesConfig{}); got != "gpu-node-7" {
		t.Errorf("from NODE_NAME: %q", got)
	}
	if got := nodeName(metrics.KubernetesConfig{NodeName: "configured"}); got != "configured" {
		t.Errorf("configured: %q", got)
	}
	t.Setenv("NODE_NAME", "")
	if got := nodeName(metrics.KubernetesConfig{}); got != "" {
		t.Errorf("neither: %q", got)
	}
}

// TestGPUProcRoot: integrations.gpu.proc_root reaches the GPU collector, which
// maps NVML's processes to pods through <proc_root>/<pid>/cgroup (the chart
// runs the exporter with hostPID and leaves it at /proc).
func TestGPUProcRoot(t *testing.T) {
	const uid = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
	root := fakegpu.Proc(t, map[uint32]string{4242: fakegpu.SystemdCgroup(uid, strings.Repeat("ab", 32))})
	cfg, err := metrics.ParseConfig([]byte("integrations: {gpu: {enabled: true, proc_root: " + root + "}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	lib := fakegpu.OneGPU(6<<30, nvml.ProcessInfo{Pid: 4242, UsedGpuMemory: 5 << 30})
	for _, demo := range []bool{false, true} {
		// With a driver (the mock initialises), the demo uses it too.
		c, simulated := gpuCollector(demo, cfg.Integrations.GPU, lib, nil, slog.New(slog.DiscardHandler))
		if simulated {
			t.Errorf("demo=%v: a library that initialises was replaced by the simulated node", demo)
		}
		reg := prometheus.NewPedanticRegistry()
		reg.MustRegister(c)
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, mf := range mfs {
			if mf.GetName() != "infercast_gpu_pod_memory_used_bytes" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					found = found || l.GetName() == "pod_uid" && l.GetValue() == uid && m.GetGauge().GetValue() == 5<<30
				}
			}
		}
		if !found {
			t.Errorf("demo=%v: no infercast_gpu_pod_memory_used_bytes{pod_uid=%q} 5GiB: the process was not mapped through proc_root %s", demo, uid, root)
		}
		_ = c.Close()
	}
}

// TestSpendUsage: the spend of the pods on this node is their share of the
// node's price, never more than the node. A server of two models is split
// between them by their request rates on it; two teams running one model
// name each pay for their own pod; a pod's share of the node is
// discovery's (time-sliced GPUs here); a pod whose team is only its
// namespace takes the config's team for its model, and one holding no GPU
// of the node (whose GPUs discovery counts) is charged nothing: not the
// GPUs no server holds.
func TestSpendUsage(t *testing.T) {
	now := time.Unix(1_750_000_000, 0)
	var elapsed float64
	serve := func(rate map[string]float64) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			for m, r := range rate {
				fmt.Fprintf(w, "vllm:request_success_total{model_name=%q} %g\n", m, r*elapsed)
			}
		}))
		t.Cleanup(srv.Close)
		return srv.URL
	}
	cfg, err := metrics.ParseConfig([]byte("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	exp, err := metrics.New(cfg, metrics.Options{Now: func() time.Time { return now.Add(time.Duration(elapsed) * time.Second) }})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"karpenter.sh/capacity-type": "on-demand", "node.kubernetes.io/instance-type": "g5.12xlarge"}
	in := &integrations{log: slog.New(slog.DiscardHandler), exp: exp, gpus: map[string]float64{}, pods: map[string]kube.Target{},
		node: "node-a", nodeLabels: func() map[string]string { return labels }}
	// multi-0 names no model: the server's labels name its two.
	pod := func(ns, name, model, team string, gpus float64, rate map[string]float64) kube.Target {
		return kube.Target{Namespace: ns, Pod: name, URL: serve(rate), Dialect: "vllm", Model: model, Team: team,
			GPUs: gpus, NodeShare: gpus / 8, NodeGPUs: 8} // time-sliced: the node's 4 GPUs advertised as 8
	}
	cpu := pod("tools", "cpu-0", "c", "tools", 0, map[string]float64{"c": 1})
	cpu.TeamDefaulted = true
	in.onKubeTargets([]kube.Target{
		pod("ml", "multi-0", "", "chat", 1, map[string]float64{"a": 30, "b": 10}),
		pod("ml", "llama-0", "llama", "chat", 1, map[string]float64{"llama": 5}),
		pod("search", "llama-0", "llama", "search", 1, map[string]float64{"llama": 5}),
		cpu,
	})
	exp.Cycle(context.Background())
	elapsed = 15
	exp.Cycle(context.Background())

	cat, err := cost.ParseCatalogue(strings.NewReader("instance_types:\n  g5.12xlarge: {on_demand: 5.6, gpus: 4}\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	total := 0.0
	for _, s := range cost.Compute(cat, in.usage(map[string]string{"c": "devtools", "llama": "platform"})) {
		got[s.Team+"/"+s.Model] = s.DollarsPerHr[cost.OnDemand]
		total += s.DollarsPerHr[cost.OnDemand]
	}
	want := map[string]float64{
		"chat/a": 0.7 * 30 / 40, "chat/b": 0.7 * 10 / 40,
		"chat/llama": 0.7, "search/llama": 0.7,
		"devtools/c": 0,
	}
	for k, w := range want {
		if math.Abs(got[k]-w) > 1e-9 {
			t.Errorf("%s: $%v/hour, want %v", k, got[k], w)
		}
	}
	if len(got) != len(want) || math.Abs(total-3*0.7) > 1e-9 {
		t.Errorf("spend %v, total %v: want %v adding up to the three GPUs' 2.1 of the node's 5.6", got, total, want)
	}
}

// spendHarness is a node of four GPUs at $5.60/hour whose discovered pods
// serve request counters, some of them failing on demand.
type spendHarness struct {
	t       *testing.T
	exp     *metrics.Exporter
	in      *integrations
	cat     *cost.Catalogue
	elapsed float64
	down    map[string]bool // by pod: its /metrics answers 503
}

func newSpendHarness(t *testing.T) *spendHarness {
	t.Helper()
	h := &spendHarness{t: t, down: map[string]bool{}}
	now := time.Unix(1_750_000_000, 0)
	cfg, err := metrics.ParseConfig([]byte("{}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if h.exp, err = metrics.New(cfg, metrics.Options{Now: func() time.Time { return now.Add(time.Duration(h.elapsed) * time.Second) }}); err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"karpenter.sh/capacity-type": "on-demand", "node.kubernetes.io/instance-type": "g5.12xlarge"}
	h.in = &integrations{log: slog.New(slog.DiscardHandler), exp: h.exp, gpus: map[string]float64{}, pods: map[string]kube.Target{},
		node: "node-a", nodeLabels: func() map[string]string { return labels }}
	if h.cat, err = cost.ParseCatalogue(strings.NewReader("instance_types:\n  g5.12xlarge: {on_demand: 5.6, gpus: 4}\n")); err != nil {
		t.Fatal(err)
	}
	return h
}

// pod is a vLLM pod serving model at 5 requests/s (or failing while
// h.down[name]), holding gpus of the node's 4; nodeGPUs is what discovery
// counts of the node (0: not known).
func (h *spendHarness) pod(name, model, annotated string, gpus, nodeGPUs float64) kube.Target {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if h.down[name] {
			http.Error(w, "loading", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintf(w, "vllm:request_success_total{model_name=%q} %g\n", model, 5*h.elapsed)
	}))
	h.t.Cleanup(srv.Close)
	return kube.Target{Namespace: "ml", Pod: name, URL: srv.URL, Dialect: "vllm", Model: annotated, Team: "chat",
		GPUs: gpus, NodeShare: gpus / 4, NodeGPUs: nodeGPUs}
}

// spend runs two cycles and returns each model's spend, GPUs and cost per
// 1,000 requests ("-" when absent).
func (h *spendHarness) spend() map[string]string {
	for range 2 {
		h.exp.Cycle(context.Background())
		h.elapsed += 15
	}
	got := map[string]string{}
	for _, s := range cost.Compute(h.cat, h.in.usage(nil)) {
		perK := "-"
		if s.HasPerThousand {
			perK = fmt.Sprintf("%.4f", s.PerThousand)
		}
		got[s.Team+"/"+s.Model] = fmt.Sprintf("$%.2f/h gpus=%v per1k=%s", s.DollarsPerHr[cost.OnDemand], s.GPUs[cost.OnDemand], perK)
	}
	return got
}

// TestSpendKeepsFailingServer (review): a pod whose /metrics fails — vLLM
// loading its weights (discovery lists Running pods before they are
// Ready), hung, crash-looping — still holds its GPUs: it keeps its share of
// the node under the model it last served, with no cost per 1,000 requests
// while it completes none, and the CPU-only server beside it is not
// charged its GPUs. It dropped out of spend, and the CPU-only server took
// its part of the node.
func TestSpendKeepsFailingServer(t *testing.T) {
	h := newSpendHarness(t)
	h.in.onKubeTargets([]kube.Target{h.pod("a-0", "a", "a", 2, 0), h.pod("b-0", "b", "", 2, 0), h.pod("emb-0", "emb", "emb", 0, 0)})
	perK := fmt.Sprintf("%.4f", 2.8/(5*3600)*1000)
	healthy := map[string]string{
		"chat/a":   "$2.80/h gpus=2 per1k=" + perK,
		"chat/b":   "$2.80/h gpus=2 per1k=" + perK,
		"chat/emb": "$0.00/h gpus=0 per1k=0.0000",
	}
	if got := h.spend(); fmt.Sprint(got) != fmt.Sprint(healthy) {
		t.Errorf("healthy: %v, want %v", got, healthy)
	}
	h.down["b-0"] = true
	failing := map[string]string{
		"chat/a":   "$2.80/h gpus=2 per1k=" + perK,
		"chat/b":   "$2.80/h gpus=2 per1k=-",
		"chat/emb": "$0.00/h gpus=0 per1k=0.0000",
	}
	if got := h.spend(); fmt.Sprint(got) != fmt.Sprint(failing) {
		t.Errorf("b-0 failing: %v, want %v", got, failing)
	}
}

// TestSpendServersThatNeverServed: a pod that has not answered yet is
// charged to the model it names (infercast.io/model), else to its label
// app.kubernetes.io/name (what its series would fall back to), else to
// model "unknown", and one of a dialect the exporter cannot read likewise;
// a pod holding no GPU of a node whose GPUs discovery counts is charged
// nothing, not the GPUs no server holds.
func TestSpendServersThatNeverServed(t *testing.T) {
	h := newSpendHarness(t)
	odd := h.pod("odd-0", "odd", "odd", 1, 4)
	odd.Dialect = "ollama"
	labelled := h.pod("labelled-0", "l", "", 1, 4)
	labelled.DefaultModel = "chart"
	h.in.onKubeTargets([]kube.Target{h.pod("c-0", "c", "c", 1, 4), h.pod("multi-0", "x", "", 1, 4), labelled, odd, h.pod("emb-0", "emb", "emb", 0, 4)})
	h.down["c-0"], h.down["multi-0"], h.down["labelled-0"] = true, true, true
	want := map[string]string{
		"chat/c":       "$1.40/h gpus=1 per1k=-",
		"chat/unknown": "$1.40/h gpus=1 per1k=-",
		"chat/chart":   "$1.40/h gpus=1 per1k=-",
		"chat/odd":     "$1.40/h gpus=1 per1k=-",
		"chat/emb":     "$0.00/h gpus=0 per1k=0.0000",
	}
	if got := h.spend(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("spend %v, want %v", got, want)
	}
}

// TestSpendStaticTGINeverServed: a static TGI target without model:
// that has not answered yet is charged to its name, the model its series
// will be read as.
func TestSpendStaticTGINeverServed(t *testing.T) {
	h := newSpendHarness(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "loading", http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	cfg, err := metrics.ParseConfig([]byte("targets: [{name: bloom-0, url: " + srv.URL + ", dialect: tgi}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if err := h.exp.ApplyConfig(cfg); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"/bloom-0": "$1.40/h gpus=1 per1k=-"}
	if got := h.spend(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("spend %v, want %v", got, want)
	}
}

// TestSpendPodLabelNamesNoServedModel: a pod's app.kubernetes.io/name
// label, set by most charts whatever the pod serves, does not rename the
// model its server's series name (vLLM's model_name here); the
// infercast.io/model annotation does.
func TestSpendPodLabelNamesNoServedModel(t *testing.T) {
	h := newSpendHarness(t)
	labelled := h.pod("labelled-0", "served", "", 2, 4)
	labelled.DefaultModel = "chart"
	annotated := h.pod("annotated-0", "also-served", "named", 2, 4)
	annotated.DefaultModel = "chart"
	h.in.onKubeTargets([]kube.Target{labelled, annotated})
	perK := fmt.Sprintf("%.4f", 2.8/(5*3600)*1000)
	want := map[string]string{
		"chat/served": "$2.80/h gpus=2 per1k=" + perK,
		"chat/named":  "$2.80/h gpus=2 per1k=" + perK,
	}
	if got := h.spend(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("spend %v, want %v", got, want)
	}
}

// TestReloadCannotTurnSpendOnOrOff: the spend collector is registered at
// start, so a reload that names a catalogue where there was none, or
// drops it, fails and says a restart does it, rather than reporting a
// success it did not apply.
func TestReloadCannotTurnSpendOnOrOff(t *testing.T) {
	prices := filepath.Join(t.TempDir(), "prices.yaml")
	if err := os.WriteFile(prices, []byte("instance_types:\n  g5.xlarge: {on_demand: 1, gpus: 1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	with, err := metrics.ParseConfig([]byte("integrations: {cost: {catalogue_file: " + prices + "}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	off := &integrations{}
	if _, err := off.loadCost(with); err == nil || !strings.Contains(err.Error(), "turning it on takes a restart") {
		t.Errorf("spend off, reload naming a catalogue: %v", err)
	}
	if apply, err := off.loadCost(metrics.DefaultConfig()); err != nil || apply != nil {
		t.Errorf("spend off, reload naming none: %v", err)
	}
	on := &integrations{cost: cost.NewCollector(nil, nil, 0, nil)}
	if _, err := on.loadCost(metrics.DefaultConfig()); err == nil || !strings.Contains(err.Error(), "turning spend off takes a restart") {
		t.Errorf("spend on, reload naming no catalogue: %v", err)
	}
	if apply, err := on.loadCost(with); err != nil || apply == nil {
		t.Errorf("spend on, reload naming a catalogue: %v", err)
	}
}
