package predict

import (
	"cmp"
	"math"
	"math/cmplx"
	"slices"
	"time"

	"gonum.org/v1/gonum/dsp/fourier"
)

// component is one sinusoid of a spectral fit: amp*cos(2*pi*freq*i + phase)
// at step i of the fitted window, freq in cycles per step.
type component struct {
	freq, amp, phase float64
}

// spectralFit finds the strongest periodic components of x (no NaN), like
// crane's DSP predictor: the top k bins of the FFT whose period lies between
// minPeriod steps and half the window (at least two cycles seen).
//
// It centres x in place; fft (re-used between refits of the same length) may
// be nil.
func spectralFit(x []float64, k, minPeriod int, fft *fourier.FFT, coeff []complex128) (mean float64, comps []component) {
	n := len(x)
	if n < 2*minPeriod || n < 8 {
		return 0, nil
	}
	for _, v := range x {
		mean += v
	}
	mean /= float64(n)
	for i := range x {
		x[i] -= mean
	}
	if fft == nil || fft.Len() != n {
		fft = fourier.NewFFT(n)
	}
	coeff = fft.Coefficients(coeff, x)
	type bin struct {
		i   int
		mag float64
	}
	bins := make([]bin, 0, len(coeff))
	for i := 2; i < len(coeff); i++ { // i=1 is a period of the whole window
		period := float64(n) / float64(i)
		if period < float64(minPeriod) {
			break
		}
		bins = append(bins, bin{i, cmplx.Abs(coeff[i])})
	}
	slices.SortFunc(bins, func(a, b bin) int { return cmp.Compare(b.mag, a.mag) })
	for _, b := range bins[:min(k, len(bins))] {
		c := coeff[b.i]
		scale := 2.0
		if n%2 == 0 && b.i == n/2 {
			scale = 1
		}
		comps = append(comps, component{
			freq:  float64(b.i) / float64(n),
			amp:   scale * cmplx.Abs(c) / float64(n),
			phase: cmplx.Phase(c),
		})
	}
	return mean, comps
}

// DetectPeriods returns the periods of the strongest cycles in s, strongest
// first (at most k). Gaps (NaN) are filled with the mean so that a missing
// stretch weakens a cycle without inventing one. The period of each peak is
// refined by parabolic interpolation between FFT bins.
func DetectPeriods(s Series, k int) []time.Duration {
	x := fillMean(s.Values)
	n := len(x)
	if n < 16 {
		return nil
	}
	var mean float64
	for _, v := range x {
		mean += v
	}
	mean /= float64(n)
	for i := range x {
		x[i] -= mean
	}
	coeff := fourier.NewFFT(n).Coefficients(nil, x)
	mag := make([]float64, len(coeff))
	for i, c := range coeff {
		mag[i] = cmplx.Abs(c)
	}
	// Local maxima, from bin 2 (two cycles in the window) up.
	type peak struct {
		pos, mag float64
	}
	var peaks []peak
	for i := 2; i < len(mag)-1; i++ {
		if mag[i] > mag[i-1] && mag[i] >= mag[i+1] {
			a, b, c := mag[i-1], mag[i], mag[i+1]
			off := 0.0
			if d := a - 2*b + c; d != 0 {
				off = 0.5 * (a - c) / d
			}
			peaks = append(peaks, peak{float64(i) + off, b})
		}
	}
	slices.SortFunc(peaks, func(a, b peak) int { return cmp.Compare(b.mag, a.mag) })
	var out []time.Duration
	for _, p := range peaks[:min(k, len(peaks))] {
		steps := float64(n) / p.pos
		out = append(out, time.Duration(steps*float64(s.Step)))
	}
	return out
}

func fillMean(v []float64) []float64 {
	var sum float64
	var n int
	for _, x := range v {
		if !math.IsNaN(x) {
			sum += x
			n++
		}
	}
	mean := 0.0
	if n > 0 {
		mean = sum / float64(n)
	}
	out := make([]float64, len(v))
	for i, x := range v {
		if math.IsNaN(x) {
			x = mean
		}
		out[i] = x
	}
	return out
}

