package kubepods

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/infercast/infercast/pkg/provider"
)

var t0 = time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)

func deployment(name string, labels map[string]string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}}}
}

// pod is a pod of app on node (empty: not scheduled) with conditions.
func pod(name, app, node string, conds ...corev1.PodCondition) *corev1.Pod {
	return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models", Labels: map[string]string{"app": app},
		CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec: corev1.PodSpec{NodeName: node}, Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: conds}}
}

func ready() corev1.PodCondition {
	return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionTrue}
}

// unschedulable since d before t0.
func unschedulable(d time.Duration) corev1.PodCondition {
	return corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse, Reason: corev1.PodReasonUnschedulable,
		LastTransitionTime: metav1.NewTime(t0.Add(-d))}
}

func node(name, pool string) *corev1.Node {
	return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": pool}}}
}

func started(t *testing.T, o Options, objs ...runtime.Object) *Source {
	t.Helper()
	o.Namespace = "models"
	o.Deployment = func(w, tier string) string { return w + "-" + tier }
	o.Now = func() time.Time { return t0 }
	s, err := New(fake.NewClientset(objs...), o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	s.Start(ctx)
	if !s.WaitForSync(ctx) {
		t.Fatal("informers did not sync")
	}
	return s
}

func TestCountByState(t *testing.T) {
	gone := pod("gone", "chat-spot", "n1")
	gone.Status.Phase = corev1.PodFailed
	deleting := pod("deleting", "chat-spot", "n1", ready())
	deleting.DeletionTimestamp = &metav1.Time{Time: t0}
	s := started(t, Options{PoolLabel: "pool"},
		deployment("chat-spot", map[string]string{"app": "chat-spot"}),
		deployment("chat-on-demand", map[string]string{"app": "chat-on-demand"}),
		node("n1", "spot-a"), node("n2", "spot-b"), node("n3", "spot-b"),
		pod("r1", "chat-spot", "n1", ready()),
		pod("r2", "chat-spot", "n2", ready()),                       // its node is departing
		pod("r3", "chat-spot", "n3", ready()),                       // its node is under notice
		pod("loading", "chat-spot", "n2"),                           // scheduled, not ready, departing
		pod("new", "chat-spot", "", unschedulable(30*time.Second)),  // a node is being brought up
		pod("stuck", "chat-spot", "", unschedulable(5*time.Minute)), // no capacity
		gone, deleting,
		pod("od", "chat-on-demand", "n9", ready()),
		pod("other", "batch", "n1", ready()), // another app's pod: not counted
	)
	outlook := func(n string) Outlook {
		return map[string]Outlook{"n2": Departing, "n3": UnderNotice, "n9": Departing}[n]
	}
	c, err := s.Count("chat", "spot", outlook)
	if err != nil {
		t.Fatal(err)
	}
	want := Counts{Ready: 2, Starting: 2, Pending: 1, Terminating: 2, Departing: 2, ByPool: map[string]int{"spot-a": 1, "spot-b": 2}}
	if c.Ready != want.Ready || c.Starting != want.Starting || c.Pending != want.Pending || c.Terminating != want.Terminating ||
		c.Departing != want.Departing || len(c.ByPool) != 2 || c.ByPool["spot-a"] != 1 || c.ByPool["spot-b"] != 2 {
		t.Errorf("spot tier: %+v, want %+v", c, want)
	}
	od, err := s.Count("chat", "on-demand", outlook)
	if err != nil || od.Ready != 1 || od.Departing != 1 || od.Starting+od.Pending+od.Terminating != 0 {
		t.Errorf("on-demand tier: %+v, %v; want 1 ready, departing", od, err)
	}
	if od, err := s.Count("chat", "on-demand", nil); err != nil || od.Ready != 1 || od.Departing != 0 {
		t.Errorf("on-demand tier, nothing announced: %+v, %v; want 1 ready", od, err)
	}
}

func TestUnschedulableGrace(t *testing.T) {
	s := started(t, Options{UnschedulableGrace: 10 * time.Minute},
		deployment("chat-spot", map[string]string{"app": "chat-spot"}),
		pod("stuck", "chat-spot", "", unschedulable(5*time.Minute)))
	c, err := s.Count("chat", "spot", nil)
	if err != nil || c.Starting != 1 || c.Pending != 0 || c.ByPool != nil {
		t.Errorf("unschedulable for 5 min with a 10 min grace: %+v, %v; want starting", c, err)
	}
}

func TestCountErrors(t *testing.T) {
	s := started(t, Options{}, deployment("chat-spot", nil))
	if _, err := s.Count("chat", "on-demand", nil); err == nil || !strings.Contains(err.Error(), "models/chat-on-demand") {
		t.Errorf("missing Deployment: %v; want an error naming it", err)
	}
	// A Deployment without a selector would match every pod of the namespace.
	if _, err := s.Count("chat", "spot", nil); err == nil || !strings.Contains(err.Error(), "selector") {
		t.Errorf("empty selector: %v; want an error", err)
	}
	unsynced, err := New(fake.NewClientset(), Options{Namespace: "models", Deployment: func(w, t string) string { return w }})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := unsynced.Count("chat", "spot", nil); !errors.Is(err, ErrNotSynced) {
		t.Errorf("before Start: %v; want ErrNotSynced", err)
	}
	if _, err := New(fake.NewClientset(), Options{Deployment: func(w, t string) string { return w }}); err == nil {
		t.Error("no namespace: want an error")
	}
}

// A Deployment labelled for a workload tier is its Deployment, whatever
// its name; two labelled alike are an error, not a guess; without a
// label the name template still finds the others.
func TestLabelledDeployment(t *testing.T) {
	labelled := deployment("llama-70b-spot-pool", map[string]string{"app": "llama"})
	labelled.Labels = map[string]string{WorkloadLabel: "chat", TierLabel: "spot"}
	s := started(t, Options{},
		labelled,
		deployment("chat-spot", map[string]string{"app": "chat-spot"}), // the template's name: not used
		deployment("chat-on-demand", map[string]string{"app": "chat-on-demand"}),
		pod("l1", "llama", "n1", ready()), pod("l2", "llama", "n1"),
		pod("t1", "chat-spot", "n1", ready()),
		pod("o1", "chat-on-demand", "n2", ready()),
	)
	c, err := s.Count("chat", "spot", nil)
	if err != nil || c.Ready != 1 || c.Starting != 1 {
		t.Errorf("labelled spot Deployment: %+v, %v; want its two pods (1 ready, 1 starting)", c, err)
	}
	if c, err := s.Count("chat", "on-demand", nil); err != nil || c.Ready != 1 || c.Starting != 0 {
		t.Errorf("on-demand by the template: %+v, %v", c, err)
	}
	// The same answers for the custom metrics API (provider.LabelledDeployments).
	spot := provider.Target{Workload: "chat", Tier: "spot"}
	if tg, ok := s.TargetOf("models", "llama-70b-spot-pool"); !ok || tg != spot {
		t.Errorf("TargetOf(llama-70b-spot-pool) = %v, %v", tg, ok)
	}
	if tg, ok := s.TargetOf("models", "chat-spot"); ok {
		t.Errorf("TargetOf(chat-spot), unlabelled = %v; want none", tg)
	}
	if tg, ok := s.TargetOf("default", "llama-70b-spot-pool"); ok {
		t.Errorf("TargetOf in another namespace = %v; want none", tg)
	}
	if name, ok := s.NameOf("models", spot); !ok || name != "llama-70b-spot-pool" {
		t.Errorf("NameOf(chat spot) = %q, %v", name, ok)
	}
	if name, ok := s.NameOf("models", provider.Target{Workload: "chat", Tier: "on-demand"}); ok {
		t.Errorf("NameOf(chat on-demand), none labelled = %q", name)
	}

	twin := deployment("llama-70b-spot-pool-2", map[string]string{"app": "llama2"})
	twin.Labels = labelled.Labels
	s = started(t, Options{}, labelled, twin)
	_, err = s.Count("chat", "spot", nil)
	if err == nil || !strings.Contains(err.Error(), "llama-70b-spot-pool, llama-70b-spot-pool-2") {
		t.Errorf("two labelled Deployments: %v; want an error naming both", err)
	}
	if _, err := s.Count("chat", "on-demand", nil); err == nil || !strings.Contains(err.Error(), "nor one labelled infercast.io/workload=chat, infercast.io/tier=on-demand") {
		t.Errorf("neither labelled nor named: %v", err)
	}
	if name, ok := s.NameOf("models", provider.Target{Workload: "chat", Tier: "spot"}); ok {
		t.Errorf("NameOf with two labelled alike = %q; want none", name)
	}
}

// TestReplicas: the count an HPA divides by is the Deployment's
// status.replicas — of the labelled Deployment when there is one — and
// unknown for a tier without a Deployment.
func TestReplicas(t *testing.T) {
	labelled := deployment("llama-spot", map[string]string{"app": "llama"})
	labelled.Labels = map[string]string{WorkloadLabel: "chat", TierLabel: "spot"}
	labelled.Status.Replicas = 7
	od := deployment("chat-on-demand", map[string]string{"app": "chat-on-demand"})
	od.Status.Replicas = 3
	s := started(t, Options{}, labelled, od)
	for _, tc := range []struct {
		workload, tier string
		want           int
		ok             bool
	}{{"chat", "spot", 7, true}, {"chat", "on-demand", 3, true}, {"code", "spot", 0, false}} {
		if n, ok := s.Replicas(tc.workload, tc.tier); n != tc.want || ok != tc.ok {
			t.Errorf("Replicas(%s, %s) = %d, %v; want %d, %v", tc.workload, tc.tier, n, ok, tc.want, tc.ok)
		}
	}
}

// TestPodsThatWillNotStart: a pod whose container cannot start (an image
// that cannot be pulled, a crash loop) has no condition that says so; it
// is pending — capacity that is not coming — not starting for ever. One
// unschedulable past the grace for which a node autoscaler has nominated a
// node it is bringing up is still starting.
func TestPodsThatWillNotStart(t *testing.T) {
	waiting := func(reason string, init bool) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			cs := []corev1.ContainerStatus{{Name: "c", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}}
			if init {
				p.Status.InitContainerStatuses = cs
			} else {
				p.Status.ContainerStatuses = cs
			}
		}
	}
	nominated := pod("nominated", "chat-spot", "", unschedulable(time.Hour))
	nominated.Status.NominatedNodeName = "gpu-node-new"
	pods := []runtime.Object{
		deployment("chat-spot", map[string]string{"app": "chat-spot"}),
		pod("crashing", "chat-spot", "n1"), pod("pulling", "chat-spot", "n1"), pod("init", "chat-spot", "n1"),
		pod("loading", "chat-spot", "n1"), nominated,
	}
	for _, o := range pods[1:4] {
		p := o.(*corev1.Pod)
		switch p.Name {
		case "crashing":
			waiting("CrashLoopBackOff", false)(p)
		case "pulling":
			waiting("ImagePullBackOff", false)(p)
		case "init":
			waiting("ErrImagePull", true)(p)
		}
	}
	waiting("ContainerCreating", false)(pods[4].(*corev1.Pod)) // on its way
	s := started(t, Options{}, pods...)
	c, err := s.Count("chat", "spot", nil)
	if err != nil || c.Pending != 3 || c.Starting != 2 {
		t.Errorf("count %+v, %v; want 3 pending (crash loop, image pull, init image pull) and 2 starting (loading, nominated)", c, err)
	}
}

