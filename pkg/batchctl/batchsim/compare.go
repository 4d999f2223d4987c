package batchsim

import (
	"context"
	"fmt"
	"time"

	"github.com/infercast/infercast/pkg/batchctl"
)

// DefaultProfile is the simulated server when none is given: 50 ms per
// batch plus 10 ms per request, with 5 ms of jitter — a transformer prefill
// of ~1k-token prompts on one GPU, LLM-ish in shape: a fixed cost that
// batching amortises and a per-request cost that it does not.
var DefaultProfile = batchctl.Profile{Alpha: 0.050, Beta: 0.010, Jitter: 0.005}

// Options configures Compare.
type Options struct {
	Profile batchctl.Profile
	SLO     time.Duration
	// ModelMaxBatch is the largest batch the model allows: Triton's
	// default runs it with no queue delay.
	ModelMaxBatch int
	// BatchGrid and DelayGrid span the static settings tried.
	BatchGrid []int
	DelayGrid []time.Duration
	// Window is how often the controller observes (and may act);
	// MinChange is its actuator's minimum interval between changes and
	// MinGain the gain a change must promise.
	Window    time.Duration
	MinChange time.Duration
	MinGain   float64
	Seed      uint64
	// RejectLate runs the controller with late rejection
	// (batchctl.Config.RejectLate), and adds queue timeouts of
	// TimeoutFractions × SLO to the static grid, so that the hindsight
	// choice has every knob the controller has. Compare then also reports
	// both without rejection.
	RejectLate       bool
	TimeoutFractions []float64
}

// DefaultOptions are the batch-sim defaults.
func DefaultOptions() Options {
	return Options{
		Profile:          DefaultProfile,
		SLO:              500 * time.Millisecond,
		ModelMaxBatch:    256,
		BatchGrid:        []int{1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 64, 96, 128, 256},
		DelayGrid:        []time.Duration{0, time.Millisecond, 2 * time.Millisecond, 5 * time.Millisecond, 10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond},
		Window:           time.Second,
		MinChange:        5 * time.Second,
		MinGain:          0.05,
		Seed:             1,
		RejectLate:       true,
		TimeoutFractions: []float64{0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9},
	}
}

// Outcome is one policy's result on a trace.
type Outcome struct {
	// Setting is the static knobs (absent for the controller).
	Setting *Setting `json:"setting,omitempty"`
	// GoodputMultiple is the largest multiple of the trace's rate at which
	// ≥ 99 % of requests meet the SLO; GoodputRPS is that rate.
	GoodputMultiple float64 `json:"goodput_multiple"`
	GoodputRPS      float64 `json:"goodput_rps"`
	// AtTraceRate is a replay at the trace's own rate; AtReference one at
	// the best static setting's goodput, the same load for every policy.
	AtTraceRate Result `json:"at_trace_rate"`
	AtReference Result `json:"at_reference_rate"`
}

// Setting is a static knob setting in JSON.
type Setting struct {
	MaxBatchSize              int   `json:"max_batch_size"`
	MaxQueueDelayMicroseconds int64 `json:"max_queue_delay_microseconds"`
	QueueTimeoutMicroseconds  int64 `json:"queue_timeout_microseconds,omitempty"`
}

// Summary is DIR/summary.json of batch-sim.
type Summary struct {
	Trace             string           `json:"trace"`
	Requests          int              `json:"requests"`
	TraceRateRPS      float64          `json:"trace_rate_rps"`
	SLOSeconds        float64          `json:"slo_seconds"`
	Profile           batchctl.Profile `json:"profile"`
	ModelMaxBatch     int              `json:"model_max_batch"`
	ReferenceMultiple float64          `json:"reference_multiple"`
	Controller        Outcome          `json:"controller"`
	BestStatic        Outcome          `json:"best_static"`
	TritonDefault     Outcome          `json:"triton_default"`
	Batch1            Outcome          `json:"batch1"`
	// RejectLate says whether the controller and the static grid could
	// reject late requests; WithoutRejection then holds the controller
	// and the best static setting restricted to batch cap and delay.
	RejectLate       bool        `json:"reject_late"`
	WithoutRejection *Comparison `json:"without_rejection,omitempty"`
	// Static holds every static setting's goodput multiple.
	Static []StaticGoodput `json:"static"`
}

// Comparison is the controller against the best static setting.
type Comparison struct {
	Controller Outcome `json:"controller"`
	BestStatic Outcome `json:"best_static"`
}

// StaticGoodput is one grid point.
type StaticGoodput struct {
	Setting
	GoodputMultiple float64 `json:"goodput_multiple"`
}

// ControllerConfig is the controller configuration batch-sim runs: the
// defaults, with the model's bounds and the sim's SLO, starting from
// Triton's default (the server as deployed).
func (o Options) ControllerConfig() batchctl.Config {
	cfg := batchctl.DefaultConfig(o.SLO, o.ModelMaxBatch)
	cfg.Initial = batchctl.Knobs{MaxBatchSize: o.ModelMaxBatch}
	cfg.RejectLate = o.RejectLate
	return cfg
}

func (o Options) simConfig() Config {
	return Config{Profile: o.Profile, SLO: o.SLO, Window: o.Window, Seed: o.Seed}
}

