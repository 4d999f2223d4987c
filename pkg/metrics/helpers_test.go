package metrics

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	if os.Getenv(benchFleetEnv) != "" {
		// Re-executed by BenchmarkFullCycleHTTP as its model servers.
		os.Exit(serveBenchFleet())
	}
	goleak.VerifyTestMain(m)
}

// fakeClock is a settable clock for deterministic windows.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Unix(1_750_000_000, 0)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// bodyServer serves whatever body was last set, like a model server whose
// counters move between scrapes.
type bodyServer struct {
	*httptest.Server
	mu          sync.Mutex
	body        []byte
	contentType string
	status      int
}

func newBodyServer(t *testing.T) *bodyServer {
	t.Helper()
	s := &bodyServer{contentType: "text/plain; version=0.0.4; charset=utf-8", status: http.StatusOK}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		body, ct, status := s.body, s.contentType, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *bodyServer) set(body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.body = body
}

func (s *bodyServer) setFile(t *testing.T, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s.set(b)
}

func (s *bodyServer) setStatus(code int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status = code
}

// newTestExporter builds an exporter over the given targets with a fake clock.
func newTestExporter(t *testing.T, clock *fakeClock, targets ...TargetConfig) *Exporter {
	t.Helper()
	return newTestExporterWith(t, clock, nil, targets...)
}

// newTestExporterWith lets a test change the config before the exporter is built.
func newTestExporterWith(t *testing.T, clock *fakeClock, edit func(*Config), targets ...TargetConfig) *Exporter {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Targets = targets
	if edit != nil {
		edit(&cfg)
	}
	cfg.applyDefaults()
	e, err := New(cfg, Options{Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// twoTargetCycle is step i of a two-target counter test: 15 s after the
// previous step (none before the first), a serves aBody and b serves bBody
// or, bDown, HTTP 503; then one cycle, and the exported values.
func twoTargetCycle(t *testing.T, e *Exporter, clock *fakeClock, i int, a, b *bodyServer, aBody, bBody []byte, bDown bool) map[string]float64 {
	t.Helper()
	if i > 0 {
		clock.Advance(15 * time.Second)
	}
	a.set(aBody)
	if bDown {
		b.setStatus(503)
	} else {
		b.setStatus(200)
		b.set(bBody)
	}
	e.Cycle(context.Background())
	return gatherValues(t, e)
}