// TestPodsOnALostNode: when a node stops reporting, the node lifecycle
// controller turns its pods' Ready condition False and nothing else; the
// kubelet, gone, leaves ContainersReady and the containers ready and
// running. Such a pod is lost — not starting: no capacity is on its way,
// and its ReplicaSet replaces it only once it is evicted (then it is
// terminating). A pod failing its readiness probe (the kubelet turns the
// container, ContainersReady and Ready False together) or waiting on a
// readiness gate is not lost. Lost pods count in no pool.
func TestPodsOnALostNode(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(t0.Add(-time.Hour))}}
	cond := func(typ corev1.PodConditionType, st corev1.ConditionStatus, reason string) corev1.PodCondition {
		return corev1.PodCondition{Type: typ, Status: st, Reason: reason, LastTransitionTime: metav1.NewTime(t0.Add(-time.Minute))}
	}
	withContainers := func(p *corev1.Pod, ready bool) *corev1.Pod {
		p.Status.Phase = corev1.PodRunning
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", Ready: ready, State: running}}
		return p
	}
	// What MarkPodsNotReady leaves: Ready False (its reason, empty while
	// it was True, kept), ContainersReady True.
	lostPod := func(name, node string) *corev1.Pod {
		return withContainers(pod(name, "chat-spot", node, cond(corev1.ContainersReady, corev1.ConditionTrue, ""),
			cond(corev1.PodReady, corev1.ConditionFalse, "")), true)
	}
	// Marked 10 s ago: a kubelet still there (its node reporting NotReady
	// itself) writes Ready back within its 10 s sync, so it is not lost yet.
	justMarked := lostPod("just-marked", "n2")
	justMarked.Status.Conditions[1].LastTransitionTime = metav1.NewTime(t0.Add(-10 * time.Second))
	evicted := lostPod("evicted", "n1")
	evicted.DeletionTimestamp = &metav1.Time{Time: t0}
	s := started(t, Options{PoolLabel: "pool"},
		deployment("chat-spot", map[string]string{"app": "chat-spot"}),
		node("n1", "spot-a"), node("n2", "spot-b"), node("n3", "spot-b"),
		lostPod("lost-1", "n1"), lostPod("lost-2", "n1"),
		lostPod("noticed", "n3"), // lost, and its node is under notice
		evicted,
		withContainers(pod("probe", "chat-spot", "n2", cond(corev1.ContainersReady, corev1.ConditionFalse, "ContainersNotReady"),
			cond(corev1.PodReady, corev1.ConditionFalse, "ContainersNotReady")), false),
		withContainers(pod("gated", "chat-spot", "n2", cond(corev1.ContainersReady, corev1.ConditionTrue, ""),
			cond(corev1.PodReady, corev1.ConditionFalse, "ReadinessGatesNotReady")), true),
		withContainers(pod("serving", "chat-spot", "n2", cond(corev1.ContainersReady, corev1.ConditionTrue, ""),
			cond(corev1.PodReady, corev1.ConditionTrue, "")), true),
		justMarked,
	)
	c, err := s.Count("chat", "spot", func(n string) Outlook { return map[string]Outlook{"n3": UnderNotice}[n] })
	if err != nil {
		t.Fatal(err)
	}
	if c.Lost != 2 || c.Starting != 3 || c.Terminating != 2 || c.Ready != 1 || c.Pending != 0 {
		t.Errorf("count %+v; want 2 lost, 3 starting (probe, gated, just marked), 2 terminating (noticed, evicted), 1 ready", c)
	}
	if len(c.ByPool) != 1 || c.ByPool["spot-b"] != 4 {
		t.Errorf("by pool %v; want spot-b 4 (probe, gated, serving, just marked), the lost pods in none", c.ByPool)
	}
}

