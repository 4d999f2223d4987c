package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// Trace is a demand trace: Counts[i] requests arrived in
// [Start+i*Step, Start+(i+1)*Step).
type Trace struct {
	Name   string // the file it came from, for messages
	Start  time.Time
	Step   time.Duration
	Counts []float64
}

// Duration is the span of the trace.
func (t *Trace) Duration() time.Duration { return time.Duration(len(t.Counts)) * t.Step }

// End is the end of the last interval.
func (t *Trace) End() time.Time { return t.Start.Add(t.Duration()) }

// LoadTrace reads a `timestamp,requests` CSV file (SIMULATION.md, Inputs).
func LoadTrace(ctx context.Context, path string) (*Trace, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("trace: %w", err)
	}
	defer f.Close()
	return ParseTrace(path, f)
}

// ParseTrace reads a `timestamp,requests` CSV: a header, then evenly spaced
// rows of unix seconds and a non-negative count. Errors name the file and
// the line.
//
// Per-request traces are counted into one-second intervals first
// (SIMULATION.md, Inputs); two layouts are recognised by their first line:
// a CSV whose first column is TIMESTAMP holding "2006-01-02 15:04:05.999"
// UTC times (the Azure LLM inference traces), and JSON lines with a
// "timestamp" in milliseconds (the Mooncake traces).
func ParseTrace(name string, r io.Reader) (*Trace, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	line := 0
	tr := &Trace{Name: name}
	var first, prev int64
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if line == 1 {
			text = strings.TrimPrefix(text, "\ufeff")
			h := strings.ReplaceAll(text, " ", "")
			switch {
			case h == "timestamp,requests":
				continue
			case strings.HasPrefix(h, "TIMESTAMP,"):
				return countAzure(name, sc)
			case strings.HasPrefix(h, "{"):
				return countJSONLines(name, text, sc)
			}
			return nil, fmt.Errorf("%s:1: header is %q, want \"timestamp,requests\" (or a per-request trace: a TIMESTAMP,... CSV or JSON lines with a timestamp)", name, text)
		}
		if text == "" {
			continue // a trailing blank line is harmless
		}
		ts, count, ok := strings.Cut(text, ",")
		if !ok || strings.Contains(count, ",") {
			return nil, fmt.Errorf("%s:%d: want 2 fields (timestamp,requests), got %q", name, line, text)
		}
		t, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: timestamp %q is not unix seconds", name, line, ts)
		}
		if t > maxTraceUnix {
			return nil, fmt.Errorf("%s:%d: timestamp %d is after the year 9999 in unix seconds: milliseconds? want unix seconds", name, line, t)
		}
		if t < minTraceUnix {
			return nil, fmt.Errorf("%s:%d: timestamp %d is before the year 0 in unix seconds: want unix seconds", name, line, t)
		}
		c, err := strconv.ParseFloat(strings.TrimSpace(count), 64)
		if err != nil || math.IsNaN(c) || math.IsInf(c, 0) {
			return nil, fmt.Errorf("%s:%d: count %q is not a number", name, line, count)
		}
		if c < 0 {
			return nil, fmt.Errorf("%s:%d: negative count %v", name, line, c)
		}
		switch n := len(tr.Counts); {
		case n == 0:
			first = t
		case n == 1:
			if t <= prev {
				return nil, fmt.Errorf("%s:%d: timestamp %d is not after the previous row's %d", name, line, t, prev)
			}
			if t-prev > maxTraceStepSeconds {
				return nil, fmt.Errorf("%s:%d: step of %d s between rows, more than a year", name, line, t-prev)
			}
			tr.Step = time.Duration(t-prev) * time.Second
		default:
			if want := prev + int64(tr.Step/time.Second); t != want {
				return nil, fmt.Errorf("%s:%d: unevenly spaced: timestamp %d is %d s after the previous row, the trace's step is %v (want %d)",
					name, line, t, t-prev, tr.Step, want)
			}
		}
		prev = t
		tr.Counts = append(tr.Counts, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	switch {
	case line == 0:
		return nil, fmt.Errorf("%s: empty file: want a \"timestamp,requests\" header and rows", name)
	case len(tr.Counts) == 0:
		return nil, fmt.Errorf("%s:%d: no data rows after the header", name, line)
	case len(tr.Counts) == 1:
		return nil, fmt.Errorf("%s:%d: one row only: a trace needs two rows to know its step", name, line)
	}
	// The last row's interval must end by the year 9999 too (summary.json
	// writes the end), and the whole trace must fit in a time.Duration.
	end := prev + int64(tr.Step/time.Second)
	if end > maxTraceUnix {
		return nil, fmt.Errorf("%s:%d: the trace ends at %d, after the year 9999 in unix seconds: want unix seconds", name, line, end)
	}
	if span := end - first; span > maxTraceSpanSeconds {
		return nil, fmt.Errorf("%s:%d: the trace spans %d s, more than the %d s (292 years) a duration holds", name, line, span, int64(maxTraceSpanSeconds))
	}
	tr.Start = time.Unix(first, 0).UTC()
	return tr, nil
}

