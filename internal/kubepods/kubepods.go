// Package kubepods counts the pods of a workload tier's Deployment by
// state, from the Kubernetes API: what adapter serve's planner needs to
// know of its replicas (ready, starting, pending for want of capacity,
// terminating, lost with their node) and where its spot replicas run. It watches the Deployments
// and Pods of one namespace (and, for per-pool counts, the Nodes) through
// shared informers, so a decision reads a local cache, not the API server.
package kubepods

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	appslisters "k8s.io/client-go/listers/apps/v1"
	corelisters "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/infercast/infercast/pkg/provider"
)

// Options configure a Source.
type Options struct {
	// Namespace is where the workloads' Deployments run.
	Namespace string
	// Deployment names the Deployment of a workload's tier when no
	// Deployment of the namespace carries its WorkloadLabel and TierLabel.
	Deployment func(workload, tier string) string
	// PoolLabel is the node label whose value names a node's pool (the
	// policy's tiers.spot.pools); empty: no per-pool counts.
	PoolLabel string
	// UnschedulableGrace is how long a pod may be unschedulable and still
	// count as starting: a node autoscaler brings up a node for it within
	// the cold start. Longer, it counts as pending (no capacity).
	// 0: DefaultUnschedulableGrace.
	UnschedulableGrace time.Duration
	// Now is the clock (tests); nil: time.Now.
	Now func() time.Time
}

// WorkloadLabel and TierLabel on a Deployment say which workload's tier it
// runs, whatever its name: the labels the custom metrics API gives the
// Deployments it serves, and the chart's ScaledObjects carry.
const (
	WorkloadLabel = provider.LabelWorkload
	TierLabel     = provider.LabelTier
)

// DefaultUnschedulableGrace is long enough for a node autoscaler to bring
// up a node for a new pod, short against a spot outage.
const DefaultUnschedulableGrace = 90 * time.Second

// ErrNotSynced is returned until the informers have listed once.
var ErrNotSynced = errors.New("Kubernetes API not listed yet")

// Outlook is what the cloud has announced for a node.
type Outlook int

const (
	// Stays: nothing announced, or nothing that matters yet.
	Stays Outlook = iota
	// Departing: a stop (maintenance, retirement, a reboot) announced to
	// come within the planner's lead time. Its pods serve until then.
	Departing
	// UnderNotice: a spot interruption notice. Its pods serve until the
	// node goes, minutes from now, and are no longer counted on.
	UnderNotice
)

// Counts are one tier's pods by state.
type Counts struct {
	Ready, Starting, Pending, Terminating int
	// Departing counts the ready and starting pods (counted there too) on
	// a node whose stop is announced: they serve until it, and the planner
	// launches their replacements ahead of it.
	Departing int
	// Lost counts the pods on a node that stopped reporting: they will not
	// serve, and their ReplicaSet replaces them only once they are evicted
	// (see lost).
	Lost int
	// ByPool counts the tier's scheduled pods that are neither terminating
	// nor lost by the value of their node's PoolLabel; nil without a
	// PoolLabel.
	ByPool map[string]int
}

// Source counts pods from informer caches.
type Source struct {
	o         Options
	factories []informers.SharedInformerFactory
	deploys   appslisters.DeploymentLister
	pods      corelisters.PodLister
	nodes     corelisters.NodeLister // nil without PoolLabel
	synced    []cache.InformerSynced

	// ungatedAt is when each pod was seen to leave its scheduling gates
	// (see unschedulableSince), by UID; dropped with the pod.
	mu        sync.Mutex
	ungatedAt map[types.UID]time.Time
}

// New returns a Source on client; Start begins the watches.
func New(client kubernetes.Interface, o Options) (*Source, error) {
	if o.Namespace == "" {
		return nil, errors.New("kubepods: a namespace is required")
	}
	if o.Deployment == nil {
		return nil, errors.New("kubepods: a Deployment name function is required")
	}
	if o.UnschedulableGrace <= 0 {
		o.UnschedulableGrace = DefaultUnschedulableGrace
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	f := informers.NewSharedInformerFactoryWithOptions(client, 0, informers.WithNamespace(o.Namespace))
	d, p := f.Apps().V1().Deployments(), f.Core().V1().Pods()
	s := &Source{o: o, factories: []informers.SharedInformerFactory{f}, deploys: d.Lister(), pods: p.Lister(),
		synced:    []cache.InformerSynced{d.Informer().HasSynced, p.Informer().HasSynced},
		ungatedAt: map[types.UID]time.Time{}}
	if _, err := p.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: s.watchGates,
		DeleteFunc: s.forgetPod,
	}); err != nil {
		return nil, fmt.Errorf("kubepods: watching pods: %w", err)
	}
	if o.PoolLabel != "" {
		// Nodes are cluster-scoped: a factory of their own.
		nf := informers.NewSharedInformerFactory(client, 0)
		n := nf.Core().V1().Nodes()
		s.nodes = n.Lister()
		s.synced = append(s.synced, n.Informer().HasSynced)
		s.factories = append(s.factories, nf)
	}
	return s, nil
}

