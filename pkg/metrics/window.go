package metrics

import (
	"slices"
	"time"
)

// slot says what one element of a model's counter vector holds.
type slot struct {
	sig  Signal
	part part    // partValue for counters; count/sum/bucket for histograms
	le   float64 // bucket bound
}

// snap is the cumulative counter vector at one scrape.
type snap struct {
	t time.Time
	v []float64
}

// modelSeries is the history of one model on one target: the counters and
// histograms as cumulative vectors of their increases since the model was
// first seen (so a delta between any two snapshots is the true increase,
// across restarts of its series), and the last gauges.
type modelSeries struct {
	layout   []slot
	groups   [][2]int // [start,end) of each counter or histogram in layout
	cum      []float64
	ring     []snap
	free     [][]float64
	gauges   [numSignals]float64
	gaugeSet uint32
	lastSeen time.Time
	// ws[i] are the stats over window i after the last commit.
	ws   []windowStats
	wsOK []bool
}

// layoutOf lists the slots a model's scrape fills, in a fixed order.
func layoutOf(a *modelAcc, dst []slot) []slot {
	dst = dst[:0]
	for s := firstCounter; s < numCounters; s++ {
		if a.has(s) {
			dst = append(dst, slot{sig: s, part: partValue})
		}
	}
	for i := range numHists {
		s := firstHist + Signal(i)
		if !a.has(s) {
			continue
		}
		h := &a.hists[i]
		dst = append(dst, slot{sig: s, part: partCount}, slot{sig: s, part: partSum})
		for _, le := range h.les {
			dst = append(dst, slot{sig: s, part: partBucket, le: le})
		}
	}
	return dst
}

// commit records one successful scrape of the model: its gauges, and its
// counters' and histograms' increases (a.inc, a.incHists, which handled
// restarts series by series).
func (m *modelSeries) commit(a *modelAcc, now time.Time, maxWindow time.Duration, scratch *[]slot) {
	m.gaugeSet = 0
	for s := SigWaiting; s <= SigBatchSize; s++ {
		if a.has(s) {
			m.gauges[s] = a.vals[s]
			m.gaugeSet |= 1 << s
		}
	}
	m.lastSeen = now

	lay := layoutOf(a, *scratch)
	*scratch = lay
	inc := m.take(len(lay))
	fillInc(a, lay, inc)
	if !slices.Equal(lay, m.layout) {
		m.relayout(lay, inc)
		m.free = append(m.free, inc)
		m.push(now, maxWindow)
		return
	}
	for i, d := range inc {
		m.cum[i] += d
	}
	m.free = append(m.free, inc)
	m.push(now, maxWindow)
}

// relayout starts the history over with a new layout (a counter or
// histogram appeared or went, a histogram's buckets changed): snapshots of
// different layouts cannot be compared element by element, so the windows
// start afresh from this scrape. A counter or histogram whose slots are
// unchanged keeps its cumulative value, with inc, this scrape's increase,
// added: what latest reads keeps growing. A new or changed one starts at
// zero.
func (m *modelSeries) relayout(lay []slot, inc []float64) {
	oldLayout, oldGroups, oldCum := m.layout, m.groups, m.cum
	m.layout = slices.Clone(lay)
	m.groups = nil
	for i := 0; i < len(lay); {
		j := i + 1
		for j < len(lay) && lay[j].sig == lay[i].sig && lay[i].sig.isHist() {
			j++
		}
		m.groups = append(m.groups, [2]int{i, j})
		i = j
	}
	m.cum = make([]float64, len(lay))
	for _, g := range m.groups {
		for _, og := range oldGroups {
			if slices.Equal(oldLayout[og[0]:og[1]], lay[g[0]:g[1]]) {
				for k := range g[1] - g[0] {
					m.cum[g[0]+k] = oldCum[og[0]+k] + inc[g[0]+k]
				}
				break
			}
		}
	}
	for _, s := range m.ring {
		m.free = append(m.free, s.v)
	}
	m.ring = m.ring[:0]
}

