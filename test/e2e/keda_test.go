//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
)

const kedaVersion = "v2.21.0"

var (
	crdGVR          = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	scaledObjectGVR = schema.GroupVersionResource{Group: "keda.sh", Version: "v1alpha1", Resource: "scaledobjects"}
)

// kedaCRDDir is config/crd/bases of KEDA's module in the module cache
// (hack/e2e.sh downloads it; INFERCAST_E2E_KEDA_CRDS overrides).
func kedaCRDDir(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("INFERCAST_E2E_KEDA_CRDS"); d != "" {
		return d
	}
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Fatalf("go env GOMODCACHE: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "github.com/kedacore/keda/v2@"+kedaVersion, "config/crd/bases")
}

// installCRDs creates every CRD of dir and waits until each is Established.
func (c *cluster) installCRDs(t *testing.T, dir string) {
	t.Helper()
	defer phase(t, "KEDA CRDs")()
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in %s (%v): run hack/e2e.sh, which downloads KEDA's module", dir, err)
	}
	var names []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var u unstructured.Unstructured
			if err := dec.Decode(&u.Object); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				t.Fatalf("%s: %v", f, err)
			}
			if u.Object == nil {
				continue
			}
			if _, err := c.dyn.Resource(crdGVR).Create(context.Background(), &u, metav1.CreateOptions{}); err != nil {
				t.Fatalf("CRD %s from %s: %v", u.GetName(), f, err)
			}
			names = append(names, u.GetName())
		}
	}
	for _, n := range names {
		eventually(t, "CRD "+n+" Established", 30*time.Second, 300*time.Millisecond, func(ctx context.Context) (bool, string) {
			return condition(ctx, c, crdGVR, "", n, "Established")
		}, c.procs...)
	}
}

// condition reports whether the object's status condition typ is True.
func condition(ctx context.Context, c *cluster, gvr schema.GroupVersionResource, ns, name, typ string) (bool, string) {
	var u *unstructured.Unstructured
	var err error
	if ns == "" {
		u, err = c.dyn.Resource(gvr).Get(ctx, name, metav1.GetOptions{})
	} else {
		u, err = c.dyn.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	}
	if err != nil {
		return false, err.Error()
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, x := range conds {
		m, _ := x.(map[string]any)
		if m["type"] == typ {
			return m["status"] == "True", fmt.Sprintf("%s=%v %v: %v", typ, m["status"], m["reason"], m["message"])
		}
	}
	return false, "no " + typ + " condition yet"
}

// startKEDA runs KEDA's operator and metrics adapter against the cluster
// (flags from TOOLS.md) and registers external.metrics.k8s.io.
func (c *cluster) startKEDA(t *testing.T, b binaries) []*proc {
	t.Helper()
	defer phase(t, "KEDA operator and metrics adapter")()
	ensureNamespace(t, c, "keda")
	certs := t.TempDir()
	writeCerts(t, certs)
	grpcPort, metricsPort, probePort := freePort(t), freePort(t), freePort(t)
	env := []string{"KEDA_CLUSTER_OBJECT_NAMESPACE=keda", "POD_NAMESPACE=keda", "WATCH_NAMESPACE=", "KUBECONFIG=" + c.kubeconfig}
	op := start(t, c.dir, "keda-operator", env, b.kedaOperator,
		"--cert-dir", certs, "--ca-dir", certs,
		"--enable-webhook-patching=false", "--enable-apiservice-patching=false", "--enable-cert-rotation=false",
		"--metrics-bind-address", "127.0.0.1:"+strconv.Itoa(metricsPort),
		"--health-probe-bind-address", "127.0.0.1:"+strconv.Itoa(probePort),
		"--metrics-service-bind-address", "127.0.0.1:"+strconv.Itoa(grpcPort),
		"--leader-elect=false", "--zap-log-level=info")
	eventually(t, "KEDA operator /readyz", 90*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		code, body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probePort))
		if err != nil {
			return false, err.Error()
		}
		return code == 200, fmt.Sprintf("%d %s", code, body)
	}, op)

	securePort, adapterMetrics := freePort(t), freePort(t)
	ad := start(t, c.dir, "keda-metrics-adapter", env, b.kedaAdapter,
		"--secure-port", strconv.Itoa(securePort), "--bind-address", "127.0.0.1",
		"--cert-dir", certs, "--tls-cert-file", filepath.Join(certs, "tls.crt"), "--tls-private-key-file", filepath.Join(certs, "tls.key"),
		"--kubeconfig", c.kubeconfig, "--lister-kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig, "--authorization-kubeconfig", c.kubeconfig,
		"--authentication-skip-lookup",
		"--metrics-service-address", "127.0.0.1:"+strconv.Itoa(grpcPort),
		"--port", strconv.Itoa(adapterMetrics))
	c.procs = append(c.procs, op, ad)
	c.registerAPIService(t, "keda", "keda-metrics-apiserver", "external.metrics.k8s.io", "v1beta1", securePort)
	return []*proc{op, ad}
}

