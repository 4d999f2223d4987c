// Package strictyaml reports the problems of a YAML configuration file by
// line and key path — global.scrape_interval, targets[1].dialect,
// tiers.spot.pools[1] — so that a user reads FILE:LINE: PATH: PROBLEM
// instead of yaml.v3's messages, which name Go types and no path. The
// policy file (pkg/capacity) and the exporter's configuration
// (pkg/metrics) both report through it.
package strictyaml

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Error is one problem of a file: the line it is on, the key path of the
// value (as the file spells it: scale_down.stabilization,
// tiers.spot.pools[1]; empty for the document) and what is wrong.
type Error struct {
	Line int
	Path string
	Msg  string
}

// Error is "PATH: MSG" (or MSG without a path); the caller adds the file
// and line, and whatever else it names (a workload).
func (e *Error) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// Check walks node n against Go type t (the type n is decoded into) and
// returns, in the file's order, every key t does not have ("unknown
// field", with the known key it is likely a typo of, or the known keys).
// path is the key path of n ("" for the document).
func Check(n *yaml.Node, t reflect.Type, path string) []*Error {
	var errs []*Error
	walk(n, t, path, func(n *yaml.Node, t reflect.Type, path string, fields map[string]reflect.Type) {
		if fields != nil {
			errs = append(errs, &Error{Line: n.Line, Path: path, Msg: unknownField(n.Value, fields)})
		}
	})
	return errs
}

// NonIntegers walks node n like Check and returns, in the file's order,
// every number with a fraction given for an integer field: yaml.v3
// decodes max_replicas: 5.9 as 5 without a word. A whole number written
// as a float (5.0, 1e3) is a whole number.
func NonIntegers(n *yaml.Node, t reflect.Type, path string) []*Error {
	var errs []*Error
	walk(n, t, path, func(n *yaml.Node, t reflect.Type, path string, fields map[string]reflect.Type) {
		if fields != nil || n.Kind != yaml.ScalarNode || !isInteger(t) || n.ShortTag() != "!!float" {
			return
		}
		var f float64
		if err := n.Decode(&f); err == nil && f == math.Trunc(f) && math.Abs(f) < 1<<63 {
			return
		}
		errs = append(errs, &Error{Line: n.Line, Path: path,
			Msg: fmt.Sprintf("cannot unmarshal !!float `%s` into %s (want a whole number)", cut(n.Value), t)})
	})
	return errs
}

// Merge returns the problems of a and b in the file's order, without
// those of b that a already reports (the same line and path): yaml.v3
// itself refuses some values NonIntegers finds (.inf, .nan).
func Merge(a, b []*Error) []*Error {
	out := slices.Clone(a)
	for _, e := range b {
		if !slices.ContainsFunc(a, func(x *Error) bool { return x.Line == e.Line && x.Path == e.Path }) {
			out = append(out, e)
		}
	}
	slices.SortStableFunc(out, func(x, y *Error) int { return x.Line - y.Line })
	return out
}

var (
	durationType    = reflect.TypeOf(time.Duration(0))
	unmarshalerType = reflect.TypeOf((*yaml.Unmarshaler)(nil)).Elem()
	nodeType        = reflect.TypeOf(yaml.Node{})
)

// walk calls visit for every key of a struct mapping that t does not have
// (n the key, fields the keys t has), and for every other node with the
// type it decodes into (fields nil).
func walk(n *yaml.Node, t reflect.Type, path string, visit func(n *yaml.Node, t reflect.Type, path string, fields map[string]reflect.Type)) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return // decoded by its own rules
	}
	switch {
	case n.Kind == yaml.SequenceNode && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		for i, c := range n.Content {
			walk(c, t.Elem(), fmt.Sprintf("%s[%d]", path, i), visit)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Map:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walk(n.Content[i+1], t.Elem(), joinPath(path, n.Content[i].Value), visit)
		}
	case n.Kind == yaml.MappingNode && t.Kind() == reflect.Struct:
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("yaml"), ",")[0]
			if tag != "" && tag != "-" && f.IsExported() {
				fields[tag] = f.Type
			}
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if ft, ok := fields[k.Value]; ok {
				walk(n.Content[i+1], ft, joinPath(path, k.Value), visit)
			} else {
				visit(k, nil, joinPath(path, k.Value), fields)
			}
		}
	default:
		visit(n, t, path, nil)
	}
}

