//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/infercast/infercast/internal/testutil"
)

// spotPolicy: "gpu" runs mostly on spot in pools spot-a and spot-b, at a
// constant demand; capacity moved to on-demand after notices returns to
// spot after fallback_hold (20 s), and the cover leaves a cold start (20 s)
// after that.
var spotPolicy = policyYAML(workload{name: "gpu", demand: "query: sum(rate(gpu_requests_total[5s]))", mu: 1,
	coldStart: "20s", decisionInterval: "1s", forecastStep: "1s", stabilization: "5s", minReplicas: 1,
	extra: "    on_demand_share: 0.2\n    fallback_hold: 20s\n",
	spot: `      spot:
        price_per_hour: 1
        interruption_rate_per_hour: 0
        notice: 120s
        failure_domains: 2
        pools: [spot-a, spot-b]
`})

// fakeIMDS is one node's AWS instance metadata service (IMDSv2) on
// 127.0.0.1: spot/instance-action answers 404 until the test announces an
// interruption; events/maintenance/scheduled lists events, none until the
// test sets them.
type fakeIMDS struct {
	notice atomic.Bool
	events atomic.Pointer[string]
	srv    *httptest.Server
}

func newFakeIMDS(t *testing.T) *fakeIMDS {
	m := &fakeIMDS{}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /latest/api/token", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprint(w, "e2e-token") })
	mux.HandleFunc("GET /latest/meta-data/spot/instance-action", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-aws-ec2-metadata-token") != "e2e-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if !m.notice.Load() {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintf(w, `{"action":"terminate","time":%q}`, time.Now().Add(2*time.Minute).UTC().Format(time.RFC3339))
	})
	mux.HandleFunc("GET /latest/meta-data/events/maintenance/scheduled", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-aws-ec2-metadata-token") != "e2e-token" {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		if e := m.events.Load(); e != nil {
			fmt.Fprint(w, *e)
			return
		}
		fmt.Fprint(w, "[]")
	})
	m.srv = httptest.NewServer(mux)
	t.Cleanup(m.srv.Close)
	return m
}

// spotNode is one fake spot node: its metadata service and infercast's
// exporter on it, watching that service for notices.
type spotNode struct {
	name, pool string
	imds       *fakeIMDS
	addr       string
	p          *proc
}

