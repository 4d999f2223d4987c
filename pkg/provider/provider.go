// Package provider serves capacity plans to the HPA without KEDA, through
// the custom metrics API (custom.metrics.k8s.io) of
// sigs.k8s.io/custom-metrics-apiserver: each tier's replica target is an
// object metric on the Deployment that runs the tier.
package provider

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/metrics/pkg/apis/custom_metrics"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/scaler/hpa"
)

// MetricName is the object metric served on each mapped Deployment: the
// replica target of its tier. Use it with an AverageValue target of 1.
const MetricName = "infercast_desired_replicas"

// deployments is the resource the metric describes.
var deployments = schema.GroupResource{Group: "apps", Resource: "deployments"}

// Plans is the read side of capacity.Cache.
type Plans interface {
	Get(workload string) (capacity.Plan, bool)
}

// Options tune a Provider.
type Options struct {
	Mapping NameMapping
	// Labelled, when set, maps the Deployments labelled for a tier
	// (LabelWorkload, LabelTier) to it whatever their names, before the
	// Mapping's names.
	Labelled LabelledDeployments
	// Tolerance gives each workload's HPA tolerance to compensate for
	// (package hpa); nil means hpa.DefaultTolerance.
	Tolerance hpa.ToleranceFunc
	// Compensator, when set, replaces the one built from Tolerance.
	Compensator *hpa.Compensator
	Logger      *slog.Logger
}

// Provider implements cmprovider.CustomMetricsProvider over the plan cache.
type Provider struct {
	plans    Plans
	catalog  Catalog
	mapping  NameMapping
	labelled LabelledDeployments // nil: names only
	comp     *hpa.Compensator
	log      *slog.Logger

	listOnce sync.Once
	listing  []cmprovider.CustomMetricInfo
}

var _ cmprovider.CustomMetricsProvider = (*Provider)(nil)

// New returns a Provider answering from plans for the workloads of catalog.
func New(plans Plans, catalog Catalog, opts Options) (*Provider, error) {
	if plans == nil || catalog == nil {
		return nil, errors.New("provider: plans and catalog are required")
	}
	if err := opts.Mapping.Validate(); err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	comp := opts.Compensator
	if comp == nil {
		comp = hpa.NewCompensator(opts.Tolerance)
	}
	return &Provider{plans: plans, catalog: catalog, mapping: opts.Mapping, labelled: opts.Labelled,
		comp: comp, log: log}, nil
}

// ListAllMetrics lists the one metric this provider serves. The listing is
// built once and shared: the API server calls it on every discovery request.
func (p *Provider) ListAllMetrics() []cmprovider.CustomMetricInfo {
	p.listOnce.Do(func() {
		p.listing = []cmprovider.CustomMetricInfo{{GroupResource: deployments, Namespaced: true, Metric: MetricName}}
	})
	return p.listing
}

func served(info cmprovider.CustomMetricInfo) bool {
	return info.Metric == MetricName && info.Namespaced && info.GroupResource == deployments
}

