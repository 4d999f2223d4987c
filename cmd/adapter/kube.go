package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/infercast/infercast/internal/kubepods"
	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/provider"
)

// kubeFlags configure reading the workloads' pods from the Kubernetes API
// (--kubernetes.pods): the planner then knows its replicas by state instead
// of estimating them from its own past plans.
type kubeFlags struct {
	pods       bool
	kubeconfig string
	namespace  string
	poolLabel  string
	grace      time.Duration
}

func (k *kubeFlags) register(fs *flag.FlagSet) {
	fs.BoolVar(&k.pods, "kubernetes.pods", false, "read each workload tier's pods (of the Deployment labelled infercast.io/workload and infercast.io/tier, else the one --custom-metrics.deployment-template names) from the Kubernetes API: the planner's replicas by state (ready, starting, pending, terminating); off: estimated from its own past plans, for spot workloads only")
	fs.StringVar(&k.kubeconfig, "kubernetes.kubeconfig", "", "kubeconfig of --kubernetes.pods; empty: in-cluster")
	fs.StringVar(&k.namespace, "kubernetes.namespace", "", "namespace of the workloads' Deployments; required with --kubernetes.pods")
	fs.StringVar(&k.poolLabel, "kubernetes.pool-label", "", "node label whose value is a node's pool (policy tiers.spot.pools), e.g. karpenter.sh/nodepool: spot replicas counted per pool; empty: an even spread is assumed")
	fs.DurationVar(&k.grace, "kubernetes.unschedulable-grace", kubepods.DefaultUnschedulableGrace, "how long a pod may be unschedulable before it counts as pending for want of capacity (spot moves to on-demand); shorter, a node is taken to be on its way")
}

func (k *kubeFlags) validate() error {
	if !k.pods {
		return nil
	}
	if k.namespace == "" {
		return errors.New("--kubernetes.namespace is required with --kubernetes.pods")
	}
	if k.grace <= 0 {
		return fmt.Errorf("--kubernetes.unschedulable-grace=%s must be positive", k.grace)
	}
	return nil
}

// source starts the pod watches (nil without --kubernetes.pods). It does
// not wait for them: until they have listed, the planner keeps estimating.
func (k *kubeFlags) source(ctx context.Context, template string, log *slog.Logger) (*kubepods.Source, error) {
	if !k.pods {
		return nil, nil
	}
	names := provider.NameMapping{Template: template}
	if err := names.Validate(); err != nil {
		return nil, err
	}
	var cfg *rest.Config
	var err error
	if k.kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", k.kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("--kubernetes.pods: %w", err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("--kubernetes.pods: %w", err)
	}
	s, err := kubepods.New(client, kubepods.Options{Namespace: k.namespace, PoolLabel: k.poolLabel, UnschedulableGrace: k.grace,
		Deployment: func(w, tier string) string { return names.Name(provider.Target{Workload: w, Tier: tier}) }})
	if err != nil {
		return nil, err
	}
	s.Start(ctx)
	log.Info("watching the workloads' pods", "namespace", k.namespace, "template", template, "pool_label", k.poolLabel)
	return s, nil
}

// podCounter counts a workload tier's pods (kubepods.Source).
type podCounter interface {
	Count(workload, tier string, outlook func(node string) kubepods.Outlook) (kubepods.Counts, error)
}

// podStates fills sig's tier states of w from its pods, all or nothing:
// spot pods on a node under notice are terminating, pods on a node that
// stopped reporting lost, pods on a departing node departing (the planner
// replaces both), and with per-pool counts the spot replicas' placement
// follows tiers.spot.pools' order.
func podStates(pc podCounter, w *capacity.Workload, outlook map[string]kubepods.Outlook, sig *capacity.Signals) error {
	state := func(c kubepods.Counts) capacity.TierState {
		return capacity.TierState{Ready: c.Ready, Starting: c.Starting, Pending: c.Pending, Terminating: c.Terminating,
			Lost: c.Lost, Departing: c.Departing}
	}
	// An on-demand pod on a node under a spot notice (a mislabelled pool)
	// is replaced like one on a departing node: the on-demand tier has no
	// fallback to move it to.
	od, err := pc.Count(w.Name, capacity.TierOnDemand, func(node string) kubepods.Outlook {
		return min(outlook[node], kubepods.Departing)
	})
	if err != nil {
		return err
	}
	if w.Tiers.Spot == nil {
		sig.OnDemand = state(od)
		return nil
	}
	sp, err := pc.Count(w.Name, capacity.TierSpot, func(node string) kubepods.Outlook { return outlook[node] })
	if err != nil {
		return err
	}
	sig.OnDemand, sig.Spot = state(od), state(sp)
	if pools := w.Tiers.Spot.Pools; sp.ByPool != nil && len(pools) > 0 {
		sig.SpotByDomain = make([]int, len(pools))
		for i, p := range pools {
			sig.SpotByDomain[i] = sp.ByPool[p]
		}
	}
	return nil
}
