package batchsim

import (
	"math/rand/v2"
	"testing"

	"github.com/infercast/infercast/pkg/batchctl"
)

// unmeasured hides the clump count from the controller, as an exporter
// that does not measure it would: the controller then plans for Poisson
// arrivals.
type unmeasured struct{ *ControllerPolicy }

func (u unmeasured) Observe(o batchctl.Observation) batchctl.Knobs {
	o.ClumpSizeSum = 0
	return u.ControllerPolicy.Observe(o)
}

// clumpedArrivals is compound-Poisson traffic: clumps of lo…hi requests
// (uniform) at the same instant, at Poisson instants, 1 request/s on
// average, n requests in all.
func clumpedArrivals(seed uint64, n, lo, hi int) []float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	mean := float64(lo+hi) / 2
	var arr []float64
	t := 0.0
	for len(arr) < n {
		t += rng.ExpFloat64() * mean
		for x := lo + rng.IntN(hi-lo+1); x > 0; x-- {
			arr = append(arr, t)
		}
	}
	return arr
}

// Synthetic traffic in clumps of 2–20 simultaneous requests, away from
// any real trace's artifacts: the controller that measures the clumps
// must serve clearly more within the SLO than the same controller blind to
// them (Poisson model), than Triton's default, and about as much as the
// cap of 24 its model derives (docs/batching.md: seeds 1–3 give 21.8,
// 19.6, 15.9 req/s against 11.3, 11.6, 9.9 blind and 15.6, 13.7, 10.7 for
// Triton's default).
func TestControllerOnClumpedArrivals(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a 10,000-request trace some sixty times")
	}
	arr := clumpedArrivals(1, 10000, 2, 20)
	o := DefaultOptions()
	cfg := o.simConfig()
	goodput := func(newPolicy func() Policy) float64 {
		t.Helper()
		g, err := Goodput(arr, newPolicy, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	aware := goodput(func() Policy { p, _ := o.newController(); return p })
	blind := goodput(func() Policy { p, _ := o.newController(); return unmeasured{p.(*ControllerPolicy)} })
	triton := goodput(func() Policy { return Static(batchctl.Knobs{MaxBatchSize: o.ModelMaxBatch}) })
	b24 := goodput(func() Policy { return Static(batchctl.Knobs{MaxBatchSize: 24}) })
	t.Logf("goodput req/s: controller %.2f, blind to clumps %.2f, Triton's default %.2f, b=24 %.2f", aware, blind, triton, b24)
	if aware < 1.2*blind {
		t.Errorf("measuring clumps: goodput %.2f, less than 1.2 × the blind controller's %.2f", aware, blind)
	}
	if aware <= triton {
		t.Errorf("controller goodput %.2f not above Triton's default %.2f", aware, triton)
	}
	if aware < 0.95*b24 {
		t.Errorf("controller goodput %.2f < 0.95 × static b=24's %.2f", aware, b24)
	}
}
