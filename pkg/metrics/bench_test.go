package metrics

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
)

// cpuTime is the user+system CPU time of the whole process.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchBody is a vLLM-like body of about 200 samples: four histograms of
// 20 buckets, counters and gauges, plus unrelated process metrics that are
// parsed and skipped, as on a real server. step moves the counters.
func benchBody(model string, step int) ([]byte, int) {
	var b bytes.Buffer
	n := 0
	lbl := fmt.Sprintf(`engine="0",model_name=%q`, model)
	for _, g := range []string{"vllm:num_requests_running", "vllm:num_requests_waiting", "vllm:kv_cache_usage_perc"} {
		fmt.Fprintf(&b, "# HELP %s x\n# TYPE %s gauge\n%s{%s} %d\n", g, g, g, lbl, 3+step%5)
		n++
	}
	fmt.Fprintf(&b, "# TYPE vllm:request_success_total counter\n")
	for _, r := range []string{"stop", "length", "abort"} {
		fmt.Fprintf(&b, "vllm:request_success_total{%s,finished_reason=%q} %d\n", lbl, r, 1000+step*10)
		n++
	}
	les := []string{"0.001", "0.005", "0.01", "0.02", "0.04", "0.06", "0.08", "0.1", "0.25", "0.5", "0.75", "1", "2.5", "5", "7.5", "10", "20", "40", "80", "+Inf"}
	for _, h := range []string{"vllm:e2e_request_latency_seconds", "vllm:time_to_first_token_seconds", "vllm:inter_token_latency_seconds", "vllm:request_queue_time_seconds"} {
		fmt.Fprintf(&b, "# HELP %s x\n# TYPE %s histogram\n", h, h)
		for i, le := range les {
			fmt.Fprintf(&b, "%s_bucket{%s,le=%q} %d\n", h, lbl, le, (i+1)*(100+step))
			n++
		}
		fmt.Fprintf(&b, "%s_sum{%s} %g\n%s_count{%s} %d\n", h, lbl, float64(step)*12.5, h, lbl, len(les)*(100+step))
		n += 2
	}
	for i := 0; n < 200; i++ {
		fmt.Fprintf(&b, "python_gc_objects_collected_total{generation=\"%d\"} %d\n", i, 100+step)
		n++
	}
	return b.Bytes(), n
}

// BenchmarkCycle measures one full cycle over 1,000 targets of 200 series
// each: parse (Prometheus's text parser), normalise, window update and
// aggregation, from in-memory bodies (no HTTP: the network is not what is
// measured). It runs on one goroutine, so samples/s is per core.
func BenchmarkCycle(b *testing.B) {
	const targets = 1000
	windows := []time.Duration{time.Minute, 5 * time.Minute}
	states := make([]*targetState, targets)
	bodies := make([][2][]byte, targets)
	perCycle := 0
	for i := range states {
		states[i] = newTargetState(Target{Name: fmt.Sprintf("pod-%d", i), Dialect: vllmDialect(), Source: SourceStatic})
		model := fmt.Sprintf("model-%d", i%20)
		var n int
		bodies[i][0], n = benchBody(model, 0)
		bodies[i][1], _ = benchBody(model, 1)
		perCycle += n
	}
	now := time.Unix(1_750_000_000, 0)
	// Warm the histories so the steady state is measured.
	for c := range 3 {
		for i, s := range states {
			if err := s.process(bodies[i][c%2], "text/plain; version=0.0.4", now, windows); err != nil {
				b.Fatal(err)
			}
		}
		now = now.Add(5 * time.Second)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for c := 0; c < b.N; c++ {
		for i, s := range states {
			if err := s.process(bodies[i][c%2], "text/plain; version=0.0.4", now, windows); err != nil {
				b.Fatal(err)
			}
		}
		_ = aggregate(states, windows)
		now = now.Add(5 * time.Second)
	}
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	// Per core: samples over the CPU time the process used (GC included).
	// On a shared, oversubscribed machine wall time measures the neighbours;
	// CPU time measures this code.
	b.ReportMetric(float64(perCycle)*float64(b.N)/cpu.Seconds(), "samples/s/core")
	b.ReportMetric(float64(perCycle)*float64(b.N)/b.Elapsed().Seconds(), "samples/s-wall")
	b.ReportMetric(float64(perCycle), "samples/cycle")
}

// BenchmarkFullCycleHTTP measures one whole exporter cycle as it runs in
// production: 1,000 targets of 200 series each fetched over HTTP, parsed,
// normalised and windowed by Exporter.Cycle, then collected and encoded as
// text exposition, as a Prometheus scrape of the exporter would be. The
// model servers run in a child process (this test binary re-executed: one
// server, a path per target, writing prepared bodies), so samples/s/core
// divides the samples ingested by the CPU time of the exporter's process
// alone, its HTTP client and GC included; bytes and allocs are the
// exporter's too.
func BenchmarkFullCycleHTTP(b *testing.B) {
	const targets = benchFleetTargets
	addr, perCycle := startBenchFleet(b)

	clock := newFakeClock()
	cfg := DefaultConfig()
	// One server stands in for 1,000 hosts: keep a connection per
	// concurrent scrape alive, as 1,000 hosts with their own idle
	// connections would, instead of measuring TCP connection churn.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = cfg.Global.MaxConcurrentScrapes
	client := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()
	e, err := New(cfg, Options{Now: clock.Now, Client: client})
	if err != nil {
		b.Fatal(err)
	}
	d, _ := BuiltinDialect(DialectVLLM)
	ts := make([]Target, targets)
	for i := range ts {
		ts[i] = Target{Name: fmt.Sprintf("pod-%d", i), URL: fmt.Sprintf("http://%s/t/%d/metrics", addr, i), Dialect: d, Timeout: 30 * time.Second}
	}
	e.SetTargets("bench", ts)
	reg := prometheus.NewRegistry()
	reg.MustRegister(e)
	ctx := context.Background()

	var out bytes.Buffer
	expose := func() {
		mfs, err := reg.Gather()
		if err != nil {
			b.Fatal(err)
		}
		out.Reset()
		enc := expfmt.NewEncoder(&out, expfmt.NewFormat(expfmt.TypeTextPlain))
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				b.Fatal(err)
			}
		}
	}
	cycle := func() {
		clock.Advance(5 * time.Second)
		e.Cycle(ctx)
	}
	// Warm the histories and connections so the steady state is measured.
	for range 3 {
		cycle()
	}
	up := 0
	for _, v := range gatherUp(b, reg) {
		if v == 1 {
			up++
		}
	}
	if up != targets {
		b.Fatalf("%d of %d targets up after warm-up", up, targets)
	}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime(b)
	for range b.N {
		cycle()
		expose()
	}
	cpu := cpuTime(b) - cpu0
	b.StopTimer()
	b.ReportMetric(float64(perCycle)*float64(b.N)/cpu.Seconds(), "samples/s/core")
	b.ReportMetric(float64(perCycle)*float64(b.N)/b.Elapsed().Seconds(), "samples/s-wall")
	b.ReportMetric(float64(perCycle), "samples/cycle")
	b.ReportMetric(float64(out.Len()), "exposition-bytes")
}

