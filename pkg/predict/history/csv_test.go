package history_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/predict/history"
)

func TestReadCSV(t *testing.T) {
	// What pkg/sim's reader (adapter backtest) reads, this one reads: a
	// byte order mark, spaces around the header's and rows' fields, a
	// trailing blank line (the first two failed in forecast and demo).
	for _, in := range []string{
		"timestamp,requests\n600,5\n660,6\n720,0\n780,7.5\n",
		"\ufefftimestamp,requests\n600,5\n660,6\n720,0\n780,7.5\n",
		"timestamp, requests\n600, 5\n660, 6\n720, 0\n780, 7.5\n\n",
	} {
		s, err := history.ReadCSV(strings.NewReader(in), "ok.csv")
		if err != nil {
			t.Fatalf("%q: %v", in, err)
		}
		if !s.Start.Equal(time.Unix(600, 0)) || s.Step != time.Minute || len(s.Values) != 4 {
			t.Fatalf("%q: got %+v", in, s)
		}
		if s.Values[0] != 5 || s.Values[1] != 6 || s.Values[2] != 0 || s.Values[3] != 7.5 {
			t.Errorf("%q: values %v", in, s.Values)
		}
	}
}

func TestReadCSVErrors(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"empty file", "", "f.csv: empty file"},
		{"only blank lines", "\n\n", "f.csv: empty file"},
		{"bad header", "time,count\n1,2\n", `f.csv:1: header is "time,count"`},
		{"one row", "timestamp,requests\n60,1\n", "f.csv: 1 data rows, need at least 2"},
		{"uneven spacing", "timestamp,requests\n60,1\n120,1\n200,1\n", "f.csv:4: uneven spacing: timestamp 200, want 180 (step 1m0s)"},
		{"backwards", "timestamp,requests\n120,1\n60,1\n", "f.csv:3: timestamp 60 does not follow 120"},
		{"negative", "timestamp,requests\n60,1\n120,-3\n", "f.csv:3: requests -3 is negative"},
		{"not a number", "timestamp,requests\n60,1\n120,lots\n", `f.csv:3: requests "lots" is not a number`},
		{"infinite", "timestamp,requests\n60,1\n120,+Inf\n", `f.csv:3: requests "+Inf" is not a number`},
		// A NaN or empty count was a gap here and an error in backtest.
		{"NaN", "timestamp,requests\n60,1\n120,2\n180,NaN\n", `f.csv:4: requests "NaN" is not a number`},
		{"empty count", "timestamp,requests\n60,1\n120,\n", `f.csv:3: requests "" is not a number`},
		{"per-request trace", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n", "f.csv:1: a per-request trace: want a \"timestamp,requests\" CSV"},
		{"per-request JSON lines", "\ufeff{\"timestamp\": 0}\n", "f.csv:1: a per-request trace"},
		{"step over a year", "timestamp,requests\n0,1\n40000000,1\n", "f.csv:3: step of 40000000 s between rows, more than a year"},
		{"bad timestamp", "timestamp,requests\n2024-01-01,1\n", `f.csv:2: timestamp "2024-01-01" is not unix seconds`},
		{"three fields", "timestamp,requests\n60,1,2\n", "f.csv:2: want 2 fields"},
		{"one field", "timestamp,requests\n60\n", "f.csv:2: want 2 fields"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := history.ReadCSV(strings.NewReader(tc.in), "f.csv")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}

func TestLoadCSV(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.csv")
	if err := os.WriteFile(p, []byte("timestamp,requests\n0,1\n10,2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := history.LoadCSV(p)
	if err != nil || s.Step != 10*time.Second {
		t.Fatalf("%+v %v", s, err)
	}
	if _, err := history.LoadCSV(filepath.Join(dir, "missing.csv")); err == nil || !strings.Contains(err.Error(), "missing.csv") {
		t.Errorf("err %v, want it to name the file", err)
	}
}
