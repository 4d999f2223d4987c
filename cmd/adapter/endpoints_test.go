package main

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	externalscaler "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/scaler/hpa"
)

// TestEndpointsReleaseListenersOnError: when the web address is taken, the
// endpoints are not built and the gRPC and custom metrics listeners bound
// before it are released (a retry, or another process, can bind them).
func TestEndpointsReleaseListenersOnError(t *testing.T) {
	pol := servePolicyFile(t)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	free := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	grpcAddr, cmAddr := free(), free()
	_, err = newAdapterEndpoints(capacity.NewCache(), pol, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), endpointsConfig{
		grpcAddr: grpcAddr, cmAddr: cmAddr, webAddr: taken.Addr().String(),
	})
	if err == nil || !strings.Contains(err.Error(), "web") {
		t.Fatalf("err %v; want the web address in use", err)
	}
	for _, addr := range []string{grpcAddr, cmAddr} {
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("%s still bound after the failed build: %v", addr, err)
		}
		l.Close()
	}
}

// TestEndpointsCompensateFromDeploymentReplicas: with the Deployments'
// replicas known (--kubernetes.pods), the value KEDA gets follows what the
// HPA runs instead of a belief — the same plan of 21 is reported as 22.001
// at 20 replicas (to clear the 10 % tolerance), 20.699 at 23 (to land on
// 21) and 21 at 21.
func TestEndpointsCompensateFromDeploymentReplicas(t *testing.T) {
	pol := servePolicyFile(t)
	var running atomic.Int64
	cache := capacity.NewCache()
	ep, err := newAdapterEndpoints(cache, pol, prometheus.NewRegistry(), slog.New(slog.DiscardHandler), endpointsConfig{
		grpcAddr: "127.0.0.1:0", webAddr: "127.0.0.1:0",
		replicas: func(workload, tier string) (int, bool) {
			if workload != "chat" || tier != capacity.TierOnDemand {
				return 0, false
			}
			return int(running.Load()), true
		},
		downscaleWindow: hpa.DefaultDownscaleWindow,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer ep.closeListeners()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	defer ep.start(ctx, slog.New(slog.DiscardHandler))()
	conn, err := grpc.NewClient(ep.grpcL.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := externalscaler.NewExternalScalerClient(conn)
	cache.Set(capacity.Plan{Workload: "chat", Active: true, Time: time.Now(), Tiers: map[string]capacity.TierTarget{
		capacity.TierOnDemand: {Replicas: 21}, capacity.TierSpot: {Replicas: 0}}})
	for _, tc := range []struct {
		running int64
		want    float64
	}{{20, 22.001}, {23, 20.699}, {21, 21}} {
		running.Store(tc.running)
		r, err := client.GetMetrics(ctx, &externalscaler.GetMetricsRequest{ScaledObjectRef: &externalscaler.ScaledObjectRef{
			Name: "chat-on-demand", Namespace: "models", ScalerMetadata: map[string]string{"workload": "chat", "tier": "on-demand"}},
			MetricName: "infercast-chat-on-demand"})
		if err != nil {
			t.Fatal(err)
		}
		if got := r.MetricValues[0].MetricValueFloat; got != tc.want {
			t.Errorf("plan 21 with %d running: value %v, want %v", tc.running, got, tc.want)
		}
	}
}

// servePolicyFile opens servePolicy as a policy file.
func servePolicyFile(t *testing.T) *capacity.PolicyFile {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := capacity.OpenPolicyFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return pol
}
