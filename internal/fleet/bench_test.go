package fleet

import (
	"testing"
	"time"
)

// BenchmarkAdvanceMinute is one simulated minute of the default fleet
// (about 22,000 requests across seven servers).
func BenchmarkAdvanceMinute(b *testing.B) {
	cfg := Default()
	cfg.Start = epoch
	f, err := New(cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		f.Advance(time.Minute)
	}
}
