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
