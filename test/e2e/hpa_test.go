//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestHPA: a plain HPA v2 on infercast's object metric
// infercast_desired_replicas (custom.metrics.k8s.io served by the adapter,
// registered through an APIService), without KEDA, at the end of the whole
// chain: simulated vLLM servers → infercast's exporter → a real Prometheus
// → the adapter → the HPA controller → the Deployment. The Deployment's
// replicas follow infercast's target as the servers' demand rises and
// falls; the adapter restarted, the model server's /metrics hanging and
// Prometheus killed leave it at a sane count.
func TestHPA(t *testing.T) {
	b := findBinaries(t, "etcd", "kube-apiserver", "kube-controller-manager", "adapter", "exporter")
	total := phase(t, "TestHPA total")
	defer total()
	c := startCluster(t, b)
	kcm := c.startControllerManager(t, b)

	f := startFleet(t)
	ep, pr, a := exporterChain(t, b, c.dir, f, 2)
	demand := func(rps float64) {
		t.Helper()
		if err := f.SetArrivalRate("chat", rps); err != nil {
			t.Fatal(err)
		}
	}
	hang := func(on bool) {
		t.Helper()
		if err := f.SetHang("chat-vllm", on); err != nil {
			t.Fatal(err)
		}
	}
	c.registerAPIService(t, "infercast", "infercast-adapter", "custom.metrics.k8s.io", "v1beta2", a.cmPort)

	const ns, deploy = "default", "chat-on-demand" // the provider's default template {workload}-{tier}
	ctx := context.Background()
	// 3 replicas where infercast plans 1 at 2 req/s: the first step is the HPA's.
	c.createDeployment(t, ns, deploy, 3)
	hpa := objectHPA(ns, deploy)
	if _, err := c.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("hpa: %v", err)
	}
	procs := []*proc{kcm, pr.p, ep}
	always := func(int) (bool, string) { return true, "" }
	low := followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "HPA: replicas go from 3 to the target at 2 req/s", 3*time.Minute, always, procs...)

	demand(30)
	high := followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "HPA: demand rises to 30 req/s", 3*time.Minute,
		func(n int) (bool, string) { return n >= low+5, fmt.Sprintf("target not yet above %d", low+5) }, procs...)

	demand(4)
	fell := followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "HPA: demand falls to 4 req/s", 3*time.Minute,
		func(n int) (bool, string) { return n <= high/2, fmt.Sprintf("target not yet at or below %d", high/2) }, procs...)

	// Fault: the adapter restarts (same storage, same ports). Plans come back
	// from the stored history and the Deployment keeps following them.
	func() {
		defer phase(t, "fault: adapter restarted")()
		a.p.stop()
		demand(20)
		a.start(t)
		followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "HPA: after the adapter's restart, demand at 20 req/s", 3*time.Minute,
			func(n int) (bool, string) { return n >= fell+3, fmt.Sprintf("target not yet above %d", fell+3) }, procs...)
	}()

	// Fault: the model server's /metrics hangs (every exporter scrape of it
	// times out) for 20 s. The adapter keeps serving (last good plan, then
	// reactive) and the Deployment keeps a sane count: never below
	// min_replicas, never above max.
	func() {
		defer phase(t, "fault: model server hangs 20s")()
		hang(true)
		staysSane(ctx, t, c, a, ns, deploy, "during the hang", 20*time.Second)
		hang(false)
		demand(6)
		followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "HPA: after the hang, demand at 6 req/s", 3*time.Minute,
			func(n int) (bool, string) { return n <= 10, "target not yet at or below 10" }, procs...)
	}()

	// Fault: Prometheus killed (SIGKILL) for 20 s, then restarted on its data
	// directory. Same sanity meanwhile; afterwards the Deployment follows demand up.
	func() {
		defer phase(t, "fault: prometheus killed 20s")()
		pr.p.kill()
		staysSane(ctx, t, c, a, ns, deploy, "without Prometheus", 20*time.Second)
		demand(24)
		pr.start(t)
		followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "HPA: Prometheus back, demand at 24 req/s", 3*time.Minute,
			func(n int) (bool, string) { return n >= 12, "target not yet at or above 12" }, kcm, pr.p, ep)
	}()
}

// staysSane checks every 2 s for d that the adapter's /healthz answers 200
// and the Deployment keeps a count within [min_replicas 1, max_replicas 60].
func staysSane(ctx context.Context, t *testing.T, c *cluster, a *adapter, ns, deploy, when string, d time.Duration) {
	t.Helper()
	saneFor(ctx, t, a, "replicas "+when, d, func(ctx context.Context) (int, error) { return c.replicas(ctx, ns, deploy) })
}
