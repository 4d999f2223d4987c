package main

import (
	"testing"
	"time"
)

func TestTrafficIsSeededDailyAndBursty(t *testing.T) {
	a, b := newTraffic(40, 7, 2), newTraffic(40, 7, 2)
	c := newTraffic(40, 8, 2)
	differs := false
	var sum, lo, hi float64 = 0, 1e9, 0
	n := 0
	for d := time.Duration(0); d < 24*time.Hour; d += time.Minute {
		ra, rb := a.Rate(d), b.Rate(d)
		if ra != rb {
			t.Fatalf("same seed, different rate at %v: %v vs %v", d, ra, rb)
		}
		if ra != c.Rate(d) {
			differs = true
		}
		if ra < 0 {
			t.Fatalf("negative rate %v at %v", ra, d)
		}
		sum += ra
		n++
		// The hourly shape without bursts and noise.
		s := daily(d)
		lo, hi = min(lo, s), max(hi, s)
	}
	if !differs {
		t.Error("different seeds gave the same traffic")
	}
	if mean := sum / float64(n); mean < 40 || mean > 40*1.6 {
		t.Errorf("daily mean %v, want the configured 40 plus bursts (at most +60%%)", mean)
	}
	if lo < 0.3 || lo > 0.6 || hi < 1.4 || hi > 1.8 {
		t.Errorf("daily cycle spans %.2f-%.2f of the mean, want about 0.4-1.6", lo, hi)
	}
	if len(a.bursts) == 0 {
		t.Error("no bursts in two days")
	}
}
