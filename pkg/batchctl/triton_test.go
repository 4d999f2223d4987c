package batchctl

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeTriton implements the two endpoints of Triton's HTTP API the actuator
// uses, and refuses configs as Triton does when loading: a max_batch_size
// above what the model supports, a preferred_batch_size above
// max_batch_size, a negative delay, a config naming another model.
type fakeTriton struct {
	mu       sync.Mutex
	configs  map[string]map[string]any
	modelMax map[string]int
	loads    []string // configs posted, in order
	failNext error    // the next load fails with this, whatever the config
	failCode int      // its HTTP status (0: 400, as Triton refuses a config)
	hangNext bool     // the next load hangs until the client gives up
	// batchStats is what GET /v2/models/{model}/stats reports for resnet:
	// per batch size, executions and their summed compute nanoseconds.
	batchStats map[int][2]float64
}

func newFakeTriton(t *testing.T) (*fakeTriton, *httptest.Server) {
	return newFakeTritonOn(t, nil)
}

// newFakeTritonOn serves the fake on l (nil: a new 127.0.0.1 port).
func newFakeTritonOn(t *testing.T, l net.Listener) (*fakeTriton, *httptest.Server) {
	f := &fakeTriton{configs: map[string]map[string]any{}, modelMax: map[string]int{}}
	f.add("resnet", 32, 8)
	f.add("nobatch", 0, 0)
	// A stateful model: sequence batching, Triton's other scheduler.
	f.add("stateful", 16, 4)
	delete(f.configs["stateful"], "dynamic_batching")
	f.configs["stateful"]["sequence_batching"] = map[string]any{"max_sequence_idle_microseconds": "1000000"}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v2/models/{model}/config", f.getConfig)
	mux.HandleFunc("POST /v2/repository/models/{model}/load", f.load)
	mux.HandleFunc("GET /v2/models/{model}/stats", f.getStats)
	srv := httptest.NewUnstartedServer(mux)
	if l != nil {
		srv.Listener.Close()
		srv.Listener = l
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return f, srv
}

// tritonReplicas starts n fake Tritons on one port of 127.0.0.1,
// 127.0.0.2, … and returns them with an actuator whose URL names them all,
// as a headless Service's name does.
func tritonReplicas(t *testing.T, n int) ([]*fakeTriton, *Triton) {
	t.Helper()
	for range 20 {
		first, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := first.Addr().(*net.TCPAddr).Port
		ls, addrs := []net.Listener{first}, []string{"127.0.0.1"}
		for i := 2; i <= n; i++ {
			ip := fmt.Sprintf("127.0.0.%d", i)
			l, err := net.Listen("tcp", net.JoinHostPort(ip, strconv.Itoa(port)))
			if err != nil {
				break // the port is taken there: try another
			}
			ls, addrs = append(ls, l), append(addrs, ip)
		}
		if len(ls) < n {
			for _, l := range ls {
				l.Close()
			}
			continue
		}
		fakes := make([]*fakeTriton, n)
		for i, l := range ls {
			fakes[i], _ = newFakeTritonOn(t, l)
		}
		tr := &Triton{
			BaseURL: fmt.Sprintf("http://triton.models.svc:%d", port), RollbackTimeout: 5 * time.Second,
			Lookup: func(context.Context, string) ([]string, error) { return addrs, nil },
		}
		return fakes, tr
	}
	t.Fatal("no port free on every loopback address")
	return nil, nil
}

// knobsOf reads the fake's resnet knobs as Triton would serve them (its
// config through JSON, as the actuator reads it).
func knobsOf(f *fakeTriton) (Knobs, error) {
	b, err := json.Marshal(f.config("resnet"))
	if err != nil {
		return Knobs{}, err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return Knobs{}, err
	}
	return tritonKnobs(cfg)
}

// TestTritonAppliesToEveryReplica: the replicas of a model share its
// knobs — a change reaches every address the URL names, one after the
// other.
func TestTritonAppliesToEveryReplica(t *testing.T) {
	fakes, tr := tritonReplicas(t, 3)
	k := Knobs{MaxBatchSize: 16, MaxQueueDelay: 2 * time.Millisecond}
	if err := tr.Apply(context.Background(), "resnet", k); err != nil {
		t.Fatal(err)
	}
	for i, f := range fakes {
		got, err := knobsOf(f)
		if err != nil || got != k {
			t.Errorf("replica %d runs %v (%v), want %v", i+1, got, err, k)
		}
	}
}

// TestTritonRollsBackEveryReplica: when a replica refuses the change, the
// replicas already changed are loaded back with their previous config and
// the ones after it are not touched; the one that refused (HTTP 400)
// still serves its model as it was (Triton in explicit mode keeps it), so
// it is not reloaded.
func TestTritonRollsBackEveryReplica(t *testing.T) {
	fakes, tr := tritonReplicas(t, 3)
	before := Knobs{MaxBatchSize: 8, MaxQueueDelay: 100 * time.Microsecond} // the fake's resnet
	fakes[1].failNext = errors.New("CUDA out of memory")
	err := tr.Apply(context.Background(), "resnet", Knobs{MaxBatchSize: 16})
	if err == nil || !strings.Contains(err.Error(), "CUDA out of memory") || !strings.Contains(err.Error(), "replica 127.0.0.2:") {
		t.Fatalf("err = %v, want the second replica's refusal", err)
	}
	for i, f := range fakes {
		if got, err := knobsOf(f); err != nil || got != before {
			t.Errorf("replica %d runs %v after the failure, want the previous %v", i+1, got, before)
		}
	}
	loads := func(f *fakeTriton) int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.loads) }
	if a, b, c := loads(fakes[0]), loads(fakes[1]), loads(fakes[2]); a != 2 || b != 1 || c != 0 {
		t.Errorf("loads per replica %d, %d, %d; want 2 (change, rollback), 1 (the refused attempt), 0", a, b, c)
	}
}

