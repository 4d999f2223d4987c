package kube

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var tStart = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func pod(name, node string, mods ...func(*corev1.Pod)) *corev1.Pod {
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Name: name, Namespace: "llm", UID: types.UID("uid-" + name),
			CreationTimestamp: metav1.NewTime(tStart.Add(-time.Hour)),
			Annotations: map[string]string{
				AnnotationScrape: "true", AnnotationPort: "8000", AnnotationDialect: "vllm",
				AnnotationModel: "chat", AnnotationTeam: "assistants",
			},
		},
		Spec: corev1.PodSpec{NodeName: node, Containers: []corev1.Container{{
			Name:      "server",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{GPUResource: resource.MustParse("2")}},
		}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"},
	}
	for _, m := range mods {
		m(p)
	}
	return p
}

func ready(at time.Time) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(at)}}
	}
}

type harness struct {
	t       *testing.T
	client  *fake.Clientset
	d       *Discovery
	targets chan []Target
	colds   chan ColdStart
	cancel  context.CancelFunc
	done    chan error
}

func start(t *testing.T, objs ...runtime.Object) *harness {
	t.Helper()
	h := &harness{t: t, targets: make(chan []Target, 100), colds: make(chan ColdStart, 100), done: make(chan error, 1)}
	h.client = fake.NewClientset(objs...)
	d, err := New(Options{
		Client: h.client, Node: "node-a",
		OnTargets:   func(ts []Target) { h.targets <- ts },
		OnColdStart: func(c ColdStart) { h.colds <- c },
		Now:         func() time.Time { return tStart },
	})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.done <- d.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.done; err != nil {
		h.t.Error(err)
	}
}

// next waits for the next target list (bounded so a broken informer fails
// the test instead of hanging it; not a timing assertion).
func (h *harness) next() []Target {
	h.t.Helper()
	select {
	case ts := <-h.targets:
		return ts
	case <-time.After(20 * time.Second):
		h.t.Fatal("no target list")
		return nil
	}
}

// noCold checks that no cold start is reported after the ones taken: it
// waits a moment for one that should not come (why says why not).
func (h *harness) noCold(why string) {
	h.t.Helper()
	select {
	case c := <-h.colds:
		h.t.Errorf("cold start %+v: %s", c, why)
	case <-time.After(300 * time.Millisecond):
	}
}

func (h *harness) nextCold() ColdStart {
	h.t.Helper()
	select {
	case c := <-h.colds:
		return c
	case <-time.After(20 * time.Second):
		h.t.Fatal("no cold start")
		return ColdStart{}
	}
}

func names(ts []Target) string {
	var s []string
	for _, t := range ts {
		s = append(s, t.Pod)
	}
	return strings.Join(s, ",")
}

