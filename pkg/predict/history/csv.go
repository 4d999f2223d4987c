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
// one interval per row, as in shared/traces). An empty requests field or
// "NaN" is an interval without data. name labels errors ("name:line: ...").
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
			if text != "timestamp,requests" {
				return predict.Series{}, fmt.Errorf("%s:%d: header is %q, want \"timestamp,requests\"", name, line, text)
			}
			continue
		}
		ts, val, ok := strings.Cut(text, ",")
		if !ok || strings.Contains(val, ",") {
			return predict.Series{}, fmt.Errorf("%s:%d: want 2 fields (timestamp,requests), got %q", name, line, text)
		}
		t, err := strconv.ParseInt(strings.TrimSpace(ts), 10, 64)
		if err != nil {
			return predict.Series{}, fmt.Errorf("%s:%d: timestamp %q is not unix seconds", name, line, ts)
		}
		v := math.NaN()
		if val = strings.TrimSpace(val); val != "" && !strings.EqualFold(val, "nan") {
			v, err = strconv.ParseFloat(val, 64)
			if err != nil || math.IsInf(v, 0) || math.IsNaN(v) {
				return predict.Series{}, fmt.Errorf("%s:%d: requests %q is not a number", name, line, val)
			}
			if v < 0 {
				return predict.Series{}, fmt.Errorf("%s:%d: requests %v is negative", name, line, v)
			}
		}
		switch len(s.Values) {
		case 0:
			s.Start = time.Unix(t, 0).UTC()
		case 1:
			if t <= prev {
				return predict.Series{}, fmt.Errorf("%s:%d: timestamp %d does not follow %d", name, line, t, prev)
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
