package main

import (
	"math"
	"math/rand/v2"
	"time"
)

// traffic is the demo's seeded demand generator: a daily cycle with a
// morning and an evening peak (the shape of real web and chat traffic:
// about 0.4x to 1.6x of the mean), bursts that arrive as a Poisson process
// and decay, and multiplicative noise. Rate is a pure function of the
// simulated time and the seed, so a demo run can be repeated exactly.
type traffic struct {
	mean   float64 // requests/s averaged over a day
	seed   uint64
	bursts []burst
}

type burst struct {
	start  time.Duration // offset from the day's origin
	height float64       // extra demand as a multiple of the mean
	decay  time.Duration
}

// newTraffic lays out bursts for days days: about three a day, each adding
// 0.5x to 1.5x of the mean and decaying over 5 to 20 minutes.
func newTraffic(mean float64, seed uint64, days int) *traffic {
	r := rand.New(rand.NewPCG(seed, 0x1f2e3d4c))
	tr := &traffic{mean: mean, seed: seed}
	span := time.Duration(days) * 24 * time.Hour
	for t := time.Duration(0); ; {
		t += time.Duration(r.ExpFloat64() * float64(8*time.Hour))
		if t >= span {
			break
		}
		tr.bursts = append(tr.bursts, burst{
			start:  t,
			height: 0.5 + r.Float64(),
			decay:  5*time.Minute + time.Duration(r.Float64()*float64(15*time.Minute)),
		})
	}
	return tr
}

// daily is the cycle's shape at offset d into a day: mean 1 over the day.
func daily(d time.Duration) float64 {
	h := math.Mod(d.Hours(), 24)
	x := 2 * math.Pi * h / 24
	// A fundamental peaking mid-afternoon plus a second harmonic that
	// gives a morning shoulder; amplitudes keep the range near 0.4-1.6.
	return 1 + 0.45*math.Sin(x-math.Pi/2-0.6) + 0.18*math.Sin(2*x-0.3)
}

// Rate returns the demand in requests/s at offset d from the run's start.
func (tr *traffic) Rate(d time.Duration) float64 {
	v := daily(d)
	for _, b := range tr.bursts {
		if d >= b.start {
			age := d - b.start
			if age < 6*b.decay {
				v += b.height * math.Exp(-float64(age)/float64(b.decay))
			}
		}
	}
	// Noise: deterministic per minute, so repeated calls within a minute agree.
	minute := uint64(d / time.Minute)
	n := rand.New(rand.NewPCG(tr.seed, minute))
	v *= math.Exp(0.08 * n.NormFloat64())
	return math.Max(0, tr.mean*v)
}
