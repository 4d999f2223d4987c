//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/infercast/infercast/internal/testutil"
)

// seasonal is demand the forecaster can learn: a cycle of period whose
// rate is mean - amp*cos(2π(t-trough)/period) requests/s. Its counter is
// the exact integral, so Prometheus measures the rate whatever its scrape
// timing, in the backfilled history and live alike.
type seasonal struct {
	mean, amp float64
	period    time.Duration
	trough    time.Time
}

func (s seasonal) phase(t time.Time) float64 {
	return 2 * math.Pi * t.Sub(s.trough).Seconds() / s.period.Seconds()
}

func (s seasonal) rate(t time.Time) float64 { return s.mean - s.amp*math.Cos(s.phase(t)) }

// count is the counter at t: the integral of rate from a day and a half
// before the trough (so it is positive over the backfilled day).
func (s seasonal) count(t time.Time) float64 {
	x := t.Sub(s.trough.Add(-36 * time.Hour)).Seconds()
	w := 2 * math.Pi / s.period.Seconds()
	return s.mean*x - s.amp*math.Sin(s.phase(t))/w
}

// idleCycle is demand that stops for part of every cycle, as a workload
// idle every night: max(0, mean - amp*cos(2π(t-trough)/period))
// requests/s with amp > mean, zero within ±edge of the trough's phase.
// Its counter is the exact integral, as seasonal's.
type idleCycle struct {
	mean, amp float64
	period    time.Duration
	trough    time.Time
}

func (c idleCycle) rate(t time.Time) float64 {
	return math.Max(0, c.mean-c.amp*math.Cos(2*math.Pi*t.Sub(c.trough).Seconds()/c.period.Seconds()))
}

// edge is the phase after the trough at which demand returns.
func (c idleCycle) edge() float64 { return math.Acos(c.mean / c.amp) }

// count is the counter at t: the integral of rate from a whole number of
// cycles, at least 36 hours, before the trough.
func (c idleCycle) count(t time.Time) float64 {
	w := 2 * math.Pi / c.period.Seconds()
	cycles := math.Ceil((36 * time.Hour).Seconds() / c.period.Seconds())
	theta := w*t.Sub(c.trough).Seconds() + 2*math.Pi*cycles
	k := math.Floor(theta / (2 * math.Pi))
	return (k*c.phaseIntegral(2*math.Pi) + c.phaseIntegral(theta-2*math.Pi*k)) / w
}

// phaseIntegral is the integral of the rate over the phases [0, phi] of a
// cycle, phi in [0, 2π]: zero up to the edge and after 2π - edge.
func (c idleCycle) phaseIntegral(phi float64) float64 {
	e := c.edge()
	phi = min(phi, 2*math.Pi-e)
	if phi <= e {
		return 0
	}
	return c.mean*(phi-e) - c.amp*(math.Sin(phi)-math.Sin(e))
}

// curve is a counter series and its value at any time.
type curve struct {
	series string
	count  func(time.Time) float64
}

// backfill writes count's samples of series (with labels, which must be
// those Prometheus will attach when it scrapes the live source, so the
// history and the live series are one) every `every` over [from, to) as
// OpenMetrics, and turns them into TSDB blocks in dataDir with promtool:
// a day of history before the test starts (TOOLS.md).
func backfill(t *testing.T, dataDir, series, labels string, count func(time.Time) float64, from, to time.Time, every time.Duration) {
	t.Helper()
	backfillCurves(t, dataDir, labels, from, to, every, curve{series, count})
}

// backfillCurves is backfill for several series with the same labels.
func backfillCurves(t *testing.T, dataDir, labels string, from, to time.Time, every time.Duration, curves ...curve) {
	t.Helper()
	defer phase(t, "backfill history (promtool tsdb create-blocks-from openmetrics)")()
	promtool := testutil.Binary(t, "promtool")
	file := filepath.Join(t.TempDir(), "history.om")
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	w := bufio.NewWriter(f)
	n := 0
	for _, c := range curves {
		fmt.Fprintf(w, "# TYPE %s counter\n", strings.TrimSuffix(c.series, "_total"))
		for ts := from.Truncate(every); ts.Before(to); ts = ts.Add(every) {
			fmt.Fprintf(w, "%s{%s} %.3f %d\n", c.series, labels, c.count(ts), ts.Unix())
			n++
		}
	}
	fmt.Fprintln(w, "# EOF")
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(promtool, "tsdb", "create-blocks-from", "openmetrics", file, dataDir).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	names := make([]string, len(curves))
	for i, c := range curves {
		names[i] = c.series
	}
	t.Logf("backfilled %d samples of %s from %s to %s", n, strings.Join(names, ", "), from.UTC().Format(time.RFC3339), to.UTC().Format(time.RFC3339))
}

