package batchsim

import (
	"context"

	"github.com/infercast/infercast/pkg/batchctl"
)

// simModel is the model name the controller is stepped for.
const simModel = "sim"

// inProcess is an actuator that sets the simulated batcher's knobs, under
// the limits a real server would impose.
type inProcess struct {
	knobs  batchctl.Knobs
	limits batchctl.Limits
}

func (a *inProcess) Name() string            { return "simulator" }
func (a *inProcess) Limits() batchctl.Limits { return a.limits }
func (a *inProcess) Apply(_ context.Context, _ string, k batchctl.Knobs) error {
	a.knobs = k
	return nil
}

// ControllerPolicy drives the batcher with a batch controller that learns
// everything from the observations: it starts from cfg.Initial (the knobs
// the server was deployed with) and knows neither the profile nor the
// trace.
type ControllerPolicy struct {
	ctl *batchctl.Controller
	act *inProcess
	// Decisions holds every step's decision when Record is set.
	Record       bool
	Decisions    []batchctl.Decision
	Observations []batchctl.Observation
}

// NewControllerPolicy returns a fresh controller policy.
func NewControllerPolicy(cfg batchctl.Config, limits batchctl.Limits) (*ControllerPolicy, error) {
	act := &inProcess{knobs: cfg.Initial, limits: limits}
	ctl, err := batchctl.New(cfg, act)
	if err != nil {
		return nil, err
	}
	return &ControllerPolicy{ctl: ctl, act: act}, nil
}

func (p *ControllerPolicy) Initial() batchctl.Knobs { return p.act.knobs }

// Observe steps the controller; the simulation has no forecaster, so the
// controller plans for the observed rate alone.
func (p *ControllerPolicy) Observe(o batchctl.Observation) batchctl.Knobs {
	d, err := p.ctl.Step(context.Background(), simModel, o, 0)
	if err == nil && p.Record {
		p.Decisions = append(p.Decisions, d)
		p.Observations = append(p.Observations, o)
	}
	return p.act.knobs
}
