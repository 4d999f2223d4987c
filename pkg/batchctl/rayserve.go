package batchctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"
)

// RayServe applies knobs to a Ray Serve deployment whose @serve.batch
// method reads them from its user_config in reconfigure, e.g.
//
//	def reconfigure(self, cfg):
//	    self.handle_batch.set_max_batch_size(cfg["max_batch_size"])
//	    self.handle_batch.set_batch_wait_timeout_s(cfg["batch_wait_timeout_s"])
//
// It reads every application's deployed config through the Serve REST API
// (GET /api/serve/applications/ on the dashboard port), sets the two keys
// in the deployment's user_config, and PUTs all applications back (a PUT
// removes the applications it does not list). A user_config change calls
// reconfigure on the live replicas, without a restart. It then waits for
// the application to be RUNNING again; DEPLOY_FAILED (reconfigure raised)
// or a rejected PUT rolls the previous configs back.
type RayServe struct {
	// BaseURL is the dashboard, e.g. http://ray-head:8265.
	BaseURL     string
	Application string
	Deployment  string
	// BatchSizeKey and WaitKey name the user_config keys (defaults
	// "max_batch_size" and "batch_wait_timeout_s").
	BatchSizeKey, WaitKey string
	Client                *http.Client
	Limit                 Limits
	Logger                *slog.Logger
	// PollInterval is how often the application status is read after a
	// PUT (default 500 ms).
	PollInterval    time.Duration
	RollbackTimeout time.Duration
	// DeployTimeout bounds the wait for the application to run the new
	// config after a PUT (default 2 min): one stuck DEPLOYING must not
	// hold the model's controller for ever.
	DeployTimeout time.Duration
}

// DefaultRayServeLimits: reconfigure is cheap, but not free.
var DefaultRayServeLimits = Limits{MinInterval: time.Minute, MinGain: 0.05}

func (r *RayServe) Name() string { return "rayserve" }

func (r *RayServe) Limits() Limits {
	if r.Limit != (Limits{}) {
		return r.Limit
	}
	return DefaultRayServeLimits
}

func (r *RayServe) keys() (string, string) {
	b, w := r.BatchSizeKey, r.WaitKey
	if b == "" {
		b = "max_batch_size"
	}
	if w == "" {
		w = "batch_wait_timeout_s"
	}
	return b, w
}

type rayDetails struct {
	// TargetCapacity is the instance's target capacity (a percentage; nil
	// when unset): a PUT without it resets it to 100 %, which would end
	// an incremental upgrade (KubeRay's) that throttles it.
	TargetCapacity *float64 `json:"target_capacity"`
	Applications   map[string]struct {
		Status            string         `json:"status"`
		Message           string         `json:"message"`
		DeployedAppConfig map[string]any `json:"deployed_app_config"`
	} `json:"applications"`
}

func (r *RayServe) endpoint() string {
	return strings.TrimRight(r.BaseURL, "/") + "/api/serve/applications/"
}

func (r *RayServe) details(ctx context.Context) (rayDetails, error) {
	var d rayDetails
	if err := doJSON(ctx, r.Client, http.MethodGet, r.endpoint(), nil, &d); err != nil {
		return d, fmt.Errorf("rayserve: %w", err)
	}
	return d, nil
}

// configs returns every application's deployed config, ordered by name.
func (r *RayServe) configs(d rayDetails) ([]map[string]any, error) {
	names := make([]string, 0, len(d.Applications))
	for n := range d.Applications {
		names = append(names, n)
	}
	slices.Sort(names)
	out := make([]map[string]any, 0, len(names))
	for _, n := range names {
		cfg := d.Applications[n].DeployedAppConfig
		if cfg == nil {
			return nil, fmt.Errorf("rayserve: application %q was not deployed from a config (serve.run?): a PUT would delete it", n)
		}
		out = append(out, cfg)
	}
	return out, nil
}

// Current returns the knobs in the deployment's user_config.
func (r *RayServe) Current(ctx context.Context, _ string) (Knobs, error) {
	d, err := r.details(ctx)
	if err != nil {
		return Knobs{}, err
	}
	app, ok := d.Applications[r.Application]
	if !ok || app.DeployedAppConfig == nil {
		return Knobs{}, fmt.Errorf("rayserve: application %q not found or not deployed from a config", r.Application)
	}
	uc := findUserConfig(app.DeployedAppConfig, r.Deployment)
	bk, wk := r.keys()
	var k Knobs
	if v, ok := uc[bk].(float64); ok {
		k.MaxBatchSize = int(v)
	}
	if v, ok := uc[wk].(float64); ok {
		k.MaxQueueDelay = time.Duration(v * float64(time.Second))
	}
	return k, nil
}

