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
// least 30 s notice) that concerns this VM. Events go to every VM of a
// scale set's placement group (an AKS node pool), each naming the VMs it
// affects in Resources, so only those naming this VM count: its name comes
// from the instance metadata (compute/name, e.g. aks-gpu-12345678-vmss_3;
// not the Kubernetes node name, …-vmss000003).
type AzureSource struct {
	// Endpoint defaults to DefaultEndpoint.
	Endpoint string
	// VMName is this VM's name as Resources lists it; empty: read from
	// the instance metadata at the first poll (retried until known).
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
	ep = strings.TrimSuffix(ep, "/")
	if a.VMName == "" {
		// Without its name every VM of the pool would take another's
		// eviction for its own.
		name, err := a.vmName(ctx, ep)
		if err != nil {
			return Notice{}, err
		}
		a.VMName = name
	}
	resp, body, err := metadataDo(ctx, a.Client, http.MethodGet, ep+"/metadata/scheduledevents?api-version=2020-07-01",
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
		if !slices.Contains(ev.Resources, a.VMName) {
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

// vmName reads this VM's name from the instance metadata.
func (a *AzureSource) vmName(ctx context.Context, ep string) (string, error) {
	resp, body, err := metadataDo(ctx, a.Client, http.MethodGet, ep+"/metadata/instance/compute/name?api-version=2021-02-01&format=text",
		map[string]string{"Metadata": "true"})
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", &pollError{"status", fmt.Errorf("instance compute/name: HTTP %d", resp.StatusCode)}
	}
	name := strings.TrimSpace(string(body))
	if name == "" || strings.ContainsAny(name, " \n{") {
		return "", &pollError{"parse", fmt.Errorf("instance compute/name: %q is not a VM name", truncate(name))}
	}
	return name, nil
}