// benchFleetEnv, set, makes the test binary serve the benchmark's targets
// (TestMain) instead of running tests.
const benchFleetEnv = "INFERCAST_BENCH_FLEET"

const benchFleetTargets = 1000

// benchFleetBodies are the bodies of the benchmark's targets: two
// alternating bodies each, as in BenchmarkCycle, and the samples of one.
func benchFleetBodies() ([][2][]byte, int) {
	bodies := make([][2][]byte, benchFleetTargets)
	n := 0
	for i := range bodies {
		model := fmt.Sprintf("model-%d", i%20)
		bodies[i][0], n = benchBody(model, 0)
		bodies[i][1], _ = benchBody(model, 1)
	}
	return bodies, n
}

// startBenchFleet re-executes this test binary as the benchmark's model
// servers and returns their address and the samples of one cycle; the
// child ends when the benchmark does.
func startBenchFleet(b *testing.B) (string, int) {
	b.Helper()
	_, perTarget := benchBody("model-0", 0)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchFleetEnv+"=1")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		stdin.Close() // the child serves until its stdin closes
		if err := cmd.Wait(); err != nil {
			b.Errorf("bench fleet: %v", err)
		}
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), "listening ")
	if err != nil || !ok {
		b.Fatalf("bench fleet did not say where it listens: %q %v", line, err)
	}
	return addr, perTarget * benchFleetTargets
}

// serveBenchFleet is the child of startBenchFleet: it serves
// /t/<index>/metrics on 127.0.0.1, each path alternating its two bodies,
// until stdin closes. It returns the exit status.
func serveBenchFleet() int {
	bodies, _ := benchFleetBodies()
	var served [benchFleetTargets]atomic.Uint64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /t/{index}/metrics", func(w http.ResponseWriter, r *http.Request) {
		i, err := strconv.Atoi(r.PathValue("index"))
		if err != nil || i < 0 || i >= benchFleetTargets {
			http.NotFound(w, r)
			return
		}
		body := bodies[i][served[i].Add(1)%2]
		w.Header().Set("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = w.Write(body)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench fleet:", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	fmt.Printf("listening %s\n", ln.Addr())
	_, _ = io.Copy(io.Discard, os.Stdin)
	_ = srv.Close()
	return 0
}

// gatherUp returns infercast_target_up by target.
func gatherUp(b *testing.B, reg *prometheus.Registry) map[string]float64 {
	b.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		b.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "infercast_target_up" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "target" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
