// Package fleet simulates a fleet of model servers (vLLM, Triton, TGI,
// SGLang, Ray Serve, KServe/Knative) for demos and tests. Each server is a
// real http.Server on 127.0.0.1:0 whose /metrics speaks its dialect's real
// metric names, driven by a seeded queueing model: arrivals against
// replicas × per-replica service rate, so queues, latency histograms, batch
// sizes and running counts respond to load as a real server's would.
//
// Time is the caller's: Advance(dt) moves the simulation deterministically
// (tests), Run(ctx, tick) advances it with the wall clock (demos).
package fleet

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"
	"gopkg.in/yaml.v3"
)

// ServerConfig describes one simulated server: one model deployment of
// `Replicas` replicas behind a single /metrics endpoint.
type ServerConfig struct {
	// Name identifies the server (SetHang, Restart); default "<model>-<dialect>".
	Name    string  `yaml:"name"`
	Dialect Dialect `yaml:"dialect"`
	// Model is unique across the fleet; SetArrivalRate/SetReplicas address it.
	Model    string `yaml:"model"`
	Replicas int    `yaml:"replicas"`
	// Mu is the requests/s one replica completes at a full batch.
	Mu float64 `yaml:"mu"`
	// MaxBatch is the number of requests one replica runs at once.
	MaxBatch int `yaml:"max_batch"`
	// MaxQueue bounds the waiting queue; arrivals beyond it are rejected
	// (0: 10000).
	MaxQueue int `yaml:"max_queue"`
	// Rate is the initial arrival rate in requests/s.
	Rate float64 `yaml:"rate"`
}

// Config is a fleet: its servers and the seed of its random streams.
type Config struct {
	Seed    uint64         `yaml:"seed"`
	Servers []ServerConfig `yaml:"servers"`
	// Start is the simulated clock's origin; zero means time.Now() at New.
	Start time.Time `yaml:"-"`
}

// ParseConfig reads a fleet config strictly: unknown keys are errors.
func ParseConfig(r io.Reader) (Config, error) {
	var c Config
	dec := yaml.NewDecoder(r)
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		return Config{}, fmt.Errorf("fleet config: %w", err)
	}
	return c, c.Validate()
}

// Validate checks every server and fills nothing in; New applies defaults.
func (c Config) Validate() error {
	if len(c.Servers) == 0 {
		return errors.New("fleet config: no servers")
	}
	models, names := map[string]bool{}, map[string]bool{}
	for i, s := range c.Servers {
		at := fmt.Sprintf("fleet config: servers[%d] (model %q)", i, s.Model)
		switch {
		case s.Model == "":
			return fmt.Errorf("%s: model is required", at)
		case !s.Dialect.valid():
			return fmt.Errorf("%s: unknown dialect %q (want one of %v)", at, s.Dialect, Dialects())
		case s.Replicas < 0:
			return fmt.Errorf("%s: replicas must be >= 0, got %d", at, s.Replicas)
		case !(s.Mu > 0):
			return fmt.Errorf("%s: mu must be > 0, got %v", at, s.Mu)
		case s.MaxBatch < 1:
			return fmt.Errorf("%s: max_batch must be >= 1, got %d", at, s.MaxBatch)
		case s.MaxQueue < 0:
			return fmt.Errorf("%s: max_queue must be >= 0, got %d", at, s.MaxQueue)
		case !(s.Rate >= 0):
			return fmt.Errorf("%s: rate must be >= 0, got %v", at, s.Rate)
		}
		if models[s.Model] {
			return fmt.Errorf("%s: duplicate model", at)
		}
		models[s.Model] = true
		n := s.name()
		if names[n] {
			return fmt.Errorf("%s: duplicate server name %q", at, n)
		}
		names[n] = true
	}
	return nil
}

func (s ServerConfig) name() string {
	if s.Name != "" {
		return s.Name
	}
	return s.Model + "-" + string(s.Dialect)
}

// Default is the demo fleet: a vLLM "chat" model and a Triton model, and one
// server of every other dialect, each loaded to about 60 % of capacity.
func Default() Config {
	return Config{Seed: 1, Servers: []ServerConfig{
		{Dialect: VLLM, Model: "chat", Replicas: 2, Mu: 4, MaxBatch: 32, Rate: 5},
		{Dialect: Triton, Model: "ranker", Replicas: 2, Mu: 200, MaxBatch: 16, Rate: 240},
		{Dialect: VLLMLegacy, Model: "assistant", Replicas: 1, Mu: 3, MaxBatch: 16, Rate: 1.8},
		{Dialect: TGI, Model: "summarise", Replicas: 1, Mu: 2, MaxBatch: 16, Rate: 1.2},
		{Dialect: SGLang, Model: "code", Replicas: 1, Mu: 5, MaxBatch: 32, Rate: 3},
		{Dialect: RayServe, Model: "classify", Replicas: 2, Mu: 50, MaxBatch: 8, Rate: 60},
		{Dialect: KServe, Model: "sentiment", Replicas: 1, Mu: 80, MaxBatch: 4, Rate: 48},
	}}
}