func isInteger(t reflect.Type) bool {
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return t != durationType // a duration wants a unit: yaml.v3 refuses numbers
	}
	return false
}

// cut shortens a value as yaml.v3 does in its type errors.
func cut(v string) string {
	if len(v) > 10 {
		return v[:7] + "..."
	}
	return v
}

// unknownField says a key is not one of fields: "did you mean KEY?" when
// one known key is a likely typo of it, else the known keys.
func unknownField(key string, fields map[string]reflect.Type) string {
	known := make([]string, 0, len(fields))
	for k := range fields {
		known = append(known, k)
	}
	sort.Strings(known)
	if s := Suggest(key, known); s != "" {
		return fmt.Sprintf("unknown field (did you mean %s?)", s)
	}
	return fmt.Sprintf("unknown field (known: %s)", strings.Join(known, ", "))
}

// Suggest returns the one of known that key is most likely a typo of: at
// most two edits away (one for keys of up to five letters); "" when none
// is, or when two are equally close.
func Suggest(key string, known []string) string {
	best, bestD, tie := "", math.MaxInt, false
	for _, k := range known {
		d := editDistance(strings.ToLower(key), strings.ToLower(k))
		switch {
		case d < bestD:
			best, bestD, tie = k, d, false
		case d == bestD:
			tie = true
		}
	}
	limit := 2
	if len(best) <= 5 {
		limit = 1
	}
	if best == "" || tie || bestD > limit {
		return ""
	}
	return best
}

// editDistance is the Damerau–Levenshtein (optimal string alignment)
// distance: insertions, deletions, substitutions and swaps of neighbours.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			c := 1
			if ra[i-1] == rb[j-1] {
				c = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+c)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

var (
	// yaml.v3's type errors: "line N: cannot unmarshal !!TAG `VALUE` into
	// TYPE" (VALUE cut to 7 characters and "..." past 10; none for !!map
	// and !!seq), and "line N: mapping key "K" already defined at line M".
	cannotUnmarshal = regexp.MustCompile("^line ([0-9]+): cannot unmarshal (!![a-z]+)(?: `([^`]*)`)? into (.+)$")
	duplicateKey    = regexp.MustCompile(`^line ([0-9]+): mapping key "(.*)" already defined`)
	errorLine       = regexp.MustCompile(`^line ([0-9]+): `)
	// yaml.v3's syntax errors: "yaml: line N: MESSAGE".
	syntaxError = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)
)

// DecodeErrors turns the error of decoding node n (n.Decode) into one
// Error per problem, each at its line with the key path (below n) of the
// value it is about, e.g. line 6, cold_start, cannot unmarshal !!int `180`
// into time.Duration (want a duration with a unit, e.g. "180s"). An error
// that is not a yaml.v3 type error is one Error at n's line.
func DecodeErrors(n *yaml.Node, err error) []*Error {
	var te *yaml.TypeError
	if !errors.As(err, &te) {
		return []*Error{{Line: n.Line, Msg: err.Error()}}
	}
	out := make([]*Error, 0, len(te.Errors))
	for _, msg := range te.Errors {
		line, field, what := n.Line, "", msg
		if m := errorLine.FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			what = strings.TrimPrefix(msg, m[0])
		}
		switch m := cannotUnmarshal.FindStringSubmatch(msg); {
		case m != nil:
			field = fieldAt(n, line, func(v *yaml.Node) bool { return valueMatches(v, m[2], m[3]) })
			if m[4] == "time.Duration" {
				what += ` (want a duration with a unit, e.g. "180s")`
			}
		default:
			if m := duplicateKey.FindStringSubmatch(msg); m != nil {
				field = keyAt(n, line, m[2])
			}
		}
		if field == "" {
			field = fieldAt(n, line, func(*yaml.Node) bool { return true })
		}
		out = append(out, &Error{Line: line, Path: field, Msg: what})
	}
	return out
}

// SyntaxError is the line and message of a yaml.v3 syntax error ("yaml:
// line 3: did not find expected key"); ok is false for other errors.
func SyntaxError(err error) (line int, msg string, ok bool) {
	m := syntaxError.FindStringSubmatch(err.Error())
	if m == nil {
		return 0, "", false
	}
	line, _ = strconv.Atoi(m[1])
	return line, m[2], true
}

