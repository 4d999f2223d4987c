// Package kube discovers scrape targets among the pods of the exporter's own
// node through client-go informers, and reports cold starts (pod creation
// to Ready, container restarts to Ready) through a callback.
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Pod annotations that make a pod a target.
const (
	AnnotationScrape  = "infercast.io/scrape"  // "true" to scrape
	AnnotationPort    = "infercast.io/port"    // metrics port
	AnnotationPath    = "infercast.io/path"    // default /metrics
	AnnotationDialect = "infercast.io/dialect" // vllm, triton, tgi, ...
	// AnnotationModel names the model of every series the pod serves,
	// overriding the server's own model labels. Without it, the pod's
	// label app.kubernetes.io/name names only the series that carry no
	// model label (Target.DefaultModel).
	AnnotationModel = "infercast.io/model"
	AnnotationTeam  = "infercast.io/team" // default label team, then the namespace
	// AnnotationMaxBatchSize is the server's configured maximum batch (vLLM
	// max_num_seqs, Triton max_batch_size): batch utilisation needs it.
	AnnotationMaxBatchSize = "infercast.io/max-batch-size"
	// AnnotationMapping names a generic_mappings entry of the exporter's
	// config, for a pod whose dialect is "generic".
	AnnotationMapping = "infercast.io/mapping"
)

// GPUResource is NVIDIA's whole-GPU extended resource.
const GPUResource corev1.ResourceName = "nvidia.com/gpu"

// migProfile matches NVIDIA's MIG resources (mixed strategy), capturing
// the compute slices of nvidia.com/mig-<c>c.<g>g.<m>gb (c) or
// nvidia.com/mig-<g>g.<m>gb (g), and the GPU instance "<g>g.<m>gb";
// "+me" and ".shared" may follow.
var migProfile = regexp.MustCompile(`^nvidia\.com/mig-(?:(\d+)c\.)?((\d+)g\.\d+gb)`)

// fourSliceInstances are GPU instance profiles of GPUs of four compute
// slices that no GPU of another count has: the A30's, and the RTX PRO 6000
// Blackwell's whole GPU. The A100, H100, H20, H200, B200 and GB200 have
// seven (A100 40 GB: 1g.5gb, 2g.10gb, 3g.20gb…; 80 GB and H100: 1g.10gb,
// 2g.20gb…; H100 NVL and GH200: 1g.12gb, 1g.24gb, 2g.24gb…; H200:
// 1g.18gb…; B200: 1g.23gb…). Names that GPUs of different counts share
// are weighed as seven: the RTX PRO 6000's 1g.24gb (a quarter of it, a
// seventh of an H100 NVL) and 2g.48gb (the RTX PRO 5000 Blackwell, of two
// slices, may have it too).
var fourSliceInstances = map[string]bool{"1g.6gb": true, "2g.12gb": true, "4g.24gb": true, "4g.96gb": true}

// gpuShare is the part of a GPU one unit of a resource is: a whole GPU
// (nvidia.com/gpu, amd.com/gpu) or a time-sliced replica of one
// (nvidia.com/gpu.shared) one, a MIG device its compute slices over its
// GPU's (four or seven: fourSliceInstances); 0 for a resource that is no
// GPU.
func gpuShare(name corev1.ResourceName) float64 {
	n := strings.TrimSuffix(string(name), ".shared")
	switch n {
	case "nvidia.com/gpu", "amd.com/gpu":
		return 1
	}
	m := migProfile.FindStringSubmatch(n)
	if m == nil {
		return 0
	}
	slices := m[3]
	if m[1] != "" {
		slices = m[1]
	}
	v, err := strconv.Atoi(slices)
	if err != nil || v < 1 {
		return 0
	}
	perGPU := 7.0
	if fourSliceInstances[m[2]] {
		perGPU = 4
	}
	return float64(v) / perGPU
}

// gpusIn sums what the GPU-like resources of a list come to in GPUs.
func gpusIn(rl corev1.ResourceList) float64 {
	n := 0.0
	for name, q := range rl {
		if s := gpuShare(name); s > 0 {
			n += s * q.AsApproximateFloat64()
		}
	}
	return n
}

