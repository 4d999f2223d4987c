package metrics

import (
	"math"
	"slices"
	"sort"
)

// bucketQuantile estimates quantile q from cumulative bucket counts as
// PromQL's histogram_quantile does: linear interpolation inside the bucket,
// the lowest bucket starting at 0, and the highest finite bound when the rank
// falls in the +Inf bucket. les must be sorted and end with +Inf. It returns
// NaN when there are no observations.
func bucketQuantile(q float64, les, cum []float64) float64 {
	n := len(les)
	if n < 2 || !math.IsInf(les[n-1], 1) || len(cum) != n {
		return math.NaN()
	}
	total := cum[n-1]
	if total <= 0 || math.IsNaN(total) {
		return math.NaN()
	}
	switch {
	case q < 0:
		return math.Inf(-1)
	case q > 1:
		return math.Inf(1)
	}
	rank := q * total
	b := sort.Search(n-1, func(i int) bool { return cum[i] >= rank })
	if b == n-1 {
		return les[n-2]
	}
	if b == 0 && les[0] <= 0 {
		return les[0]
	}
	start, end, count := 0.0, les[b], cum[b]
	if b > 0 {
		start = les[b-1]
		count -= cum[b-1]
		rank -= cum[b-1]
	}
	if count <= 0 {
		return end
	}
	return start + (end-start)*(rank/count)
}

// ensureMonotonic repairs cumulative counts that decrease from one bucket to
// the next (torn scrapes, float precision), as Prometheus does.
func ensureMonotonic(cum []float64) {
	m := math.Inf(-1)
	for i, c := range cum {
		if c < m {
			cum[i] = m
		} else {
			m = c
		}
	}
}

// histDelta is the increase of one histogram over a window.
type histDelta struct {
	les   []float64 // sorted, ends with +Inf
	cum   []float64 // cumulative counts per bound
	sum   float64
	count float64
}

// add merges o into h. When both use the same bounds this is exact; with
// different bounds, each side contributes at every bound of the union the
// count of its largest bound not above it, which never overstates a quantile's
// bucket.
func (h *histDelta) add(o histDelta) {
	h.sum += o.sum
	h.count += o.count
	if len(h.les) == 0 {
		h.les = append(h.les[:0], o.les...)
		h.cum = append(h.cum[:0], o.cum...)
		return
	}
	if slices.Equal(h.les, o.les) {
		for i := range h.cum {
			h.cum[i] += o.cum[i]
		}
		return
	}
	les := mergeBounds(h.les, o.les)
	cum := make([]float64, len(les))
	for i, le := range les {
		cum[i] = stepAt(h.les, h.cum, le) + stepAt(o.les, o.cum, le)
	}
	h.les, h.cum = les, cum
}

func stepAt(les, cum []float64, x float64) float64 {
	i := sort.SearchFloat64s(les, x)
	if i < len(les) && les[i] == x {
		return cum[i]
	}
	if i == 0 {
		return 0
	}
	return cum[i-1]
}

func mergeBounds(a, b []float64) []float64 {
	out := make([]float64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i] < b[j]):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}
