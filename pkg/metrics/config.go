package metrics

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/common/model"
	"gopkg.in/yaml.v3"

	"github.com/infercast/infercast/internal/strictyaml"
)

// Config is the exporter's configuration file. Unknown keys are errors, so a
// typo never silently turns a setting off.
type Config struct {
	Global          GlobalConfig             `yaml:"global"`
	Targets         []TargetConfig           `yaml:"targets"`
	GenericMappings map[string]GenericConfig `yaml:"generic_mappings"`
	// Integrations is read by cmd/exporter for the collectors that live in
	// subpackages (GPU, spot, cost, kube); this package only carries it.
	Integrations IntegrationsConfig `yaml:"integrations"`
}

// GlobalConfig holds the settings shared by every target.
type GlobalConfig struct {
	ScrapeInterval       time.Duration   `yaml:"scrape_interval"`
	ScrapeTimeout        time.Duration   `yaml:"scrape_timeout"`
	Windows              []time.Duration `yaml:"windows"`
	BodySizeLimitBytes   int64           `yaml:"body_size_limit_bytes"`
	MaxConcurrentScrapes int             `yaml:"max_concurrent_scrapes"`
}

// TargetConfig is one statically configured model server.
type TargetConfig struct {
	Name    string `yaml:"name"`
	URL     string `yaml:"url"`
	Dialect string `yaml:"dialect"`
	// Mapping names an entry of generic_mappings; only with dialect "generic".
	Mapping string `yaml:"mapping"`
	// Model overrides the model name read from the server's labels.
	Model string `yaml:"model"`
	// MaxBatchSize is the server's configured maximum batch (vLLM
	// max_num_seqs, Triton max_batch_size); batch utilisation needs it.
	MaxBatchSize    int           `yaml:"max_batch_size"`
	BearerTokenFile string        `yaml:"bearer_token_file"`
	Timeout         time.Duration `yaml:"timeout"`
}

// GenericConfig maps an arbitrary server's metric names onto infercast's
// signals. Histogram names are base names (without _bucket/_sum/_count).
type GenericConfig struct {
	ModelLabel    string `yaml:"model_label"`
	RequestsTotal string `yaml:"requests_total"`
	// RequestClumpSizeSumTotal is a counter that adds, for every request
	// that arrives, the number of requests that arrived at the same
	// instant (itself included) — kept by a gateway or a request log, not
	// by model servers. Exported as
	// infercast_model_request_clump_size_sum_total, it is the batch
	// controller's Observation.ClumpSizeSum.
	RequestClumpSizeSumTotal string  `yaml:"request_clump_size_sum_total"`
	QueueWaiting             string  `yaml:"queue_waiting"`
	Running                  string  `yaml:"running"`
	KVCacheUsageRatio        string  `yaml:"kv_cache_usage_ratio"`
	BatchSize                string  `yaml:"batch_size"`
	RequestLatency           string  `yaml:"request_latency_histogram"`
	TimeToFirstToken         string  `yaml:"time_to_first_token_histogram"`
	TimePerOutputToken       string  `yaml:"time_per_output_token_histogram"`
	QueueTime                string  `yaml:"queue_time_histogram"`
	HistogramUnitSeconds     float64 `yaml:"histogram_unit_seconds"`
}

// IntegrationsConfig configures the collectors wired in by cmd/exporter.
type IntegrationsConfig struct {
	GPU        GPUConfig        `yaml:"gpu"`
	Spot       SpotConfig       `yaml:"spot"`
	Cost       CostConfig       `yaml:"cost"`
	Kubernetes KubernetesConfig `yaml:"kubernetes"`
}

// GPUConfig enables NVML collection.
type GPUConfig struct {
	Enabled bool `yaml:"enabled"`
	// ProcRoot is the /proc of the exporter's PID namespace: the GPU
	// collector maps NVML's process IDs to pods through
	// <proc_root>/<pid>/cgroup. NVML reports PIDs in the caller's PID
	// namespace and omits processes not visible there, so in a pod the
	// exporter needs hostPID (the chart sets it) and this stays /proc.
	// Default /proc.
	ProcRoot string `yaml:"proc_root"`
}

// DefaultProcRoot is integrations.gpu.proc_root when the file leaves it out.
const DefaultProcRoot = "/proc"