// Start begins the watches; they stop when ctx ends.
func (s *Source) Start(ctx context.Context) {
	for _, f := range s.factories {
		f.Start(ctx.Done())
	}
}

// WaitForSync waits until every informer has listed once or ctx ends.
func (s *Source) WaitForSync(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), s.synced...)
}

// Count counts the pods of workload's tier: those of the namespace that
// its Deployment's selector matches. outlook says what the cloud announced
// for a node (nil: nothing anywhere): the pods of a node under a spot
// notice count as terminating (they serve until the node goes, but will
// not be there in a cold start), those of a departing node as departing
// besides ready or starting.
func (s *Source) Count(workload, tier string, outlook func(node string) Outlook) (Counts, error) {
	for _, ok := range s.synced {
		if !ok() {
			return Counts{}, ErrNotSynced
		}
	}
	d, err := s.deployment(workload, tier)
	if err != nil {
		return Counts{}, err
	}
	sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
	if err != nil || sel.Empty() {
		return Counts{}, fmt.Errorf("Deployment %s/%s: unusable selector %v: %v", s.o.Namespace, d.Name, d.Spec.Selector, err)
	}
	pods, err := s.pods.Pods(s.o.Namespace).List(sel)
	if err != nil {
		return Counts{}, err
	}
	var c Counts
	if s.nodes != nil {
		c.ByPool = map[string]int{}
	}
	now := s.o.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range pods {
		st := classify(p, now, s.o.UnschedulableGrace, s.ungatedAt[p.UID])
		if st == stateGone {
			continue
		}
		if st != stateTerminating && s.unreachable(p.Spec.NodeName) {
			st = stateLost
		}
		announced := Stays
		if p.Spec.NodeName != "" && outlook != nil {
			announced = outlook(p.Spec.NodeName)
		}
		if announced == UnderNotice {
			st = stateTerminating
		}
		if announced == Departing && (st == stateReady || st == stateStarting) {
			c.Departing++
		}
		switch st {
		case stateReady:
			c.Ready++
		case stateStarting:
			c.Starting++
		case statePending:
			c.Pending++
		case stateTerminating:
			c.Terminating++
		case stateLost:
			c.Lost++
		}
		if c.ByPool != nil && st != stateTerminating && st != stateLost && p.Spec.NodeName != "" {
			if n, err := s.nodes.Get(p.Spec.NodeName); err == nil {
				if pool, ok := n.Labels[s.o.PoolLabel]; ok {
					c.ByPool[pool]++
				}
			}
		}
	}
	return c, nil
}

// Replicas is the replica count of workload's tier's Deployment that an
// HPA scaling it divides by: status.replicas (its pods that are not
// terminated). ok is false until the watches have listed or when the
// Deployment cannot be found.
func (s *Source) Replicas(workload, tier string) (replicas int, ok bool) {
	for _, synced := range s.synced {
		if !synced() {
			return 0, false
		}
	}
	d, err := s.deployment(workload, tier)
	if err != nil {
		return 0, false
	}
	return int(d.Status.Replicas), true
}

// deployment is the Deployment of workload's tier: the one labelled for
// it, else the one the name template names.
func (s *Source) deployment(workload, tier string) (*appsv1.Deployment, error) {
	labelled, err := s.labelledFor(workload, tier)
	if err != nil {
		return nil, err
	}
	switch len(labelled) {
	case 1:
		return labelled[0], nil
	case 0:
	default:
		names := make([]string, len(labelled))
		for i, d := range labelled {
			names[i] = d.Name
		}
		slices.Sort(names)
		return nil, fmt.Errorf("Deployments %s in %s all carry %s=%s, %s=%s: one Deployment per workload tier", strings.Join(names, ", "), s.o.Namespace, WorkloadLabel, workload, TierLabel, tier)
	}
	name := s.o.Deployment(workload, tier)
	d, err := s.deploys.Deployments(s.o.Namespace).Get(name)
	if apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("Deployment %s/%s of workload %s tier %s not found (nor one labelled %s=%s, %s=%s)", s.o.Namespace, name, workload, tier, WorkloadLabel, workload, TierLabel, tier)
	}
	return d, err
}

