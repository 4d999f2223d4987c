//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
)

var apiServiceGVR = schema.GroupVersionResource{Group: "apiregistration.k8s.io", Version: "v1", Resource: "apiservices"}

// registerAPIService makes the aggregator proxy group/version to
// localhost:port: an ExternalName Service named name in namespace ns
// (Endpoints refuse loopback addresses; TOOLS.md), then the APIService, then
// waits until the aggregator reports it Available.
func (c *cluster) registerAPIService(t *testing.T, ns, name, group, version string, port int) {
	t.Helper()
	ctx := context.Background()
	ensureNamespace(t, c, ns)
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeExternalName, ExternalName: "localhost",
			Ports: []corev1.ServicePort{{Name: "https", Port: int32(port)}}}}
	if _, err := c.kube.CoreV1().Services(ns).Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatalf("service %s/%s: %v", ns, name, err)
	}
	obj := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
		"metadata": map[string]any{"name": version + "." + group},
		"spec": map[string]any{
			"group": group, "version": version, "insecureSkipTLSVerify": true,
			"groupPriorityMinimum": int64(100), "versionPriority": int64(100),
			"service": map[string]any{"name": name, "namespace": ns, "port": int64(port)},
		},
	}}
	if _, err := c.dyn.Resource(apiServiceGVR).Create(ctx, obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("apiservice %s.%s: %v", version, group, err)
	}
	eventually(t, "APIService "+version+"."+group+" Available", 60*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		u, err := c.dyn.Resource(apiServiceGVR).Get(ctx, version+"."+group, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		for _, x := range conds {
			m, _ := x.(map[string]any)
			if m["type"] == "Available" {
				return m["status"] == "True", fmt.Sprintf("Available=%v: %v", m["status"], m["message"])
			}
		}
		return false, "no Available condition yet"
	}, c.procs...)
}

func ensureNamespace(t *testing.T, c *cluster, ns string) {
	t.Helper()
	_, err := c.kube.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err == nil {
		return
	}
	if _, err := c.kube.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("namespace %s: %v", ns, err)
	}
}

// createDeployment makes a Deployment with the given replicas. No kubelet
// runs, so its pods never start; spec.replicas is what the HPA changes.
func (c *cluster) createDeployment(t *testing.T, ns, name string, replicas int32) {
	t.Helper()
	labels := map[string]string{"app": name}
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "model", Image: "infercast.invalid/model:e2e"}}}}}}
	if _, err := c.kube.AppsV1().Deployments(ns).Create(context.Background(), d, metav1.CreateOptions{}); err != nil {
		t.Fatalf("deployment %s/%s: %v", ns, name, err)
	}
}

func (c *cluster) replicas(ctx context.Context, ns, name string) (int, error) {
	d, err := c.kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return 0, err
	}
	return int(ptr.Deref(d.Spec.Replicas, 1)), nil
}

// objectHPA is an HPA v2 on the Deployment's object metric
// infercast_desired_replicas (custom.metrics.k8s.io, served by the
// adapter) with target AverageValue 1: replicas = ceil(value).
func objectHPA(ns, deploy string) *autoscalingv2.HorizontalPodAutoscaler {
	one := resource.MustParse("1")
	return &autoscalingv2.HorizontalPodAutoscaler{ObjectMeta: metav1.ObjectMeta{Name: deploy, Namespace: ns},
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: deploy},
			MinReplicas:    ptr.To[int32](1), MaxReplicas: 100,
			Metrics: []autoscalingv2.MetricSpec{{Type: autoscalingv2.ObjectMetricSourceType, Object: &autoscalingv2.ObjectMetricSource{
				DescribedObject: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: deploy},
				Metric:          autoscalingv2.MetricIdentifier{Name: "infercast_desired_replicas"},
				Target:          autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: &one},
			}}},
			Behavior: fastBehavior(),
		}}
}

// fastBehavior lets the HPA move straight to its computed count: the
// defaults (5 min downscale stabilisation, at most 4 pods or 100 % per 15 s
// up) would hide infercast's target behind the HPA's own damping.
func fastBehavior() *autoscalingv2.HorizontalPodAutoscalerBehavior {
	return &autoscalingv2.HorizontalPodAutoscalerBehavior{
		ScaleUp: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0),
			Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 100, PeriodSeconds: 1}}},
		ScaleDown: &autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: ptr.To[int32](0),
			Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 1}}},
	}
}

// followsTarget waits until the Deployment runs infercast's target for the
// workload's tier. The adapter compensates for the HPA's 10 % tolerance
// (docs/serving.md): the HPA then runs the plan exactly, or up to ~10 % more,
// never fewer. So the condition is target <= replicas <= ceil(target/0.9)+1,
// checked on two consecutive reads of both (the plan is stable). check adds
// a condition on the target itself (it rose, it fell).
func followsTarget(t *testing.T, c *cluster, a *adapter, ns, deploy, workload, tier, what string, timeout time.Duration,
	check func(target int) (bool, string), procs ...*proc) int {
	t.Helper()
	defer phase(t, what)()
	var got, stable int
	var last string
	eventually(t, what, timeout, time.Second, func(ctx context.Context) (bool, string) {
		n, err := a.target(ctx, workload, tier)
		if err != nil {
			return false, "target: " + err.Error()
		}
		r, err := c.replicas(ctx, ns, deploy)
		if err != nil {
			return false, "replicas: " + err.Error()
		}
		state := fmt.Sprintf("infercast target %d, %s spec.replicas %d", n, deploy, r)
		if ok, why := check(n); !ok {
			stable = 0
			return false, state + "; " + why
		}
		if r < n || r > int(float64(n)/0.9+0.999)+1 {
			stable = 0
			return false, state
		}
		stable++
		got, last = n, state
		return stable >= 2, state
	}, append(procs, a.p)...)
	t.Logf("%s: %s", what, last)
	return got
}