func (h *harness) update(p *corev1.Pod) {
	h.t.Helper()
	if _, err := h.client.CoreV1().Pods(p.Namespace).Update(context.Background(), p, metav1.UpdateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) create(p *corev1.Pod) {
	h.t.Helper()
	if _, err := h.client.CoreV1().Pods(p.Namespace).Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func TestDiscoveryTargets(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a", Labels: map[string]string{"karpenter.sh/capacity-type": "spot"}}}
	pending := pod("pending", "node-a", func(p *corev1.Pod) {
		p.Status.Phase, p.Status.PodIP = corev1.PodPending, ""
		delete(p.Annotations, AnnotationPort)
		delete(p.Annotations, AnnotationModel)
		p.Labels = map[string]string{"app.kubernetes.io/name": "ranker"}
		p.Spec.Containers[0].Ports = []corev1.ContainerPort{{ContainerPort: 8002}}
	})
	h := start(t, node,
		pod("chat-0", "node-a", ready(tStart.Add(-time.Minute)), func(p *corev1.Pod) { p.Annotations[AnnotationMaxBatchSize] = "64" }),
		pod("other-node", "node-b"),
		pod("not-annotated", "node-a", func(p *corev1.Pod) { delete(p.Annotations, AnnotationScrape) }),
		pod("bad-port", "node-a", func(p *corev1.Pod) { p.Annotations[AnnotationPort] = "http" }),
		pod("bad-path", "node-a", func(p *corev1.Pod) {
			p.Annotations[AnnotationPath] = "metrics"
			p.Status.Phase = corev1.PodPending
		}),
		pod("bad-batch", "node-a", func(p *corev1.Pod) { p.Annotations[AnnotationMaxBatchSize] = "0" }),
		pending,
	)
	ts := h.next()
	if names(ts) != "chat-0" {
		t.Fatalf("first targets = %s, want chat-0", names(ts))
	}
	want := Target{Namespace: "llm", Pod: "chat-0", UID: "uid-chat-0", URL: "http://10.0.0.1:8000/metrics",
		Dialect: "vllm", Model: "chat", Team: "assistants", MaxBatchSize: 64, Ready: true, GPUs: 2, Created: tStart.Add(-time.Hour)}
	if got := ts[0]; got != want {
		t.Errorf("target = %+v\nwant     %+v", got, want)
	}
	if !h.d.HasSynced() {
		t.Error("not synced after the first list")
	}
	if got := h.d.NodeLabels()["karpenter.sh/capacity-type"]; got != "spot" {
		t.Errorf("node labels: capacity type %q", got)
	}

	// The pending pod starts: it joins, with its single container port and,
	// not annotated with a model, app.kubernetes.io/name as the model of
	// only the series that name none: not as a model overriding theirs.
	running := pending.DeepCopy()
	running.Status.Phase, running.Status.PodIP = corev1.PodRunning, "fd00::7"
	h.update(running)
	ts = h.next()
	if names(ts) != "chat-0,pending" || ts[1].URL != "http://[fd00::7]:8002/metrics" || ts[1].Model != "" || ts[1].DefaultModel != "ranker" || ts[1].Ready {
		t.Fatalf("after start: %+v", ts)
	}

	// A path annotation changes chat-0's URL.
	chat := pod("chat-0", "node-a", ready(tStart.Add(-time.Minute)))
	chat.Annotations[AnnotationPath] = "/v2/metrics"
	h.update(chat)
	ts = h.next()
	if ts[0].URL != "http://10.0.0.1:8000/v2/metrics" {
		t.Fatalf("after path change: %+v", ts[0])
	}

	// A server of no built-in dialect names a generic mapping of the
	// exporter's config; its max batch size comes along.
	h.create(pod("custom-0", "node-a", func(p *corev1.Pod) {
		p.Annotations[AnnotationDialect] = "generic"
		p.Annotations[AnnotationMapping] = "mine"
		p.Annotations[AnnotationMaxBatchSize] = "8"
	}))
	ts = h.next()
	if names(ts) != "chat-0,custom-0,pending" || ts[1].Dialect != "generic" || ts[1].Mapping != "mine" || ts[1].MaxBatchSize != 8 {
		t.Fatalf("after the generic pod: %+v", ts)
	}
	if ts[0].Mapping != "" || ts[2].MaxBatchSize != 0 {
		t.Errorf("mapping %q on chat-0, max batch %d on pending: want neither", ts[0].Mapping, ts[2].MaxBatchSize)
	}

	// A pod on another node never appears; deleting chat-0 removes it.
	h.create(pod("elsewhere", "node-b"))
	if err := h.client.CoreV1().Pods("llm").Delete(context.Background(), "chat-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	ts = h.next()
	if names(ts) != "custom-0,pending" {
		t.Fatalf("after delete: %s, want custom-0,pending", names(ts))
	}
	if got := h.d.Targets(); names(got) != "custom-0,pending" {
		t.Errorf("Targets() = %s", names(got))
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(h.d)
	want2 := `
# HELP infercast_kube_discovery_synced 1 once the pod and node informers have synced.
# TYPE infercast_kube_discovery_synced gauge
infercast_kube_discovery_synced 1
# HELP infercast_kube_invalid_targets Pods on this node annotated for scraping whose annotations are unusable (bad or missing port, bad path or max batch size).
# TYPE infercast_kube_invalid_targets gauge
infercast_kube_invalid_targets 3
# HELP infercast_kube_targets Pods on this node discovered as scrape targets, by dialect.
# TYPE infercast_kube_targets gauge
infercast_kube_targets{dialect="generic"} 1
infercast_kube_targets{dialect="vllm"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want2)); err != nil {
		t.Error(err)
	}
	checkDocumented(t, reg)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	// None of this was a cold start: chat-0 was ready before Run.
	select {
	case c := <-h.colds:
		t.Errorf("unexpected cold start %+v", c)
	default:
	}
}

func TestColdStarts(t *testing.T) {
	h := start(t)
	if ts := h.next(); len(ts) != 0 {
		t.Fatalf("targets = %v", ts)
	}
	created := tStart.Add(time.Second)
	p := pod("chat-1", "node-a", func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.NewTime(created)
		p.Status.Phase, p.Status.PodIP = corev1.PodPending, ""
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", ContainerID: "containerd://abc123"}}
	})
	h.create(p)

	// Loading the model takes 90 s, then the pod is Ready.
	p = p.DeepCopy()
	p.Status.Phase, p.Status.PodIP = corev1.PodRunning, "10.0.0.9"
	ready(created.Add(90 * time.Second))(p)
	h.update(p)
	c := h.nextCold()
	if c.Kind != PodStart || c.Duration != 90*time.Second || c.Pod != "chat-1" || c.Model != "chat" || c.Team != "assistants" || c.Dialect != "vllm" {
		t.Fatalf("cold start = %+v", c)
	}

	// Still ready on later updates: no second cold start.
	p = p.DeepCopy()
	p.Labels = map[string]string{"x": "y"}
	h.update(p)

	// The container crashes and restarts at +200 s; not ready yet.
	restartedAt := created.Add(200 * time.Second)
	p = p.DeepCopy()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(restartedAt)}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", ContainerID: "containerd://def456", RestartCount: 1,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(restartedAt)}}}}
	h.update(p)
	// Ready again 30 s later.
	p = p.DeepCopy()
	ready(restartedAt.Add(30 * time.Second))(p)
	h.update(p)
	c = h.nextCold()
	if c.Kind != ContainerRestart || c.Container != "server" || c.Duration != 30*time.Second {
		t.Fatalf("restart cold start = %+v (the label-only update must not have produced one)", c)
	}

	ns, name, ctr, ok := h.d.PodByUID("uid-chat-1", "def456")
	if !ok || ns != "llm" || name != "chat-1" || ctr != "server" {
		t.Errorf("PodByUID = %q %q %q %v", ns, name, ctr, ok)
	}
	if _, _, _, ok := h.d.PodByUID("uid-nope", ""); ok {
		t.Error("PodByUID found an unknown UID")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Options{Node: "n"}); err == nil {
		t.Error("no error without a client")
	}
	if _, err := New(Options{Client: fake.NewClientset()}); err == nil || !strings.Contains(err.Error(), "spec.nodeName") {
		t.Errorf("empty node: %v", err)
	}
}

// TestColdStartsOfPodsFoundNotReady: the exporter starts while pods are
// not Ready. One started long ago and is failing its readiness probe (its
// Ready turned False after its container had started), one is restarting
// a container: their next Ready is not a pod start — reported as one, an
// hour-old pod read as an hour's cold start. One created just now is
// still starting: its Ready is its cold start.
func TestColdStartsOfPodsFoundNotReady(t *testing.T) {
	longAgo := tStart.Add(-time.Hour)
	notReady := func(since time.Time) corev1.PodCondition {
		return corev1.PodCondition{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(since)}
	}
	probe := pod("probe", "node-a", func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{notReady(tStart.Add(-10 * time.Second))}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(longAgo)}}}}
	})
	restarting := pod("restarting", "node-a", func(p *corev1.Pod) {
		p.Status.Conditions = []corev1.PodCondition{notReady(tStart.Add(-5 * time.Second))}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", RestartCount: 3}}
	})
	created := tStart.Add(-20 * time.Second)
	fresh := pod("fresh", "node-a", func(p *corev1.Pod) {
		p.CreationTimestamp = metav1.NewTime(created)
		p.Status.Conditions = []corev1.PodCondition{notReady(created)}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(created.Add(5 * time.Second))}}}}
	})
	h := start(t, probe, restarting, fresh)
	h.next()
	for _, p := range []*corev1.Pod{probe, restarting, fresh} {
		p = p.DeepCopy()
		ready(tStart.Add(30 * time.Second))(p)
		h.update(p)
	}
	c := h.nextCold()
	if c.Pod != "fresh" || c.Kind != PodStart || c.Duration != 50*time.Second {
		t.Fatalf("cold start %+v, want fresh's pod start of 50 s", c)
	}
	h.noCold("the pods that were Ready before the exporter started have none to report")
}

func resources(kv ...any) corev1.ResourceList {
	rl := corev1.ResourceList{}
	for i := 0; i < len(kv); i += 2 {
		rl[corev1.ResourceName(kv[i].(string))] = resource.MustParse(kv[i+1].(string))
	}
	return rl
}

// TestNodeShare: a pod's share of its node comes from every GPU-like
// resource it holds against the node's allocatable of them, MIG devices
// weighed by their compute slices, so time-slicing (the node advertises
// GPUs × replicas) and MIG (mixed strategy) count right; GPUs counts a MIG
// device as its slices over its GPU's: 7, or 4 on an A30. NodeGPUs counts
// the node's alike, so a pod that holds none has a share known to be 0.
func TestNodeShare(t *testing.T) {
	nodeGPUs := map[string]float64{"whole gpus": 4, "time-sliced": 16, "mig among whole gpus": 2, "no gpu": 4, "node unknown": 0}
	for _, tc := range []struct {
		name        string
		limits      corev1.ResourceList
		alloc       corev1.ResourceList
		share, gpus float64
	}{
		{"whole gpus", resources("nvidia.com/gpu", "1"), resources("nvidia.com/gpu", "4", "cpu", "48"), 0.25, 1},
		{"time-sliced", resources("nvidia.com/gpu", "1"), resources("nvidia.com/gpu", "16"), 1.0 / 16, 1},
		{"time-sliced, renamed", resources("nvidia.com/gpu.shared", "1"), resources("nvidia.com/gpu.shared", "16"), 1.0 / 16, 1},
		{"mig among whole gpus", resources("nvidia.com/mig-1g.5gb", "1"), resources("nvidia.com/mig-1g.5gb", "7", "nvidia.com/gpu", "1"), 1.0 / 14, 1.0 / 7},
		{"mig profiles", resources("nvidia.com/mig-3g.20gb", "1"), resources("nvidia.com/mig-3g.20gb", "2", "nvidia.com/mig-1g.5gb", "1"), 3.0 / 7, 3.0 / 7},
		{"mig compute instance", resources("nvidia.com/mig-1c.3g.20gb", "1"), resources("nvidia.com/mig-1c.3g.20gb", "3", "nvidia.com/mig-4g.20gb", "1"), 1.0 / 7, 1.0 / 7},
		{"mig time-sliced", resources("nvidia.com/mig-1g.10gb.shared", "1"), resources("nvidia.com/mig-1g.10gb.shared", "14"), 1.0 / 14, 1.0 / 7},
		{"mig a30", resources("nvidia.com/mig-1g.6gb", "1"), resources("nvidia.com/mig-1g.6gb", "4", "nvidia.com/mig-2g.12gb", "2"), 1.0 / 8, 1.0 / 4},
		{"mig a30 compute instance", resources("nvidia.com/mig-1c.4g.24gb+me", "1"), resources("nvidia.com/mig-1c.4g.24gb+me", "4", "nvidia.com/gpu", "1"), 1.0 / 8, 1.0 / 4},
		{"mig rtx pro 6000, whole", resources("nvidia.com/mig-4g.96gb", "1"), resources("nvidia.com/mig-4g.96gb", "2"), 0.5, 1},
		{"mig a30 beside an h100", resources("nvidia.com/mig-2g.12gb", "1"), resources("nvidia.com/mig-2g.12gb", "2", "nvidia.com/mig-1g.10gb", "7"), 0.5 / 2, 0.5},
		{"amd", resources("amd.com/gpu", "2"), resources("amd.com/gpu", "8"), 0.25, 2},
		{"no gpu", resources("cpu", "4"), resources("nvidia.com/gpu", "4", "cpu", "48"), 0, 0},
		{"node unknown", resources("nvidia.com/gpu", "1"), nil, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod("p", "node-a", func(p *corev1.Pod) { p.Spec.Containers[0].Resources.Limits = tc.limits })
			got, ok, err := targetOf(p, tc.alloc)
			if !ok || err != nil {
				t.Fatalf("not a target: %v", err)
			}
			if math.Abs(got.NodeShare-tc.share) > 1e-12 || math.Abs(got.GPUs-tc.gpus) > 1e-12 {
				t.Errorf("share %v, GPUs %v; want %v, %v", got.NodeShare, got.GPUs, tc.share, tc.gpus)
			}
			if want, ok := nodeGPUs[tc.name]; ok && got.NodeGPUs != want {
				t.Errorf("node GPUs %v, want %v", got.NodeGPUs, want)
			}
		})
	}
}

// TestInitAndSidecarGPUs: a pod holds what Kubernetes counts of its
// containers' limits (the sidecar KEP's formula): its app containers and
// sidecars (init containers with restartPolicy Always) together, or an
// init container with the sidecars declared before it, whichever is more,
// resource by resource — not its app containers' alone.
func TestInitAndSidecarGPUs(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	gpus := func(n string) corev1.ResourceRequirements {
		return corev1.ResourceRequirements{Limits: resources("nvidia.com/gpu", n, "cpu", "2")}
	}
	initC := func(name, n string) corev1.Container { return corev1.Container{Name: name, Resources: gpus(n)} }
	sidecar := func(name, n string) corev1.Container {
		return corev1.Container{Name: name, Resources: gpus(n), RestartPolicy: &always}
	}
	for _, tc := range []struct {
		name string
		app  string // the server's GPUs
		init []corev1.Container
		want float64
	}{
		{"app only", "1", nil, 1},
		{"init needs more than the app", "1", []corev1.Container{initC("warmup", "2")}, 2},
		{"init needs less", "2", []corev1.Container{initC("download", "1")}, 2},
		{"sidecar adds up", "1", []corev1.Container{sidecar("draft-model", "1")}, 2},
		{"init runs with the sidecars before it", "1", []corev1.Container{sidecar("draft-model", "1"), initC("warmup", "2")}, 3},
		{"not with those after it", "2", []corev1.Container{initC("warmup", "2"), sidecar("draft-model", "1")}, 3},
		{"init alone beats app and sidecar", "0", []corev1.Container{initC("warmup", "4"), sidecar("proxy", "1")}, 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := pod("p", "node-a", func(p *corev1.Pod) {
				p.Spec.Containers[0].Resources = gpus(tc.app)
				p.Spec.InitContainers = tc.init
			})
			got, ok, err := targetOf(p, resources("nvidia.com/gpu", "8"))
			if !ok || err != nil {
				t.Fatalf("not a target: %v", err)
			}
			if got.GPUs != tc.want || got.NodeShare != tc.want/8 {
				t.Errorf("GPUs %v, share %v; want %v, %v", got.GPUs, got.NodeShare, tc.want, tc.want/8)
			}
		})
	}
}

// TestNodeShareFollowsTheNode: the share is read from the node's
// allocatable, and published again when the node changes (time-slicing
// turned on: 4 GPUs advertised as 16).
func TestNodeShareFollowsTheNode(t *testing.T) {
	node := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node-a"},
		Status: corev1.NodeStatus{Allocatable: resources("nvidia.com/gpu", "4")}}
	h := start(t, node, pod("chat-0", "node-a"))
	if ts := h.next(); len(ts) != 1 || ts[0].NodeShare != 0.5 {
		t.Fatalf("targets %+v, want chat-0 with half the node", ts)
	}
	node = node.DeepCopy()
	node.Status.Allocatable = resources("nvidia.com/gpu", "16")
	if _, err := h.client.CoreV1().Nodes().Update(context.Background(), node, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if ts := h.next(); len(ts) != 1 || ts[0].NodeShare != 2.0/16 {
		t.Fatalf("after the node changed: %+v, want chat-0 with 2/16 of the node", ts)
	}
}

// TestTeamDefaulted: a target says whether its team is only the
// namespace, so that the exporter's config can name a better one.
func TestTeamDefaulted(t *testing.T) {
	for _, tc := range []struct {
		name      string
		mod       func(*corev1.Pod)
		team      string
		defaulted bool
	}{
		{"annotation", func(*corev1.Pod) {}, "assistants", false},
		{"label", func(p *corev1.Pod) {
			delete(p.Annotations, AnnotationTeam)
			p.Labels = map[string]string{"team": "search"}
		}, "search", false},
		{"namespace", func(p *corev1.Pod) { delete(p.Annotations, AnnotationTeam) }, "llm", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := targetOf(pod("p", "node-a", tc.mod), nil)
			if err != nil || got.Team != tc.team || got.TeamDefaulted != tc.defaulted {
				t.Errorf("team %q (defaulted %v), err %v; want %q (%v)", got.Team, got.TeamDefaulted, err, tc.team, tc.defaulted)
			}
		})
	}
}

// TestRestartThatNeverLeftReady: a container restarts while the pod stays
// Ready (no readiness probe, a fast restart): there is no cold start to
// measure, and none is put on a later, unrelated Ready.
func TestRestartThatNeverLeftReady(t *testing.T) {
	p := pod("chat-0", "node-a", ready(tStart.Add(-time.Hour)), func(p *corev1.Pod) {
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server"}}
	})
	h := start(t, p)
	h.next()
	restarted := tStart.Add(10 * time.Second)
	p = p.DeepCopy()
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", RestartCount: 1,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(restarted)}}}}
	h.update(p) // still Ready since an hour ago
	// Two hours later a probe fails for a minute: not a restart.
	p = p.DeepCopy()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(tStart.Add(2 * time.Hour))}}
	h.update(p)
	p = p.DeepCopy()
	ready(tStart.Add(2*time.Hour + time.Minute))(p)
	h.update(p)
	h.noCold("the restart never left Ready")
}

// TestSidecarRestart: a sidecar (an init container with restartPolicy
// Always) that restarts takes the pod out of Ready like a container does:
// its restart is a cold start; a plain init container's status is not read.
func TestSidecarRestart(t *testing.T) {
	always := corev1.ContainerRestartPolicyAlways
	p := pod("chat-0", "node-a", ready(tStart.Add(-time.Hour)), func(p *corev1.Pod) {
		p.Spec.InitContainers = []corev1.Container{{Name: "proxy", RestartPolicy: &always}, {Name: "download"}}
		p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "proxy"}, {Name: "download"}}
	})
	h := start(t, p)
	h.next()
	restarted := tStart.Add(10 * time.Second)
	p = p.DeepCopy()
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse, LastTransitionTime: metav1.NewTime(restarted)}}
	p.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "proxy", RestartCount: 1,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(restarted)}}}, {Name: "download", RestartCount: 1}}
	h.update(p)
	p = p.DeepCopy()
	ready(restarted.Add(5 * time.Second))(p)
	h.update(p)
	c := h.nextCold()
	if c.Kind != ContainerRestart || c.Container != "proxy" || c.Duration != 5*time.Second {
		t.Fatalf("cold start %+v, want the sidecar proxy's restart of 5 s", c)
	}
	h.noCold("the plain init container's status is not a restart")
}
