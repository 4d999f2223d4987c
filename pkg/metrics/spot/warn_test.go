package spot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Documents as the providers' docs show them.
const (
	// AWS, "EC2 instance rebalance recommendations", Monitor rebalance
	// recommendation signals → instance metadata: the answer of
	// /latest/meta-data/events/recommendations/rebalance once issued (404
	// before).
	awsRebalance = `{"noticeTime": "2020-10-27T08:22:00Z"}`
	// Azure, "Scheduled Events for Linux VMs", Query for events: the
	// example response (a memory-preserving live migration of WestNO_0 and
	// WestNO_1).
	azureFreeze = `{
    "DocumentIncarnation":  IncarnationID,
    "Events":  [
        {
            "EventId":  "C7061BAC-AFDC-4513-B24B-AA5F13A16123",
            "EventStatus":  "Scheduled",
            "EventType":  "Freeze",
            "ResourceType":  "VirtualMachine",
            "Resources":  [
                "WestNO_0",
                "WestNO_1"
            ],
            "NotBefore":  "Mon, 11 Apr 2022 22:26:58 GMT",
            "Description":  "Virtual machine is being paused because of a memory-preserving Live Migration operation.",
            "EventSource":  "Platform",
            "DurationInSeconds":  5
        }
    ]
}`
)

// AWS, EC2 User Guide, "Scheduled events for your instances", View
// scheduled events, instance metadata: the answer of
// /latest/meta-data/events/maintenance/scheduled with an active system
// reboot (the same as aws-node-termination-handler's ec2metadata.go shows).
const awsScheduled = `[
  {
    "NotBefore" : "21 Jan 2019 09:00:43 GMT",
    "Code" : "system-reboot",
    "Description" : "scheduled reboot",
    "EventId" : "instance-event-0d59937288b749b32",
    "NotAfter" : "21 Jan 2019 09:17:23 GMT",
    "State" : "active"
  }
]`

// awsHistory: the same guide, To view event history: the canceled system
// reboot of its events/maintenance/history example, and a completed one
// like it (a scheduled event is listed as such for a while after).
const awsHistory = `[
  {
    "NotBefore" : "21 Jan 2019 09:00:43 GMT",
    "Code" : "system-reboot",
    "Description" : "[Canceled] scheduled reboot",
    "EventId" : "instance-event-0d59937288b749b32",
    "NotAfter" : "21 Jan 2019 09:17:23 GMT",
    "State" : "canceled"
  },
  {
    "NotBefore" : "29 Jan 2019 09:00:43 GMT",
    "Code" : "system-reboot",
    "Description" : "[Completed] scheduled reboot",
    "EventId" : "instance-event-0b8be5bbc8a5a7a32",
    "NotAfter" : "29 Jan 2019 09:17:23 GMT",
    "State" : "completed"
  }
]`

