//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestAdapterFollowsDemand checks the premise of the cluster tests without a
// cluster: infercast's adapter, fed the test's demand source, raises its
// target when demand rises and lowers it when demand falls, and a workload
// without demand is inactive (target 0). If this fails, the cluster tests'
// failures are the planner's, not Kubernetes'.
func TestAdapterFollowsDemand(t *testing.T) {
	b := findBinaries(t, "adapter")
	defer phase(t, "TestAdapterFollowsDemand total")()
	d := newDemand(t)
	d.set("chat_requests_total", 2)
	d.set("wake_requests_total", 0)
	a := newAdapter(t, b.adapter, logDir(t), d.srv.URL)
	a.start(t)

	low := settleTarget(t, a, "chat", "adapter: target at 2 req/s", func(n int) (bool, string) { return n >= 1, "below min_replicas" })
	d.set("chat_requests_total", 30)
	high := settleTarget(t, a, "chat", "adapter: demand rises to 30 req/s", func(n int) (bool, string) {
		// 30 req/s at mu 2 needs at least 15 replicas.
		return n >= low+5 && n >= 15, fmt.Sprintf("not above max(%d, 15)", low+5)
	})
	d.set("chat_requests_total", 4)
	settleTarget(t, a, "chat", "adapter: demand falls to 4 req/s", func(n int) (bool, string) { return n <= high/2, fmt.Sprintf("not at or below %d", high/2) })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if n, err := a.target(ctx, "wake", "on-demand"); err != nil || n != 0 {
		t.Fatalf("wake without demand: target %d (%v); want 0", n, err)
	}
}
