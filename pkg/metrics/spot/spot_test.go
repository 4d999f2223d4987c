package spot

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

// fake is a metadata server on 127.0.0.1 whose answers a test sets.
type fake struct {
	*httptest.Server
	mu      sync.Mutex
	handler http.HandlerFunc
	puts    atomic.Int32
	gets    atomic.Int32
}

func newFake(t *testing.T, h http.HandlerFunc) *fake {
	t.Helper()
	f := &fake{handler: h}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			f.puts.Add(1)
		} else {
			f.gets.Add(1)
		}
		f.mu.Lock()
		h := f.handler
		f.mu.Unlock()
		h(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fake) set(h http.HandlerFunc) {
	f.mu.Lock()
	f.handler = h
	f.mu.Unlock()
}

func client(t *testing.T) *http.Client {
	c := metadataClient()
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func hang(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }

// imds is an IMDSv2 fake: tokens are required, instance-action answers
// with status and body.
func imds(token string, status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			if r.Header.Get("X-aws-ec2-metadata-token-ttl-seconds") == "" {
				http.Error(w, "missing ttl", http.StatusBadRequest)
				return
			}
			fmt.Fprint(w, token)
		case r.Method == http.MethodGet && r.URL.Path == "/latest/meta-data/spot/instance-action":
			if r.Header.Get("X-aws-ec2-metadata-token") != token {
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
			w.WriteHeader(status)
			fmt.Fprint(w, body)
		default:
			http.NotFound(w, r)
		}
	}
}