// scaledObject is KEDA's ScaledObject with an `external` trigger on the
// adapter's gRPC scaler, polling every second, with the HPA's damping off.
func scaledObject(ns, name string, minReplicas, maxReplicas int64, grpcPort int, workload, tier string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec": map[string]any{
			"scaleTargetRef":  map[string]any{"name": name},
			"pollingInterval": int64(1), "cooldownPeriod": int64(5),
			"minReplicaCount": minReplicas, "maxReplicaCount": maxReplicas,
			"advanced": map[string]any{"horizontalPodAutoscalerConfig": map[string]any{"behavior": map[string]any{
				"scaleUp":   map[string]any{"stabilizationWindowSeconds": int64(0), "policies": []any{map[string]any{"type": "Pods", "value": int64(100), "periodSeconds": int64(1)}}},
				"scaleDown": map[string]any{"stabilizationWindowSeconds": int64(0), "policies": []any{map[string]any{"type": "Percent", "value": int64(100), "periodSeconds": int64(1)}}},
			}}},
			"triggers": []any{map[string]any{"type": "external", "metadata": map[string]any{
				"scalerAddress": fmt.Sprintf("127.0.0.1:%d", grpcPort), "workload": workload, "tier": tier,
			}}},
		},
	}}
}

// TestKEDA: a ScaledObject with an external trigger on infercast becomes
// Ready, KEDA makes the HPA, kube-controller-manager's HPA controller moves the
// Deployment to infercast's target as demand rises and falls; a workload at
// zero replicas is woken through IsActive.
func TestKEDA(t *testing.T) {
	b := findBinaries(t, "etcd", "kube-apiserver", "kube-controller-manager", "keda-operator", "keda-adapter", "adapter")
	total := phase(t, "TestKEDA total")
	defer total()
	c := startCluster(t, b)
	kcm := c.startControllerManager(t, b)
	c.installCRDs(t, kedaCRDDir(t))
	keda := c.startKEDA(t, b)

	d, pr, a := demandChain(t, b.adapter, c.dir)
	procs := append([]*proc{kcm, pr.p}, keda...)

	const ns, deploy = "default", "chat-on-demand"
	ctx := context.Background()
	// 3 replicas where infercast plans 1 at 2 req/s: the first step is the HPA's.
	c.createDeployment(t, ns, deploy, 3)
	func() {
		defer phase(t, "KEDA: ScaledObject Ready, HPA created")()
		if _, err := c.dyn.Resource(scaledObjectGVR).Namespace(ns).Create(ctx, scaledObject(ns, deploy, 1, 60, a.grpcPort, "chat", "on-demand"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("ScaledObject: %v", err)
		}
		eventually(t, "ScaledObject Ready", 2*time.Minute, time.Second, func(ctx context.Context) (bool, string) {
			return condition(ctx, c, scaledObjectGVR, ns, deploy, "Ready")
		}, append(procs, a.p)...)
		eventually(t, "KEDA's HPA keda-hpa-"+deploy, time.Minute, time.Second, func(ctx context.Context) (bool, string) {
			h, err := c.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Get(ctx, "keda-hpa-"+deploy, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			if len(h.Spec.Metrics) != 1 || h.Spec.Metrics[0].External == nil {
				return false, fmt.Sprintf("metrics %+v", h.Spec.Metrics)
			}
			return true, ""
		}, append(procs, a.p)...)
	}()

	always := func(int) (bool, string) { return true, "" }
	low := followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "KEDA: replicas go from 3 to the target at 2 req/s", 3*time.Minute, always, procs...)
	d.set("chat_requests_total", 30)
	high := followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "KEDA: demand rises to 30 req/s", 3*time.Minute,
		func(n int) (bool, string) { return n >= low+5, fmt.Sprintf("target not yet above %d", low+5) }, procs...)
	d.set("chat_requests_total", 4)
	followsTarget(t, c, a, ns, deploy, "chat", "on-demand", "KEDA: demand falls to 4 req/s", 3*time.Minute,
		func(n int) (bool, string) { return n <= high/2, fmt.Sprintf("target not yet at or below %d", high/2) }, procs...)

	// Scale from zero: wake has no demand, so IsActive is false and KEDA keeps
	// it at zero; demand arrives, the plan turns active, KEDA wakes it and
	// the HPA takes it to infercast's target.
	func() {
		defer phase(t, "KEDA: scale from zero via IsActive")()
		const wake = "wake-on-demand"
		c.createDeployment(t, ns, wake, 0)
		if _, err := c.dyn.Resource(scaledObjectGVR).Namespace(ns).Create(ctx, scaledObject(ns, wake, 0, 60, a.grpcPort, "wake", "on-demand"), metav1.CreateOptions{}); err != nil {
			t.Fatalf("ScaledObject: %v", err)
		}
		eventually(t, "ScaledObject wake Ready", 2*time.Minute, time.Second, func(ctx context.Context) (bool, string) {
			return condition(ctx, c, scaledObjectGVR, ns, wake, "Ready")
		}, append(procs, a.p)...)
		// Idle: KEDA must leave it at zero for 15 s (several polls).
		for end := time.Now().Add(15 * time.Second); time.Now().Before(end); time.Sleep(time.Second) {
			if r, err := c.replicas(ctx, ns, wake); err != nil || r != 0 {
				t.Fatalf("idle workload: replicas %d (%v); want 0 while infercast says inactive", r, err)
			}
		}
		d.set("wake_requests_total", 12)
		followsTarget(t, c, a, ns, wake, "wake", "on-demand", "KEDA: woken from zero at 12 req/s", 3*time.Minute,
			func(n int) (bool, string) { return n >= 1, "target still 0" }, procs...)
	}()
}
