package batchsim

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/infercast/infercast/internal/testutil"
)

// The bar, on each of the three raw per-request traces with the
// default profile and SLO: the controller's goodput is at least 0.95× the
// best static setting chosen in hindsight, and above Triton's default and
// batch 1. The controller learns everything online; it may reject late
// requests (reject_late), and so may the static grid (queue timeouts), so
// that the hindsight choice has every knob the controller has.
func TestControllerOnRealTraces(t *testing.T) {
	if testing.Short() {
		t.Skip("replays three hour-long traces thousands of times")
	}
	if raceEnabled {
		// Single-threaded replays with no shared state: the race
		// detector finds nothing here and makes them 5–10× slower.
		// make test runs this test again without -race.
		t.Skip("CPU-bound replays: run without -race (make test does)")
	}
	dir := filepath.Join(testutil.SharedDir(t), "traces", "raw")
	for _, name := range []string{
		"azure-llm-2023/AzureLLMInferenceTrace_code.csv",
		"azure-llm-2023/AzureLLMInferenceTrace_conv.csv",
		"mooncake-2025/conversation_trace.jsonl",
	} {
		t.Run(filepath.Base(name), func(t *testing.T) {
			t.Parallel()
			tr, err := LoadTraceFile(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			s, err := Compare(context.Background(), tr, DefaultOptions())
			if err != nil {
				t.Fatal(err)
			}
			c, best, triton, b1 := s.Controller.GoodputMultiple, s.BestStatic.GoodputMultiple, s.TritonDefault.GoodputMultiple, s.Batch1.GoodputMultiple
			w := s.WithoutRejection
			if w == nil {
				t.Fatal("no comparison without rejection")
			}
			t.Logf("goodput ×rate: controller %.3f, best static %.3f %+v, triton default %.3f, batch 1 %.3f; without rejection: controller %.3f, best static %.3f %+v",
				c, best, *s.BestStatic.Setting, triton, b1, w.Controller.GoodputMultiple, w.BestStatic.GoodputMultiple, *w.BestStatic.Setting)
			if c < 0.95*best {
				t.Errorf("controller goodput %.3f < 0.95 × best static %.3f", c, best)
			}
			if c <= triton {
				t.Errorf("controller goodput %.3f not above Triton's default %.3f", c, triton)
			}
			if c <= b1 {
				t.Errorf("controller goodput %.3f not above batch 1 %.3f", c, b1)
			}
			// Rejection must add to what the batching knobs do, and the
			// knobs alone must stay where they were before it (within 1 %
			// of Triton's default, ≥ 0.95× their own best static).
			if wc := w.Controller.GoodputMultiple; c <= wc || wc < 0.95*w.BestStatic.GoodputMultiple || wc < 0.99*triton {
				t.Errorf("without rejection the controller reaches %.3f (with it %.3f; best static %.3f, Triton %.3f)", wc, c, w.BestStatic.GoodputMultiple, triton)
			}
			// What it must not do is spend more GPU time for it.
			if cg, tg := s.Controller.AtReference.GPUBusySeconds, s.TritonDefault.AtReference.GPUBusySeconds; cg > tg*1.001 {
				t.Errorf("controller used %.1f GPU-seconds at the reference rate, Triton's default %.1f", cg, tg)
			}
		})
	}
}
