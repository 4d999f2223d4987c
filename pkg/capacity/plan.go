// Package capacity turns demand forecasts and live signals into replica
// targets per capacity tier. It knows no transport: pkg/scaler (KEDA) and
// pkg/provider (custom metrics API) serve the plans it caches.
package capacity

import (
	"maps"
	"sort"
	"sync"
	"time"
)

// Tier names used in plans and in ScaledObject metadata.
const (
	TierOnDemand = "on-demand"
	TierSpot     = "spot"
)

// Mode says which rule produced a plan.
type Mode string

const (
	ModePredictive Mode = "predictive" // sized from the forecast
	ModeReactive   Mode = "reactive"   // forecast unavailable: sized from live signals only
	ModeFallback   Mode = "fallback"   // spot capacity missing: moved to on-demand
	ModePreview    Mode = "preview"    // computed and exported, not acted on
)

// TierTarget is the target of one tier of one workload.
type TierTarget struct {
	Replicas int
	// Margin is the part of Replicas added for interruption risk (spot only).
	Margin int
}

// Plan is the planner's decision for one workload at one time.
type Plan struct {
	Workload string
	Time     time.Time
	Mode     Mode
	// Tiers maps a tier name (TierOnDemand, TierSpot) to its target.
	Tiers map[string]TierTarget
	// Active is true when demand is live now or forecast within the cold
	// start lead time: a workload at zero must be woken.
	Active bool
	// ForecastRate is the demand (requests/s) the plan was sized for, the
	// surge reserve included.
	ForecastRate float64
	// Bound names the floor or rule that bound the target ("forecast",
	// "current-rate", "backlog", "latency", "min-replicas", "max-replicas").
	Bound string
}

// Cache holds the latest plan of every workload. The planner loop writes it;
// the KEDA scaler and the custom metrics provider read it on every poll, so
// reads never trigger a forecast.
type Cache struct {
	mu      sync.RWMutex
	plans   map[string]Plan
	version uint64
	changed chan struct{} // closed and replaced on every Set
}

// NewCache returns an empty cache.
func NewCache() *Cache {
	return &Cache{plans: map[string]Plan{}, changed: make(chan struct{})}
}

// Set stores a copy of p as the plan of p.Workload and wakes every
// watcher. The copy has its own Tiers: readers range over the cached
// plan's map while the caller goes on with p (the loop keeps it as its
// last good plan, and sanitizes that again when it serves it later).
func (c *Cache) Set(p Plan) {
	p.Tiers = maps.Clone(p.Tiers)
	c.mu.Lock()
	c.plans[p.Workload] = p
	c.version++
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// Get returns the plan of workload, if one exists.
func (c *Cache) Get(workload string) (Plan, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.plans[workload]
	return p, ok
}

// List returns every plan, sorted by workload.
func (c *Cache) List() []Plan {
	c.mu.RLock()
	out := make([]Plan, 0, len(c.plans))
	for _, p := range c.plans {
		out = append(out, p)
	}
	c.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Workload < out[j].Workload })
	return out
}

// Changed returns a channel that is closed at the next Set. Watchers
// (StreamIsActive) wait on it, then call Changed again.
func (c *Cache) Changed() <-chan struct{} {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.changed
}
