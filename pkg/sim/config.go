// Package sim is the backtest cluster model of SIMULATION.md: it replays a
// request trace, step by step, through a scaling policy and accounts for
// every request (met, late, dropped) and every replica-second billed.
//
// The model is fixed by SIMULATION.md so that two implementations agree to
// the request; the comments below cite its rules by step number. Where the
// document leaves a choice open, the choice is written down here and in
// docs/backtest.md.
package sim

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Config is the workload and the tiers of one backtest.
type Config struct {
	// Step is dt, the simulation step (SIMULATION.md: 5 s).
	Step time.Duration
	// Interval is the decision interval (SIMULATION.md: 15 s), a multiple of Step.
	Interval time.Duration

	// Mu is the requests/s one ready replica serves within its latency SLO.
	Mu float64
	// ColdStart is the time from launch to ready.
	ColdStart time.Duration
	// QueueSLO is how long a request may wait and still count as met.
	QueueSLO time.Duration
	// Timeout is how long a request waits before it is dropped.
	Timeout time.Duration

	// PriceOnDemand and PriceSpot are $ per replica-hour.
	PriceOnDemand float64
	PriceSpot     float64
	// Notice is the time between a spot interruption notice and termination.
	Notice time.Duration
}

// DefaultConfig returns the scenario of the twelve runs: mu 2,
// cold start 180 s, queue SLO 5 s, $4.0 on-demand, $1.4 spot, 120 s notice
// (AWS's). The timeout (60 s) is a common client default for LLM requests.
func DefaultConfig() Config {
	return Config{
		Step:          5 * time.Second,
		Interval:      15 * time.Second,
		Mu:            2,
		ColdStart:     180 * time.Second,
		QueueSLO:      5 * time.Second,
		Timeout:       60 * time.Second,
		PriceOnDemand: 4.0,
		PriceSpot:     1.4,
		Notice:        120 * time.Second,
	}
}

// Validate says what is wrong with c, naming every bad field.
func (c Config) Validate() error {
	var errs []error
	if c.Step <= 0 {
		errs = append(errs, fmt.Errorf("step %v must be positive", c.Step))
	}
	if c.Interval <= 0 || (c.Step > 0 && c.Interval%c.Step != 0) {
		errs = append(errs, fmt.Errorf("interval %v must be a positive multiple of the step %v", c.Interval, c.Step))
	}
	if !(c.Mu > 0) || math.IsInf(c.Mu, 0) {
		errs = append(errs, fmt.Errorf("mu %v must be positive and finite", c.Mu))
	}
	if c.ColdStart < 0 {
		errs = append(errs, fmt.Errorf("cold start %v must not be negative", c.ColdStart))
	}
	if c.QueueSLO < 0 {
		errs = append(errs, fmt.Errorf("queue SLO %v must not be negative", c.QueueSLO))
	}
	if c.Timeout < c.QueueSLO {
		errs = append(errs, fmt.Errorf("timeout %v must not be shorter than the queue SLO %v", c.Timeout, c.QueueSLO))
	}
	if !finiteNonNegative(c.PriceOnDemand) || !finiteNonNegative(c.PriceSpot) {
		errs = append(errs, fmt.Errorf("prices (%v on-demand, %v spot) must be finite and not negative", c.PriceOnDemand, c.PriceSpot))
	}
	if c.Notice < 0 {
		errs = append(errs, fmt.Errorf("notice %v must not be negative", c.Notice))
	}
	return errors.Join(errs...)
}

// finiteNonNegative is false for NaN, ±Inf and negative x.
func finiteNonNegative(x float64) bool { return x >= 0 && !math.IsInf(x, 0) }

// dollars is the price of n replica-steps at price $/hour.
func (c Config) dollars(steps int64, price float64) float64 {
	return float64(steps) * c.Step.Hours() * price
}