func (f *fakeTriton) add(name string, modelMax, current int) {
	cfg := map[string]any{
		"name": name, "platform": "tensorrt_plan", "max_batch_size": current,
		"input":          []any{map[string]any{"name": "INPUT0", "data_type": "TYPE_FP32", "dims": []any{3, 224, 224}}},
		"output":         []any{map[string]any{"name": "OUTPUT0", "data_type": "TYPE_FP32", "dims": []any{1000}}},
		"instance_group": []any{map[string]any{"count": 1, "kind": "KIND_GPU"}},
	}
	if current > 0 {
		cfg["dynamic_batching"] = map[string]any{"max_queue_delay_microseconds": "100", "preferred_batch_size": []any{current}}
	}
	f.configs[name], f.modelMax[name] = cfg, modelMax
}

func tritonError(w http.ResponseWriter, msg string) {
	tritonErrorCode(w, http.StatusBadRequest, msg)
}

func tritonErrorCode(w http.ResponseWriter, code int, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": msg})
}

func (f *fakeTriton) getConfig(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg, ok := f.configs[r.PathValue("model")]
	if !ok {
		tritonError(w, fmt.Sprintf("Request for unknown model: '%s' is not found", r.PathValue("model")))
		return
	}
	_ = json.NewEncoder(w).Encode(cfg)
}

// getStats answers as Triton's statistics extension does: a model_stats
// entry with batch_stats per size (compute_infer count and ns).
func (f *fakeTriton) getStats(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	model := r.PathValue("model")
	if _, ok := f.configs[model]; !ok {
		tritonError(w, fmt.Sprintf("requested model '%s' is not available", model))
		return
	}
	var bs []map[string]any
	for size, c := range f.batchStats {
		d := map[string]any{"count": c[0], "ns": c[1]}
		bs = append(bs, map[string]any{"batch_size": size, "compute_input": d, "compute_infer": d, "compute_output": d})
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"model_stats": []any{map[string]any{
		"name": model, "version": "1", "inference_count": 0, "execution_count": 0, "batch_stats": bs,
	}}})
}

