package batchctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRay implements the Serve REST API's GET and PUT
// /api/serve/applications/. A PUT is validated like Ray's schema (400 on a
// bad body), removes the applications it does not list, and deploys
// asynchronously: the next GET shows DEPLOYING, the one after RUNNING, or
// DEPLOY_FAILED when the deployment's reconfigure would raise (it accepts
// max_batch_size 1–maxBatch and batch_wait_timeout_s ≥ 0).
type fakeRay struct {
	mu       sync.Mutex
	apps     map[string]*rayApp
	maxBatch int
	puts     int
	hangGets bool // GETs after the next PUT hang until the client gives up
	// targetCapacity is the instance's (nil: unset); a PUT sets it to
	// what it carries, unset when it carries none, as Ray's controller does.
	targetCapacity *float64
	// settleAs is the status the next deploy settles in instead of RUNNING
	// ("UNHEALTHY"; "DEPLOYING": it never settles).
	settleAs string
}

type rayApp struct {
	config   map[string]any
	status   string
	message  string
	settleAs string // the status it settles in, when not RUNNING
	pending  int    // GETs left before the deploy settles
	failMsg  string
}

func newFakeRay(t *testing.T) (*fakeRay, *httptest.Server) {
	f := &fakeRay{apps: map[string]*rayApp{}, maxBatch: 32}
	for _, name := range []string{"llm", "other"} {
		f.apps[name] = &rayApp{status: "RUNNING", config: map[string]any{
			"name": name, "route_prefix": "/" + name, "import_path": name + ".main:app",
			"deployments": []any{map[string]any{"name": "Model",
				"user_config": map[string]any{"max_batch_size": 4, "batch_wait_timeout_s": 0.01, "temperature": 0.7}}},
		}}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/serve/applications/", f.get)
	mux.HandleFunc("PUT /api/serve/applications/", f.put)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return f, srv
}

func (f *fakeRay) get(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	if f.hangGets && f.puts > 0 {
		f.mu.Unlock()
		<-r.Context().Done()
		return
	}
	apps := map[string]any{}
	for name, a := range f.apps {
		if a.pending > 0 {
			a.pending--
			if a.pending == 0 {
				switch {
				case a.failMsg != "":
					a.status, a.message = "DEPLOY_FAILED", a.failMsg
				case a.settleAs != "":
					a.status, a.message = a.settleAs, "replicas failing their health checks"
				default:
					a.status, a.message = "RUNNING", ""
				}
			}
		}
		var cfg any
		if a.config != nil {
			cfg = a.config
		}
		apps[name] = map[string]any{"name": name, "status": a.status, "message": a.message,
			"deployed_app_config": cfg, "route_prefix": "/" + name, "deployments": map[string]any{}}
	}
	f.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string]any{"deploy_mode": "MULTI_APP", "proxy_location": "EveryNode", "target_capacity": f.targetCapacity, "applications": apps})
}

