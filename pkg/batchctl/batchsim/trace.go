// Package batchsim replays a per-request trace through a discrete-event
// model of one dynamic batcher on one GPU, under fixed knobs or driven by
// the batch controller, and measures latency, SLO attainment, GPU busy time
// and goodput. It backs `adapter batch-sim`.
package batchsim

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
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

// LoadTraceFile reads a trace file: Azure LLM inference CSV
// (TIMESTAMP,ContextTokens,GeneratedTokens with datetime timestamps) or
// Mooncake JSON lines ({"timestamp": ms, ...}), told apart by content.
func LoadTraceFile(path string) (Trace, error) {
	f, err := os.Open(path)
	if err != nil {
		return Trace{}, err
	}
	defer f.Close()
	tr, err := ReadTrace(f)
	if err != nil {
		return Trace{}, fmt.Errorf("%s: %w", path, err)
	}
	tr.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return tr, nil
}

// ReadTrace parses a trace in either supported format.
func ReadTrace(r io.Reader) (Trace, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	first, err := br.Peek(1)
	if err != nil {
		return Trace{}, fmt.Errorf("empty trace: %w", err)
	}
	var ts []float64
	if first[0] == '{' {
		ts, err = readJSONLines(br)
	} else {
		ts, err = readAzureCSV(br)
	}
	if err != nil {
		return Trace{}, err
	}
	if len(ts) == 0 {
		return Trace{}, errors.New("trace has no requests")
	}
	slices.Sort(ts) // the files are in order; sorting guards a shuffled one
	t0 := ts[0]
	for i := range ts {
		ts[i] -= t0
	}
	return Trace{Arrivals: ts}, nil
}

// azureLayouts are the timestamp forms in the Azure trace (7 fractional
// digits, sometimes fewer).
var azureLayouts = []string{"2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05"}

func readAzureCSV(r io.Reader) ([]float64, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	head, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("reading header: %w", err)
	}
	col := slices.IndexFunc(head, func(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "TIMESTAMP") })
	if col < 0 {
		return nil, fmt.Errorf("header %q has no TIMESTAMP column", strings.Join(head, ","))
	}
	var ts []float64
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if err == io.EOF {
			return ts, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if col >= len(rec) {
			return nil, fmt.Errorf("line %d: no TIMESTAMP field", line)
		}
		var t time.Time
		for _, layout := range azureLayouts {
			if t, err = time.Parse(layout, strings.TrimSpace(rec[col])); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: timestamp %q: %w", line, rec[col], err)
		}
		ts = append(ts, float64(t.UnixNano())/1e9)
	}
}

func readJSONLines(r *bufio.Reader) ([]float64, error) {
	dec := json.NewDecoder(r)
	var ts []float64
	for n := 1; ; n++ {
		var rec struct {
			Timestamp *json.Number `json:"timestamp"`
		}
		if err := dec.Decode(&rec); err == io.EOF {
			return ts, nil
		} else if err != nil {
			return nil, fmt.Errorf("record %d: %w", n, err)
		}
		if rec.Timestamp == nil {
			return nil, fmt.Errorf("record %d: no timestamp", n)
		}
		ms, err := strconv.ParseFloat(rec.Timestamp.String(), 64)
		if err != nil {
			return nil, fmt.Errorf("record %d: timestamp %q: %w", n, rec.Timestamp, err)
		}
		ts = append(ts, ms/1000)
	}
}
