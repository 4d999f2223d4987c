package history_test

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/pkg/predict/history"
)

func TestReadCSV(t *testing.T) {
	s, err := history.ReadCSV(strings.NewReader("timestamp,requests\n600,5\n660,\n720,NaN\n780,7.5\n"), "ok.csv")
	if err != nil {
		t.Fatal(err)
	}
	if !s.Start.Equal(time.Unix(600, 0)) || s.Step != time.Minute || len(s.Values) != 4 {
		t.Fatalf("got %+v", s)
	}
	if s.Values[0] != 5 || !math.IsNaN(s.Values[1]) || !math.IsNaN(s.Values[2]) || s.Values[3] != 7.5 {
		t.Errorf("values %v", s.Values)
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