func TestAWS(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       http.HandlerFunc
		want    Notice
		wantErr string
	}{
		{"no notice", imds("tok", 404, "Not Found"), Notice{}, ""},
		{"terminate", imds("tok", 200, `{"action": "terminate", "time": "2026-11-27T12:02:00Z"}`),
			Notice{Active: true, Terminates: now.Add(2 * time.Minute), Action: "terminate", ID: "terminate@2026-11-27T12:02:00Z"}, ""},
		{"stop", imds("tok", 200, `{"action":"stop","time":"2026-11-27T12:01:30Z"}`),
			Notice{Active: true, Terminates: now.Add(90 * time.Second), Action: "stop", ID: "stop@2026-11-27T12:01:30Z"}, ""},
		{"garbage", imds("tok", 200, `<html>oops`), Notice{}, "parse"},
		{"bad time", imds("tok", 200, `{"action":"terminate","time":"soon"}`), Notice{}, "parse"},
		{"5xx", imds("tok", 503, ""), Notice{}, "status"},
		{"token refused", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusForbidden) }, Notice{}, "status"},
		{"huge body", imds("tok", 200, strings.Repeat("x", maxBody+10)), Notice{}, "parse"},
		{"hangs", hang, Notice{}, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			src := &AWSSource{Endpoint: f.URL, Client: client(t)}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			got, err := src.Poll(ctx, now)
			checkPoll(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func checkPoll(t *testing.T, got Notice, err error, want Notice, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || classify(err) != wantErr {
			t.Fatalf("err = %v (class %q), want class %q", err, classifyOrEmpty(err), wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if !got.Terminates.Equal(want.Terminates) || got.Active != want.Active || got.Action != want.Action || got.ID != want.ID {
		t.Fatalf("notice = %+v, want %+v", got, want)
	}
}

func classifyOrEmpty(err error) string {
	if err == nil {
		return ""
	}
	return classify(err)
}

func TestAWSTokenReuseAndRefresh(t *testing.T) {
	f := newFake(t, imds("one", 404, ""))
	src := &AWSSource{Endpoint: f.URL, Client: client(t), TokenTTL: 10 * time.Minute}
	for range 3 {
		if _, err := src.Poll(t.Context(), now); err != nil {
			t.Fatal(err)
		}
	}
	if n := f.puts.Load(); n != 1 {
		t.Errorf("%d token requests for 3 polls, want 1", n)
	}
	// The service rotates its tokens: the old one gets 401, the source
	// fetches a new one and retries once.
	f.set(imds("two", 404, ""))
	if _, err := src.Poll(t.Context(), now); err != nil {
		t.Fatal(err)
	}
	if n := f.puts.Load(); n != 2 {
		t.Errorf("%d token requests after rotation, want 2", n)
	}
	// Past the TTL a new token is fetched before the request.
	if _, err := src.Poll(t.Context(), now.Add(10*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if n := f.puts.Load(); n != 3 {
		t.Errorf("%d token requests after expiry, want 3", n)
	}
}

func gcp(status int, flavor bool, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/computeMetadata/v1/instance/preempted" || r.Header.Get("Metadata-Flavor") != "Google" {
			w.WriteHeader(http.StatusForbidden)
			return
		}
		if flavor {
			w.Header().Set("Metadata-Flavor", "Google")
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

func TestGCP(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       http.HandlerFunc
		want    Notice
		wantErr string
	}{
		{"running", gcp(200, true, "FALSE"), Notice{}, ""},
		{"preempted", gcp(200, true, "TRUE"), Notice{Active: true, Terminates: now.Add(30 * time.Second), Action: "preempted", ID: "preempted@2026-11-27T12:00:00Z"}, ""},
		{"not google", gcp(200, false, "TRUE"), Notice{}, "parse"},
		{"garbage", gcp(200, true, "\x00\x01maybe"), Notice{}, "parse"},
		{"5xx", gcp(500, true, ""), Notice{}, "status"},
		{"hangs", hang, Notice{}, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			src := &GCPSource{Endpoint: f.URL, Client: client(t)}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			got, err := src.Poll(ctx, now)
			checkPoll(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestGCPTerminationFromFirstSighting(t *testing.T) {
	f := newFake(t, gcp(200, true, "TRUE"))
	src := &GCPSource{Endpoint: f.URL, Client: client(t)}
	a, _ := src.Poll(t.Context(), now)
	b, _ := src.Poll(t.Context(), now.Add(10*time.Second))
	if !b.Terminates.Equal(a.Terminates) || a.ID != b.ID {
		t.Errorf("later poll moved the termination: %v then %v", a, b)
	}
}

func azure(status int, body string) http.HandlerFunc {
	return azureVM("vm-1", 200, status, body)
}

// azureVM serves the instance's name (compute/name, with nameStatus) and
// the scheduled events.
func azureVM(name string, nameStatus, status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metadata/instance/compute/name" && r.URL.Query().Get("format") == "text" && r.Header.Get("Metadata") == "true" {
			w.WriteHeader(nameStatus)
			fmt.Fprint(w, name)
			return
		}
		if r.URL.Path != "/metadata/scheduledevents" || r.URL.Query().Get("api-version") != "2020-07-01" || r.Header.Get("Metadata") != "true" {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		w.WriteHeader(status)
		fmt.Fprint(w, body)
	}
}

const azurePreempt = `{"DocumentIncarnation": 3, "Events": [
 {"EventId": "A123BC45-1234-5678-AB90-ABCDEF123456", "EventType": "Freeze", "ResourceType": "VirtualMachine",
  "Resources": ["vm-0"], "EventStatus": "Scheduled", "NotBefore": "Fri, 27 Nov 2026 12:10:00 GMT"},
 {"EventId": "F9E8D7C6-1234-5678-AB90-ABCDEF123456", "EventType": "Preempt", "ResourceType": "VirtualMachine",
  "Resources": ["vm-1"], "EventStatus": "Scheduled", "NotBefore": "Fri, 27 Nov 2026 12:00:30 GMT",
  "Description": "", "EventSource": "Platform", "DurationInSeconds": -1}]}`

func TestAzure(t *testing.T) {
	preempt := Notice{Active: true, Terminates: now.Add(30 * time.Second), Action: "Preempt", ID: "F9E8D7C6-1234-5678-AB90-ABCDEF123456"}
	for _, tc := range []struct {
		name    string
		vm      string
		h       http.HandlerFunc
		want    Notice
		wantErr string
	}{
		{"no events", "", azure(200, `{"DocumentIncarnation": 1, "Events": []}`), Notice{}, ""},
		{"preempt", "", azure(200, azurePreempt), preempt, ""},
		{"preempt of this vm", "vm-1", azure(200, azurePreempt), preempt, ""},
		{"preempt of another vm", "vm-0", azure(200, azurePreempt), Notice{}, ""},
		// The name from the instance metadata: another node's eviction in
		// the same scale set (an AKS pool) is not this node's.
		{"another vm, name from metadata", "", azureVM("vm-0", 200, 200, azurePreempt), Notice{}, ""},
		{"name unreadable", "", azureVM("", 404, 200, azurePreempt), Notice{}, "status"},
		{"freeze only", "", azure(200, strings.Replace(azurePreempt, `"Preempt"`, `"Reboot"`, 1)), Notice{}, ""},
		{"bad NotBefore", "", azure(200, strings.Replace(azurePreempt, "Fri, 27 Nov 2026 12:00:30 GMT", "tomorrow", 1)), Notice{}, "parse"},
		{"garbage", "", azure(200, `{"Events": [`), Notice{}, "parse"},
		{"5xx", "", azure(502, ""), Notice{}, "status"},
		{"hangs", "", hang, Notice{}, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			src := &AzureSource{Endpoint: f.URL, VMName: tc.vm, Client: client(t)}
			ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
			defer cancel()
			got, err := src.Poll(ctx, now)
			checkPoll(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestWatcherExportsNoticesAndFailures(t *testing.T) {
	f := newFake(t, imds("tok", 404, ""))
	var logs bytes.Buffer
	var notices []Notice
	clock := now
	w, err := NewWatcher(Options{
		Source: &AWSSource{Endpoint: f.URL, Client: client(t)}, Node: "node-a", Pool: "gpu-spot",
		Timeout: 200 * time.Millisecond, Now: func() time.Time { return clock },
		OnNotice: func(n Notice) { notices = append(notices, n) },
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(w)
	expect := func(notice, total, up float64, remaining string, errs map[string]int) {
		t.Helper()
		l := `node="node-a",pool="gpu-spot",provider="aws"`
		var b strings.Builder
		fmt.Fprintf(&b, "# HELP infercast_spot_interruption_notice 1 while the metadata service announces an interruption of this instance, else 0.\n# TYPE infercast_spot_interruption_notice gauge\ninfercast_spot_interruption_notice{%s} %v\n", l, notice)
		if remaining != "" {
			fmt.Fprintf(&b, "# HELP infercast_spot_interruption_remaining_seconds Seconds until the announced interruption; present only while a notice is active and its time is known.\n# TYPE infercast_spot_interruption_remaining_seconds gauge\ninfercast_spot_interruption_remaining_seconds{%s} %s\n", l, remaining)
		}
		fmt.Fprintf(&b, "# HELP infercast_spot_interruptions_total Interruption notices seen since the exporter started, one per distinct notice.\n# TYPE infercast_spot_interruptions_total counter\ninfercast_spot_interruptions_total{%s} %v\n", l, total)
		fmt.Fprintf(&b, "# HELP infercast_spot_metadata_up 1 when the last poll of the metadata service succeeded, else 0.\n# TYPE infercast_spot_metadata_up gauge\ninfercast_spot_metadata_up{%s} %v\n", l, up)
		fmt.Fprintf(&b, "# HELP infercast_spot_metadata_errors_total Failed polls of the metadata service, by reason (timeout, transport, status, parse).\n# TYPE infercast_spot_metadata_errors_total counter\n")
		for _, r := range []string{"parse", "status", "timeout", "transport"} {
			fmt.Fprintf(&b, "infercast_spot_metadata_errors_total{%s,reason=%q} %d\n", l, r, errs[r])
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(b.String()), spotFamilies...); err != nil {
			t.Error(err)
		}
	}
	ctx := t.Context()
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	expect(0, 0, 1, "", nil)

	// A notice arrives; seen on three polls it counts once.
	f.set(imds("tok", 200, `{"action":"terminate","time":"2026-11-27T12:02:00Z"}`))
	for i := range 3 {
		clock = now.Add(time.Duration(i) * 5 * time.Second)
		if err := w.Poll(ctx); err != nil {
			t.Fatal(err)
		}
	}
	expect(1, 1, 1, "110", nil)
	if len(notices) != 1 {
		t.Errorf("OnNotice called %d times, want 1", len(notices))
	}

	// The metadata service breaks in three ways; the notice stays, the
	// failures are counted, the watcher goes on.
	for _, h := range []http.HandlerFunc{imds("tok", 500, ""), imds("tok", 200, "garbage"), hang} {
		f.set(h)
		if err := w.Poll(ctx); err == nil {
			t.Error("failing poll returned no error")
		}
	}
	expect(1, 1, 0, "110", map[string]int{"status": 1, "parse": 1, "timeout": 1})
	if n := strings.Count(logs.String(), "polling metadata failed"); n != 3 {
		t.Errorf("%d failure logs, want 3:\n%s", n, logs.String())
	}

	// Recovery, then a second, distinct notice.
	f.set(imds("tok", 404, ""))
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	f.set(imds("tok", 200, `{"action":"terminate","time":"2026-11-27T13:00:00Z"}`))
	if err := w.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	expect(1, 2, 1, "3590", map[string]int{"status": 1, "parse": 1, "timeout": 1})
	checkDocumented(t, reg)
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

// spotFamilies are the interruption series, whose names, labels and
// meaning other code (the adapter's live signals, alerts, dashboards)
// reads.
var spotFamilies = []string{"infercast_spot_interruption_notice", "infercast_spot_interruption_remaining_seconds",
	"infercast_spot_interruptions_total", "infercast_spot_metadata_up", "infercast_spot_metadata_errors_total"}

func TestRunKeepsPollingThroughFailures(t *testing.T) {
	var n atomic.Int32
	f := newFake(t, func(w http.ResponseWriter, r *http.Request) {
		// Every other answer is a 503.
		if n.Add(1)%2 == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		gcp(200, true, "FALSE")(w, r)
	})
	w, err := NewWatcher(Options{Source: &GCPSource{Endpoint: f.URL, Client: client(t)}, Interval: 5 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	for n.Load() < 6 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestNewWatcherNeedsSource(t *testing.T) {
	if _, err := NewWatcher(Options{}); err == nil {
		t.Error("no error without a source")
	}
}

func TestDetect(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.HandlerFunc
		want Provider
	}{
		{"gcp", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/computeMetadata/v1/" && r.Header.Get("Metadata-Flavor") == "Google" {
				w.Header().Set("Metadata-Flavor", "Google")
				return
			}
			http.NotFound(w, r)
		}, GCP},
		{"azure", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/metadata/instance" && r.Header.Get("Metadata") == "true" {
				fmt.Fprint(w, `{"compute":{}}`)
				return
			}
			http.NotFound(w, r)
		}, Azure},
		{"aws", imds("tok", 404, ""), AWS},
		{"nothing", http.NotFound, None},
		{"hangs", hang, None},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake(t, tc.h)
			if got := Detect(t.Context(), f.URL, 200*time.Millisecond); got != tc.want {
				t.Errorf("Detect = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestProviderNames(t *testing.T) {
	for id, want := range map[string]Provider{
		"aws:///us-east-1a/i-0123456789abcdef0":                     AWS,
		"gce://my-project/us-central1-a/gke-pool-1-abcd":            GCP,
		"azure:///subscriptions/x/resourceGroups/y/providers/z/vm0": Azure,
		"kind://docker/kind/kind-control-plane":                     None,
		"":                                                          None,
	} {
		if got := ProviderFromID(id); got != want {
			t.Errorf("ProviderFromID(%q) = %q, want %q", id, got, want)
		}
	}
	for in, want := range map[string]Provider{"AWS": AWS, " gcp ": GCP, "azure": Azure, "none": None} {
		if got, err := ParseProvider(in); err != nil || got != want {
			t.Errorf("ParseProvider(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseProvider("ibm"); err == nil || !strings.Contains(err.Error(), `"ibm"`) {
		t.Errorf("ParseProvider(ibm): %v", err)
	}
	for _, p := range []Provider{AWS, GCP, Azure} {
		if s, err := NewSource(p, ""); err != nil || s.Provider() != p {
			t.Errorf("NewSource(%q) = %v, %v", p, s, err)
		}
	}
}
