package capacity

import (
	"testing"
	"time"
)

func TestCacheSetGetWatch(t *testing.T) {
	c := NewCache()
	if _, ok := c.Get("chat"); ok {
		t.Fatal("empty cache returned a plan")
	}
	ch := c.Changed()
	c.Set(Plan{Workload: "chat", Time: time.Unix(10, 0), Tiers: map[string]TierTarget{TierSpot: {Replicas: 3}}})
	select {
	case <-ch:
	default:
		t.Fatal("Set did not wake the watcher")
	}
	p, ok := c.Get("chat")
	if !ok || p.Tiers[TierSpot].Replicas != 3 {
		t.Fatalf("Get = %+v, %v", p, ok)
	}
	c.Set(Plan{Workload: "a"})
	if l := c.List(); len(l) != 2 || l[0].Workload != "a" || l[1].Workload != "chat" {
		t.Fatalf("List = %+v", l)
	}
	select {
	case <-c.Changed():
		t.Fatal("fresh Changed channel already closed")
	default:
	}
}

// TestCacheOwnsItsPlans: the loop keeps the plan it stored as its last
// good plan and, when the history is down, serves it again after
// sanitizing its Tiers in place — while the KEDA and custom metrics
// handlers range over the cached plan's Tiers. The cache keeps its own
// copy: a write to the caller's map changes nothing cached (and, under
// -race, races with no reader).
func TestCacheOwnsItsPlans(t *testing.T) {
	c := NewCache()
	p := Plan{Workload: "chat", Active: true, Tiers: map[string]TierTarget{TierOnDemand: {Replicas: 3}, TierSpot: {Replicas: 5}}}
	c.Set(p)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 1000 {
			got, _ := c.Get("chat")
			n := 0
			for _, tt := range got.Tiers {
				n += tt.Replicas
			}
			if n != 8 {
				t.Errorf("cached plan has %d replicas, want 8", n)
				return
			}
		}
	}()
	for i := range 1000 {
		p.Tiers[TierSpot] = TierTarget{Replicas: i} // what sanitize does to the last good plan
	}
	<-done
}
