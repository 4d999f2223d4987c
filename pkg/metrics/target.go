package metrics

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"
)

// Target is one model server to scrape.
type Target struct {
	Name    string
	URL     string
	Dialect *Dialect
	// Model, when set, is the model of every series of the target,
	// whatever model label the server puts on them: a static target's
	// model, a pod's infercast.io/model annotation. Explicit, so it wins.
	Model string
	// DefaultModel is the model of the series that carry no model label of
	// their own (none of the dialect's ModelLabels), when Model is empty:
	// a pod's app.kubernetes.io/name label, which most charts set whatever
	// the pod serves, so it never renames a server's own models; a static
	// target's name where its dialect's series carry no model label (TGI).
	// Series with neither are model "unknown".
	DefaultModel    string
	MaxBatchSize    int
	BearerTokenFile string
	Timeout         time.Duration
	// Source says where the target came from: "static" or "kubernetes".
	Source string
}

// Target sources.
const (
	SourceStatic     = "static"
	SourceKubernetes = "kubernetes"
)

// ColdStart sources, the values of the source label.
const (
	ColdStartProcessRestart = "process_restart"
)

// targetState is everything known about one target. Only the cycle's
// goroutine for this target touches it while a scrape runs.
type targetState struct {
	t         Target
	ing       *ingester
	buf       bytes.Buffer
	series    map[string]*modelSeries
	scratch   []slot
	lastStart float64

	// Results of the last scrape, read by the aggregation after the cycle.
	up         bool
	duration   time.Duration
	stats      ingestStats
	lastErr    error
	errCounts  map[string]float64 // by reason
	coldStarts []coldStart
	models     []modelResult
	// served are the models of the last successful scrape that read any,
	// sorted: kept through failed scrapes and scrapes that read none, for
	// as long as the target's state lives (Exporter.ServedModels).
	served []string
	// unread: the last successful scrape's body held samples but none of
	// the names the dialect reads (a wrong dialect, or a server that
	// renamed its metrics); warned once until it reads again.
	unread bool
}

// modelResult is one model seen by the last successful scrape.
type modelResult struct {
	model  string
	series *modelSeries
}

type coldStart struct {
	model    string
	duration time.Duration
}

func newTargetState(t Target) *targetState {
	ing := newIngester()
	ing.fallback = t.DefaultModel
	return &targetState{t: t, ing: ing, series: map[string]*modelSeries{}, errCounts: map[string]float64{}}
}

// scrape fetches and ingests the target once. Failures are recorded on the
// state (up=0, the error counted by reason); history is kept so a target
// that comes back continues its windows.
func (s *targetState) scrape(ctx context.Context, client *http.Client, limit int64, now func() time.Time, windows []time.Duration) {
	start := now()
	ct, err := fetch(ctx, client, &s.t, limit, &s.buf)
	if errors.Is(err, errScrapeCancelled) {
		return // the target keeps the state of its last finished scrape
	}
	if err == nil {
		err = s.ingestBody(s.buf.Bytes(), ct, now(), windows)
	}
	s.duration = now().Sub(start)
	s.recordErr(err)
	if err != nil {
		// Only models of a successful scrape count towards this cycle.
		s.models = s.models[:0]
	}
	if s.buf.Cap() > 4<<20 {
		// Do not pin a huge buffer for one unusually large body.
		s.buf = bytes.Buffer{}
	}
}

func (s *targetState) recordErr(err error) {
	s.lastErr = err
	s.up = err == nil
	if err != nil {
		s.errCounts[reasonOf(err)]++
	}
}

// ingestBody parses a body and, only when it is entirely valid, commits it
// to the model histories; a bad body leaves the history untouched.
func (s *targetState) ingestBody(body []byte, contentType string, now time.Time, windows []time.Duration) error {
	s.coldStarts = s.coldStarts[:0]
	st, err := s.ing.ingest(body, contentType, s.t.Dialect, s.t.Model)
	s.stats = st
	if err != nil {
		return &scrapeError{reasonParse, err}
	}
	if st.duplicates > 0 || st.invalid > 0 {
		// Not fatal: the rest of the body is good. Counted by reason and
		// logged by the caller through lastErr-free warnings.
		s.errCounts["duplicate_series"] += float64(min(st.duplicates, 1))
		s.errCounts["invalid_value"] += float64(min(st.invalid, 1))
	}
	maxWindow := windows[len(windows)-1]
	restarted := false
	if ps := s.ing.processStart; ps > 0 {
		if s.lastStart > 0 && ps != s.lastStart {
			restarted = true
		}
		s.lastStart = ps
	}
	// Series gone for longer than the longest window are forgotten, as
	// models are below.
	s.ing.increases(restarted, now, maxWindow)
	// Forget models (before committing: a target back after a long gap starts
	// afresh rather than spanning it).
	for name, m := range s.series {
		if now.Sub(m.lastSeen) > maxWindow {
			delete(s.series, name)
		}
	}
	s.models = s.models[:0]
	for name, a := range s.ing.accs {
		if a.seen == 0 {
			continue
		}
		m := s.series[name]
		if m == nil {
			m = &modelSeries{}
			s.series[name] = m
		}
		m.commit(a, now, maxWindow, &s.scratch)
		// A discovered pod's restart is a container restart, which pod
		// discovery counts (with the kubelet's times); counting it here
		// too would count it twice.
		if restarted && s.t.Source != SourceKubernetes {
			d := now.Sub(time.Unix(0, int64(s.lastStart*1e9)))
			s.coldStarts = append(s.coldStarts, coldStart{model: name, duration: max(d, 0)})
		}
		m.computeWindows(now, windows)
		s.models = append(s.models, modelResult{model: name, series: m})
	}
	s.remember()
	return nil
}

// remember records the models of a scrape that read any as those the
// target serves, allocating only when they change.
func (s *targetState) remember() {
	if len(s.models) == 0 {
		return
	}
	same := len(s.models) == len(s.served) // the models are distinct
	for _, r := range s.models {
		if _, ok := slices.BinarySearch(s.served, r.model); !ok {
			same = false
			break
		}
	}
	if same {
		return
	}
	names := make([]string, 0, len(s.models))
	for _, r := range s.models {
		names = append(names, r.model)
	}
	slices.Sort(names)
	s.served = names // a new slice: published snapshots keep the old one
}

// computeWindows fills the series' stats for every window.
func (m *modelSeries) computeWindows(now time.Time, windows []time.Duration) {
	if len(m.ws) != len(windows) {
		m.ws = make([]windowStats, len(windows))
		m.wsOK = make([]bool, len(windows))
	}
	for w, d := range windows {
		m.wsOK[w] = m.stats(now, d, &m.ws[w])
	}
}

func (s *targetState) String() string { return fmt.Sprintf("%s(%s)", s.t.Name, s.t.URL) }