// awsEventsOf is a scheduled events answer of the given events, each
// "Code State NotBefore" (NotBefore may be empty).
func awsEventsOf(events ...[3]string) string {
	var b strings.Builder
	b.WriteString("[")
	for i, ev := range events {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"NotBefore": %q, "Code": %q, "Description": "", "EventId": "instance-event-%d", "NotAfter": "", "State": %q}`,
			ev[2], ev[0], i, ev[1])
	}
	b.WriteString("]")
	return b.String()
}

// azureDoc is azureFreeze with a number for the docs' IncarnationID
// placeholder (the docs' document is not JSON as printed).
var azureDoc = strings.Replace(azureFreeze, "IncarnationID", "2", 1)

// azureEventsOf is a scheduled events document of the given events of
// WestNO_0, each "Type Status NotBefore" (NotBefore may be empty).
func azureEventsOf(events ...[3]string) string {
	var b strings.Builder
	b.WriteString(`{"DocumentIncarnation": 5, "Events": [`)
	for i, ev := range events {
		if i > 0 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, `{"EventId": "E%d", "EventType": %q, "ResourceType": "VirtualMachine", "Resources": ["WestNO_0"], "EventStatus": %q, "NotBefore": %q, "Description": "", "EventSource": "Platform", "DurationInSeconds": -1}`,
			i, ev[0], ev[1], ev[2])
	}
	b.WriteString("]}")
	return b.String()
}

func say(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

// awsMeta is an IMDSv2 fake: token "tok" required; each meta-data path
// (after /latest/meta-data/) is answered by its handler, others are 404.
func awsMeta(paths map[string]http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut && r.URL.Path == "/latest/api/token" {
			fmt.Fprint(w, "tok")
			return
		}
		if r.Header.Get("X-aws-ec2-metadata-token") != "tok" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if h, ok := paths[strings.TrimPrefix(r.URL.Path, "/latest/meta-data/")]; ok && r.Method == http.MethodGet {
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}
}

// gcpMeta is a GCP metadata fake: requests must carry Metadata-Flavor:
// Google, answers do; each instance/ key is answered by its handler,
// others are 404.
func gcpMeta(keys map[string]http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Metadata-Flavor") != "Google" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		w.Header().Set("Metadata-Flavor", "Google")
		if h, ok := keys[strings.TrimPrefix(r.URL.Path, "/computeMetadata/v1/instance/")]; ok {
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}
}

// foreign answers like something that is no GCP metadata server.
func foreign(body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Del("Metadata-Flavor")
		fmt.Fprint(w, body)
	}
}

// azureMeta is an Azure IMDS fake: the VM's name, its scheduled events and
// its compute/priority (nil handlers: 404).
func azureMeta(name string, events, priority http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		switch {
		case r.Header.Get("Metadata") != "true":
			w.WriteHeader(http.StatusBadRequest)
		case r.URL.Path == "/metadata/instance/compute/name" && q.Get("format") == "text":
			fmt.Fprint(w, name)
		case r.URL.Path == "/metadata/instance/compute/priority" && q.Get("format") == "text" && q.Get("api-version") != "" && priority != nil:
			priority(w, r)
		case r.URL.Path == "/metadata/scheduledevents" && q.Get("api-version") == "2020-07-01" && events != nil:
			events(w, r)
		default:
			http.NotFound(w, r)
		}
	}
}

func checkWarnings(t *testing.T, got []Warning, err error, want []Warning, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || classify(err) != wantErr {
			t.Fatalf("err = %v (class %q), want class %q; warnings %v", err, classifyOrEmpty(err), wantErr, got)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(got, want, func(a, b Warning) bool { return a.Kind == b.Kind && a.Starts.Equal(b.Starts) }) {
		t.Fatalf("warnings = %v, want %v", got, want)
	}
}

func pollWarnings(t *testing.T, src Warner) ([]Warning, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	return src.Warnings(ctx, now)
}

func TestAWSWarnings(t *testing.T) {
	paths := func(rebalance, scheduled http.HandlerFunc) http.HandlerFunc {
		m := map[string]http.HandlerFunc{}
		if rebalance != nil {
			m["events/recommendations/rebalance"] = rebalance
		}
		if scheduled != nil {
			m["events/maintenance/scheduled"] = scheduled
		}
		return awsMeta(m)
	}
	rebalance := func(h http.HandlerFunc) http.HandlerFunc { return paths(h, say(200, "[]")) }
	scheduled := func(h http.HandlerFunc) http.HandlerFunc { return paths(nil, h) }
	reboot := time.Date(2019, 1, 21, 9, 0, 43, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		h       http.HandlerFunc
		want    []Warning
		wantErr string
		// keep: the error is a *partialError keeping these kinds, and
		// want is what it comes with.
		keep []string
	}{
		{"none (404)", awsMeta(nil), nil, "", nil},
		{"rebalance", rebalance(say(200, awsRebalance)), []Warning{{Kind: WarnRebalance}}, "", nil},
		{"no noticeTime", rebalance(say(200, `{}`)), nil, "parse", []string{WarnRebalance}},
		{"bad noticeTime", rebalance(say(200, `{"noticeTime": "soon"}`)), nil, "parse", []string{WarnRebalance}},
		{"garbage", rebalance(say(200, `<html>oops`)), nil, "parse", []string{WarnRebalance}},
		{"5xx", rebalance(say(503, "")), nil, "status", []string{WarnRebalance}},
		{"hangs", rebalance(hang), nil, "timeout", []string{WarnRebalance}},

		{"no scheduled event", scheduled(say(200, "[]")), nil, "", nil},
		{"scheduled reboot", scheduled(say(200, awsScheduled)), []Warning{{Kind: WarnSystemReboot, Starts: reboot}}, "", nil},
		{"canceled and completed", scheduled(say(200, awsHistory)), nil, "", nil},
		{"every code", scheduled(say(200, awsEventsOf(
			[3]string{"instance-reboot", "active", "1 Dec 2026 10:00:00 GMT"},
			[3]string{"system-reboot", "active", "2 Dec 2026 10:00:00 GMT"},
			[3]string{"system-maintenance", "active", "3 Dec 2026 10:00:00 GMT"},
			[3]string{"instance-retirement", "active", "04 Dec 2026 10:00:00 GMT"},
			[3]string{"instance-stop", "active", "5 Dec 2026 10:00:00 GMT"},
			[3]string{"instance-stop", "completed", "6 Nov 2026 10:00:00 GMT"},
		))), []Warning{
			{Kind: WarnInstanceReboot, Starts: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)},
			{Kind: WarnSystemReboot, Starts: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)},
			{Kind: WarnSystemMaintenance, Starts: time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)},
			{Kind: WarnInstanceRetirement, Starts: time.Date(2026, 12, 4, 10, 0, 0, 0, time.UTC)},
			{Kind: WarnInstanceStop, Starts: time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)},
		}, "", nil},
		// A code this version does not know is still an event; one of a
		// state it does not know still announced; one without NotBefore
		// has no start.
		{"unknown code", scheduled(say(200, awsEventsOf([3]string{"instance-hibernate", "active", "1 Dec 2026 10:00:00 GMT"}))),
			[]Warning{{Kind: WarnOther, Starts: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}}, "", nil},
		{"unknown state", scheduled(say(200, awsEventsOf([3]string{"instance-stop", "pending", ""}))), []Warning{{Kind: WarnInstanceStop}}, "", nil},
		{"not a list", scheduled(say(200, `{"Code": "system-reboot", "State": "active"}`)), nil, "parse", awsEventKindList},
		{"empty body", scheduled(say(200, "")), nil, "parse", awsEventKindList},
		{"garbage events", scheduled(say(200, `<html>oops`)), nil, "parse", awsEventKindList},
		{"RFC 3339 NotBefore", scheduled(say(200, awsEventsOf([3]string{"system-reboot", "active", "2019-01-21T09:00:43Z"}))), nil, "parse", awsEventKindList},
		{"NotBefore not GMT", scheduled(say(200, awsEventsOf([3]string{"system-reboot", "active", "21 Jan 2019 09:00:43 PST"}))), nil, "parse", awsEventKindList},
		{"events 5xx", scheduled(say(500, "")), nil, "status", awsEventKindList},

		// One endpoint failing does not hide what the other says.
		{"rebalance and a scheduled event", paths(say(200, awsRebalance), say(200, awsScheduled)),
			[]Warning{{Kind: WarnRebalance}, {Kind: WarnSystemReboot, Starts: reboot}}, "", nil},
		{"rebalance, events garbage", paths(say(200, awsRebalance), say(200, `[{"Code":`)), []Warning{{Kind: WarnRebalance}}, "parse", awsEventKindList},
		{"rebalance 5xx, a scheduled event", paths(say(500, ""), say(200, awsScheduled)),
			[]Warning{{Kind: WarnSystemReboot, Starts: reboot}}, "status", []string{WarnRebalance}},
		{"both fail", paths(say(500, ""), say(200, "oops")), nil, "status", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			got, err := pollWarnings(t, &AWSSource{Endpoint: f.URL, Client: client(t)})
			var pe *partialError
			switch isPartial := errors.As(err, &pe); {
			case tc.keep != nil && (!isPartial || !slices.Equal(pe.keep, tc.keep)):
				t.Fatalf("err = %#v, want a partial error keeping %v", err, tc.keep)
			case tc.keep == nil && isPartial:
				t.Fatalf("err = %v, a partial error keeping %v; want none", err, pe.keep)
			case tc.keep != nil:
				checkWarnings(t, got, nil, tc.want, "")
			}
			checkWarnings(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestGCPWarnings(t *testing.T) {
	// "Handle GPU host maintenance events": NONE until a maintenance event
	// is scheduled, then TERMINATE_ON_HOST_MAINTENANCE (GPU VMs, 1 h
	// ahead); "Query metadata server for maintenance event notices":
	// MIGRATE_ON_HOST_MAINTENANCE 60 s before a live migration.
	event := func(h http.HandlerFunc) http.HandlerFunc {
		return gcpMeta(map[string]http.HandlerFunc{"maintenance-event": h})
	}
	for _, tc := range []struct {
		name    string
		h       http.HandlerFunc
		want    []Warning
		wantErr string
	}{
		{"none", event(say(200, "NONE")), nil, ""},
		{"terminate", event(say(200, "TERMINATE_ON_HOST_MAINTENANCE")), []Warning{{Kind: WarnMaintenanceTerminate}}, ""},
		{"migrate", event(say(200, "MIGRATE_ON_HOST_MAINTENANCE\n")), []Warning{{Kind: WarnMaintenanceMigrate}}, ""},
		// A value this version does not know is still a maintenance.
		{"unknown kind", event(say(200, "SHUTDOWN_ON_HOST_MAINTENANCE")), []Warning{{Kind: WarnMaintenance}}, ""},
		{"empty", event(say(200, "")), nil, "parse"},
		{"garbage", event(say(200, "<html>oops")), nil, "parse"},
		{"not google", event(foreign("TERMINATE_ON_HOST_MAINTENANCE")), nil, "parse"},
		{"5xx", event(say(500, "")), nil, "status"},
		{"hangs", event(hang), nil, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			got, err := pollWarnings(t, &GCPSource{Endpoint: f.URL, Client: client(t)})
			checkWarnings(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestAzureWarnings(t *testing.T) {
	freezeAt := time.Date(2022, 4, 11, 22, 26, 58, 0, time.UTC)
	for _, tc := range []struct {
		name    string
		vm      string
		h       http.HandlerFunc
		want    []Warning
		wantErr string
	}{
		{"no events", "", azureMeta("WestNO_0", say(200, `{"DocumentIncarnation": 1, "Events": []}`), nil), nil, ""},
		{"freeze of this vm", "", azureMeta("WestNO_0", say(200, azureDoc), nil), []Warning{{Kind: WarnFreeze, Starts: freezeAt}}, ""},
		{"freeze of this vm, name set", "WestNO_1", azureMeta("", say(200, azureDoc), nil), []Warning{{Kind: WarnFreeze, Starts: freezeAt}}, ""},
		// Another node of the scale set (an AKS pool) is frozen: not this one.
		{"freeze of another vm", "", azureMeta("WestNO_2", say(200, azureDoc), nil), nil, ""},
		// Preempt is the interruption notice's, not a warning.
		{"preempt only", "vm-1", azureMeta("", say(200, azurePreempt), nil), nil, ""},
		{"started reboot", "", azureMeta("WestNO_0", say(200, azureEventsOf([3]string{"Reboot", "Started", ""})), nil),
			[]Warning{{Kind: WarnReboot}}, ""},
		{"every type", "", azureMeta("WestNO_0", say(200, azureEventsOf(
			[3]string{"Redeploy", "Scheduled", "Fri, 27 Nov 2026 12:10:00 GMT"},
			[3]string{"Preempt", "Scheduled", "Fri, 27 Nov 2026 12:00:30 GMT"},
			[3]string{"Terminate", "Scheduled", "Fri, 27 Nov 2026 12:15:00 GMT"},
			[3]string{"Hibernate", "Scheduled", ""})), nil),
			[]Warning{{Kind: WarnRedeploy, Starts: now.Add(10 * time.Minute)}, {Kind: WarnTerminate, Starts: now.Add(15 * time.Minute)}, {Kind: WarnOther}}, ""},
		{"bad NotBefore", "", azureMeta("WestNO_0", say(200, strings.Replace(azureDoc, "Mon, 11 Apr 2022 22:26:58 GMT", "tomorrow", 1)), nil), nil, "parse"},
		{"garbage", "", azureMeta("WestNO_0", say(200, `{"Events": [`), nil), nil, "parse"},
		{"5xx", "", azureMeta("WestNO_0", say(502, ""), nil), nil, "status"},
		{"hangs", "WestNO_0", hang, nil, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			got, err := pollWarnings(t, &AzureSource{Endpoint: f.URL, VMName: tc.vm, Client: client(t)})
			checkWarnings(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestCapacityType(t *testing.T) {
	aws := func(h http.HandlerFunc) http.HandlerFunc {
		return awsMeta(map[string]http.HandlerFunc{"instance-life-cycle": h})
	}
	gcp := func(preemptible, model http.HandlerFunc) http.HandlerFunc {
		keys := map[string]http.HandlerFunc{}
		if preemptible != nil {
			keys["scheduling/preemptible"] = preemptible
		}
		if model != nil {
			keys["scheduling/provisioning-model"] = model
		}
		return gcpMeta(keys)
	}
	azure := func(h http.HandlerFunc) http.HandlerFunc { return azureMeta("vm-1", nil, h) }
	ok := func(s string) http.HandlerFunc { return say(200, s) }
	for _, tc := range []struct {
		name     string
		provider Provider
		h        http.HandlerFunc
		want     CapacityType
		said     string
		wantErr  string
	}{
		// AWS instance-life-cycle: spot, on-demand, scheduled.
		{"aws spot", AWS, aws(ok("spot")), CapacitySpot, "spot", ""},
		{"aws on-demand", AWS, aws(ok("on-demand\n")), CapacityOnDemand, "on-demand", ""},
		{"aws scheduled", AWS, aws(ok("scheduled")), "", "scheduled", ""},
		{"aws absent", AWS, aws(http.NotFound), "", "", ""},
		{"aws 5xx", AWS, aws(say(500, "")), "", "", "status"},
		{"aws hangs", AWS, aws(hang), "", "", "timeout"},
		// GCP scheduling/preemptible (TRUE, FALSE) and provisioning-model
		// (SPOT, STANDARD; FLEX_START and RESERVATION_BOUND are neither).
		{"gcp spot", GCP, gcp(ok("FALSE"), ok("SPOT")), CapacitySpot, "SPOT", ""},
		{"gcp standard", GCP, gcp(ok("FALSE"), ok("STANDARD")), CapacityOnDemand, "STANDARD", ""},
		{"gcp legacy preemptible", GCP, gcp(ok("TRUE"), ok("STANDARD")), CapacitySpot, "preemptible TRUE", ""},
		{"gcp flex-start", GCP, gcp(ok("FALSE"), ok("FLEX_START")), "", "FLEX_START", ""},
		{"gcp no provisioning model", GCP, gcp(ok("FALSE"), nil), CapacityOnDemand, "preemptible FALSE", ""},
		{"gcp neither key", GCP, gcp(nil, nil), "", "", ""},
		{"gcp not google", GCP, gcp(foreign("TRUE"), nil), "", "", "parse"},
		{"gcp 5xx", GCP, gcp(say(500, ""), ok("SPOT")), "", "", "status"},
		// Azure compute/priority: Spot, Low (evicted alike), Regular.
		{"azure spot", Azure, azure(ok("Spot")), CapacitySpot, "Spot", ""},
		{"azure low", Azure, azure(ok("Low")), CapacitySpot, "Low", ""},
		{"azure regular", Azure, azure(ok("Regular")), CapacityOnDemand, "Regular", ""},
		{"azure empty", Azure, azure(ok("")), "", "", ""},
		{"azure unknown", Azure, azure(ok("Premium")), "", "Premium", ""},
		{"azure absent", Azure, azure(nil), "", "", ""},
		{"azure 5xx", Azure, azure(say(500, "")), "", "", "status"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			got, said, err := newSource(t, tc.provider, f.URL).(CapacityTyper).CapacityType(ctx, now)
			if tc.wantErr != "" {
				if err == nil || classify(err) != tc.wantErr {
					t.Fatalf("err = %v (class %q), want class %q", err, classifyOrEmpty(err), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want || said != tc.said {
				t.Errorf("capacity type %q (said %q), want %q (said %q)", got, said, tc.want, tc.said)
			}
		})
	}
}

// newSource is p's source at url with a client closed after the test.
func newSource(t *testing.T, p Provider, url string) Source {
	t.Helper()
	switch p {
	case AWS:
		return &AWSSource{Endpoint: url, Client: client(t)}
	case GCP:
		return &GCPSource{Endpoint: url, Client: client(t)}
	case Azure:
		return &AzureSource{Endpoint: url, Client: client(t)}
	}
	t.Fatalf("no source for %q", p)
	return nil
}

// newWarnWatcher is a watcher of src on node-a in gpu-spot with the test's
// clock, its registry and its log.
func newWarnWatcher(t *testing.T, src Source, timeout time.Duration, clock *time.Time) (*Watcher, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	var logs bytes.Buffer
	w, err := NewWatcher(Options{
		Source: src, Node: "node-a", Pool: "gpu-spot", Timeout: timeout,
		Now:    func() time.Time { return *clock },
		Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(w)
	return w, reg, &logs
}

// expectSeries compares the named families with want, lines of the
// exposition format without HELP and TYPE ({l} stands for the node, pool
// and provider labels).
func expectSeries(t *testing.T, reg *prometheus.Registry, provider string, want string, names ...string) {
	t.Helper()
	help := map[string]string{
		"infercast_instance_disruption_warning":                         "# HELP infercast_instance_disruption_warning 1 while the metadata service announces a disruption of this instance that is not (yet) a spot interruption, else 0, by kind (aws: rebalance, and the scheduled events instance_reboot, system_reboot, system_maintenance, instance_retirement, instance_stop; gcp: maintenance_terminate, maintenance_migrate; azure: reboot, redeploy, freeze, terminate; the catch-alls for a kind this version does not know, maintenance (gcp) and other (aws, azure), only while announced).\n# TYPE infercast_instance_disruption_warning gauge\n",
		"infercast_instance_disruption_warning_start_timestamp_seconds": "# HELP infercast_instance_disruption_warning_start_timestamp_seconds Unix time the announced disruption begins, the earliest of a kind's events; present only while it is announced and the provider says when for each of them (AWS scheduled events and Azure: NotBefore; an Azure event already Started has none).\n# TYPE infercast_instance_disruption_warning_start_timestamp_seconds gauge\n",
		"infercast_instance_capacity_type":                              "# HELP infercast_instance_capacity_type 1 for the capacity type (spot, on-demand) the metadata service says this instance is; absent when it does not say or says something else.\n# TYPE infercast_instance_capacity_type gauge\n",
		"infercast_instance_metadata_errors_total":                      "# HELP infercast_instance_metadata_errors_total Failed reads of the disruption warnings and the capacity type from the metadata service, by endpoint (disruption_warning, capacity_type) and reason (timeout, transport, status, parse).\n# TYPE infercast_instance_metadata_errors_total counter\n",
		"infercast_spot_interruption_notice":                            "# HELP infercast_spot_interruption_notice 1 while the metadata service announces an interruption of this instance, else 0.\n# TYPE infercast_spot_interruption_notice gauge\n",
		"infercast_spot_metadata_up":                                    "# HELP infercast_spot_metadata_up 1 when the last poll of the metadata service succeeded, else 0.\n# TYPE infercast_spot_metadata_up gauge\n",
		"infercast_spot_metadata_errors_total":                          "# HELP infercast_spot_metadata_errors_total Failed polls of the metadata service, by reason (timeout, transport, status, parse).\n# TYPE infercast_spot_metadata_errors_total counter\n",
	}
	l := fmt.Sprintf(`node="node-a",pool="gpu-spot",provider=%q`, provider)
	labels := strings.NewReplacer(",{l}", ","+l, "{l,", "{"+l+",", "{l}", "{"+l+"}")
	var b strings.Builder
	for _, n := range names {
		var lines []string
		for _, line := range strings.Split(strings.TrimSpace(want), "\n") {
			if line = strings.TrimSpace(line); strings.HasPrefix(line, n+"{") {
				lines = append(lines, labels.Replace(line))
			}
		}
		if len(lines) > 0 {
			b.WriteString(help[n] + strings.Join(lines, "\n") + "\n")
		}
	}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(b.String()), names...); err != nil {
		t.Error(err)
	}
}

// errorsLines are infercast_instance_metadata_errors_total's series, 0
// but for the given "endpoint reason" counts.
func errorsLines(counts map[string]int) string {
	var b strings.Builder
	for _, ep := range []string{"capacity_type", "disruption_warning"} {
		for _, r := range []string{"parse", "status", "timeout", "transport"} {
			fmt.Fprintf(&b, "infercast_instance_metadata_errors_total{endpoint=%q,{l},reason=%q} %d\n", ep, r, counts[ep+" "+r])
		}
	}
	return b.String()
}

// awsWarningLines are infercast_instance_disruption_warning's series of
// AWS's known kinds, 0 but for those given.
func awsWarningLines(on ...string) string {
	var b strings.Builder
	for _, k := range []string{"instance_reboot", "instance_retirement", "instance_stop", "rebalance", "system_maintenance", "system_reboot"} {
		fmt.Fprintf(&b, "infercast_instance_disruption_warning{kind=%q,{l}} %d\n", k, b2i(slices.Contains(on, k)))
	}
	return b.String()
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestWatcherWarnings follows an AWS rebalance recommendation: absent,
// issued, the endpoint failing three ways (state kept, failures counted
// apart from the notice's), cleared.
func TestWatcherWarnings(t *testing.T) {
	paths := func(rebalance http.HandlerFunc) http.HandlerFunc {
		return awsMeta(map[string]http.HandlerFunc{"events/recommendations/rebalance": rebalance, "instance-life-cycle": say(200, "spot")})
	}
	f := newFake(t, paths(http.NotFound))
	clock := now
	w, reg, logs := newWarnWatcher(t, &AWSSource{Endpoint: f.URL, Client: client(t)}, 200*time.Millisecond, &clock)
	names := []string{"infercast_instance_disruption_warning", "infercast_instance_metadata_errors_total",
		"infercast_spot_interruption_notice", "infercast_spot_metadata_up", "infercast_spot_metadata_errors_total"}
	spotOK := `
		infercast_spot_interruption_notice{l} 0
		infercast_spot_metadata_up{l} 1
		infercast_spot_metadata_errors_total{l,reason="parse"} 0
		infercast_spot_metadata_errors_total{l,reason="status"} 0
		infercast_spot_metadata_errors_total{l,reason="timeout"} 0
		infercast_spot_metadata_errors_total{l,reason="transport"} 0`
	ctx := t.Context()
	poll := func() {
		t.Helper()
		if err := w.Poll(ctx); err != nil {
			t.Fatalf("the notice's poll failed: %v", err)
		}
	}

	poll()
	none := awsWarningLines()
	expectSeries(t, reg, "aws", spotOK+"\n"+none+errorsLines(nil), names...)

	f.set(paths(say(200, awsRebalance)))
	poll()
	poll()
	rebalance := awsWarningLines("rebalance")
	expectSeries(t, reg, "aws", spotOK+"\n"+rebalance+errorsLines(nil), names...)
	if n := strings.Count(logs.String(), "disruption warning"); n != 1 {
		t.Errorf("%d warning logs for one warning seen twice, want 1:\n%s", n, logs)
	}

	for _, h := range []http.HandlerFunc{say(500, ""), say(500, ""), say(200, `{"noticeTime":`), hang} {
		f.set(paths(h))
		poll()
	}
	failed := errorsLines(map[string]int{"disruption_warning status": 2, "disruption_warning parse": 1, "disruption_warning timeout": 1})
	expectSeries(t, reg, "aws", spotOK+"\n"+rebalance+failed, names...)
	if n := strings.Count(logs.String(), "level=WARN msg=\"spot: reading metadata failed\""); n != 3 {
		t.Errorf("%d failure warnings for three distinct failures, want 3:\n%s", n, logs)
	}

	f.set(paths(http.NotFound))
	poll()
	expectSeries(t, reg, "aws", spotOK+"\n"+none+failed, names...)
	if !strings.Contains(logs.String(), `msg="spot: disruption warning cleared" provider=aws kind=rebalance`) {
		t.Errorf("no log of the cleared warning:\n%s", logs)
	}
	checkDocumented(t, reg)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

// TestWatcherScheduledEvents follows AWS's scheduled events beside the
// rebalance recommendation: none; several at once with a recommendation
// (the earliest start of a kind exported; canceled ones ignored); the
// events answer broken twice (their last state kept, failures counted)
// while the recommendation comes and goes; the recommendation failing
// while the events clear; all cleared.
func TestWatcherScheduledEvents(t *testing.T) {
	paths := func(rebalance, scheduled http.HandlerFunc) http.HandlerFunc {
		return awsMeta(map[string]http.HandlerFunc{"events/recommendations/rebalance": rebalance, "events/maintenance/scheduled": scheduled})
	}
	f := newFake(t, paths(http.NotFound, say(200, "[]")))
	clock := now
	w, reg, logs := newWarnWatcher(t, &AWSSource{Endpoint: f.URL, Client: client(t)}, 200*time.Millisecond, &clock)
	names := []string{"infercast_instance_disruption_warning", "infercast_instance_disruption_warning_start_timestamp_seconds", "infercast_instance_metadata_errors_total"}
	poll := func(rebalance, scheduled http.HandlerFunc) {
		t.Helper()
		f.set(paths(rebalance, scheduled))
		if err := w.Poll(t.Context()); err != nil {
			t.Fatalf("the notice's poll failed: %v", err)
		}
	}
	start := func(kind string, at time.Time) string {
		return fmt.Sprintf("infercast_instance_disruption_warning_start_timestamp_seconds{kind=%q,{l}} %v\n", kind, float64(at.Unix()))
	}
	errs := func(parse, status int) string {
		return errorsLines(map[string]int{"disruption_warning parse": parse, "disruption_warning status": status})
	}

	poll(http.NotFound, say(200, "[]"))
	expectSeries(t, reg, "aws", awsWarningLines()+errs(0, 0), names...)

	events := say(200, awsEventsOf(
		[3]string{"system-reboot", "active", "28 Nov 2026 09:30:00 GMT"},
		[3]string{"instance-retirement", "active", "3 Dec 2026 00:00:00 GMT"},
		[3]string{"system-reboot", "active", "27 Nov 2026 22:00:00 GMT"},
		[3]string{"system-reboot", "canceled", "27 Nov 2026 20:00:00 GMT"},
		[3]string{"instance-hibernate", "active", "29 Nov 2026 12:00:00 GMT"},
	))
	poll(say(200, awsRebalance), events)
	scheduled := awsWarningLines("rebalance", "system_reboot", "instance_retirement") +
		"infercast_instance_disruption_warning{kind=\"other\",{l}} 1\n" +
		start("system_reboot", now.Add(10*time.Hour)) +
		start("instance_retirement", time.Date(2026, 12, 3, 0, 0, 0, 0, time.UTC)) +
		start("other", time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC))
	expectSeries(t, reg, "aws", scheduled+errs(0, 0), names...)
	for _, want := range []string{
		`msg="spot: disruption warning" provider=aws kind=instance_retirement said="instance-retirement active instance-event-1" starts=2026-12-03T00:00:00.000Z`,
		`msg="spot: disruption warning" provider=aws kind=other said="instance-hibernate active instance-event-4"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log %s:\n%s", want, logs)
		}
	}

	// The events answer broken: theirs kept, the recommendation cleared.
	poll(http.NotFound, say(200, `[{"Code": "system-reboot", "State": "active", "NotBefore": `))
	kept := strings.Replace(scheduled, `kind="rebalance",{l}} 1`, `kind="rebalance",{l}} 0`, 1)
	expectSeries(t, reg, "aws", kept+errs(1, 0), names...)
	poll(say(200, awsRebalance), say(200, awsEventsOf([3]string{"system-reboot", "active", "2026-11-27T22:00:00Z"})))
	expectSeries(t, reg, "aws", scheduled+errs(2, 0), names...)
	if !strings.Contains(logs.String(), `err="parse: events/maintenance/scheduled: NotBefore \"2026-11-27T22:00:00Z\" of instance-event-0"`) {
		t.Errorf("no log of the bad NotBefore:\n%s", logs)
	}

	// The recommendation failing: kept; the events cleared.
	poll(say(503, ""), say(200, "[]"))
	expectSeries(t, reg, "aws", awsWarningLines("rebalance")+errs(2, 1), names...)

	poll(http.NotFound, say(200, "[]"))
	expectSeries(t, reg, "aws", awsWarningLines()+errs(2, 1), names...)
	for _, kind := range []string{"rebalance", "system_reboot", "instance_retirement", "other"} {
		if !strings.Contains(logs.String(), `msg="spot: disruption warning cleared" provider=aws kind=`+kind) {
			t.Errorf("no log of %s cleared:\n%s", kind, logs)
		}
	}
	checkDocumented(t, reg)
}

// TestWatcherWarningStart: Azure's NotBefore is exported as the start, the
// earliest of a kind's events; a Started event has none, and then neither
// has its kind, whatever its other events say.
func TestWatcherWarningStart(t *testing.T) {
	f := newFake(t, azureMeta("WestNO_0", say(200, azureDoc), say(200, "Spot")))
	clock := now
	w, reg, _ := newWarnWatcher(t, &AzureSource{Endpoint: f.URL, Client: client(t)}, 200*time.Millisecond, &clock)
	names := []string{"infercast_instance_disruption_warning", "infercast_instance_disruption_warning_start_timestamp_seconds", "infercast_spot_interruption_notice"}
	if err := w.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	expectSeries(t, reg, "azure", `
		infercast_instance_disruption_warning{kind="freeze",{l}} 1
		infercast_instance_disruption_warning{kind="reboot",{l}} 0
		infercast_instance_disruption_warning{kind="redeploy",{l}} 0
		infercast_instance_disruption_warning{kind="terminate",{l}} 0
		infercast_instance_disruption_warning_start_timestamp_seconds{kind="freeze",{l}} 1.649716018e+09
		infercast_spot_interruption_notice{l} 0`, names...)

	f.set(azureMeta("WestNO_0", say(200, azureEventsOf(
		[3]string{"Reboot", "Scheduled", "Fri, 27 Nov 2026 12:40:00 GMT"},
		[3]string{"Reboot", "Started", ""}, // under way: the kind's start is unknown, maybe now
		[3]string{"Redeploy", "Scheduled", "Fri, 27 Nov 2026 12:20:00 GMT"},
		[3]string{"Redeploy", "Scheduled", "Fri, 27 Nov 2026 12:10:00 GMT"},
		[3]string{"Redeploy", "Scheduled", "Fri, 27 Nov 2026 12:30:00 GMT"},
		[3]string{"Preempt", "Scheduled", "Fri, 27 Nov 2026 12:00:30 GMT"})), nil))
	if err := w.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	expectSeries(t, reg, "azure", fmt.Sprintf(`
		infercast_instance_disruption_warning{kind="freeze",{l}} 0
		infercast_instance_disruption_warning{kind="reboot",{l}} 1
		infercast_instance_disruption_warning{kind="redeploy",{l}} 1
		infercast_instance_disruption_warning{kind="terminate",{l}} 0
		infercast_instance_disruption_warning_start_timestamp_seconds{kind="redeploy",{l}} %v
		infercast_spot_interruption_notice{l} 1`, float64(now.Add(10*time.Minute).Unix())), names...)
}

// TestWarningEndpointDoesNotDelayNotice: the warning and capacity
// endpoints hang while the interruption endpoint answers at once; the
// notice is exported well before their timeout.
func TestWarningEndpointDoesNotDelayNotice(t *testing.T) {
	for _, tc := range []struct {
		provider Provider
		h        http.HandlerFunc
	}{
		{AWS, awsMeta(map[string]http.HandlerFunc{
			"spot/instance-action":             say(200, `{"action": "terminate", "time": "2026-11-27T12:02:00Z"}`),
			"events/recommendations/rebalance": hang, "events/maintenance/scheduled": hang, "instance-life-cycle": hang})},
		{GCP, gcpMeta(map[string]http.HandlerFunc{
			"preempted": say(200, "TRUE"), "maintenance-event": hang, "scheduling/preemptible": hang})},
	} {
		t.Run(string(tc.provider), func(t *testing.T) {
			f := newFake(t, tc.h)
			clock := now
			const timeout = 2 * time.Second
			w, reg, _ := newWarnWatcher(t, newSource(t, tc.provider, f.URL), timeout, &clock)
			start := time.Now()
			done := make(chan error, 1)
			go func() { done <- w.Poll(t.Context()) }()
			for {
				if v, _ := gauge(reg, "infercast_spot_interruption_notice"); v == 1 {
					break
				}
				if time.Since(start) > timeout/2 {
					t.Fatalf("no notice %v after the poll began: the hanging warning endpoint held it up", time.Since(start))
				}
				time.Sleep(5 * time.Millisecond)
			}
			if err := <-done; err != nil {
				t.Errorf("the notice's poll failed: %v", err)
			}
			if took := time.Since(start); took > timeout+time.Second {
				t.Errorf("the poll took %v, want about its %v timeout", took, timeout)
			}
			expectSeries(t, reg, string(tc.provider), errorsLines(map[string]int{"disruption_warning timeout": 1, "capacity_type timeout": 1}),
				"infercast_instance_metadata_errors_total")
		})
	}
}

// gauge is the value of a family's only series.
func gauge(g prometheus.Gatherer, name string) (float64, bool) {
	mfs, err := g.Gather()
	if err != nil {
		return 0, false
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue(), true
		}
	}
	return 0, false
}

// TestWatcherCapacityType: read at the first poll, retried at every poll
// after a failure, refreshed after CapacityRefresh keeping the last known
// type while that fails; a value it does not know exports nothing.
func TestWatcherCapacityType(t *testing.T) {
	var reads atomic.Int32
	f := newFake(t, http.NotFound)
	lifeCycle := func(h http.HandlerFunc) {
		f.set(awsMeta(map[string]http.HandlerFunc{"instance-life-cycle": func(w http.ResponseWriter, r *http.Request) {
			reads.Add(1)
			h(w, r)
		}}))
	}
	clock := now
	w, reg, _ := newWarnWatcher(t, &AWSSource{Endpoint: f.URL, Client: client(t)}, 200*time.Millisecond, &clock)
	names := []string{"infercast_instance_capacity_type", "infercast_instance_metadata_errors_total"}
	poll := func(wantReads int32) {
		t.Helper()
		if err := w.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if n := reads.Load(); n != wantReads {
			t.Errorf("%d reads of instance-life-cycle, want %d", n, wantReads)
		}
	}

	lifeCycle(say(500, ""))
	poll(1)
	expectSeries(t, reg, "aws", errorsLines(map[string]int{"capacity_type status": 1}), names...)

	lifeCycle(say(200, "spot"))
	poll(2)
	clock = clock.Add(59 * time.Minute)
	poll(2)
	spot := "infercast_instance_capacity_type{capacity_type=\"spot\",{l}} 1\n"
	expectSeries(t, reg, "aws", spot+errorsLines(map[string]int{"capacity_type status": 1}), names...)

	lifeCycle(say(503, ""))
	clock = clock.Add(time.Minute)
	poll(3)
	poll(4)
	expectSeries(t, reg, "aws", spot+errorsLines(map[string]int{"capacity_type status": 3}), names...)

	lifeCycle(say(200, "scheduled"))
	poll(5)
	poll(5)
	expectSeries(t, reg, "aws", errorsLines(map[string]int{"capacity_type status": 3}), names...)
}

// TestWatcherWarningKinds: a provider's kinds read 0 until announced; the
// catch-all for a kind this version does not know only while announced.
func TestWatcherWarningKinds(t *testing.T) {
	event := func(v string) http.HandlerFunc {
		return gcpMeta(map[string]http.HandlerFunc{"preempted": say(200, "FALSE"), "maintenance-event": say(200, v)})
	}
	f := newFake(t, event("NONE"))
	clock := now
	w, reg, logs := newWarnWatcher(t, &GCPSource{Endpoint: f.URL, Client: client(t)}, 200*time.Millisecond, &clock)
	for _, tc := range []struct{ event, want string }{
		{"NONE", `
			infercast_instance_disruption_warning{kind="maintenance_migrate",{l}} 0
			infercast_instance_disruption_warning{kind="maintenance_terminate",{l}} 0`},
		{"TERMINATE_ON_HOST_MAINTENANCE", `
			infercast_instance_disruption_warning{kind="maintenance_migrate",{l}} 0
			infercast_instance_disruption_warning{kind="maintenance_terminate",{l}} 1`},
		{"SHUTDOWN_ON_HOST_MAINTENANCE", `
			infercast_instance_disruption_warning{kind="maintenance",{l}} 1
			infercast_instance_disruption_warning{kind="maintenance_migrate",{l}} 0
			infercast_instance_disruption_warning{kind="maintenance_terminate",{l}} 0`},
		{"NONE", `
			infercast_instance_disruption_warning{kind="maintenance_migrate",{l}} 0
			infercast_instance_disruption_warning{kind="maintenance_terminate",{l}} 0`},
	} {
		f.set(event(tc.event))
		if err := w.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		expectSeries(t, reg, "gcp", tc.want, "infercast_instance_disruption_warning")
	}
	for _, want := range []string{
		`msg="spot: disruption warning" provider=gcp kind=maintenance_terminate said=TERMINATE_ON_HOST_MAINTENANCE`,
		`msg="spot: disruption warning" provider=gcp kind=maintenance said=SHUTDOWN_ON_HOST_MAINTENANCE`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log %s:\n%s", want, logs)
		}
	}
}

// partialSource is a Source of provider "test" whose warning reads the test
// sets: what was read and the error.
type partialSource struct {
	mu  sync.Mutex
	ws  []Warning
	err error
}

func (*partialSource) Provider() Provider                              { return "test" }
func (*partialSource) Poll(context.Context, time.Time) (Notice, error) { return Notice{}, nil }

func (s *partialSource) Warnings(context.Context, time.Time) ([]Warning, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.ws), s.err
}

func (s *partialSource) set(err error, ws ...Warning) {
	s.mu.Lock()
	s.ws, s.err = ws, err
	s.mu.Unlock()
}

// TestWatcherPartialWarnings: a read of which one endpoint failed replaces
// the kinds the others announce and keeps the failed one's last state
// (never reviving a kind that was not announced); a read that failed
// outright keeps them all. Each failure is counted.
func TestWatcherPartialWarnings(t *testing.T) {
	src := &partialSource{}
	clock := now
	w, reg, logs := newWarnWatcher(t, src, 200*time.Millisecond, &clock)
	a, b := Warning{Kind: "a", Said: "A"}, Warning{Kind: "b", Said: "B", Starts: now.Add(time.Hour)}
	bLines := fmt.Sprintf(`
		infercast_instance_disruption_warning{kind="b",{l}} 1
		infercast_instance_disruption_warning_start_timestamp_seconds{kind="b",{l}} %v`, float64(now.Add(time.Hour).Unix()))
	both := `infercast_instance_disruption_warning{kind="a",{l}} 1` + bLines
	errLines := func(parse, status, transport int) string {
		return fmt.Sprintf(`
			infercast_instance_metadata_errors_total{endpoint="disruption_warning",{l},reason="parse"} %d
			infercast_instance_metadata_errors_total{endpoint="disruption_warning",{l},reason="status"} %d
			infercast_instance_metadata_errors_total{endpoint="disruption_warning",{l},reason="timeout"} 0
			infercast_instance_metadata_errors_total{endpoint="disruption_warning",{l},reason="transport"} %d`, parse, status, transport)
	}
	names := []string{"infercast_instance_disruption_warning", "infercast_instance_disruption_warning_start_timestamp_seconds", "infercast_instance_metadata_errors_total"}
	for i, step := range []struct {
		err  error
		read []Warning
		want string
	}{
		{nil, []Warning{a, b}, both + errLines(0, 0, 0)},
		// b's endpoint failed, a's says none: a cleared, b kept.
		{&partialError{keep: []string{"b"}, err: &pollError{"status", errors.New("b: HTTP 500")}}, nil, bLines + errLines(0, 1, 0)},
		// a's endpoint failed, b's says none: b cleared, a not revived.
		{&partialError{keep: []string{"a"}, err: &pollError{"parse", errors.New("a: garbage")}}, nil, errLines(1, 1, 0)},
		{nil, []Warning{b, a}, both + errLines(1, 1, 0)},
		// Both failed: what came with the error is not taken, all kept.
		{errors.New("connection refused"), nil, both + errLines(1, 1, 1)},
		{nil, nil, errLines(1, 1, 1)},
	} {
		src.set(step.err, step.read...)
		if err := w.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		t.Logf("step %d", i)
		expectSeries(t, reg, "test", step.want, names...)
	}
	for _, want := range []string{
		`msg="spot: disruption warning cleared" provider=test kind=a`,
		`msg="spot: reading metadata failed" provider=test endpoint=disruption_warning reason=status err="status: b: HTTP 500"`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no log %s:\n%s", want, logs)
		}
	}
}

// The Watcher reads the notice and the warnings at once on each tick; on
// Azure both come from the one events document, which is read once for
// both (Azure throttles its metadata service per VM). The document is
// answered slowly, so the second read starts while the first is in
// flight, as it does on a tick.
func TestAzureReadsTheEventsOncePerTick(t *testing.T) {
	var reads atomic.Int32
	events := func(w http.ResponseWriter, r *http.Request) {
		reads.Add(1)
		time.Sleep(300 * time.Millisecond)
		fmt.Fprint(w, azureDoc)
	}
	f := newFake(t, azureMeta("", events, nil))
	clock := now
	w, reg, _ := newWarnWatcher(t, &AzureSource{Endpoint: f.URL, VMName: "WestNO_0", Client: client(t)}, 5*time.Second, &clock)
	if err := w.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("the events document was read %d times in one tick, want once", n)
	}
	expectSeries(t, reg, "azure", `
		infercast_instance_disruption_warning{kind="freeze",{l}} 1
		infercast_instance_disruption_warning{kind="reboot",{l}} 0
		infercast_instance_disruption_warning{kind="redeploy",{l}} 0
		infercast_instance_disruption_warning{kind="terminate",{l}} 0
		infercast_spot_interruption_notice{l} 0`,
		"infercast_instance_disruption_warning", "infercast_spot_interruption_notice")
	// The next tick reads it again.
	if err := w.Poll(t.Context()); err != nil {
		t.Fatal(err)
	}
	if n := reads.Load(); n != 2 {
		t.Errorf("after two ticks the document was read %d times, want twice", n)
	}
}
