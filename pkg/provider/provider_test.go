package provider

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	cmclient "k8s.io/metrics/pkg/client/custom_metrics"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"

	"github.com/infercast/infercast/pkg/capacity"
)

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func plan(w string, active bool, onDemand, spot int) capacity.Plan {
	return capacity.Plan{Workload: w, Time: t0, Active: active, Mode: capacity.ModePredictive,
		Tiers: map[string]capacity.TierTarget{
			capacity.TierOnDemand: {Replicas: onDemand},
			capacity.TierSpot:     {Replicas: spot},
		}}
}

var (
	both   = []string{capacity.TierOnDemand, capacity.TierSpot}
	info   = cmprovider.CustomMetricInfo{GroupResource: deployments, Namespaced: true, Metric: MetricName}
	deploy = schema.GroupKind{Group: "apps", Kind: "Deployment"}
)

func TestNameMapping(t *testing.T) {
	cat := StaticCatalog{"chat": both, "embed": {capacity.TierOnDemand}}
	tests := []struct {
		name, template, only, ns, deployment string
		want                                 Target
		ok                                   bool
	}{
		{"default", "", "", "prod", "chat-spot", Target{"chat", "spot"}, true},
		{"default on-demand", "", "", "prod", "chat-on-demand", Target{"chat", "on-demand"}, true},
		{"tier not configured", "", "", "prod", "embed-spot", Target{}, false},
		{"unknown", "", "", "prod", "web-spot", Target{}, false},
		{"template", "llm-{workload}-{tier}", "", "x", "llm-embed-on-demand", Target{"embed", "on-demand"}, true},
		{"template, plain name", "llm-{workload}-{tier}", "", "x", "embed-on-demand", Target{}, false},
		{"namespace bound", "", "prod", "prod", "chat-spot", Target{"chat", "spot"}, true},
		{"other namespace", "", "prod", "dev", "chat-spot", Target{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NameMapping{Template: tt.template, Namespace: tt.only}
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			got, ok := m.resolve(tt.ns, tt.deployment, cat)
			if ok != tt.ok || got != tt.want {
				t.Fatalf("resolve(%s/%s) = %v, %v; want %v, %v", tt.ns, tt.deployment, got, ok, tt.want, tt.ok)
			}
		})
	}
	if err := (NameMapping{Template: "{workload}"}).Validate(); err == nil || !strings.Contains(err.Error(), "{tier}") {
		t.Fatalf("template without {tier}: %v", err)
	}
}

// startAPI runs the real custom-metrics-apiserver on 127.0.0.1:0 with a
// self-signed certificate and authn/authz off, and returns k8s.io/metrics'
// custom metrics client and a discovery client for it.
func startAPI(t *testing.T, p *Provider) (cmclient.CustomMetricsClient, discovery.DiscoveryInterface) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := NewAPIServer(p, APIServerConfig{Listener: l})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	cfg := &rest.Config{Host: "https://" + l.Addr().String(), TLSClientConfig: rest.TLSClientConfig{Insecure: true}}
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// The server has no aggregated discovery (the kube-aggregator provides
	// it in a cluster): ask for the legacy group list, as kubectl falls back to.
	dc.UseLegacyDiscovery = true
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := dc.ServerResourcesForGroupVersion("custom.metrics.k8s.io/v1beta2")
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("custom metrics API not up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	mapper := meta.NewDefaultRESTMapper([]schema.GroupVersion{appsv1.SchemeGroupVersion})
	mapper.Add(appsv1.SchemeGroupVersion.WithKind("Deployment"), meta.RESTScopeNamespace)
	return cmclient.NewForConfig(cfg, mapper, cmclient.NewAvailableAPIsGetter(dc)), dc
}

