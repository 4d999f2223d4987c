package reqtrace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
)

func TestRead(t *testing.T) {
	day := func(sec, nsec int) time.Time { return time.Date(2023, 11, 16, 18, 17, sec, nsec, time.UTC) }
	ms := func(v int64) time.Time { return time.UnixMilli(v).UTC() }
	tests := []struct {
		name, in string
		want     []Arrival
	}{
		{"azure", "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:17:03.9799600,4808,10\n2023-11-16 18:17:04.0319600,3180,8\n2023-11-16 18:17:05,110,27\n",
			[]Arrival{{day(3, 979960000), 2}, {day(4, 31960000), 3}, {day(5, 0), 4}}},
		// The column is found by name, quoted fields are read as CSV.
		{"azure, TIMESTAMP not first", "id,timestamp\n\"a,b\",2023-11-16 18:17:03\nc, 2023-11-16 18:17:04.5 \n",
			[]Arrival{{day(3, 0), 2}, {day(4, 500000000), 3}}},
		{"mooncake", `{"timestamp": 0, "input_length": 6758, "output_length": 500, "hash_ids": [0, 1]}` + "\n\n" + `{"timestamp": 1500.5, "hash_ids": []}` + "\n",
			[]Arrival{{ms(0), 1}, {ms(1500).Add(500 * time.Microsecond), 3}}},
		{"azure with a BOM", "\ufeffTIMESTAMP,ContextTokens\n2023-11-16 18:17:03,1\n", []Arrival{{day(3, 0), 2}}},
		{"mooncake with a BOM", "\ufeff" + `{"timestamp": 250}`, []Arrival{{ms(250), 1}}},
		// Out of order is kept as it is: the caller sorts if it must.
		{"out of order", `{"timestamp": 9}` + "\n" + `{"timestamp": 3}` + "\n", []Arrival{{ms(9), 1}, {ms(3), 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Read("t", strings.NewReader(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			for i := range got {
				if !got[i].At.Equal(tc.want[i].At) || got[i].Line != tc.want[i].Line {
					t.Errorf("arrival %d = %v line %d, want %v line %d", i, got[i].At, got[i].Line, tc.want[i].At, tc.want[i].Line)
				}
			}
		})
	}
}

// Each bad file gets an error naming the file and the line.
func TestReadErrors(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"empty", "", "t: empty trace"},
		{"BOM only", "\ufeff", "t: empty trace"},
		{"no timestamp column", "time,ContextTokens\n1,2\n", `t:1: header "time,ContextTokens" has no TIMESTAMP column`},
		{"counts trace", "timestamp, requests\n0,100\n60,101\n", "t:1: a timestamp,requests trace counts requests per interval, not one request per line"},
		{"header only", "TIMESTAMP,a\n", "t:1: no requests after the header"},
		{"bad time", "TIMESTAMP,a\n2023-11-16 18:17:03,1\nyesterday,2\n", `t:3: TIMESTAMP "yesterday" is not a "2006-01-02 15:04:05.999" time`},
		{"short row", "a,TIMESTAMP\n1,2023-11-16 18:17:03\n2\n", "t:3: no TIMESTAMP field (column 2)"},
		{"unbalanced quote", "TIMESTAMP,a\n2023-11-16 18:17:03,1\n\"2023,2\n", "t:3: extraneous or missing \" in quoted-field"},
		{"json without timestamp", `{"timestamp": 1}` + "\n" + `{"ts": 2}` + "\n", `t:2: want a non-negative "timestamp" in milliseconds`},
		{"json garbage", `{"timestamp": 1}` + "\n\n{oops\n", "t:3: not a JSON object"},
		{"timestamp a string", `{"timestamp": 0}` + "\n" + `{"timestamp": "abc"}` + "\n", `t:2: want a non-negative "timestamp" in milliseconds: json: invalid number literal`},
		{"negative timestamp", `{"timestamp": 1}` + "\n" + `{"timestamp": -5}` + "\n", `t:2: timestamp -5: want a non-negative "timestamp" in milliseconds`},
		{"microseconds", `{"timestamp": 1}` + "\n" + `{"timestamp": 1700000000000000}` + "\n",
			"t:2: timestamp 1700000000000000 is after the year 2262 in milliseconds: microseconds? want milliseconds since 1970"},
		{"beyond float64", `{"timestamp": 1e400}` + "\n", "t:1: timestamp 1e400 is after the year 2262"},
		// 1e12 ms is 2001, 1e11 ms 1973: a typo batch-sim would replay
		// for ever and the backtest would count into 900 million seconds.
		{"json span", `{"timestamp": 1e11}` + "\n" + `{"timestamp": 1e12}` + "\n" + `{"timestamp": 1e11}` + "\n",
			"t:2: the request at 2001-09-09T01:46:40Z is 9e+08 s after the earliest one (line 1): a trace over 3 years (1e+08 s) is a typo"},
		{"azure span", "TIMESTAMP\n2023-11-16 18:17:03\n1923-11-16 18:17:04\n",
			"t:2: the request at 2023-11-16T18:17:03Z is 3.16e+09 s after the earliest one (line 3)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Read("t", strings.NewReader(tc.in))
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("err = %v, want prefix %q", err, tc.want)
			}
		})
	}
}

