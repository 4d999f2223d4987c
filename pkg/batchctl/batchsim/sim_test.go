package batchsim

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/batchctl"
)

// Worked by hand: t(b) = 0.05 + 0.01·b, no jitter.
func TestRunHandComputed(t *testing.T) {
	arrivals := []float64{0, 0.01, 0.02, 1.0}
	prof := batchctl.Profile{Alpha: 0.05, Beta: 0.01}
	tests := []struct {
		name     string
		k        batchctl.Knobs
		slo      time.Duration
		met      int
		batches  int
		busy     float64
		p50, p99 float64
	}{
		// 0 runs alone (0–0.06); 0.01 and 0.02 wait for it and run as a
		// pair (0.06–0.13); 1.0 runs alone (1.0–1.06). Latencies 0.06,
		// 0.12, 0.11, 0.06: three within 115 ms.
		{"no delay", batchctl.Knobs{MaxBatchSize: 2}, 115 * time.Millisecond, 3, 3, 0.19, 0.06, 0.12},
		// The first request waits 30 ms for company: 0, 0.01, 0.02 run
		// together (0.03–0.11), 1.0 alone after its own wait (1.03–1.09).
		// Latencies 0.11, 0.10, 0.09, 0.09.
		{"30 ms delay", batchctl.Knobs{MaxBatchSize: 4, MaxQueueDelay: 30 * time.Millisecond}, 100 * time.Millisecond, 3, 2, 0.14, 0.09, 0.11},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Run(arrivals, Static(tc.k), Config{Profile: prof, SLO: tc.slo, Window: time.Second, Percentiles: true})
			if err != nil {
				t.Fatal(err)
			}
			if r.Requests != 4 || r.Met != tc.met || r.Batches != tc.batches {
				t.Errorf("requests/met/batches = %d/%d/%d, want 4/%d/%d", r.Requests, r.Met, r.Batches, tc.met, tc.batches)
			}
			if math.Abs(r.GPUBusySeconds-tc.busy) > 1e-9 || math.Abs(r.P50Seconds-tc.p50) > 1e-9 || math.Abs(r.P99Seconds-tc.p99) > 1e-9 {
				t.Errorf("busy/p50/p99 = %.4f/%.4f/%.4f, want %.4f/%.4f/%.4f", r.GPUBusySeconds, r.P50Seconds, r.P99Seconds, tc.busy, tc.p50, tc.p99)
			}
		})
	}
}

// Worked by hand, batch 1, t(1) = 0.06 s, SLO 0.2 s: 0 runs 0–0.06; 0.01
// runs 0.06–0.12 (waited 0.05); 0.02 runs 0.12–0.18 (waited 0.10); 0.03
// has waited 0.15 at 0.18: past a 0.12 s queue timeout it is rejected,
// and without one it runs 0.18–0.24 and misses (0.21 s); 1.0 runs alone.
// Either way four meet the SLO; rejection saves the doomed batch.
func TestRunRejectsPastTheQueueTimeout(t *testing.T) {
	arrivals := []float64{0, 0.01, 0.02, 0.03, 1.0}
	prof := batchctl.Profile{Alpha: 0.05, Beta: 0.01}
	for _, tc := range []struct {
		timeout           time.Duration
		rejected, batches int
		busy, p99         float64
	}{
		{120 * time.Millisecond, 1, 4, 0.24, 0.16},
		{0, 0, 5, 0.30, 0.21},
	} {
		r, err := Run(arrivals, Static(batchctl.Knobs{MaxBatchSize: 1, QueueTimeout: tc.timeout}),
			Config{Profile: prof, SLO: 200 * time.Millisecond, Window: time.Second, Percentiles: true})
		if err != nil {
			t.Fatal(err)
		}
		if r.Requests != 5 || r.Met != 4 || r.Rejected != tc.rejected || r.Batches != tc.batches || r.SLOAttainment != 0.8 {
			t.Errorf("timeout %s: requests/met/rejected/batches/attainment = %d/%d/%d/%d/%g, want 5/4/%d/%d/0.8",
				tc.timeout, r.Requests, r.Met, r.Rejected, r.Batches, r.SLOAttainment, tc.rejected, tc.batches)
		}
		if math.Abs(r.GPUBusySeconds-tc.busy) > 1e-9 || math.Abs(r.P99Seconds-tc.p99) > 1e-9 {
			t.Errorf("timeout %s: busy/p99 = %.4f/%.4f, want %.4f/%.4f", tc.timeout, r.GPUBusySeconds, r.P99Seconds, tc.busy, tc.p99)
		}
	}
}

// recorder is a policy that checks it never sees the future and switches
// to batch 1 after its first observation.
type recorder struct {
	t      *testing.T
	obs    []batchctl.Observation
	served float64
}

func (r *recorder) Initial() batchctl.Knobs { return batchctl.Knobs{MaxBatchSize: 8} }
func (r *recorder) Observe(o batchctl.Observation) batchctl.Knobs {
	r.obs = append(r.obs, o)
	r.served += o.Requests
	return batchctl.Knobs{MaxBatchSize: 1}
}

