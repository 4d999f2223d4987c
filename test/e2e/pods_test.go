//go:build e2e

package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/infercast/infercast/internal/kubepods"
	"github.com/infercast/infercast/internal/testutil"
)

// TestPodStates: adapter serve --kubernetes.pods watches the pods of the
// gpu workload's Deployments on the real API server. No scheduler or
// kubelet runs, so the test plays them: it creates the pods, binds them to
// nodes labelled with their pool and sets their conditions. A spot pod
// unschedulable past the grace is pending, and the plan moves it to
// on-demand at once (the estimate from past plans never sees it); bound
// and ready, it counts as ready in its pool.
func TestPodStates(t *testing.T) {
	b := findBinaries(t, "etcd", "kube-apiserver", "adapter")
	total := phase(t, "TestPodStates total")
	defer total()
	c := startCluster(t, b)
	d := newDemand(t)
	d.set("gpu_requests_total", 2)
	pr := newPrometheus(t, testutil.Binary(t, "prometheus"), c.dir, d.srv.Listener.Addr().String())
	pr.start(t)
	procs := []*proc{pr.p}

	const ns = "default"
	ctx := context.Background()
	// On-demand by the name template; spot by its labels, under a name of
	// its own (what a user with several GPU types would run).
	c.createDeployment(t, ns, "gpu-on-demand", 1)
	c.createDeployment(t, ns, "gpu-spot-h100", 1)
	labels := fmt.Sprintf(`{"metadata":{"labels":{%q:"gpu",%q:"spot"}}}`, kubepods.WorkloadLabel, kubepods.TierLabel)
	if _, err := c.kube.AppsV1().Deployments(ns).Patch(ctx, "gpu-spot-h100", types.MergePatchType, []byte(labels), metav1.PatchOptions{}); err != nil {
		t.Fatalf("labelling gpu-spot-h100: %v", err)
	}
	for _, n := range [][2]string{{"spot-a-1", "spot-a"}, {"spot-b-1", "spot-b"}} {
		node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: n[0], Labels: map[string]string{"e2e.infercast.dev/pool": n[1]}}}
		if _, err := c.kube.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil {
			t.Fatalf("node %s: %v", n[0], err)
		}
	}
	// A ready spot pod in spot-a, and one no node can be found for.
	now := metav1.Now()
	c.createPod(t, ns, "gpu-spot-1", "gpu-spot-h100", "spot-a-1", corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now})
	c.createPod(t, ns, "gpu-spot-2", "gpu-spot-h100", "", corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonUnschedulable, Message: "0/2 nodes are available: insufficient nvidia.com/gpu", LastTransitionTime: now})

	a := newAdapterWith(t, b.adapter, c.dir, spotPolicy, "--prometheus.url", pr.url(), "--prometheus.timeout", "3s",
		"--kubernetes.pods", "--kubernetes.kubeconfig", c.kubeconfig, "--kubernetes.namespace", ns,
		"--kubernetes.pool-label", "e2e.infercast.dev/pool", "--kubernetes.unschedulable-grace", "5s")
	a.start(t)

	observed := func(ctx context.Context, tier, state string) (float64, error) {
		return a.gauge(ctx, "infercast_plan_observed_replicas", map[string]string{"workload": "gpu", "tier": tier, "state": state})
	}
	waitObserved := func(what string, want map[string]float64) {
		t.Helper()
		defer phase(t, what)()
		eventually(t, what, 90*time.Second, time.Second, func(ctx context.Context) (bool, string) {
			got := ""
			ok := true
			for state, n := range want {
				v, err := observed(ctx, "spot", state)
				if err != nil {
					return false, err.Error()
				}
				got += fmt.Sprintf("%s=%v ", state, v)
				ok = ok && v == n
			}
			return ok, "spot " + got
		}, append(procs, a.p)...)
	}
	waitObserved("pods: one spot pod ready, one pending past the grace", map[string]float64{"ready": 1, "pending": 1, "starting": 0})
	waitFallback(t, a, "pods: the pending spot replica moves to on-demand", func(n int) bool { return n >= 1 }, procs...)

	// A node is found for it: the scheduler binds it, the kubelet reports it ready.
	if err := c.kube.CoreV1().Pods(ns).Bind(ctx, &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: "gpu-spot-2", Namespace: ns},
		Target: corev1.ObjectReference{Kind: "Node", Name: "spot-b-1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("bind: %v", err)
	}
	c.setPodConditions(t, ns, "gpu-spot-2", corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()},
		corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.Now()})
	waitObserved("pods: both spot pods ready", map[string]float64{"ready": 2, "pending": 0, "starting": 0})

	// The custom metrics API (what a plain HPA reads) serves the spot tier
	// on its labelled Deployment, and no longer under the template's name.
	defer phase(t, "custom metrics: the spot target on the labelled Deployment")()
	eventually(t, "custom metrics on gpu-spot-h100", 30*time.Second, time.Second, func(ctx context.Context) (bool, string) {
		code, body, err := a.customMetric(ctx, ns, "gpu-spot-h100")
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && strings.Contains(body, `"name":"gpu-spot-h100"`), fmt.Sprintf("%d %s", code, body)
	}, procs...)
	if code, body, err := a.customMetric(ctx, ns, "gpu-spot"); err != nil || code != 404 {
		t.Errorf("custom metrics on gpu-spot (the template's name, not the tier's Deployment): %d %v %s; want 404", code, err, body)
	}
}

// insecureHTTPS talks to the test's own servers (API server, controller
// manager, the adapter's custom metrics API), whose certificates are
// self-signed.
var insecureHTTPS = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}

// customMetric reads infercast_desired_replicas of Deployment name straight
// from the adapter's custom metrics API (authentication none, self-signed).
func (a *adapter) customMetric(ctx context.Context, ns, name string) (int, string, error) {
	url := fmt.Sprintf("https://127.0.0.1:%d/apis/custom.metrics.k8s.io/v1beta2/namespaces/%s/deployments.apps/%s/infercast_desired_replicas", a.cmPort, ns, name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := insecureHTTPS.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// createPod creates a pod of Deployment app (its label), bound to node
// unless empty, with the given status conditions (status is a
// subresource: set after the create).
func (c *cluster) createPod(t *testing.T, ns, name, app, node string, conds ...corev1.PodCondition) {
	t.Helper()
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{Name: "model", Image: "infercast.invalid/model:e2e"}}}}
	if _, err := c.kube.CoreV1().Pods(ns).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatalf("pod %s/%s: %v", ns, name, err)
	}
	c.setPodConditions(t, ns, name, conds...)
}

func (c *cluster) setPodConditions(t *testing.T, ns, name string, conds ...corev1.PodCondition) {
	t.Helper()
	ctx := context.Background()
	p, err := c.kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("pod %s/%s: %v", ns, name, err)
	}
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = conds
	if _, err := c.kube.CoreV1().Pods(ns).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("pod %s/%s status: %v", ns, name, err)
	}
}
