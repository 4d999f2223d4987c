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
// {"action":"terminate|stop|hibernate","time":"<RFC 3339>"}. With the same
// token it reads the disruption warnings (Warner): the rebalance
// recommendation, /latest/meta-data/events/recommendations/rebalance, 404
// until issued, then {"noticeTime":"<RFC 3339>"}; and the scheduled
// maintenance events, /latest/meta-data/events/maintenance/scheduled, a
// JSON list (see awsEvent). And the capacity type (CapacityTyper),
// /latest/meta-data/instance-life-cycle: spot, on-demand or scheduled.
type AWSSource struct {
	// Endpoint defaults to DefaultEndpoint.
	Endpoint string
	// TokenTTL is the session token's lifetime (default 6 h).
	TokenTTL time.Duration
	Client   *http.Client

	// mu guards the client's default and the token, never a request: the
	// notice, warning and capacity reads run concurrently, and one that
	// hangs must not hold up the others.
	mu      sync.Mutex
	token   string
	expires time.Time
}

// Provider implements Source.
func (*AWSSource) Provider() Provider { return AWS }

func (a *AWSSource) client() *http.Client {
	a.mu.Lock()
	defer a.mu.Unlock()
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
	a.mu.Lock()
	tok, expires := a.token, a.expires
	a.mu.Unlock()
	if tok != "" && now.Before(expires) {
		return tok, nil
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
	tok = strings.TrimSpace(string(body))
	if tok == "" {
		return "", &pollError{"parse", fmt.Errorf("IMDSv2 token: empty")}
	}
	// Renew a minute early so a token never expires mid-request. Two
	// concurrent reads may each fetch one: both are valid.
	a.mu.Lock()
	a.token, a.expires = tok, now.Add(ttl-time.Minute)
	a.mu.Unlock()
	return tok, nil
}

// get reads one meta-data path with the session token: the status is the
// caller's to judge but for a 401, on which a new token is fetched and the
// request retried once.
func (a *AWSSource) get(ctx context.Context, now time.Time, path string) (*http.Response, []byte, error) {
	for attempt := 0; ; attempt++ {
		tok, err := a.getToken(ctx, now)
		if err != nil {
			return nil, nil, err
		}
		resp, body, err := metadataDo(ctx, a.client(), http.MethodGet, a.endpoint()+"/latest/meta-data/"+path,
			map[string]string{"X-aws-ec2-metadata-token": tok})
		if err != nil {
			return nil, nil, err
		}
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 {
			// Expired or revoked: fetch a new one once.
			a.mu.Lock()
			if a.token == tok {
				a.token = ""
			}
			a.mu.Unlock()
			continue
		}
		return resp, body, nil
	}
}

// Poll implements Source.
func (a *AWSSource) Poll(ctx context.Context, now time.Time) (Notice, error) {
	resp, body, err := a.get(ctx, now, "spot/instance-action")
	if err != nil {
		return Notice{}, err
	}
	if found, err := optional(resp, "spot/instance-action"); !found {
		return Notice{}, err
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

// Warnings implements Warner: the rebalance recommendation and the
// scheduled events, read concurrently so that one endpoint hanging leaves
// the other its time. When only one fails, what the other says is returned
// with a *partialError keeping the failed one's kinds: a broken scheduled
// events answer must not hide a rebalance recommendation, nor the reverse.
func (a *AWSSource) Warnings(ctx context.Context, now time.Time) ([]Warning, error) {
	var (
		wg                  sync.WaitGroup
		rebalance, events   []Warning
		rebalErr, eventsErr error
	)
	wg.Go(func() { rebalance, rebalErr = a.rebalance(ctx, now) })
	wg.Go(func() { events, eventsErr = a.scheduledEvents(ctx, now) })
	wg.Wait()
	switch {
	case rebalErr != nil && eventsErr != nil:
		return nil, fmt.Errorf("%w; %w", rebalErr, eventsErr)
	case rebalErr != nil:
		return events, &partialError{keep: []string{WarnRebalance}, err: rebalErr}
	case eventsErr != nil:
		return rebalance, &partialError{keep: awsEventKindList, err: eventsErr}
	}
	return append(rebalance, events...), nil
}

// rebalance reads the rebalance recommendation. Its noticeTime (when it
// was issued) is checked, not kept: it gives no start.
func (a *AWSSource) rebalance(ctx context.Context, now time.Time) ([]Warning, error) {
	const path = "events/recommendations/rebalance"
	resp, body, err := a.get(ctx, now, path)
	if err != nil {
		return nil, err
	}
	if found, err := optional(resp, path); !found {
		return nil, err
	}
	var rb struct {
		NoticeTime string `json:"noticeTime"`
	}
	if err := json.Unmarshal(body, &rb); err != nil {
		return nil, &pollError{"parse", fmt.Errorf("%s: %w", path, err)}
	}
	if _, err := time.Parse(time.RFC3339, rb.NoticeTime); err != nil {
		return nil, &pollError{"parse", fmt.Errorf("%s: noticeTime %q", path, truncate(rb.NoticeTime))}
	}
	return []Warning{{Kind: WarnRebalance, Said: "rebalance recommendation of " + rb.NoticeTime}}, nil
}

// awsEvent is one scheduled event as the instance metadata lists it (EC2
// User Guide, "View scheduled events", instance metadata; the fields of
// the API's InstanceStatusEvent), e.g.
//
//	{"NotBefore": "21 Jan 2019 09:00:43 GMT", "Code": "system-reboot",
//	 "Description": "scheduled reboot", "EventId": "instance-event-0d59937288b749b32",
//	 "NotAfter": "21 Jan 2019 09:17:23 GMT", "State": "active"}
//
// State is active, or completed or canceled (listed for a while after).
type awsEvent struct {
	NotBefore   string `json:"NotBefore"`
	Code        string `json:"Code"`
	Description string `json:"Description"`
	EventID     string `json:"EventId"`
	NotAfter    string `json:"NotAfter"`
	State       string `json:"State"`
}

// awsEventTime is the layout of NotBefore and NotAfter (as
// aws-node-termination-handler parses them): day of month without a
// leading zero, always GMT.
const awsEventTime = "2 Jan 2006 15:04:05 GMT"

// awsEventKinds are the warning kinds of the scheduled events' codes;
// another code is WarnOther.
var awsEventKinds = map[string]string{
	"instance-reboot":     WarnInstanceReboot,
	"system-reboot":       WarnSystemReboot,
	"system-maintenance":  WarnSystemMaintenance,
	"instance-retirement": WarnInstanceRetirement,
	"instance-stop":       WarnInstanceStop,
}

// awsEventKindList are the kinds scheduledEvents may announce.
var awsEventKindList = []string{WarnInstanceReboot, WarnSystemReboot, WarnSystemMaintenance, WarnInstanceRetirement, WarnInstanceStop, WarnOther}

// scheduledEvents reads the scheduled events: [] (or 404) when none. Those
// completed or canceled are past; every other one is announced, active or
// in a state this version does not know (a missed retirement costs more
// than a spurious warning), with NotBefore as its start (none when empty).
// A body that is no such list, or a NotBefore in another format, is a
// parse error.
func (a *AWSSource) scheduledEvents(ctx context.Context, now time.Time) ([]Warning, error) {
	const path = "events/maintenance/scheduled"
	resp, body, err := a.get(ctx, now, path)
	if err != nil {
		return nil, err
	}
	if found, err := optional(resp, path); !found {
		return nil, err
	}
	var evs []awsEvent
	if err := json.Unmarshal(body, &evs); err != nil {
		return nil, &pollError{"parse", fmt.Errorf("%s: %w", path, err)}
	}
	var ws []Warning
	for _, ev := range evs {
		switch ev.State {
		case "completed", "canceled", "cancelled":
			continue
		}
		kind, ok := awsEventKinds[ev.Code]
		if !ok {
			kind = WarnOther
		}
		var starts time.Time
		if ev.NotBefore != "" {
			if starts, err = time.Parse(awsEventTime, ev.NotBefore); err != nil {
				return nil, &pollError{"parse", fmt.Errorf("%s: NotBefore %q of %s", path, truncate(ev.NotBefore), truncate(ev.EventID))}
			}
		}
		ws = append(ws, Warning{Kind: kind, Starts: starts, Said: ev.Code + " " + ev.State + " " + ev.EventID})
	}
	return ws, nil
}

// CapacityType implements CapacityTyper: instance-life-cycle, spot or
// on-demand (scheduled, the retired Scheduled Instances, is neither).
func (a *AWSSource) CapacityType(ctx context.Context, now time.Time) (CapacityType, string, error) {
	const path = "instance-life-cycle"
	resp, body, err := a.get(ctx, now, path)
	if err != nil {
		return "", "", err
	}
	if found, err := optional(resp, path); !found {
		return "", "", err
	}
	said := strings.TrimSpace(string(body))
	switch said {
	case "spot":
		return CapacitySpot, said, nil
	case "on-demand":
		return CapacityOnDemand, said, nil
	}
	return "", said, nil
}
