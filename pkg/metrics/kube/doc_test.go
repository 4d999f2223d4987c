package kube

// This file is the same in every package of docs/exporter-subsystems.md
// (only the package clause differs): it parses the document's metric tables
// and fails when a collector emits a metric or label that is not there.

import (
	"bufio"
	"os"
	"path/filepath"
	"runtime"
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
func docMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	path := filepath.Join(filepath.Dir(file), "..", "..", "..", "docs", "exporter-subsystems.md")
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

// checkDocumented gathers g and fails for every family, type or label that
// the metrics reference lacks. It returns the families seen.
func checkDocumented(t *testing.T, g prometheus.Gatherer) map[string]bool {
	t.Helper()
	docs := docMetrics(t)
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	seen := map[string]bool{}
	for _, mf := range mfs {
		seen[mf.GetName()] = true
		d, ok := docs[mf.GetName()]
		if !ok {
			t.Errorf("%s is exported but not in docs/exporter-subsystems.md", mf.GetName())
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
