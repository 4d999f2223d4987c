// Package spot watches the cloud's instance metadata for spot (preemptible)
// interruption notices — AWS IMDSv2 spot/instance-action, GCP
// instance/preempted, Azure Scheduled Events Preempt — and exports them as
// a notice gauge, the time left, and an interruptions counter. Sources
// that can also read early disruption warnings (Warner) and the instance's
// capacity type (CapacityTyper) have those exported beside them.
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

// Warning kinds: an announced disruption that is not (yet) a spot
// interruption.
const (
	// WarnRebalance is AWS's rebalance recommendation: a spot instance at
	// elevated risk of interruption.
	WarnRebalance = "rebalance"
	// WarnMaintenanceTerminate is GCP host maintenance that stops the VM
	// (always so for GPU VMs, which cannot live-migrate; 1 h notice for
	// them, 60 s for others).
	WarnMaintenanceTerminate = "maintenance_terminate"
	// WarnMaintenanceMigrate is GCP host maintenance that live-migrates
	// the VM (60 s notice).
	WarnMaintenanceMigrate = "maintenance_migrate"
	// WarnMaintenance is GCP host maintenance of a kind this version does
	// not know (Warning.Said, logged, has the metadata's word).
	WarnMaintenance = "maintenance"
	// WarnReboot, WarnRedeploy, WarnFreeze and WarnTerminate are Azure
	// Scheduled Events of those types; WarnOther one of a type (or an AWS
	// scheduled event of a code) this version does not know.
	WarnReboot    = "reboot"
	WarnRedeploy  = "redeploy"
	WarnFreeze    = "freeze"
	WarnTerminate = "terminate"
	WarnOther     = "other"
	// WarnInstanceReboot, WarnSystemReboot, WarnSystemMaintenance,
	// WarnInstanceRetirement and WarnInstanceStop are AWS scheduled events
	// of the codes instance-reboot (the instance is rebooted),
	// system-reboot (its host is), system-maintenance (network or power
	// maintenance: a brief loss of connectivity, or of power and a reboot),
	// instance-retirement (stopped, or terminated if instance-store
	// backed) and instance-stop (stopped, to start on another host).
	WarnInstanceReboot     = "instance_reboot"
	WarnSystemReboot       = "system_reboot"
	WarnSystemMaintenance  = "system_maintenance"
	WarnInstanceRetirement = "instance_retirement"
	WarnInstanceStop       = "instance_stop"
)

// StopsNode reports whether a warning of kind takes the node, and the
// model replicas on it, down: stopped, terminated, rebooted or moved to
// another host, each a cold start for the replicas wherever they start
// next. Not so: the rebalance recommendation (a risk, not an event), AWS
// system maintenance (maybe a brief loss of network only), GCP live
// migration, an Azure freeze (seconds) and the catch-alls of kinds this
// version does not know. The planner launches replacements ahead of these
// (cmd/adapter); the alert InfercastNodeDisruptionAnnounced fires for the
// same kinds but WarnTerminate, which on Azure is most often the owner's
// own scale-in of a drained node.
func StopsNode(kind string) bool {
	switch kind {
	case WarnMaintenanceTerminate, WarnInstanceStop, WarnInstanceRetirement, WarnInstanceReboot, WarnSystemReboot,
		WarnReboot, WarnRedeploy, WarnTerminate:
		return true
	}
	return false
}

// warningKinds are the kinds each provider's Warner announces, exported as
// 0 while not announced (like the notice); the catch-alls WarnMaintenance
// and WarnOther are exported only while announced.
var warningKinds = map[Provider][]string{
	AWS:   {WarnRebalance, WarnInstanceReboot, WarnSystemReboot, WarnSystemMaintenance, WarnInstanceRetirement, WarnInstanceStop},
	GCP:   {WarnMaintenanceTerminate, WarnMaintenanceMigrate},
	Azure: {WarnReboot, WarnRedeploy, WarnFreeze, WarnTerminate},
}

