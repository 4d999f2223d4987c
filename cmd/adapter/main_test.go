package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"os"
	"os/exec"
	"regexp"
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

// TestHelp: adapter -h lists the subcommands first, then the flags of
// serve, which runs without one (it showed serve's flags only, and only
// adapter help listed the subcommands); every subcommand's -h lists its
// flags (forecast's listed none).
func TestHelp(t *testing.T) {
	for _, arg := range []string{"-h", "-help", "--help"} {
		var stdout, stderr bytes.Buffer
		if err := dispatch(context.Background(), []string{arg}, &stdout, &stderr); err != nil && !errors.Is(err, flag.ErrHelp) {
			t.Fatalf("adapter %s: %v", arg, err)
		}
		out := stderr.String()
		if !strings.HasPrefix(out, "usage: adapter [SUBCOMMAND] [FLAGS]\n") {
			t.Errorf("adapter %s starts with %q, want the subcommands", arg, out[:min(len(out), 60)])
		}
		serve := strings.Index(out, "usage: adapter [serve]")
		if serve < 0 || !strings.Contains(out[serve:], "-config.file") {
			t.Errorf("adapter %s: no serve flags after the subcommands:\n%s", arg, out)
			continue
		}
		for name := range commands {
			if i := strings.Index(out, "  "+name+" "); i < 0 || i > serve {
				t.Errorf("adapter %s: subcommand %s not listed before serve's flags", arg, name)
			}
		}
	}
	flagLine := regexp.MustCompile(`(?m)^  -[a-z]`)
	for name := range commands {
		var stdout, stderr bytes.Buffer
		if err := dispatch(context.Background(), []string{name, "-h"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
			t.Errorf("adapter %s -h: %v, want flag.ErrHelp", name, err)
		}
		if !flagLine.MatchString(stderr.String()) {
			t.Errorf("adapter %s -h lists no flags:\n%s", name, stderr.String())
		}
	}
}
