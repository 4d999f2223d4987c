package spot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// AzureSource polls Azure Scheduled Events,
// GET /metadata/scheduledevents?api-version=2020-07-01 with Metadata: true,
// and reports the first event of EventType "Preempt" (Spot eviction, at
// least 30 s notice) that concerns this VM.
type AzureSource struct {
	// Endpoint defaults to DefaultEndpoint.
	Endpoint string
	// VMName, when set, keeps only events whose Resources name this VM;
	// events list every VM of an availability set or scale set.
	VMName string
	Client *http.Client
}

// Provider implements Source.
func (*AzureSource) Provider() Provider { return Azure }

type azureEvents struct {
	DocumentIncarnation int `json:"DocumentIncarnation"`
	Events              []struct {
		EventID      string   `json:"EventId"`
		EventType    string   `json:"EventType"`
		ResourceType string   `json:"ResourceType"`
		Resources    []string `json:"Resources"`
		EventStatus  string   `json:"EventStatus"`
		NotBefore    string   `json:"NotBefore"`
	} `json:"Events"`
}

// Poll implements Source.
func (a *AzureSource) Poll(ctx context.Context, _ time.Time) (Notice, error) {
	ep := a.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	if a.Client == nil {
		a.Client = metadataClient()
	}
	resp, body, err := metadataDo(ctx, a.Client, http.MethodGet, strings.TrimSuffix(ep, "/")+"/metadata/scheduledevents?api-version=2020-07-01",
		map[string]string{"Metadata": "true"})
	if err != nil {
		return Notice{}, err
	}
	if resp.StatusCode != http.StatusOK {
		return Notice{}, &pollError{"status", fmt.Errorf("scheduledevents: HTTP %d", resp.StatusCode)}
	}
	var doc azureEvents
	if err := json.Unmarshal(body, &doc); err != nil {
		return Notice{}, &pollError{"parse", fmt.Errorf("scheduledevents: %w", err)}
	}
	for _, ev := range doc.Events {
		if ev.EventType != "Preempt" {
			continue
		}
		if a.VMName != "" && !slices.Contains(ev.Resources, a.VMName) {
			continue
		}
		n := Notice{Active: true, Action: "Preempt", ID: ev.EventID}
		if ev.NotBefore != "" {
			// NotBefore is RFC 1123 in UTC, e.g. "Mon, 19 Sep 2016 18:29:47 GMT".
			t, err := time.Parse(time.RFC1123, ev.NotBefore)
			if err != nil {
				return Notice{}, &pollError{"parse", fmt.Errorf("scheduledevents: NotBefore %q: %w", truncate(ev.NotBefore), err)}
			}
			n.Terminates = t
		}
		return n, nil
	}
	return Notice{}, nil
}