// Warning is one announced disruption of the instance.
type Warning struct {
	// Kind is one of the Warn constants.
	Kind string
	// Starts is when the disruption is to begin (AWS and Azure
	// NotBefore); zero when the provider does not say.
	Starts time.Time
	// Said is the metadata's own word for it, for the log.
	Said string
}

// Warner is a Source that also reads early disruption warnings. The
// Watcher polls it on the notice's tick but concurrently, under its own
// timeout, so a failing or hanging warning endpoint never delays the
// notice. None announced is (nil, nil). On an error the Watcher keeps the
// last known warnings, but for a *partialError: a Warner that reads several
// endpoints returns, when only some fail, what the others said with one,
// so a failing endpoint does not hide what another announces.
type Warner interface {
	Warnings(ctx context.Context, now time.Time) ([]Warning, error)
}

// partialError is a warning read of which some endpoints failed: the
// warnings returned beside it are those the others announce, and keep the
// kinds the failed ones announce (no kind of both), whose last known state
// the Watcher keeps. It counts as a failed read.
type partialError struct {
	keep []string
	err  error
}

func (e *partialError) Error() string { return e.err.Error() }
func (e *partialError) Unwrap() error { return e.err }

// CapacityType is how the instance is bought.
type CapacityType string

// Capacity types, the values of the capacity_type label (those of the
// planner's tier label and of karpenter.sh/capacity-type).
const (
	CapacitySpot     CapacityType = "spot"
	CapacityOnDemand CapacityType = "on-demand"
)

// CapacityTyper is a Source that reads the instance's capacity type from
// the metadata. said is the metadata's own word ("" when it has none); ct
// is "" when said is not one this version knows: nothing is exported then
// rather than a guess.
type CapacityTyper interface {
	CapacityType(ctx context.Context, now time.Time) (ct CapacityType, said string, err error)
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

// optional judges an answer where 404 means the metadata has none (no
// notice, no warning, a key this instance lacks): found is false then, and
// any other status but 200 is a status error naming what was read.
func optional(resp *http.Response, what string) (found bool, err error) {
	switch resp.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	}
	return false, &pollError{"status", fmt.Errorf("%s: HTTP %d", what, resp.StatusCode)}
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
	// CapacityRefresh is how often a known capacity type is read again
	// (default 1 h; it does not change in a VM's life). Until it is read
	// successfully it is retried at every poll.
	CapacityRefresh time.Duration
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

	// warnings are the kinds announced at the last successful warning
	// poll, each with its earliest start (zero when unknown).
	warnings map[string]Warning
	// capType is the capacity type last read ("" unknown); capRead when,
	// zero until a read succeeded.
	capType CapacityType
	capRead time.Time
	// extraErrs counts failed warning and capacity reads by endpoint and
	// reason; extraFail is each endpoint's last failure, logged once.
	extraErrs map[[2]string]float64
	extraFail map[string]string

	noticeDesc, remainingDesc, totalDesc, upDesc, errsDesc *prometheus.Desc
	warnDesc, warnStartDesc, capDesc, extraErrsDesc        *prometheus.Desc
}

