// Command gen writes infercast's dashboards: the JSON under dashboards/json/
// and charts/infercast/files/dashboards/, and the layout preview in
// docs/dashboards.md, and the compact preview between the dashboards
// markers of README.md (nothing else of the README is touched). Run from the
// repository root:
//
//	go run ./dashboards/gen
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/infercast/infercast/dashboards"
)

func main() {
	root := flag.String("root", ".", "repository root")
	flag.Parse()
	if err := run(*root); err != nil {
		fmt.Fprintln(os.Stderr, "gen:", err)
		os.Exit(1)
	}
}

func run(root string) error {
	files, err := dashboards.Render()
	if err != nil {
		return err
	}
	// Stale dashboards (a renamed or removed Spec) must not linger.
	for _, dir := range []string{dashboards.JSONDir, dashboards.ChartDir} {
		old, err := filepath.Glob(filepath.Join(root, dir, "*.json"))
		if err != nil {
			return err
		}
		for _, f := range old {
			rel, err := filepath.Rel(root, f)
			if err != nil {
				return err
			}
			if _, keep := files[filepath.ToSlash(rel)]; !keep {
				if err := os.Remove(f); err != nil {
					return err
				}
			}
		}
	}
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		full := filepath.Join(root, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, files[p], 0o644); err != nil {
			return err
		}
		fmt.Println("wrote", p)
	}
	return readme(root)
}

// readme rewrites only the marked region of README.md, reading the file
// right before writing it: people edit the rest of it by hand.
func readme(root string) error {
	region, err := dashboards.Readme()
	if err != nil {
		return err
	}
	full := filepath.Join(root, dashboards.ReadmeDoc)
	old, err := os.ReadFile(full)
	if err != nil {
		return err
	}
	b, err := dashboards.SpliceReadme(old, region)
	if err != nil {
		return err
	}
	if bytes.Equal(b, old) {
		return nil
	}
	if err := os.WriteFile(full, b, 0o644); err != nil {
		return err
	}
	fmt.Println("wrote", dashboards.ReadmeDoc, "(the dashboards region)")
	return nil
}