// startSpotNode starts an exporter for one node (NODE_NAME, --spot.pool)
// whose AWS spot watcher polls the node's fake metadata service.
func startSpotNode(t *testing.T, bin, dir, name, pool string) *spotNode {
	t.Helper()
	n := &spotNode{name: name, pool: pool, imds: newFakeIMDS(t)}
	cfg := filepath.Join(t.TempDir(), "exporter.yaml")
	if err := os.WriteFile(cfg, []byte("global: {scrape_interval: 1s, scrape_timeout: 900ms}\nintegrations:\n  spot: {providers: [aws]}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	port := freePort(t)
	n.addr = "127.0.0.1:" + strconv.Itoa(port)
	n.p = start(t, dir, "exporter-"+name, []string{"NODE_NAME=" + name}, bin,
		"--config.file", cfg, "--web.listen-address", n.addr,
		"--spot.metadata-endpoint", n.imds.srv.URL, "--spot.pool", pool)
	eventually(t, "exporter "+name+" /readyz", time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		code, body, err := httpGet(ctx, "http://"+n.addr+"/readyz")
		if err != nil {
			return false, err.Error()
		}
		return code == 200, fmt.Sprintf("%d %s", code, body)
	}, n.p)
	return n
}

// TestSpotInterruptions: three spot nodes (two in pool spot-a, one in
// spot-b), each with infercast's exporter watching a fake AWS metadata
// service; Prometheus scrapes them; the adapter attributes their notices to
// workload gpu (tiers.spot.pools). A burst of notices on two nodes moves two
// replicas to on-demand at once, and the Deployments gpu-on-demand and
// gpu-spot (plain HPAs on the custom metric) follow; once the notices end,
// spot returns after fallback_hold and the on-demand cover leaves after it.
func TestSpotInterruptions(t *testing.T) {
	b := findBinaries(t, "etcd", "kube-apiserver", "kube-controller-manager", "adapter", "exporter")
	total := phase(t, "TestSpotInterruptions total")
	defer total()
	c := startCluster(t, b)
	kcm := c.startControllerManager(t, b)

	var nodes []*spotNode
	func() {
		defer phase(t, "three exporters on fake spot nodes")()
		for _, n := range [][2]string{{"spot-a-1", "spot-a"}, {"spot-a-2", "spot-a"}, {"spot-b-1", "spot-b"}} {
			nodes = append(nodes, startSpotNode(t, b.exporter, c.dir, n[0], n[1]))
		}
	}()
	d := newDemand(t)
	d.set("gpu_requests_total", 12)
	targets := []string{d.srv.Listener.Addr().String()}
	procs := []*proc{kcm}
	for _, n := range nodes {
		targets = append(targets, n.addr)
		procs = append(procs, n.p)
	}
	pr := newPrometheus(t, testutil.Binary(t, "prometheus"), c.dir, targets...)
	pr.start(t)
	procs = append(procs, pr.p)
	a := newAdapterWith(t, b.adapter, c.dir, spotPolicy, "--prometheus.url", pr.url(), "--prometheus.timeout", "3s")
	a.start(t)
	c.registerAPIService(t, "infercast", "infercast-adapter", "custom.metrics.k8s.io", "v1beta2", a.cmPort)

	const ns = "default"
	ctx := context.Background()
	for _, dep := range []string{"gpu-on-demand", "gpu-spot"} {
		c.createDeployment(t, ns, dep, 1)
		if _, err := c.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, objectHPA(ns, dep), metav1.CreateOptions{}); err != nil {
			t.Fatalf("hpa %s: %v", dep, err)
		}
	}
	always := func(int) (bool, string) { return true, "" }
	spot0 := followsTarget(t, c, a, ns, "gpu-spot", "gpu", "spot", "spot: gpu-spot at its target at 12 req/s", 3*time.Minute,
		func(n int) (bool, string) { return n >= 3, "spot target below 3" }, procs...)
	od0 := followsTarget(t, c, a, ns, "gpu-on-demand", "gpu", "on-demand", "spot: gpu-on-demand at its target", 3*time.Minute, always, procs...)
	t.Logf("before the notices: on-demand %d, spot %d", od0, spot0)

	// A burst: two nodes, one per pool, get an interruption notice.
	burst := time.Now()
	nodes[0].imds.notice.Store(true)
	nodes[2].imds.notice.Store(true)
	waitFallback(t, a, "spot: notices on 2 nodes, the plan moves their 2 replicas to on-demand", func(n int) bool { return n == 2 }, procs...)
	followsTarget(t, c, a, ns, "gpu-on-demand", "gpu", "on-demand", "spot: gpu-on-demand takes the spot capacity", 90*time.Second,
		func(n int) (bool, string) { return n >= od0+2, fmt.Sprintf("on-demand target not yet %d", od0+2) }, procs...)
	t.Logf("gpu-on-demand at +2 replicas %.1fs after the notices", time.Since(burst).Seconds())
	followsTarget(t, c, a, ns, "gpu-spot", "gpu", "spot", "spot: gpu-spot goes down", 90*time.Second,
		func(n int) (bool, string) { return n <= spot0-2, fmt.Sprintf("spot target not yet %d", spot0-2) }, procs...)

	// The notices end (the nodes were not reclaimed after all). Hysteresis:
	// for half of fallback_hold the cover stays on on-demand.
	ended := time.Now()
	for _, n := range nodes {
		n.imds.notice.Store(false)
	}
	for time.Since(ended) < 10*time.Second {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := a.gauge(rctx, "infercast_plan_fallback_replicas", map[string]string{"workload": "gpu"})
		cancel()
		if err != nil || n < 2 {
			t.Fatalf("%.1fs after the notices ended: %v replicas on on-demand cover (%v); want 2 held for fallback_hold", time.Since(ended).Seconds(), n, err)
		}
		time.Sleep(time.Second)
	}
	// Then spot returns and, once it had a cold start, the cover leaves;
	// the Deployments follow.
	waitFallback(t, a, "spot: notices over, the cover leaves after fallback_hold and a cold start", func(n int) bool { return n == 0 }, procs...)
	back := time.Since(ended)
	if back < 20*time.Second {
		t.Errorf("the on-demand cover left %.1fs after the notices ended, before fallback_hold (20s)", back.Seconds())
	}
	spot1 := followsTarget(t, c, a, ns, "gpu-spot", "gpu", "spot", "spot: gpu-spot at its target again", 90*time.Second, always, procs...)
	followsTarget(t, c, a, ns, "gpu-on-demand", "gpu", "on-demand", "spot: gpu-on-demand at its target again", 90*time.Second, always, procs...)
	t.Logf("the on-demand cover left %.1fs after the notices ended (fallback_hold 20s, then as the returning spot replicas count as ready: a cold start of 20s, sooner when the need fell meanwhile)", back.Seconds())

	// An AWS scheduled event stops spot-a-2 in 10 s, within the cold start
	// (20 s) and two decisions: its replica is departing, and gpu-spot
	// carries a replacement on top while nothing moves to on-demand.
	event := fmt.Sprintf(`[{"NotBefore": %q, "Code": "instance-stop", "Description": "The instance is running on degraded hardware",
		"EventId": "instance-event-0e439355b779a8c4b", "NotAfter": "", "State": "active"}]`,
		time.Now().Add(10*time.Second).UTC().Format("2 Jan 2006 15:04:05 GMT"))
	nodes[1].imds.events.Store(&event)
	followsTarget(t, c, a, ns, "gpu-spot", "gpu", "spot", "spot: a stop announced on spot-a-2, gpu-spot carries its replacement", 90*time.Second,
		func(n int) (bool, string) { return n == spot1+1, fmt.Sprintf("spot target not yet %d", spot1+1) }, procs...)
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	departing, derr := a.gauge(rctx, "infercast_plan_observed_replicas", map[string]string{"workload": "gpu", "tier": "spot", "state": "departing"})
	cover, cerr := a.gauge(rctx, "infercast_plan_fallback_replicas", map[string]string{"workload": "gpu"})
	cancel()
	if departing != 1 || cover != 0 || derr != nil || cerr != nil {
		t.Errorf("a stop announced: %v departing (%v), %v on on-demand cover (%v); want 1 and 0", departing, derr, cover, cerr)
	}
	// The event is cancelled, as a stopped node's series would go: the
	// replacement is held (the adapter's departingHold, 2 min, until a
	// stopped node's pods would count as lost), so the HPA does not delete
	// it, the ReplicaSet's newest pod, in that gap. Waiting out the hold
	// is the unit tests' (TestDepartureEpisode).
	nodes[1].imds.events.Store(nil)
	gone := time.Now()
	for time.Since(gone) < 10*time.Second {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		n, err := a.target(rctx, "gpu", "spot")
		cancel()
		if err != nil || n != spot1+1 {
			t.Fatalf("%.1fs after the warning went: spot target %d (%v); want %d held", time.Since(gone).Seconds(), n, err, spot1+1)
		}
		time.Sleep(time.Second)
	}
}

// waitFallback waits until the plan's on-demand cover for spot
// (infercast_plan_fallback_replicas) satisfies ok.
func waitFallback(t *testing.T, a *adapter, what string, ok func(int) bool, procs ...*proc) {
	t.Helper()
	defer phase(t, what)()
	eventually(t, what, 3*time.Minute, time.Second, func(ctx context.Context) (bool, string) {
		v, err := a.gauge(ctx, "infercast_plan_fallback_replicas", map[string]string{"workload": "gpu"})
		if err != nil {
			return false, err.Error()
		}
		return ok(int(v)), fmt.Sprintf("%v replicas of spot covered by on-demand", v)
	}, append(procs, a.p)...)
}
