package batchctl

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/infercast/infercast/internal/strictyaml"
)

// FileConfig is the batch controller's configuration file, read by
// `adapter serve --batch.config.file` (docs/batching.md): the models it
// tunes, each with its SLO, bounds and actuator.
//
//	models:
//	  - model: ranker            # the exporter's model label
//	    slo: 250ms               # bound on p99(queue delay + execution)
//	    max_batch_size: 64       # the largest batch the model allows
//	    reject_late: true        # reject requests that can no longer meet the SLO (off by default)
//	    actuator:
//	      kind: triton           # recommend-only (default), triton, rayserve, webhook
//	      url: http://triton:8000
//
// Unknown keys are errors, and every error names the model and the field.
type FileConfig struct {
	Models []ModelConfig `yaml:"models"`
}

// ModelConfig is one tuned model.
type ModelConfig struct {
	// Model is the model label of the exporter's series.
	Model string `yaml:"model"`
	SLO   string `yaml:"slo"`
	// MaxBatchSize is the largest batch the model allows.
	MaxBatchSize int `yaml:"max_batch_size"`
	// Margin keeps the predicted p99 under SLO·(1 − margin).
	Margin float64 `yaml:"margin"`
	// Interval is how often the model is observed and decided for.
	Interval string `yaml:"interval"`
	// QueueDelays is the grid of queue delays considered (default
	// DefaultDelays).
	QueueDelays []string `yaml:"queue_delays"`
	// Workload names the planner workload (adapter serve's policy) whose
	// forecast the model plans for, per replica; empty: the observed rate
	// alone.
	Workload string `yaml:"workload"`
	// RejectLate lets the controller set a queue timeout that rejects
	// requests which can no longer meet the SLO (Config.RejectLate):
	// triton (default_queue_policy) and webhook, or recommend-only for a
	// Triton server; Ray Serve's @serve.batch, vLLM and TGI have no such
	// timeout.
	RejectLate bool           `yaml:"reject_late"`
	Actuator   ActuatorConfig `yaml:"actuator"`

	slo, interval time.Duration
	delays        []time.Duration
}

// ActuatorConfig says how a model's knobs are applied.
type ActuatorConfig struct {
	// Kind is recommend-only (the default), triton, rayserve or webhook.
	Kind string `yaml:"kind"`
	// URL is Triton's HTTP endpoint, Ray's dashboard, or the webhook.
	URL string `yaml:"url"`
	// Model is the model's name on the server (Triton), when it differs
	// from the exporter's label.
	Model string `yaml:"model"`
	// Application and Deployment name the Ray Serve deployment.
	Application string `yaml:"application"`
	Deployment  string `yaml:"deployment"`
	// Server is the server kind a recommend-only model runs (vllm, tgi,
	// triton, ray), to log what to restart it with.
	Server string `yaml:"server"`
	// Timeout bounds each request to the server (default 30 s; 5 min for
	// triton, where a change is a whole model reload).
	Timeout string `yaml:"timeout"`
	// MinInterval and MinGain override the actuator's default limits
	// (each only when set).
	MinInterval string   `yaml:"min_interval"`
	MinGain     *float64 `yaml:"min_gain"`

	timeout, minInterval time.Duration
}

// Actuator kinds.
const (
	KindRecommendOnly = "recommend-only"
	KindTriton        = "triton"
	KindRayServe      = "rayserve"
	KindWebhook       = "webhook"
)

// DefaultInterval is how often a model is observed when the file does not
// say.
const DefaultInterval = 15 * time.Second

// knownKeys are the keys each level of the file may hold: checked on the
// YAML tree so that an unknown key's error names its model.
var knownKeys = map[string][]string{
	"file":     {"models"},
	"model":    {"model", "slo", "max_batch_size", "margin", "interval", "queue_delays", "workload", "reject_late", "actuator"},
	"actuator": {"kind", "url", "model", "application", "deployment", "server", "timeout", "min_interval", "min_gain"},
}