// spectral forecasts the sum of the strongest cycles of the recent history,
// re-found at every refit, plus an exponentially weighted correction of the
// level (the cycles say the shape, the recent residuals say the level).
type spectral struct {
	k, minPeriod, window, season int
	alpha                        float64

	mean  float64
	comps []component
	// table[i] is the cycle sum at window step base+i, precomputed at refit
	// so that predict is a lookup.
	table []float64
	base  int // window step of table[0]
	pos   int // window step of the next observation
	resid float64
	fit   bool
	span  int // how many steps the table covers

	// Re-used between refits.
	buf   []float64
	fft   *fourier.FFT
	coeff []complex128
}

func (m *spectral) name() string { return "spectral" }

func (m *spectral) refit(h *ring) {
	n := min(h.len(), m.window)
	if m.season > 0 && n >= 2*m.season {
		n -= n % m.season // whole seasons: no leakage on the main cycle
	}
	// Cycles shorter than minPeriod are not fitted, so the FFT can run on
	// block means of k steps (k <= minPeriod/6 keeps every fitted cycle
	// well above the blocks' Nyquist period): a 14-day minute series is
	// 4,032 points instead of 20,160.
	k := max(1, m.minPeriod/6)
	if m.season > 0 && m.season%k != 0 {
		k = 1
	}
	n -= n % k
	nb := n / k
	m.buf = h.last(n, m.buf[:0])
	for b := range nb {
		var sum float64
		for _, v := range m.buf[b*k : (b+1)*k] {
			sum += v
		}
		m.buf[b] = sum / float64(k)
	}
	if m.fft == nil || m.fft.Len() != nb {
		m.fft = fourier.NewFFT(nb)
		m.coeff = make([]complex128, nb/2+1)
	}
	var comps []component
	m.mean, comps = spectralFit(m.buf[:nb], m.k, max(2, m.minPeriod/k), m.fft, m.coeff)
	if comps == nil {
		m.fit = false
		return
	}
	// Back to steps: block b is centred on step b*k + (k-1)/2.
	m.comps = m.comps[:0]
	for _, c := range comps {
		f := c.freq / float64(k)
		m.comps = append(m.comps, component{freq: f, amp: c.amp, phase: c.phase - 2*math.Pi*f*float64(k-1)/2})
	}
	m.pos, m.base = n, n-1
	if len(m.table) < m.span {
		m.table = make([]float64, m.span)
	}
	// Sum the cycles over the table by rotation (one complex product per
	// step and cycle) rather than a cosine each.
	for i := range m.table {
		m.table[i] = m.mean
	}
	for _, c := range m.comps {
		z := cmplx.Rect(c.amp, 2*math.Pi*c.freq*float64(m.base)+c.phase)
		w := cmplx.Rect(1, 2*math.Pi*c.freq)
		for i := range m.table {
			m.table[i] += real(z)
			z *= w
		}
	}
	m.resid = 0
	m.fit = true
}

func (m *spectral) eval(i int) float64 {
	v := m.mean
	for _, c := range m.comps {
		v += c.amp * math.Cos(2*math.Pi*c.freq*float64(i)+c.phase)
	}
	return v
}

func (m *spectral) at(i int) float64 {
	if j := i - m.base; j >= 0 && j < len(m.table) {
		return m.table[j]
	}
	return m.eval(i)
}

func (m *spectral) observe(x float64) {
	if !m.fit {
		return
	}
	m.resid += m.alpha * (x - m.at(m.pos) - m.resid)
	m.pos++
}

func (m *spectral) predict(h int) float64 {
	if !m.fit {
		return math.NaN()
	}
	return m.at(m.pos-1+h) + m.resid
}

// mainPeriod is the period, in steps, of the strongest fitted cycle when it
// swings deep enough to empty the series (amplitude at least half the
// mean): the only cycle that makes troughs of zero demand. 0 otherwise.
func (m *spectral) mainPeriod() float64 {
	if m == nil || !m.fit {
		return 0
	}
	var best component
	for _, c := range m.comps {
		if c.amp > best.amp {
			best = c
		}
	}
	if best.freq <= 0 || best.amp < 0.5*m.mean {
		return 0
	}
	return 1 / best.freq
}