// Target is where a started server can be scraped.
type Target struct {
	Name    string
	Dialect Dialect
	Model   string
	// URL is the full metrics URL, e.g. http://127.0.0.1:41234/metrics.
	URL string
	// Addr is host:port.
	Addr string
}

// ModelState is a snapshot of one model's queueing state, for tests and
// demos.
type ModelState struct {
	Rate     float64
	Replicas int
	Waiting  int
	Running  int
	// Completed counts requests finished since the last Restart.
	Completed int
}

type server struct {
	cfg       ServerConfig
	m         *model
	reg       *prometheus.Registry
	rec       recorder
	startTime time.Time
	completed int
	genTokens float64
	hang      bool

	ln  net.Listener
	srv *http.Server
}

// Fleet is a set of simulated servers sharing one simulated clock.
type Fleet struct {
	log *slog.Logger

	mu      sync.Mutex
	origin  time.Time
	elapsed float64 // simulated seconds since origin
	servers []*server
	byName  map[string]*server
	byModel map[string]*server
	started bool

	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
}

// New builds a fleet; it serves nothing until Start.
func New(cfg Config, log *slog.Logger) (*Fleet, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	origin := cfg.Start
	if origin.IsZero() {
		origin = time.Now()
	}
	f := &Fleet{
		log: log, origin: origin,
		byName: map[string]*server{}, byModel: map[string]*server{},
		closing: make(chan struct{}),
	}
	for i, sc := range cfg.Servers {
		sc.Name = sc.name()
		if sc.MaxQueue == 0 {
			sc.MaxQueue = 10000
		}
		s := &server{cfg: sc, m: &model{
			rate: sc.Rate, replicas: sc.Replicas, mu: sc.Mu, maxBatch: sc.MaxBatch, maxQueue: sc.MaxQueue,
			// One stream per server, so changing one server's load never
			// changes another's draws.
			rng: rand.New(rand.NewPCG(cfg.Seed, uint64(i)+1)),
		}}
		s.m.reset()
		if err := f.resetMetrics(s); err != nil {
			return nil, err
		}
		f.servers = append(f.servers, s)
		f.byName[sc.Name] = s
		f.byModel[sc.Model] = s
	}
	return f, nil
}

// resetMetrics gives a server fresh counters and a new process start time,
// as a restarted process has.
func (f *Fleet) resetMetrics(s *server) error {
	reg := prometheus.NewRegistry()
	rec, err := newRecorder(s.cfg.Dialect, s, reg)
	if err != nil {
		return err
	}
	s.startTime = f.now()
	start := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "process_start_time_seconds",
		Help: "Start time of the process since unix epoch in seconds.",
	})
	start.Set(float64(s.startTime.UnixNano()) / 1e9)
	reg.MustRegister(start)
	s.reg, s.rec, s.completed, s.genTokens = reg, rec, 0, 0
	rec.gauges(s.m, 0)
	return nil
}

func (f *Fleet) now() time.Time {
	return f.origin.Add(time.Duration(f.elapsed * float64(time.Second)))
}

// Now is the simulated clock.
func (f *Fleet) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now()
}

// Advance moves the simulation forward by dt.
func (f *Fleet) Advance(dt time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	remaining := dt.Seconds()
	for remaining > 1e-9 {
		h := min(substep, remaining)
		for _, s := range f.servers {
			ev := s.m.step(f.elapsed, h)
			for _, r := range ev.finished {
				s.rec.finished(r)
				s.genTokens += float64(r.output)
			}
			s.completed += len(ev.finished)
			if ev.rejected > 0 {
				s.rec.rejected(ev.rejected)
			}
			s.rec.batches(ev.batches)
		}
		f.elapsed += h
		remaining -= h
	}
	for _, s := range f.servers {
		tps := 0.0
		if dt > 0 {
			tps = s.genTokens / dt.Seconds()
		}
		s.genTokens = 0
		s.rec.gauges(s.m, tps)
	}
}

// Run advances the simulation by tick every tick of the wall clock until
// ctx ends.
func (f *Fleet) Run(ctx context.Context, tick time.Duration) error {
	if tick <= 0 {
		return fmt.Errorf("fleet: tick must be > 0, got %v", tick)
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f.Advance(tick)
		}
	}
}

