package batchctl

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/infercast/infercast/internal/fanout"
)

// Triton applies knobs to a Triton Inference Server through its model
// repository extension: it reads the model's current configuration
// (GET /v2/models/{model}/config), overrides max_batch_size and
// dynamic_batching { max_queue_delay_microseconds, preferred_batch_size }
// (and, when the knobs carry a queue timeout, default_queue_policy
// { timeout_action: REJECT, default_timeout_microseconds }), and reloads
// the model with it (POST /v2/repository/models/{model}/load,
// body {"parameters":{"config":"<JSON>"}}). Triton must run with
// --model-control-mode=explicit. A change is a model reload: the default
// limits allow one per 5 minutes and only for a 10 % predicted gain. When
// the reload fails, the previous configuration is loaded back — unless
// Triton refused it (HTTP 4xx): then the loaded model was left as it was.
//
// The replicas of a model share its knobs: every address BaseURL's host
// resolves to is a replica (a headless Service names one per pod; a
// ClusterIP Service would hand each request to any one of them), and a
// change is made on each in turn, so that a configuration Triton refuses
// is refused by the first and no two replicas reload at once. When one
// refuses, every replica already changed is loaded back too.
type Triton struct {
	// BaseURL is Triton's HTTP endpoint, e.g. http://triton-headless:8000
	// (a headless Service, so that it names every replica: see above).
	BaseURL string
	Client  *http.Client
	// Lookup resolves BaseURL's host to the replicas' addresses (nil: DNS).
	Lookup func(ctx context.Context, host string) ([]string, error)
	// Limit overrides DefaultTritonLimits when non-zero.
	Limit  Limits
	Logger *slog.Logger
	// RollbackTimeout bounds the rollback when the caller's context has
	// already expired (default 30 s).
	RollbackTimeout time.Duration

	fanOnce sync.Once
	fan     *fanout.Reader // nil when BaseURL does not parse: read as it is
}

// DefaultTritonLimits: a reload at most every 5 minutes, for ≥ 10 % gain.
var DefaultTritonLimits = Limits{MinInterval: 5 * time.Minute, MinGain: 0.10}

func (t *Triton) Name() string { return "triton" }

func (t *Triton) Limits() Limits {
	if t.Limit != (Limits{}) {
		return t.Limit
	}
	return DefaultTritonLimits
}

func (t *Triton) url(path string, model string) string {
	return strings.TrimRight(t.BaseURL, "/") + strings.ReplaceAll(path, "{model}", url.PathEscape(model))
}

// replicas are the addresses BaseURL names now, sorted, each with a client
// that dials it.
func (t *Triton) replicas(ctx context.Context) []fanout.Target {
	t.fanOnce.Do(func() { t.fan, _ = fanout.New(t.BaseURL, t.Client, t.Lookup) })
	if t.fan == nil {
		return []fanout.Target{{Addr: t.BaseURL, Client: t.Client}}
	}
	return t.fan.Targets(ctx)
}

// Config reads the model's configuration as Triton reports it (the first
// replica's).
func (t *Triton) Config(ctx context.Context, model string) (map[string]any, error) {
	return t.config(ctx, t.replicas(ctx)[0].Client, model)
}

func (t *Triton) config(ctx context.Context, c *http.Client, model string) (map[string]any, error) {
	var cfg map[string]any
	if err := doJSON(ctx, c, http.MethodGet, t.url("/v2/models/{model}/config", model), nil, &cfg); err != nil {
		return nil, fmt.Errorf("triton: reading the config of %s: %w", model, err)
	}
	if cfg == nil {
		return nil, fmt.Errorf("triton: model %s: empty config", model)
	}
	return cfg, nil
}

// Current returns the knobs the model runs with (on the first replica:
// Apply makes them the same on all).
func (t *Triton) Current(ctx context.Context, model string) (Knobs, error) {
	cfg, err := t.Config(ctx, model)
	if err != nil {
		return Knobs{}, err
	}
	return tritonKnobs(cfg)
}

func tritonKnobs(cfg map[string]any) (Knobs, error) {
	mbs, err := jsonInt(cfg["max_batch_size"])
	if err != nil {
		return Knobs{}, fmt.Errorf("triton: max_batch_size: %w", err)
	}
	k := Knobs{MaxBatchSize: int(mbs)}
	if db, ok := cfg["dynamic_batching"].(map[string]any); ok {
		if v, present := db["max_queue_delay_microseconds"]; present {
			us, err := jsonInt(v)
			if err != nil {
				return Knobs{}, fmt.Errorf("triton: max_queue_delay_microseconds: %w", err)
			}
			k.MaxQueueDelay = time.Duration(us) * time.Microsecond
		}
		if qp, ok := db["default_queue_policy"].(map[string]any); ok && rejects(qp) {
			us, err := jsonInt(qp["default_timeout_microseconds"])
			if err != nil {
				return Knobs{}, fmt.Errorf("triton: default_timeout_microseconds: %w", err)
			}
			k.QueueTimeout = time.Duration(us) * time.Microsecond
		}
	}
	return k, nil
}

