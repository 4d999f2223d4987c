package sim

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/infercast/infercast/internal/testutil"
)

// BenchmarkNASAJuly backtests the 28-day nasa-1995-07 trace (x10) at 5 s
// steps, 161k decisions, through the reactive HPA: the budget is
// under 10 s on one core (go test -bench NASAJuly -cpu 1).
func BenchmarkNASAJuly(b *testing.B) {
	ctx := context.Background()
	dir := filepath.Join(testutil.SharedDir(b), "traces")
	tr, err := LoadTrace(ctx, filepath.Join(dir, "nasa-1995-07.csv"))
	if err != nil {
		b.Fatal(err)
	}
	var pools []*Pool
	for _, z := range []string{"a", "b", "c"} {
		p, err := LoadPool(ctx, filepath.Join(dir, "spot", "spot-medium-"+z+".json"))
		if err != nil {
			b.Fatal(err)
		}
		pools = append(pools, p)
	}
	sc, err := NewScenario(DefaultConfig(), tr, 10, pools)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		res, err := sc.Run(ctx, NewReactive(sc.Config), RunOptions{Name: "reactive"})
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(res.Summary.Decisions), "decisions")
	}
}