func (f *fakeRay) put(w http.ResponseWriter, r *http.Request) {
	var body struct {
		TargetCapacity *float64         `json:"target_capacity"`
		Applications   []map[string]any `json:"applications"`
	}
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		http.Error(w, "1 validation error for ServeDeploySchema: "+err.Error(), http.StatusBadRequest)
		return
	}
	for _, a := range body.Applications {
		if _, ok := a["name"].(string); !ok || a["import_path"] == nil {
			http.Error(w, "validation error: application needs name and import_path", http.StatusBadRequest)
			return
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.puts++
	f.targetCapacity = body.TargetCapacity
	settle := f.settleAs
	f.settleAs = ""
	next := map[string]*rayApp{}
	for _, a := range body.Applications {
		name := a["name"].(string)
		app := &rayApp{config: a, status: "DEPLOYING", pending: 1}
		app.failMsg = f.reconfigureError(a)
		if name == "llm" && settle == "DEPLOYING" {
			app.pending = -1 // never settles
		} else if name == "llm" {
			app.settleAs = settle
		}
		next[name] = app
	}
	f.apps = next // applications not listed are deleted, as Ray does
}

// reconfigureError is what the deployment's reconfigure would raise.
func (f *fakeRay) reconfigureError(app map[string]any) string {
	deps, _ := app["deployments"].([]any)
	for _, d := range deps {
		uc, _ := d.(map[string]any)["user_config"].(map[string]any)
		if uc == nil {
			continue
		}
		b, _ := uc["max_batch_size"].(float64)
		w, _ := uc["batch_wait_timeout_s"].(float64)
		if b < 1 || int(b) > f.maxBatch || w < 0 {
			return fmt.Sprintf("ValueError: max_batch_size must be in [1, %d] and batch_wait_timeout_s ≥ 0, got %v and %v", f.maxBatch, b, w)
		}
	}
	return ""
}

func (f *fakeRay) userConfig(app string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.apps[app]
	if !ok {
		return nil
	}
	return findUserConfig(a.config, "Model")
}

func newRay(srv *httptest.Server) *RayServe {
	return &RayServe{BaseURL: srv.URL, Application: "llm", Deployment: "Model", Client: srv.Client(),
		PollInterval: 5 * time.Millisecond, RollbackTimeout: 5 * time.Second}
}

func TestRayServeApply(t *testing.T) {
	f, srv := newFakeRay(t)
	r := newRay(srv)
	want := Knobs{MaxBatchSize: 16, MaxQueueDelay: 20 * time.Millisecond}
	if err := r.Apply(context.Background(), "llm", want); err != nil {
		t.Fatal(err)
	}
	if k, err := r.Current(context.Background(), "llm"); err != nil || k != want {
		t.Fatalf("Current = %v, %v; want %v", k, err, want)
	}
	uc := f.userConfig("llm")
	if uc["temperature"] != 0.7 {
		t.Errorf("other user_config keys lost: %v", uc)
	}
	if other := f.userConfig("other"); other == nil || other["max_batch_size"] != 4.0 {
		t.Errorf("the other application was changed or deleted: %v", other)
	}
}

func TestRayServeRollsBack(t *testing.T) {
	t.Run("reconfigure raises", func(t *testing.T) {
		f, srv := newFakeRay(t)
		r := newRay(srv)
		err := r.Apply(context.Background(), "llm", Knobs{MaxBatchSize: 64})
		if err == nil || !strings.Contains(err.Error(), "DEPLOY_FAILED") && !strings.Contains(err.Error(), "failed to deploy") {
			t.Fatalf("err = %v, want the deploy failure", err)
		}
		if uc := f.userConfig("llm"); uc["max_batch_size"] != 4.0 {
			t.Errorf("after rollback user_config = %v, want max_batch_size 4", uc)
		}
		if f.puts != 2 {
			t.Errorf("%d PUTs, want 2 (the change and the rollback)", f.puts)
		}
	})
	t.Run("server hangs", func(t *testing.T) {
		f, srv := newFakeRay(t)
		f.hangGets = true
		r := newRay(srv)
		r.RollbackTimeout = 300 * time.Millisecond
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		err := r.Apply(ctx, "llm", Knobs{MaxBatchSize: 8})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("err = %v, want a deadline", err)
		}
	})
}

// TestRayServeKeepsTargetCapacity: a PUT without target_capacity resets it
// to 100 % — the end of an incremental upgrade that throttles it; the
// change carries the instance's own, and an instance without one gets none.
func TestRayServeKeepsTargetCapacity(t *testing.T) {
	f, srv := newFakeRay(t)
	half := 50.0
	f.targetCapacity = &half
	if err := newRay(srv).Apply(context.Background(), "llm", Knobs{MaxBatchSize: 8}); err != nil {
		t.Fatal(err)
	}
	if f.targetCapacity == nil || *f.targetCapacity != 50 {
		t.Errorf("target_capacity after the change = %v, want 50", f.targetCapacity)
	}
	f, srv = newFakeRay(t)
	if err := newRay(srv).Apply(context.Background(), "llm", Knobs{MaxBatchSize: 8}); err != nil {
		t.Fatal(err)
	}
	if f.targetCapacity != nil {
		t.Errorf("target_capacity %v set on an instance without one", *f.targetCapacity)
	}
}