// LoadFile reads and validates a batch configuration file.
func LoadFile(path string) (*FileConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("batch config: %w", err)
	}
	c, err := ParseConfig(b)
	if err != nil {
		return nil, fmt.Errorf("batch config %s: %w", path, err)
	}
	return c, nil
}

// ParseConfig decodes a batch configuration strictly and validates it.
func ParseConfig(b []byte) (*FileConfig, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(b, &root); err != nil {
		return nil, err
	}
	if len(root.Content) == 0 {
		return nil, errors.New("empty file: want a models list")
	}
	if err := checkKeys(root.Content[0]); err != nil {
		return nil, err
	}
	// yaml.v3 would decode max_batch_size: 25.6 as 25 without a word.
	if errs := strictyaml.NonIntegers(root.Content[0], reflect.TypeOf(FileConfig{}), ""); len(errs) > 0 {
		return nil, fmt.Errorf("line %d: %w", errs[0].Line, errs[0])
	}
	var c FileConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// checkKeys rejects unknown keys, naming the model they belong to.
func checkKeys(doc *yaml.Node) error {
	if doc.Kind != yaml.MappingNode {
		return fmt.Errorf("line %d: want a mapping with a models list", doc.Line)
	}
	if err := unknownKey(doc, "file", ""); err != nil {
		return err
	}
	models := strictyaml.Value(doc, "models")
	if models == nil {
		return nil
	}
	if models.Kind != yaml.SequenceNode {
		return fmt.Errorf("line %d: models: want a list", models.Line)
	}
	for i, m := range models.Content {
		if m.Kind != yaml.MappingNode {
			return fmt.Errorf("line %d: models[%d]: want a mapping", m.Line, i)
		}
		where := fmt.Sprintf("models[%d]", i)
		if n := strictyaml.Value(m, "model"); n != nil && n.Value != "" {
			where += fmt.Sprintf(" (%s)", n.Value)
		}
		if err := unknownKey(m, "model", where+": "); err != nil {
			return err
		}
		if a := strictyaml.Value(m, "actuator"); a != nil {
			if a.Kind != yaml.MappingNode {
				return fmt.Errorf("line %d: %s: actuator: want a mapping", a.Line, where)
			}
			if err := unknownKey(a, "actuator", where+": actuator."); err != nil {
				return err
			}
		}
	}
	return nil
}

func unknownKey(m *yaml.Node, level, prefix string) error {
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		if !slices.Contains(knownKeys[level], k.Value) {
			return fmt.Errorf("line %d: %sunknown key %q (known: %s)", k.Line, prefix, k.Value, strings.Join(knownKeys[level], ", "))
		}
	}
	return nil
}

func (c *FileConfig) validate() error {
	if len(c.Models) == 0 {
		return errors.New("models: at least one model is required")
	}
	seen := map[string]bool{}
	for i := range c.Models {
		m := &c.Models[i]
		where := fmt.Sprintf("models[%d]", i)
		if m.Model != "" {
			where += fmt.Sprintf(" (%s)", m.Model)
		}
		if err := m.validate(); err != nil {
			return fmt.Errorf("%s: %w", where, err)
		}
		if seen[m.Model] {
			return fmt.Errorf("%s: model: listed twice", where)
		}
		seen[m.Model] = true
	}
	return nil
}

func parseDuration(field, s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	if d < 0 {
		return 0, fmt.Errorf("%s: %s must not be negative", field, s)
	}
	return d, nil
}

