//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// demand is the exporter the adapter's embedded store scrapes: one counter
// per workload whose rate the test sets. The counter is the exact integral
// of the rate over wall time, so the adapter measures the rate set whatever
// its scrape timing. This makes demand fully deterministic (the exporter's
// simulated fleet and Prometheus are not in this path: docs/e2e.md).
type demand struct {
	mu    sync.Mutex
	rates map[string]float64 // series -> requests/s
	total map[string]float64
	since time.Time
	srv   *httptest.Server
	hang  bool
	// curves are series whose counter is a function of wall time (the
	// exact cumulative count at t), for demand with a shape in time.
	curves map[string]func(time.Time) float64
}

// setCurve makes series a counter that reads count(now) on every scrape.
func (d *demand) setCurve(series string, count func(time.Time) float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.curves == nil {
		d.curves = map[string]func(time.Time) float64{}
	}
	d.curves[series] = count
}

func newDemand(t *testing.T) *demand {
	d := &demand{rates: map[string]float64{}, total: map[string]float64{}, since: time.Now()}
	d.srv = httptest.NewServer(http.HandlerFunc(d.serve))
	t.Cleanup(d.srv.Close)
	return d
}

func (d *demand) advance() {
	now := time.Now()
	dt := now.Sub(d.since).Seconds()
	for s, r := range d.rates {
		d.total[s] += r * dt
	}
	d.since = now
}

// set changes a series' rate from now on.
func (d *demand) set(series string, rps float64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.advance()
	d.rates[series] = rps
}

// setHang makes /metrics stall until the client gives up (a model server or
// exporter that hangs); false restores it.
func (d *demand) setHang(h bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.hang = h
}

func (d *demand) serve(w http.ResponseWriter, r *http.Request) {
	d.mu.Lock()
	if d.hang {
		d.mu.Unlock()
		select {
		case <-r.Context().Done():
		case <-time.After(2 * time.Minute):
		}
		return
	}
	d.advance()
	now := time.Now()
	values := make(map[string]float64, len(d.total)+len(d.curves))
	for s, v := range d.total {
		values[s] = v
	}
	for s, f := range d.curves {
		values[s] = f(now)
	}
	names := make([]string, 0, len(values))
	for s := range values {
		names = append(names, s)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, s := range names {
		fmt.Fprintf(&b, "# TYPE %s counter\n%s{pod=\"sim-0\"} %.3f\n", s, s, values[s])
	}
	d.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain; version=0.0.4")
	_, _ = io.WriteString(w, b.String())
}

// e2ePolicy (the embedded store's): two quick workloads. chat is
// on-demand only (its target is the whole need); wake has min_replicas 0.
var e2ePolicy = policyYAML(quick("chat", "series: chat_requests_total", 1), quick("wake", "series: wake_requests_total", 0))

// adapter is infercast's `adapter serve` as a child process.
type adapter struct {
	bin, dir, policy, storage string
	source                    []string // --exporter.url … or --prometheus.url …
	grpcPort, webPort, cmPort int
	p                         *proc
	runs                      int
}

// newAdapter prepares an adapter whose embedded store scrapes exporterURL.
func newAdapter(t *testing.T, bin, dir, exporterURL string) *adapter {
	t.Helper()
	return newAdapterWith(t, bin, dir, e2ePolicy, "--exporter.url", exporterURL+"/metrics", "--exporter.scrape-interval", "500ms")
}

// newAdapterWith prepares an adapter with its own policy and demand source flags.
func newAdapterWith(t *testing.T, bin, dir, policy string, source ...string) *adapter {
	t.Helper()
	data := t.TempDir()
	a := &adapter{bin: bin, dir: dir, policy: filepath.Join(data, "policy.yaml"), storage: filepath.Join(data, "store"),
		source: source, grpcPort: freePort(t), webPort: freePort(t), cmPort: freePort(t)}
	if err := os.WriteFile(a.policy, []byte(policy), 0o600); err != nil {
		t.Fatal(err)
	}
	return a
}

// start runs the adapter on its fixed ports (a restart keeps them, as a
// Service would) and the same storage (history survives restarts), and
// waits for /readyz: every workload has a plan.
func (a *adapter) start(t *testing.T) {
	t.Helper()
	defer phase(t, "adapter start and first plans")()
	a.runs++
	args := append([]string{"serve",
		"--config.file", a.policy,
		"--grpc.listen-address", fmt.Sprintf("127.0.0.1:%d", a.grpcPort),
		"--web.listen-address", fmt.Sprintf("127.0.0.1:%d", a.webPort),
		"--custom-metrics.listen-address", fmt.Sprintf("127.0.0.1:%d", a.cmPort),
		"--custom-metrics.authentication", "none",
		// Every HPA and ScaledObject of the suite sets its scale-down
		// stabilisation to 0, as the chart's do.
		"--hpa.downscale-stabilization", "0s",
		"--storage.path", a.storage,
		"--log.level", "debug"}, a.source...)
	a.p = start(t, a.dir, fmt.Sprintf("adapter-%d", a.runs), nil, a.bin, args...)
	eventually(t, "adapter /readyz", 90*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		code, body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", a.webPort))
		if err != nil {
			return false, err.Error()
		}
		return code == 200, fmt.Sprintf("%d %s", code, strings.TrimSpace(body))
	}, a.p)
}

