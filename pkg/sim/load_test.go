package sim

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
)

func TestParseTrace(t *testing.T) {
	// The header as internal/reqtrace tells it from a per-request trace's:
	// spaces and case aside (batch-sim took "Timestamp,Requests" for a
	// counted trace, the backtest refused it).
	if _, err := ParseTrace("t.csv", strings.NewReader("Timestamp, Requests\n100,1\n160,2\n")); err != nil {
		t.Errorf("Timestamp, Requests: %v", err)
	}
	tr, err := ParseTrace("t.csv", strings.NewReader("timestamp,requests\n100,1\n160,2.5\n220,0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Start.Equal(time.Unix(100, 0)) || tr.Step != time.Minute || len(tr.Counts) != 3 || tr.Counts[1] != 2.5 {
		t.Fatalf("trace = %+v", tr)
	}
	if tr.End() != time.Unix(280, 0).UTC() {
		t.Errorf("end = %v", tr.End())
	}
}

func TestParseTraceErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "bad.csv: empty file"},
		{"bad header", "time,count\n1,2\n", `bad.csv:1: header is "time,count", want "timestamp,requests"`},
		{"header only", "timestamp,requests\n", "bad.csv:1: no data rows"},
		{"one row", "timestamp,requests\n10,1\n", "bad.csv:2: one row only"},
		{"negative", "timestamp,requests\n10,1\n20,-3\n", "bad.csv:3: negative count -3"},
		{"uneven", "timestamp,requests\n0,1\n60,1\n120,1\n190,1\n", "bad.csv:5: unevenly spaced: timestamp 190 is 70 s after the previous row, the trace's step is 1m0s (want 180)"},
		{"backwards", "timestamp,requests\n60,1\n0,1\n", "bad.csv:3: timestamp 0 is not after the previous row's 60"},
		{"step over a year", "timestamp,requests\n0,1\n99999999999,1\n", "bad.csv:3: step of 99999999999 s between rows, more than a year"},
		{"three fields", "timestamp,requests\n0,1,2\n", "bad.csv:2: want 2 fields"},
		{"not a number", "timestamp,requests\n0,1\n60,lots\n", `bad.csv:3: count "lots" is not a number`},
		{"NaN", "timestamp,requests\n0,1\n60,NaN\n", `bad.csv:3: count "NaN" is not a number`},
		{"bad time", "timestamp,requests\n2024-01-01,1\n", `bad.csv:2: timestamp "2024-01-01" is not unix seconds`},
		{"milliseconds", "timestamp,requests\n1700000000000,1\n1700000060000,1\n",
			"bad.csv:2: timestamp 1700000000000 is after the year 9999 in unix seconds: milliseconds? want unix seconds"},
		{"milliseconds of 1995", "timestamp,requests\n0,1\n804571200000,1\n", "bad.csv:3: timestamp 804571200000 is after the year 9999"},
		{"before the year 0", "timestamp,requests\n-62167219201,1\n-62167219141,1\n", "bad.csv:2: timestamp -62167219201 is before the year 0"},
		{"ends after the year 9999", "timestamp,requests\n253402300000,1\n253402300700,1\n",
			"bad.csv:3: the trace ends at 253402301400, after the year 9999"},
		{"longer than a duration", yearlyTrace(300), "bad.csv:301: the trace spans 9460800000 s, more than the 9223372036 s (292 years) a duration holds"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseTrace("bad.csv", strings.NewReader(tc.in))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// yearlyTrace is a trace of n rows a year (365 days) apart from 1970.
func yearlyTrace(n int) string {
	var b strings.Builder
	b.WriteString("timestamp,requests\n")
	for i := range n {
		fmt.Fprintf(&b, "%d,1\n", int64(i)*365*86400)
	}
	return b.String()
}

// The extremes of the timestamps a trace may hold parse, and summary.json
// can write their times.
func TestParseTraceTimestampRange(t *testing.T) {
	for _, in := range []string{
		"timestamp,requests\n253402300620,1\n253402300680,2\n", // ends 9999-12-31T23:59:00Z
		"timestamp,requests\n-62167219200,1\n-62167219140,2\n", // starts 0000-01-01T00:00:00Z
		yearlyTrace(291),
	} {
		tr, err := ParseTrace("t.csv", strings.NewReader(in))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := json.Marshal([]time.Time{tr.Start, tr.End()}); err != nil {
			t.Errorf("%s to %s: %v", tr.Start, tr.End(), err)
		}
		if tr.Duration() <= 0 {
			t.Errorf("%s: duration %v", tr.Start, tr.Duration())
		}
	}
}

func TestLoadTraceMissingFile(t *testing.T) {
	if _, err := LoadTrace(context.Background(), filepath.Join(t.TempDir(), "none.csv")); err == nil || !strings.Contains(err.Error(), "none.csv") {
		t.Fatalf("err = %v, want one naming the file", err)
	}
}

func TestCountRequests(t *testing.T) {
	s := time.Unix(0, 0)
	at := func(ms int) time.Time { return s.Add(time.Duration(ms) * time.Millisecond) }
	tr, err := CountRequests("r", s, time.Second, []time.Time{at(0), at(999), at(1000), at(3500)})
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Counts; len(got) != 4 || got[0] != 2 || got[1] != 1 || got[2] != 0 || got[3] != 1 {
		t.Fatalf("counts = %v, want [2 1 0 1]", got)
	}
	if _, err := CountRequests("r", s, time.Second, []time.Time{s.Add(-time.Second)}); err == nil {
		t.Error("a request before the start was counted")
	}
}

func TestStepArrivals(t *testing.T) {
	// 60 s rows spread over 5 s steps: 12 equal parts.
	tr := &Trace{Step: time.Minute, Counts: []float64{12, 24}}
	got := stepArrivals(tr, 10, 5*time.Second)
	if len(got) != 24 || !near(got[0], 10) || !near(got[23], 20) {
		t.Fatalf("arrivals = %v", got)
	}
	// 2 s rows over 5 s steps: rates integrate across row boundaries.
	tr = &Trace{Step: 2 * time.Second, Counts: []float64{2, 4, 6, 8, 10}}
	got = stepArrivals(tr, 1, 5*time.Second)
	// [0,5): 2 + 4 + half of 6 = 9; [5,10): 3 + 8 + 10 = 21.
	if len(got) != 2 || !near(got[0], 9) || !near(got[1], 21) {
		t.Fatalf("arrivals = %v, want [9 21]", got)
	}
}

func TestParsePool(t *testing.T) {
	p, err := ParsePool("p.json", []byte(`{"metadata":{"gap_seconds":60,"seed":1},"data":[1,0,1,1]}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		at   time.Duration
		want bool
	}{{0, true}, {59 * time.Second, true}, {60 * time.Second, false}, {3 * time.Minute, true}, {4 * time.Minute, true}, {5 * time.Minute, false}} {
		if got := p.Available(tc.at); got != tc.want {
			t.Errorf("available at %v = %v, want %v (wrapping every 4 min)", tc.at, got, tc.want)
		}
	}
	if got := p.MeanAvailability(); got != 0.75 {
		t.Errorf("mean availability = %v", got)
	}
}

// Pools are named by their file names, with the parent directories that
// tell clashing ones apart.
func TestPoolNames(t *testing.T) {
	for _, tc := range []struct{ paths, want []string }{
		{[]string{"spot/spot-high-a.json", "spot/spot-high-b.json"}, []string{"spot-high-a", "spot-high-b"}},
		{[]string{"d1/zone.json", "d2/zone.json"}, []string{"d1/zone", "d2/zone"}},
		{[]string{"x/d1/zone.json", "y/d1/zone.json", "d2/zone.json", "other.json"}, []string{"x/d1/zone", "y/d1/zone", "d2/zone", "other"}},
		{[]string{"zone.json", "d/zone.json"}, []string{"zone", "d/zone"}},
		{[]string{"/tmp/a/zone.json", "tmp/a/zone.json"}, []string{"/tmp/a/zone", "tmp/a/zone"}},
		{[]string{"./d1/zone.json", "d1/zone.json"}, []string{"d1/zone", "d1/zone#2"}},
		{nil, []string{}},
	} {
		got := PoolNames(tc.paths)
		if strings.Join(got, ",") != strings.Join(tc.want, ",") || len(got) != len(tc.want) {
			t.Errorf("PoolNames(%q) = %q, want %q", tc.paths, got, tc.want)
		}
	}
}

func TestParsePoolErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "zone.json: empty file"},
		{"array", "[1,0,1]", "zone.json:1: wrong shape: the document is a JSON array, want an object"},
		{"data of strings", "{\"metadata\":{\"gap_seconds\":60},\n\"data\":[1,\n\"up\"]}", "zone.json:3: wrong shape: data is a JSON string, want a number"},
		{"no gap", `{"metadata":{},"data":[1]}`, "zone.json:1: wrong shape: no metadata.gap_seconds"},
		{"no data", `{"metadata":{"gap_seconds":60}}`, "zone.json:1: wrong shape: no data array"},
		{"empty data", `{"metadata":{"gap_seconds":60},"data":[]}`, "zone.json:1: data is empty"},
		{"zero gap", `{"metadata":{"gap_seconds":0},"data":[1]}`, "zone.json:1: metadata.gap_seconds 0 must be positive"},
		{"vanishing gap", `{"metadata":{"gap_seconds":1e-300},"data":[1]}`, "zone.json:1: metadata.gap_seconds 1e-300 must be positive"},
		{"negative entry", `{"metadata":{"gap_seconds":60},"data":[1,-1]}`, "zone.json: data[1] = -1"},
		{"syntax", "{\"metadata\":\n{\"gap_seconds\":60,}}", "zone.json:2: not JSON"},
		{"truncated", "{\"metadata\":{\"gap_seconds\":60},\n\"data\":[1,0,", "zone.json:2: not JSON: the file ends inside the document (truncated?)"},
		{"truncated in a string", "{\"metadata\":{\"gap_sec", "zone.json:1: not JSON: the file ends inside the document"},
		{"trailing", `{"metadata":{"gap_seconds":60},"data":[1]} {}`, "zone.json:1: trailing data"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParsePool("zone.json", []byte(tc.in))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

// The shared files load, and their availability matches their README.
func TestLoadSharedFiles(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "traces")
	ctx := context.Background()
	tr, err := LoadTrace(ctx, filepath.Join(dir, "nasa-1995-07.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if d := tr.Duration().Hours() / 24; tr.Step != time.Minute || d < 27 || d > 28 {
		t.Errorf("nasa-1995-07: step %v, %.1f days", tr.Step, d)
	}
	for prof, want := range map[string]float64{"high": 0.9, "medium": 0.58, "low": 0.21} {
		p, err := LoadPool(ctx, filepath.Join(dir, "spot", "spot-"+prof+"-a.json"))
		if err != nil {
			t.Fatal(err)
		}
		if got := p.MeanAvailability(); got < want-0.1 || got > want+0.1 || p.Name != "spot-"+prof+"-a" {
			t.Errorf("%s: availability %.2f, name %q", prof, got, p.Name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "servegen-m-mid.csv")); err != nil {
		t.Fatal(err)
	}
}

func TestParsePerRequestTraces(t *testing.T) {
	azure := "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:17:04.5,1,1\n2023-11-16 18:17:06.1,1,1\n"
	tr, err := ParseTrace("azure.csv", strings.NewReader(azure))
	if err != nil {
		t.Fatal(err)
	}
	if !tr.Start.Equal(time.Date(2023, 11, 16, 18, 17, 3, 0, time.UTC)) || tr.Step != time.Second {
		t.Fatalf("start %v step %v", tr.Start, tr.Step)
	}
	if got := tr.Counts; len(got) != 4 || got[0] != 1 || got[1] != 2 || got[2] != 0 || got[3] != 1 {
		t.Fatalf("counts = %v, want [1 2 0 1]", got)
	}
	jsonl := `{"timestamp": 0, "input_length": 1}` + "\n" + `{"timestamp": 999, "x": [1]}` + "\n" + `{"timestamp": 2500}` + "\n"
	tr, err = ParseTrace("mooncake.jsonl", strings.NewReader(jsonl))
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Counts; len(got) != 3 || got[0] != 2 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("counts = %v, want [2 0 1]", got)
	}
	// internal/reqtrace's errors come through as they are (its tests
	// hold the rest).
	if _, err := ParseTrace("r", strings.NewReader("TIMESTAMP,a\n2023-11-16 18:17:03,1\nyesterday,2\n")); err == nil || !strings.HasPrefix(err.Error(), `r:3: TIMESTAMP "yesterday" is not`) {
		t.Errorf("err = %v, want r:3: TIMESTAMP ... is not", err)
	}
	// A TIMESTAMP column anywhere makes a per-request CSV (it had to be
	// the first).
	tr, err = ParseTrace("r", strings.NewReader("id,TIMESTAMP\n1,2023-11-16 18:17:03\n2,2023-11-16 18:17:05.5\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := tr.Counts; len(got) != 3 || got[0] != 1 || got[1] != 0 || got[2] != 1 {
		t.Fatalf("counts = %v, want [1 0 1]", got)
	}
}

// Whatever the bytes, the loaders return a usable value or an error naming
// the file, and never panic.
func FuzzParseTrace(f *testing.F) {
	f.Add("timestamp,requests\n0,1\n60,2\n")
	f.Add("TIMESTAMP,a\n2023-11-16 18:17:03.1,1\n")
	f.Add(`{"timestamp": 5}` + "\n")
	f.Add("timestamp,requests\n0,1\n60,-2\n")
	f.Fuzz(func(t *testing.T, in string) {
		tr, err := ParseTrace("f.csv", strings.NewReader(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.csv") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(tr.Counts) < 2 || tr.Step <= 0 {
			t.Fatalf("accepted a trace of %d rows, step %v", len(tr.Counts), tr.Step)
		}
		for _, c := range tr.Counts {
			if c < 0 || c != c {
				t.Fatalf("accepted count %v", c)
			}
		}
	})
}

func FuzzParsePool(f *testing.F) {
	f.Add(`{"metadata":{"gap_seconds":60},"data":[1,0]}`)
	f.Add(`{"metadata":{"gap_seconds":1e-300},"data":[1]}`)
	f.Fuzz(func(t *testing.T, in string) {
		p, err := ParsePool("p.json", []byte(in))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "p.json") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if p.Gap <= 0 || len(p.Data) == 0 {
			t.Fatalf("accepted gap %v, %d entries", p.Gap, len(p.Data))
		}
		p.Available(time.Hour) // must not panic
	})
}
