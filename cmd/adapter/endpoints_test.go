package main

import (
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/pkg/capacity"
)

// TestEndpointsReleaseListenersOnError: when the web address is taken, the
// endpoints are not built and the gRPC and custom metrics listeners bound
// before it are released (a retry, or another process, can bind them).
func TestEndpointsReleaseListenersOnError(t *testing.T) {
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(servePolicy), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := capacity.OpenPolicyFile(path, nil)
	if err != nil {
		t.Fatal(err)
	}
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
