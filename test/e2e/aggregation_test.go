//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
)

// TestAggregatedCustomMetrics: through kube-apiserver's aggregation layer
// (APIService → ExternalName Service → the adapter on localhost), the object
// metric infercast_desired_replicas of Deployment chat-on-demand is served
// and its value is infercast's target (what the HPA controller reads; the
// first value after start is the plan itself: docs/serving.md).
func TestAggregatedCustomMetrics(t *testing.T) {
	b := findBinaries(t, "etcd", "kube-apiserver", "adapter")
	defer phase(t, "TestAggregatedCustomMetrics total")()
	c := startCluster(t, b)
	d, _, a := demandChain(t, b.adapter, c.dir)
	c.registerAPIService(t, "infercast", "infercast-adapter", "custom.metrics.k8s.io", "v1beta2", a.cmPort)
	d.set("chat_requests_total", 30)
	settleTarget(t, a, "chat", "target at 30 req/s", func(n int) (bool, string) { return n >= 15, "below 15" })

	path := "/apis/custom.metrics.k8s.io/v1beta2/namespaces/default/deployments.apps/chat-on-demand/infercast_desired_replicas"
	eventually(t, "custom metric through the aggregator equals the target", time.Minute, time.Second, func(ctx context.Context) (bool, string) {
		raw, err := c.kube.RESTClient().Get().AbsPath(path).DoRaw(ctx)
		if err != nil {
			return false, err.Error()
		}
		var list struct {
			Items []struct {
				DescribedObject struct{ Kind, Name string } `json:"describedObject"`
				Metric          struct{ Name string }       `json:"metric"`
				Value           resource.Quantity           `json:"value"`
			} `json:"items"`
		}
		if err := json.Unmarshal(raw, &list); err != nil {
			return false, fmt.Sprintf("%v: %s", err, raw)
		}
		if len(list.Items) != 1 {
			return false, string(raw)
		}
		it := list.Items[0]
		n, err := a.target(ctx, "chat", "on-demand")
		if err != nil {
			return false, err.Error()
		}
		v := it.Value.AsApproximateFloat64()
		state := fmt.Sprintf("%s %s %s = %v, target %d", it.DescribedObject.Kind, it.DescribedObject.Name, it.Metric.Name, v, n)
		// The reported value lands the HPA on the target: ceil(value) is the
		// target, or within the tolerance compensation's ~10 % above it.
		ok := it.DescribedObject.Name == "chat-on-demand" && it.Metric.Name == "infercast_desired_replicas" &&
			int(math.Ceil(v)) >= n && v <= float64(n)/0.9+1
		return ok, state
	}, append(c.procs, a.p)...)
}
