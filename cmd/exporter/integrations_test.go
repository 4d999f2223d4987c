package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/infercast/infercast/pkg/metrics"
	"github.com/infercast/infercast/pkg/metrics/kube"
)

// TestKubeWiring: discovered pods become scrape targets (source
// kubernetes, named namespace/pod), pods with an unknown dialect are
// skipped, cold starts land in the exporter's families with their kind as
// source, and spend usage joins request rates with the pods' GPUs, teams
// and node.
func TestKubeWiring(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, `vllm:num_requests_waiting{model_name="x"} 4`)
	}))
	defer srv.Close()
	exp, err := metrics.New(metrics.DefaultConfig(), metrics.Options{})
	if err != nil {
		t.Fatal(err)
	}
	node := map[string]string{"karpenter.sh/capacity-type": "spot", "node.kubernetes.io/instance-type": "g5.xlarge"}
	in := &integrations{log: slog.New(slog.DiscardHandler), exp: exp, gpus: map[string]float64{}, kubeTeams: map[string]string{},
		nodeLabels: func() map[string]string { return node }}
	in.onKubeTargets([]kube.Target{
		{Namespace: "ml", Pod: "llama-0", URL: srv.URL, Dialect: "vllm", Model: "llama", Team: "chat", GPUs: 2, Ready: true},
		{Namespace: "ml", Pod: "odd-0", URL: srv.URL, Dialect: "ollama", Model: "odd"},
	})
	exp.Cycle(context.Background())
	in.onColdStart(kube.ColdStart{Kind: kube.PodStart, Namespace: "ml", Pod: "llama-0", Model: "llama", Duration: 90 * time.Second})

	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(exp)
	want := `# HELP infercast_target_up 1 when the last scrape of the target succeeded and its body parsed, else 0.
# TYPE infercast_target_up gauge
infercast_target_up{dialect="vllm",source="kubernetes",target="ml/llama-0"} 1
# HELP infercast_model_requests_waiting Requests waiting in the server's queue (the backlog), as last scraped.
# TYPE infercast_model_requests_waiting gauge
infercast_model_requests_waiting{model="llama",target="ml/llama-0"} 4
# HELP infercast_cold_starts_total Cold starts of model servers: process restarts of static targets, pod starts and container restarts in Kubernetes.
# TYPE infercast_cold_starts_total counter
infercast_cold_starts_total{model="llama",source="pod_start"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "infercast_target_up", "infercast_model_requests_waiting", "infercast_cold_starts_total"); err != nil {
		t.Error(err)
	}

	u := in.usage(nil)
	if len(u) != 1 || u[0].Model != "llama" || u[0].Team != "chat" || len(u[0].Replicas) != 1 ||
		u[0].Replicas[0].GPUs != 2 || u[0].Replicas[0].NodeLabels["karpenter.sh/capacity-type"] != "spot" {
		t.Errorf("usage = %+v", u)
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
