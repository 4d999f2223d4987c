package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// The Kubernetes libraries' klog lines go through the command's logger, at
// its level, instead of klog's own format on stderr. (klog hands warnings
// on as info: only errors pass a warn logger.) klog is process-wide and
// other tests' informers use it, so each case runs in a child process.
func TestKlogGoesThroughTheLogger(t *testing.T) {
	if level := os.Getenv("INFERCAST_KLOG_CHILD"); level != "" {
		log, err := newLogger(os.Stderr, level)
		if err != nil {
			t.Fatal(err)
		}
		klogTo(log)
		klog.Info("Serving securely on 127.0.0.1:6443")
		klog.Error("serving failed")
		klog.Flush()
		return
	}
	for _, tc := range []struct {
		level       string
		want, avoid string
	}{
		{"warn", `level=ERROR msg="serving failed" component=k8s`, "Serving securely"},
		{"info", `level=INFO msg="Serving securely on 127.0.0.1:6443" component=k8s`, "] Serving securely"},
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestKlogGoesThroughTheLogger$")
		cmd.Env = append(os.Environ(), "INFERCAST_KLOG_CHILD="+tc.level)
		b, err := cmd.CombinedOutput()
		out := string(b)
		if err != nil {
			t.Fatalf("at %s: %v\n%s", tc.level, err, out)
		}
		if !strings.Contains(out, tc.want) || strings.Contains(out, tc.avoid) {
			t.Errorf("at %s: %q; want %q and not %q", tc.level, out, tc.want, tc.avoid)
		}
	}
}
