package scaler

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"
)

// ServiceName is the gRPC service KEDA calls; the health service reports
// it (and "", the whole server).
const ServiceName = "externalscaler.ExternalScaler"

// ServerConfig configures the gRPC server around a Scaler.
type ServerConfig struct {
	TLS TLSFiles // zero: plaintext
	// Reflection enables gRPC server reflection (for grpcurl and ghz
	// without the proto file). Off by default: it lists the services.
	Reflection bool
	Registerer prometheus.Registerer // required: the server's own metrics
	Logger     *slog.Logger
}

// Server is the KEDA external scaler gRPC server: the Scaler, the health
// service, and the metrics and panic-recovery interceptors.
type Server struct {
	scaler *Scaler
	grpc   *grpc.Server
	health *health.Server
}

// NewServer builds the gRPC server; Serve starts it.
func NewServer(s *Scaler, cfg ServerConfig) (*Server, error) {
	if s == nil {
		return nil, errors.New("scaler: nil Scaler")
	}
	if cfg.Registerer == nil {
		return nil, errors.New("scaler: a metrics Registerer is required")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m, err := newServerMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	rec := recovery{log: log, metrics: m}
	opts := []grpc.ServerOption{
		// metrics outermost, so they count the Internal of a recovered panic.
		grpc.ChainUnaryInterceptor(m.unary, rec.unary),
		grpc.ChainStreamInterceptor(m.stream, rec.stream),
		// KEDA holds streams open for hours; let idle clients ping.
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
	}
	if cfg.TLS.Enabled() {
		tc, err := cfg.TLS.ServerConfig(log)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(tc)))
	}
	g := grpc.NewServer(opts...)
	pb.RegisterExternalScalerServer(g, s)
	h := health.NewServer()
	h.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	h.SetServingStatus(ServiceName, healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(g, h)
	if cfg.Reflection {
		reflection.Register(g)
	}
	return &Server{scaler: s, grpc: g, health: h}, nil
}

// Serve serves on l until Shutdown; it returns nil after a Shutdown.
func (s *Server) Serve(l net.Listener) error {
	err := s.grpc.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Shutdown reports NOT_SERVING, ends the streams, and waits for unary calls
// to finish until ctx ends, then closes every connection.
func (s *Server) Shutdown(ctx context.Context) {
	s.health.Shutdown()
	s.scaler.Close()
	done := make(chan struct{})
	go func() {
		s.grpc.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.grpc.Stop()
		<-done
	}
}