// Target is one pod to scrape.
type Target struct {
	Namespace, Pod, UID string
	// URL is http://<podIP>:<port><path>.
	URL     string
	Dialect string
	// Mapping names the config's generic mapping (dialect "generic").
	Mapping string
	// Model is the infercast.io/model annotation: the model of every
	// series of the pod, whatever its server's model labels say; empty
	// when not annotated.
	Model string
	// DefaultModel is the label app.kubernetes.io/name, the model of the
	// series that carry no model label of their own (TGI's; Knative's
	// through OpenTelemetry): most charts set it whatever the pod serves,
	// so it never renames the models a server names (a multi-model
	// Triton's or Ray Serve's, vLLM's model_name).
	DefaultModel string
	Team         string
	// TeamDefaulted is true when Team is the namespace: neither the
	// annotation nor the label names one.
	TeamDefaulted bool
	// MaxBatchSize is the server's maximum batch; 0 when not annotated.
	MaxBatchSize int
	// Ready is the pod's Ready condition.
	Ready bool
	// GPUs is what the pod's GPU-like limits come to in GPUs: a whole or
	// time-sliced GPU (nvidia.com/gpu, nvidia.com/gpu.shared, amd.com/gpu)
	// is one, a MIG device its compute slices over its GPU's (7, or 4:
	// fourSliceInstances). The pod's limits are
	// its containers' as Kubernetes counts them, init containers and
	// sidecars included (podLimits).
	GPUs float64
	// NodeShare is the part of the node the pod holds: its GPUs over those
	// of the node's allocatable (so a time-sliced GPU is one of the node's
	// GPUs × replicas, a MIG device its slices of the node's). 0 when the
	// pod holds no GPU-like resource
	// or the node is not known yet.
	NodeShare float64
	// NodeGPUs is what the node's allocatable GPU-like resources come to,
	// counted as NodeShare counts them (a time-sliced GPU's replicas each
	// one); 0 when it has none or is not known yet. Above 0, NodeShare is
	// known even when it is 0: the pod holds none of the node's GPUs.
	NodeGPUs float64
	// Created is the pod's creation time.
	Created time.Time
}

// ColdStartKind says what started cold.
type ColdStartKind string

// Kinds of cold start.
const (
	// PodStart is a new pod, from creation to its first Ready.
	PodStart ColdStartKind = "pod_start"
	// ContainerRestart is a container restart, from its new start to the
	// pod's next Ready.
	ContainerRestart ColdStartKind = "container_restart"
)

// ColdStart is one finished cold start.
type ColdStart struct {
	Kind                ColdStartKind
	Namespace, Pod, UID string
	Container           string // ContainerRestart only
	// Model is the pod's infercast.io/model annotation, else its label
	// app.kubernetes.io/name: a cold start is the whole pod's.
	Model, Team, Dialect string
	Duration             time.Duration
	// Ready is when the pod became ready.
	Ready time.Time
}

// Options configure Discovery.
type Options struct {
	Client kubernetes.Interface
	// Node is the exporter's node (the downward API's spec.nodeName).
	Node string
	// Resync is the informers' resync period (default 10 min).
	Resync time.Duration
	// OnTargets receives the full, sorted target list after the first sync
	// and whenever it changes. Calls are serialised.
	OnTargets func([]Target)
	// OnColdStart receives each finished cold start. Calls are serialised.
	OnColdStart func(ColdStart)
	// Now is the clock (default time.Now): cold starts that finished before
	// Run started are history, not reported.
	Now    func() time.Time
	Logger *slog.Logger
}

// Discovery watches the node's pods. It is also a prometheus.Collector of
// its own state.
type Discovery struct {
	o       Options
	log     *slog.Logger
	pods    cache.SharedIndexInformer
	node    cache.SharedIndexInformer
	factory informers.SharedInformerFactory
	nodeFac informers.SharedInformerFactory

	mu      sync.Mutex
	started time.Time
	synced  bool
	last    []Target
	invalid int
	seen    map[string]*podState // by UID
	ran     bool

	targetsDesc, invalidDesc, syncedDesc *prometheus.Desc
}

type podState struct {
	reportedStart bool
	restarts      map[string]int32     // container → restart count
	pending       map[string]time.Time // container → restarted at, awaiting Ready
}

