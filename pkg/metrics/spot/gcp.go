package spot

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

// GCPNotice is how long GCP gives a preempted (spot) VM: 30 s.
const GCPNotice = 30 * time.Second

// GCPSource polls GET /computeMetadata/v1/instance/preempted with
// Metadata-Flavor: Google; it answers TRUE once the VM is being preempted.
// GCP gives no termination time, so it is estimated as first seen + 30 s.
// (The endpoint also supports ?wait_for_change=true for a hanging GET; we
// poll instead, so one code path serves all three providers and a hung
// connection is always a failure.) It reads host maintenance warnings
// (Warner) from instance/maintenance-event — NONE, or
// MIGRATE_ON_HOST_MAINTENANCE / TERMINATE_ON_HOST_MAINTENANCE from 60 s
// before the event (1 h for GPU VMs, which cannot live-migrate and are
// always terminated) — and the capacity type (CapacityTyper) from
// instance/scheduling/preemptible and instance/scheduling/provisioning-model.
//
// It does not read instance/upcoming-maintenance (maintenance scheduled
// days ahead, on some machine types only): its answer is not settled.
// Google's "Monitor and plan for a host maintenance event" shows it as
// "Upcoming maintenance": {"window_start_time": ..., "can_reschedule":
// "true", ...} (not JSON as printed; the API's field is windowStartTime)
// and none as { }, while Google's own agent (sapagent) takes none as HTTP
// 503 {"error": "no notifications have been received yet, ..."} and
// others have seen NONE. A GPU VM still gets its hour's notice from
// maintenance-event.
type GCPSource struct {
	// Endpoint defaults to DefaultEndpoint (metadata.google.internal).
	Endpoint string
	Client   *http.Client

	mu        sync.Mutex // guards the client's default
	firstSeen time.Time  // Poll's alone
}

// Provider implements Source.
func (*GCPSource) Provider() Provider { return GCP }

// get reads one instance/ key: its status and trimmed body. A 200 without
// Metadata-Flavor: Google is no metadata server's answer.
func (g *GCPSource) get(ctx context.Context, key string) (int, string, error) {
	g.mu.Lock()
	if g.Client == nil {
		g.Client = metadataClient()
	}
	c := g.Client
	g.mu.Unlock()
	ep := g.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	resp, body, err := metadataDo(ctx, c, http.MethodGet, strings.TrimSuffix(ep, "/")+"/computeMetadata/v1/instance/"+key,
		map[string]string{"Metadata-Flavor": "Google"})
	if err != nil {
		return 0, "", err
	}
	if resp.StatusCode == http.StatusOK && resp.Header.Get("Metadata-Flavor") != "Google" {
		return 0, "", &pollError{"parse", fmt.Errorf("instance/%s: answer lacks Metadata-Flavor: Google", key)}
	}
	return resp.StatusCode, strings.TrimSpace(string(body)), nil
}

// Poll implements Source.
func (g *GCPSource) Poll(ctx context.Context, now time.Time) (Notice, error) {
	status, v, err := g.get(ctx, "preempted")
	if err != nil {
		return Notice{}, err
	}
	if status != http.StatusOK {
		return Notice{}, &pollError{"status", fmt.Errorf("instance/preempted: HTTP %d", status)}
	}
	switch v {
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

// Warnings implements Warner: the host maintenance event. A value other
// than NONE and the two known ones (a newer kind of event) is a
// maintenance warning of unknown kind, WarnMaintenance; an empty one, or
// one that is no single upper-case word, is an error.
func (g *GCPSource) Warnings(ctx context.Context, _ time.Time) ([]Warning, error) {
	status, v, err := g.get(ctx, "maintenance-event")
	if err != nil {
		return nil, err
	}
	if status != http.StatusOK {
		return nil, &pollError{"status", fmt.Errorf("instance/maintenance-event: HTTP %d", status)}
	}
	switch {
	case v == "NONE":
		return nil, nil
	case v == "TERMINATE_ON_HOST_MAINTENANCE":
		return []Warning{{Kind: WarnMaintenanceTerminate, Said: v}}, nil
	case v == "MIGRATE_ON_HOST_MAINTENANCE":
		return []Warning{{Kind: WarnMaintenanceMigrate, Said: v}}, nil
	case isWord(v):
		return []Warning{{Kind: WarnMaintenance, Said: v}}, nil
	}
	return nil, &pollError{"parse", fmt.Errorf("instance/maintenance-event: unexpected %q", truncate(v))}
}

// isWord reports whether s is a metadata enum word: A-Z and _, like
// TERMINATE_ON_HOST_MAINTENANCE.
func isWord(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if (r < 'A' || r > 'Z') && r != '_' {
			return false
		}
	}
	return true
}

// CapacityType implements CapacityTyper. A legacy preemptible VM says
// scheduling/preemptible TRUE (and may say provisioning-model STANDARD), so
// that is read first; then provisioning-model: SPOT or STANDARD (FLEX_START,
// RESERVATION_BOUND and later ones are neither). Without a
// provisioning-model key (404), preemptible FALSE means on-demand.
func (g *GCPSource) CapacityType(ctx context.Context, _ time.Time) (CapacityType, string, error) {
	status, pre, err := g.get(ctx, "scheduling/preemptible")
	switch {
	case err != nil:
		return "", "", err
	case status == http.StatusNotFound:
		pre = ""
	case status != http.StatusOK:
		return "", "", &pollError{"status", fmt.Errorf("instance/scheduling/preemptible: HTTP %d", status)}
	case pre == "TRUE":
		return CapacitySpot, "preemptible " + pre, nil
	}
	status, model, err := g.get(ctx, "scheduling/provisioning-model")
	switch {
	case err != nil:
		return "", "", err
	case status == http.StatusNotFound && pre == "FALSE":
		return CapacityOnDemand, "preemptible " + pre, nil
	case status == http.StatusNotFound:
		return "", pre, nil
	case status != http.StatusOK:
		return "", "", &pollError{"status", fmt.Errorf("instance/scheduling/provisioning-model: HTTP %d", status)}
	case model == "SPOT":
		return CapacitySpot, model, nil
	case model == "STANDARD":
		return CapacityOnDemand, model, nil
	}
	return "", model, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}
