package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/oklog/run"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/infercast/infercast/internal/edgelog"
	"github.com/infercast/infercast/pkg/batchctl"
	"github.com/infercast/infercast/pkg/capacity"
)

// batchFileUsage is the help of serve's --batch.config.file.
const batchFileUsage = "batch controller config (docs/batching.md): the models whose batch knobs it tunes, from --exporter.url's signals; empty: off"

// batchModel is one model the batch controller tunes inside adapter serve.
type batchModel struct {
	name     string
	interval time.Duration
	ctl      *batchctl.Controller
	act      batchctl.Actuator
	obs      *batchObserver
	log      *slog.Logger
	// workload, when set, is the planner workload whose forecast the model
	// plans for, read from plans.
	workload string
	plans    planReader
	// drift remembers the last failure to reconcile the replicas' knobs
	// (logged when it starts, changes or ends).
	drift edgelog.State
}

// planReader is what the batch controller needs of the planner's cache.
type planReader interface {
	Get(workload string) (capacity.Plan, bool)
}

// maxPlanAge: an older plan's forecast is not planned for (the planner
// is stuck or the workload was removed).
const maxPlanAge = 5 * time.Minute

// forecastPerServer is the rate one replica of the workload is forecast to
// see: the plan's forecast rate over the replicas it planned; 0 without a
// fresh plan.
func forecastPerServer(plans planReader, workload string, now time.Time) float64 {
	if plans == nil || workload == "" {
		return 0
	}
	p, ok := plans.Get(workload)
	if !ok || now.Sub(p.Time) > maxPlanAge || p.ForecastRate <= 0 {
		return 0
	}
	replicas := 0
	for _, t := range p.Tiers {
		replicas += t.Replicas
	}
	if replicas < 1 {
		return 0
	}
	return p.ForecastRate / float64(replicas)
}

// newBatchModels builds one controller per model of the batch config file;
// its metrics go to reg. The models read the exporter at exporterURL the
// way adapter demo does (batchObserver).
func newBatchModels(file, exporterURL string, plans planReader, reg prometheus.Registerer, log *slog.Logger) ([]*batchModel, error) {
	if exporterURL == "" {
		return nil, errors.New("--batch.config.file needs --exporter.url: the batch controller reads the exporter's signals")
	}
	fc, err := batchctl.LoadFile(file)
	if err != nil {
		return nil, err
	}
	exp := newExporterLive(exporterURL, log)
	out := make([]*batchModel, 0, len(fc.Models))
	for i := range fc.Models {
		mc := &fc.Models[i]
		mlog := log.With("component", "batchctl", "model", mc.Model)
		act := mc.NewActuator(mlog)
		cfg := mc.ControllerConfig()
		cfg.Registerer, cfg.Logger = reg, mlog
		ctl, err := batchctl.New(cfg, act)
		if err != nil {
			return nil, fmt.Errorf("batch config %s: model %s: %w", file, mc.Model, err)
		}
		obs := &batchObserver{exporter: exp, model: mc.Model, log: mlog}
		if sr, ok := act.(batchctl.StatsReader); ok { // Triton: its batch size distribution
			obs.stats = sr
		}
		out = append(out, &batchModel{name: mc.Model, interval: mc.IntervalDuration(), ctl: ctl, act: act,
			obs: obs, log: mlog, workload: mc.Workload, plans: plans})
	}
	return out, nil
}

// run observes and steps the model every interval until ctx ends. An
// actuator that can read the server's knobs is read first, and the model
// is not acted on until that succeeds: the controller must not mistake
// what the server runs.
func (m *batchModel) run(ctx context.Context) {
	reader, synced := m.act.(batchctl.CurrentReader)
	synced = !synced
	t := time.NewTicker(m.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			if !synced {
				rctx, cancel := context.WithTimeout(ctx, m.interval)
				k, err := reader.Current(rctx, m.name)
				cancel()
				if err != nil {
					m.log.Warn("reading the server's batch knobs; retrying next interval", "actuator", m.act.Name(), "err", err)
					continue
				}
				m.ctl.SetApplied(m.name, k)
				synced = true
				m.log.Info("batch controller started", "actuator", m.act.Name(), "knobs", k.String())
			}
			m.step(ctx, now)
			if rec, ok := m.act.(batchctl.Reconciler); ok {
				m.reconcile(ctx, rec)
			}
		}
	}
}

// reconcile applies the controller's knobs to the replicas that run
// others: a Triton replica restarted or added by a scale-up comes back with
// its config.pbtxt, and would keep it until the next change.
func (m *batchModel) reconcile(ctx context.Context, rec batchctl.Reconciler) {
	k, ok := m.ctl.Applied(m.name)
	if !ok {
		return
	}
	n, err := rec.Reconcile(ctx, m.name, k)
	if n > 0 {
		m.log.Info("batch knobs applied to replicas that ran others (restarted or added)", "actuator", m.act.Name(), "replicas", n, "knobs", k.String())
	}
	msg := ""
	if err != nil && ctx.Err() == nil {
		msg = err.Error()
	}
	if prev, changed := m.drift.Set(msg); changed {
		if msg != "" {
			m.log.Warn("reconciling the replicas' batch knobs", "actuator", m.act.Name(), "err", msg)
		} else if prev != "" {
			m.log.Info("the replicas' batch knobs reconciled again", "actuator", m.act.Name())
		}
	}
}

func (m *batchModel) step(ctx context.Context, now time.Time) {
	o, ok, err := m.obs.observe(ctx, now)
	if err != nil {
		if ctx.Err() == nil { // stopping is not a failure to report
			m.log.Warn("batch observation", "err", err)
		}
		return
	}
	if !ok {
		return
	}
	if _, err := m.ctl.Step(ctx, m.name, o, forecastPerServer(m.plans, m.workload, now)); err != nil {
		m.log.Warn("batch controller", "err", err)
	}
}

// addBatchController is serve's hook: with a --batch.config.file, it adds
// the batch controller to the run group, its metrics to reg; models with
// a workload plan for its forecast from plans. A bad file is an error
// before anything starts.
func addBatchController(ctx context.Context, g *run.Group, file, exporterURL string, plans planReader, reg prometheus.Registerer, log *slog.Logger) error {
	if file == "" {
		return nil
	}
	models, err := newBatchModels(file, exporterURL, plans, reg, log)
	if err != nil {
		return err
	}
	bctx, cancel := context.WithCancel(ctx)
	g.Add(func() error {
		var wg sync.WaitGroup
		for _, m := range models {
			wg.Go(func() { m.run(bctx) })
		}
		wg.Wait()
		return nil
	}, func(error) { cancel() })
	log.Info("batch controller", "file", file, "models", len(models))
	return nil
}