func (o Options) newController() (Policy, error) {
	return NewControllerPolicy(o.ControllerConfig(), batchctl.Limits{MinInterval: o.MinChange, MinGain: o.MinGain})
}

// grid is every static setting tried: batch cap × delay, and with late
// rejection × queue timeout (none, and each fraction of the SLO).
func (o Options) grid() []batchctl.Knobs {
	timeouts := []time.Duration{0}
	if o.RejectLate {
		for _, f := range o.TimeoutFractions {
			timeouts = append(timeouts, time.Duration(f*float64(o.SLO)))
		}
	}
	var ks []batchctl.Knobs
	for _, b := range o.BatchGrid {
		if b < 1 || b > o.ModelMaxBatch {
			continue
		}
		for _, d := range o.DelayGrid {
			for _, to := range timeouts {
				if to > 0 && d >= to {
					continue // every batch would wait past its own timeout
				}
				ks = append(ks, batchctl.Knobs{MaxBatchSize: b, MaxQueueDelay: d, QueueTimeout: to})
			}
		}
	}
	return ks
}

// Compare replays the trace under the controller, batch 1, Triton's
// default and every static setting of the grid, and summarises them.
func Compare(ctx context.Context, tr Trace, o Options) (Summary, error) {
	if len(tr.Arrivals) == 0 {
		return Summary{}, fmt.Errorf("batchsim: trace %q has no requests", tr.Name)
	}
	// Goodput is a multiple of the trace's rate, which needs arrivals at
	// two instants at least (a single request searched up to the grid's
	// cap and reported a goodput of 0 req/s at 65,536× its rate).
	if tr.Span() <= 0 {
		return Summary{}, fmt.Errorf("batchsim: trace %q: its %d request(s) arrive at one instant, so it has no rate to replay at multiples of: want requests at two times at least", tr.Name, len(tr.Arrivals))
	}
	if o.ModelMaxBatch < 1 {
		return Summary{}, fmt.Errorf("batchsim: model max batch %d must be ≥ 1", o.ModelMaxBatch)
	}
	if _, err := o.newController(); err != nil {
		return Summary{}, err
	}
	cfg := o.simConfig()
	s := Summary{Trace: tr.Name, Requests: len(tr.Arrivals), TraceRateRPS: tr.Rate(),
		SLOSeconds: o.SLO.Seconds(), Profile: o.Profile, ModelMaxBatch: o.ModelMaxBatch}
	static := func(k batchctl.Knobs) func() Policy { return func() Policy { return Static(k) } }

	best, bestPlain := -1.0, -1.0
	var bestK, bestPlainK batchctl.Knobs
	for _, k := range o.grid() {
		if err := ctx.Err(); err != nil {
			return Summary{}, err
		}
		g, err := Goodput(tr.Arrivals, static(k), cfg)
		if err != nil {
			return Summary{}, err
		}
		s.Static = append(s.Static, StaticGoodput{Setting: setting(k), GoodputMultiple: g})
		if g > best {
			best, bestK = g, k
		}
		if k.QueueTimeout == 0 && g > bestPlain {
			bestPlain, bestPlainK = g, k
		}
	}
	s.ReferenceMultiple = best
	s.RejectLate = o.RejectLate
	outcome := func(newPolicy func() Policy, k *batchctl.Knobs) (Outcome, error) {
		var out Outcome
		if k != nil {
			st := setting(*k)
			out.Setting = &st
		}
		g, err := Goodput(tr.Arrivals, newPolicy, cfg)
		if err != nil {
			return out, err
		}
		out.GoodputMultiple, out.GoodputRPS = g, g*tr.Rate()
		pc := cfg
		pc.Percentiles = true
		if out.AtTraceRate, err = Run(tr.Arrivals, newPolicy(), pc); err != nil {
			return out, err
		}
		if best > 0 {
			out.AtReference, err = Run(Compress(tr.Arrivals, best), newPolicy(), pc)
		}
		return out, err
	}
	var err error
	newCtl := func(o Options) func() Policy {
		return func() Policy {
			p, _ := o.newController() // validated above
			return p
		}
	}
	if s.Controller, err = outcome(newCtl(o), nil); err != nil {
		return Summary{}, err
	}
	if o.RejectLate {
		plain := o
		plain.RejectLate = false
		w := &Comparison{}
		if w.Controller, err = outcome(newCtl(plain), nil); err != nil {
			return Summary{}, err
		}
		if w.BestStatic, err = outcome(static(bestPlainK), &bestPlainK); err != nil {
			return Summary{}, err
		}
		s.WithoutRejection = w
	}
	if s.BestStatic, err = outcome(static(bestK), &bestK); err != nil {
		return Summary{}, err
	}
	tk := batchctl.Knobs{MaxBatchSize: o.ModelMaxBatch}
	if s.TritonDefault, err = outcome(static(tk), &tk); err != nil {
		return Summary{}, err
	}
	b1 := batchctl.Knobs{MaxBatchSize: 1}
	if s.Batch1, err = outcome(static(b1), &b1); err != nil {
		return Summary{}, err
	}
	return s, nil
}

func setting(k batchctl.Knobs) Setting {
	return Setting{MaxBatchSize: k.MaxBatchSize, MaxQueueDelayMicroseconds: k.MaxQueueDelay.Microseconds(),
		QueueTimeoutMicroseconds: k.QueueTimeout.Microseconds()}
}