func httpGet(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

var sampleRe = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)\{([^}]*)\} (\S+)$`)

// gauge reads one sample of the adapter's /metrics whose labels include all of want.
func (a *adapter) gauge(ctx context.Context, name string, want map[string]string) (float64, error) {
	code, body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", a.webPort))
	if err != nil {
		return 0, err
	}
	if code != 200 {
		return 0, fmt.Errorf("/metrics: %d", code)
	}
lines:
	for _, l := range strings.Split(body, "\n") {
		m := sampleRe.FindStringSubmatch(l)
		if m == nil || m[1] != name {
			continue
		}
		for k, v := range want {
			if !strings.Contains(m[2], fmt.Sprintf("%s=%q", k, v)) {
				continue lines
			}
		}
		return strconv.ParseFloat(m[3], 64)
	}
	return 0, fmt.Errorf("/metrics has no %s%v", name, want)
}

// target is infercast's current replica target for a workload's tier.
func (a *adapter) target(ctx context.Context, workload, tier string) (int, error) {
	v, err := a.gauge(ctx, "infercast_plan_target_replicas", map[string]string{"workload": workload, "tier": tier})
	return int(v), err
}

// saneFor checks every 2 s for d that the adapter's /healthz answers 200
// and that count (the adapter's target, or a Deployment's replicas) stays
// within [1, 60], the test policies' min_replicas and max_replicas; it
// returns the range count took.
func saneFor(ctx context.Context, t *testing.T, a *adapter, what string, d time.Duration, count func(context.Context) (int, error)) (lo, hi int) {
	t.Helper()
	lo, hi = math.MaxInt, 0
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(2 * time.Second) {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		code, _, err := httpGet(rctx, fmt.Sprintf("http://127.0.0.1:%d/healthz", a.webPort))
		n, nerr := count(rctx)
		cancel()
		if err != nil || code != 200 {
			t.Fatalf("adapter /healthz (%s): %d %v", what, code, err)
		}
		if nerr != nil || n < 1 || n > 60 {
			t.Fatalf("%s: %d %v", what, n, nerr)
		}
		lo, hi = min(lo, n), max(hi, n)
	}
	return lo, hi
}

// targetOf reads the adapter's on-demand target for workload.
func (a *adapter) targetOf(workload string) func(context.Context) (int, error) {
	return func(ctx context.Context) (int, error) { return a.target(ctx, workload, "on-demand") }
}

// settleTarget waits until cond holds for the workload's on-demand target on
// three consecutive reads a second apart (the target moves with every plan,
// so the condition, not the value, must be stable) and returns the last one.
func settleTarget(t *testing.T, a *adapter, workload, what string, cond func(n int) (bool, string), procs ...*proc) int {
	t.Helper()
	defer phase(t, what)()
	var got, stable int
	eventually(t, what, 3*time.Minute, time.Second, func(ctx context.Context) (bool, string) {
		n, err := a.target(ctx, workload, "on-demand")
		if err != nil {
			return false, err.Error()
		}
		if ok, why := cond(n); !ok {
			stable = 0
			return false, fmt.Sprintf("target %d: %s", n, why)
		}
		stable++
		got = n
		return stable >= 3, fmt.Sprintf("target %d", n)
	}, append(procs, a.p)...)
	t.Logf("%s: target %d", what, got)
	return got
}