// New builds a Discovery; Run starts it.
func New(o Options) (*Discovery, error) {
	if o.Client == nil {
		return nil, errors.New("kube: no client")
	}
	if o.Node == "" {
		return nil, errors.New("kube: node name is empty (set it from spec.nodeName)")
	}
	if o.Resync <= 0 {
		o.Resync = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Discovery{
		o: o, log: log, seen: map[string]*podState{},
		targetsDesc: prometheus.NewDesc("infercast_kube_targets", "Pods on this node discovered as scrape targets, by dialect.", []string{"dialect"}, nil),
		invalidDesc: prometheus.NewDesc("infercast_kube_invalid_targets", "Pods on this node annotated for scraping whose annotations are unusable (bad or missing port, bad path or max batch size).", nil, nil),
		syncedDesc:  prometheus.NewDesc("infercast_kube_discovery_synced", "1 once the pod and node informers have synced.", nil, nil),
	}
	// The API server filters by node; the handlers check again, since a
	// field selector is only a request (fakes ignore it).
	d.factory = informers.NewSharedInformerFactoryWithOptions(o.Client, o.Resync,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", o.Node).String()
		}))
	d.nodeFac = informers.NewSharedInformerFactoryWithOptions(o.Client, o.Resync,
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) {
			lo.FieldSelector = fields.OneTermEqualSelector("metadata.name", o.Node).String()
		}))
	d.pods = d.factory.Core().V1().Pods().Informer()
	d.node = d.nodeFac.Core().V1().Nodes().Informer()
	if _, err := d.pods.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { d.onPod(obj, false) },
		UpdateFunc: func(_, obj any) { d.onPod(obj, false) },
		DeleteFunc: func(obj any) { d.onPod(obj, true) },
	}); err != nil {
		return nil, fmt.Errorf("kube: pod handler: %w", err)
	}
	// The node's allocatable gives the pods their share of it: a change
	// (MIG repartitioned, time-slicing turned on) is published again.
	if _, err := d.node.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.publish(false) },
		UpdateFunc: func(_, _ any) { d.publish(false) },
	}); err != nil {
		return nil, fmt.Errorf("kube: node handler: %w", err)
	}
	return d, nil
}

// Run starts the informers, reports the first target list once synced, and
// blocks until ctx ends; it then stops the informers and returns.
func (d *Discovery) Run(ctx context.Context) error {
	d.mu.Lock()
	if d.ran {
		d.mu.Unlock()
		return errors.New("kube: Run called twice")
	}
	d.ran = true
	d.started = d.o.Now()
	d.mu.Unlock()

	d.factory.Start(ctx.Done())
	d.nodeFac.Start(ctx.Done())
	defer d.factory.Shutdown()
	defer d.nodeFac.Shutdown()
	if !cache.WaitForCacheSync(ctx.Done(), d.pods.HasSynced, d.node.HasSynced) {
		return nil // ctx ended first
	}
	d.mu.Lock()
	d.synced = true
	d.mu.Unlock()
	d.log.Info("kube: discovery synced", "node", d.o.Node)
	d.publish(true)
	<-ctx.Done()
	return nil
}

// HasSynced reports whether the first list finished (for /readyz).
func (d *Discovery) HasSynced() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.synced
}

// Targets returns the current target list.
func (d *Discovery) Targets() []Target {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Target(nil), d.last...)
}

// theNode is the exporter's node from the informer's store; nil before
// sync.
func (d *Discovery) theNode() *corev1.Node {
	obj, ok, err := d.node.GetStore().GetByKey(d.o.Node)
	if err != nil || !ok {
		return nil
	}
	n, _ := obj.(*corev1.Node)
	return n
}

// allocatable is the node's status.allocatable; nil before sync.
func (d *Discovery) allocatable() corev1.ResourceList {
	if n := d.theNode(); n != nil {
		return n.Status.Allocatable
	}
	return nil
}

// NodeLabels returns the labels of the exporter's node (capacity type,
// instance type, pool: see pkg/metrics/cost); nil before sync.
func (d *Discovery) NodeLabels() map[string]string {
	n := d.theNode()
	if n == nil {
		return nil
	}
	out := make(map[string]string, len(n.Labels))
	for k, v := range n.Labels {
		out[k] = v
	}
	return out
}