// SpotConfig lists the cloud metadata services to watch for interruptions.
type SpotConfig struct {
	Providers []string `yaml:"providers"`
}

// CostConfig points at the price catalogue and describes this node.
type CostConfig struct {
	CatalogueFile string            `yaml:"catalogue_file"`
	Teams         map[string]string `yaml:"teams"`
}

// KubernetesConfig enables pod discovery on this node.
type KubernetesConfig struct {
	Enabled    bool   `yaml:"enabled"`
	NodeName   string `yaml:"node_name"`
	Kubeconfig string `yaml:"kubeconfig"`
}

// Defaults used when the file leaves a setting out.
const (
	DefaultScrapeInterval       = 5 * time.Second
	DefaultScrapeTimeout        = 4 * time.Second
	DefaultBodySizeLimitBytes   = 32 << 20
	DefaultMaxConcurrentScrapes = 64
)

// DefaultWindows are the sliding windows percentiles and rates are computed over.
var defaultWindows = []time.Duration{time.Minute, 5 * time.Minute}

// DefaultConfig returns a configuration with every default filled in and no targets.
func DefaultConfig() Config {
	var c Config
	c.applyDefaults()
	return c
}

func (c *Config) applyDefaults() {
	g := &c.Global
	if g.ScrapeInterval == 0 {
		g.ScrapeInterval = DefaultScrapeInterval
	}
	if g.ScrapeTimeout == 0 {
		g.ScrapeTimeout = min(DefaultScrapeTimeout, g.ScrapeInterval)
	}
	if len(g.Windows) == 0 {
		g.Windows = slices.Clone(defaultWindows)
	}
	if g.BodySizeLimitBytes == 0 {
		g.BodySizeLimitBytes = DefaultBodySizeLimitBytes
	}
	if g.MaxConcurrentScrapes == 0 {
		g.MaxConcurrentScrapes = DefaultMaxConcurrentScrapes
	}
	if c.Integrations.GPU.ProcRoot == "" {
		c.Integrations.GPU.ProcRoot = DefaultProcRoot
	}
	for i := range c.Targets {
		if c.Targets[i].Timeout == 0 {
			c.Targets[i].Timeout = g.ScrapeTimeout
		}
	}
	for k, m := range c.GenericMappings {
		if m.HistogramUnitSeconds == 0 {
			m.HistogramUnitSeconds = 1
			c.GenericMappings[k] = m
		}
	}
}

// LoadConfigFile reads and validates a configuration file. Errors name the
// file, the line and the key path, as FILE:LINE: PATH: PROBLEM
// (exporter.yaml:2: global.scrape_intervall: unknown field (did you mean
// scrape_interval?)).
func LoadConfigFile(path string) (Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("reading config: %w", err)
	}
	return parseConfig(path, b)
}

// ParseConfig decodes YAML strictly (unknown fields are errors), fills in
// defaults and validates the result. It returns the first problem, as
// "line N: PATH: PROBLEM" (LoadConfigFile names the file instead).
func ParseConfig(b []byte) (Config, error) {
	return parseConfig("", b)
}

