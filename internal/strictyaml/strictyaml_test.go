package strictyaml

import (
	"reflect"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestSuggest(t *testing.T) {
	known := []string{"enabled", "mu", "notice", "scrape_interval", "scrape_timeout", "targets", "windows"}
	for key, want := range map[string]string{
		"scrape_intervall": "scrape_interval",
		"scrape_intreval":  "scrape_interval", // a swap is one edit
		"Scrape_Interval":  "scrape_interval",
		"enable":           "enabled",
		"notic":            "notice",
		"target":           "targets",
		"mxx":              "", // two edits from mu: too many for a short key
		"scrape":           "", // far from both scrape_ keys
		"interval":         "",
		"window_list":      "",
	} {
		if got := Suggest(key, known); got != want {
			t.Errorf("Suggest(%q) = %q, want %q", key, got, want)
		}
	}
	if got := Suggest("ab", []string{"ac", "ad"}); got != "" {
		t.Errorf("a tie suggested %q", got)
	}
}

func TestCheck(t *testing.T) {
	type inner struct {
		Name string `yaml:"name"`
	}
	type config struct {
		Items []inner          `yaml:"items"`
		Named map[string]inner `yaml:"named"`
		Node  yaml.Node        `yaml:"node"`
	}
	src := "items:\n  - {name: a}\n  - {nme: b}\nnamed:\n  x: {name: c, size: 1}\nnode: {anything: 1}\nextra: 1\n"
	root := parse(t, src)
	got := values(Check(root, reflect.TypeOf(config{}), ""))
	want := []Error{
		{3, "items[1].nme", "unknown field (did you mean name?)"},
		{5, "named.x.size", "unknown field (known: name)"},
		{7, "extra", "unknown field (known: items, named, node)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Check:\n got %+v\nwant %+v", got, want)
	}
}

func TestLine(t *testing.T) {
	src := "a: 1\nb:\n  c: 2\n  list:\n    - x\n    - y: 3\n      z: 4\n"
	root := parse(t, src)
	n := root
	for path, want := range map[string]int{
		"":               1,
		"a":              1,
		"b":              2,
		"b.c":            3,
		"b.list":         4,
		"b.list[0]":      5,
		"b.list[1]":      6,
		"b.list[1].z":    7,
		"b.missing":      2, // the deepest part the file spells out
		"b.list[7]":      4,
		"b.list[1].none": 6,
		"missing":        0,
		"missing.c":      0,
	} {
		if got := Line(n, path); got != want {
			t.Errorf("Line(%q) = %d, want %d", path, got, want)
		}
	}
}

func TestNonIntegers(t *testing.T) {
	type config struct {
		N     int           `yaml:"n"`
		U     uint16        `yaml:"u"`
		P     *int          `yaml:"p"`
		D     time.Duration `yaml:"d"`
		F     float64       `yaml:"f"`
		List  []int         `yaml:"list"`
		Typed int           `yaml:"typed"`
	}
	src := "n: 5.9\nu: 1e3\np: -1e30\nd: 1.5\nf: 2.5\nlist: [1, 2.0, 3.5, -.inf]\ntyped: !!float 4\n"
	root := parse(t, src)
	got := values(NonIntegers(root, reflect.TypeOf(config{}), ""))
	want := []Error{
		{1, "n", "cannot unmarshal !!float `5.9` into int (want a whole number)"},
		// yaml.v3 decodes -1e30 and -.inf into an int as math.MinInt64.
		{3, "p", "cannot unmarshal !!float `-1e30` into int (want a whole number)"},
		{6, "list[2]", "cannot unmarshal !!float `3.5` into int (want a whole number)"},
		{6, "list[3]", "cannot unmarshal !!float `-.inf` into int (want a whole number)"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NonIntegers:\n got %+v\nwant %+v", got, want)
	}
}

// parse is the root node of a YAML document.
func parse(t *testing.T, src string) *yaml.Node {
	t.Helper()
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(src), &doc); err != nil {
		t.Fatal(err)
	}
	return doc.Content[0]
}

// values are errs by value, to compare with a table.
func values(errs []*Error) []Error {
	var out []Error
	for _, e := range errs {
		out = append(out, *e)
	}
	return out
}
