package spot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// DefaultEndpoint is the link-local address of the AWS, GCP and Azure
// instance metadata services.
const DefaultEndpoint = "http://169.254.169.254"

// AWSSource polls IMDSv2: PUT /latest/api/token for a session token, then
// GET /latest/meta-data/spot/instance-action, which answers 404 until a
// notice exists (two minutes before the interruption) and then
// {"action":"terminate|stop|hibernate","time":"<RFC 3339>"}.
type AWSSource struct {
	// Endpoint defaults to DefaultEndpoint.
	Endpoint string
	// TokenTTL is the session token's lifetime (default 6 h).
	TokenTTL time.Duration
	Client   *http.Client

	mu      sync.Mutex
	token   string
	expires time.Time
}

// Provider implements Source.
func (*AWSSource) Provider() Provider { return AWS }

func (a *AWSSource) client() *http.Client {
	if a.Client == nil {
		a.Client = metadataClient()
	}
	return a.Client
}

func (a *AWSSource) endpoint() string {
	if a.Endpoint == "" {
		return DefaultEndpoint
	}
	return strings.TrimSuffix(a.Endpoint, "/")
}

func (a *AWSSource) getToken(ctx context.Context, now time.Time) (string, error) {
	if a.token != "" && now.Before(a.expires) {
		return a.token, nil
	}
	ttl := a.TokenTTL
	if ttl <= 0 {
		ttl = 6 * time.Hour
	}
	resp, body, err := metadataDo(ctx, a.client(), http.MethodPut, a.endpoint()+"/latest/api/token",
		map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": fmt.Sprint(int(ttl.Seconds()))})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &pollError{"status", fmt.Errorf("IMDSv2 token: HTTP %d", resp.StatusCode)}
	}
	tok := strings.TrimSpace(string(body))
	if tok == "" {
		return "", &pollError{"parse", fmt.Errorf("IMDSv2 token: empty")}
	}
	// Renew a minute early so a token never expires mid-request.
	a.token, a.expires = tok, now.Add(ttl-time.Minute)
	return tok, nil
}

// Poll implements Source.
func (a *AWSSource) Poll(ctx context.Context, now time.Time) (Notice, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for attempt := 0; ; attempt++ {
		tok, err := a.getToken(ctx, now)
		if err != nil {
			return Notice{}, err
		}
		resp, body, err := metadataDo(ctx, a.client(), http.MethodGet, a.endpoint()+"/latest/meta-data/spot/instance-action",
			map[string]string{"X-aws-ec2-metadata-token": tok})
		if err != nil {
			return Notice{}, err
		}
		switch {
		case resp.StatusCode == http.StatusNotFound:
			return Notice{}, nil
		case resp.StatusCode == http.StatusUnauthorized && attempt == 0:
			a.token = "" // expired or revoked: fetch a new one once
			continue
		case resp.StatusCode != http.StatusOK:
			return Notice{}, &pollError{"status", fmt.Errorf("spot/instance-action: HTTP %d", resp.StatusCode)}
		}
		var ia struct {
			Action string `json:"action"`
			Time   string `json:"time"`
		}
		if err := json.Unmarshal(body, &ia); err != nil {
			return Notice{}, &pollError{"parse", fmt.Errorf("spot/instance-action: %w", err)}
		}
		t, err := time.Parse(time.RFC3339, ia.Time)
		if err != nil || ia.Action == "" {
			return Notice{}, &pollError{"parse", fmt.Errorf("spot/instance-action: action %q time %q", ia.Action, ia.Time)}
		}
		return Notice{Active: true, Terminates: t, Action: ia.Action, ID: ia.Action + "@" + ia.Time}, nil
	}
}