// Where the nodes are watched (a pool label), a pod on a node whose Ready
// condition is Unknown — the node lifecycle controller's word for a
// kubelet that stopped reporting — is lost at once, even if it was still
// loading, which the pod alone cannot tell; a node that reports NotReady
// itself is a kubelet still there, and its pods keep their state.
func TestPodsOnAnUnreachableNode(t *testing.T) {
	withReady := func(n *corev1.Node, st corev1.ConditionStatus) *corev1.Node {
		n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: st}}
		return n
	}
	objs := []runtime.Object{
		deployment("chat-spot", map[string]string{"app": "chat-spot"}),
		withReady(node("gone", "spot-a"), corev1.ConditionUnknown),
		withReady(node("sick", "spot-b"), corev1.ConditionFalse),
		withReady(node("fine", "spot-b"), corev1.ConditionTrue),
		pod("loading-on-gone", "chat-spot", "gone"),
		pod("ready-on-gone", "chat-spot", "gone", ready()),
		pod("loading-on-sick", "chat-spot", "sick"),
		pod("loading-on-fine", "chat-spot", "fine"),
	}
	s := started(t, Options{PoolLabel: "pool"}, objs...)
	c, err := s.Count("chat", "spot", nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Lost != 2 || c.Starting != 2 || c.Ready != 0 || c.ByPool["spot-a"] != 0 || c.ByPool["spot-b"] != 2 {
		t.Errorf("count %+v; want the two pods on the unreachable node lost, the other two starting in spot-b", c)
	}
	// Without a pool label the nodes are not watched: the pod tells only.
	s = started(t, Options{}, objs...)
	if c, err := s.Count("chat", "spot", nil); err != nil || c.Lost != 0 || c.Starting != 3 || c.Ready != 1 {
		t.Errorf("without nodes: %+v, %v; want 3 starting, 1 ready", c, err)
	}
}

