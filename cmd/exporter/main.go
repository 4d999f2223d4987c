// Command exporter scrapes model servers (vLLM, Triton, TGI, SGLang, Ray
// Serve, Knative/KServe, or a generic mapping), GPUs, spot-interruption
// notices and spend, and serves them as Prometheus metrics. See
// docs/exporter.md.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"k8s.io/klog/v2"
)

func main() {
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		os.Exit(2)
	}
	level := new(slog.LevelVar)
	if err := level.UnmarshalText([]byte(opts.logLevel)); err != nil {
		fmt.Fprintf(os.Stderr, "--log.level: %v\n", err)
		os.Exit(2)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	// client-go (pod discovery) logs through klog: one format, one level.
	klog.SetSlogLogger(logger.With("component", "k8s"))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, logger); err != nil {
		logger.Error("exporter stopped", "err", err)
		stop()
		os.Exit(1)
	}
}
