package spot

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// AzureSource polls Azure Scheduled Events,
// GET /metadata/scheduledevents?api-version=2020-07-01 with Metadata: true,
// and reports the first event of EventType "Preempt" (Spot eviction, at
// least 30 s notice) that concerns this VM. Events go to every VM of a
// scale set's placement group (an AKS node pool), each naming the VMs it
// affects in Resources, so only those naming this VM count: its name comes
// from the instance metadata (compute/name, e.g. aks-gpu-12345678-vmss_3;
// not the Kubernetes node name, …-vmss000003). The same document's other
// events of this VM — Reboot, Redeploy, Freeze, Terminate — are its
// disruption warnings (Warner); compute/priority (Spot, Low, Regular) is
// its capacity type (CapacityTyper).
type AzureSource struct {
	// Endpoint defaults to DefaultEndpoint.
	Endpoint string
	// VMName is this VM's name as Resources lists it; empty: read from
	// the instance metadata at the first poll (retried until known).
	VMName string
	Client *http.Client

	mu sync.Mutex // guards VMName and the client's default

	// fetch joins the notice's and the warnings' reads of the events
	// document, which the Watcher starts together on each tick, into one
	// request: Azure throttles its metadata service per VM, and the two
	// then read the same document.
	fetch singleflight.Group
}

// Provider implements Source.
func (*AzureSource) Provider() Provider { return Azure }

type azureEvents struct {
	DocumentIncarnation int          `json:"DocumentIncarnation"`
	Events              []azureEvent `json:"Events"`
}

type azureEvent struct {
	EventID      string   `json:"EventId"`
	EventType    string   `json:"EventType"`
	ResourceType string   `json:"ResourceType"`
	Resources    []string `json:"Resources"`
	EventStatus  string   `json:"EventStatus"`
	NotBefore    string   `json:"NotBefore"`
}

// notBefore is the event's start: NotBefore, RFC 1123 in UTC (e.g. "Mon,
// 19 Sep 2016 18:29:47 GMT"); zero when empty (a Started event has none).
func (ev azureEvent) notBefore() (time.Time, error) {
	if ev.NotBefore == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC1123, ev.NotBefore)
	if err != nil {
		return time.Time{}, &pollError{"parse", fmt.Errorf("scheduledevents: NotBefore %q: %w", truncate(ev.NotBefore), err)}
	}
	return t, nil
}

// setup returns the client, the endpoint and this VM's name, reading the
// name from the instance metadata until known.
func (a *AzureSource) setup(ctx context.Context) (*http.Client, string, string, error) {
	a.mu.Lock()
	if a.Client == nil {
		a.Client = metadataClient()
	}
	c, vm := a.Client, a.VMName
	a.mu.Unlock()
	ep := a.Endpoint
	if ep == "" {
		ep = DefaultEndpoint
	}
	ep = strings.TrimSuffix(ep, "/")
	if vm == "" {
		// Without its name every VM of the pool would take another's
		// eviction for its own.
		name, err := vmName(ctx, c, ep)
		if err != nil {
			return nil, "", "", err
		}
		a.mu.Lock()
		a.VMName, vm = name, name
		a.mu.Unlock()
	}
	return c, ep, vm, nil
}

// events returns the scheduled events that name this VM.
func (a *AzureSource) events(ctx context.Context) ([]azureEvent, error) {
	evs, err, _ := a.fetch.Do("scheduledevents", func() (any, error) { return a.readEvents(ctx) })
	if err != nil {
		return nil, err
	}
	return evs.([]azureEvent), nil
}

// readEvents reads the events document once.
func (a *AzureSource) readEvents(ctx context.Context) ([]azureEvent, error) {
	c, ep, vm, err := a.setup(ctx)
	if err != nil {
		return nil, err
	}
	resp, body, err := metadataDo(ctx, c, http.MethodGet, ep+"/metadata/scheduledevents?api-version=2020-07-01",
		map[string]string{"Metadata": "true"})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, &pollError{"status", fmt.Errorf("scheduledevents: HTTP %d", resp.StatusCode)}
	}
	var doc azureEvents
	if err := json.Unmarshal(body, &doc); err != nil {
		return nil, &pollError{"parse", fmt.Errorf("scheduledevents: %w", err)}
	}
	var mine []azureEvent
	for _, ev := range doc.Events {
		if slices.Contains(ev.Resources, vm) {
			mine = append(mine, ev)
		}
	}
	return mine, nil
}

// Poll implements Source.
func (a *AzureSource) Poll(ctx context.Context, _ time.Time) (Notice, error) {
	evs, err := a.events(ctx)
	if err != nil {
		return Notice{}, err
	}
	for _, ev := range evs {
		if ev.EventType != "Preempt" {
			continue
		}
		t, err := ev.notBefore()
		if err != nil {
			return Notice{}, err
		}
		return Notice{Active: true, Terminates: t, Action: "Preempt", ID: ev.EventID}, nil
	}
	return Notice{}, nil
}

// azureKinds are the warning kinds of the event types other than Preempt.
var azureKinds = map[string]string{"Reboot": WarnReboot, "Redeploy": WarnRedeploy, "Freeze": WarnFreeze, "Terminate": WarnTerminate}

// Warnings implements Warner: this VM's events other than Preempt (the
// notice), Scheduled (with NotBefore) or Started; a type this version does
// not know is WarnOther.
func (a *AzureSource) Warnings(ctx context.Context, _ time.Time) ([]Warning, error) {
	evs, err := a.events(ctx)
	if err != nil {
		return nil, err
	}
	var ws []Warning
	for _, ev := range evs {
		if ev.EventType == "Preempt" {
			continue
		}
		kind, ok := azureKinds[ev.EventType]
		if !ok {
			kind = WarnOther
		}
		t, err := ev.notBefore()
		if err != nil {
			return nil, err
		}
		ws = append(ws, Warning{Kind: kind, Starts: t, Said: ev.EventType + " " + ev.EventStatus})
	}
	return ws, nil
}

// CapacityType implements CapacityTyper: compute/priority, Spot or Low
// (low-priority scale sets, Spot's predecessor, evicted alike) or Regular.
func (a *AzureSource) CapacityType(ctx context.Context, _ time.Time) (CapacityType, string, error) {
	c, ep, _, err := a.setup(ctx)
	if err != nil {
		return "", "", err
	}
	resp, body, err := metadataDo(ctx, c, http.MethodGet, ep+"/metadata/instance/compute/priority?api-version=2021-02-01&format=text",
		map[string]string{"Metadata": "true"})
	if err != nil {
		return "", "", err
	}
	if found, err := optional(resp, "instance compute/priority"); !found {
		return "", "", err
	}
	said := strings.TrimSpace(string(body))
	switch said {
	case "Spot", "Low":
		return CapacitySpot, said, nil
	case "Regular":
		return CapacityOnDemand, said, nil
	}
	return "", said, nil
}

// vmName reads this VM's name from the instance metadata.
func vmName(ctx context.Context, c *http.Client, ep string) (string, error) {
	resp, body, err := metadataDo(ctx, c, http.MethodGet, ep+"/metadata/instance/compute/name?api-version=2021-02-01&format=text",
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
