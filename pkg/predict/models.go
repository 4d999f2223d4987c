package predict

import (
	"math"
)

// model is one incremental forecaster inside Online. observe receives the
// cleaned value of each interval (never NaN: gaps and anomalies are replaced
// before they reach a model), predict(h) forecasts the interval h steps after
// the last one observed (h >= 1) and returns NaN when the model cannot yet
// forecast (a seasonal model without a full season of history).
type model interface {
	name() string
	observe(x float64)
	predict(h int) float64
}

// refitter is a model that re-estimates itself from the history on a
// schedule (not on every observation).
type refitter interface {
	refit(h *ring)
}

// ring holds the last cap cleaned values; at(k) is the value k steps before
// the newest (at(0) is the newest).
type ring struct {
	buf []float64
	n   int // values ever pushed
}

func newRing(capacity int) *ring { return &ring{buf: make([]float64, capacity)} }

func (r *ring) push(x float64) {
	r.buf[r.n%len(r.buf)] = x
	r.n++
}

// len is the number of values held.
func (r *ring) len() int { return min(r.n, len(r.buf)) }

// at returns the value k steps before the newest, or NaN when not held.
func (r *ring) at(k int) float64 {
	if k < 0 || k >= r.len() {
		return math.NaN()
	}
	return r.buf[(r.n-1-k)%len(r.buf)]
}

// set replaces the value k steps before the newest, if held.
func (r *ring) set(k int, x float64) {
	if k >= 0 && k < r.len() {
		r.buf[(r.n-1-k)%len(r.buf)] = x
	}
}

// last copies the newest n values (oldest first) into dst.
func (r *ring) last(n int, dst []float64) []float64 {
	n = min(n, r.len())
	dst = dst[:0]
	for k := n - 1; k >= 0; k-- {
		dst = append(dst, r.at(k))
	}
	return dst
}

// lastValue forecasts the last observed value (persistence).
type lastValue struct{ x float64 }

func (m *lastValue) name() string        { return "last-value" }
func (m *lastValue) observe(x float64)   { m.x = x }
func (m *lastValue) predict(int) float64 { return m.x }

// ewLevel forecasts an exponentially weighted level of recent values.
type ewLevel struct {
	label string
	alpha float64
	level float64
	init  bool
}

func (m *ewLevel) name() string { return m.label }
func (m *ewLevel) observe(x float64) {
	if !m.init {
		m.level, m.init = x, true
		return
	}
	m.level += m.alpha * (x - m.level)
}
func (m *ewLevel) predict(int) float64 { return m.level }

// seasonalNaive forecasts the value one period before the target interval.
type seasonalNaive struct {
	label  string
	period int
	hist   *ring
}

func (m *seasonalNaive) name() string    { return m.label }
func (m *seasonalNaive) observe(float64) {}
func (m *seasonalNaive) predict(h int) float64 {
	// The target is h steps ahead; go back whole periods until it is in the
	// past.
	k := m.period - h
	for k < 0 {
		k += m.period
	}
	return m.hist.at(k)
}

// holtWinters is additive double-seasonal Holt-Winters (Taylor 2003) with a
// damped trend: level + damped trend + a daily and a weekly profile. The
// seasonal updates are spread over neighbouring phases with a triangular
// kernel, so that a per-minute profile learns from the minutes around it
// instead of from one noisy count a day.
type holtWinters struct {
	label               string
	alpha, beta, phi    float64
	delta, omega        float64
	level, trend        float64
	day, week           []float64 // profiles; week may be nil
	dayPhase, weekPhase int       // phase of the next observation
	kernel              []float64 // weights for offsets -k..k, summing to 1
	damp                []float64 // damp[h] = phi + ... + phi^h, grown on demand
	n                   int
}

func newHoltWinters(label string, alpha float64, dayLen, weekLen int) *holtWinters {
	m := &holtWinters{label: label, alpha: alpha, beta: 0.002, phi: 0.9, delta: 0.1, omega: 0.1}
	m.day = make([]float64, dayLen)
	if weekLen > 0 {
		m.week = make([]float64, weekLen)
	}
	k := max(1, dayLen/96)
	m.kernel = make([]float64, 2*k+1)
	var sum float64
	for j := -k; j <= k; j++ {
		w := float64(k + 1 - abs(j))
		m.kernel[j+k] = w
		sum += w
	}
	for i := range m.kernel {
		m.kernel[i] /= sum
	}
	return m
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func (m *holtWinters) name() string { return m.label }

func (m *holtWinters) seasonal(dayPhase, weekPhase int) float64 {
	s := m.day[dayPhase%len(m.day)]
	if m.week != nil {
		s += m.week[weekPhase%len(m.week)]
	}
	return s
}

func (m *holtWinters) observe(x float64) {
	dp, wp := m.dayPhase, m.weekPhase
	if m.n == 0 {
		m.level = x
	}
	s := m.seasonal(dp, wp)
	prevLevel := m.level
	m.level = m.alpha*(x-s) + (1-m.alpha)*(m.level+m.phi*m.trend)
	m.trend = m.beta*(m.level-prevLevel) + (1-m.beta)*m.phi*m.trend
	// Seasonal errors: what the profile missed at this phase. Early on the
	// profiles learn fast (1/cycles seen) so that the first days count.
	k := len(m.kernel) / 2
	cycles := float64(m.n/len(m.day) + 1)
	delta := max(m.delta, 1/cycles)
	eDay := x - m.level - s + m.day[dp]
	m.spread(m.day, dp, delta*(eDay-m.day[dp]), k)
	if m.week != nil {
		// Only a few weeks are ever seen: learn the first week fully, then
		// slowly.
		omega := max(m.omega, 1/float64(m.n/len(m.week)+1))
		eWeek := x - m.level - m.day[dp]
		m.spread(m.week, wp, omega*(eWeek-m.week[wp]), k)
		m.weekPhase = (wp + 1) % len(m.week)
	}
	m.dayPhase = (dp + 1) % len(m.day)
	m.n++
}

func (m *holtWinters) spread(profile []float64, phase int, step float64, k int) {
	n, start := len(profile), phase-k
	if start >= 0 && phase+k < n {
		p := profile[start : start+len(m.kernel)]
		for j, w := range m.kernel {
			p[j] += step * w
		}
		return
	}
	for j, w := range m.kernel {
		i := (start + j + n) % n
		profile[i] += step * w
	}
}

func (m *holtWinters) predict(h int) float64 {
	if m.n < len(m.day) {
		return math.NaN()
	}
	// Sum of phi^1..phi^h.
	for len(m.damp) <= h {
		if len(m.damp) == 0 {
			m.damp = append(m.damp, 0)
			continue
		}
		k := len(m.damp)
		m.damp = append(m.damp, m.damp[k-1]+math.Pow(m.phi, float64(k)))
	}
	return m.level + m.damp[h]*m.trend + m.seasonal(m.dayPhase+h-1, m.weekPhase+h-1)
}

// ensemble averages the forecasts of its members: errors of different models
// partly cancel, which is why combinations so often beat their parts.
type ensemble struct {
	label   string
	members []model
	feed    []model // members that are not candidates themselves: fed here
}

func (m *ensemble) name() string { return m.label }
func (m *ensemble) observe(x float64) {
	for _, mm := range m.feed {
		mm.observe(x)
	}
}
func (m *ensemble) predict(h int) float64 {
	var sum float64
	n := 0
	for _, x := range m.members {
		if p := x.predict(h); !math.IsNaN(p) {
			sum += p
			n++
		}
	}
	if n < len(m.members) {
		return math.NaN()
	}
	return sum / float64(n)
}