// SetArrivalRate sets a model's arrival rate in requests/s.
func (f *Fleet) SetArrivalRate(model string, rps float64) error {
	if !(rps >= 0) {
		return fmt.Errorf("fleet: arrival rate for %q must be >= 0, got %v", model, rps)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byModel[model]
	if !ok {
		return fmt.Errorf("fleet: unknown model %q", model)
	}
	s.m.rate = rps
	return nil
}

// SetReplicas sets a model's replica count. Requests running on removed
// replicas finish; no new ones start there.
func (f *Fleet) SetReplicas(model string, n int) error {
	if n < 0 {
		return fmt.Errorf("fleet: replicas for %q must be >= 0, got %d", model, n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byModel[model]
	if !ok {
		return fmt.Errorf("fleet: unknown model %q", model)
	}
	s.m.replicas = n
	return nil
}

// SetHang makes a server's /metrics hang (until the client gives up or the
// fleet closes) or answer again.
func (f *Fleet) SetHang(server string, hang bool) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byName[server]
	if !ok {
		return fmt.Errorf("fleet: unknown server %q", server)
	}
	s.hang = hang
	return nil
}

// Restart simulates a process restart: counters start again from zero,
// queued and running requests are lost, and process_start_time_seconds
// becomes the current simulated time.
func (f *Fleet) Restart(server string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byName[server]
	if !ok {
		return fmt.Errorf("fleet: unknown server %q", server)
	}
	s.m.reset()
	return f.resetMetrics(s)
}

// State returns a model's queueing state.
func (f *Fleet) State(model string) (ModelState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byModel[model]
	if !ok {
		return ModelState{}, fmt.Errorf("fleet: unknown model %q", model)
	}
	return ModelState{Rate: s.m.rate, Replicas: s.m.replicas, Waiting: len(s.m.queue),
		Running: len(s.m.running), Completed: s.completed}, nil
}

// Handler serves one server's /metrics without a listener (for in-process
// use); Start serves the same handler on 127.0.0.1.
func (f *Fleet) Handler(server string) (http.Handler, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.byName[server]
	if !ok {
		return nil, fmt.Errorf("fleet: unknown server %q", server)
	}
	return f.handler(s), nil
}

func (f *Fleet) handler(s *server) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		hang := s.hang
		// Gather under the lock so one scrape sees one instant of the
		// simulation.
		mfs, err := s.reg.Gather()
		f.mu.Unlock()
		if hang {
			select {
			case <-r.Context().Done():
			case <-f.closing:
			}
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		format := expfmt.NewFormat(expfmt.TypeTextPlain)
		w.Header().Set("Content-Type", string(format))
		enc := expfmt.NewEncoder(w, format)
		for _, mf := range mfs {
			if err := enc.Encode(mf); err != nil {
				f.log.Debug("fleet: writing metrics", "server", s.cfg.Name, "err", err)
				return
			}
		}
	})
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	return mux
}

// Start listens on 127.0.0.1:0 for every server.
func (f *Fleet) Start(ctx context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.started {
		return errors.New("fleet: already started")
	}
	var lc net.ListenConfig
	for _, s := range f.servers {
		ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
		if err != nil {
			f.closeListeners()
			return fmt.Errorf("fleet: listen for %s: %w", s.cfg.Name, err)
		}
		s.ln = ln
		s.srv = &http.Server{Handler: f.handler(s), ReadHeaderTimeout: 5 * time.Second}
	}
	for _, s := range f.servers {
		f.wg.Add(1)
		go func(s *server) {
			defer f.wg.Done()
			if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				f.log.Error("fleet: server stopped", "server", s.cfg.Name, "err", err)
			}
		}(s)
	}
	f.started = true
	return nil
}

func (f *Fleet) closeListeners() {
	for _, s := range f.servers {
		if s.ln != nil {
			_ = s.ln.Close()
			s.ln = nil
		}
	}
}

// Targets lists the started servers, in config order.
func (f *Fleet) Targets() []Target {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Target, 0, len(f.servers))
	for _, s := range f.servers {
		t := Target{Name: s.cfg.Name, Dialect: s.cfg.Dialect, Model: s.cfg.Model}
		if s.ln != nil {
			t.Addr = s.ln.Addr().String()
			t.URL = "http://" + t.Addr + "/metrics"
		}
		out = append(out, t)
	}
	return out
}

// Servers lists server names, sorted.
func (f *Fleet) Servers() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]string, 0, len(f.servers))
	for n := range f.byName {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Close stops every server; hanging scrapes are released first. It waits
// for the servers within ctx.
func (f *Fleet) Close(ctx context.Context) error {
	f.closeOnce.Do(func() { close(f.closing) })
	f.mu.Lock()
	servers := append([]*server(nil), f.servers...)
	f.mu.Unlock()
	var errs []error
	for _, s := range servers {
		if s.srv != nil {
			if err := s.srv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("fleet: shutdown %s: %w", s.cfg.Name, err))
			}
		}
	}
	f.wg.Wait()
	return errors.Join(errs...)
}
