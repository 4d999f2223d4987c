package predict

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestSelectQuantilesMatchesSorting checks the selection against the type-7
// quantile of the sorted sample.
func TestSelectQuantilesMatchesSorting(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 10, 101, 2048} {
		for trial := range 20 {
			x := make([]float64, n)
			for i := range x {
				x[i] = math.Round(r.NormFloat64()*10) / 2 // ties too
			}
			sorted := slices.Clone(x)
			slices.Sort(sorted)
			got := selectQuantiles(slices.Clone(x))
			for j, q := range []float64{0.5, 0.9, 0.99} {
				pos := q * float64(n-1)
				lo := int(pos)
				want := sorted[lo]
				if lo+1 < n {
					want += (pos - float64(lo)) * (sorted[lo+1] - sorted[lo])
				}
				if math.Abs(got[j]-want) > 1e-9 {
					t.Fatalf("n=%d trial %d q=%v: %v, want %v", n, trial, q, got[j], want)
				}
				if one := selectQuantile(slices.Clone(x), q); math.Abs(one-want) > 1e-9 {
					t.Fatalf("selectQuantile n=%d q=%v: %v, want %v", n, q, one, want)
				}
			}
		}
	}
}
