package provider

import (
	"context"
	"errors"
	"fmt"
	"net"

	genericapiserver "k8s.io/apiserver/pkg/server"
	genericoptions "k8s.io/apiserver/pkg/server/options"
	"sigs.k8s.io/custom-metrics-apiserver/pkg/apiserver"
	cmprovider "sigs.k8s.io/custom-metrics-apiserver/pkg/provider"
)

// APIServerConfig configures the aggregated API server that serves
// custom.metrics.k8s.io.
type APIServerConfig struct {
	// Listener is where the server serves HTTPS; the caller binds it.
	Listener net.Listener
	// CertFile and KeyFile are the serving certificate; when both are empty
	// a self-signed one for localhost and 127.0.0.1 is made in memory (the
	// APIService then needs insecureSkipTLSVerify or its caBundle).
	CertFile, KeyFile string
	// Delegated authenticates and authorises each request against the
	// cluster (front-proxy request headers, TokenReview and
	// SubjectAccessReview), as every aggregated API server must in a
	// cluster. When false every request is allowed: for tests and
	// `adapter demo` on 127.0.0.1 only.
	Delegated bool
	// Kubeconfig is used for delegation; empty means in-cluster.
	Kubeconfig string
}

// APIServer is the custom metrics API server around a provider.
type APIServer struct {
	server *apiserver.CustomMetricsAdapterServer
}

// NewAPIServer builds the server with sigs.k8s.io/custom-metrics-apiserver;
// Run starts it.
func NewAPIServer(p cmprovider.CustomMetricsProvider, cfg APIServerConfig) (*APIServer, error) {
	if cfg.Listener == nil {
		return nil, errors.New("provider: a listener is required")
	}
	if (cfg.CertFile == "") != (cfg.KeyFile == "") {
		return nil, errors.New("provider: set both the certificate and the key file, or neither")
	}
	serving := genericoptions.NewSecureServingOptions().WithLoopback()
	serving.Listener = cfg.Listener
	serving.ServerCert.CertKey.CertFile = cfg.CertFile
	serving.ServerCert.CertKey.KeyFile = cfg.KeyFile
	serving.ServerCert.CertDirectory = "" // self-signed stays in memory, never written to the working directory
	if err := serving.MaybeDefaultWithSelfSignedCerts("localhost", nil, []net.IP{net.ParseIP("127.0.0.1")}); err != nil {
		return nil, fmt.Errorf("provider: self-signed certificate: %w", err)
	}
	rc := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	if err := serving.ApplyTo(&rc.SecureServing, &rc.LoopbackClientConfig); err != nil {
		return nil, fmt.Errorf("provider: serving options: %w", err)
	}
	if cfg.Delegated {
		authn := genericoptions.NewDelegatingAuthenticationOptions()
		authn.RemoteKubeConfigFile = cfg.Kubeconfig
		if err := authn.ApplyTo(&rc.Authentication, rc.SecureServing, nil); err != nil {
			return nil, fmt.Errorf("provider: delegated authentication: %w", err)
		}
		authz := genericoptions.NewDelegatingAuthorizationOptions()
		authz.RemoteKubeConfigFile = cfg.Kubeconfig
		if err := authz.ApplyTo(&rc.Authorization); err != nil {
			return nil, fmt.Errorf("provider: delegated authorization: %w", err)
		}
	}
	// The apiserver's own metrics live in a process-global registry; the
	// adapter exports its own on --web.listen-address instead.
	rc.EnableMetrics = false
	c := &apiserver.Config{GenericConfig: &rc.Config}
	s, err := c.Complete(nil).New("infercast-custom-metrics", p, nil)
	if err != nil {
		return nil, fmt.Errorf("provider: %w", err)
	}
	return &APIServer{server: s}, nil
}

// Run serves until ctx ends, then drains in-flight requests.
func (s *APIServer) Run(ctx context.Context) error {
	return s.server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}
