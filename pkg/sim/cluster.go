package sim

import (
	"math"
	"slices"
	"time"
)

// Cluster is the replicas of the model (SIMULATION.md steps 2, 3 and 6):
// launches with a cold start, spot replicas spread over pools, notices when
// a pool is reclaimed, pending spot replicas that start when a pool comes
// back, and the order in which extra replicas go. Scenario.Run drives one
// per run with the pools' availability files; `adapter demo` drives one
// with its own spot market, so that the demo's cluster is the backtest's.
//
// Times are offsets from the start of the run. The caller calls, at each
// step t: Availability, then Resize at a decision, then Count for serving
// and billing, then RemoveGone(t + dt).
type Cluster struct {
	coldStart, notice time.Duration
	replicas          []replica
	nextID            int
	poolLive          []int  // live (not gone) spot replicas per pool
	wasAvailable      []bool // each pool's availability at the last Availability
	poolNotices       []int  // notices given so far, per pool
	notices           int    // their sum
}

// noTermination marks a replica without a notice.
const noTermination = time.Duration(math.MaxInt64)

type replica struct {
	id      int
	spot    bool
	pool    int // spot: the pool it runs in, -1 while pending; on-demand: 0
	readyAt time.Duration
	term    time.Duration // termination time, or noTermination
}

func (r *replica) pending() bool { return r.spot && r.pool < 0 }

// NewCluster returns an empty cluster with cfg's cold start and notice and
// pools spot pools (at least one). Every pool counts as available before
// the first Availability: a pool unavailable at the start holds nothing to
// notify.
func NewCluster(cfg Config, pools int) *Cluster {
	pools = max(pools, 1)
	c := &Cluster{
		coldStart: cfg.ColdStart, notice: cfg.Notice,
		poolLive:     make([]int, pools),
		wasAvailable: make([]bool, pools),
		poolNotices:  make([]int, pools),
	}
	for i := range c.wasAvailable {
		c.wasAvailable[i] = true
	}
	return c
}

// Availability applies the spot pools' availability at t, one bool per pool
// (SIMULATION.md step 2): in every pool that turned from available to
// unavailable, each spot replica not already terminating gets a notice and
// terminates at t + notice; then pending spot replicas start, one at a
// time, where they can be placed.
func (c *Cluster) Availability(t time.Duration, avail []bool) {
	for i, ok := range avail {
		if c.wasAvailable[i] && !ok {
			for j := range c.replicas {
				r := &c.replicas[j]
				if r.spot && r.pool == i && r.term == noTermination {
					r.term = t + c.notice
					c.poolNotices[i]++
					c.notices++
				}
			}
		}
		c.wasAvailable[i] = ok
	}
	for j := range c.replicas {
		r := &c.replicas[j]
		if !r.pending() {
			continue
		}
		pi := c.place(avail)
		if pi < 0 {
			break
		}
		r.pool, r.readyAt = pi, t+c.coldStart
		c.poolLive[pi]++
	}
}

// place returns the available pool with the fewest live spot replicas, the
// lowest index on a tie, or -1 when no pool is available (SIMULATION.md,
// spot pools).
func (c *Cluster) place(avail []bool) int {
	best := -1
	for i, ok := range avail {
		if ok && (best < 0 || c.poolLive[i] < c.poolLive[best]) {
			best = i
		}
	}
	return best
}

