package sim

import (
	"slices"
	"testing"
	"time"
)

// The Cluster driven directly, as `adapter demo` drives it: placement by
// the availability given, notices counted per pool and once per replica,
// pending spot replicas placed when a pool comes back, serving until the
// termination and billing until gone.
func TestClusterDrivenDirectly(t *testing.T) {
	s := time.Second
	c := NewCluster(Config{ColdStart: 10 * s, Notice: 20 * s}, 2)
	c.Resize(true, 3, 0, []bool{true, false})
	c.Resize(true, 4, 0, []bool{false, false})
	if got := c.SpotByPool(nil); !slices.Equal(got, []int{3, 0}) {
		t.Fatalf("spot by pool %v, want [3 0]", got)
	}
	if _, spot := c.TierStates(0); spot != (TierState{Starting: 3, Pending: 1}) {
		t.Fatalf("spot at 0: %+v, want 3 starting, 1 pending", spot)
	}
	if got := c.Count(0); got != (StepCounts{BilledSpot: 3}) {
		t.Fatalf("count at 0: %+v, want 3 billed, none ready", got)
	}

	// Pool 0 is reclaimed at 10 s, as pool 1 comes up: three notices
	// (termination at 30 s), and the pending replica starts in pool 1.
	c.Availability(10*s, []bool{false, true})
	if _, spot := c.TierStates(10 * s); spot != (TierState{Starting: 1, Terminating: 3}) {
		t.Fatalf("spot at 10 s: %+v, want 1 starting, 3 terminating", spot)
	}
	// Pool 0 flaps: its replicas under notice are not noticed again.
	c.Availability(15*s, []bool{true, true})
	c.Availability(20*s, []bool{false, true})
	if got := c.PoolNotices(nil); !slices.Equal(got, []int{3, 0}) || c.Notices() != 3 {
		t.Fatalf("notices per pool %v (total %d), want [3 0] (3)", got, c.Notices())
	}

	// Under notice they serve until 30 s and are billed until gone.
	if got := c.Count(29 * s); got != (StepCounts{ReadySpot: 4, BilledSpot: 4}) {
		t.Fatalf("count at 29 s: %+v, want 4 ready, 4 billed", got)
	}
	if got := c.Count(30 * s); got != (StepCounts{ReadySpot: 1, BilledSpot: 4}) {
		t.Fatalf("count at 30 s: %+v, want 1 ready, 4 billed", got)
	}
	c.RemoveGone(30 * s)
	if _, spot := c.TierStates(30 * s); spot != (TierState{Ready: 1}) {
		t.Fatalf("spot after removal: %+v, want 1 ready", spot)
	}
}
