// Package batchsim replays a per-request trace through a discrete-event
// model of one dynamic batcher on one GPU, under fixed knobs or driven by
// the batch controller, and measures latency, SLO attainment, GPU busy time
// and goodput. It backs `adapter batch-sim`.
package batchsim

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/infercast/infercast/internal/reqtrace"
)

// Trace is the arrival times of a per-request trace, in seconds from its
// first request, ascending.
type Trace struct {
	Name     string
	Arrivals []float64
}

// Span is the time from the first to the last arrival.
func (t Trace) Span() float64 {
	if len(t.Arrivals) == 0 {
		return 0
	}
	return t.Arrivals[len(t.Arrivals)-1] - t.Arrivals[0]
}

// Rate is the mean arrival rate in requests per second.
func (t Trace) Rate() float64 {
	if s := t.Span(); s > 0 {
		return float64(len(t.Arrivals)) / s
	}
	return 0
}

// LoadTraceFile reads a per-request trace file: an Azure LLM inference CSV
// or Mooncake JSON lines (internal/reqtrace). Errors name the file and the
// line, as path:line: problem.
func LoadTraceFile(path string) (Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return Trace{}, err
	}
	defer f.Close()
	tr, err := ReadTrace(path, f)
	if err != nil {
		return Trace{}, err
	}
	tr.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return tr, nil
}

// ReadTrace parses a per-request trace in either layout internal/reqtrace
// knows; name labels errors (name:line: problem).
func ReadTrace(name string, r io.Reader) (Trace, error) {
	at, err := reqtrace.Read(name, r)
	if err != nil {
		return Trace{}, err
	}
	lo := reqtrace.Earliest(at).At
	out := make([]float64, len(at))
	for i, a := range at {
		out[i] = a.At.Sub(lo).Seconds()
	}
	slices.Sort(out) // the files are in order; sorting guards a shuffled one
	return Trace{Arrivals: out}, nil
}