// CountRequests counts per-request arrival times into a trace of the given
// step starting at start (SIMULATION.md: per-request traces are counted into
// intervals first). Times before start are an error; the trace ends with
// the interval holding the last request.
func CountRequests(name string, start time.Time, step time.Duration, arrivals []time.Time) (*Trace, error) {
	if step <= 0 {
		return nil, fmt.Errorf("%s: step %v must be positive", name, step)
	}
	if len(arrivals) == 0 {
		return nil, fmt.Errorf("%s: no requests to count", name)
	}
	tr := &Trace{Name: name, Start: start, Step: step}
	for i, a := range arrivals {
		d := a.Sub(start)
		if d < 0 {
			return nil, fmt.Errorf("%s: request %d at %v is before the trace start %v", name, i+1, a, start)
		}
		k := int(d / step)
		if k >= maxCountedIntervals {
			return nil, fmt.Errorf("%s: request %d at %v is %v after the first: too long a trace to count", name, i+1, a, d)
		}
		for len(tr.Counts) <= k {
			tr.Counts = append(tr.Counts, 0)
		}
		tr.Counts[k]++
	}
	if len(tr.Counts) == 1 {
		tr.Counts = append(tr.Counts, 0)
	}
	return tr, nil
}

// The timestamps of a timestamp,requests trace: unix seconds of the years
// 0 to 9999, the times summary.json can write (RFC 3339). A larger one is
// most likely in milliseconds.
const (
	minTraceUnix = -62167219200 // 0000-01-01T00:00:00Z
	maxTraceUnix = 253402300799 // 9999-12-31T23:59:59Z
)

// maxTraceSpanSeconds is the longest time.Duration in whole seconds.
const maxTraceSpanSeconds = int64(math.MaxInt64 / int64(time.Second))

// maxTraceMillis bounds the millisecond timestamps of JSON lines traces:
// the latest one whose offset from 1970 a time.Duration holds (2262).
const maxTraceMillis = float64(math.MaxInt64 / int64(time.Millisecond))

// maxTraceStepSeconds bounds a trace's step (a year): a larger one is a
// typo, and would overflow durations.
const maxTraceStepSeconds = 366 * 86400

// maxCountedIntervals bounds the intervals CountRequests makes (over three
// years of seconds).
const maxCountedIntervals = 100_000_000

// stepArrivals spreads the trace evenly over steps of dt (SIMULATION.md,
// Time): element k is the scaled demand of [k*dt, (k+1)*dt) after the trace
// start. The run covers the whole trace; a last partial step gets its share.
func stepArrivals(tr *Trace, scale float64, dt time.Duration) []float64 {
	total := tr.Duration()
	n := int((total + dt - 1) / dt)
	out := make([]float64, n)
	if tr.Step%dt == 0 {
		per := int(tr.Step / dt)
		for i, c := range tr.Counts {
			v := c * scale / float64(per)
			for j := range per {
				out[i*per+j] = v
			}
		}
		return out
	}
	// General case: integrate the piecewise-constant rate over each step.
	for i, c := range tr.Counts {
		lo := time.Duration(i) * tr.Step
		hi := lo + tr.Step
		rate := c * scale / float64(tr.Step)
		for k := int(lo / dt); k < n && time.Duration(k)*dt < hi; k++ {
			a := max(lo, time.Duration(k)*dt)
			b := min(hi, time.Duration(k+1)*dt)
			out[k] += rate * float64(b-a)
		}
	}
	return out
}

// perRequestStep is the interval per-request traces are counted into.
const perRequestStep = time.Second

// azureLayout is the time format of the Azure LLM inference traces (UTC).
const azureLayout = "2006-01-02 15:04:05.999999999"

// countAzure counts a TIMESTAMP,... CSV (header already read).
func countAzure(name string, sc *bufio.Scanner) (*Trace, error) {
	var at []time.Time
	line := 1
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		ts, _, _ := strings.Cut(text, ",")
		t, err := time.Parse(azureLayout, strings.TrimSpace(ts))
		if err != nil {
			return nil, fmt.Errorf("%s:%d: TIMESTAMP %q is not a \"2006-01-02 15:04:05.999\" time", name, line, ts)
		}
		at = append(at, t)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return countArrivals(name, line, at)
}

// countJSONLines counts JSON lines holding a "timestamp" in milliseconds.
func countJSONLines(name, firstLine string, sc *bufio.Scanner) (*Trace, error) {
	var at []time.Time
	line := 0
	parse := func(text string) error {
		var rec struct {
			Timestamp *float64 `json:"timestamp"`
		}
		if err := json.Unmarshal([]byte(text), &rec); err != nil {
			return fmt.Errorf("%s:%d: not a JSON object: %v", name, line, err)
		}
		if rec.Timestamp == nil || *rec.Timestamp < 0 || math.IsNaN(*rec.Timestamp) {
			return fmt.Errorf("%s:%d: want a non-negative \"timestamp\" in milliseconds", name, line)
		}
		if *rec.Timestamp > maxTraceMillis {
			return fmt.Errorf("%s:%d: timestamp %v is after the year 2262 in milliseconds: microseconds? want milliseconds since 1970", name, line, *rec.Timestamp)
		}
		at = append(at, time.UnixMilli(0).Add(time.Duration(*rec.Timestamp*float64(time.Millisecond))).UTC())
		return nil
	}
	line = 1
	if err := parse(firstLine); err != nil {
		return nil, err
	}
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if err := parse(text); err != nil {
			return nil, err
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	return countArrivals(name, line, at)
}

// countArrivals counts arrival times into perRequestStep intervals from the
// whole second of the earliest.
func countArrivals(name string, lines int, at []time.Time) (*Trace, error) {
	if len(at) == 0 {
		return nil, fmt.Errorf("%s:%d: no requests after the header", name, lines)
	}
	start := at[0]
	for _, t := range at {
		if t.Before(start) {
			start = t
		}
	}
	return CountRequests(name, start.Truncate(perRequestStep), perRequestStep, at)
}
