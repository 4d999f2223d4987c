package provider

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
)

// Labels a Deployment is treated as carrying under a NameMapping, so that
// label selectors (kubectl get --raw …?labelSelector=…) can pick workloads
// and tiers. A Deployment that really carries both (LabelledDeployments)
// runs that tier whatever its name.
const (
	LabelWorkload = "infercast.io/workload"
	LabelTier     = "infercast.io/tier"
)

// Target is one tier of one workload.
type Target struct {
	Workload string
	Tier     string
}

// Catalog lists the workloads and tiers the policy configures; it is asked
// on every call, so a reloaded policy takes effect at once.
type Catalog interface {
	// Workloads returns every workload with its tiers.
	Workloads() map[string][]string
}

// StaticCatalog is a Catalog from a fixed map.
type StaticCatalog map[string][]string

// Workloads implements Catalog.
func (c StaticCatalog) Workloads() map[string][]string { return c }

// LabelledDeployments finds the Deployments labelled LabelWorkload and
// LabelTier, from the Kubernetes API (kubepods.Source, with
// adapter serve --kubernetes.pods).
type LabelledDeployments interface {
	// TargetOf is the target Deployment name in namespace is labelled for.
	TargetOf(namespace, name string) (Target, bool)
	// NameOf is the one Deployment of namespace labelled for t.
	NameOf(namespace string, t Target) (string, bool)
}

// NameMapping maps a Deployment to a workload and tier by its name: the
// Template with "{workload}" and "{tier}" replaced, "{workload}-{tier}" by
// default (Deployment "chat-spot" runs the spot tier of workload "chat").
// Namespace, when set, is the only namespace whose Deployments are mapped.
// It needs no access to the Kubernetes API.
type NameMapping struct {
	Template  string
	Namespace string
}

// DefaultTemplate is the NameMapping template used when none is set.
const DefaultTemplate = "{workload}-{tier}"

// Validate checks that the template names both the workload and the tier.
func (m NameMapping) Validate() error {
	t := m.template()
	if !strings.Contains(t, "{workload}") || !strings.Contains(t, "{tier}") {
		return fmt.Errorf("deployment name template %q must contain {workload} and {tier}", t)
	}
	return nil
}

func (m NameMapping) template() string {
	if m.Template == "" {
		return DefaultTemplate
	}
	return m.Template
}

// Name is the Deployment name of a target.
func (m NameMapping) Name(t Target) string {
	return strings.NewReplacer("{workload}", t.Workload, "{tier}", t.Tier).Replace(m.template())
}

// mapped is one Deployment the mapping knows, with its implied labels.
type mapped struct {
	name   string
	target Target
	labels labels.Set
}

// objects lists the Deployments of namespace under the mapping, sorted by
// name. Names are derived from the catalog, so lookups stay unambiguous
// even when a workload name contains the separator.
func (m NameMapping) objects(namespace string, cat Catalog) []mapped {
	if !m.inNamespace(namespace) {
		return nil
	}
	var out []mapped
	for w, tiers := range cat.Workloads() {
		for _, tier := range tiers {
			t := Target{Workload: w, Tier: tier}
			out = append(out, mapped{name: m.Name(t), target: t,
				labels: labels.Set{LabelWorkload: w, LabelTier: tier}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// inNamespace says whether the mapping maps Deployments of namespace.
func (m NameMapping) inNamespace(namespace string) bool {
	return m.Namespace == "" || namespace == m.Namespace
}

// resolve finds the target of Deployment name in namespace.
func (m NameMapping) resolve(namespace, name string, cat Catalog) (Target, bool) {
	if !m.inNamespace(namespace) {
		return Target{}, false
	}
	for w, tiers := range cat.Workloads() {
		for _, tier := range tiers {
			if t := (Target{Workload: w, Tier: tier}); m.Name(t) == name {
				return t, true
			}
		}
	}
	return Target{}, false
}
