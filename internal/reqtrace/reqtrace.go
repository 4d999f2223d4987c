// Package reqtrace reads per-request traces: one line per request with its
// arrival time. Two layouts are known, told apart by their first line: the
// Azure LLM inference traces (a CSV with a TIMESTAMP column of
// "2006-01-02 15:04:05.9999999" UTC times) and the Mooncake traces (JSON
// lines with a "timestamp" in milliseconds). The backtest counts them into
// intervals (pkg/sim) and batch-sim replays them request by request
// (pkg/batchctl/batchsim); both read them here, so both accept and refuse
// the same files with the same messages.
package reqtrace

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Arrival is one request: when it arrived, and the line of the file it is
// on (for messages).
type Arrival struct {
	At   time.Time
	Line int
}

// MaxSpan bounds the time from a trace's first request to its last (over
// three years): a longer one is a typo in a timestamp, and would take as
// long to count or replay.
const MaxSpan = 100_000_000 * time.Second

// maxMillis bounds the millisecond timestamps of JSON lines: the latest
// whose offset from 1970 a time.Duration holds (2262).
const maxMillis = float64(math.MaxInt64 / int64(time.Millisecond))

// azureLayout is the Azure traces' time format (UTC); the fraction, of up
// to 7 digits there, may be absent.
const azureLayout = "2006-01-02 15:04:05.999999999"

// IsPerRequest reports whether a file whose first line is firstLine holds a
// per-request trace: JSON lines, or a CSV header with a TIMESTAMP column
// that is not the "timestamp,requests" header of a counted trace.
func IsPerRequest(firstLine string) bool {
	h := strings.TrimSpace(strings.TrimPrefix(firstLine, "\ufeff"))
	if strings.HasPrefix(h, "{") {
		return true
	}
	// Read as Read reads it: as CSV, so a quoted header is the same.
	head, err := csv.NewReader(strings.NewReader(h)).Read()
	return err == nil && !IsCountsHeader(head) && slices.IndexFunc(head, isTimestampColumn) >= 0
}

// IsCountsHeader reports whether a CSV header's fields are those of a
// counted trace, timestamp,requests (spaces and case aside).
func IsCountsHeader(fields []string) bool {
	return len(fields) == 2 && strings.EqualFold(strings.TrimSpace(fields[0]), "timestamp") &&
		strings.EqualFold(strings.TrimSpace(fields[1]), "requests")
}

// Earliest is the earliest arrival of a trace Read returned.
func Earliest(at []Arrival) Arrival {
	lo := at[0]
	for _, a := range at {
		if a.At.Before(lo.At) {
			lo = a
		}
	}
	return lo
}

func isTimestampColumn(s string) bool { return strings.EqualFold(strings.TrimSpace(s), "TIMESTAMP") }

// Read reads a per-request trace in either layout, in the order of the
// file (the real ones are in time order; the caller sorts if it must).
// name labels errors as name:line: problem. A UTF-8 byte order mark is
// skipped. A trace must hold a request and span at most MaxSpan.
func Read(name string, r io.Reader) ([]Arrival, error) {
	br := bufio.NewReaderSize(r, 1<<16)
	if bom, err := br.Peek(3); err == nil && string(bom) == "\ufeff" {
		_, _ = br.Discard(3)
	}
	first, err := br.Peek(1)
	if err != nil {
		return nil, fmt.Errorf("%s: empty trace: want an Azure LLM inference CSV (a TIMESTAMP column) or Mooncake JSON lines (a \"timestamp\" in milliseconds)", name)
	}
	var at []Arrival
	if first[0] == '{' {
		at, err = readJSONLines(name, br)
	} else {
		at, err = readAzureCSV(name, br)
	}
	if err != nil {
		return nil, err
	}
	lo, hi := Earliest(at), at[0]
	for _, a := range at {
		if a.At.After(hi.At) {
			hi = a
		}
	}
	// Sub saturates at the largest Duration, which is over MaxSpan too.
	if span := hi.At.Sub(lo.At); span > MaxSpan {
		return nil, fmt.Errorf("%s:%d: the request at %s is %.3g s after the earliest one (line %d): a trace over 3 years (%.0e s) is a typo",
			name, hi.Line, hi.At.Format(time.RFC3339Nano), span.Seconds(), lo.Line, MaxSpan.Seconds())
	}
	return at, nil
}

func readAzureCSV(name string, r io.Reader) ([]Arrival, error) {
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
	if IsCountsHeader(head) {
		return nil, fmt.Errorf("%s:1: a timestamp,requests trace counts requests per interval, not one request per line (want an Azure LLM inference CSV with a TIMESTAMP column, or Mooncake JSON lines with a \"timestamp\" in milliseconds)", name)
	}
	col := slices.IndexFunc(head, isTimestampColumn)
	if col < 0 {
		return nil, fmt.Errorf("%s:1: header %q has no TIMESTAMP column (want an Azure LLM inference CSV or Mooncake JSON lines)", name, strings.Join(head, ","))
	}
	var at []Arrival
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			if len(at) == 0 {
				return nil, fmt.Errorf("%s:1: no requests after the header", name)
			}
			return at, nil
		}
		if err != nil {
			return nil, lineErr(err)
		}
		line, _ := cr.FieldPos(0)
		if col >= len(rec) {
			return nil, fmt.Errorf("%s:%d: no TIMESTAMP field (column %d)", name, line, col+1)
		}
		t, err := time.Parse(azureLayout, strings.TrimSpace(rec[col]))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: TIMESTAMP %q is not a \"2006-01-02 15:04:05.999\" time", name, line, rec[col])
		}
		at = append(at, Arrival{t, line})
	}
}

func readJSONLines(name string, r io.Reader) ([]Arrival, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var at []Arrival
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
		switch {
		case err != nil && !errors.Is(err, strconv.ErrRange), ms < 0:
			return nil, fmt.Errorf("%s:%d: timestamp %s: want a non-negative \"timestamp\" in milliseconds", name, line, rec.Timestamp)
		case ms > maxMillis: // also an out-of-range number, parsed as +Inf
			return nil, fmt.Errorf("%s:%d: timestamp %s is after the year 2262 in milliseconds: microseconds? want milliseconds since 1970", name, line, rec.Timestamp)
		}
		at = append(at, Arrival{time.UnixMilli(0).Add(time.Duration(ms * float64(time.Millisecond))).UTC(), line})
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if len(at) == 0 {
		return nil, fmt.Errorf("%s:%d: no requests", name, line)
	}
	return at, nil
}