// valueMatches says whether n is the node a type error describes: its tag
// (!!map, !!seq) or its scalar value, cut as yaml.v3 cuts it.
func valueMatches(n *yaml.Node, tag, quoted string) bool {
	switch tag {
	case "!!map":
		return n.Kind == yaml.MappingNode
	case "!!seq":
		return n.Kind == yaml.SequenceNode
	}
	if n.Kind != yaml.ScalarNode {
		return false
	}
	if c, ok := strings.CutSuffix(quoted, "..."); ok && len(n.Value) > 10 {
		return strings.HasPrefix(n.Value, c)
	}
	return n.Value == quoted
}

// fieldAt returns the key path (tiers.spot.notice, tiers.spot.pools[1]) of
// the deepest value node under n on line that match accepts (a mapping
// starts on its first key's line: its parent's value shares that line);
// "" if none.
func fieldAt(n *yaml.Node, line int, match func(*yaml.Node) bool) string {
	var walk func(n *yaml.Node, path string) (string, bool)
	walk = func(n *yaml.Node, path string) (string, bool) {
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				p := joinPath(path, n.Content[i].Value)
				if f, ok := walk(n.Content[i+1], p); ok {
					return f, true
				}
				if v := n.Content[i+1]; v.Line == line && match(v) {
					return p, true
				}
			}
		case yaml.SequenceNode:
			for i, c := range n.Content {
				p := fmt.Sprintf("%s[%d]", path, i)
				if f, ok := walk(c, p); ok {
					return f, true
				}
				if c.Line == line && match(c) {
					return p, true
				}
			}
		}
		return "", false
	}
	f, _ := walk(n, "")
	return f
}

// keyAt returns the key path of key on line under n; "" if none.
func keyAt(n *yaml.Node, line int, key string) string {
	var walk func(n *yaml.Node, path string) string
	walk = func(n *yaml.Node, path string) string {
		for i, c := range n.Content {
			p := path
			switch n.Kind {
			case yaml.MappingNode:
				if i%2 == 0 {
					if c.Line == line && c.Value == key {
						return joinPath(path, key)
					}
					continue
				}
				p = joinPath(path, n.Content[i-1].Value)
			case yaml.SequenceNode:
				p = fmt.Sprintf("%s[%d]", path, i)
			}
			if f := walk(c, p); f != "" {
				return f
			}
		}
		return ""
	}
	return walk(n, "")
}

// Line is the line of the key path below n (scale_down.stabilization,
// targets[1].dialect): the line of its key, or of its list item. A path
// the file does not spell out in full (a setting left to its default)
// is on the line of the deepest part it does: the line of tiers.spot for
// tiers.spot.failure_domains when spot does not set failure_domains. 0
// when not even the path's first key is there.
func Line(n *yaml.Node, path string) int {
	line := 0
	if path == "" {
		return n.Line
	}
	for _, part := range strings.Split(path, ".") {
		key, rest, _ := strings.Cut(part, "[")
		if key != "" {
			l, v := keyLine(n, key)
			if v == nil {
				return line
			}
			line, n = l, v
		}
		for rest != "" {
			idx, after, ok := strings.Cut(rest, "]")
			i, err := strconv.Atoi(idx)
			if !ok || err != nil || n.Kind != yaml.SequenceNode || i < 0 || i >= len(n.Content) {
				return line
			}
			n = n.Content[i]
			line = n.Line
			rest = strings.TrimPrefix(after, "[")
		}
	}
	return line
}

// KeysLine is Line for a path of mapping keys given apart, for keys that
// hold dots themselves (instance_types, g5.xlarge, on_demand).
func KeysLine(n *yaml.Node, keys ...string) int {
	line := 0
	for _, k := range keys {
		l, v := keyLine(n, k)
		if v == nil {
			return line
		}
		line, n = l, v
	}
	return line
}

// keyLine is the line of key in mapping node n and its value; nil when n
// is nil, not a mapping, or has no such key.
func keyLine(n *yaml.Node, key string) (int, *yaml.Node) {
	if n == nil || n.Kind != yaml.MappingNode {
		return 0, nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line, n.Content[i+1]
		}
	}
	return 0, nil
}

// Value is the value of key in mapping node n; nil when n is nil, not a
// mapping, or has no such key.
func Value(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
