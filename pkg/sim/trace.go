package sim

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/infercast/infercast/internal/reqtrace"
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
// (SIMULATION.md, Inputs): internal/reqtrace tells them by their first
// line and reads them (the Azure LLM inference CSVs, Mooncake JSON lines).
func ParseTrace(name string, r io.Reader) (*Trace, error) {
	br := bufio.NewReaderSize(r, 64*1024)
	head, err := br.ReadString('\n')
	if err != nil && err != io.EOF {
		return nil, fmt.Errorf("%s:1: %w", name, err)
	}
	if reqtrace.IsPerRequest(head) {
		at, err := reqtrace.Read(name, io.MultiReader(strings.NewReader(head), br))
		if err != nil {
			return nil, err
		}
		return countArrivals(name, at)
	}
	tr := &Trace{Name: name}
	line := 0
	if head != "" {
		line = 1
		if !reqtrace.IsCountsHeader(strings.Split(strings.TrimPrefix(strings.TrimSpace(head), "\ufeff"), ",")) {
			return nil, fmt.Errorf("%s:1: header is %q, want \"timestamp,requests\" (or a per-request trace: a CSV with a TIMESTAMP column or JSON lines with a timestamp)", name, strings.TrimSpace(head))
		}
	}
	sc := bufio.NewScanner(br)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var first, prev int64
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
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

// countArrivals counts per-request arrivals into perRequestStep intervals
// from the whole second of the earliest.
func countArrivals(name string, at []reqtrace.Arrival) (*Trace, error) {
	times := make([]time.Time, len(at))
	for i, a := range at {
		times[i] = a.At
	}
	start := reqtrace.Earliest(at).At
	return CountRequests(name, start.Truncate(perRequestStep), perRequestStep, times)
}
