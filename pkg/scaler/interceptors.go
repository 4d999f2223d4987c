package scaler

import (
	"context"
	"log/slog"
	"path"
	"runtime/debug"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// serverMetrics are the gRPC server's own metrics, on an injected registry.
type serverMetrics struct {
	requests *prometheus.CounterVec
	duration *prometheus.HistogramVec
	streams  *prometheus.GaugeVec
	panics   *prometheus.CounterVec
}

// scalerMethods are pre-initialised so that dashboards and alerts see a
// zero, not an absent series, before the first call.
var scalerMethods = []string{"IsActive", "StreamIsActive", "GetMetricSpec", "GetMetrics", "StreamMetricSpec"}

func newServerMetrics(reg prometheus.Registerer) (*serverMetrics, error) {
	m := &serverMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_scaler_requests_total",
			Help: "gRPC calls handled by the KEDA external scaler, by method and status code (streams count when they end).",
		}, []string{"method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "infercast_scaler_request_duration_seconds",
			Help:    "Latency of unary gRPC calls to the KEDA external scaler.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, 1},
		}, []string{"method"}),
		streams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "infercast_scaler_streams_open",
			Help: "gRPC streams currently open on the KEDA external scaler, by method.",
		}, []string{"method"}),
		panics: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "infercast_scaler_panics_total",
			Help: "Panics recovered in gRPC handlers of the KEDA external scaler, by method.",
		}, []string{"method"}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.streams, m.panics} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, meth := range scalerMethods {
		m.requests.WithLabelValues(meth, codes.OK.String())
		m.panics.WithLabelValues(meth)
	}
	return m, nil
}

// methodName is the last element of a full gRPC method name
// ("/externalscaler.ExternalScaler/GetMetrics" → "GetMetrics").
func methodName(full string) string { return path.Base(full) }

func (m *serverMetrics) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	start := time.Now()
	resp, err := h(ctx, req)
	meth := methodName(info.FullMethod)
	m.duration.WithLabelValues(meth).Observe(time.Since(start).Seconds())
	m.requests.WithLabelValues(meth, status.Code(err).String()).Inc()
	return resp, err
}

func (m *serverMetrics) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	meth := methodName(info.FullMethod)
	g := m.streams.WithLabelValues(meth)
	g.Inc()
	err := h(srv, ss)
	g.Dec()
	m.requests.WithLabelValues(meth, status.Code(err).String()).Inc()
	return err
}

// recovery turns a handler panic into codes.Internal with a generic
// message; the panic and its stack go to the log, never to the client.
type recovery struct {
	log     *slog.Logger
	metrics *serverMetrics
}

func (r recovery) recovered(method string, p any, err *error) {
	r.log.Error("panic in gRPC handler", "method", method, "panic", p, "stack", string(debug.Stack()))
	r.metrics.panics.WithLabelValues(methodName(method)).Inc()
	*err = status.Error(codes.Internal, "internal error")
}

func (r recovery) unary(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (resp any, err error) {
	defer func() {
		if p := recover(); p != nil {
			resp = nil
			r.recovered(info.FullMethod, p, &err)
		}
	}()
	return h(ctx, req)
}

func (r recovery) stream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) (err error) {
	defer func() {
		if p := recover(); p != nil {
			r.recovered(info.FullMethod, p, &err)
		}
	}()
	return h(srv, ss)
}