func parseConfig(name string, b []byte) (Config, error) {
	at := func(line int, err error) error {
		switch {
		case name == "" && line > 0:
			return fmt.Errorf("line %d: %w", line, err)
		case name == "":
			return err
		case line > 0:
			return fmt.Errorf("%s:%d: %w", name, line, err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil && !errors.Is(err, io.EOF) {
		if line, msg, ok := strictyaml.SyntaxError(err); ok {
			return Config{}, at(line, errors.New(msg))
		}
		return Config{}, at(0, err)
	}
	// A second document is almost always a mistake (a stray "---").
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return Config{}, at(extra.Line, errors.New("config holds more than one YAML document"))
	}
	var c Config
	var root *yaml.Node // nil for an empty file
	if doc.Kind == yaml.DocumentNode && len(doc.Content) > 0 && doc.Content[0].ShortTag() != "!!null" {
		root = doc.Content[0]
		if root.Kind != yaml.MappingNode {
			return Config{}, at(root.Line, errors.New("want a mapping of global, targets, generic_mappings and integrations"))
		}
		if errs := strictyaml.Check(root, reflect.TypeOf(c), ""); len(errs) > 0 {
			return Config{}, at(errs[0].Line, errs[0])
		}
		var errs []*strictyaml.Error
		if err := root.Decode(&c); err != nil {
			errs = strictyaml.DecodeErrors(root, err)
		}
		// yaml.v3 truncates max_batch_size: 25.6 to 25: a type error too.
		if errs = strictyaml.Merge(errs, strictyaml.NonIntegers(root, reflect.TypeOf(c), "")); len(errs) > 0 {
			return Config{}, at(errs[0].Line, errs[0])
		}
	}
	if root != nil {
		if e := writtenZero(root, &c); e != nil {
			return Config{}, at(e.Line, e)
		}
	}
	c.applyDefaults()
	if err := c.Validate(); err != nil {
		// Validate's errors are "PATH: PROBLEM": the path finds the line.
		line := 0
		if path, _, ok := strings.Cut(err.Error(), ": "); ok && root != nil {
			line = strictyaml.Line(root, path)
		}
		return Config{}, at(line, err)
	}
	return c, nil
}

// writtenZero is the first setting the file writes as 0 where 0 is no
// valid value: left out, the key takes its default; written as 0, it is
// an error rather than the default in disguise (scrape_interval: 0s was
// silently 5 s).
func writtenZero(root *yaml.Node, c *Config) *strictyaml.Error {
	check := func(zero bool, keys ...string) *strictyaml.Error {
		if !zero {
			return nil
		}
		n := root
		for _, k := range keys {
			if n = strictyaml.Value(n, k); n == nil {
				return nil
			}
		}
		return &strictyaml.Error{Line: n.Line, Path: strings.Join(keys, "."), Msg: "0 is not a valid value (leave the key out for its default)"}
	}
	g := c.Global
	for _, e := range []*strictyaml.Error{
		check(g.ScrapeInterval == 0, "global", "scrape_interval"),
		check(g.ScrapeTimeout == 0, "global", "scrape_timeout"),
		check(g.BodySizeLimitBytes == 0, "global", "body_size_limit_bytes"),
		check(g.MaxConcurrentScrapes == 0, "global", "max_concurrent_scrapes"),
	} {
		if e != nil {
			return e
		}
	}
	if targets := strictyaml.Value(root, "targets"); targets != nil && targets.Kind == yaml.SequenceNode {
		for i, t := range c.Targets {
			if i < len(targets.Content) && t.Timeout == 0 {
				if n := strictyaml.Value(targets.Content[i], "timeout"); n != nil {
					return &strictyaml.Error{Line: n.Line, Path: fmt.Sprintf("targets[%d].timeout", i), Msg: "0 is not a valid value (leave the key out for global.scrape_timeout)"}
				}
			}
		}
	}
	for name, m := range c.GenericMappings {
		if m.HistogramUnitSeconds == 0 {
			if e := check(true, "generic_mappings", name, "histogram_unit_seconds"); e != nil {
				return e
			}
		}
	}
	return nil
}

// ScrapesNothing says the configuration has no static target and pod
// discovery is off: an exporter running it serves only its own metrics
// (and any GPU, spot and cost collectors).
func (c *Config) ScrapesNothing() bool {
	return len(c.Targets) == 0 && !c.Integrations.Kubernetes.Enabled
}

// Validate checks every field and returns the first problem, naming the field.
func (c *Config) Validate() error {
	g := c.Global
	switch {
	case g.ScrapeInterval < 0:
		return errors.New("global.scrape_interval: must be positive")
	case g.ScrapeTimeout <= 0:
		return errors.New("global.scrape_timeout: must be positive")
	case g.ScrapeTimeout > g.ScrapeInterval:
		return fmt.Errorf("global.scrape_timeout: %s is longer than global.scrape_interval %s", g.ScrapeTimeout, g.ScrapeInterval)
	case g.BodySizeLimitBytes < 0:
		return errors.New("global.body_size_limit_bytes: must be positive")
	case g.MaxConcurrentScrapes < 0:
		return errors.New("global.max_concurrent_scrapes: must be positive")
	}
	for i, w := range g.Windows {
		if w < g.ScrapeInterval {
			return fmt.Errorf("global.windows[%d]: %s is shorter than global.scrape_interval %s", i, w, g.ScrapeInterval)
		}
		if i > 0 && w <= g.Windows[i-1] {
			return fmt.Errorf("global.windows[%d]: windows must be strictly increasing", i)
		}
	}
	for name, m := range c.GenericMappings {
		if err := m.validate(); err != nil {
			return fmt.Errorf("generic_mappings.%s.%w", name, err)
		}
	}
	seen := map[string]int{}
	for i, t := range c.Targets {
		if err := t.validate(c.GenericMappings); err != nil {
			return fmt.Errorf("targets[%d].%w", i, err)
		}
		if j, dup := seen[t.Name]; dup {
			return fmt.Errorf("targets[%d].name: %q already used by targets[%d]", i, t.Name, j)
		}
		seen[t.Name] = i
	}
	if pr := c.Integrations.GPU.ProcRoot; pr != "" && !path.IsAbs(pr) {
		return fmt.Errorf("integrations.gpu.proc_root: %q is not an absolute path", pr)
	}
	for i, p := range c.Integrations.Spot.Providers {
		if !slices.Contains([]string{"aws", "gcp", "azure"}, p) {
			return fmt.Errorf("integrations.spot.providers[%d]: unknown provider %q (want aws, gcp or azure)", i, p)
		}
	}
	return nil
}

func (t TargetConfig) validate(mappings map[string]GenericConfig) error {
	if t.Name == "" {
		return errors.New("name: required")
	}
	u, err := url.Parse(t.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("url: %q is not an absolute http(s) URL", t.URL)
	}
	if t.Dialect == DialectGeneric {
		if t.Mapping == "" {
			return errors.New("mapping: required with dialect generic")
		}
		if _, ok := mappings[t.Mapping]; !ok {
			return fmt.Errorf("mapping: %q is not defined in generic_mappings", t.Mapping)
		}
	} else {
		if _, ok := builtinDialects[t.Dialect]; !ok {
			return fmt.Errorf("dialect: unknown dialect %q (want one of %v)", t.Dialect, DialectNames())
		}
		if t.Mapping != "" {
			return errors.New("mapping: only allowed with dialect generic")
		}
	}
	if t.MaxBatchSize < 0 {
		return errors.New("max_batch_size: must not be negative")
	}
	if t.Timeout < 0 {
		return errors.New("timeout: must be positive")
	}
	return nil
}

func (m GenericConfig) validate() error {
	names := []struct{ field, v string }{
		{"requests_total", m.RequestsTotal}, {"request_clump_size_sum_total", m.RequestClumpSizeSumTotal},
		{"queue_waiting", m.QueueWaiting},
		{"running", m.Running}, {"kv_cache_usage_ratio", m.KVCacheUsageRatio},
		{"batch_size", m.BatchSize}, {"request_latency_histogram", m.RequestLatency},
		{"time_to_first_token_histogram", m.TimeToFirstToken},
		{"time_per_output_token_histogram", m.TimePerOutputToken},
		{"queue_time_histogram", m.QueueTime},
	}
	any := false
	for _, n := range names {
		if n.v == "" {
			continue
		}
		any = true
		// Servers may expose UTF-8 names (quoted in the exposition); accept
		// what Prometheus itself accepts.
		if !model.UTF8Validation.IsValidMetricName(n.v) {
			return fmt.Errorf("%s: %q is not a valid metric name", n.field, n.v)
		}
	}
	if !any {
		return errors.New("requests_total: a mapping needs at least one metric")
	}
	// Both are counters, read with or without _total: one name cannot be
	// both (the clump sizes would be read as requests, or the reverse).
	if c := m.RequestClumpSizeSumTotal; c != "" && strings.TrimSuffix(c, "_total") == strings.TrimSuffix(m.RequestsTotal, "_total") {
		return fmt.Errorf("request_clump_size_sum_total: %q is the requests_total counter %q", c, m.RequestsTotal)
	}
	if m.ModelLabel != "" && !model.UTF8Validation.IsValidLabelName(m.ModelLabel) {
		return fmt.Errorf("model_label: %q is not a valid label name", m.ModelLabel)
	}
	if m.HistogramUnitSeconds <= 0 {
		return errors.New("histogram_unit_seconds: must be positive")
	}
	return nil
}