// A pod held at its scheduling gates for an hour (a queue such as Kueue
// waiting for quota), then ungated with no node to fit it: the scheduler
// turns PodScheduled's reason from SchedulingGated to Unschedulable and
// keeps the condition's lastTransitionTime, which is the gating's, so the
// grace a node autoscaler has to bring a node counts from the ungating,
// not from an hour ago (the pod was pending at once).
func TestUnschedulableGraceAfterSchedulingGates(t *testing.T) {
	now := t0
	gated := pod("gated", "chat-spot", "", corev1.PodCondition{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: corev1.PodReasonSchedulingGated, LastTransitionTime: metav1.NewTime(t0.Add(-time.Hour))})
	gated.UID = "gated-uid"
	gated.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "kueue.x-k8s.io/admission"}}
	client := fake.NewClientset(deployment("chat-spot", map[string]string{"app": "chat-spot"}), gated)
	s, err := New(client, Options{Namespace: "models", UnschedulableGrace: 90 * time.Second,
		Deployment: func(w, tier string) string { return w + "-" + tier }, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s.Start(ctx)
	if !s.WaitForSync(ctx) {
		t.Fatal("informers did not sync")
	}
	count := func() Counts {
		t.Helper()
		c, err := s.Count("chat", "spot", nil)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if c := count(); c.Starting != 1 {
		t.Fatalf("gated: %+v, want starting", c)
	}
	ungated := gated.DeepCopy()
	ungated.Spec.SchedulingGates = nil
	ungated.Status.Conditions[0].Reason = corev1.PodReasonUnschedulable // LastTransitionTime kept
	if _, err := client.CoreV1().Pods("models").Update(ctx, ungated, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		_, seen := s.ungatedAt[gated.UID]
		s.mu.Unlock()
		if seen {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the ungating was not seen")
		}
		time.Sleep(10 * time.Millisecond)
	}
	now = t0.Add(60 * time.Second)
	if c := count(); c.Starting != 1 || c.Pending != 0 {
		t.Errorf("a minute after ungating, with a 90 s grace: %+v, want starting", c)
	}
	now = t0.Add(2 * time.Minute)
	if c := count(); c.Pending != 1 {
		t.Errorf("two minutes after ungating: %+v, want pending", c)
	}
	if err := client.CoreV1().Pods("models").Delete(ctx, "gated", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	for deadline = time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.mu.Lock()
		n := len(s.ungatedAt)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a deleted pod's ungating time was kept")
		}
	}
}
