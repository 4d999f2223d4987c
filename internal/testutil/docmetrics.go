package testutil

// Metrics reference checks shared by the packages documented in
// docs/exporter-subsystems.md: parse the document's metric tables and fail
// when a collector emits a metric, type or label that is not there.

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

type docMetric struct {
	typ    string
	labels map[string]bool
}

// docMetrics parses every `| name | type | labels | help |` table of
// docs/exporter-subsystems.md.
func docMetrics(t testing.TB, path string) map[string]docMetric {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("metrics reference: %v", err)
	}
	defer f.Close()
	out := map[string]docMetric{}
	inTable := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "|") {
			inTable = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(strings.ReplaceAll(cells[i], "`", ""))
		}
		if len(cells) == 4 && cells[0] == "name" && cells[1] == "type" && cells[2] == "labels" && cells[3] == "help" {
			inTable = true
			continue
		}
		if !inTable || strings.HasPrefix(cells[0], "---") || len(cells) < 4 {
			continue
		}
		m := docMetric{typ: cells[1], labels: map[string]bool{}}
		for _, l := range strings.Split(cells[2], ",") {
			if l = strings.TrimSpace(l); l != "" && l != "-" && l != "—" {
				m.labels[l] = true
			}
		}
		if _, dup := out[cells[0]]; dup {
			t.Errorf("metrics reference: %s documented twice", cells[0])
		}
		out[cells[0]] = m
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// CheckDocumented gathers g and fails for every family, type or label that
// the metrics reference at repository-relative path doc lacks. It returns
// the families seen.
func CheckDocumented(t testing.TB, g prometheus.Gatherer, doc string) map[string]bool {
	t.Helper()
	docs := docMetrics(t, filepath.Join(repoRoot(t), doc))
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		d, ok := docs[mf.GetName()]
		if !ok {
			t.Errorf("%s is exported but not in %s", mf.GetName(), doc)
			continue
		}
		if want := strings.ToLower(mf.GetType().String()); d.typ != want {
			t.Errorf("%s is a %s but documented as %q", mf.GetName(), want, d.typ)
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if !d.labels[lp.GetName()] {
					t.Errorf("%s has label %q, not documented", mf.GetName(), lp.GetName())
				}
			}
		}
	}
	return seen
}

// repoRoot is the directory holding go.mod above the test's directory.
func repoRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the test's directory")
		}
		dir = parent
	}
}
