// Package scaler serves capacity plans to KEDA through its external scaler
// gRPC protocol (github.com/kedacore/keda/v2/pkg/scalers/externalscaler).
// Every answer comes from the plan cache the planner loop fills: a poll
// never triggers a forecast.
package scaler

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/scaler/hpa"
)

// Plans is the read side of capacity.Cache that the scaler needs.
type Plans interface {
	Get(workload string) (capacity.Plan, bool)
	// Changed returns a channel closed at the next plan update.
	Changed() <-chan struct{}
}

// DefaultTolerance is the HPA's default --horizontal-pod-autoscaler-tolerance.
const DefaultTolerance = hpa.DefaultTolerance

// Options tune a Scaler.
type Options struct {
	// Tolerance gives the HPA tolerance the reported values compensate for
	// (see package hpa), per workload; nil means DefaultTolerance (a stock
	// HPA). A tolerance of 0 reports plans as they are, for HPAs whose
	// behavior sets tolerance: 0.
	Tolerance hpa.ToleranceFunc
	// Compensator, when set, replaces the one built from Tolerance (to
	// give it the Deployments' replica counts, or the HPAs' downscale
	// window).
	Compensator *hpa.Compensator
	Logger      *slog.Logger
}

// Scaler implements KEDA's ExternalScalerServer over a plan cache.
type Scaler struct {
	pb.UnimplementedExternalScalerServer

	plans   Plans
	catalog Catalog
	comp    *hpa.Compensator
	log     *slog.Logger

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: streams end
}

var _ pb.ExternalScalerServer = (*Scaler)(nil)

