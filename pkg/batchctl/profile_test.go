package batchctl

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// batches draws n batches of each size from a true profile and returns one
// observation per window with per-size stats, as Triton's statistics
// extension reports them.
func synthObservations(rng *rand.Rand, p Profile, windows int, sizes []int, perSize int, start time.Time) []Observation {
	var obs []Observation
	for w := 0; w < windows; w++ {
		o := Observation{Time: start.Add(time.Duration(w+1) * time.Second), Window: time.Second}
		for _, b := range sizes {
			st := BatchStat{Size: b}
			for i := 0; i < perSize; i++ {
				st.Count++
				st.ExecSeconds += p.Exec(float64(b)) + rng.NormFloat64()*p.Jitter
			}
			o.BatchStats = append(o.BatchStats, st)
			o.Batches += st.Count
			o.Requests += st.Count * float64(b)
			o.ExecSeconds += st.ExecSeconds
		}
		o.Arrivals = o.Requests
		obs = append(obs, o)
	}
	return obs
}

func TestFitterRecoversProfile(t *testing.T) {
	truth := Profile{Alpha: 0.04, Beta: 0.008, Jitter: 0.003}
	tests := []struct {
		name     string
		averages bool // feed only the window averages, as Prometheus metrics give
	}{
		{"per-size batch stats", false},
		{"window averages only", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(1, 2))
			f := NewFitter(DefaultFitterConfig())
			var last time.Time
			for w := 0; w < 200; w++ {
				// vary the mix window to window, so that averages spread
				sizes := []int{1 + w%7, 4 + w%13, 8 + w%29}
				for _, o := range synthObservations(rng, truth, 1, sizes, 1+w%3, t0.Add(time.Duration(w)*time.Second)) {
					if tc.averages {
						o.BatchStats = nil
					}
					f.AddObservation(o)
					last = o.Time
				}
			}
			got, ok := f.Fit(last)
			if !ok || !got.Identified {
				t.Fatalf("fit not usable: ok=%v %+v", ok, got)
			}
			if math.Abs(got.Alpha-truth.Alpha) > 0.002 || math.Abs(got.Beta-truth.Beta) > 0.0002 {
				t.Errorf("alpha, beta = %.5f, %.5f; want %.5f, %.5f", got.Alpha, got.Beta, truth.Alpha, truth.Beta)
			}
			if math.Abs(got.Jitter-truth.Jitter) > 0.25*truth.Jitter {
				t.Errorf("jitter = %.5f; want %.5f ± 25 %%", got.Jitter, truth.Jitter)
			}
			// The largest batch is 36 (8 + 28); averages only show less.
			if !tc.averages && got.MaxObservedBatch != 36 {
				t.Errorf("max observed batch = %d, want 36", got.MaxObservedBatch)
			}
		})
	}
}

func TestFitterDiscountsOldConditions(t *testing.T) {
	before := Profile{Alpha: 0.02, Beta: 0.004}
	after := Profile{Alpha: 0.06, Beta: 0.012} // e.g. the model moved to a slower GPU
	cfg := DefaultFitterConfig()
	cfg.HalfLife = time.Minute
	f := NewFitter(cfg)
	rng := rand.New(rand.NewPCG(3, 4))
	sizes := []int{1, 4, 16}
	for _, o := range synthObservations(rng, before, 600, sizes, 1, t0) {
		f.AddObservation(o)
	}
	for _, o := range synthObservations(rng, after, 600, sizes, 1, t0.Add(600*time.Second)) {
		f.AddObservation(o)
	}
	got, ok := f.Fit(t0.Add(1200 * time.Second))
	if !ok {
		t.Fatal("no fit")
	}
	// Ten half-lives after the change the old samples weigh 1/1024.
	if math.Abs(got.Alpha-after.Alpha) > 0.001 || math.Abs(got.Beta-after.Beta) > 0.0001 {
		t.Errorf("fit %+v still remembers the old profile; want alpha %.3f beta %.4f", got, after.Alpha, after.Beta)
	}
}

func TestFitterDegenerate(t *testing.T) {
	f := NewFitter(DefaultFitterConfig())
	if _, ok := f.Fit(t0); ok {
		t.Fatal("an empty fitter claims a fit")
	}
	// Only batches of 4, 50 ms each: alpha and beta cannot be told apart;
	// the fit goes through the origin, 12.5 ms per request.
	for i := 0; i < 30; i++ {
		f.Add(t0, 4, 1, 0.050)
	}
	got, ok := f.Fit(t0)
	if !ok {
		t.Fatal("30 batches should be enough to report a fit")
	}
	if got.Identified || got.Alpha != 0 || math.Abs(got.Beta-0.0125) > 1e-12 {
		t.Errorf("degenerate fit = %+v, want unidentified alpha 0, beta 0.0125", got)
	}
	// Bad samples are ignored rather than poisoning the fit.
	f.Add(t0, 0, 1, 1)
	f.Add(t0, 4, 1, math.NaN())
	f.Add(t0, 4, -1, 1)
	if got2, _ := f.Fit(t0); got2.Beta != got.Beta {
		t.Errorf("bad samples changed the fit: %+v → %+v", got, got2)
	}
}

func TestObservationValidate(t *testing.T) {
	good := Observation{Time: t0, Window: time.Second, Arrivals: 3, Requests: 3, Batches: 1, ExecSeconds: 0.1}
	if err := good.Validate(); err != nil {
		t.Fatalf("good observation rejected: %v", err)
	}
	bad := map[string]func(*Observation){
		"zero window":     func(o *Observation) { o.Window = 0 },
		"negative count":  func(o *Observation) { o.Requests = -1 },
		"negative p99":    func(o *Observation) { o.LatencyP99Seconds = -1 },
		"utilisation > 1": func(o *Observation) { o.GPUUtilization = 1.5 },
		"batch size 0":    func(o *Observation) { o.BatchStats = []BatchStat{{Size: 0, Count: 1}} },
		"negative exec":   func(o *Observation) { o.ExecSeconds = -0.1 },
		"negative queue":  func(o *Observation) { o.QueueSeconds = -0.1 },
	}
	for name, mut := range bad {
		o := good
		mut(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
