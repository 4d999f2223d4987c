package batchsim

import (
	"errors"
	"math"
)

// Target is the SLO attainment that goodput must keep.
const Target = 0.99

// Resolution is the relative precision of Goodput: the bisection stops
// when the bracket is narrower than this fraction. 0.1 %: the policies
// compared on the real traces differ by well under 1 %, and at 0.5 % they
// fell on the same few lattice points.
const Resolution = 0.001

// Compress returns the arrivals with time divided by k: the same trace at k
// times its rate.
func Compress(arrivals []float64, k float64) []float64 {
	out := make([]float64, len(arrivals))
	for i, a := range arrivals {
		out[i] = a / k
	}
	return out
}

// Goodput is the largest multiple k of the trace's rate at which at least
// Target of the requests meet the SLO, found by bisection to within Resolution
// (attainment is assumed to fall as k grows; where it is not monotone the
// search returns one crossing). newPolicy must return a fresh policy: each
// replay starts from nothing, as a controller deployed on that traffic would.
func Goodput(arrivals []float64, newPolicy func() Policy, cfg Config) (float64, error) {
	if len(arrivals) == 0 {
		return 0, errors.New("batchsim: empty trace")
	}
	cfg.Percentiles = false
	ok := func(k float64) (bool, error) {
		r, err := Run(Compress(arrivals, k), newPolicy(), cfg)
		return r.SLOAttainment >= Target, err
	}
	lo, hi := 0.0, 1.0
	for {
		good, err := ok(hi)
		if err != nil {
			return 0, err
		}
		if !good {
			break
		}
		lo, hi = hi, hi*2
		if hi > 1<<16 {
			return lo, nil
		}
	}
	if lo == 0 {
		for lo == 0 && hi > 1.0/(1<<16) {
			k := hi / 2
			good, err := ok(k)
			if err != nil {
				return 0, err
			}
			if good {
				lo = k
			} else {
				hi = k
			}
		}
		if lo == 0 {
			return 0, nil
		}
	}
	for hi/lo > 1+Resolution {
		k := math.Sqrt(lo * hi)
		good, err := ok(k)
		if err != nil {
			return 0, err
		}
		if good {
			lo = k
		} else {
			hi = k
		}
	}
	return lo, nil
}