// New returns a Scaler answering from plans for the workloads of catalog.
func New(plans Plans, catalog Catalog, opts Options) (*Scaler, error) {
	if plans == nil || catalog == nil {
		return nil, errors.New("scaler: plans and catalog are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	comp := opts.Compensator
	if comp == nil {
		comp = hpa.NewCompensator(opts.Tolerance)
	}
	return &Scaler{
		plans:   plans,
		catalog: catalog,
		comp:    comp,
		log:     log,
		closing: make(chan struct{}),
	}, nil
}

// Close ends every open stream (with Unavailable, which KEDA retries), so a
// graceful stop does not wait for streams that never end on their own.
func (s *Scaler) Close() {
	s.closeOnce.Do(func() { close(s.closing) })
}

// ForgetRemoved drops per-ScaledObject state of tiers no longer in the
// catalog; call it after a policy reload.
func (s *Scaler) ForgetRemoved() {
	s.comp.Forget(func(k hpa.Key) bool {
		_, err := ParseMetadata(map[string]string{KeyWorkload: k.Workload, KeyTier: k.Tier}, s.catalog)
		return err == nil
	})
}

func (s *Scaler) target(ref *pb.ScaledObjectRef) (Target, error) {
	if ref == nil {
		return Target{}, status.Error(codes.InvalidArgument, "missing scaledObjectRef")
	}
	t, err := ParseMetadata(ref.GetScalerMetadata(), s.catalog)
	if err != nil {
		return Target{}, status.Error(codes.InvalidArgument, err.Error())
	}
	return t, nil
}

// plan returns the workload's plan to act on: Unavailable before the first
// plan, FailedPrecondition while the workload is in preview.
func (s *Scaler) plan(t Target) (capacity.Plan, error) {
	p, ok := s.plans.Get(t.Workload)
	if !ok {
		return capacity.Plan{}, status.Errorf(codes.Unavailable,
			"no capacity plan for workload %q yet: the planner has not completed its first run", t.Workload)
	}
	if err := hpa.Preview(p); err != nil {
		return capacity.Plan{}, previewStatus(err)
	}
	return p, nil
}

// previewStatus answers a preview workload. An error, not a value: KEDA
// treats a failing trigger as "no decision" (no scale to or from zero
// without fallback) and the HPA keeps its replica count when its only
// metric fails, whereas any value (even 0 or false) would be acted on.
func previewStatus(err error) error {
	return status.Error(codes.FailedPrecondition, err.Error())
}

// IsActive reports whether the tier must run: the workload's demand is
// live or forecast within one cold start, and the plan gives the tier
// replicas (hpa.TierActive). A preview workload answers
// FailedPrecondition: false would let KEDA scale it to zero.
func (s *Scaler) IsActive(_ context.Context, ref *pb.ScaledObjectRef) (*pb.IsActiveResponse, error) {
	t, err := s.target(ref)
	if err != nil {
		return nil, err
	}
	p, err := s.plan(t)
	if err != nil {
		return nil, err
	}
	active, err := hpa.TierActive(p, t.Tier)
	if err != nil {
		return nil, s.invalidPlan(t, err)
	}
	return &pb.IsActiveResponse{Result: active}, nil
}

// invalidPlan logs a plan that must not be served and answers Internal
// without its details.
func (s *Scaler) invalidPlan(t Target, err error) error {
	s.log.Error("refusing to serve an invalid plan", "workload", t.Workload, "tier", t.Tier, "err", err)
	return status.Errorf(codes.Internal, "the plan for workload %q is invalid; see the adapter's log", t.Workload)
}

// StreamIsActive sends the workload's activity when the stream opens (or,
// before the first plan, once it exists: a subscription waits rather than
// sending KEDA into its retry back-off), then again on every new plan of
// the workload, until the client leaves or the server closes. While the
// workload is in preview it sends nothing (KEDA wakes a workload on true),
// and the stream stays open: a reload that ends the preview is sent at once.
func (s *Scaler) StreamIsActive(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamIsActiveServer) error {
	t, err := s.target(ref)
	if err != nil {
		return err
	}
	ctx := stream.Context()
	var last time.Time
	sent := false
	for {
		// Take the channel before reading, so no update between the two is missed.
		changed := s.plans.Changed()
		if p, ok := s.plans.Get(t.Workload); ok && hpa.Preview(p) == nil && (!sent || !p.Time.Equal(last)) {
			active, err := hpa.TierActive(p, t.Tier)
			if err != nil {
				_ = s.invalidPlan(t, err) // logged; nothing is sent for it
			} else if err := stream.Send(&pb.IsActiveResponse{Result: active}); err != nil {
				return err
			}
			last, sent = p.Time, true
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-s.closing:
			return status.Error(codes.Unavailable, "server shutting down")
		}
	}
}

// spec is the one metric spec of a target: AverageValue 1, so the HPA
// runs ceil(value) replicas.
func spec(t Target) *pb.GetMetricSpecResponse {
	return &pb.GetMetricSpecResponse{MetricSpecs: []*pb.MetricSpec{{
		MetricName:      t.MetricName(),
		TargetSizeFloat: 1,
	}}}
}

// GetMetricSpec returns the target's metric with a target of 1 per replica.
// It needs no plan: the spec never depends on one.
func (s *Scaler) GetMetricSpec(_ context.Context, ref *pb.ScaledObjectRef) (*pb.GetMetricSpecResponse, error) {
	t, err := s.target(ref)
	if err != nil {
		return nil, err
	}
	return spec(t), nil
}

// StreamMetricSpec sends the spec when the stream opens and then holds the
// stream open. The spec is fixed (target 1: the plan travels in the metric
// value, not the target; moving the target would not help with the HPA's
// tolerance either, since usageRatio = value/(target*replicas) is invariant
// to how the two are scaled), so there is never a new spec to push. KEDA
// uses the stream instead of re-polling GetMetricSpec; both agree.
func (s *Scaler) StreamMetricSpec(ref *pb.ScaledObjectRef, stream pb.ExternalScaler_StreamMetricSpecServer) error {
	t, err := s.target(ref)
	if err != nil {
		return err
	}
	if err := stream.Send(spec(t)); err != nil {
		return err
	}
	select {
	case <-stream.Context().Done():
		return stream.Context().Err()
	case <-s.closing:
		return status.Error(codes.Unavailable, "server shutting down")
	}
}

// GetMetrics returns the tier's replica target as the metric value, and
// FailedPrecondition while the workload is in preview.
func (s *Scaler) GetMetrics(_ context.Context, req *pb.GetMetricsRequest) (*pb.GetMetricsResponse, error) {
	t, err := s.target(req.GetScaledObjectRef())
	if err != nil {
		return nil, err
	}
	if n := req.GetMetricName(); n != "" && n != t.MetricName() {
		return nil, status.Errorf(codes.InvalidArgument, "metricName %s is not served for workload %q tier %q: want %q",
			quote(n), t.Workload, t.Tier, t.MetricName())
	}
	p, err := s.plan(t)
	if err != nil {
		return nil, err
	}
	replicas, err := hpa.ServedReplicas(p, t.Tier)
	if err != nil {
		return nil, s.invalidPlan(t, err)
	}
	ref := req.GetScaledObjectRef()
	v := s.comp.Value(hpa.Key{Namespace: ref.GetNamespace(), Name: ref.GetName(), Workload: t.Workload, Tier: t.Tier}, replicas)
	return &pb.GetMetricsResponse{MetricValues: []*pb.MetricValue{{
		MetricName:       t.MetricName(),
		MetricValueFloat: v,
	}}}, nil
}