func (m *ModelConfig) validate() error {
	var err error
	if m.Model == "" {
		return errors.New("model: required (the exporter's model label)")
	}
	if m.SLO == "" {
		return errors.New("slo: required, e.g. 250ms")
	}
	if m.slo, err = parseDuration("slo", m.SLO, 0); err != nil {
		return err
	}
	if m.slo <= 0 {
		return fmt.Errorf("slo: %s must be positive", m.SLO)
	}
	if m.MaxBatchSize < 1 {
		return fmt.Errorf("max_batch_size: %d must be ≥ 1 (the largest batch the model allows)", m.MaxBatchSize)
	}
	if m.Margin < 0 || m.Margin >= 1 {
		return fmt.Errorf("margin: %g must be in [0, 1)", m.Margin)
	}
	if m.interval, err = parseDuration("interval", m.Interval, DefaultInterval); err != nil {
		return err
	}
	if m.interval < time.Second {
		return fmt.Errorf("interval: %s must be at least 1s", m.interval)
	}
	m.delays = nil
	for j, s := range m.QueueDelays {
		d, err := parseDuration(fmt.Sprintf("queue_delays[%d]", j), s, 0)
		if err != nil {
			return err
		}
		if j > 0 && d <= m.delays[j-1] {
			return fmt.Errorf("queue_delays[%d]: %s must be above the previous delay (ascending)", j, s)
		}
		if d >= m.slo {
			return fmt.Errorf("queue_delays[%d]: %s is not below the SLO %s", j, s, m.slo)
		}
		m.delays = append(m.delays, d)
	}
	if m.delays == nil {
		m.delays = DefaultDelays()
	}
	if err := m.Actuator.validate(); err != nil {
		return err
	}
	if m.RejectLate {
		switch a := m.Actuator; {
		case a.Kind == KindRayServe || a.Server == "ray":
			return errors.New("reject_late: Ray Serve's @serve.batch has no queue timeout to reject late requests with (triton and webhook have)")
		case a.Server == "vllm" || a.Server == "tgi":
			return fmt.Errorf("reject_late: %s has no queue timeout to reject late requests with (triton and webhook have)", a.Server)
		}
	}
	return nil
}

func (a *ActuatorConfig) validate() error {
	var err error
	if a.Kind == "" {
		a.Kind = KindRecommendOnly
	}
	needURL := true
	switch a.Kind {
	case KindRecommendOnly:
		needURL = false
		if a.URL != "" || a.Application != "" || a.Deployment != "" || a.Model != "" {
			return errors.New("actuator: recommend-only changes nothing: url, model, application and deployment do not apply")
		}
		switch a.Server {
		case "", "vllm", "tgi", "triton", "ray":
		default:
			return fmt.Errorf("actuator.server: %q: want vllm, tgi, triton or ray (for the restart hint)", a.Server)
		}
	case KindTriton, KindWebhook:
		if a.Application != "" || a.Deployment != "" {
			return fmt.Errorf("actuator: application and deployment are for rayserve, not %s", a.Kind)
		}
	case KindRayServe:
		if a.Application == "" || a.Deployment == "" {
			return errors.New("actuator: rayserve needs application and deployment")
		}
	default:
		return fmt.Errorf("actuator.kind: %q: want %s, %s, %s or %s", a.Kind, KindRecommendOnly, KindTriton, KindRayServe, KindWebhook)
	}
	if a.Kind != KindRecommendOnly && a.Server != "" {
		return fmt.Errorf("actuator.server: only for recommend-only, not %s", a.Kind)
	}
	if a.Kind != KindTriton && a.Model != "" {
		return fmt.Errorf("actuator.model: only for triton, not %s", a.Kind)
	}
	if needURL {
		u, err := url.Parse(a.URL)
		if a.URL == "" || err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return fmt.Errorf("actuator.url: %q: %s needs an http(s) URL", a.URL, a.Kind)
		}
	}
	defTimeout := 30 * time.Second
	if a.Kind == KindTriton {
		// A load is a model reload: a large model takes minutes, and a
		// client that gives up first leaves Triton loading while it
		// reloads the previous config behind it.
		defTimeout = 5 * time.Minute
	}
	if a.timeout, err = parseDuration("actuator.timeout", a.Timeout, defTimeout); err != nil {
		return err
	}
	if a.timeout == 0 {
		return errors.New("actuator.timeout: must be positive")
	}
	if a.minInterval, err = parseDuration("actuator.min_interval", a.MinInterval, 0); err != nil {
		return err
	}
	if a.MinGain != nil && (*a.MinGain < 0 || *a.MinGain >= 10) {
		return fmt.Errorf("actuator.min_gain: %g must be in [0, 10)", *a.MinGain)
	}
	return nil
}