// rejects reports whether a queue policy rejects timed-out requests:
// REJECT is the enum's zero value, which protobuf's JSON may omit.
func rejects(policy map[string]any) bool {
	a, present := policy["timeout_action"]
	return !present || a == "REJECT" || a == float64(0)
}

// jsonInt reads an integer that protobuf's JSON mapping may write as a
// number or, for 64-bit fields, as a string.
func jsonInt(v any) (int64, error) {
	switch x := v.(type) {
	case nil:
		return 0, nil
	case float64:
		return int64(x), nil
	case json.Number:
		return x.Int64()
	case string:
		var n int64
		_, err := fmt.Sscan(x, &n)
		return n, err
	default:
		return 0, fmt.Errorf("unexpected %T", v)
	}
}

// Apply reloads the model with k on every replica in turn; when one
// fails, it and the replicas already changed are loaded back with their
// previous configurations, and the failure is returned (joined with the
// rollbacks', if those failed too).
func (t *Triton) Apply(ctx context.Context, model string, k Knobs) error {
	reps := t.replicas(ctx)
	type changed struct {
		rep  fanout.Target
		prev map[string]any
	}
	var done []changed
	for _, r := range reps {
		prev, err := t.applyOne(ctx, r.Client, model, k)
		if err == nil {
			done = append(done, changed{r, prev})
			continue
		}
		if len(reps) > 1 {
			err = fmt.Errorf("replica %s: %w", r.Addr, err)
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.rollbackTimeout())
		defer cancel()
		errs := []error{err}
		for _, d := range done {
			if rerr := t.load(rctx, d.rep.Client, model, d.prev); rerr != nil {
				errs = append(errs, fmt.Errorf("triton: rolling %s back on replica %s: %w", model, d.rep.Addr, rerr))
			}
		}
		if len(done) > 0 && len(errs) == 1 && t.Logger != nil {
			t.Logger.Warn("triton: a replica refused the new batch config; the replicas already changed were loaded back", "model", model, "replicas_rolled_back", len(done))
		}
		return errors.Join(errs...)
	}
	return nil
}

// applyOne reloads the model with k on one replica and returns the
// configuration it replaced; on failure it loads that back there.
func (t *Triton) applyOne(ctx context.Context, c *http.Client, model string, k Knobs) (map[string]any, error) {
	prev, err := t.config(ctx, c, model)
	if err != nil {
		return nil, err
	}
	cur, err := tritonKnobs(prev)
	if err != nil {
		return nil, err
	}
	if cur.MaxBatchSize == 0 {
		return nil, fmt.Errorf("triton: model %s has max_batch_size 0: it does not batch, nothing to tune", model)
	}
	// The scheduler is one of dynamic, sequence or ensemble scheduling
	// (a protobuf oneof): a config with dynamic_batching added to either
	// other one is refused with HTTP 400, at every change.
	for _, other := range []string{"sequence_batching", "ensemble_scheduling"} {
		if v, ok := prev[other]; ok && v != nil {
			return nil, fmt.Errorf("triton: model %s uses %s, not dynamic batching: nothing this controller tunes", model, other)
		}
	}
	prevJSON, err := json.Marshal(prev)
	if err != nil {
		return nil, err
	}
	next := map[string]any{}
	if err := json.Unmarshal(prevJSON, &next); err != nil { // a deep copy
		return nil, err
	}
	next["max_batch_size"] = k.MaxBatchSize
	db, _ := next["dynamic_batching"].(map[string]any)
	if db == nil {
		db = map[string]any{}
	}
	db["max_queue_delay_microseconds"] = k.MaxQueueDelay.Microseconds()
	db["preferred_batch_size"] = []int{k.MaxBatchSize}
	if k.QueueTimeout > 0 {
		// The rest of the operator's policy (max_queue_size,
		// allow_timeout_override) stays.
		qp, _ := db["default_queue_policy"].(map[string]any)
		if qp == nil {
			qp = map[string]any{}
		}
		qp["timeout_action"] = "REJECT"
		qp["default_timeout_microseconds"] = k.QueueTimeout.Microseconds()
		db["default_queue_policy"] = qp
	}
	next["dynamic_batching"] = db
	if err := t.load(ctx, c, model, next); err != nil {
		if refused(err) {
			// Triton refused the config (a bad one, or a load that
			// failed): in explicit mode the loaded model stays as it
			// was, serving; loading it back would only reload it.
			if t.Logger != nil {
				t.Logger.Warn("triton refused the new batch config; the loaded model is unchanged", "model", model, "err", err)
			}
			return nil, err
		}
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), t.rollbackTimeout())
		defer cancel()
		if rerr := t.load(rctx, c, model, prev); rerr != nil {
			return nil, errors.Join(err, fmt.Errorf("triton: rolling %s back to its previous config: %w", model, rerr))
		}
		if t.Logger != nil {
			t.Logger.Warn("triton rejected the new batch config; previous config reloaded", "model", model, "err", err)
		}
		return nil, err
	}
	return prev, nil
}

