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
	"math"
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
// Errors name the file and the line, as path:line: problem.
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

// maxSpanSeconds bounds a trace's span (over three years, as pkg/sim
// bounds the traces it counts): a longer one is a typo in a timestamp, and
// would take as long to replay.
const maxSpanSeconds = 100_000_000

// ReadTrace parses a trace in either supported format; name labels errors
// (name:line: problem). A UTF-8 byte order mark is skipped.
func ReadTrace(name string, r io.Reader) (Trace, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	first, err := br.Peek(1)
	if err != nil {
		return Trace{}, fmt.Errorf("%s: empty trace: want an Azure LLM inference CSV or Mooncake JSON lines", name)
	}
	var ts []stamp
	if first[0] == '{' {
		ts, err = readJSONLines(name, br)
	} else {
		ts, err = readAzureCSV(name, br)
	}
	if err != nil {
		return Trace{}, err
	}
	if len(ts) == 0 {
		return Trace{}, fmt.Errorf("%s: trace has no requests", name)
	}
	lo, hi := ts[0], ts[0]
	for _, t := range ts {
		if t.at < lo.at {
			lo = t
		}
		if t.at > hi.at {
			hi = t
		}
	}
	if span := hi.at - lo.at; span > maxSpanSeconds {
		return Trace{}, fmt.Errorf("%s:%d: timestamp %s is %.3g s after the earliest request's (line %d): a trace over 3 years (%.0e s) is a typo",
			name, hi.line, hi.raw, span, lo.line, float64(maxSpanSeconds))
	}
	out := make([]float64, len(ts))
	for i, t := range ts {
		out[i] = t.at - lo.at
	}
	slices.Sort(out) // the files are in order; sorting guards a shuffled one
	return Trace{Arrivals: out}, nil
}

// stamp is a request's arrival time in seconds, the line it is on, and
// the time as the file writes it.
type stamp struct {
	at   float64
	line int
	raw  string
}

// azureLayouts are the timestamp forms in the Azure trace (7 fractional
// digits, sometimes fewer).
var azureLayouts = []string{"2006-01-02 15:04:05.999999999", "2006-01-02 15:04:05"}

func readAzureCSV(name string, r io.Reader) ([]stamp, error) {
	cr := csv.NewReader(r)
	cr.ReuseRecord = true
	cr.FieldsPerRecord = -1
	lineErr := func(err error) error {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return fmt.Errorf("%s:%d: %w", name, pe.Line, pe.Err)
		}
		return fmt.Errorf("%s: %w", name, err)
	}
	head, err := cr.Read()
	if err != nil {
		return nil, lineErr(err)
	}
	if h := strings.ReplaceAll(strings.Join(head, ","), " ", ""); strings.EqualFold(h, "timestamp,requests") {
		return nil, fmt.Errorf("%s:1: a timestamp,requests trace counts requests per interval: batch-sim replays a per-request trace (an Azure LLM inference CSV with a TIMESTAMP column, or Mooncake JSON lines with a \"timestamp\" in milliseconds)", name)
	}
	col := slices.IndexFunc(head, func(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "TIMESTAMP") })
	if col < 0 {
		return nil, fmt.Errorf("%s:1: header %q has no TIMESTAMP column (want an Azure LLM inference CSV or Mooncake JSON lines)", name, strings.Join(head, ","))
	}
	var ts []stamp
	for {
		rec, err := cr.Read()
		if err == io.EOF && len(ts) == 0 {
			return nil, fmt.Errorf("%s:1: no requests after the header", name)
		}
		if err == io.EOF {
			return ts, nil
		}
		if err != nil {
			return nil, lineErr(err)
		}
		line, _ := cr.FieldPos(0)
		if col >= len(rec) {
			return nil, fmt.Errorf("%s:%d: no TIMESTAMP field (column %d)", name, line, col+1)
		}
		var t time.Time
		for _, layout := range azureLayouts {
			if t, err = time.Parse(layout, strings.TrimSpace(rec[col])); err == nil {
				break
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s:%d: TIMESTAMP %q is not a \"2006-01-02 15:04:05.999\" time", name, line, rec[col])
		}
		ts = append(ts, stamp{float64(t.UnixNano()) / 1e9, line, strconv.Quote(rec[col])})
	}
}

func readJSONLines(name string, r io.Reader) ([]stamp, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var ts []stamp
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		var rec struct {
			Timestamp *json.Number `json:"timestamp"`
		}
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fmt.Errorf("%s:%d: not a JSON object: %v", name, line, err)
			}
			return nil, fmt.Errorf("%s:%d: want a non-negative \"timestamp\" in milliseconds: %v", name, line, err)
		}
		if rec.Timestamp == nil {
			return nil, fmt.Errorf("%s:%d: want a non-negative \"timestamp\" in milliseconds", name, line)
		}
		ms, err := strconv.ParseFloat(rec.Timestamp.String(), 64)
		if err != nil || ms < 0 || math.IsInf(ms, 0) {
			return nil, fmt.Errorf("%s:%d: timestamp %s: want a non-negative \"timestamp\" in milliseconds", name, line, rec.Timestamp)
		}
		ts = append(ts, stamp{ms / 1000, line, rec.Timestamp.String()})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return ts, nil
}
