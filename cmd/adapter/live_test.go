package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/edgelog"
	"github.com/infercast/infercast/internal/fanout"
	"github.com/infercast/infercast/internal/testutil"
)

// nodeExporter serves body; while down is set it answers 503.
func nodeExporter(body string, down *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, body)
	})
}

// TestExporterLiveReadsEveryExporter: a URL whose host resolves to two
// exporters (a headless Service over a DaemonSet on two GPU nodes) is read
// at both. Rates, backlogs and serving targets add up, the latency is the
// worst node's, the cold start the longest, and both nodes' spot notices
// are seen. One exporter down leaves its node out (logged) and the other's
// signals stand; both down is an error.
func TestExporterLiveReadsEveryExporter(t *testing.T) {
	const nodeA = `# TYPE infercast_model_requests_per_second gauge
infercast_model_requests_per_second{model="chat",window="1m"} 3
infercast_model_requests_per_second{model="chat",window="5m"} 99
# TYPE infercast_model_request_latency_seconds summary
infercast_model_request_latency_seconds{model="chat",window="1m",quantile="0.99"} 0.4
infercast_model_request_latency_seconds_sum{model="chat",window="1m"} 1
infercast_model_request_latency_seconds_count{model="chat",window="1m"} 4
# TYPE infercast_model_requests_waiting gauge
infercast_model_requests_waiting{model="chat",target="10.0.1.5:8000"} 2
# TYPE infercast_target_up gauge
infercast_target_up{target="10.0.1.5:8000",dialect="vllm",source="static"} 1
# TYPE infercast_spot_interruption_notice gauge
infercast_spot_interruption_notice{node="gpu-a",pool="zone-a"} 1
`
	const nodeB = `# TYPE infercast_model_requests_per_second gauge
infercast_model_requests_per_second{model="chat",window="1m"} 5
# TYPE infercast_model_request_latency_seconds summary
infercast_model_request_latency_seconds{model="chat",window="1m",quantile="0.99"} 0.9
infercast_model_request_latency_seconds_sum{model="chat",window="1m"} 1
infercast_model_request_latency_seconds_count{model="chat",window="1m"} 4
# TYPE infercast_model_requests_waiting gauge
infercast_model_requests_waiting{model="chat",target="10.0.2.7:8000"} 1
infercast_model_requests_waiting{model="chat",target="10.0.2.8:8000"} 0
# TYPE infercast_target_up gauge
infercast_target_up{target="10.0.2.7:8000",dialect="vllm",source="static"} 1
infercast_target_up{target="10.0.2.8:8000",dialect="vllm",source="static"} 1
# TYPE infercast_cold_start_duration_seconds histogram
infercast_cold_start_duration_seconds_bucket{model="chat",le="60"} 0
infercast_cold_start_duration_seconds_bucket{model="chat",le="120"} 10
infercast_cold_start_duration_seconds_bucket{model="chat",le="+Inf"} 10
infercast_cold_start_duration_seconds_sum{model="chat"} 900
infercast_cold_start_duration_seconds_count{model="chat"} 10
# TYPE infercast_spot_interruption_notice gauge
infercast_spot_interruption_notice{node="gpu-b",pool="zone-b"} 1
`
	var downA, downB atomic.Bool
	port := testutil.ServeNodes(t, nodeExporter(nodeA, &downA), nodeExporter(nodeB, &downB))

	var logs bytes.Buffer
	var mu sync.Mutex
	lookups := 0
	url := "http://exporters.test:" + port + "/metrics"
	client := &http.Client{Timeout: 2 * time.Second}
	fan, err := fanout.New(url, client, func(_ context.Context, host string) ([]string, error) {
		mu.Lock()
		defer mu.Unlock()
		lookups++
		if host != "exporters.test" {
			return nil, fmt.Errorf("unknown host %s", host)
		}
		return []string{"127.0.0.2", "127.0.0.1", "127.0.0.2"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	l := exporterLive{url: url, client: client, fan: fan, log: slog.New(slog.NewTextHandler(&logs, nil)), unreadable: &edgelog.State{}}
	w := spotWorkload("chat")
	w.LatencyPercentile = 0.99
	ctx := context.Background()
	sig, err := l.Signals(ctx, w, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The shortest window of each node: 3 + 5 (node A's 5m series is not
	// read); the p90 cold start 114 s (node B's histogram).
	if sig.Rate != 8 || sig.Backlog != 3 || sig.Serving != 3 || sig.Latency != 900*time.Millisecond || sig.ColdStartP90 != 114*time.Second {
		t.Fatalf("signals %+v; want rate 8, backlog 3, serving 3, latency 900ms, cold start p90 114s", sig)
	}
	notices, err := exporterNotices{l}.notices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if nodes := fmt.Sprint(notices); !strings.Contains(nodes, "gpu-a") || !strings.Contains(nodes, "gpu-b") {
		t.Fatalf("notices %v; want gpu-a's and gpu-b's", notices)
	}

	// Node B's exporter fails: node A's signals stand, the failure is logged.
	downB.Store(true)
	sig, err = l.Signals(ctx, w, time.Now())
	if err != nil || sig.Rate != 3 || sig.Serving != 1 || sig.Latency != 400*time.Millisecond {
		t.Fatalf("node B down: signals %+v, %v; want node A's: rate 3, serving 1, latency 400ms", sig, err)
	}
	if !strings.Contains(logs.String(), "exporters unreadable") || !strings.Contains(logs.String(), "127.0.0.2") {
		t.Fatalf("node B's failure not logged: %q", logs.String())
	}
	// Still down at the next reads: said once, when it went down; back up:
	// said once too.
	readTwice := func() {
		t.Helper()
		for range 2 {
			if _, err := l.Signals(ctx, w, time.Now()); err != nil {
				t.Fatal(err)
			}
		}
	}
	readTwice()
	if n := strings.Count(logs.String(), "exporters unreadable"); n != 1 {
		t.Errorf("node B down for three reads: %d warnings, want 1:\n%s", n, logs.String())
	}
	downB.Store(false)
	readTwice()
	if n := strings.Count(logs.String(), "exporters readable again"); n != 1 {
		t.Errorf("node B back for two reads: %d lines, want 1:\n%s", n, logs.String())
	}
	downB.Store(true)
	downA.Store(true)
	if _, err := l.Signals(ctx, w, time.Now()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("both down: err %v; want both nodes' 503", err)
	}
	if lookups != 8 {
		t.Fatalf("%d lookups for 8 reads; want the Service resolved at every read (pods come and go)", lookups)
	}
}