// aheadWorkload is a workload of the ahead-of-demand tests: demand read
// from name_requests_total on a 20 s forecast step, a 120 s cold start.
func aheadWorkload(name string, minReplicas int) workload {
	return workload{name: name, demand: "query: sum(rate(" + name + "_requests_total[20s]))", mu: 2,
		coldStart: "120s", decisionInterval: "20s", forecastStep: "20s", stabilization: "60s", minReplicas: minReplicas}
}

// aheadPolicy plans "peak". The spectral model finds cycles of at least 30
// minutes at any step (90 steps here); re-fitted every 2 hours of history
// (the adapter's --forecast.reselect-interval), its windows hold whole
// 40-minute cycles.
var aheadPolicy = policyYAML(aheadWorkload("peak", 1))

const (
	aheadColdStart = 120 * time.Second
	aheadStep      = 20 * time.Second
	// aheadNeed is what the cycle's peak (30 req/s at mu 2) needs; demand
	// needs it from when its rate passes (aheadNeed-1)*mu.
	aheadNeed = 15
	// hpaLag bounds how much later than infercast's target the HPA
	// controller (5 s sync) moves the Deployment, through KEDA's 1 s polling.
	hpaLag = 10 * time.Second
)

// aheadChain starts demand following a 40-minute cycle (4 → 30 req/s) whose
// rise reaches the peak's need `arriveIn` from now, and demand for "dawn"
// idle for a third of the same cycle (0 → 30 req/s, zero for 13 minutes
// around its trough) whose demand returns at the same moment; backfills a
// day of both into Prometheus, starts Prometheus and the adapter (reading
// it, with --forecast.reselect-interval 2h so the cycle is learnt from the
// first day at once: with the default 24h a periodic model is first chosen
// ~16 h after start), and returns the demands, when the peak's replicas and
// dawn's first replica are needed, and the adapter.
func aheadChain(t *testing.T, adapterBin, dir string, arriveIn time.Duration) (seasonal, idleCycle, time.Time, *prometheus, *adapter) {
	t.Helper()
	promBin := testutil.Binary(t, "prometheus")
	s := seasonal{mean: 17, amp: 13, period: 40 * time.Minute}
	arrive := time.Now().Add(arriveIn)
	// Place the trough so that the rate passes (need-1)*mu at arrive.
	c := (s.mean - float64(aheadNeed-1)*2) / s.amp
	s.trough = arrive.Add(-time.Duration(math.Acos(c) / (2 * math.Pi) * float64(s.period)))
	dawn := idleCycle{mean: 10, amp: 20, period: 40 * time.Minute}
	dawn.trough = arrive.Add(-time.Duration(dawn.edge() / (2 * math.Pi) * float64(dawn.period)))
	d := newDemand(t)
	d.setCurve("peak_requests_total", s.count)
	d.setCurve("dawn_requests_total", dawn.count)
	pr := newPrometheus(t, promBin, dir, d.srv.Listener.Addr().String())
	now := time.Now()
	backfillCurves(t, pr.data, fmt.Sprintf(`instance=%q,job="demand",pod="sim-0"`, d.srv.Listener.Addr().String()),
		now.Add(-25*time.Hour), now.Add(-time.Second), 2*time.Second,
		curve{"peak_requests_total", s.count}, curve{"dawn_requests_total", dawn.count})
	pr.start(t)
	a := newAdapterWith(t, adapterBin, dir, policyYAML(aheadWorkload("peak", 1), aheadWorkload("dawn", 0)), "--prometheus.url", pr.url(), "--prometheus.timeout", "10s",
		"--forecast.reselect-interval", "2h")
	a.start(t)
	return s, dawn, arrive, pr, a
}

