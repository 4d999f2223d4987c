package main

import (
	"testing"
	"time"
)

func TestDemoClusterLaunchReadyRemove(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := newDemoCluster(1, t0, time.Minute, 2*time.Minute, 4, 1.4)
	c.Scale(false, 2, t0)
	c.Scale(true, 3, t0)
	od, spot, byZone := c.Tiers(t0)
	if od.Starting != 2 || spot.Starting != 3 || od.Ready+spot.Ready != 0 {
		t.Fatalf("after launch: od %+v spot %+v", od, spot)
	}
	if byZone[0]+byZone[1]+byZone[2] != 3 || byZone[0] != 1 || byZone[1] != 1 || byZone[2] != 1 {
		t.Fatalf("spot not spread over zones: %v", byZone)
	}
	if got := c.Ready(t0.Add(59 * time.Second)); got != 0 {
		t.Fatalf("ready before the cold start: %d", got)
	}
	if got := c.Ready(t0.Add(time.Minute)); got != 5 {
		t.Fatalf("ready after the cold start: %d, want 5", got)
	}
	// A replica launched later is starting; scaling in removes it first.
	t1 := t0.Add(2 * time.Minute)
	c.Scale(false, 3, t1)
	c.Scale(false, 2, t1)
	od, _, _ = c.Tiers(t1)
	if od.Ready != 2 || od.Starting != 0 {
		t.Fatalf("scale-in removed a ready replica before a starting one: %+v", od)
	}
	// Billing: one step of 1 h bills 2 on-demand at $4 and 3 spot at $1.4.
	before := c.costDollars
	c.zones[0].meanUp, c.zones[1].meanUp, c.zones[2].meanUp = 1e6*time.Hour, 1e6*time.Hour, 1e6*time.Hour
	c.Step(t1, time.Hour)
	if got, want := c.costDollars-before, 2*4+3*1.4; got < want-1e-9 || got > want+1e-9 {
		t.Fatalf("billed %v for an hour, want %v", got, want)
	}
}

func TestDemoClusterReclaimGivesNoticeThenTerminates(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := newDemoCluster(1, t0, 0, 2*time.Minute, 4, 1.4)
	c.Scale(true, 3, t0)
	// Zone 1 is reclaimed; a step of no length moves no other zone.
	c.zones[1].up = false
	c.Step(t0, 0)
	_, spot, byZone := c.Tiers(t0)
	if spot.Terminating != 1 || spot.Ready != 2 || byZone[1] != 0 {
		t.Fatalf("after reclaim of zone 1: spot %+v, zones %v", spot, byZone)
	}
	if n, z := c.TakeNotices(); n != 1 || z != 1 {
		t.Fatalf("notices %d from %d zones, want 1 from 1", n, z)
	}
	if n, _ := c.TakeNotices(); n != 0 {
		t.Fatal("notices not reset by TakeNotices")
	}
	// Still serving under notice; gone at the notice's end.
	if c.Ready(t0.Add(time.Minute)) != 3 {
		t.Fatal("a replica under notice stopped serving early")
	}
	// The target of 3 counts only replicas not terminating: a replacement launches.
	c.Scale(true, 3, t0)
	if _, spot, _ = c.Tiers(t0); spot.Ready+spot.Starting != 3 || spot.Terminating != 1 {
		t.Fatalf("replacement not launched: %+v", spot)
	}
	for i := range c.zones {
		c.zones[i].meanUp = 1e6 * time.Hour
	}
	c.Step(t0.Add(2*time.Minute), time.Second)
	if _, spot, _ = c.Tiers(t0.Add(2 * time.Minute)); spot.Terminating != 0 {
		t.Fatalf("replica under notice not gone at its termination: %+v", spot)
	}
	if c.Interruptions() != 1 {
		t.Fatalf("interruptions %d, want 1", c.Interruptions())
	}
}

func TestDemoClusterPendingWithoutZones(t *testing.T) {
	t0 := time.Unix(0, 0)
	c := newDemoCluster(1, t0, time.Minute, time.Minute, 4, 1.4)
	for i := range c.zones {
		c.zones[i].up = false
		c.zones[i].meanDown = 1e6 * time.Hour
	}
	c.Scale(true, 2, t0)
	_, spot, _ := c.Tiers(t0)
	if spot.Pending != 2 {
		t.Fatalf("spot without zones: %+v, want 2 pending", spot)
	}
	c.Step(t0, time.Hour)
	if c.costDollars != 0 {
		t.Fatalf("pending replicas billed: $%v", c.costDollars)
	}
	c.zones[2].up = true
	c.Step(t0.Add(time.Hour), time.Second)
	if _, spot, byZone := c.Tiers(t0.Add(time.Hour)); spot.Starting != 2 || byZone[2] != 2 {
		t.Fatalf("pending spot not placed when a zone came up: %+v %v", spot, byZone)
	}
}