// IntervalDuration is how often the model is observed and decided for.
func (m *ModelConfig) IntervalDuration() time.Duration { return m.interval }

// ControllerConfig is the controller configuration of a validated model.
func (m *ModelConfig) ControllerConfig() Config {
	c := DefaultConfig(m.slo, m.MaxBatchSize)
	c.Margin = m.Margin
	c.Bounds.Delays = slices.Clone(m.delays)
	c.RejectLate = m.RejectLate
	return c
}

// NewActuator builds the model's actuator; requests to the server use a
// client bounded by the configured timeout.
func (m *ModelConfig) NewActuator(log *slog.Logger) Actuator {
	a := m.Actuator
	client := &http.Client{Timeout: a.timeout}
	// The file overrides only the limits it sets; the rest keep the
	// actuator's defaults.
	limits := func(def Limits) Limits {
		if a.MinInterval != "" {
			def.MinInterval = a.minInterval
		}
		if a.MinGain != nil {
			def.MinGain = *a.MinGain
		}
		return def
	}
	switch a.Kind {
	case KindTriton:
		t := &Triton{BaseURL: a.URL, Client: client, Limit: limits(DefaultTritonLimits), Logger: log}
		if a.Model != "" && a.Model != m.Model {
			return serverName{Actuator: t, name: a.Model}
		}
		return t
	case KindRayServe:
		return &RayServe{BaseURL: a.URL, Application: a.Application, Deployment: a.Deployment, Client: client,
			Limit: limits(DefaultRayServeLimits), Logger: log}
	case KindWebhook:
		return &Webhook{URL: a.URL, Client: client, Limit: limits(DefaultWebhookLimits)}
	default:
		return RecommendOnly{Server: a.Server, Logger: log}
	}
}

// CurrentReader is an actuator that can read what the server runs now.
type CurrentReader interface {
	Current(ctx context.Context, model string) (Knobs, error)
}

// Reconciler is an actuator whose replicas can drift from the knobs it
// applied (a Triton replica restarted or added loads its config.pbtxt):
// Reconcile applies k where they differ and says how many it changed.
type Reconciler interface {
	Reconcile(ctx context.Context, model string, k Knobs) (changed int, err error)
}

// StatsReader is an actuator that can read the server's per-batch-size
// execution statistics (Triton's statistics extension), per replica: the
// batch size distribution that makes the profile fit sharper than the
// exporter's averages (BatchIncrease turns two readings into a window's).
type StatsReader interface {
	BatchStats(ctx context.Context, model string) (map[string]map[int]BatchCounter, error)
}

// serverName applies a model's knobs under the name the server knows it
// by, while the controller and its metrics use the exporter's label.
type serverName struct {
	Actuator
	name string
}

func (s serverName) Apply(ctx context.Context, _ string, k Knobs) error {
	return s.Actuator.Apply(ctx, s.name, k)
}

func (s serverName) BatchStats(ctx context.Context, _ string) (map[string]map[int]BatchCounter, error) {
	if r, ok := s.Actuator.(StatsReader); ok {
		return r.BatchStats(ctx, s.name)
	}
	return nil, fmt.Errorf("actuator %s cannot read batch statistics", s.Name())
}

func (s serverName) Current(ctx context.Context, _ string) (Knobs, error) {
	if r, ok := s.Actuator.(CurrentReader); ok {
		return r.Current(ctx, s.name)
	}
	return Knobs{}, fmt.Errorf("actuator %s cannot read the current knobs", s.Name())
}
