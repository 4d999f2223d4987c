package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/infercast/infercast/internal/kubepods"
	"github.com/infercast/infercast/pkg/capacity"
)

func kubeDeployment(name string) *appsv1.Deployment {
	return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models"},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}}}
}

// kubePod is a pod of Deployment app on node; ready or, unscheduled,
// unschedulable for ten minutes.
func kubePod(name, app, node string, ready bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "models", Labels: map[string]string{"app": app}},
		Spec: corev1.PodSpec{NodeName: node}}
	switch {
	case ready:
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	case node == "":
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Reason: corev1.PodReasonUnschedulable, LastTransitionTime: metav1.NewTime(time.Now().Add(-10 * time.Minute))}}
	}
	return p
}

func kubeSource(t *testing.T, objs ...runtime.Object) *kubepods.Source {
	t.Helper()
	s, err := kubepods.New(fake.NewClientset(objs...), kubepods.Options{Namespace: "models", PoolLabel: "pool",
		Deployment: func(w, tier string) string { return w + "-" + tier }})
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

// spotPolicyWorkload is spotPolicy's workload.
func spotPolicyWorkload(t *testing.T) *capacity.Workload {
	t.Helper()
	pol, err := capacity.ParsePolicy("p.yaml", []byte(spotPolicy))
	if err != nil {
		t.Fatal(err)
	}
	return &pol.Workloads[0]
}

// podSignals is serve's signals with --kubernetes.pods: the tier states
// from pods, spot notices from src, a fixed live rate of 4 req/s.
func podSignals(pods *kubepods.Source, src *fakeNotices, log *slog.Logger) withTierSignals {
	return withTierSignals{live: fixedLive{sig: capacity.Signals{Rate: 4, Backlog: math.NaN()}}, spot: newSpotNotices(src),
		plans: planCache{}, past: newPlanned(), pods: pods, podErrs: &sync.Map{}, log: log}
}

// TestPodStatesDrivePlanner: with --kubernetes.pods the planner sees the
// spot tier as its pods are — a pod unschedulable for want of capacity is
// pending and moves to on-demand at once (which the estimate from past
// plans never sees), a pod on a node under notice is terminating — and
// where the spot replicas run, pool by pool.
func TestPodStatesDrivePlanner(t *testing.T) {
	w := spotPolicyWorkload(t)
	node := func(name, pool string) *corev1.Node {
		return &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"pool": pool}}}
	}
	pods := kubeSource(t, kubeDeployment("gpu-on-demand"), kubeDeployment("gpu-spot"),
		node("a1", "spot-a"), node("a2", "spot-a"), node("b1", "spot-b"), node("d1", "on-demand"),
		kubePod("od-1", "gpu-on-demand", "d1", true),
		kubePod("spot-1", "gpu-spot", "a1", true),
		kubePod("spot-2", "gpu-spot", "a2", true),
		kubePod("spot-3", "gpu-spot", "b1", true), // b1 gets a notice
		kubePod("spot-4", "gpu-spot", "", false),  // no spot capacity for 10 minutes
	)
	src := &fakeNotices{nodes: []nodeNotice{{node: "b1", pool: "spot-b", active: true, total: 1}}}
	var logs bytes.Buffer
	l := podSignals(pods, src, slog.New(slog.NewTextHandler(&logs, nil)))
	now := time.Unix(1_700_000_000, 0)
	sig, err := l.Signals(context.Background(), w, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (capacity.TierState{Ready: 2, Pending: 1, Terminating: 1}); sig.Spot != want {
		t.Errorf("spot tier %+v, want %+v", sig.Spot, want)
	}
	if want := (capacity.TierState{Ready: 1}); sig.OnDemand != want {
		t.Errorf("on-demand tier %+v, want %+v", sig.OnDemand, want)
	}
	if len(sig.SpotByDomain) != 2 || sig.SpotByDomain[0] != 2 || sig.SpotByDomain[1] != 0 {
		t.Errorf("spot by pool %v, want [2 0] (b1's pod is under notice)", sig.SpotByDomain)
	}
	sig.Time = now
	plan, ex := capacity.NewPlanner(*w).Plan(nil, errors.New("no forecast: reactive"), sig)
	if plan.Mode != capacity.ModeFallback || ex.FallbackReplicas < 2 {
		t.Errorf("plan %+v (%s); want the pending and the noticed spot replica on on-demand (fallback ≥ 2)", plan, ex)
	}

	// The pod source failing (the Deployment was deleted): the estimate
	// from past plans takes over, and the error is logged once.
	l.pods = kubeSource(t, kubeDeployment("gpu-spot"))
	for range 3 {
		if _, err := l.Signals(context.Background(), w, now); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "pod states unavailable"); n != 1 || !strings.Contains(logs.String(), "models/gpu-on-demand") {
		t.Errorf("logged %d times, want once naming the Deployment:\n%s", n, logs.String())
	}
}