func TestCustomMetricsAPI(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 4, 7))
	cache.Set(plan("broken", true, 2, -3))
	preview := plan("shadow", true, 5, 6)
	preview.Mode = capacity.ModePreview
	cache.Set(preview)
	p, err := New(cache, StaticCatalog{"chat": both, "broken": both, "waiting": both, "shadow": both},
		Options{})
	if err != nil {
		t.Fatal(err)
	}
	client, dc := startAPI(t, p)

	// Discovery lists the metric from ListAllMetrics.
	rl, err := dc.ServerResourcesForGroupVersion("custom.metrics.k8s.io/v1beta2")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range rl.APIResources {
		names = append(names, r.Name)
	}
	if len(names) != 1 || names[0] != "deployments.apps/"+MetricName {
		t.Fatalf("discovered %v", names)
	}

	ns := client.NamespacedMetrics("prod")
	for _, tc := range []struct {
		name string
		want int64
	}{{"chat-on-demand", 4000}, {"chat-spot", 7000}} {
		v, err := ns.GetForObject(deploy, tc.name, MetricName, labels.Everything())
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if v.Value.MilliValue() != tc.want || v.DescribedObject.Name != tc.name ||
			v.DescribedObject.Kind != "Deployment" || v.Metric.Name != MetricName || !v.Timestamp.Time.Equal(t0) {
			t.Fatalf("%s: got %+v; want %dm", tc.name, v, tc.want)
		}
	}

	// Selector over the implied labels.
	sel := labels.SelectorFromSet(labels.Set{LabelWorkload: "chat"})
	list, err := ns.GetForObjects(deploy, sel, MetricName, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Items) != 2 || list.Items[0].DescribedObject.Name != "chat-on-demand" || list.Items[1].Value.MilliValue() != 7000 {
		t.Fatalf("selector workload=chat: %+v", list.Items)
	}

	// Errors: precise kinds, no internals.
	for _, tc := range []struct {
		name, object, metric string
		check                func(error) bool
		mustNot              string
	}{
		{"unknown deployment", "web-spot", MetricName, apierrors.IsNotFound, ""},
		{"unknown metric", "chat-spot", "queue_length", apierrors.IsNotFound, ""},
		{"no plan yet", "waiting-spot", MetricName, apierrors.IsServiceUnavailable, ""},
		{"invalid plan", "broken-spot", MetricName, apierrors.IsInternalError, "-3"},
		// A preview workload's targets are metrics only: the HPA gets an
		// error, never a value to act on.
		{"preview", "shadow-spot", MetricName, apierrors.IsConflict, "6"},
	} {
		_, err := ns.GetForObject(deploy, tc.object, tc.metric, labels.Everything())
		if err == nil || !tc.check(err) {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if tc.mustNot != "" && strings.Contains(err.Error(), tc.mustNot) {
			t.Errorf("%s: error leaks %q: %v", tc.name, tc.mustNot, err)
		}
	}

	if _, err := ns.GetForObject(deploy, "shadow-on-demand", MetricName, labels.Everything()); err == nil ||
		!strings.Contains(err.Error(), `workload "shadow" is in preview: targets are exported as metrics only`) {
		t.Errorf("preview: err = %v; want it to say the workload is in preview", err)
	}
	shadow, err := ns.GetForObjects(deploy, labels.SelectorFromSet(labels.Set{LabelWorkload: "shadow"}), MetricName, labels.Everything())
	if err != nil || len(shadow.Items) != 0 {
		t.Errorf("selector workload=shadow (in preview) = %+v, %v; want no items", shadow, err)
	}

	// The tolerance compensation reaches the HPA through this API too.
	p20 := plan("chat", true, 20, 0)
	cache.Set(p20)
	if v, err := ns.GetForObject(deploy, "chat-on-demand", MetricName, labels.Everything()); err != nil || v.Value.MilliValue() != 20000 {
		t.Fatalf("plan 20: %v, %v", v, err)
	}
	cache.Set(plan("chat", true, 21, 0))
	if v, err := ns.GetForObject(deploy, "chat-on-demand", MetricName, labels.Everything()); err != nil || v.Value.MilliValue() != 22001 {
		t.Fatalf("plan 21 within tolerance of 20: %v, %v; want 22001m", v, err)
	}
}

