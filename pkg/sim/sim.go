package sim

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxReplicas bounds what a policy may ask for in one tier: a larger target
// is a bug in the policy, not a fleet.
const MaxReplicas = 100_000

// MaxSteps bounds a run: 20 million steps of 5 s are over three years.
const MaxSteps = 20_000_000

// amountEpsilon is the request count below which a cohort is empty: it
// absorbs floating-point residue from spreading counts over steps.
const amountEpsilon = 1e-9

// Scenario is one trace, scale, set of spot pools and workload. Build it
// once with NewScenario and run any number of policies through it.
type Scenario struct {
	Config Config
	Trace  *Trace
	Scale  float64
	// Pools are the spot pools; empty means one pool, always available.
	Pools []*Pool

	arrivals []float64 // scaled requests per dt step
}

// NewScenario validates the inputs and spreads the trace over dt steps.
func NewScenario(cfg Config, tr *Trace, scale float64, pools []*Pool) (*Scenario, error) {
	var errs []error
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if tr == nil || len(tr.Counts) == 0 || tr.Step <= 0 {
		errs = append(errs, errors.New("trace is empty"))
	}
	if !(scale > 0) || math.IsInf(scale, 0) {
		errs = append(errs, fmt.Errorf("scale %v must be positive", scale))
	}
	for _, p := range pools {
		if p == nil || len(p.Data) == 0 || p.Gap <= 0 {
			errs = append(errs, errors.New("a spot pool is empty"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if steps := tr.Duration() / cfg.Step; steps > MaxSteps {
		return nil, fmt.Errorf("trace %s spans %v: %d steps of %v, more than the simulator's %d", tr.Name, tr.Duration(), steps, cfg.Step, MaxSteps)
	}
	sc := &Scenario{Config: cfg, Trace: tr, Scale: scale, Pools: pools, arrivals: stepArrivals(tr, scale, cfg.Step)}
	// Finite inputs whose products overflow would run to the end and give
	// a summary of +Inf that summary.json cannot hold: refuse them here.
	if r := sc.Requests(); math.IsInf(r, 0) {
		return nil, fmt.Errorf("trace %s scaled by %v holds %v requests: scale too large", tr.Name, scale, r)
	}
	// The dearest run the model allows (MaxReplicas in both tiers
	// throughout) must cost a finite number.
	if c := cfg.dollars(int64(len(sc.arrivals))*2*MaxReplicas, max(cfg.PriceOnDemand, cfg.PriceSpot)); math.IsInf(c, 0) {
		return nil, fmt.Errorf("prices (%v on-demand, %v spot) too large: %v of up to %d replicas could cost more than a number holds", cfg.PriceOnDemand, cfg.PriceSpot, tr.Duration(), 2*MaxReplicas)
	}
	return sc, nil
}

// Steps is the number of dt steps in the run.
func (sc *Scenario) Steps() int { return len(sc.arrivals) }

// Arrivals returns the scaled requests of every dt step of the run
// (read-only).
func (sc *Scenario) Arrivals() []float64 { return sc.arrivals[:len(sc.arrivals):len(sc.arrivals)] }

// Requests is the total scaled demand of the run.
func (sc *Scenario) Requests() float64 {
	s := 0.0
	for _, a := range sc.arrivals {
		s += a
	}
	return s
}

// spotAvailable reports whether pool i has capacity at offset d.
func (sc *Scenario) spotAvailable(i int, d time.Duration) bool {
	if len(sc.Pools) == 0 {
		return true
	}
	return sc.Pools[i].Available(d)
}

func (sc *Scenario) numPools() int { return max(1, len(sc.Pools)) }

// Decision is one row of decisions.csv.
type Decision struct {
	Time     time.Time
	OnDemand int
	Spot     int
}

// Sample aggregates one decision interval, for the report.
type Sample struct {
	Time time.Time // the decision time that opens the interval
	// Requests arriving in the interval; requests met, served late and
	// dropped during its steps (whenever they arrived).
	Arrivals, Met, Late, Dropped float64
	// Replicas serving at the decision step, after the decision.
	ReadyOnDemand, ReadySpot int
	PendingSpot, Terminating int
	// Cost is the cumulative cost in $ at the end of the interval.
	Cost float64
	// Band is the policy's forecast band (requests/s) when HasBand.
	Band    Band
	HasBand bool
}

// Result is the outcome of one policy's run.
type Result struct {
	Summary   Summary
	Decisions []Decision
	Timeline  []Sample
}

// Summary holds the fields of summary.json for one policy (SIMULATION.md,
// Outputs).
type Summary struct {
	Policy   string  `json:"policy"`
	Requests float64 `json:"requests"`
	Met      float64 `json:"met"`
	// Late were served after waiting longer than the queue SLO.
	Late    float64 `json:"served_late"`
	Dropped float64 `json:"dropped"`
	// Unserved were still queued when the trace ended (neither met nor dropped).
	Unserved             float64 `json:"unserved_at_end"`
	SLOAttainment        float64 `json:"slo_attainment"`
	CostDollars          float64 `json:"cost_dollars"`
	OnDemandCostDollars  float64 `json:"on_demand_cost_dollars"`
	SpotCostDollars      float64 `json:"spot_cost_dollars"`
	OnDemandReplicaHours float64 `json:"on_demand_replica_hours"`
	SpotReplicaHours     float64 `json:"spot_replica_hours"`
	SpotInterruptions    int     `json:"spot_interruptions"`
	Decisions            int     `json:"decisions"`

	OracleCostDollars          float64 `json:"oracle_cost_dollars"`
	SpotAwareOracleCostDollars float64 `json:"spot_aware_oracle_cost_dollars"`
	CostOverOracle             float64 `json:"cost_over_oracle"`
	CostOverSpotAwareOracle    float64 `json:"cost_over_spot_aware_oracle"`
}

// RunOptions are the knobs of one run that do not change the model.
type RunOptions struct {
	// Name is the policy's name in the summary.
	Name string
	// Progress, when set, is called now and then with the steps done.
	Progress func(done, total int)
}

type cohort struct {
	stamp  time.Duration
	amount float64
}

// state is a run's queue and bill; its replicas are in a Cluster.
type state struct {
	queue     []cohort
	head      int
	odSteps   int64 // replica-steps billed per tier
	spotSteps int64
}

// Run replays the scenario through p, step by step (SIMULATION.md, one
// step at time t, steps 1-6 in order).
func (sc *Scenario) Run(ctx context.Context, p Policy, opts RunOptions) (*Result, error) {
	cfg := sc.Config
	dt := cfg.Step
	n := len(sc.arrivals)
	perDecision := int(cfg.Interval / dt)
	s := &state{}
	cl := NewCluster(cfg, sc.numPools())
	avail := make([]bool, sc.numPools())
	res := &Result{
		Decisions: make([]Decision, 0, n/perDecision+1),
		Timeline:  make([]Sample, 0, n/perDecision+1),
	}
	bander, _ := p.(BandReporter)
	obs := &Observation{Start: sc.Trace.Start, Step: dt}
	var requests, met, late, dropped float64
	capPerReplica := cfg.Mu * dt.Seconds()

	for k := range n {
		if k&0x3fff == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			if opts.Progress != nil {
				opts.Progress(k, n)
			}
		}
		t := time.Duration(k) * dt
		decision := k%perDecision == 0

		// 1. Arrivals of [t, t+dt) join the queue as one cohort stamped t.
		var queueBefore float64
		if decision {
			queueBefore = s.queued()
		}
		if a := sc.arrivals[k]; a > 0 {
			s.queue = append(s.queue, cohort{stamp: t, amount: a})
			requests += a
		}

		// 2. Spot availability: notices in pools that turned unavailable,
		// then pending spot replicas start where they can be placed.
		for i := range avail {
			avail[i] = sc.spotAvailable(i, t)
		}
		cl.Availability(t, avail)

		// 3. The decision.
		var sample *Sample
		if decision {
			obs.Time = sc.Trace.Start.Add(t)
			obs.Arrivals = sc.arrivals[:k:k]
			obs.Queue = queueBefore
			obs.OnDemand, obs.Spot = cl.TierStates(t)
			obs.SpotByPool = cl.SpotByPool(obs.SpotByPool)
			obs.Met, obs.Late, obs.Dropped, obs.Interruptions = met, late, dropped, cl.Notices()
			od, sp := p.Decide(obs)
			od, sp = max(od, 0), max(sp, 0)
			if od > MaxReplicas || sp > MaxReplicas {
				return nil, fmt.Errorf("policy %s at %v asked for %d on-demand and %d spot replicas, more than %d",
					opts.Name, obs.Time, od, sp, MaxReplicas)
			}
			res.Decisions = append(res.Decisions, Decision{Time: obs.Time, OnDemand: od, Spot: sp})
			cl.Resize(false, od, t, avail)
			cl.Resize(true, sp, t, avail)
			res.Timeline = append(res.Timeline, Sample{Time: obs.Time})
			sample = &res.Timeline[len(res.Timeline)-1]
			if bander != nil {
				sample.Band, sample.HasBand = bander.ForecastBand()
			}
		} else {
			sample = &res.Timeline[len(res.Timeline)-1]
		}
		sample.Arrivals += sc.arrivals[k]

		// 4. Serving by every ready replica not yet terminated; 6. billing
		// of every replica not pending. One pass counts both.
		counts := cl.Count(t)
		if decision {
			sample.ReadyOnDemand, sample.ReadySpot = counts.ReadyOnDemand, counts.ReadySpot
			od, sp := cl.TierStates(t)
			sample.PendingSpot, sample.Terminating = sp.Pending, od.Terminating+sp.Terminating
		}
		capacity := capPerReplica * float64(counts.ReadyOnDemand+counts.ReadySpot)
		for capacity > 0 && s.head < len(s.queue) {
			c := &s.queue[s.head]
			take := min(c.amount, capacity)
			capacity -= take
			c.amount -= take
			if t-c.stamp <= cfg.QueueSLO {
				met += take
				sample.Met += take
			} else {
				late += take
				sample.Late += take
			}
			if c.amount < amountEpsilon {
				s.head++
			}
		}

		// 5. Cohorts older than the timeout are dropped.
		for s.head < len(s.queue) && t-s.queue[s.head].stamp > cfg.Timeout {
			dropped += s.queue[s.head].amount
			sample.Dropped += s.queue[s.head].amount
			s.head++
		}
		s.compactQueue()

		// 6. Billing, then replicas terminating by t+dt are gone.
		s.odSteps += int64(counts.BilledOnDemand)
		s.spotSteps += int64(counts.BilledSpot)
		cl.RemoveGone(t + dt)
		sample.Cost = cfg.dollars(s.odSteps, cfg.PriceOnDemand) + cfg.dollars(s.spotSteps, cfg.PriceSpot)
	}
	if opts.Progress != nil {
		opts.Progress(n, n)
	}

	oracle, aware := sc.OracleCosts()
	sum := Summary{
		Policy:                     opts.Name,
		Requests:                   requests,
		Met:                        met,
		Late:                       late,
		Dropped:                    dropped,
		Unserved:                   s.queued(),
		OnDemandCostDollars:        cfg.dollars(s.odSteps, cfg.PriceOnDemand),
		SpotCostDollars:            cfg.dollars(s.spotSteps, cfg.PriceSpot),
		OnDemandReplicaHours:       float64(s.odSteps) * dt.Hours(),
		SpotReplicaHours:           float64(s.spotSteps) * dt.Hours(),
		SpotInterruptions:          cl.Notices(),
		Decisions:                  len(res.Decisions),
		OracleCostDollars:          oracle,
		SpotAwareOracleCostDollars: aware,
	}
	sum.CostDollars = sum.OnDemandCostDollars + sum.SpotCostDollars
	sum.SLOAttainment = ratio(met, requests, 1)
	sum.CostOverOracle = ratio(sum.CostDollars, oracle, 0)
	sum.CostOverSpotAwareOracle = ratio(sum.CostDollars, aware, 0)
	res.Summary = sum
	return res, nil
}

// ratio is a/b, or ifZero when b is zero.
func ratio(a, b, ifZero float64) float64 {
	if b == 0 {
		return ifZero
	}
	return a / b
}

// queued is the number of requests waiting.
func (s *state) queued() float64 {
	q := 0.0
	for _, c := range s.queue[s.head:] {
		q += c.amount
	}
	return q
}

func (s *state) compactQueue() {
	if s.head > 64 && s.head*2 > len(s.queue) {
		s.queue = s.queue[:copy(s.queue, s.queue[s.head:])]
		s.head = 0
	}
}
