package spot

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// GCPNotice is how long GCP gives a preempted (spot) VM: 30 s.
const GCPNotice = 30 * time.Second

// GCPSource polls GET /computeMetadata/v1/instance/preempted with
// Metadata-Flavor: Google; it answers TRUE once the VM is being preempted.
// GCP gives no termination time, so it is estimated as first seen + 30 s.
// (The endpoint also supports ?wait_for_change=true for a hanging GET; we
// poll instead, so one code path serves all three providers and a hung
// connection is always a failure.)
type GCPSource struct {
	// Endpoint defaults to DefaultEndpoint (metadata.google.internal).
	Endpoint string
	Client   *http.Client

	firstSeen time.Time
}

// Provider implements Source.
func (*GCPSource) Provider() Provider { return GCP }

// Poll implements Source.
func (g *GCPSource) Poll(ctx context.Context, now time.Time) (Notice, error) {
	ep := g.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	if g.Client == nil {
		g.Client = metadataClient()
	}
	resp, body, err := metadataDo(ctx, g.Client, http.MethodGet, strings.TrimSuffix(ep, "/")+"/computeMetadata/v1/instance/preempted",
		map[string]string{"Metadata-Flavor": "Google"})
	if err != nil {
		return Notice{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Notice{}, &pollError{"status", fmt.Errorf("instance/preempted: HTTP %d", resp.StatusCode)}
	}
	if resp.Header.Get("Metadata-Flavor") != "Google" {
		return Notice{}, &pollError{"parse", fmt.Errorf("instance/preempted: answer lacks Metadata-Flavor: Google")}
	}
	switch v := strings.TrimSpace(string(body)); v {
	case "FALSE":
		g.firstSeen = time.Time{}
		return Notice{}, nil
	case "TRUE":
		if g.firstSeen.IsZero() {
			g.firstSeen = now
		}
		return Notice{Active: true, Terminates: g.firstSeen.Add(GCPNotice), Action: "preempted",
			ID: "preempted@" + g.firstSeen.UTC().Format(time.RFC3339)}, nil
	default:
		return Notice{}, &pollError{"parse", fmt.Errorf("instance/preempted: unexpected %q", truncate(v))}
	}
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