// forecastModel is the model of the workload's latest forecast.
func (a *adapter) forecastModel(ctx context.Context, workload string) (string, error) {
	code, body, err := httpGet(ctx, fmt.Sprintf("http://127.0.0.1:%d/metrics", a.webPort))
	if err != nil {
		return "", err
	}
	if code != 200 {
		return "", fmt.Errorf("/metrics: %d", code)
	}
	for _, l := range strings.Split(body, "\n") {
		m := sampleRe.FindStringSubmatch(l)
		if m == nil || m[1] != "infercast_forecast_model_info" || !strings.Contains(m[2], fmt.Sprintf("workload=%q", workload)) {
			continue
		}
		for _, kv := range strings.Split(m[2], ",") {
			if v, ok := strings.CutPrefix(kv, "model="); ok {
				return strings.Trim(v, `"`), nil
			}
		}
	}
	return "", fmt.Errorf("/metrics has no infercast_forecast_model_info for %s", workload)
}

// watched is a count the lead is measured on: infercast's target for a
// workload, or a Deployment's spec.replicas.
type watched struct {
	name     string
	workload string
	need     int                     // replicas the demand needs from its arrival
	rate     func(time.Time) float64 // the workload's demand, req/s
	target   bool                    // infercast's target, not a Deployment
}

// leadWatch records when each watched count first reaches its need.
type leadWatch struct {
	w       []watched
	read    func(ctx context.Context) ([]int, error)
	reached map[string]time.Time
	first   []int
}

