//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/fleet"
	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/sim"
	promapi "github.com/prometheus/client_golang/api"
	promv1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
	"gonum.org/v1/gonum/stat"
)

// chainPolicy plans chat from the exporter's request counter (completed
// requests, summed over the model's servers). The exporter's counters move
// once per exporter cycle and the fleet's arrivals are Poisson, so demand
// is read over 10 s on a 5 s forecast step (a 1 s step's band stays wide).
var chainPolicy = policyYAML(quick("chat", `query: sum(rate(infercast_model_requests_total{model="chat"}[10s]))`, 1))

// startFleet runs a simulated vLLM server for model chat on 127.0.0.1
// (internal/fleet), advanced with the wall clock: a queueing model with
// room for 80 req/s, so completions follow arrivals.
func startFleet(t *testing.T) *fleet.Fleet {
	t.Helper()
	f, err := fleet.New(fleet.Config{Seed: 7, Servers: []fleet.ServerConfig{
		{Dialect: fleet.VLLM, Model: "chat", Replicas: 20, Mu: 4, MaxBatch: 32, Rate: 2},
	}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := f.Start(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx, 100*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		<-done
		sctx, c := context.WithTimeout(context.Background(), 10*time.Second)
		defer c()
		_ = f.Close(sctx)
	})
	return f
}

// startExporter runs infercast's exporter scraping the fleet's servers
// every second.
func startExporter(t *testing.T, bin, dir string, f *fleet.Fleet) (addr string, p *proc) {
	t.Helper()
	defer phase(t, "exporter scraping the simulated fleet")()
	var b strings.Builder
	b.WriteString("global: {scrape_interval: 1s, scrape_timeout: 900ms}\ntargets:\n")
	for _, tg := range f.Targets() {
		fmt.Fprintf(&b, "  - {name: %q, url: %q, dialect: %q}\n", tg.Name, tg.URL, string(tg.Dialect))
	}
	cfg := filepath.Join(t.TempDir(), "exporter.yaml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	addr = "127.0.0.1:" + strconv.Itoa(freePort(t))
	p = start(t, dir, "exporter", nil, bin, "--config.file", cfg, "--web.listen-address", addr)
	eventually(t, "exporter /readyz", time.Minute, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		code, body, err := httpGet(ctx, "http://"+addr+"/readyz")
		if err != nil {
			return false, err.Error()
		}
		return code == 200, fmt.Sprintf("%d %s", code, body)
	}, p)
	return addr, p
}

// exporterChain starts the metrics chain on the fleet f, its chat
// arrivals at rate req/s: infercast's exporter scraping f's servers, a real
// Prometheus scraping the exporter, and the adapter planning chainPolicy
// from Prometheus.
func exporterChain(t *testing.T, b binaries, dir string, f *fleet.Fleet, rate float64) (*proc, *prometheus, *adapter) {
	t.Helper()
	if err := f.SetArrivalRate("chat", rate); err != nil {
		t.Fatal(err)
	}
	addr, ep := startExporter(t, b.exporter, dir, f)
	pr := newPrometheus(t, testutil.Binary(t, "prometheus"), dir, addr)
	pr.start(t)
	a := newAdapterWith(t, b.adapter, dir, chainPolicy, "--prometheus.url", pr.url(), "--prometheus.timeout", "3s")
	a.start(t)
	return ep, pr, a
}

// replayDay is where the chain's replay of nasa-1995-07.csv starts:
// 1995-07-06 00:00 EDT (04:00 UTC). It replays 30 hours, night to the next
// night, in five 6-hour parts at 0.49, 1.03, 1.61, 0.88 and 0.44 of the
// first day's mean.
var replayDay = time.Date(1995, 7, 6, 4, 0, 0, 0, time.UTC)

const (
	replayHours = 30
	// replaySpeed compresses the 30 hours into 60 s: a trace minute every
	// 33 ms.
	replaySpeed = 1800
	// replayMean is the replayed first day's mean demand, req/s.
	replayMean = 12.0
)

// replayDayTrace is the replay's requests/s, one value per trace minute,
// scaled so that the first day's mean is replayMean.
func replayDayTrace(t *testing.T) []float64 {
	t.Helper()
	tr, err := sim.LoadTrace(context.Background(), filepath.Join(testutil.SharedDir(t), "traces", "nasa-1995-07.csv"))
	if err != nil {
		t.Fatal(err)
	}
	first := int(replayDay.Sub(tr.Start) / tr.Step)
	span := tr.Counts[first : first+replayHours*int(time.Hour/tr.Step)]
	var sum float64
	for _, c := range span[:int(24*time.Hour/tr.Step)] {
		sum += c
	}
	mean := sum / float64(24*time.Hour/tr.Step)
	rates := make([]float64, len(span))
	for i, c := range span {
		rates[i] = c * replayMean / mean
	}
	return rates
}

// replay drives the fleet's arrival rate for model chat through rates (a
// value per trace minute) in compressed time, and returns the mean rate of
// each replayed second.
func replay(f *fleet.Fleet, rates []float64) ([]float64, error) {
	perTick := time.Minute / replaySpeed
	seconds := make([]float64, int(time.Duration(len(rates))*perTick/time.Second))
	start := time.Now()
	for i, r := range rates {
		if err := f.SetArrivalRate("chat", r); err != nil {
			return nil, err
		}
		if sec := int(time.Duration(i) * perTick / time.Second); sec < len(seconds) {
			seconds[sec] += r * perTick.Seconds()
		}
		time.Sleep(time.Until(start.Add(time.Duration(i+1) * perTick)))
	}
	return seconds, nil
}

// TestExporterChain: the whole metrics chain — simulated vLLM servers
// (internal/fleet) replaying a day of a real trace in compressed time →
// infercast's exporter → Prometheus → the adapter's query of the
// exporter's infercast_model_requests_total. The target follows the day's
// cycle; a model server whose /metrics hangs for 20 s (the exporter's
// scrapes of it time out) leaves the adapter serving a target within
// [min, max], and afterwards the target follows demand again.
func TestExporterChain(t *testing.T) {
	b := findBinaries(t, "adapter", "exporter")
	defer phase(t, "TestExporterChain total")()
	dir := logDir(t)
	f := startFleet(t)
	// The fleet starts at the replayed night's first hour, so the replay
	// begins without a step of demand (a level shift the forecaster's band
	// widens for).
	rates := replayDayTrace(t)
	night := 0.0
	for _, r := range rates[:60] {
		night += r / 60
	}
	ep, pr, a := exporterChain(t, b, dir, f, night)
	procs := []*proc{ep, pr.p}

	// The forecaster warms up on the night (its band is wide on a few
	// seconds of history): the replay starts once the target is sized for it.
	need := int(math.Ceil(night / 2)) // mu 2
	settleTarget(t, a, "chat", fmt.Sprintf("chain: target sized for the night's %.1f req/s", night), func(n int) (bool, string) {
		return n >= need && n <= 2*need+1, fmt.Sprintf("not within [%d, %d]", need, 2*need+1)
	}, procs...)

	// 30 hours of nasa-1995-07 in 60 s. The target is read every second;
	// the adapter sees demand through a 10 s rate window, so each 6-hour
	// part is compared 8 s after it was replayed. The forecaster's models
	// are made for demand that changes over minutes, not a day in a
	// minute: the target follows the day up with a lag, and is asked to
	// come down once the replay is over.
	peak := 0
	func() {
		defer phase(t, "chain: 30 hours of nasa-1995-07 replayed in 60 s")()
		var targets []int
		begin := time.Now()
		type result struct {
			seconds []float64
			err     error
		}
		done := make(chan result)
		go func() {
			s, err := replay(f, rates)
			done <- result{s, err}
		}()
		var replayed []float64
		for tick := time.NewTicker(time.Second); replayed == nil; {
			select {
			case r := <-done:
				tick.Stop()
				if r.err != nil {
					t.Fatal(r.err)
				}
				replayed = r.seconds
				// What the chain counted: the exporter's counter of the
				// fleet's completions through Prometheus, over the replay
				// and the 2 s before and after it (scrape delays).
				time.Sleep(2 * time.Second)
				window := time.Since(begin) + 2*time.Second
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				counted, err := promQuery(ctx, pr.url(), fmt.Sprintf(`sum(increase(infercast_model_requests_total{model="chat"}[%dms]))`, window.Milliseconds()))
				cancel()
				if err != nil {
					t.Fatalf("querying the replay's requests: %v", err)
				}
				sent := 2*night + 2*rates[len(rates)-1]
				for _, v := range replayed {
					sent += v
				}
				t.Logf("the replay sent %.0f requests (expected, with the 2 s either side); the exporter counted %.0f through Prometheus", sent, counted)
				// Poisson arrivals: about 800 requests, a standard
				// deviation of 3.5 %.
				if math.Abs(counted-sent) > 0.15*sent {
					t.Errorf("the chain counted %.0f requests of the replay's %.0f (more than 15 %% apart)", counted, sent)
				}
			case <-tick.C:
				ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
				n, err := a.target(ctx, "chat", "on-demand")
				cancel()
				if err != nil || n < 1 || n > 60 {
					t.Errorf("target during the replay: %d %v", n, err)
				}
				targets = append(targets, n)
			}
		}
		// The last 12 s of the replay, seen after it.
		for range 12 {
			time.Sleep(time.Second)
			ctx, cancel := context.WithTimeout(context.Background(), 900*time.Millisecond)
			n, _ := a.target(ctx, "chat", "on-demand")
			cancel()
			targets = append(targets, n)
		}
		const parts = replayHours / 6
		q := len(replayed) / parts
		mean := func(v []float64) float64 {
			var s float64
			for _, x := range v {
				s += x
			}
			return s / float64(len(v))
		}
		var demand, target [parts]float64
		for i := range parts {
			demand[i] = mean(replayed[i*q : (i+1)*q])
			var tv []float64
			for _, n := range targets[min(i*q+8, len(targets)):min((i+1)*q+8, len(targets))] {
				tv = append(tv, float64(n))
			}
			if len(tv) == 0 {
				t.Fatalf("no target read in part %d of the replay (%d reads)", i+1, len(targets))
			}
			target[i] = mean(tv)
		}
		t.Logf("replayed demand by 6 hours %.1f req/s; mean target %.1f replicas; targets %v", demand, target, targets)
		// The target follows the replay: it correlates with the demand the
		// adapter can see (the last 10 s, its rate window) at some lag of
		// 2–12 s (measured 0.87–0.92, at 8–10 s), and through the
		// afternoon, 3.6 times the night's demand, it holds at least what
		// the afternoon needs.
		seen := make([]float64, len(replayed))
		for i := range seen {
			seen[i] = mean(replayed[max(0, i-9) : i+1])
		}
		best, bestLag := -1.0, 0
		for lag := 2; lag <= 12 && lag+len(seen) <= len(targets); lag++ {
			tv := make([]float64, len(seen))
			for i := range tv {
				tv[i] = float64(targets[lag+i])
			}
			if r := stat.Correlation(seen, tv, nil); r > best {
				best, bestLag = r, lag
			}
		}
		t.Logf("the target correlates with the demand seen at %.2f, %d s later", best, bestLag)
		if best < 0.6 {
			t.Errorf("the target did not follow the replay: correlation with the demand at most %.2f (lag %d s), want ≥ 0.6", best, bestLag)
		}
		afternoon := int(math.Ceil(demand[2] / 2)) // mu 2
		if target[2] < float64(afternoon) {
			t.Errorf("the target held %.1f replicas on average through the afternoon, which needs %d (demand %.1f req/s)",
				target[2], afternoon, demand[2])
		}
		for _, n := range targets {
			peak = max(peak, n)
		}
	}()
	if err := f.SetArrivalRate("chat", 4); err != nil {
		t.Fatal(err)
	}
	settleTarget(t, a, "chat", "chain: after the replay, the fleet's demand at 4 req/s", func(n int) (bool, string) {
		return n <= peak/2, fmt.Sprintf("not at or below %d, half the replay's peak", peak/2)
	}, procs...)

	// Fault: the model server's /metrics hangs for 20 s (the exporter's
	// scrapes of it time out). The adapter keeps serving a target within
	// [min_replicas, max_replicas]. What the target does meanwhile and after
	// is logged, not asserted (docs/e2e.md: the exporter's counter stands
	// still while its target is down, and catches up at once after).
	func() {
		defer phase(t, "fault: the chat model server hangs 20s")()
		if err := f.SetHang("chat-vllm", true); err != nil {
			t.Fatal(err)
		}
		lo, hi := saneFor(context.Background(), t, a, "target while the model server hangs", 20*time.Second, a.targetOf("chat"))
		t.Logf("target while the model server hung, demand 4 req/s: %d to %d", lo, hi)
		if err := f.SetHang("chat-vllm", false); err != nil {
			t.Fatal(err)
		}
		lo, hi = saneFor(context.Background(), t, a, "target after the hang", 10*time.Second, a.targetOf("chat"))
		t.Logf("target in the 10 s after the hang, demand 4 req/s: %d to %d", lo, hi)
	}()
}

// promQuery evaluates an instant query that yields one sample.
func promQuery(ctx context.Context, url, query string) (float64, error) {
	c, err := promapi.NewClient(promapi.Config{Address: url})
	if err != nil {
		return 0, err
	}
	v, _, _, err := promv1.NewAPI(c).Query(ctx, query, time.Now())
	if err != nil {
		return 0, err
	}
	vec, ok := v.(model.Vector)
	if !ok || len(vec) != 1 {
		return 0, fmt.Errorf("%s: want one sample, got %s", query, v)
	}
	return float64(vec[0].Value), nil
}
