package predict

import "math"

// selectQuantile returns the q-quantile of x (type 7, linear between order
// statistics) in expected linear time; it reorders x.
func selectQuantile(x []float64, q float64) float64 {
	n := len(x)
	if n == 0 {
		return math.NaN()
	}
	pos := q * float64(n-1)
	lo := int(math.Floor(pos))
	a := nthElement(x, lo)
	if lo+1 >= n || pos == float64(lo) {
		return a
	}
	// The next order statistic is the minimum of the part above lo.
	b := x[lo+1]
	for _, v := range x[lo+1:] {
		b = math.Min(b, v)
	}
	return a + (pos-float64(lo))*(b-a)
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
