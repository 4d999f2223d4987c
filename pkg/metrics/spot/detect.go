package spot

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// ParseProvider reads a provider name from config: aws, gcp, azure, none.
func ParseProvider(s string) (Provider, error) {
	switch p := Provider(strings.ToLower(strings.TrimSpace(s))); p {
	case AWS, GCP, Azure, None:
		return p, nil
	}
	return "", fmt.Errorf("spot: unknown provider %q (want aws, gcp, azure or none)", s)
}

// ProviderFromID reads the provider from a node's spec.providerID
// (aws:///us-east-1a/i-..., gce://project/zone/name, azure:///subscriptions/...).
func ProviderFromID(providerID string) Provider {
	switch {
	case strings.HasPrefix(providerID, "aws://"):
		return AWS
	case strings.HasPrefix(providerID, "gce://"):
		return GCP
	case strings.HasPrefix(providerID, "azure://"):
		return Azure
	}
	return None
}

// NewSource returns the Source for a provider at endpoint ("" for the
// real metadata address); nil for None.
func NewSource(p Provider, endpoint string) (Source, error) {
	switch p {
	case AWS:
		return &AWSSource{Endpoint: endpoint}, nil
	case GCP:
		return &GCPSource{Endpoint: endpoint}, nil
	case Azure:
		return &AzureSource{Endpoint: endpoint}, nil
	case None:
		return nil, nil
	}
	return nil, fmt.Errorf("spot: unknown provider %q", p)
}

// Detect asks the metadata service at endpoint which cloud it belongs to,
// each probe bounded by timeout: GCP answers with Metadata-Flavor: Google,
// Azure serves /metadata/instance with Metadata: true, AWS issues an IMDSv2
// token. None when nothing answers (not a cloud VM).
func Detect(ctx context.Context, endpoint string, timeout time.Duration) Provider {
	if endpoint == "" {
		endpoint = DefaultEndpoint
	}
	endpoint = strings.TrimSuffix(endpoint, "/")
	client := metadataClient()
	probe := func(method, path string, hdr map[string]string, ok func(*http.Response) bool) bool {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, endpoint+path, nil)
		if err != nil {
			return false
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		_, _ = readBody(resp.Body)
		return resp.StatusCode == http.StatusOK && ok(resp)
	}
	anyOK := func(*http.Response) bool { return true }
	switch {
	case probe(http.MethodGet, "/computeMetadata/v1/", map[string]string{"Metadata-Flavor": "Google"},
		func(r *http.Response) bool { return r.Header.Get("Metadata-Flavor") == "Google" }):
		return GCP
	case probe(http.MethodGet, "/metadata/instance?api-version=2021-02-01", map[string]string{"Metadata": "true"}, anyOK):
		return Azure
	case probe(http.MethodPut, "/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}, anyOK):
		return AWS
	}
	return None
}
