// Package spot watches the cloud's instance metadata for spot (preemptible)
// interruption notices — AWS IMDSv2 spot/instance-action, GCP
// instance/preempted, Azure Scheduled Events Preempt — and exports them as
// a notice gauge, the time left, and an interruptions counter.
package spot

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Provider is a cloud whose metadata service a Watcher polls.
type Provider string

// Providers.
const (
	AWS   Provider = "aws"
	GCP   Provider = "gcp"
	Azure Provider = "azure"
	// None disables watching (on-premises, or on-demand only).
	None Provider = "none"
)

// Notice is the state of the instance as its metadata service reports it.
type Notice struct {
	// Active is true while an interruption is announced.
	Active bool
	// Terminates is when the instance goes away; zero when unknown.
	Terminates time.Time
	// Action is the provider's word for it: terminate, stop, hibernate,
	// preempted, Preempt.
	Action string
	// ID tells one interruption from the next (AWS time, Azure EventId),
	// so a notice seen on many polls counts once.
	ID string
}

// Source polls one provider's metadata service once.
type Source interface {
	Provider() Provider
	Poll(ctx context.Context, now time.Time) (Notice, error)
}

// metadataClient is the HTTP client the sources share: no proxy (the
// metadata address is link-local), no redirects, bounded bodies.
func metadataClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           (&net.Dialer{Timeout: 2 * time.Second}).DialContext,
			ResponseHeaderTimeout: 5 * time.Second,
			MaxIdleConns:          2,
			IdleConnTimeout:       30 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// maxBody bounds what a metadata answer may be; real ones are < 4 KiB.
const maxBody = 64 << 10

func readBody(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxBody {
		return nil, &pollError{reason: "parse", err: fmt.Errorf("body larger than %d bytes", maxBody)}
	}
	return b, nil
}

// metadataDo sends one request to a metadata service and returns its
// response (body already closed) and the body, read up to maxBody. The
// status is the caller's to judge: each provider answers differently.
func metadataDo(ctx context.Context, c *http.Client, method, url string, header map[string]string) (*http.Response, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := readBody(resp.Body)
	if err != nil {
		return nil, nil, err
	}
	return resp, body, nil
}

// pollError classifies a failed poll for the errors counter.
type pollError struct {
	reason string // timeout, transport, status, parse
	err    error
}

func (e *pollError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *pollError) Unwrap() error { return e.err }

func classify(err error) string {
	var pe *pollError
	switch {
	case errors.As(err, &pe):
		return pe.reason
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return "timeout"
		}
		return "transport"
	}
}

// Options configure a Watcher.
type Options struct {
	Source Source
	// Node and Pool label the series (the node name, its node pool).
	Node, Pool string
	// Interval between polls (default 5 s: AWS gives 2 min notice, GCP 30 s).
	Interval time.Duration
	// Timeout of one poll (default 2 s).
	Timeout time.Duration
	// OnNotice is called once per new interruption, from the polling
	// goroutine; optional.
	OnNotice func(Notice)
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Watcher polls a Source and is a prometheus.Collector of what it saw.
type Watcher struct {
	o   Options
	log *slog.Logger

	mu       sync.Mutex
	polled   bool
	up       bool
	notice   Notice
	lastID   string
	count    float64
	errs     map[string]float64
	lastFail string

	noticeDesc, remainingDesc, totalDesc, upDesc, errsDesc *prometheus.Desc
}

// NewWatcher builds a watcher; Run polls.
func NewWatcher(o Options) (*Watcher, error) {
	if o.Source == nil {
		return nil, errors.New("spot: no source")
	}
	if o.Interval <= 0 {
		o.Interval = 5 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 2 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := []string{"provider", "node", "pool"}
	return &Watcher{
		o: o, log: log.With("provider", string(o.Source.Provider())), errs: map[string]float64{},
		noticeDesc:    prometheus.NewDesc("infercast_spot_interruption_notice", "1 while the metadata service announces an interruption of this instance, else 0.", labels, nil),
		remainingDesc: prometheus.NewDesc("infercast_spot_interruption_remaining_seconds", "Seconds until the announced interruption; present only while a notice is active and its time is known.", labels, nil),
		totalDesc:     prometheus.NewDesc("infercast_spot_interruptions_total", "Interruption notices seen since the exporter started, one per distinct notice.", labels, nil),
		upDesc:        prometheus.NewDesc("infercast_spot_metadata_up", "1 when the last poll of the metadata service succeeded, else 0.", labels, nil),
		errsDesc:      prometheus.NewDesc("infercast_spot_metadata_errors_total", "Failed polls of the metadata service, by reason (timeout, transport, status, parse).", append(labels, "reason"), nil),
	}, nil
}

// Poll asks the metadata service once, within the watcher's timeout.
func (w *Watcher) Poll(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	n, err := w.o.Source.Poll(ctx, w.o.Now())
	w.mu.Lock()
	w.polled = true
	if err != nil {
		reason := classify(err)
		w.up = false
		w.errs[reason]++
		msg := err.Error()
		first := msg != w.lastFail
		w.lastFail = msg
		w.mu.Unlock()
		// Keep the last known notice: a metadata service that fails while
		// a notice is active does not cancel the interruption.
		if first {
			w.log.Warn("spot: polling metadata failed", "reason", reason, "err", err)
		} else {
			w.log.Debug("spot: polling metadata failed", "reason", reason, "err", err)
		}
		return err
	}
	w.up, w.lastFail = true, ""
	w.notice = n
	isNew := n.Active && n.ID != w.lastID
	if isNew {
		w.lastID = n.ID
		w.count++
	}
	w.mu.Unlock()
	if isNew {
		w.log.Warn("spot: interruption notice", "action", n.Action, "terminates", n.Terminates, "id", n.ID)
		if w.o.OnNotice != nil {
			w.o.OnNotice(n)
		}
	}
	return nil
}

// Run polls every Interval until ctx ends. Failures are logged and
// exported; they never stop the loop.
func (w *Watcher) Run(ctx context.Context) error {
	t := time.NewTicker(w.o.Interval)
	defer t.Stop()
	for {
		_ = w.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Describe implements prometheus.Collector.
func (w *Watcher) Describe(ch chan<- *prometheus.Desc) {
	ch <- w.noticeDesc
	ch <- w.remainingDesc
	ch <- w.totalDesc
	ch <- w.upDesc
	ch <- w.errsDesc
}

// Collect implements prometheus.Collector.
func (w *Watcher) Collect(ch chan<- prometheus.Metric) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lv := []string{string(w.o.Source.Provider()), w.o.Node, w.o.Pool}
	ch <- prometheus.MustNewConstMetric(w.noticeDesc, prometheus.GaugeValue, b2f(w.notice.Active), lv...)
	if w.notice.Active && !w.notice.Terminates.IsZero() {
		left := max(w.notice.Terminates.Sub(w.o.Now()).Seconds(), 0)
		ch <- prometheus.MustNewConstMetric(w.remainingDesc, prometheus.GaugeValue, left, lv...)
	}
	ch <- prometheus.MustNewConstMetric(w.totalDesc, prometheus.CounterValue, w.count, lv...)
	ch <- prometheus.MustNewConstMetric(w.upDesc, prometheus.GaugeValue, b2f(w.up), lv...)
	for _, reason := range []string{"timeout", "transport", "status", "parse"} {
		ch <- prometheus.MustNewConstMetric(w.errsDesc, prometheus.CounterValue, w.errs[reason], append(lv, reason)...)
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
