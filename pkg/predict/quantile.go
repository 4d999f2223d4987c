package predict

import "math"

// selectQuantiles returns the 0.5, 0.9 and 0.99 quantiles of x (type 7,
// linear between order statistics) in expected linear time; it reorders x.
// The selections nest: after placing the 0.99 order statistic, the 0.9 one
// is looked for only below it, and the 0.5 one below that.
func selectQuantiles(x []float64) [3]float64 {
	var out [3]float64
	n := len(x)
	if n == 0 {
		return [3]float64{math.NaN(), math.NaN(), math.NaN()}
	}
	hi := n
	for j, q := range [3]float64{0.99, 0.9, 0.5} {
		pos := q * float64(n-1)
		lo := int(pos)
		a := nthElement(x[:hi], lo)
		v := a
		if frac := pos - float64(lo); frac > 0 && lo+1 < n {
			// Everything after lo is no smaller than a: the next order
			// statistic is the least of them.
			b := x[lo+1]
			for _, y := range x[lo+2:] {
				if y < b {
					b = y
				}
			}
			v = a + frac*(b-a)
		}
		out[2-j] = v
		hi = lo + 1
	}
	return out
}

// selectQuantile returns the q-quantile of x (type 7); it reorders x.
func selectQuantile(x []float64, q float64) float64 {
	n := len(x)
	if n == 0 {
		return math.NaN()
	}
	pos := q * float64(n-1)
	lo := int(pos)
	a := nthElement(x, lo)
	if frac := pos - float64(lo); frac > 0 && lo+1 < n {
		b := x[lo+1]
		for _, y := range x[lo+2:] {
			if y < b {
				b = y
			}
		}
		return a + frac*(b-a)
	}
	return a
}

// nthElement partially sorts x so that x[k] is the k-th smallest, everything
// before it no larger and everything after it no smaller (Hoare selection
// with a median-of-three pivot).
func nthElement(x []float64, k int) float64 {
	lo, hi := 0, len(x)-1
	for lo < hi {
		mid := lo + (hi-lo)/2
		if x[mid] < x[lo] {
			x[mid], x[lo] = x[lo], x[mid]
		}
		if x[hi] < x[lo] {
			x[hi], x[lo] = x[lo], x[hi]
		}
		if x[hi] < x[mid] {
			x[hi], x[mid] = x[mid], x[hi]
		}
		pivot := x[mid]
		i, j := lo, hi
		for i <= j {
			for x[i] < pivot {
				i++
			}
			for x[j] > pivot {
				j--
			}
			if i <= j {
				x[i], x[j] = x[j], x[i]
				i++
				j--
			}
		}
		switch {
		case k <= j:
			hi = j
		case k >= i:
			lo = i
		default:
			return x[k]
		}
	}
	return x[k]
}