func TestProviderDirect(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 3, 0))
	p, err := New(cache, StaticCatalog{"chat": both}, Options{Mapping: NameMapping{Namespace: "prod"}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	v, err := p.GetMetricByName(ctx, types.NamespacedName{Namespace: "prod", Name: "chat-spot"}, info, labels.Everything())
	if err != nil || v.Value.MilliValue() != 0 {
		t.Fatalf("spot in fallback: %v, %v; want 0 (on-demand carries the demand)", v, err)
	}
	wrongRes := info
	wrongRes.GroupResource = schema.GroupResource{Resource: "pods"}
	if _, err := p.GetMetricByName(ctx, types.NamespacedName{Namespace: "prod", Name: "chat-spot"}, wrongRes, labels.Everything()); !apierrors.IsNotFound(err) {
		t.Fatalf("metric on pods: %v", err)
	}
	if _, err := p.GetMetricByName(ctx, types.NamespacedName{Namespace: "dev", Name: "chat-spot"}, info, labels.Everything()); !apierrors.IsNotFound(err) {
		t.Fatalf("outside the mapped namespace: %v", err)
	}
	l1, l2 := p.ListAllMetrics(), p.ListAllMetrics()
	if len(l1) != 1 || &l1[0] != &l2[0] {
		t.Fatalf("listing not cached: %v", l1)
	}
	if _, err := New(cache, StaticCatalog{}, Options{Mapping: NameMapping{Template: "x"}}); err == nil {
		t.Fatal("bad template accepted")
	}
}

// fakeLabelled is a LabelledDeployments from a map of Deployment names to
// the targets their labels name, all in namespace prod.
type fakeLabelled map[string]Target

func (f fakeLabelled) TargetOf(namespace, name string) (Target, bool) {
	t, ok := f[name]
	return t, ok && namespace == "prod"
}

func (f fakeLabelled) NameOf(namespace string, t Target) (string, bool) {
	for name, lt := range f {
		if lt == t && namespace == "prod" {
			return name, true
		}
	}
	return "", false
}

// With labelled Deployments, a tier's metric is on its labelled Deployment
// whatever its name, and no longer on the template's name; tiers without
// one keep the template's name; labels for a workload the policy does not
// have map nothing.
func TestLabelledDeployments(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 3, 5))
	p, err := New(cache, StaticCatalog{"chat": both}, Options{Labelled: fakeLabelled{
		"llama-70b-spot": {Workload: "chat", Tier: capacity.TierSpot},
		"old-model":      {Workload: "gone", Tier: capacity.TierSpot},
	}})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	get := func(ns, name string) (int64, error) {
		v, err := p.GetMetricByName(ctx, types.NamespacedName{Namespace: ns, Name: name}, info, labels.Everything())
		if err != nil {
			return 0, err
		}
		return v.Value.MilliValue(), nil
	}
	if v, err := get("prod", "llama-70b-spot"); err != nil || v != 5000 {
		t.Errorf("labelled spot Deployment: %v, %v; want 5", v, err)
	}
	if v, err := get("prod", "chat-on-demand"); err != nil || v != 3000 {
		t.Errorf("on-demand by the template: %v, %v; want 3", v, err)
	}
	for _, name := range []string{"chat-spot", "old-model"} {
		if _, err := get("prod", name); !apierrors.IsNotFound(err) {
			t.Errorf("%s: %v; want not found", name, err)
		}
	}
	// Outside the labelled namespace the template still maps.
	if v, err := get("dev", "chat-spot"); err != nil || v != 5000 {
		t.Errorf("chat-spot in dev: %v, %v; want 5", v, err)
	}
	list, err := p.GetMetricBySelector(ctx, "prod", labels.SelectorFromSet(labels.Set{LabelWorkload: "chat"}), info, labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, it := range list.Items {
		names = append(names, it.DescribedObject.Name)
	}
	if strings.Join(names, ",") != "chat-on-demand,llama-70b-spot" {
		t.Errorf("by selector: %v; want chat-on-demand,llama-70b-spot", names)
	}
}
