package dashboards

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
)

// Output paths, relative to the repository root.
const (
	JSONDir    = "dashboards/json"
	ChartDir   = "charts/infercast/files/dashboards"
	PreviewDoc = "docs/dashboards.md"
)

// Render builds every dashboard of All and returns the files the generator
// writes, keyed by path relative to the repository root: each dashboard's
// JSON (twice: dashboards/json/ and the chart's copy) and the Markdown
// preview.
func Render() (map[string][]byte, error) {
	files := map[string][]byte{}
	specs := All()
	seen := map[string]bool{}
	for _, s := range specs {
		if seen[s.UID] || seen[s.File] {
			return nil, fmt.Errorf("dashboard %q: uid %q or file %q used twice", s.Title, s.UID, s.File)
		}
		seen[s.UID], seen[s.File] = true, true
		d, err := Build(s)
		if err != nil {
			return nil, err
		}
		b, err := json.MarshalIndent(d, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("%s: %w", s.Title, err)
		}
		b = append(b, '\n')
		files[path.Join(JSONDir, s.File+".json")] = b
		files[path.Join(ChartDir, s.File+".json")] = b
	}
	var md bytes.Buffer
	if err := Preview(&md, specs); err != nil {
		return nil, err
	}
	files[PreviewDoc] = md.Bytes()
	return files, nil
}
