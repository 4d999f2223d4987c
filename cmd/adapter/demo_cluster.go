package main

import (
	"math/rand/v2"
	"time"

	"github.com/infercast/infercast/pkg/capacity"
)

// demoCluster stands in for Kubernetes in `adapter demo`: it follows the
// targets the KEDA endpoint serves the way the HPA and the kubelet would
// (launch, a cold start, removal), and it runs a seeded spot market whose
// zones are reclaimed with a notice. It bills every placed replica.
type demoCluster struct {
	coldStart, notice  time.Duration
	priceOD, priceSpot float64 // $/replica-hour
	zones              []demoZone
	rng                *rand.Rand
	replicas           []demoReplica
	costDollars        float64
	interruptions      int
	noticesSinceRead   int
	noticeZones        map[int]bool
}

// demoZone is one spot pool: a two-state Markov chain, stepped in time.
type demoZone struct {
	up               bool
	meanUp, meanDown time.Duration
}

type demoReplica struct {
	spot        bool
	zone        int // spot: its zone, -1 while pending
	readyAt     time.Time
	terminateAt time.Time // zero: no notice
}

func (r *demoReplica) pending() bool     { return r.spot && r.zone < 0 }
func (r *demoReplica) terminating() bool { return !r.terminateAt.IsZero() }

func newDemoCluster(seed uint64, coldStart, notice time.Duration, priceOD, priceSpot float64) *demoCluster {
	c := &demoCluster{
		coldStart: coldStart, notice: notice, priceOD: priceOD, priceSpot: priceSpot,
		rng:         rand.New(rand.NewPCG(seed, 0x5eed)),
		noticeZones: map[int]bool{},
	}
	// Three zones, each up about 90 % of the time in spells of hours and
	// down for tens of minutes: the shape of the spot-high traces.
	for range 3 {
		c.zones = append(c.zones, demoZone{up: true, meanUp: 6 * time.Hour, meanDown: 40 * time.Minute})
	}
	return c
}

// Step advances the market by dt at time now: zones that are reclaimed give
// their spot replicas a notice, pending spot replicas start where a zone is
// up, replicas past their notice are gone, and every placed replica is billed.
func (c *demoCluster) Step(now time.Time, dt time.Duration) {
	for i := range c.zones {
		z := &c.zones[i]
		mean := z.meanUp
		if !z.up {
			mean = z.meanDown
		}
		if c.rng.Float64() < dt.Seconds()/mean.Seconds() {
			z.up = !z.up
			if !z.up {
				c.reclaim(i, now)
			}
		}
	}
	for j := range c.replicas {
		if r := &c.replicas[j]; r.pending() {
			if z := c.placeSpot(); z >= 0 {
				r.zone, r.readyAt = z, now.Add(c.coldStart)
			}
		}
	}
	live := c.replicas[:0]
	for _, r := range c.replicas {
		if r.terminating() && !r.terminateAt.After(now) {
			continue
		}
		live = append(live, r)
	}
	c.replicas = live
	for _, r := range c.replicas {
		switch {
		case r.pending():
		case r.spot:
			c.costDollars += c.priceSpot * dt.Hours()
		default:
			c.costDollars += c.priceOD * dt.Hours()
		}
	}
}

func (c *demoCluster) reclaim(zone int, now time.Time) {
	for j := range c.replicas {
		r := &c.replicas[j]
		if r.spot && r.zone == zone && !r.terminating() {
			r.terminateAt = now.Add(c.notice)
			c.interruptions++
			c.noticesSinceRead++
			c.noticeZones[zone] = true
		}
	}
}

// placeSpot picks the up zone with the fewest spot replicas, -1 if none.
func (c *demoCluster) placeSpot() int {
	count := make([]int, len(c.zones))
	for _, r := range c.replicas {
		if r.spot && r.zone >= 0 {
			count[r.zone]++
		}
	}
	best := -1
	for i, z := range c.zones {
		if z.up && (best < 0 || count[i] < count[best]) {
			best = i
		}
	}
	return best
}

// Scale sets a tier's replicas that are not terminating to n, as a
// Deployment controller would: launching new ones, or removing pending
// first, then starting ones, then the newest ready ones.
func (c *demoCluster) Scale(spot bool, n int, now time.Time) {
	var idx []int
	for j, r := range c.replicas {
		if r.spot == spot && !r.terminating() {
			idx = append(idx, j)
		}
	}
	for k := len(idx); k < n; k++ {
		r := demoReplica{spot: spot, readyAt: now.Add(c.coldStart)}
		if spot {
			r.zone = c.placeSpot()
		}
		c.replicas = append(c.replicas, r)
	}
	if extra := len(idx) - n; extra > 0 {
		remove := map[int]bool{}
		// Newest replicas sit last; walk back through pending, then
		// starting, then ready.
		for _, want := range []func(r *demoReplica) bool{
			func(r *demoReplica) bool { return r.pending() },
			func(r *demoReplica) bool { return !r.pending() && r.readyAt.After(now) },
			func(r *demoReplica) bool { return !r.pending() && !r.readyAt.After(now) },
		} {
			for k := len(idx) - 1; k >= 0 && len(remove) < extra; k-- {
				if j := idx[k]; !remove[j] && want(&c.replicas[j]) {
					remove[j] = true
				}
			}
		}
		kept := c.replicas[:0]
		for j, r := range c.replicas {
			if !remove[j] {
				kept = append(kept, r)
			}
		}
		c.replicas = kept
	}
}

// Tiers reports the replicas of each tier by state, and the spot replicas
// per zone, as a live source reports them to the planner.
func (c *demoCluster) Tiers(now time.Time) (od, spot capacity.TierState, spotByZone []int) {
	spotByZone = make([]int, len(c.zones))
	for _, r := range c.replicas {
		ts := &od
		if r.spot {
			ts = &spot
		}
		switch {
		case r.terminating():
			ts.Terminating++
		case r.pending():
			ts.Pending++
		case r.readyAt.After(now):
			ts.Starting++
		default:
			ts.Ready++
		}
		if r.spot && r.zone >= 0 && !r.terminating() {
			spotByZone[r.zone]++
		}
	}
	return od, spot, spotByZone
}

// Ready is the replicas serving at now: ready and not yet terminated.
func (c *demoCluster) Ready(now time.Time) int {
	n := 0
	for _, r := range c.replicas {
		if !r.pending() && !r.readyAt.After(now) {
			n++
		}
	}
	return n
}

// TakeNotices returns the notices since the last call and from how many
// zones they came.
func (c *demoCluster) TakeNotices() (notices, zones int) {
	notices, zones = c.noticesSinceRead, len(c.noticeZones)
	c.noticesSinceRead = 0
	clear(c.noticeZones)
	return notices, zones
}

// ZonesUp counts the spot zones with capacity.
func (c *demoCluster) ZonesUp() int {
	n := 0
	for _, z := range c.zones {
		if z.up {
			n++
		}
	}
	return n
}