// labelledFor lists the Deployments of the namespace labelled for
// workload's tier.
func (s *Source) labelledFor(workload, tier string) ([]*appsv1.Deployment, error) {
	return s.deploys.Deployments(s.o.Namespace).List(labels.SelectorFromSet(labels.Set{WorkloadLabel: workload, TierLabel: tier}))
}

var _ provider.LabelledDeployments = (*Source)(nil)

// TargetOf is the workload tier Deployment name in namespace is labelled
// for (provider.LabelledDeployments); false before the first list.
func (s *Source) TargetOf(namespace, name string) (provider.Target, bool) {
	if namespace != s.o.Namespace {
		return provider.Target{}, false
	}
	d, err := s.deploys.Deployments(namespace).Get(name)
	if err != nil {
		return provider.Target{}, false
	}
	w, tier := d.Labels[WorkloadLabel], d.Labels[TierLabel]
	return provider.Target{Workload: w, Tier: tier}, w != "" && tier != ""
}

// NameOf is the one Deployment of namespace labelled for t; false when
// none is, or several are (Count reports that).
func (s *Source) NameOf(namespace string, t provider.Target) (string, bool) {
	if namespace != s.o.Namespace {
		return "", false
	}
	ds, err := s.labelledFor(t.Workload, t.Tier)
	if err != nil || len(ds) != 1 {
		return "", false
	}
	return ds[0].Name, true
}

type state int

const (
	stateGone state = iota // finished: the ReplicaSet replaces it
	stateReady
	stateStarting
	statePending
	stateTerminating
	stateLost
)

// classify says what one pod is to the planner: terminating once deleted;
// ready when its Ready condition holds; lost when its node stopped
// reporting (lost); pending when it has been
// unschedulable for longer than grace (no node can be had for it), unless
// a node autoscaler has nominated a node it is bringing up for it, or when
// a container cannot start (an image that cannot be pulled, a crash loop:
// no condition says so, and the capacity is not coming); otherwise starting
// (scheduled and loading, waiting for a node on its way, or held by a
// scheduling gate). ungated is when the watch saw the pod leave its
// scheduling gates (zero if it did not): the grace counts from then at the
// earliest (watchGates).
func classify(p *corev1.Pod, now time.Time, grace time.Duration, ungated time.Time) state {
	if p.DeletionTimestamp != nil {
		return stateTerminating
	}
	if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
		return stateGone
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return stateReady
		}
	}
	if lost(p, now) {
		return stateLost
	}
	if cannotStart(p) {
		return statePending
	}
	for _, c := range p.Status.Conditions {
		switch {
		case c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonUnschedulable && p.Status.NominatedNodeName == "":
			since := c.LastTransitionTime.Time
			if since.IsZero() {
				since = p.CreationTimestamp.Time
			}
			if ungated.After(since) {
				since = ungated
			}
			if now.Sub(since) >= grace {
				return statePending
			}
		}
	}
	return stateStarting
}

// unreachable says the node stopped reporting: its Ready condition is
// Unknown, which only the node lifecycle controller writes, when the
// kubelet's status is older than the grace (40 s by default). Its pods are
// lost whether they had become ready or were still loading — lost(p) tells
// the first kind from the pod alone, this the second, where the nodes are
// watched (a PoolLabel). A node that says NotReady itself (False) is a
// kubelet that still reports, and may recover its pods.
func (s *Source) unreachable(name string) bool {
	if s.nodes == nil || name == "" {
		return false
	}
	n, err := s.nodes.Get(name)
	if err != nil {
		return false
	}
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionUnknown
		}
	}
	return false
}

// watchGates notes when a pod leaves its scheduling gates. The scheduler
// holds a gated pod at PodScheduled False, reason SchedulingGated, and
// once ungated writes reason Unschedulable if no node fits — the status
// unchanged, so the condition keeps its lastTransitionTime from when the
// pod was gated (pkg/api/v1/pod UpdatePodCondition keeps it unless the
// status changes), and the unschedulable grace would be spent already for
// a pod gated longer than it (a queue such as Kueue holding it for quota).
// A pod found already ungated when the watch began goes by the condition.
func (s *Source) watchGates(oldObj, newObj any) {
	old, ok1 := oldObj.(*corev1.Pod)
	cur, ok2 := newObj.(*corev1.Pod)
	if !ok1 || !ok2 || !schedulingGated(old) || schedulingGated(cur) {
		return
	}
	s.mu.Lock()
	s.ungatedAt[cur.UID] = s.o.Now()
	s.mu.Unlock()
}

