package sim

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"time"
)

// Pool is the spot availability of one pool (a zone, or an instance type in
// a zone): Data[i] holds from i*Gap after the run's start, wrapping around;
// a value > 0 means spot capacity can be had.
type Pool struct {
	Name string
	Gap  time.Duration
	Data []float64
}

// Available reports whether the pool has spot capacity at offset d after
// the run's start.
func (p *Pool) Available(d time.Duration) bool {
	i := int((d / p.Gap) % time.Duration(len(p.Data)))
	return p.Data[i] > 0
}

// MeanAvailability is the share of entries with capacity.
func (p *Pool) MeanAvailability() float64 {
	n := 0
	for _, v := range p.Data {
		if v > 0 {
			n++
		}
	}
	return float64(n) / float64(len(p.Data))
}

// LoadPool reads a spot availability file,
// {"metadata":{"gap_seconds":G},"data":[...]}.
func LoadPool(ctx context.Context, path string) (*Pool, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("spot pool: %w", err)
	}
	p, err := ParsePool(path, b)
	if err != nil {
		return nil, err
	}
	p.Name = strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
	return p, nil
}

// PoolNames names the pools of the spot files at paths: as LoadPool does,
// by the file's name without its extension (spot-high-a), and where two
// such names clash, with as many parent directories as tell the files
// apart (d1/zone, d2/zone). The same file given twice is name, name#2.
func PoolNames(paths []string) []string {
	parts := make([][]string, len(paths))
	depth := make([]int, len(paths))
	for i, p := range paths {
		p = filepath.ToSlash(filepath.Clean(p))
		parts[i] = strings.Split(strings.TrimSuffix(p, path.Ext(p)), "/")
		depth[i] = 1
	}
	names := make([]string, len(paths))
	for {
		for i, ps := range parts {
			names[i] = strings.Join(ps[len(ps)-depth[i]:], "/")
		}
		deeper := false
		for i := range names {
			for j := range names {
				if i != j && names[i] == names[j] && depth[i] < len(parts[i]) {
					depth[i]++
					deeper = true
					break
				}
			}
		}
		if !deeper {
			break
		}
	}
	seen := map[string]int{}
	for i, n := range names {
		if seen[n]++; seen[n] > 1 {
			names[i] = fmt.Sprintf("%s#%d", n, seen[n])
		}
	}
	return names
}

// ParsePool parses a spot availability file; errors name the file and,
// where the JSON says where, the line.
func ParsePool(name string, b []byte) (*Pool, error) {
	var doc struct {
		Metadata *struct {
			GapSeconds *float64 `json:"gap_seconds"`
		} `json:"metadata"`
		Data *[]float64 `json:"data"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("%s:%d: not JSON: %v", name, lineAt(b, se.Offset), se)
		case errors.As(err, &te):
			field := te.Field
			if field == "" {
				field = "the document"
			}
			return nil, fmt.Errorf("%s:%d: wrong shape: %s is a JSON %s, want %s (a spot file is {\"metadata\":{\"gap_seconds\":G},\"data\":[0/1...]})",
				name, lineAt(b, te.Offset), field, te.Value, jsonKind(te.Type))
		case errors.Is(err, io.EOF):
			return nil, fmt.Errorf("%s: empty file: want {\"metadata\":{\"gap_seconds\":G},\"data\":[...]}", name)
		case errors.Is(err, io.ErrUnexpectedEOF):
			return nil, fmt.Errorf("%s:%d: not JSON: the file ends inside the document (truncated?)", name, lineAt(b, int64(len(b))))
		default:
			return nil, fmt.Errorf("%s: %w", name, err)
		}
	}
	if dec.More() {
		return nil, fmt.Errorf("%s:%d: trailing data after the JSON object", name, lineAt(b, dec.InputOffset()))
	}
	switch {
	case doc.Metadata == nil || doc.Metadata.GapSeconds == nil:
		return nil, fmt.Errorf("%s:1: wrong shape: no metadata.gap_seconds", name)
	case doc.Data == nil:
		return nil, fmt.Errorf("%s:1: wrong shape: no data array", name)
	case len(*doc.Data) == 0:
		return nil, fmt.Errorf("%s:1: data is empty", name)
	}
	g := *doc.Metadata.GapSeconds
	if !(g >= 0.001) || g > 1e9 {
		return nil, fmt.Errorf("%s:1: metadata.gap_seconds %v must be positive (0.001 to 1e9)", name, g)
	}
	for i, v := range *doc.Data {
		if math.IsNaN(v) || v < 0 {
			return nil, fmt.Errorf("%s: data[%d] = %v, want 0 (unavailable) or > 0 (available)", name, i, v)
		}
	}
	return &Pool{Name: name, Gap: time.Duration(g * float64(time.Second)), Data: *doc.Data}, nil
}

// jsonKind names a Go type the way a JSON author would.
func jsonKind(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Float64, reflect.Float32, reflect.Int, reflect.Int64:
		return "a number"
	default:
		return t.String()
	}
}

// lineAt is the 1-based line of byte offset off in b.
func lineAt(b []byte, off int64) int {
	off = min(max(off, 0), int64(len(b)))
	return 1 + bytes.Count(b[:off], []byte{'\n'})
}