// TestRayServeDeployOutcomes: an application that turns UNHEALTHY after the
// change is rolled back like one that fails to deploy; one stuck DEPLOYING
// is given up on after DeployTimeout (and rolled back) instead of holding
// the controller for ever.
func TestRayServeDeployOutcomes(t *testing.T) {
	for _, settle := range []string{"UNHEALTHY", "DEPLOYING"} {
		t.Run(settle, func(t *testing.T) {
			f, srv := newFakeRay(t)
			f.settleAs = settle
			r := newRay(srv)
			r.DeployTimeout = 300 * time.Millisecond
			err := r.Apply(context.Background(), "llm", Knobs{MaxBatchSize: 8})
			if err == nil {
				t.Fatal("Apply succeeded")
			}
			if settle == "DEPLOYING" && !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want the deploy deadline", err)
			}
			if settle == "UNHEALTHY" && !strings.Contains(err.Error(), "UNHEALTHY") {
				t.Errorf("err = %v, want the status", err)
			}
			if uc := f.userConfig("llm"); uc["max_batch_size"] != 4.0 {
				t.Errorf("after the failure user_config = %v, want max_batch_size 4 back", uc)
			}
			if f.puts != 2 {
				t.Errorf("%d PUTs, want 2 (the change and the rollback)", f.puts)
			}
		})
	}
}

func TestRayServeRefusesImperativeApps(t *testing.T) {
	f, srv := newFakeRay(t)
	f.mu.Lock()
	f.apps["notebook"] = &rayApp{status: "RUNNING"} // deployed by serve.run: no config
	f.mu.Unlock()
	err := newRay(srv).Apply(context.Background(), "llm", Knobs{MaxBatchSize: 8})
	if err == nil || !strings.Contains(err.Error(), "not deployed from a config") {
		t.Fatalf("err = %v, want a refusal that protects the imperative app", err)
	}
	if f.puts != 0 {
		t.Errorf("%d PUTs, want none", f.puts)
	}
}

func TestWebhook(t *testing.T) {
	var mu sync.Mutex
	var got []WebhookPayload
	fail := false
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var p WebhookPayload
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || json.NewDecoder(r.Body).Decode(&p) != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if fail {
			http.Error(w, "operator busy", http.StatusServiceUnavailable)
			return
		}
		got = append(got, p)
	}))
	defer srv.Close()
	w := &Webhook{URL: srv.URL, Client: srv.Client()}
	if err := w.Apply(context.Background(), "m", Knobs{MaxBatchSize: 12, MaxQueueDelay: 3 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	want := WebhookPayload{Model: "m", MaxBatchSize: 12, MaxQueueDelaySeconds: 0.003, MaxQueueDelayMicroseconds: 3000}
	if len(got) != 1 || got[0] != want {
		t.Fatalf("received %+v, want %+v", got, want)
	}
	if err := w.Apply(context.Background(), "m", Knobs{MaxBatchSize: 12, QueueTimeout: 250 * time.Millisecond}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[1].QueueTimeoutSeconds != 0.25 {
		t.Fatalf("received %+v, want the queue timeout 0.25 s", got)
	}
	mu.Lock()
	fail = true
	mu.Unlock()
	if err := w.Apply(context.Background(), "m", Knobs{MaxBatchSize: 4}); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("err = %v, want the 503", err)
	}
}

func TestRestartHint(t *testing.T) {
	k := Knobs{MaxBatchSize: 24, MaxQueueDelay: 2 * time.Millisecond}
	for server, want := range map[string]string{
		"vllm":   "--max-num-seqs 24",
		"tgi":    "--max-batch-size 24",
		"triton": "max_queue_delay_microseconds: 2000",
		"ray":    "batch_wait_timeout_s=0.002",
		"":       "max_batch_size=24",
	} {
		if got := RestartHint(server, k); !strings.Contains(got, want) {
			t.Errorf("%q: %q lacks %q", server, got, want)
		}
	}
	k.QueueTimeout = 250 * time.Millisecond
	if got, want := RestartHint("triton", k), "default_queue_policy { timeout_action: REJECT default_timeout_microseconds: 250000 }"; !strings.Contains(got, want) {
		t.Errorf("triton with a queue timeout: %q lacks %q", got, want)
	}
}
