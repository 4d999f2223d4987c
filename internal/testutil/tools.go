// Package testutil holds helpers shared by the project's tests.
package testutil

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Binary returns the path of an external tool (prometheus, promtool, helm,
// kubeconform, amtool, ghz, ...) that an integration test needs. It looks in
// $INFERCAST_TOOLS_BIN (where hack/tools.sh installs the pinned tools), then
// on PATH. When the tool is missing the test is skipped, unless
// INFERCAST_REQUIRE_TOOLS=1 (set by `make test` and CI), where it fails: a
// missing tool must never turn a red test green.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if dir := os.Getenv("INFERCAST_TOOLS_BIN"); dir != "" {
		p := filepath.Join(dir, name)
		if st, err := os.Stat(p); err == nil && !st.IsDir() {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("INFERCAST_REQUIRE_TOOLS") == "1" {
		t.Fatalf("%s not found in $INFERCAST_TOOLS_BIN or PATH; run hack/tools.sh", name)
	}
	t.Skipf("%s not installed (run hack/tools.sh, or make test)", name)
	return ""
}

// SharedDir returns ../shared relative to the repository root (traces and
// design docs), or skips/fails like Binary when it is absent.
func SharedDir(t testing.TB) string {
	t.Helper()
	dir := repoRoot(t)
	shared := filepath.Join(filepath.Dir(dir), "shared")
	if _, err := os.Stat(filepath.Join(shared, "traces")); err != nil {
		if os.Getenv("INFERCAST_REQUIRE_TOOLS") == "1" {
			t.Fatalf("../shared/traces not found beside the repository: %v", err)
		}
		t.Skipf("../shared/traces not found beside the repository")
	}
	return shared
}