// Reconcile loads k on every replica that runs other knobs — one
// restarted, or added by a scale-up, comes back with its config.pbtxt: a
// load's config override lives in memory only — and returns how many it
// reloaded. A replica that cannot be read or reloaded is reported in the
// error; the others are still reconciled. The queue timeout is compared
// only when k sets one (without reject_late the server's policy is its
// own).
func (t *Triton) Reconcile(ctx context.Context, model string, k Knobs) (int, error) {
	var errs []error
	reloaded := 0
	for _, r := range t.replicas(ctx) {
		cfg, err := t.config(ctx, r.Client, model)
		if err == nil {
			var cur Knobs
			if cur, err = tritonKnobs(cfg); err == nil {
				if k.QueueTimeout == 0 {
					cur.QueueTimeout = 0
				}
				if cur == k {
					continue
				}
				if _, err = t.applyOne(ctx, r.Client, model, k); err == nil {
					reloaded++
					continue
				}
			}
		}
		errs = append(errs, fmt.Errorf("replica %s: %w", r.Addr, err))
	}
	return reloaded, errors.Join(errs...)
}

func (t *Triton) rollbackTimeout() time.Duration {
	if t.RollbackTimeout > 0 {
		return t.RollbackTimeout
	}
	return 30 * time.Second
}

func (t *Triton) load(ctx context.Context, c *http.Client, model string, cfg map[string]any) error {
	b, err := json.Marshal(cfg)
	if err != nil {
		return err
	}
	body := map[string]any{"parameters": map[string]any{"config": string(b)}}
	if err := doJSON(ctx, c, http.MethodPost, t.url("/v2/repository/models/{model}/load", model), body, nil); err != nil {
		return fmt.Errorf("triton: loading %s: %w", model, err)
	}
	return nil
}

// BatchCounter is a cumulative count of model executions of one batch
// size and their summed compute time, as Triton's statistics extension
// reports it (batch_stats[].compute_infer) since the model was loaded.
type BatchCounter struct {
	Count, Seconds float64
}

// BatchStats reads the model's per-batch-size execution statistics
// (GET /v2/models/{model}/stats) on every replica: per replica address,
// per batch size, the cumulative counters. A replica that does not answer
// is left out (the caller takes increases only where it has two readings);
// the error is every replica's when none answers.
func (t *Triton) BatchStats(ctx context.Context, model string) (map[string]map[int]BatchCounter, error) {
	reps := t.replicas(ctx)
	got := make([]map[int]BatchCounter, len(reps))
	_, err := fanout.ReadAll(reps, func(i int, r fanout.Target) error {
		var resp struct {
			ModelStats []struct {
				BatchStats []struct {
					BatchSize    json.Number `json:"batch_size"`
					ComputeInfer struct {
						Count json.Number `json:"count"`
						NS    json.Number `json:"ns"`
					} `json:"compute_infer"`
				} `json:"batch_stats"`
			} `json:"model_stats"`
		}
		if err := doJSON(ctx, r.Client, http.MethodGet, t.url("/v2/models/{model}/stats", model), nil, &resp); err != nil {
			return fmt.Errorf("triton: reading the statistics of %s at %s: %w", model, r.Addr, err)
		}
		m := map[int]BatchCounter{}
		for _, ms := range resp.ModelStats { // one per loaded version: summed
			for _, b := range ms.BatchStats {
				size, err1 := b.BatchSize.Int64()
				count, err2 := b.ComputeInfer.Count.Float64()
				ns, err3 := b.ComputeInfer.NS.Float64()
				if err := errors.Join(err1, err2, err3); err != nil || size < 1 || count < 0 || ns < 0 {
					return fmt.Errorf("triton: statistics of %s at %s: bad batch_stats entry (size %q, count %q, ns %q)", model, r.Addr, b.BatchSize, b.ComputeInfer.Count, b.ComputeInfer.NS)
				}
				c := m[int(size)]
				c.Count += count
				c.Seconds += ns / 1e9
				m[int(size)] = c
			}
		}
		got[i] = m
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]map[int]BatchCounter{}
	for i, r := range reps {
		if got[i] != nil {
			out[r.Addr] = got[i]
		}
	}
	return out, nil
}

// BatchIncrease is the batch size distribution between two readings of
// BatchStats: per size, the executions and compute time added on the
// replicas read both times, sorted by size. A replica whose counters went
// down was reloaded (a change of its knobs is a reload) and is left out
// for this window, as is one seen only once.
func BatchIncrease(prev, cur map[string]map[int]BatchCounter) []BatchStat {
	sum := map[int]BatchStat{}
	for addr, now := range cur {
		before, ok := prev[addr]
		if !ok {
			continue
		}
		reset := false
		for size, b := range before {
			if c := now[size]; c.Count < b.Count || c.Seconds < b.Seconds {
				reset = true
			}
		}
		if reset {
			continue
		}
		for size, c := range now {
			b := before[size]
			if d := c.Count - b.Count; d > 0 {
				s := sum[size]
				s.Size, s.Count, s.ExecSeconds = size, s.Count+d, s.ExecSeconds+(c.Seconds-b.Seconds)
				sum[size] = s
			}
		}
	}
	out := make([]BatchStat, 0, len(sum))
	for _, s := range sum {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b BatchStat) int { return a.Size - b.Size })
	return out
}
