package cost

import (
	"fmt"
	"strings"
)

// Tier is a node's capacity type.
type Tier string

// Tiers, as label values.
const (
	OnDemand Tier = "on-demand"
	Spot     Tier = "spot"
)

// Node is what spend needs to know about a node, read from its labels.
type Node struct {
	Tier         Tier
	InstanceType string
	Pool         string
	// TierLabel is the label the tier was read from ("" when defaulted).
	TierLabel string
}

// Capacity-type labels of each provisioner, and how each spells spot.
var tierLabels = []struct {
	key  string
	spot func(v string) (isSpot bool, known bool)
}{
	// Karpenter: spot | on-demand | reserved. Reserved is priced as
	// on-demand unless a node_pools entry gives its pool the price paid.
	{"karpenter.sh/capacity-type", func(v string) (bool, bool) {
		switch v {
		case "spot":
			return true, true
		case "on-demand", "reserved":
			return false, true
		}
		return false, false
	}},
	// EKS managed node groups: SPOT | ON_DEMAND | CAPACITY_BLOCK, the last
	// priced as on-demand unless a node_pools entry gives its group the
	// price paid.
	{"eks.amazonaws.com/capacityType", func(v string) (bool, bool) {
		switch v {
		case "SPOT":
			return true, true
		case "ON_DEMAND", "CAPACITY_BLOCK":
			return false, true
		}
		return false, false
	}},
	// GKE: Spot VMs and the older preemptible VMs, "true" when set.
	{"cloud.google.com/gke-spot", boolLabel},
	{"cloud.google.com/gke-preemptible", boolLabel},
	// AKS: spot | regular.
	{"kubernetes.azure.com/scalesetpriority", func(v string) (bool, bool) {
		switch v {
		case "spot":
			return true, true
		case "regular":
			return false, true
		}
		return false, false
	}},
}

func boolLabel(v string) (bool, bool) {
	switch strings.ToLower(v) {
	case "true":
		return true, true
	case "false":
		return false, true
	}
	return false, false
}

var (
	instanceTypeLabels = []string{"node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type"}
	poolLabels         = []string{"karpenter.sh/nodepool", "eks.amazonaws.com/nodegroup", "cloud.google.com/gke-nodepool", "kubernetes.azure.com/agentpool"}
)

// NodeFromLabels reads tier, instance type and pool from a node's labels.
// No capacity-type label means on-demand. An unknown value, or two labels
// that disagree, is an error: pricing a spot node as on-demand (or the
// reverse) silently is worse than saying so.
func NodeFromLabels(labels map[string]string) (Node, error) {
	n := Node{Tier: OnDemand}
	for _, tl := range tierLabels {
		v, ok := labels[tl.key]
		if !ok {
			continue
		}
		isSpot, known := tl.spot(v)
		if !known {
			return Node{}, fmt.Errorf("node label %s=%q: unknown capacity type", tl.key, v)
		}
		t := OnDemand
		if isSpot {
			t = Spot
		}
		if n.TierLabel != "" && t != n.Tier {
			return Node{}, fmt.Errorf("node labels disagree: %s says %s, %s=%q says %s", n.TierLabel, n.Tier, tl.key, v, t)
		}
		n.Tier, n.TierLabel = t, tl.key
	}
	for _, k := range instanceTypeLabels {
		if v := labels[k]; v != "" {
			n.InstanceType = v
			break
		}
	}
	for _, k := range poolLabels {
		if v := labels[k]; v != "" {
			n.Pool = v
			break
		}
	}
	return n, nil
}