func (f *fakeTriton) load(w http.ResponseWriter, r *http.Request) {
	model := r.PathValue("model")
	var req struct {
		Parameters map[string]json.RawMessage `json:"parameters"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		tritonError(w, "failed to parse the request JSON buffer: "+err.Error())
		return
	}
	var cfgText string
	if err := json.Unmarshal(req.Parameters["config"], &cfgText); err != nil {
		tritonError(w, "Expect 'config' parameter to be a string")
		return
	}
	f.mu.Lock()
	f.loads = append(f.loads, cfgText)
	hang, fail, code := f.hangNext, f.failNext, f.failCode
	f.hangNext, f.failNext, f.failCode = false, nil, 0
	f.mu.Unlock()
	if hang {
		<-r.Context().Done()
		return
	}
	if fail != nil {
		tritonErrorCode(w, cmp.Or(code, http.StatusBadRequest), fail.Error())
		return
	}
	var cfg map[string]any
	dec := json.NewDecoder(strings.NewReader(cfgText))
	dec.UseNumber()
	if err := dec.Decode(&cfg); err != nil {
		tritonError(w, "failed to load '"+model+"', failed to parse config: "+err.Error())
		return
	}
	if msg := f.validate(model, cfg); msg != "" {
		tritonError(w, "failed to load '"+model+"', failed to poll from model repository: "+msg)
		return
	}
	f.mu.Lock()
	f.configs[model] = cfg
	f.mu.Unlock()
}

func (f *fakeTriton) validate(model string, cfg map[string]any) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	max, ok := f.modelMax[model]
	if !ok {
		return "unknown model"
	}
	if cfg["name"] != model {
		return fmt.Sprintf("unexpected 'name' %v in config, expecting %s", cfg["name"], model)
	}
	num := func(v any) int64 {
		switch x := v.(type) {
		case json.Number:
			n, _ := x.Int64()
			return n
		case string:
			var n int64
			fmt.Sscan(x, &n)
			return n
		}
		return -1
	}
	mbs := num(cfg["max_batch_size"])
	if mbs < 0 || mbs > int64(max) {
		return fmt.Sprintf("model '%s': max_batch_size %d exceeds the maximum %d the model supports", model, mbs, max)
	}
	if db, ok := cfg["dynamic_batching"].(map[string]any); ok {
		if num(db["max_queue_delay_microseconds"]) < 0 {
			return "dynamic batching max_queue_delay_microseconds must be non-negative"
		}
		if qp, ok := db["default_queue_policy"].(map[string]any); ok {
			if a, ok := qp["timeout_action"]; ok && a != "REJECT" && a != "DELAY" {
				return fmt.Sprintf("unknown timeout_action %v", a)
			}
			if num(qp["default_timeout_microseconds"]) < 0 {
				return "default_timeout_microseconds must be non-negative"
			}
		}
		pbs, _ := db["preferred_batch_size"].([]any)
		for _, p := range pbs {
			if v := num(p); v < 1 || v > mbs {
				return fmt.Sprintf("dynamic batching preferred size must be positive and cannot exceed max_batch_size %d, got %d", mbs, v)
			}
		}
	}
	return ""
}

func (f *fakeTriton) config(model string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.configs[model]
}

func TestTritonApply(t *testing.T) {
	f, srv := newFakeTriton(t)
	tr := &Triton{BaseURL: srv.URL, Client: srv.Client()}
	ctx := context.Background()
	k, err := tr.Current(ctx, "resnet")
	if err != nil || k != (Knobs{MaxBatchSize: 8, MaxQueueDelay: 100 * time.Microsecond}) {
		t.Fatalf("Current = %v, %v; want 8 and 100µs", k, err)
	}
	want := Knobs{MaxBatchSize: 16, MaxQueueDelay: 5 * time.Millisecond}
	if err := tr.Apply(ctx, "resnet", want); err != nil {
		t.Fatal(err)
	}
	if k, err := tr.Current(ctx, "resnet"); err != nil || k != want {
		t.Fatalf("after Apply, Current = %v, %v; want %v", k, err, want)
	}
	cfg := f.config("resnet")
	db := cfg["dynamic_batching"].(map[string]any)
	if fmt.Sprint(db["preferred_batch_size"]) != "[16]" {
		t.Errorf("preferred_batch_size %v, want [16]", db["preferred_batch_size"])
	}
	// Everything else in the config survives the override.
	if cfg["platform"] != "tensorrt_plan" || cfg["input"] == nil || cfg["instance_group"] == nil {
		t.Errorf("config lost fields: %v", cfg)
	}
}

// A queue timeout becomes Triton's default_queue_policy with REJECT; the
// operator's other policy fields stay, and the knobs read back.
func TestTritonQueueTimeout(t *testing.T) {
	f, srv := newFakeTriton(t)
	f.configs["resnet"]["dynamic_batching"].(map[string]any)["default_queue_policy"] = map[string]any{"max_queue_size": 100}
	tr := &Triton{BaseURL: srv.URL, Client: srv.Client()}
	ctx := context.Background()
	want := Knobs{MaxBatchSize: 16, MaxQueueDelay: time.Millisecond, QueueTimeout: 250 * time.Millisecond}
	if err := tr.Apply(ctx, "resnet", want); err != nil {
		t.Fatal(err)
	}
	if k, err := tr.Current(ctx, "resnet"); err != nil || k != want {
		t.Fatalf("after Apply, Current = %v, %v; want %v", k, err, want)
	}
	qp := f.config("resnet")["dynamic_batching"].(map[string]any)["default_queue_policy"].(map[string]any)
	if qp["timeout_action"] != "REJECT" || fmt.Sprint(qp["default_timeout_microseconds"]) != "250000" || fmt.Sprint(qp["max_queue_size"]) != "100" {
		t.Errorf("default_queue_policy %v: want REJECT after 250000 µs, max_queue_size 100 kept", qp)
	}
	// Knobs without a timeout leave the server's policy alone.
	if err := tr.Apply(ctx, "resnet", Knobs{MaxBatchSize: 8}); err != nil {
		t.Fatal(err)
	}
	if k, _ := tr.Current(ctx, "resnet"); k.QueueTimeout != want.QueueTimeout {
		t.Errorf("a change without a timeout dropped the server's: %v", k)
	}
	// A DELAY policy is not a rejection timeout.
	f.configs["resnet"]["dynamic_batching"].(map[string]any)["default_queue_policy"] = map[string]any{"timeout_action": "DELAY", "default_timeout_microseconds": "5000"}
	if k, _ := tr.Current(ctx, "resnet"); k.QueueTimeout != 0 {
		t.Errorf("DELAY policy read as a rejection timeout %s", k.QueueTimeout)
	}
}

func TestTritonRollsBack(t *testing.T) {
	before := Knobs{MaxBatchSize: 8, MaxQueueDelay: 100 * time.Microsecond}
	tests := []struct {
		name    string
		k       Knobs
		arm     func(*fakeTriton)
		timeout time.Duration
		wantErr string
		isCtx   bool
		loads   int // the attempt, and the rollback where the loaded model may have changed
	}{
		// Refused (4xx): Triton left the loaded model as it was.
		{name: "max_batch_size above the model's", k: Knobs{MaxBatchSize: 64}, wantErr: "exceeds the maximum 32", loads: 1},
		{name: "load refused (out of memory)", k: Knobs{MaxBatchSize: 16},
			arm: func(f *fakeTriton) { f.failNext = errors.New("CUDA out of memory") }, wantErr: "CUDA out of memory", loads: 1},
		// A server error or no answer: the previous config is loaded back.
		{name: "server error", k: Knobs{MaxBatchSize: 16},
			arm: func(f *fakeTriton) { f.failNext, f.failCode = errors.New("internal"), 500 }, wantErr: "internal", loads: 2},
		{name: "server hangs", k: Knobs{MaxBatchSize: 16}, arm: func(f *fakeTriton) { f.hangNext = true },
			timeout: 200 * time.Millisecond, isCtx: true, loads: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, srv := newFakeTriton(t)
			if tc.arm != nil {
				tc.arm(f)
			}
			tr := &Triton{BaseURL: srv.URL, Client: srv.Client(), RollbackTimeout: 5 * time.Second}
			ctx := context.Background()
			if tc.timeout > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.timeout)
				defer cancel()
			}
			err := tr.Apply(ctx, "resnet", tc.k)
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			if tc.isCtx && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want a deadline", err)
			}
			if tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("err = %v, want it to carry %q", err, tc.wantErr)
			}
			if k, err := tr.Current(context.Background(), "resnet"); err != nil || k != before {
				t.Errorf("after the failure the server runs %v (%v), want the previous %v", k, err, before)
			}
			f.mu.Lock()
			n := len(f.loads)
			f.mu.Unlock()
			if n != tc.loads {
				t.Errorf("%d loads, want %d", n, tc.loads)
			}
		})
	}
}

func TestTritonRefuses(t *testing.T) {
	_, srv := newFakeTriton(t)
	tr := &Triton{BaseURL: srv.URL, Client: srv.Client()}
	if err := tr.Apply(context.Background(), "nobatch", Knobs{MaxBatchSize: 4}); err == nil || !strings.Contains(err.Error(), "does not batch") {
		t.Errorf("model without batching: err = %v", err)
	}
	if err := tr.Apply(context.Background(), "ghost", Knobs{MaxBatchSize: 4}); err == nil || !strings.Contains(err.Error(), "unknown model") {
		t.Errorf("unknown model: err = %v", err)
	}
	// dynamic_batching beside sequence_batching is a config Triton
	// refuses (one scheduler): not attempted at every change.
	f, srv := newFakeTriton(t)
	tr = &Triton{BaseURL: srv.URL, Client: srv.Client()}
	if err := tr.Apply(context.Background(), "stateful", Knobs{MaxBatchSize: 8}); err == nil || !strings.Contains(err.Error(), "uses sequence_batching") {
		t.Errorf("sequence-batched model: err = %v", err)
	}
	if len(f.loads) != 0 {
		t.Errorf("%d loads of a sequence-batched model, want none", len(f.loads))
	}
}

// The controller drives a (fake) Triton end to end.
func TestControllerWithTriton(t *testing.T) {
	f, srv := newFakeTriton(t)
	tr := &Triton{BaseURL: srv.URL, Client: srv.Client(), Limit: Limits{MinInterval: time.Minute, MinGain: 0.1}}
	cfg := DefaultConfig(500*time.Millisecond, 32)
	cfg.Bounds.Delays = []time.Duration{0}
	cfg.Fitter.MinBatches = 5
	c, err := New(cfg, tr)
	if err != nil {
		t.Fatal(err)
	}
	cur, err := tr.Current(context.Background(), "resnet")
	if err != nil {
		t.Fatal(err)
	}
	c.SetApplied("resnet", cur)
	d, err := c.Step(context.Background(), "resnet", exactObs(10*time.Second, 100, 0.2), 0)
	if err != nil {
		t.Fatal(err)
	}
	// From 8 (binding far below the 80/s SLO capacity) to 30.
	if !d.Changed || d.Applied.MaxBatchSize != 30 {
		t.Fatalf("decision %+v, want 30 applied", d)
	}
	if got := f.config("resnet")["max_batch_size"]; fmt.Sprint(got) != "30" {
		t.Errorf("Triton runs max_batch_size %v, want 30", got)
	}
}

// The fake refuses what Triton refuses, so the rollback tests mean something.
func TestFakeTritonRefusesBadConfigs(t *testing.T) {
	f, _ := newFakeTriton(t)
	base := func() map[string]any {
		return map[string]any{"name": "resnet", "max_batch_size": json.Number("16"),
			"dynamic_batching": map[string]any{"preferred_batch_size": []any{json.Number("8")}, "max_queue_delay_microseconds": json.Number("100")}}
	}
	if msg := f.validate("resnet", base()); msg != "" {
		t.Fatalf("a good config refused: %s", msg)
	}
	for name, mut := range map[string]func(map[string]any){
		"above the model's maximum": func(c map[string]any) { c["max_batch_size"] = json.Number("33") },
		"preferred above max": func(c map[string]any) {
			c["dynamic_batching"].(map[string]any)["preferred_batch_size"] = []any{json.Number("32")}
		},
		"negative delay": func(c map[string]any) {
			c["dynamic_batching"].(map[string]any)["max_queue_delay_microseconds"] = json.Number("-1")
		},
		"another model's name": func(c map[string]any) { c["name"] = "bert" },
	} {
		c := base()
		mut(c)
		if msg := f.validate("resnet", c); msg == "" {
			t.Errorf("%s: accepted", name)
		}
	}
}

// TestTritonBatchStats: the statistics extension read on every replica,
// and a window's batch size distribution from two readings — summed over
// the replicas read both times, a replica whose counters went down (its
// model reloaded) left out for that window.
func TestTritonBatchStats(t *testing.T) {
	fakes, tr := tritonReplicas(t, 2)
	set := func(f *fakeTriton, st map[int][2]float64) { f.mu.Lock(); f.batchStats = st; f.mu.Unlock() }
	set(fakes[0], map[int][2]float64{1: {10, 1e9}, 8: {4, 0.6e9}})
	set(fakes[1], map[int][2]float64{8: {2, 0.3e9}})
	ctx := context.Background()
	first, err := tr.BatchStats(ctx, "resnet")
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 || first[addrOn(first, "127.0.0.1")][8] != (BatchCounter{4, 0.6}) {
		t.Fatalf("first reading %v", first)
	}
	set(fakes[0], map[int][2]float64{1: {12, 1.2e9}, 8: {7, 1.05e9}, 16: {1, 0.2e9}}) // +2 of 1, +3 of 8, +1 of 16
	set(fakes[1], map[int][2]float64{8: {1, 0.15e9}})                                 // reloaded: counters restarted
	second, err := tr.BatchStats(ctx, "resnet")
	if err != nil {
		t.Fatal(err)
	}
	got := BatchIncrease(first, second)
	want := []BatchStat{{1, 2, 0.2}, {8, 3, 0.45}, {16, 1, 0.2}}
	if len(got) != len(want) {
		t.Fatalf("increase %v, want %v (the reloaded replica left out)", got, want)
	}
	for i := range want {
		if got[i].Size != want[i].Size || got[i].Count != want[i].Count || math.Abs(got[i].ExecSeconds-want[i].ExecSeconds) > 1e-9 {
			t.Errorf("increase %v, want %v", got, want)
			break
		}
	}
	if inc := BatchIncrease(nil, second); len(inc) != 0 {
		t.Errorf("from no previous reading: %v, want nothing", inc)
	}

	if _, err := tr.BatchStats(ctx, "ghost"); err == nil || !strings.Contains(err.Error(), "not available") {
		t.Errorf("unknown model: err = %v", err)
	}
	set(fakes[0], map[int][2]float64{0: {1, 1}})
	set(fakes[1], map[int][2]float64{0: {1, 1}})
	if _, err := tr.BatchStats(ctx, "resnet"); err == nil || !strings.Contains(err.Error(), "bad batch_stats entry") {
		t.Errorf("batch size 0: err = %v", err)
	}
}

// addrOn is the address of the replica on ip in a reading.
func addrOn(r map[string]map[int]BatchCounter, ip string) string {
	for a := range r {
		if strings.HasPrefix(a, ip+":") {
			return a
		}
	}
	return ""
}

// TestTritonReconcile: a replica that restarts loads its config.pbtxt (a
// load's config override lives in memory only) and would keep it until
// the next change; Reconcile finds it and loads the knobs there alone, and
// does nothing when every replica runs them.
func TestTritonReconcile(t *testing.T) {
	fakes, tr := tritonReplicas(t, 3)
	k := Knobs{MaxBatchSize: 16, MaxQueueDelay: 2 * time.Millisecond}
	if err := tr.Apply(context.Background(), "resnet", k); err != nil {
		t.Fatal(err)
	}
	loads := func(f *fakeTriton) int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.loads) }
	if n, err := tr.Reconcile(context.Background(), "resnet", k); n != 0 || err != nil {
		t.Fatalf("every replica in step: Reconcile = %d, %v; want 0, nil", n, err)
	}
	// Replica 2 restarts: back to its repository config.
	fakes[1].mu.Lock()
	fakes[1].add("resnet", 32, 8)
	fakes[1].mu.Unlock()
	n, err := tr.Reconcile(context.Background(), "resnet", k)
	if n != 1 || err != nil {
		t.Fatalf("after a restart: Reconcile = %d, %v; want 1, nil", n, err)
	}
	for i, f := range fakes {
		if got, err := knobsOf(f); err != nil || got != k {
			t.Errorf("replica %d runs %v (%v), want %v", i+1, got, err, k)
		}
	}
	if a, b, c := loads(fakes[0]), loads(fakes[1]), loads(fakes[2]); a != 1 || b != 2 || c != 1 {
		t.Errorf("loads per replica %d, %d, %d; want 1, 2 (the change, then the reconcile), 1", a, b, c)
	}
	// One replica refuses: it is reported, and the others are still done.
	fakes[0].mu.Lock()
	fakes[0].add("resnet", 32, 8)
	fakes[0].failNext = errors.New("CUDA out of memory")
	fakes[0].mu.Unlock()
	fakes[2].mu.Lock()
	fakes[2].add("resnet", 32, 8)
	fakes[2].mu.Unlock()
	n, err = tr.Reconcile(context.Background(), "resnet", k)
	if n != 1 || err == nil || !strings.Contains(err.Error(), "127.0.0.1:") || !strings.Contains(err.Error(), "CUDA out of memory") {
		t.Fatalf("one replica refusing: Reconcile = %d, %v; want 1 and its error", n, err)
	}
	if got, _ := knobsOf(fakes[2]); got != k {
		t.Errorf("replica 3 runs %v after replica 1 refused, want %v", got, k)
	}
}