// Endpoints of infercast_instance_metadata_errors_total.
const (
	endpointWarning  = "disruption_warning"
	endpointCapacity = "capacity_type"
)

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
	if o.CapacityRefresh <= 0 {
		o.CapacityRefresh = time.Hour
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	labels := []string{"provider", "node", "pool"}
	return &Watcher{
		o: o, log: log.With("provider", string(o.Source.Provider())), errs: map[string]float64{},
		extraErrs: map[[2]string]float64{}, extraFail: map[string]string{},
		noticeDesc:    prometheus.NewDesc("infercast_spot_interruption_notice", "1 while the metadata service announces an interruption of this instance, else 0.", labels, nil),
		remainingDesc: prometheus.NewDesc("infercast_spot_interruption_remaining_seconds", "Seconds until the announced interruption; present only while a notice is active and its time is known.", labels, nil),
		totalDesc:     prometheus.NewDesc("infercast_spot_interruptions_total", "Interruption notices seen since the exporter started, one per distinct notice.", labels, nil),
		upDesc:        prometheus.NewDesc("infercast_spot_metadata_up", "1 when the last poll of the metadata service succeeded, else 0.", labels, nil),
		errsDesc:      prometheus.NewDesc("infercast_spot_metadata_errors_total", "Failed polls of the metadata service, by reason (timeout, transport, status, parse).", append(labels, "reason"), nil),
		warnDesc: prometheus.NewDesc("infercast_instance_disruption_warning",
			"1 while the metadata service announces a disruption of this instance that is not (yet) a spot interruption, else 0, by kind (aws: rebalance, and the scheduled events instance_reboot, system_reboot, system_maintenance, instance_retirement, instance_stop; gcp: maintenance_terminate, maintenance_migrate; azure: reboot, redeploy, freeze, terminate; the catch-alls for a kind this version does not know, maintenance (gcp) and other (aws, azure), only while announced).",
			append(labels, "kind"), nil),
		warnStartDesc: prometheus.NewDesc("infercast_instance_disruption_warning_start_timestamp_seconds",
			"Unix time the announced disruption begins, the earliest of a kind's events; present only while it is announced and the provider says when for each of them (AWS scheduled events and Azure: NotBefore; an Azure event already Started has none).",
			append(labels, "kind"), nil),
		capDesc: prometheus.NewDesc("infercast_instance_capacity_type",
			"1 for the capacity type (spot, on-demand) the metadata service says this instance is; absent when it does not say or says something else.",
			append(labels, "capacity_type"), nil),
		extraErrsDesc: prometheus.NewDesc("infercast_instance_metadata_errors_total",
			"Failed reads of the disruption warnings and the capacity type from the metadata service, by endpoint (disruption_warning, capacity_type) and reason (timeout, transport, status, parse).",
			append(labels, "endpoint", "reason"), nil),
	}, nil
}

// Poll asks the metadata service once: for the interruption notice and,
// where the source reads them, the disruption warnings and (when due) the
// capacity type. The three go concurrently, each within the watcher's
// timeout, so a failing or hanging warning or capacity endpoint never
// delays the notice. It returns the notice poll's error; the others'
// failures are counted (infercast_instance_metadata_errors_total), logged,
// and keep their last known state.
func (w *Watcher) Poll(ctx context.Context) error {
	var wg sync.WaitGroup
	if wr, ok := w.o.Source.(Warner); ok {
		wg.Go(func() { w.pollWarnings(ctx, wr) })
	}
	if ct, ok := w.o.Source.(CapacityTyper); ok && w.capacityDue() {
		wg.Go(func() { w.pollCapacity(ctx, ct) })
	}
	err := w.pollNotice(ctx)
	wg.Wait()
	return err
}

// pollNotice asks for the interruption notice, within the watcher's timeout.
func (w *Watcher) pollNotice(ctx context.Context) error {
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

// pollWarnings reads the disruption warnings, within the watcher's
// timeout. On failure the last known warnings stay (like the notice); on a
// partial failure only those of the kinds the failed endpoints announce.
func (w *Watcher) pollWarnings(ctx context.Context, wr Warner) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	ws, err := wr.Warnings(ctx, w.o.Now())
	var keep []string
	if err != nil {
		w.extraFailed(endpointWarning, err)
		var pe *partialError
		if !errors.As(err, &pe) {
			return
		}
		keep = pe.keep
	}
	// A kind starts at the earliest of its events, or at an unknown time if
	// one of them has none (an Azure event already Started has no
	// NotBefore): unknown may be now.
	announced := make(map[string]Warning, len(ws))
	for _, wn := range ws {
		if a, seen := announced[wn.Kind]; !seen || (!a.Starts.IsZero() && (wn.Starts.IsZero() || wn.Starts.Before(a.Starts))) {
			announced[wn.Kind] = wn
		}
	}
	w.mu.Lock()
	before := w.warnings
	for _, kind := range keep {
		delete(announced, kind)
		if wn, was := before[kind]; was {
			announced[kind] = wn
		}
	}
	w.warnings = announced
	if err == nil {
		delete(w.extraFail, endpointWarning)
	}
	w.mu.Unlock()
	for kind, wn := range announced {
		if _, was := before[kind]; !was {
			w.log.Warn("spot: disruption warning", "kind", kind, "said", truncate(wn.Said), "starts", wn.Starts)
		}
	}
	for kind := range before {
		if _, is := announced[kind]; !is {
			w.log.Info("spot: disruption warning cleared", "kind", kind)
		}
	}
}