// GetMetricByName returns the replica target of the tier that Deployment
// name runs; 409 Conflict while the workload is in preview.
func (p *Provider) GetMetricByName(_ context.Context, name types.NamespacedName, info cmprovider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValue, error) {
	if !served(info) {
		return nil, cmprovider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	t, ok := p.resolve(name.Namespace, name.Name)
	if !ok {
		return nil, cmprovider.NewMetricNotFoundForError(info.GroupResource, info.Metric, name.Name)
	}
	return p.value(name.Namespace, name.Name, t)
}

// GetMetricBySelector returns the targets of every mapped Deployment in
// namespace whose implied labels (LabelWorkload, LabelTier) match selector;
// workloads without a plan yet or in preview are left out.
func (p *Provider) GetMetricBySelector(_ context.Context, namespace string, selector labels.Selector, info cmprovider.CustomMetricInfo, _ labels.Selector) (*custom_metrics.MetricValueList, error) {
	if !served(info) {
		return nil, cmprovider.NewMetricNotFoundError(info.GroupResource, info.Metric)
	}
	if selector == nil {
		selector = labels.Everything()
	}
	out := &custom_metrics.MetricValueList{}
	for _, o := range p.objects(namespace) {
		if !selector.Matches(o.labels) {
			continue
		}
		v, err := p.value(namespace, o.name, o.target)
		if apierrors.IsServiceUnavailable(err) || apierrors.IsConflict(err) {
			continue // no plan yet, or in preview: list the others
		}
		if err != nil {
			return nil, err
		}
		out.Items = append(out.Items, *v)
	}
	return out, nil
}

// resolve finds the target of Deployment name in namespace: by its labels,
// else by its name.
func (p *Provider) resolve(namespace, name string) (Target, bool) {
	if p.labelled != nil && p.mapping.inNamespace(namespace) {
		if t, ok := p.labelled.TargetOf(namespace, name); ok && inCatalog(p.catalog, t) {
			return t, true
		}
	}
	t, ok := p.mapping.resolve(namespace, name, p.catalog)
	if ok && p.labelled != nil {
		// A tier with a labelled Deployment runs there, not under the
		// template's name.
		if other, labelled := p.labelled.NameOf(namespace, t); labelled && other != name {
			return Target{}, false
		}
	}
	return t, ok
}

// objects lists the Deployments of namespace the provider serves: each
// tier's labelled Deployment where there is one, else its mapped name.
func (p *Provider) objects(namespace string) []mapped {
	out := p.mapping.objects(namespace, p.catalog)
	if p.labelled == nil {
		return out
	}
	for i, o := range out {
		if name, ok := p.labelled.NameOf(namespace, o.target); ok {
			out[i].name = name
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

func inCatalog(cat Catalog, t Target) bool {
	return slices.Contains(cat.Workloads()[t.Workload], t.Tier)
}

func (p *Provider) value(namespace, name string, t Target) (*custom_metrics.MetricValue, error) {
	plan, ok := p.plans.Get(t.Workload)
	if !ok {
		return nil, apierrors.NewServiceUnavailable(fmt.Sprintf("no capacity plan for workload %q yet", t.Workload))
	}
	replicas, err := hpa.ServedReplicas(plan, t.Tier)
	if pe := (*hpa.PreviewError)(nil); errors.As(err, &pe) {
		return nil, previewError(pe)
	}
	if err != nil {
		p.log.Error("refusing to serve an invalid plan", "workload", t.Workload, "tier", t.Tier, "err", err)
		// NewInternalError would put err's text in the response: keep it generic.
		return nil, apierrors.NewInternalError(fmt.Errorf("the plan for workload %q is invalid; see the adapter's log", t.Workload))
	}
	v := p.comp.Value(hpa.Key{Namespace: namespace, Name: name, Workload: t.Workload, Tier: t.Tier}, replicas)
	return &custom_metrics.MetricValue{
		DescribedObject: custom_metrics.ObjectReference{
			APIVersion: "apps/v1", Kind: "Deployment", Namespace: namespace, Name: name,
		},
		Metric:    custom_metrics.MetricIdentifier{Name: MetricName},
		Timestamp: metav1.NewTime(plan.Time),
		Value:     *resource.NewMilliQuantity(int64(v*1000+0.5), resource.DecimalSI),
	}, nil
}

// previewError answers a Deployment of a preview workload: 409 Conflict
// (the workload's state, not the request, is why there is no value), with
// a message that names the workload and nothing internal. An error rather
// than a value: the HPA keeps its replica count when its metric fails, and
// would act on any value. The message is set directly: NewConflict would
// wrap it in "Operation cannot be fulfilled on …", which is about writes.
func previewError(pe *hpa.PreviewError) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusConflict,
		Reason:  metav1.StatusReasonConflict,
		Message: pe.Error(),
	}}
}