func findUserConfig(app map[string]any, deployment string) map[string]any {
	deps, _ := app["deployments"].([]any)
	for _, d := range deps {
		dm, _ := d.(map[string]any)
		if dm["name"] == deployment {
			uc, _ := dm["user_config"].(map[string]any)
			return uc
		}
	}
	return nil
}

// Apply sets the deployment's batch knobs; the model argument is only for
// messages (one RayServe actuator serves one deployment).
func (r *RayServe) Apply(ctx context.Context, model string, k Knobs) error {
	d, err := r.details(ctx)
	if err != nil {
		return err
	}
	prev, err := r.configs(d)
	if err != nil {
		return err
	}
	raw, err := json.Marshal(prev)
	if err != nil {
		return err
	}
	var next []map[string]any
	if err := json.Unmarshal(raw, &next); err != nil { // a deep copy
		return err
	}
	var app map[string]any
	for _, a := range next {
		if a["name"] == r.Application {
			app = a
		}
	}
	if app == nil {
		return fmt.Errorf("rayserve: application %q not found", r.Application)
	}
	deps, _ := app["deployments"].([]any)
	var dep map[string]any
	for _, x := range deps {
		if m, _ := x.(map[string]any); m["name"] == r.Deployment {
			dep = m
		}
	}
	if dep == nil {
		dep = map[string]any{"name": r.Deployment}
		app["deployments"] = append(deps, dep)
	}
	uc, _ := dep["user_config"].(map[string]any)
	if uc == nil {
		uc = map[string]any{}
	}
	bk, wk := r.keys()
	uc[bk] = k.MaxBatchSize
	uc[wk] = k.MaxQueueDelay.Seconds()
	dep["user_config"] = uc

	err = r.deploy(ctx, next, uc, d.TargetCapacity)
	if err == nil {
		return nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.rollbackTimeout())
	defer cancel()
	if rerr := r.deploy(rctx, prev, nil, d.TargetCapacity); rerr != nil {
		return errors.Join(err, fmt.Errorf("rayserve: rolling %s back: %w", model, rerr))
	}
	if r.Logger != nil {
		r.Logger.Warn("ray serve rejected the new user_config; previous config redeployed", "model", model, "err", err)
	}
	return err
}

func (r *RayServe) rollbackTimeout() time.Duration {
	if r.RollbackTimeout > 0 {
		return r.RollbackTimeout
	}
	return 30 * time.Second
}

// deploy PUTs the applications (with the instance's target capacity, when
// it has one) and waits, for at most DeployTimeout, until the target
// application is RUNNING with want as its deployment's user_config (any,
// when want is nil).
func (r *RayServe) deploy(ctx context.Context, apps []map[string]any, want map[string]any, targetCapacity *float64) error {
	body := map[string]any{"applications": apps}
	if targetCapacity != nil {
		body["target_capacity"] = *targetCapacity
	}
	if err := doJSON(ctx, r.Client, http.MethodPut, r.endpoint(), body, nil); err != nil {
		return fmt.Errorf("rayserve: %w", err)
	}
	wait := r.DeployTimeout
	if wait <= 0 {
		wait = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	poll := r.PollInterval
	if poll <= 0 {
		poll = 500 * time.Millisecond
	}
	tick := time.NewTicker(poll)
	defer tick.Stop()
	for {
		d, err := r.details(ctx)
		if err != nil {
			return err
		}
		app, ok := d.Applications[r.Application]
		switch {
		case !ok:
		case app.Status == "DEPLOY_FAILED", app.Status == "UNHEALTHY":
			// UNHEALTHY: deployed, but its replicas fail their health
			// checks since the change.
			return fmt.Errorf("rayserve: application %q is %s: %s", r.Application, app.Status, app.Message)
		case app.Status == "RUNNING" && (want == nil || sameJSON(findUserConfig(app.DeployedAppConfig, r.Deployment), want)):
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("rayserve: waiting for %q to run the new config: %w", r.Application, ctx.Err())
		case <-tick.C:
		}
	}
}

// sameJSON compares two JSON-shaped values after a round trip, so that 8
// and 8.0 match.
func sameJSON(a, b any) bool {
	norm := func(v any) any {
		raw, _ := json.Marshal(v)
		var out any
		_ = json.Unmarshal(raw, &out)
		return out
	}
	return reflect.DeepEqual(norm(a), norm(b))
}