func TestIsPerRequest(t *testing.T) {
	for line, want := range map[string]bool{
		"TIMESTAMP,ContextTokens,GeneratedTokens\n": true,
		"\ufeffTIMESTAMP,ContextTokens\r\n":         true,
		"id, timestamp\n":                           true,
		"\"TIMESTAMP\",x\n":                         true, // quoted, as Read reads it
		`{"timestamp": 0}` + "\n":                   true,
		"timestamp,requests\n":                      false,
		"\ufefftimestamp, requests\n":               false,
		"Timestamp,Requests\n":                      false,
		"time,count\n":                              false,
		"":                                          false,
	} {
		if got := IsPerRequest(line); got != want {
			t.Errorf("IsPerRequest(%q) = %v, want %v", line, got, want)
		}
	}
}

// The three raw traces of ../shared/traces read whole, in time order.
func TestReadSharedTraces(t *testing.T) {
	dir := filepath.Join(testutil.SharedDir(t), "traces", "raw")
	for name, want := range map[string]int{
		"azure-llm-2023/AzureLLMInferenceTrace_code.csv": 8819,
		"azure-llm-2023/AzureLLMInferenceTrace_conv.csv": 19366,
		"mooncake-2025/conversation_trace.jsonl":         12031,
	} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		at, err := Read(name, f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if len(at) != want {
			t.Errorf("%s: %d requests, want %d", name, len(at), want)
		}
		for i := 1; i < len(at); i++ {
			if at[i].At.Before(at[i-1].At) {
				t.Fatalf("%s: line %d is before line %d", name, at[i].Line, at[i-1].Line)
			}
		}
		if span := at[len(at)-1].At.Sub(at[0].At); span < 50*time.Minute || span > 70*time.Minute {
			t.Errorf("%s: spans %v, want about an hour", name, span)
		}
	}
}

// Whatever the bytes, Read returns requests or an error naming the file,
// and never panics.
func FuzzRead(f *testing.F) {
	f.Add("TIMESTAMP,a\n2023-11-16 18:17:03.1,1\n")
	f.Add(`{"timestamp": 5}` + "\n")
	f.Add("timestamp,requests\n0,1\n")
	f.Fuzz(func(t *testing.T, in string) {
		at, err := Read("fuzz.trace", strings.NewReader(in))
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "fuzz.trace:") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if len(at) == 0 {
			t.Fatal("no error and no requests")
		}
		lo, hi := at[0].At, at[0].At
		for _, a := range at {
			lo, hi = minTime(lo, a.At), maxTime(hi, a.At)
		}
		if hi.Sub(lo) > MaxSpan {
			t.Fatalf("accepted a span of %v", hi.Sub(lo))
		}
	})
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