func TestRunObservationsArePast(t *testing.T) {
	var arrivals []float64
	for i := 0; i < 300; i++ {
		arrivals = append(arrivals, float64(i)*0.01) // 100/s for 3 s
	}
	rec := &recorder{t: t}
	r, err := Run(arrivals, rec, Config{Profile: batchctl.Profile{Alpha: 0.01, Beta: 0.002}, SLO: time.Second, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if rec.served != float64(r.Requests) {
		t.Errorf("observations account for %g completed requests, want all %d", rec.served, r.Requests)
	}
	var arrived float64
	for i, o := range rec.obs {
		arrived += o.Arrivals
		if o.Window != time.Second || o.Time.Sub(time.Unix(0, 0)) != time.Duration(i+1)*time.Second {
			t.Fatalf("observation %d at %s window %s: want consecutive 1 s windows", i, o.Time, o.Window)
		}
		var reqs float64
		for _, s := range o.BatchStats {
			reqs += s.Count * float64(s.Size)
		}
		if reqs != o.Requests {
			t.Errorf("observation %d: batch stats hold %g requests, Requests says %g", i, reqs, o.Requests)
		}
	}
	if arrived != 300 {
		t.Errorf("observed %g arrivals, want 300", arrived)
	}
	if r.KnobChanges != 1 {
		t.Errorf("knob changes = %d, want 1", r.KnobChanges)
	}
}

// Evenly spaced arrivals, batch 1 at 60 ms (capacity 16.67/s), SLO 0.5 s.
// Above capacity request i waits i·(0.06 − 1/r); 99 % of 1000 requests
// meet the SLO while 990·(0.06 − 1/r) ≤ 0.44, i.e. r ≤ 16.791/s: a
// goodput of 1.6791 times the trace's 10/s.
func TestGoodputHandComputed(t *testing.T) {
	var arrivals []float64
	for i := 0; i < 1000; i++ {
		arrivals = append(arrivals, float64(i)*0.1)
	}
	cfg := Config{Profile: batchctl.Profile{Alpha: 0.05, Beta: 0.01}, SLO: 500 * time.Millisecond, Window: time.Second}
	g, err := Goodput(arrivals, func() Policy { return Static(batchctl.Knobs{MaxBatchSize: 1}) }, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if g < 1.6791*(1-Resolution) || g > 1.6791 {
		t.Errorf("goodput %.4f, want 1.6791 (−%g %%)", g, 100*Resolution)
	}
}

func TestReadTrace(t *testing.T) {
	tests := []struct {
		name, in string
		want     []float64
		wantErr  string
	}{
		{name: "azure", in: "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:17:05,110,27\n",
			want: []float64{0, 0.052, 1.02004}},
		{name: "mooncake", in: `{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1]}` + "\n" + `{"timestamp": 1500, "input_length": 1, "output_length": 1, "hash_ids": []}` + "\n",
			want: []float64{0, 1.5}},
		// internal/reqtrace's errors come through as they are (its
		// tests hold the rest).
		{name: "bad timestamp", in: "TIMESTAMP,ContextTokens\n2023-11-16 18:17:03,1\nyesterday,2\n", wantErr: `t.csv:3: TIMESTAMP "yesterday" is not a "2006-01-02 15:04:05.999" time`},
		{name: "empty", in: "", wantErr: "t.csv: empty trace"},
		// Arrivals are seconds from the earliest, in order.
		{name: "shuffled", in: `{"timestamp": 2000}` + "\n" + `{"timestamp": 500}` + "\n" + `{"timestamp": 1000}` + "\n", want: []float64{0, 0.5, 1.5}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := ReadTrace("t.csv", strings.NewReader(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(tr.Arrivals) != len(tc.want) {
				t.Fatalf("arrivals %v, want %v", tr.Arrivals, tc.want)
			}
			for i := range tc.want {
				if math.Abs(tr.Arrivals[i]-tc.want[i]) > 1e-6 {
					t.Errorf("arrival %d = %.7f, want %.7f", i, tr.Arrivals[i], tc.want[i])
				}
			}
		})
	}
}

// The observer counts each arrival's clump: the requests that arrive at
// the same instant as it, itself included. Three at 0 s, one at 0.5 s and
// two at 0.7 s: 3·3 + 1·1 + 2·2 = 14 over 6 arrivals; one at 1.2 s: 1.
func TestRunObservesClumps(t *testing.T) {
	rec := &recorder{t: t}
	_, err := Run([]float64{0, 0, 0, 0.5, 0.7, 0.7, 1.2}, rec,
		Config{Profile: batchctl.Profile{Alpha: 0.01, Beta: 0.002}, SLO: time.Second, Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.obs) < 2 {
		t.Fatalf("%d observations, want 2", len(rec.obs))
	}
	for i, want := range []struct{ arrivals, sizes float64 }{{6, 14}, {1, 1}} {
		if o := rec.obs[i]; o.Arrivals != want.arrivals || o.ClumpSizeSum != want.sizes {
			t.Errorf("window %d: arrivals %g, clump sizes %g; want %g, %g", i, o.Arrivals, o.ClumpSizeSum, want.arrivals, want.sizes)
		}
	}
}
