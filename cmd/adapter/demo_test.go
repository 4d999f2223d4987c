package main

import (
	"bytes"
	"context"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestDemoRunsTheWholeLoop runs `adapter demo` for six simulated hours as
// fast as it goes and checks that the loop closed: the planner planned from
// the store's history, the HPAs read the KEDA endpoint and moved the
// cluster, and the summary accounts for cost and spot.
func TestDemoRunsTheWholeLoop(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the whole demo")
	}
	var out, logs bytes.Buffer
	err := runDemo(context.Background(), []string{
		"--speed", "0", "--duration", "6h", "--view", "lines", "--history-days", "2",
		"--grpc.listen-address", "127.0.0.1:0", "--web.listen-address", "127.0.0.1:0",
	}, &out, &logs)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, logs.String())
	}
	text := out.String()
	for _, want := range []string{"KEDA external scaler (gRPC)  127.0.0.1:", "custom metrics API", "adapter metrics"} {
		if !strings.Contains(text, want) {
			t.Errorf("start banner lacks %q:\n%s", want, text)
		}
	}
	// One line per simulated 15 minutes: 24 in six hours.
	lines := regexp.MustCompile(`(?m)^\w{3} \d\d:\d\d demand .* mode (\S+)`).FindAllStringSubmatch(text, -1)
	if len(lines) != 24 {
		t.Fatalf("got %d status lines, want 24:\n%s", len(lines), text)
	}
	predictive := 0
	for _, l := range lines {
		if l[1] == "predictive" {
			predictive++
		}
	}
	if predictive < len(lines)/2 {
		t.Errorf("planner predictive in %d of %d lines: the history loop is broken\n%s\n%s", predictive, len(lines), text, logs.String())
	}
	m := regexp.MustCompile(`demo: (\d+) decisions; ([\d.]+) on-demand and ([\d.]+) spot replica-hours; (\d+) spot interruptions; cost \$([\d.]+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no summary line:\n%s", text)
	}
	if m[1] != strconv.Itoa(6*60*4) {
		t.Errorf("decisions = %s, want %d", m[1], 6*60*4)
	}
	if !regexp.MustCompile(`demo: batch controller on ranker recommends max_batch_size [1-9]\d*, max_queue_delay \S+ \(profile alpha [\d.]+ ms`).MatchString(text) {
		t.Errorf("no batch recommendation for the Triton model:\n%s", text)
	}
	spotHours, _ := strconv.ParseFloat(m[3], 64)
	cost, _ := strconv.ParseFloat(m[5], 64)
	if spotHours <= 0 || cost <= 0 {
		t.Errorf("spot replica-hours %v, cost %v: the HPAs never scaled the spot tier", spotHours, cost)
	}
}
