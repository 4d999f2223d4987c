package main

import (
	"strings"
	"testing"

	"k8s.io/klog/v2"
)

// The Kubernetes libraries' klog lines go through the command's logger, at
// its level, instead of klog's own format on stderr. (klog hands warnings
// on as info: only errors pass a warn logger.)
func TestKlogGoesThroughTheLogger(t *testing.T) {
	t.Cleanup(klog.ClearLogger)
	for _, tc := range []struct {
		level       string
		want, avoid string
	}{
		{"warn", `level=ERROR msg="serving failed" component=k8s`, "Serving securely"},
		{"info", `level=INFO msg="Serving securely on 127.0.0.1:6443" component=k8s`, "] Serving securely"},
	} {
		var buf lockedBuffer
		log, err := newLogger(&buf, tc.level)
		if err != nil {
			t.Fatal(err)
		}
		klogTo(log)
		klog.Info("Serving securely on 127.0.0.1:6443")
		klog.Error("serving failed")
		klog.Flush()
		out := buf.String()
		if !strings.Contains(out, tc.want) || strings.Contains(out, tc.avoid) {
			t.Errorf("at %s: %q; want %q and not %q", tc.level, out, tc.want, tc.avoid)
		}
	}
}
