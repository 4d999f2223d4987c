package metrics

import (
	"maps"
	"slices"
	"strings"
)

// Signal is one normalised quantity that infercast reads from a model
// server, whatever the server calls it.
type Signal uint8

// The signals. Counters and histograms are windowed; gauges are exported as
// last seen.
const (
	SigRequests     Signal = iota // counter: completed requests
	SigBatchItems                 // counter: inferences executed (Triton nv_inference_count)
	SigBatchExecs                 // counter: batch executions (Triton nv_inference_exec_count)
	SigLatencyTotal               // counter: seconds spent on requests (Triton)
	SigQueueTotal                 // counter: seconds spent queued (Triton)
	SigClumpSizeSum               // counter: summed over arrivals, the size of the clump each arrived in (a gateway's or request log's)
	SigWaiting                    // gauge: requests waiting in the queue
	SigRunning                    // gauge: requests being processed
	SigKVCache                    // gauge: KV-cache usage, 0–1
	SigBatchSize                  // gauge: current batch size
	SigProcessStart               // gauge: process start time, Unix seconds
	SigLatency                    // histogram: end-to-end request latency
	SigTTFT                       // histogram: time to first token
	SigTPOT                       // histogram: time per output token
	SigQueueTime                  // histogram: time spent queued
	numSignals
)

const (
	firstCounter = SigRequests
	numCounters  = SigClumpSizeSum + 1
	firstHist    = SigLatency
	numHists     = int(numSignals - SigLatency)
)

func (s Signal) isHist() bool    { return s >= SigLatency }
func (s Signal) isCounter() bool { return s <= SigClumpSizeSum }

// part says which sample of a family a name is.
type part uint8

const (
	partValue part = iota
	partBucket
	partSum
	partCount
)

// rule maps one exposed sample name onto a signal.
type rule struct {
	sig  Signal
	part part
	// prio orders names for the same signal: when a server exposes both an
	// old and a new name (vLLM's deprecation periods do), only the
	// lowest prio seen is used, never the sum of both. It is the dialect's
	// priority doubled; a counter's spelling without _total gets the odd
	// value after it (see scaledCounter).
	prio uint8
	// scale converts the server's unit to seconds (bucket bounds and sums of
	// histograms, values of duration counters).
	scale float64
	// requests: a histogram's _count that is also the server's only count
	// of finished requests (Knative's queue-proxy since OpenTelemetry).
	requests bool
}

// Dialect knows how one kind of model server names its metrics.
type Dialect struct {
	Name string
	// ModelLabels are label names that carry the model, first non-empty wins.
	ModelLabels []string
	rules       map[string]rule
}

// Dialect names.
const (
	DialectVLLM       = "vllm"
	DialectTriton     = "triton"
	DialectTGI        = "tgi"
	DialectSGLang     = "sglang"
	DialectRayServe   = "rayserve"
	DialectQueueProxy = "queueproxy"
	DialectGeneric    = "generic"
)

var builtinDialects = map[string]func() *Dialect{
	DialectVLLM:       vllmDialect,
	DialectTriton:     tritonDialect,
	DialectTGI:        tgiDialect,
	DialectSGLang:     sglangDialect,
	DialectRayServe:   rayServeDialect,
	DialectQueueProxy: queueProxyDialect,
}

// DialectNames lists the dialects a target may name.
func DialectNames() []string {
	n := slices.Collect(maps.Keys(builtinDialects))
	n = append(n, DialectGeneric)
	slices.Sort(n)
	return n
}

// BuiltinDialect returns a built-in dialect by name.
func BuiltinDialect(name string) (*Dialect, bool) {
	f, ok := builtinDialects[name]
	if !ok {
		return nil, false
	}
	return f(), true
}

func newDialect(name string, modelLabels ...string) *Dialect {
	d := &Dialect{Name: name, ModelLabels: modelLabels, rules: map[string]rule{}}
	// Every server dialect gets the standard process collector's start time,
	// used to see restarts of static targets.
	d.gauge("process_start_time_seconds", SigProcessStart, 0)
	return d
}

func (d *Dialect) counter(name string, s Signal, prio uint8) *Dialect {
	return d.scaledCounter(name, s, prio, 1)
}

func (d *Dialect) scaledCounter(name string, s Signal, prio uint8, scale float64) *Dialect {
	d.rules[name] = rule{sig: s, part: partValue, prio: 2 * prio, scale: scale}
	// OpenMetrics exposes counters with _total; text exposition sometimes
	// without. Accept the other spelling too, but only where the _total one
	// is absent: Ray ≥ 2.10 exports every counter both as <name>_total and
	// as a deprecated gauge <name> with the same value, which summed would
	// double the count.
	if alt, ok := strings.CutSuffix(name, "_total"); ok {
		if _, taken := d.rules[alt]; !taken {
			d.rules[alt] = rule{sig: s, part: partValue, prio: 2*prio + 1, scale: scale}
		}
	}
	return d
}

func (d *Dialect) gauge(name string, s Signal, prio uint8) *Dialect {
	d.rules[name] = rule{sig: s, part: partValue, prio: 2 * prio, scale: 1}
	return d
}

// histogram registers name_bucket, name_sum and name_count; scale converts
// the server's unit (ms, µs) to seconds.
func (d *Dialect) histogram(name string, s Signal, prio uint8, scale float64) *Dialect {
	d.rules[name+"_bucket"] = rule{sig: s, part: partBucket, prio: 2 * prio, scale: scale}
	d.rules[name+"_sum"] = rule{sig: s, part: partSum, prio: 2 * prio, scale: scale}
	d.rules[name+"_count"] = rule{sig: s, part: partCount, prio: 2 * prio, scale: 1}
	return d
}

// countingHistogram is histogram for a server whose only count of finished
// requests is the histogram's _count.
func (d *Dialect) countingHistogram(name string, s Signal, prio uint8, scale float64) *Dialect {
	d.histogram(name, s, prio, scale)
	r := d.rules[name+"_count"]
	r.requests = true
	d.rules[name+"_count"] = r
	return d
}

// Names returns the sample names the dialect reads, sorted.
func (d *Dialect) Names() []string {
	n := slices.Collect(maps.Keys(d.rules))
	slices.Sort(n)
	return n
}

// GenericDialect builds a dialect from a mapping declared in the config.
func GenericDialect(name string, m GenericConfig) *Dialect {
	d := newDialect(DialectGeneric + ":" + name)
	if m.ModelLabel != "" {
		d.ModelLabels = []string{m.ModelLabel}
	}
	scale := m.HistogramUnitSeconds
	if scale == 0 {
		scale = 1
	}
	if m.RequestsTotal != "" {
		d.counter(m.RequestsTotal, SigRequests, 0)
	}
	if m.RequestClumpSizeSumTotal != "" {
		d.counter(m.RequestClumpSizeSumTotal, SigClumpSizeSum, 0)
	}
	for _, g := range []struct {
		n string
		s Signal
	}{{m.QueueWaiting, SigWaiting}, {m.Running, SigRunning}, {m.KVCacheUsageRatio, SigKVCache}, {m.BatchSize, SigBatchSize}} {
		if g.n != "" {
			d.gauge(g.n, g.s, 0)
		}
	}
	for _, h := range []struct {
		n string
		s Signal
	}{{m.RequestLatency, SigLatency}, {m.TimeToFirstToken, SigTTFT}, {m.TimePerOutputToken, SigTPOT}, {m.QueueTime, SigQueueTime}} {
		if h.n != "" {
			d.histogram(h.n, h.s, 0, scale)
		}
	}
	return d
}
