// Package history loads demand histories (predict.Series) from where they
// live: a timestamp,requests CSV, a Prometheus-compatible HTTP API, or the
// adapter's embedded store.
package history

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/infercast/infercast/pkg/predict"
)

// ReadCSV parses a `timestamp,requests` CSV (unix seconds, evenly spaced,
// one interval per row, as in shared/traces) as pkg/sim's trace reader
// (adapter backtest) does: a byte order mark and spaces in the header are
// allowed; every count is a non-negative number (not NaN, not empty). name
// labels errors ("name:line: ...").
func ReadCSV(r io.Reader, name string) (predict.Series, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	line := 0
	var s predict.Series
	var prev int64
	header := false
	for sc.Scan() {
		line++
		text := strings.TrimSpace(sc.Text())
		if text == "" {
			continue
		}
		if !header {
			header = true
			text = strings.TrimPrefix(text, "\ufeff")
			switch h := strings.ReplaceAll(text, " ", ""); {
			case h == "timestamp,requests":
				continue
			case strings.HasPrefix(h, "TIMESTAMP,") || strings.HasPrefix(h, "{"):
				return predict.Series{}, fmt.Errorf("%s:%d: a per-request trace: want a \"timestamp,requests\" CSV of counts per interval (adapter backtest counts a per-request trace itself)", name, line)
			}
			return predict.Series{}, fmt.Errorf("%s:%d: header is %q, want \"timestamp,requests\"", name, line, text)
		}
		ts, val, ok := strings.Cut(text, ",")
		if !ok || strings.Contains(val, ",") {
			return predict.Series{}, fmt.Errorf("%s:%d: want 2 fields (timestamp,requests), got %q", name, line, text)
		}
		t, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		if err != nil {
			return predict.Series{}, fmt.Errorf("%s:%d: timestamp %q is not unix seconds", name, line, ts)
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
			return predict.Series{}, fmt.Errorf("%s:%d: requests %q is not a number", name, line, val)
		}
		if v < 0 {
			return predict.Series{}, fmt.Errorf("%s:%d: requests %v is negative", name, line, v)
		}
		switch len(s.Values) {
		case 0:
			s.Start = time.Unix(t, 0).UTC()
		case 1:
			if t <= prev {
				return predict.Series{}, fmt.Errorf("%s:%d: timestamp %d does not follow %d", name, line, t, prev)
			}
			if t-prev > maxStepSeconds {
				return predict.Series{}, fmt.Errorf("%s:%d: step of %d s between rows, more than a year", name, line, t-prev)
			}
			s.Step = time.Duration(t-prev) * time.Second
		default:
			if want := prev + int64(s.Step/time.Second); t != want {
				return predict.Series{}, fmt.Errorf("%s:%d: uneven spacing: timestamp %d, want %d (step %s)", name, line, t, want, s.Step)
			}
		}
		prev = t
		s.Values = append(s.Values, v)
	}
	if err := sc.Err(); err != nil {
		return predict.Series{}, fmt.Errorf("%s:%d: %w", name, line+1, err)
	}
	if !header {
		return predict.Series{}, fmt.Errorf("%s: empty file, want a \"timestamp,requests\" header and rows", name)
	}
	if len(s.Values) < 2 {
		return predict.Series{}, fmt.Errorf("%s: %d data rows, need at least 2 to know the step", name, len(s.Values))
	}
	return s, nil
}

// maxStepSeconds bounds a trace's step (a year, as pkg/sim's): a larger one
// is a typo, and would overflow durations.
const maxStepSeconds = 366 * 86400

// LoadCSV reads a CSV file with ReadCSV.
func LoadCSV(path string) (predict.Series, error) {
	f, err := os.Open(path)
	if err != nil {
		return predict.Series{}, err
	}
	defer f.Close()
	s, err := ReadCSV(f, path)
	if err != nil {
		return predict.Series{}, err
	}
	return s, nil
}