// PodByUID names the pod with a UID, and the container with a runtime ID
// (with or without its "containerd://" scheme), among this node's pods. It
// implements gpu.PodResolver.
//
// The UID is the kubelet's, from the cgroup path. For a static pod it is
// not the UID of the pod the API server holds — the kubelet's mirror of it
// — but the hash of its manifest, which the mirror pod carries as the value
// of its kubernetes.io/config.mirror annotation (kubelet
// pkg/kubelet/pod/mirror_client.go CreateMirrorPod; the static pod's UID is
// that hash, pkg/kubelet/config/common.go applyDefaults): a mirror pod
// answers to it as well.
func (d *Discovery) PodByUID(uid, containerID string) (namespace, pod, container string, ok bool) {
	for _, obj := range d.pods.GetStore().List() {
		p, isPod := obj.(*corev1.Pod)
		if !isPod || uid == "" || string(p.UID) != uid && p.Annotations[corev1.MirrorPodAnnotationKey] != uid {
			continue
		}
		if containerID != "" {
			for _, cs := range append(append([]corev1.ContainerStatus(nil), p.Status.ContainerStatuses...), p.Status.InitContainerStatuses...) {
				id := cs.ContainerID
				if i := strings.Index(id, "://"); i >= 0 {
					id = id[i+3:]
				}
				if id != "" && id == containerID {
					container = cs.Name
				}
			}
		}
		return p.Namespace, p.Name, container, true
	}
	return "", "", "", false
}

func (d *Discovery) onPod(obj any, deleted bool) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	p, ok := obj.(*corev1.Pod)
	if !ok || p.Spec.NodeName != d.o.Node {
		return
	}
	if deleted {
		d.mu.Lock()
		delete(d.seen, string(p.UID))
		d.mu.Unlock()
	} else if p.Annotations[AnnotationScrape] == "true" {
		d.trackColdStarts(p)
	}
	d.publish(false)
}

// publish recomputes the target list and calls OnTargets when it changed
// (or on the first sync). The lock is held across the callback so that
// calls are serialised and in order.
func (d *Discovery) publish(first bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.synced {
		return
	}
	var targets []Target
	invalid := 0
	alloc := d.allocatable()
	for _, obj := range d.pods.GetStore().List() {
		p, ok := obj.(*corev1.Pod)
		if !ok || p.Spec.NodeName != d.o.Node {
			continue
		}
		t, ok, err := targetOf(p, alloc)
		if err != nil {
			invalid++
			d.log.Debug("kube: pod annotated for scraping is unusable", "namespace", p.Namespace, "pod", p.Name, "err", err)
			continue
		}
		if ok {
			targets = append(targets, t)
		}
	}
	sort.Slice(targets, func(i, j int) bool {
		if targets[i].Namespace != targets[j].Namespace {
			return targets[i].Namespace < targets[j].Namespace
		}
		return targets[i].Pod < targets[j].Pod
	})
	d.invalid = invalid
	if !first && reflect.DeepEqual(targets, d.last) {
		return
	}
	d.last = targets
	if d.o.OnTargets != nil {
		d.o.OnTargets(append([]Target(nil), targets...))
	}
}