// fillInc writes the scrape's increases in layout order.
func fillInc(a *modelAcc, lay []slot, dst []float64) {
	i := 0
	for i < len(lay) {
		s := lay[i]
		if !s.sig.isHist() {
			dst[i] = a.inc[s.sig]
			i++
			continue
		}
		h := &a.incHists[s.sig-firstHist]
		dst[i], dst[i+1] = h.count, h.sum
		i += 2
		i += copy(dst[i:], h.cum)
	}
}

func (m *modelSeries) take(n int) []float64 {
	if k := len(m.free); k > 0 {
		v := m.free[k-1]
		m.free = m.free[:k-1]
		if cap(v) >= n {
			return v[:n]
		}
	}
	return make([]float64, n)
}

// push appends the adjusted vector and drops snapshots no window needs: one
// at or before now-maxWindow is kept as the base of the longest window.
func (m *modelSeries) push(now time.Time, maxWindow time.Duration) {
	v := m.take(len(m.cum))
	copy(v, m.cum)
	m.ring = append(m.ring, snap{t: now, v: v})
	cut := now.Add(-maxWindow)
	drop := 0
	for drop+1 < len(m.ring) && !m.ring[drop+1].t.After(cut) {
		drop++
	}
	if drop > 0 {
		for _, s := range m.ring[:drop] {
			m.free = append(m.free, s.v)
		}
		n := copy(m.ring, m.ring[drop:])
		clear(m.ring[n:])
		m.ring = m.ring[:n]
	}
}

// window returns the oldest and newest snapshots spanning w: the newest
// snapshot at or before now-w when there is one (a full window), else the
// oldest kept (a partial window, right after start or a long gap). ok is
// false until two snapshots exist.
func (m *modelSeries) window(now time.Time, w time.Duration) (base, last *snap, ok bool) {
	n := len(m.ring)
	if n < 2 {
		return nil, nil, false
	}
	last = &m.ring[n-1]
	cut := now.Add(-w)
	base = &m.ring[0]
	for i := n - 2; i >= 0; i-- {
		if !m.ring[i].t.After(cut) {
			base = &m.ring[i]
			break
		}
	}
	return base, last, last.t.After(base.t)
}

// latest returns the cumulative value of counter sig at the last snapshot:
// it only grows while the model's target exposes the counter (relayout).
func (m *modelSeries) latest(sig Signal) (float64, bool) {
	if len(m.ring) == 0 {
		return 0, false
	}
	for _, g := range m.groups {
		if m.layout[g[0]].sig == sig {
			return m.ring[len(m.ring)-1].v[g[0]], true
		}
	}
	return 0, false
}

// windowStats is what one model on one target did over one window.
type windowStats struct {
	dt         float64 // seconds between base and last snapshot
	counters   [numCounters]float64
	counterSet uint32
	hists      [numHists]histDelta
	histSet    uint32
}

// stats fills ws with the increases over window w; false when there is not
// yet a window's worth of history.
func (m *modelSeries) stats(now time.Time, w time.Duration, ws *windowStats) bool {
	base, last, ok := m.window(now, w)
	ws.counterSet, ws.histSet = 0, 0
	if !ok {
		return false
	}
	ws.dt = last.t.Sub(base.t).Seconds()
	for _, g := range m.groups {
		s := m.layout[g[0]]
		if !s.sig.isHist() {
			ws.counters[s.sig] = last.v[g[0]] - base.v[g[0]]
			ws.counterSet |= 1 << s.sig
			continue
		}
		h := &ws.hists[s.sig-firstHist]
		h.count = last.v[g[0]] - base.v[g[0]]
		h.sum = last.v[g[0]+1] - base.v[g[0]+1]
		h.les, h.cum = h.les[:0], h.cum[:0]
		for i := g[0] + 2; i < g[1]; i++ {
			h.les = append(h.les, m.layout[i].le)
			h.cum = append(h.cum, last.v[i]-base.v[i])
		}
		ws.histSet |= 1 << (s.sig - firstHist)
	}
	return true
}