// run polls every second until every count reached its need or deadline
// passed, logging each change; it fails if a count starts at its need
// already (too late to measure a lead).
func (lw *leadWatch) run(t *testing.T, deadline time.Time, procs ...*proc) {
	t.Helper()
	lw.reached = map[string]time.Time{}
	last := ""
	for len(lw.reached) < len(lw.w) && time.Now().Before(deadline) {
		for _, p := range procs {
			if done, err := p.exited(); done {
				t.Fatalf("%s exited (%v) while waiting for the peak's need; log %s:\n%s", p.name, err, p.log, tail(p.log, 25))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		vals, err := lw.read(ctx)
		cancel()
		now := time.Now()
		if err != nil {
			t.Logf("reading: %v", err)
			time.Sleep(time.Second)
			continue
		}
		if lw.first == nil {
			lw.first = vals
			for i, v := range vals {
				if v >= lw.w[i].need {
					t.Fatalf("%s is %d at the first read, already at its need %d: too late to measure a lead (test started too late?)", lw.w[i].name, v, lw.w[i].need)
				}
			}
		}
		state := fmt.Sprint(vals)
		if state != last {
			t.Logf("%s %v = %v", now.UTC().Format("15:04:05"), lw.names(), vals)
			last = state
		}
		for i, v := range vals {
			if _, ok := lw.reached[lw.w[i].name]; !ok && v >= lw.w[i].need {
				lw.reached[lw.w[i].name] = now
			}
		}
		time.Sleep(time.Second)
	}
}

func (lw *leadWatch) names() []string {
	out := make([]string, len(lw.w))
	for i, w := range lw.w {
		out[i] = w.name
	}
	return out
}

// TestAheadOfDemand: with a day of a 40-minute demand cycle backfilled
// into Prometheus, infercast forecasts the cycle, and its target and the
// Deployments' spec.replicas (a plain HPA on the custom metric, and KEDA's
// HPA on the external scaler) reach what the coming peak needs about the
// cold start before the demand needs it. Beside it, "dawn" is idle for a
// third of the same cycle: its target is 0 and KEDA holds its Deployment
// at zero replicas until IsActive turns true, about the cold start before
// its demand returns (scale from zero ahead of forecast demand). The
// measured leads are logged.
func TestAheadOfDemand(t *testing.T) {
	withKEDA := os.Getenv("INFERCAST_E2E_KEDA") != "0"
	need := []string{"etcd", "kube-apiserver", "kube-controller-manager", "adapter"}
	if withKEDA {
		need = append(need, "keda-operator", "keda-adapter")
	}
	b := findBinaries(t, need...)
	total := phase(t, "TestAheadOfDemand total")
	defer total()
	c := startCluster(t, b)
	kcm := c.startControllerManager(t, b)
	procs := []*proc{kcm}
	if withKEDA {
		c.installCRDs(t, kedaCRDDir(t))
		procs = append(procs, c.startKEDA(t, b)...)
	}
	// Demand needs the peak's replicas 4.5 minutes from now: the target's
	// rise (a horizon of 140 s ahead of it) starts after the first read.
	s, dawn, arrive, pr, a := aheadChain(t, b.adapter, c.dir, 4*time.Minute+30*time.Second)
	procs = append(procs, pr.p, a.p)
	c.registerAPIService(t, "infercast", "infercast-adapter", "custom.metrics.k8s.io", "v1beta2", a.cmPort)

	const ns = "default"
	ctx := context.Background()
	peak := func(name string, target bool) watched {
		return watched{name: name, workload: "peak", need: aheadNeed, rate: s.rate, target: target}
	}
	ws := []watched{peak("peak target", true), peak("peak-on-demand", false)} // the provider's {workload}-{tier}
	c.createDeployment(t, ns, "peak-on-demand", 1)
	hpa := objectHPA(ns, "peak-on-demand")
	if _, err := c.kube.AutoscalingV2().HorizontalPodAutoscalers(ns).Create(ctx, hpa, metav1.CreateOptions{}); err != nil {
		t.Fatalf("hpa: %v", err)
	}
	// Dawn is idle now: its target is 0 and KEDA holds its Deployment at
	// zero until IsActive turns true, ahead of the demand's return.
	ws = append(ws, watched{name: "dawn target", workload: "dawn", need: 1, rate: dawn.rate, target: true})
	if withKEDA {
		for _, so := range []struct {
			name, workload string
			min            int64
		}{{"peak-keda", "peak", 1}, {"dawn-keda", "dawn", 0}} {
			c.createDeployment(t, ns, so.name, int32(so.min))
			if _, err := c.dyn.Resource(scaledObjectGVR).Namespace(ns).Create(ctx, scaledObject(ns, so.name, so.min, 60, a.grpcPort, so.workload, "on-demand"), metav1.CreateOptions{}); err != nil {
				t.Fatalf("ScaledObject %s: %v", so.name, err)
			}
		}
		ws = append(ws, peak("peak-keda", false), watched{name: "dawn-keda", workload: "dawn", need: 1, rate: dawn.rate})
	}
	lw := &leadWatch{w: ws, read: func(ctx context.Context) ([]int, error) {
		out := make([]int, len(ws))
		for i, w := range ws {
			var err error
			if w.target {
				out[i], err = a.target(ctx, w.workload, "on-demand")
			} else {
				out[i], err = c.replicas(ctx, ns, w.name)
			}
			if err != nil {
				return nil, err
			}
		}
		return out, nil
	}}
	func() {
		defer phase(t, "targets and replicas rise ahead of the cycle's peak and of dawn's return from zero")()
		lw.run(t, arrive.Add(time.Minute), procs...)
	}()
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	models := map[string]string{}
	for _, w := range []string{"peak", "dawn"} {
		m, err := a.forecastModel(rctx, w)
		if err != nil {
			t.Fatal(err)
		}
		models[w] = m
	}
	checkLeads(t, lw, arrive, models)
}

// checkLeads asserts that every watched count reached its need at least
// the cold start before the demand needed it, and logs the leads.
func checkLeads(t *testing.T, lw *leadWatch, arrive time.Time, models map[string]string) {
	t.Helper()
	for _, w := range lw.w {
		at, ok := lw.reached[w.name]
		if !ok {
			t.Errorf("%s never reached %d replicas (demand needs them from %s, rate %.1f req/s there; forecast model %s)",
				w.name, w.need, arrive.UTC().Format("15:04:05"), w.rate(arrive.Add(aheadStep)), models[w.workload])
			continue
		}
		lead := arrive.Sub(at)
		t.Logf("lead: %s reached %d replicas %.1fs before the demand needed them (cold start %s; demand %.1f req/s then, %.1f a step after arrival; forecast model %s)",
			w.name, w.need, lead.Seconds(), aheadColdStart, w.rate(at), w.rate(arrive.Add(aheadStep)), models[w.workload])
		// The planner sizes each decision for the forecast steps up to
		// now + horizon (docs/e2e.md); a step's demand is its average, so
		// an exact forecast leads by the cold start within two forecast
		// steps; the Deployments follow the plan within the HPA's lag.
		bound := aheadColdStart - 2*aheadStep
		if !w.target {
			bound -= hpaLag
		}
		if lead < bound {
			t.Errorf("%s reached %d replicas only %.1fs before the demand needed them, less than %s (cold start %s less two forecast steps%s)",
				w.name, w.need, lead.Seconds(), bound, aheadColdStart, map[bool]string{true: "", false: " and the HPA's lag"}[w.target])
		}
	}
}