// targetOf turns a pod into a target on a node with alloc allocatable (nil
// when unknown): ok is false for a pod that is not (yet) scrapable; err for
// one annotated with unusable values.
func targetOf(p *corev1.Pod, alloc corev1.ResourceList) (Target, bool, error) {
	a := p.Annotations
	if a[AnnotationScrape] != "true" {
		return Target{}, false, nil
	}
	port, err := portOf(p)
	if err != nil {
		return Target{}, false, err
	}
	path := a[AnnotationPath]
	if path == "" {
		path = "/metrics"
	}
	if !strings.HasPrefix(path, "/") {
		return Target{}, false, fmt.Errorf("%s %q: must start with /", AnnotationPath, path)
	}
	maxBatch := 0
	if s, ok := a[AnnotationMaxBatchSize]; ok {
		if maxBatch, err = strconv.Atoi(s); err != nil || maxBatch < 1 {
			return Target{}, false, fmt.Errorf("%s %q: not a positive integer", AnnotationMaxBatchSize, s)
		}
	}
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "" {
		return Target{}, false, nil
	}
	team := firstNonEmpty(a[AnnotationTeam], p.Labels["team"])
	t := Target{
		Namespace: p.Namespace, Pod: p.Name, UID: string(p.UID),
		URL:           "http://" + net.JoinHostPort(p.Status.PodIP, strconv.Itoa(port)) + path,
		Dialect:       a[AnnotationDialect],
		Mapping:       a[AnnotationMapping],
		MaxBatchSize:  maxBatch,
		Model:         a[AnnotationModel],
		DefaultModel:  p.Labels["app.kubernetes.io/name"],
		Team:          firstNonEmpty(team, p.Namespace),
		TeamDefaulted: team == "",
		Ready:         podReady(p) != nil,
		GPUs:          gpusOf(p),
		NodeShare:     nodeShareOf(p, alloc),
		NodeGPUs:      gpusIn(alloc),
		Created:       p.CreationTimestamp.Time,
	}
	return t, true, nil
}

func portOf(p *corev1.Pod) (int, error) {
	if s, ok := p.Annotations[AnnotationPort]; ok {
		port, err := strconv.Atoi(s)
		if err != nil || port < 1 || port > 65535 {
			return 0, fmt.Errorf("%s %q: not a port number", AnnotationPort, s)
		}
		return port, nil
	}
	// Without the annotation, a single declared container port will do.
	var ports []int32
	for _, c := range p.Spec.Containers {
		for _, cp := range c.Ports {
			ports = append(ports, cp.ContainerPort)
		}
	}
	if len(ports) != 1 {
		return 0, fmt.Errorf("no %s annotation and %d container ports", AnnotationPort, len(ports))
	}
	return int(ports[0]), nil
}

// gpusOf is what a pod's GPU-like limits come to in GPUs.
func gpusOf(p *corev1.Pod) float64 {
	return gpusIn(podLimits(p))
}

// podLimits is the pod's limit of each resource as Kubernetes counts it
// (the sidecar KEP's formula, k8s.io/component-helpers/resource
// AggregateContainerLimits, a module this one does not depend on): the app
// containers and the sidecars (init containers with restartPolicy Always)
// add up; an init container runs with the sidecars declared before it; the
// pod holds the larger, resource by resource. Pod-level resources
// (spec.resources) take no extended resources, and the overhead is left
// out: neither holds a GPU. For an extended resource the limit is the
// request (they may not differ), so this is what the scheduler reserves.
func podLimits(p *corev1.Pod) corev1.ResourceList {
	total := corev1.ResourceList{}
	for _, c := range p.Spec.Containers {
		addResources(total, c.Resources.Limits)
	}
	sidecars, initPeak := corev1.ResourceList{}, corev1.ResourceList{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			addResources(total, c.Resources.Limits)
			addResources(sidecars, c.Resources.Limits)
			maxResources(initPeak, sidecars)
			continue
		}
		running := corev1.ResourceList{}
		addResources(running, c.Resources.Limits)
		addResources(running, sidecars)
		maxResources(initPeak, running)
	}
	maxResources(total, initPeak)
	return total
}

// addResources adds add to list.
func addResources(list, add corev1.ResourceList) {
	for name, q := range add {
		v, ok := list[name]
		if !ok {
			list[name] = q.DeepCopy()
			continue
		}
		v.Add(q)
		list[name] = v
	}
}

// maxResources raises list to other, resource by resource.
func maxResources(list, other corev1.ResourceList) {
	for name, q := range other {
		if v, ok := list[name]; !ok || q.Cmp(v) > 0 {
			list[name] = q.DeepCopy()
		}
	}
}

// nodeShareOf is the part of a node with alloc allocatable that a pod
// holds by its GPU-like limits; 0 when it holds none or alloc has none.
func nodeShareOf(p *corev1.Pod, alloc corev1.ResourceList) float64 {
	node := gpusIn(alloc)
	if node <= 0 {
		return 0
	}
	return gpusOf(p) / node
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// podReady returns the pod's Ready condition when it is True.
func podReady(p *corev1.Pod) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		c := &p.Status.Conditions[i]
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return c
		}
	}
	return nil
}
