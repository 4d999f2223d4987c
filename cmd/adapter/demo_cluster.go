package main

import (
	"math/rand/v2"
	"time"

	"github.com/infercast/infercast/pkg/capacity"
	"github.com/infercast/infercast/pkg/sim"
)

// demoCluster stands in for Kubernetes in `adapter demo`: it follows the
// targets the KEDA endpoint serves the way the HPA and the kubelet would,
// on the backtest's cluster model (sim.Cluster: launch, cold start, spot
// placement over zones, notices, removal order, billing), so that the demo
// and `adapter backtest` agree on what a cluster does. What is the demo's
// own: wall-clock time, a seeded spot market of three zones, and the cost
// in dollars.
type demoCluster struct {
	// start is the wall-clock time of the model's offset 0.
	start              time.Time
	priceOD, priceSpot float64 // $/replica-hour
	zones              []demoZone
	rng                *rand.Rand
	cluster            *sim.Cluster
	costDollars        float64
	// noticesRead holds each zone's notices at the last TakeNotices.
	noticesRead, noticesNow []int
	zonesUp                 []bool // scratch: the zones' availability
}

// demoZone is one spot pool: a two-state Markov chain, stepped in time.
type demoZone struct {
	up               bool
	meanUp, meanDown time.Duration
}

// newDemoCluster returns an empty cluster whose clock starts at start.
func newDemoCluster(seed uint64, start time.Time, coldStart, notice time.Duration, priceOD, priceSpot float64) *demoCluster {
	const zones = 3
	c := &demoCluster{
		start: start, priceOD: priceOD, priceSpot: priceSpot,
		rng:         rand.New(rand.NewPCG(seed, 0x5eed)),
		cluster:     sim.NewCluster(sim.Config{ColdStart: coldStart, Notice: notice}, zones),
		noticesRead: make([]int, zones),
	}
	// Each zone is up about 90 % of the time in spells of hours and down
	// for tens of minutes: the shape of the spot-high traces.
	for range zones {
		c.zones = append(c.zones, demoZone{up: true, meanUp: 6 * time.Hour, meanDown: 40 * time.Minute})
	}
	return c
}

// offset is now on the model's clock.
func (c *demoCluster) offset(now time.Time) time.Duration { return now.Sub(c.start) }

// availability is each zone's state, in a buffer reused from call to call.
func (c *demoCluster) availability() []bool {
	c.zonesUp = c.zonesUp[:0]
	for _, z := range c.zones {
		c.zonesUp = append(c.zonesUp, z.up)
	}
	return c.zonesUp
}

// Step advances the cluster by dt from now, in the model's order: replicas
// past their notice are gone, the market moves (reclaimed zones give their
// spot replicas a notice, pending spot replicas start where a zone is up),
// and every replica not pending is billed for dt.
func (c *demoCluster) Step(now time.Time, dt time.Duration) {
	for i := range c.zones {
		z := &c.zones[i]
		mean := z.meanUp
		if !z.up {
			mean = z.meanDown
		}
		if c.rng.Float64() < dt.Seconds()/mean.Seconds() {
			z.up = !z.up
		}
	}
	t := c.offset(now)
	c.cluster.RemoveGone(t)
	c.cluster.Availability(t, c.availability())
	n := c.cluster.Count(t)
	c.costDollars += (float64(n.BilledOnDemand)*c.priceOD + float64(n.BilledSpot)*c.priceSpot) * dt.Hours()
}

// Scale sets a tier's replicas that are not terminating to n, as a
// Deployment controller would: launching new ones (spot in the up zone
// with the fewest), or removing pending first, then starting ones, then
// the newest ready ones.
func (c *demoCluster) Scale(spot bool, n int, now time.Time) {
	c.cluster.Resize(spot, n, c.offset(now), c.availability())
}

// Tiers reports the replicas of each tier by state, and the spot replicas
// per zone, as a live source reports them to the planner.
func (c *demoCluster) Tiers(now time.Time) (od, spot capacity.TierState, spotByZone []int) {
	o, s := c.cluster.TierStates(c.offset(now))
	return tierState(o), tierState(s), c.cluster.SpotByPool(nil)
}

func tierState(s sim.TierState) capacity.TierState {
	return capacity.TierState{Ready: s.Ready, Starting: s.Starting, Pending: s.Pending, Terminating: s.Terminating}
}

// Ready is the replicas serving at now: ready and not yet terminated.
func (c *demoCluster) Ready(now time.Time) int {
	n := c.cluster.Count(c.offset(now))
	return n.ReadyOnDemand + n.ReadySpot
}

// Interruptions is the number of spot notices so far.
func (c *demoCluster) Interruptions() int { return c.cluster.Notices() }

// TakeNotices returns the notices since the last call and from how many
// zones they came.
func (c *demoCluster) TakeNotices() (notices, zones int) {
	c.noticesNow = c.cluster.PoolNotices(c.noticesNow)
	for i, n := range c.noticesNow {
		if n > c.noticesRead[i] {
			notices += n - c.noticesRead[i]
			zones++
		}
	}
	copy(c.noticesRead, c.noticesNow)
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