func (s *Source) forgetPod(obj any) {
	if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = t.Obj
	}
	if p, ok := obj.(*corev1.Pod); ok {
		s.mu.Lock()
		delete(s.ungatedAt, p.UID)
		s.mu.Unlock()
	}
}

// schedulingGated says the scheduler holds p at its scheduling gates.
func schedulingGated(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled {
			return c.Status == corev1.ConditionFalse && c.Reason == corev1.PodReasonSchedulingGated
		}
	}
	return len(p.Spec.SchedulingGates) > 0
}

// lost says p's node stopped reporting while p was ready: its Ready
// condition is False while its ContainersReady condition is True and every
// container reports itself ready and running. The kubelet never writes
// that: it derives Ready from ContainersReady (False with it) or, with
// every container ready, sets it False only for an unmet readiness gate,
// reason ReadinessGatesNotReady (pkg/kubelet/status/generate.go
// GeneratePodReadyCondition), and it writes the containers' ready in the
// same status update — a failing readiness probe turns a container, its
// ContainersReady and its Ready False together. The node lifecycle
// controller does write it: when a node's Ready condition leaves True it
// flips the Ready condition of the node's pods to False, its reason
// unchanged, and touches nothing else (MarkPodsNotReady,
// pkg/controller/util/node/controller_utils.go), while the kubelet that
// would update the containers is gone. No DisruptionTarget condition says
// so yet: the taint eviction controller sets one only as it deletes the
// pod, after the not-ready or unreachable taint's tolerationSeconds (300 s
// by default, pkg/controller/tainteviction). Until then the pod is an
// active replica to its ReplicaSet, which replaces nothing. A pod that
// was not ready yet when its node went is told apart only where the nodes
// are watched (Source.unreachable); elsewhere it counts as starting until
// evicted.
//
// The controller also marks the pods of a node that reports NotReady
// itself (its Ready condition False: a runtime restart, a PLEG hiccup),
// whose kubelet is still there and writes its own status back within its
// status manager's 10 s sync (pkg/kubelet/status: syncPeriod, and a pod
// whose API status differs from its cache is reconciled); so the state
// must have lasted lostAfter before the pod counts as lost, or such a blip
// would launch GPU replicas only to retire them.
func lost(p *corev1.Pod, now time.Time) bool {
	var notReady, containersReady bool
	for _, c := range p.Status.Conditions {
		switch c.Type {
		case corev1.PodReady:
			notReady = c.Status == corev1.ConditionFalse && c.Reason != readinessGatesNotReady &&
				now.Sub(c.LastTransitionTime.Time) >= lostAfter
		case corev1.ContainersReady:
			containersReady = c.Status == corev1.ConditionTrue
		}
	}
	if !notReady || !containersReady || len(p.Status.ContainerStatuses) == 0 {
		return false
	}
	for _, cs := range p.Status.ContainerStatuses {
		if !cs.Ready || cs.State.Running == nil {
			return false
		}
	}
	return true
}

// lostAfter is how long a pod must have been marked not ready by the node
// lifecycle controller, its containers still reading ready, before it
// counts as lost: three of the kubelet's status syncs.
const lostAfter = 30 * time.Second

// readinessGatesNotReady is the kubelet's reason for a pod whose
// containers are ready but whose readiness gates are not
// (pkg/kubelet/status/generate.go).
const readinessGatesNotReady = "ReadinessGatesNotReady"

// stuckReasons are the waiting reasons of a container that will not start
// without someone's help.
var stuckReasons = map[string]bool{
	"CrashLoopBackOff": true, "ImagePullBackOff": true, "ErrImagePull": true,
	"CreateContainerConfigError": true, "CreateContainerError": true, "InvalidImageName": true,
}

// cannotStart says a container (or init container) of p waits for a reason
// it will not get past on its own.
func cannotStart(p *corev1.Pod) bool {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, cs := range list {
			if w := cs.State.Waiting; w != nil && stuckReasons[w.Reason] {
				return true
			}
		}
	}
	return false
}