// Resize brings one tier's replicas that are not terminating to want
// (SIMULATION.md step 3): missing ones are launched at t, a spot one placed
// by avail (pending while no pool is available); extra ones are removed at
// once, pending first, then starting (latest ready first), then ready
// (newest first). Replicas that became ready at the same time go newest
// launch first.
func (c *Cluster) Resize(spot bool, want int, t time.Duration, avail []bool) {
	have := 0
	for j := range c.replicas {
		if r := &c.replicas[j]; r.spot == spot && r.term == noTermination {
			have++
		}
	}
	for ; have < want; have++ {
		r := replica{id: c.nextID, spot: spot, readyAt: t + c.coldStart, term: noTermination}
		c.nextID++
		if spot {
			r.pool = c.place(avail)
			if r.pool >= 0 {
				c.poolLive[r.pool]++
			}
		}
		c.replicas = append(c.replicas, r)
	}
	if have <= want {
		return
	}
	idx := make([]int, 0, have)
	for j := range c.replicas {
		if r := &c.replicas[j]; r.spot == spot && r.term == noTermination {
			idx = append(idx, j)
		}
	}
	slices.SortFunc(idx, func(a, b int) int {
		ra, rb := &c.replicas[a], &c.replicas[b]
		if pa, pb := ra.pending(), rb.pending(); pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		if ra.readyAt != rb.readyAt {
			if ra.readyAt > rb.readyAt {
				return -1
			}
			return 1
		}
		return rb.id - ra.id
	})
	drop := make(map[int]bool, have-want)
	for _, j := range idx[:have-want] {
		drop[j] = true
	}
	kept := c.replicas[:0]
	for j := range c.replicas {
		r := c.replicas[j]
		if drop[j] {
			if r.spot && r.pool >= 0 {
				c.poolLive[r.pool]--
			}
			continue
		}
		kept = append(kept, r)
	}
	c.replicas = kept
}

// StepCounts are the replicas that serve at a step and those billed for it.
type StepCounts struct {
	// ReadyOnDemand and ReadySpot are ready and not terminated: they serve
	// (SIMULATION.md step 4).
	ReadyOnDemand, ReadySpot int
	// BilledOnDemand and BilledSpot are not pending: they are billed for
	// the step (step 6).
	BilledOnDemand, BilledSpot int
}

// Count returns the replicas serving at t and those billed for the step
// from t. It is one pass over the replicas, as it runs at every step.
func (c *Cluster) Count(t time.Duration) StepCounts {
	var n StepCounts
	for j := range c.replicas {
		r := &c.replicas[j]
		if r.pending() {
			continue
		}
		if r.readyAt <= t && r.term > t {
			if r.spot {
				n.ReadySpot++
			} else {
				n.ReadyOnDemand++
			}
		}
		if r.spot {
			n.BilledSpot++
		} else {
			n.BilledOnDemand++
		}
	}
	return n
}

// RemoveGone drops the replicas terminating at or before end (SIMULATION.md
// step 6: end is t + dt).
func (c *Cluster) RemoveGone(end time.Duration) {
	kept := c.replicas[:0]
	for _, r := range c.replicas {
		if r.term <= end {
			if r.spot && r.pool >= 0 {
				c.poolLive[r.pool]--
			}
			continue
		}
		kept = append(kept, r)
	}
	c.replicas = kept
}

// TierStates counts each tier's replicas by state at t, as a policy sees
// them.
func (c *Cluster) TierStates(t time.Duration) (od, spot TierState) {
	for j := range c.replicas {
		r := &c.replicas[j]
		ts := &od
		if r.spot {
			ts = &spot
		}
		switch {
		case r.term != noTermination:
			ts.Terminating++
		case r.pending():
			ts.Pending++
		case r.readyAt > t:
			ts.Starting++
		default:
			ts.Ready++
		}
	}
	return od, spot
}

// SpotByPool fills buf with the placed, non-terminating spot replicas of
// every pool.
func (c *Cluster) SpotByPool(buf []int) []int {
	buf = append(buf[:0], make([]int, len(c.poolLive))...)
	for j := range c.replicas {
		if r := &c.replicas[j]; r.spot && r.pool >= 0 && r.term == noTermination {
			buf[r.pool]++
		}
	}
	return buf
}

// Notices is the number of spot interruption notices given so far.
func (c *Cluster) Notices() int { return c.notices }

// PoolNotices fills buf with the notices given so far in every pool.
func (c *Cluster) PoolNotices(buf []int) []int { return append(buf[:0], c.poolNotices...) }
