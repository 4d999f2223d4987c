package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeAzureTrace writes a small Poisson trace in the Azure CSV format.
func writeAzureTrace(t *testing.T, n int, rate float64) string {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 7))
	var b strings.Builder
	b.WriteString("TIMESTAMP,ContextTokens,GeneratedTokens\n")
	ts := time.Date(2023, 11, 16, 18, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		ts = ts.Add(time.Duration(rng.ExpFloat64() / rate * float64(time.Second)))
		fmt.Fprintf(&b, "%s,%d,%d\n", ts.Format("2006-01-02 15:04:05.0000000"), 100+i%900, 10)
	}
	path := filepath.Join(t.TempDir(), "trace.csv")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestBatchSimWritesSummary(t *testing.T) {
	trace := writeAzureTrace(t, 600, 5)
	out := filepath.Join(t.TempDir(), "out")
	var stdout, stderr bytes.Buffer
	err := dispatch(context.Background(), []string{"batch-sim", "--trace", trace, "--profile", "0.05,0.01,0.005",
		"--slo", "500ms", "--max-batch", "64", "--out", out}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("batch-sim: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(filepath.Join(out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Requests                                      int
		Controller, BestStatic, TritonDefault, Batch1 struct {
			Setting *struct {
				MaxBatchSize int `json:"max_batch_size"`
			} `json:"setting"`
			GoodputMultiple float64 `json:"goodput_multiple"`
			AtTraceRate     struct {
				Requests       int     `json:"requests"`
				P99            float64 `json:"p99_seconds"`
				GPUBusySeconds float64 `json:"gpu_busy_seconds"`
			} `json:"at_trace_rate"`
		}
	}
	var top map[string]json.RawMessage
	if err := json.Unmarshal(raw, &top); err != nil {
		t.Fatal(err)
	}
	for key, dst := range map[string]any{"requests": &s.Requests, "controller": &s.Controller, "best_static": &s.BestStatic, "triton_default": &s.TritonDefault, "batch1": &s.Batch1} {
		if err := json.Unmarshal(top[key], dst); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
	}
	if s.Requests != 600 || s.Controller.AtTraceRate.Requests != 600 {
		t.Errorf("requests %d / %d, want 600", s.Requests, s.Controller.AtTraceRate.Requests)
	}
	if s.BestStatic.Setting == nil || s.TritonDefault.Setting == nil || s.TritonDefault.Setting.MaxBatchSize != 64 ||
		s.Batch1.Setting == nil || s.Batch1.Setting.MaxBatchSize != 1 || s.Controller.Setting != nil {
		t.Errorf("settings wrong: best %+v triton %+v batch1 %+v controller %+v", s.BestStatic.Setting, s.TritonDefault.Setting, s.Batch1.Setting, s.Controller.Setting)
	}
	// Batch 1 serves at most 1/t(1) = 16.7/s, a multiple of ~3.3 of 5/s;
	// batching serves several times more.
	if !(s.Batch1.GoodputMultiple > 1 && s.Batch1.GoodputMultiple < 3.4) {
		t.Errorf("batch 1 goodput %.2f, want between 1 and 3.4", s.Batch1.GoodputMultiple)
	}
	if s.BestStatic.GoodputMultiple < 2*s.Batch1.GoodputMultiple || s.Controller.GoodputMultiple < 2*s.Batch1.GoodputMultiple {
		t.Errorf("batching goodput best %.2f controller %.2f, want ≥ 2× batch 1's %.2f", s.BestStatic.GoodputMultiple, s.Controller.GoodputMultiple, s.Batch1.GoodputMultiple)
	}
	if !strings.Contains(stdout.String(), "controller") || !strings.Contains(stdout.String(), "summary.json") {
		t.Errorf("stdout lacks the table:\n%s", stdout.String())
	}
	// Late rejection is on by default: the comparison without it is
	// there too; --reject-late=false leaves it out.
	var rl struct {
		RejectLate       bool `json:"reject_late"`
		WithoutRejection *struct {
			Controller struct {
				GoodputMultiple float64 `json:"goodput_multiple"`
			} `json:"controller"`
			BestStatic struct {
				GoodputMultiple float64 `json:"goodput_multiple"`
			} `json:"best_static"`
		} `json:"without_rejection"`
	}
	if err := json.Unmarshal(raw, &rl); err != nil {
		t.Fatal(err)
	}
	if !rl.RejectLate || rl.WithoutRejection == nil || rl.WithoutRejection.Controller.GoodputMultiple <= 0 || rl.WithoutRejection.BestStatic.GoodputMultiple <= 0 {
		t.Errorf("reject_late %v, without_rejection %+v: want both, with goodputs", rl.RejectLate, rl.WithoutRejection)
	}
	if !strings.Contains(stdout.String(), "controller_without_rejection") {
		t.Errorf("stdout lacks the rows without rejection:\n%s", stdout.String())
	}
	out2 := filepath.Join(t.TempDir(), "out")
	if err := dispatch(context.Background(), []string{"batch-sim", "--trace", trace, "--profile", "0.05,0.01,0.005",
		"--max-batch", "64", "--reject-late=false", "--out", out2}, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	raw2, err := os.ReadFile(filepath.Join(out2, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	rl.RejectLate, rl.WithoutRejection = true, nil
	if err := json.Unmarshal(raw2, &rl); err != nil || rl.RejectLate || rl.WithoutRejection != nil || strings.Contains(string(raw2), "queue_timeout") {
		t.Errorf("--reject-late=false: reject_late %v, without_rejection %+v, err %v; want neither and no queue timeouts", rl.RejectLate, rl.WithoutRejection, err)
	}
}

func TestBatchSimBadInput(t *testing.T) {
	trace := writeAzureTrace(t, 10, 5)
	bad := filepath.Join(t.TempDir(), "bad.csv")
	if err := os.WriteFile(bad, []byte("TIMESTAMP\nnot a time\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	one := filepath.Join(t.TempDir(), "one.csv")
	if err := os.WriteFile(one, []byte("TIMESTAMP\n2023-11-16 18:17:03\n2023-11-16 18:17:03\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	tests := []struct {
		name    string
		args    []string
		wantErr string
	}{
		{"no trace", []string{"--out", out}, "--trace and --out are required"},
		// Goodput is a multiple of the trace's rate: it wrote 65,536× of 0 req/s.
		{"one instant", []string{"--trace", one, "--out", out}, "its 2 request(s) arrive at one instant, so it has no rate"},
		{"no out", []string{"--trace", trace}, "--trace and --out are required"},
		{"profile fields", []string{"--trace", trace, "--out", out, "--profile", "0.05,0.01"}, "alpha,beta,jitter"},
		{"negative profile", []string{"--trace", trace, "--out", out, "--profile", "-1,0.01,0"}, "alpha"},
		{"zero slo", []string{"--trace", trace, "--out", out, "--slo", "0s"}, "--slo"},
		{"missing file", []string{"--trace", filepath.Join(out, "nope.csv"), "--out", out}, "no such file"},
		{"bad timestamp", []string{"--trace", bad, "--out", out}, bad + ":2: TIMESTAMP"},
		{"stray argument", []string{"--trace", trace, "--out", out, "extra"}, "unexpected arguments"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := dispatch(context.Background(), append([]string{"batch-sim"}, tc.args...), &stdout, &stderr)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want %q", err, tc.wantErr)
			}
			if _, err := os.Stat(filepath.Join(out, "summary.json")); err == nil {
				t.Error("summary.json written despite the error")
			}
		})
	}
}