// TestOnDemandPendingPodsCoveredBySpot: an on-demand pod that cannot be
// scheduled (no capacity, a quota) is pending in the signals, and the
// planner carries it on spot while spot can place replicas.
func TestOnDemandPendingPodsCoveredBySpot(t *testing.T) {
	w := spotPolicyWorkload(t)
	pods := kubeSource(t, kubeDeployment("gpu-on-demand"), kubeDeployment("gpu-spot"),
		kubePod("od-1", "gpu-on-demand", "d1", true),
		kubePod("od-2", "gpu-on-demand", "", false), // no on-demand capacity for 10 minutes
		kubePod("spot-1", "gpu-spot", "a1", true),
		kubePod("spot-2", "gpu-spot", "b1", true))
	l := podSignals(pods, &fakeNotices{}, slog.New(slog.DiscardHandler))
	now := time.Unix(1_700_000_000, 0)
	sig, err := l.Signals(context.Background(), w, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (capacity.TierState{Ready: 1, Pending: 1}); sig.OnDemand != want {
		t.Fatalf("on-demand tier %+v, want %+v", sig.OnDemand, want)
	}
	sig.Time = now
	plan, ex := capacity.NewPlanner(*w).Plan(nil, errors.New("no forecast: reactive"), sig)
	if ex.SpotCoverReplicas != 1 || plan.Tiers[capacity.TierOnDemand].Replicas < 1 {
		t.Errorf("plan %+v (%s); want the pending on-demand replica carried by spot (spot_cover 1), on-demand kept", plan, ex)
	}
}

// TestLostPodsReplaced: pods on a node that stopped reporting (the node
// lifecycle controller turned their Ready condition False; their
// containers still read ready and running) are lost in the signals, not
// starting, and the planner asks each tier for that many more replicas,
// since their Deployments count them until they are evicted.
func TestLostPodsReplaced(t *testing.T) {
	w := spotPolicyWorkload(t)
	lost := func(name, app, node string) *corev1.Pod {
		p := kubePod(name, app, node, false)
		p.Status.Phase = corev1.PodRunning
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.ContainersReady, Status: corev1.ConditionTrue},
			{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
		return p
	}
	pods := kubeSource(t, kubeDeployment("gpu-on-demand"), kubeDeployment("gpu-spot"),
		kubePod("od-1", "gpu-on-demand", "d1", true), lost("od-2", "gpu-on-demand", "d2"),
		kubePod("spot-1", "gpu-spot", "a1", true), lost("spot-2", "gpu-spot", "b1"))
	l := podSignals(pods, &fakeNotices{}, slog.New(slog.DiscardHandler))
	now := time.Unix(1_700_000_000, 0)
	sig, err := l.Signals(context.Background(), w, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (capacity.TierState{Ready: 1, Lost: 1}); sig.OnDemand != want || sig.Spot != want {
		t.Fatalf("on-demand %+v, spot %+v; want %+v each", sig.OnDemand, sig.Spot, want)
	}
	sig.Time = now
	oneOnTop(t, w, sig, func(s *capacity.Signals) { s.OnDemand.Lost, s.Spot.Lost = 0, 0 }, "lost")
}

// oneOnTop checks that a fresh planner's target for each tier, from sig,
// is one more than from sig without the replicas clear takes out (the
// tier's lost or departing one): that replica's replacement. It returns
// the explanation.
func oneOnTop(t *testing.T, w *capacity.Workload, sig capacity.Signals, clear func(*capacity.Signals), what string) capacity.Explanation {
	t.Helper()
	plan, ex := capacity.NewPlanner(*w).Plan(nil, errors.New("no forecast: reactive"), sig)
	clear(&sig)
	base, _ := capacity.NewPlanner(*w).Plan(nil, errors.New("no forecast: reactive"), sig)
	for _, tier := range []string{capacity.TierOnDemand, capacity.TierSpot} {
		if got, want := plan.Tiers[tier].Replicas, base.Tiers[tier].Replicas+1; got != want {
			t.Errorf("%s target %d, want %d: the %s replica's replacement on top (%s)", tier, got, want, what, ex)
		}
	}
	return ex
}

// TestDepartingPodsReplaced: pods on a node whose stop is announced within
// the lead time are departing in both tiers — on-demand nodes get
// maintenance too — and the planner asks each tier for that many more
// replicas while they still serve; a spot notice on the node outranks it.
func TestDepartingPodsReplaced(t *testing.T) {
	w := spotPolicyWorkload(t)
	now := time.Unix(1_700_000_000, 0).UTC()
	pods := kubeSource(t, kubeDeployment("gpu-on-demand"), kubeDeployment("gpu-spot"),
		kubePod("od-1", "gpu-on-demand", "d1", true), kubePod("od-2", "gpu-on-demand", "d2", true),
		kubePod("spot-1", "gpu-spot", "a1", true), kubePod("spot-2", "gpu-spot", "b1", true),
		kubePod("spot-3", "gpu-spot", "b2", true))
	src := &fakeNotices{nodes: []nodeNotice{
		{node: "d2", pool: "on-demand", stops: true, stopsAt: now.Add(time.Minute)},
		{node: "b1", pool: "spot-b", stops: true},                              // GCP: untimed
		{node: "b2", pool: "spot-b", stops: true, active: true, total: 1},      // and under notice
		{node: "a1", pool: "spot-a", stops: true, stopsAt: now.Add(time.Hour)}, // not yet
	}}
	l := podSignals(pods, src, slog.New(slog.DiscardHandler))
	sig, err := l.Signals(context.Background(), w, now)
	if err != nil {
		t.Fatal(err)
	}
	if want := (capacity.TierState{Ready: 2, Departing: 1}); sig.OnDemand != want {
		t.Errorf("on-demand %+v, want %+v", sig.OnDemand, want)
	}
	if want := (capacity.TierState{Ready: 2, Terminating: 1, Departing: 1}); sig.Spot != want {
		t.Errorf("spot %+v, want %+v", sig.Spot, want)
	}
	sig.Time = now
	ex := oneOnTop(t, w, sig, func(s *capacity.Signals) { s.OnDemand.Departing, s.Spot.Departing = 0, 0 }, "departing")
	if ex.DepartingReplacements != 2 {
		t.Errorf("departing replacements %d, want 2 (%s)", ex.DepartingReplacements, ex)
	}

	// The warnings unreadable, then gone (the nodes stopped, their pods
	// not marked yet): the pods stay departing for departingHold, so that
	// their replacements are not dropped, then no longer.
	for _, step := range []struct {
		after     time.Duration
		err       error
		departing int
	}{
		{30 * time.Second, errors.New("prometheus: timeout"), 1},
		{time.Minute, nil, 1},
		{departingHold + 30*time.Second, nil, 0},
	} {
		src.nodes, src.err = nil, step.err
		sig, _ := l.Signals(context.Background(), w, now.Add(step.after))
		if sig.OnDemand.Departing != step.departing || sig.Spot.Departing != step.departing {
			t.Errorf("%v after, read error %v: on-demand %+v, spot %+v; want %d departing each", step.after, step.err,
				sig.OnDemand, sig.Spot, step.departing)
		}
	}
}

func TestKubeFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--kubernetes.pods"}, "--kubernetes.namespace is required"},
		{[]string{"--kubernetes.pods", "--kubernetes.namespace=models", "--kubernetes.unschedulable-grace=0s"}, "must be positive"},
		{[]string{"--kubernetes.pods", "--kubernetes.namespace=models"}, ""},
		{[]string{"--kubernetes.namespace=models"}, ""}, // off: nothing to check
	} {
		args := append([]string{"--config.file=p.yaml", "--exporter.url=http://127.0.0.1:9/metrics"}, tc.args...)
		_, err := parseServeFlags(args, &bytes.Buffer{})
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%v: %v, want %q", tc.args, err, tc.err)
		}
	}
}
