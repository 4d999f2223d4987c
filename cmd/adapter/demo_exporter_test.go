package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/infercast/infercast/internal/exporterdemo"
	"github.com/infercast/infercast/internal/testutil"
)

// TestDemoServesEveryExporterFamily runs `adapter demo` (what `make demo`
// runs) and reads its exporter's /metrics: every family `exporter --demo`
// fills (exporterdemo.Families) and the reload status are filled from the
// simulated fleet, the GPUs say they are simulated on a machine without a
// driver, and promlint finds nothing.
func TestDemoServesEveryExporterFamily(t *testing.T) {
	if testing.Short() {
		t.Skip("runs the demo")
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out testutil.SyncBuffer
	var logs bytes.Buffer // read only after the demo returned
	done := make(chan error, 1)
	go func() {
		done <- runDemo(ctx, []string{
			"--speed", "240", "--duration", "0", "--view", "lines", "--history-days", "1",
			"--grpc.listen-address", "127.0.0.1:0", "--web.listen-address", "127.0.0.1:0",
		}, &out, &logs)
	}()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("demo: %v\n%s", err, logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Error("demo did not stop within 30s of cancel")
		}
	}
	defer stop()

	var url string
	for deadline := time.Now().Add(60 * time.Second); url == ""; time.Sleep(50 * time.Millisecond) {
		if m := regexp.MustCompile(`exporter metrics\s+(http://\S+)`).FindStringSubmatch(out.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no exporter URL in the banner:\n%s", out.String())
		}
	}
	families := append(slices.Clone(exporterdemo.Families), "infercast_exporter_config_last_reload_successful")
	client := &http.Client{Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	var body string
	var mfs map[string]*dto.MetricFamily
	var missing []string
	for deadline := time.Now().Add(90 * time.Second); ; time.Sleep(250 * time.Millisecond) {
		resp, err := client.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		body = string(b)
		mfs = testutil.ParseExposition(t, body)
		missing = missing[:0]
		for _, n := range families {
			if mfs[n] == nil || len(mfs[n].GetMetric()) == 0 {
				missing = append(missing, n)
			}
		}
		if len(missing) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the demo's exporter never filled %v", missing)
		}
	}
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	for _, m := range mfs["infercast_target_up"].GetMetric() {
		if m.GetGauge().GetValue() != 1 {
			t.Errorf("demo target down: %v", m.GetLabel())
		}
	}
	simulated := false
	for _, m := range mfs["infercast_gpu_info"].GetMetric() {
		for _, l := range m.GetLabel() {
			simulated = simulated || l.GetName() == "simulated" && l.GetValue() == "true"
		}
	}
	if _, err := os.Stat("/dev/nvidiactl"); err != nil && !simulated {
		t.Error(`demo GPUs are not marked simulated="true" on a machine without a driver`)
	}
}