// capacityDue reports whether the capacity type is to be read: never read
// successfully yet, or last read CapacityRefresh ago.
func (w *Watcher) capacityDue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.capRead.IsZero() || w.o.Now().Sub(w.capRead) >= w.o.CapacityRefresh
}

// pollCapacity reads the capacity type, within the watcher's timeout. On
// failure the last known one stays and the next poll tries again.
func (w *Watcher) pollCapacity(ctx context.Context, c CapacityTyper) {
	ctx, cancel := context.WithTimeout(ctx, w.o.Timeout)
	defer cancel()
	ct, said, err := c.CapacityType(ctx, w.o.Now())
	if err != nil {
		w.extraFailed(endpointCapacity, err)
		return
	}
	w.mu.Lock()
	changed := ct != w.capType || w.capRead.IsZero()
	w.capType, w.capRead = ct, w.o.Now()
	delete(w.extraFail, endpointCapacity)
	w.mu.Unlock()
	switch {
	case !changed:
	case ct == "" && said != "":
		w.log.Info("spot: capacity type unknown, not exported", "said", truncate(said))
	case ct == "":
		w.log.Info("spot: the metadata service does not say the capacity type")
	default:
		w.log.Info("spot: capacity type", "capacity_type", string(ct))
	}
}

// extraFailed counts and logs a failed warning or capacity read (once per
// distinct error, then at debug).
func (w *Watcher) extraFailed(endpoint string, err error) {
	reason := classify(err)
	msg := err.Error()
	w.mu.Lock()
	w.extraErrs[[2]string{endpoint, reason}]++
	first := w.extraFail[endpoint] != msg
	w.extraFail[endpoint] = msg
	w.mu.Unlock()
	level := slog.LevelDebug
	if first {
		level = slog.LevelWarn
	}
	w.log.Log(context.Background(), level, "spot: reading metadata failed", "endpoint", endpoint, "reason", reason, "err", err)
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
	ch <- w.warnDesc
	ch <- w.warnStartDesc
	ch <- w.capDesc
	ch <- w.extraErrsDesc
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
	for _, reason := range reasons {
		ch <- prometheus.MustNewConstMetric(w.errsDesc, prometheus.CounterValue, w.errs[reason], append(lv, reason)...)
	}
	var endpoints []string
	if _, ok := w.o.Source.(Warner); ok {
		endpoints = append(endpoints, endpointWarning)
		for _, kind := range warningKinds[w.o.Source.Provider()] {
			if _, on := w.warnings[kind]; !on {
				ch <- prometheus.MustNewConstMetric(w.warnDesc, prometheus.GaugeValue, 0, append(lv, kind)...)
			}
		}
	}
	for kind, wn := range w.warnings {
		ch <- prometheus.MustNewConstMetric(w.warnDesc, prometheus.GaugeValue, 1, append(lv, kind)...)
		if !wn.Starts.IsZero() {
			ch <- prometheus.MustNewConstMetric(w.warnStartDesc, prometheus.GaugeValue, float64(wn.Starts.UnixMilli())/1e3, append(lv, kind)...)
		}
	}
	if w.capType != "" {
		ch <- prometheus.MustNewConstMetric(w.capDesc, prometheus.GaugeValue, 1, append(lv, string(w.capType))...)
	}
	if _, ok := w.o.Source.(CapacityTyper); ok {
		endpoints = append(endpoints, endpointCapacity)
	}
	for _, ep := range endpoints {
		for _, reason := range reasons {
			ch <- prometheus.MustNewConstMetric(w.extraErrsDesc, prometheus.CounterValue, w.extraErrs[[2]string{ep, reason}], append(lv, ep, reason)...)
		}
	}
}

// reasons are the errors counters' reason label values.
var reasons = []string{"timeout", "transport", "status", "parse"}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
