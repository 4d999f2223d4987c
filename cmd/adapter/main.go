// Command adapter is infercast's predictive autoscaler adapter. Subcommands:
//
//	serve      (default) plan replicas and serve them to KEDA and the HPA
//	demo       the whole loop in one process, on a simulated fleet
//	backtest   replay a trace through a policy, report cost and SLO
//	forecast   forecast a trace and score the forecasts
//	batch-sim  replay a per-request trace through the batch controller
//
// Each subcommand lives in its own file and registers itself in commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sort"
	"syscall"

	"k8s.io/klog/v2"
)

// command is one subcommand: run parses args and does the work, writing its
// report to stdout; it returns an error instead of exiting.
type command struct {
	summary string
	run     func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

// commands is filled by the init functions of the subcommand files.
var commands = map[string]command{}

func register(name string, c command) {
	if _, dup := commands[name]; dup {
		panic("adapter: subcommand registered twice: " + name)
	}
	commands[name] = c
}

// routeKlog sends the logs of the Kubernetes libraries (the custom
// metrics API server, client-go) through a command's logger. main sets it:
// klog is process-wide, so tests, which run commands side by side, leave
// it as it is.
var routeKlog = func(*slog.Logger) {}

// klogTo makes klog log through log, at its level: the API server's
// start-up and shutdown chatter is info, out of sight at the demo's warn
// (klog hands its warnings on as info too; errors stay errors).
func klogTo(log *slog.Logger) { klog.SetSlogLogger(log.With("component", "k8s")) }

func main() {
	routeKlog = klogTo
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := dispatch(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "adapter:", err)
		os.Exit(1)
	}
}

// dispatch picks the subcommand; without one (or with only flags) it serves.
// adapter -h lists the subcommands, then serve's flags.
func dispatch(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || len(args[0]) == 0 || args[0][0] == '-' {
		if len(args) > 0 && slices.Contains([]string{"-h", "-help", "--help"}, args[0]) {
			usage(stderr)
			fmt.Fprintln(stderr)
			_, err := parseServeFlags(args[:1], stderr)
			return err
		}
		args = append([]string{"serve"}, args...)
	}
	name, args := args[0], args[1:]
	if name == "help" {
		usage(stderr)
		return nil
	}
	c, ok := commands[name]
	if !ok {
		usage(stderr)
		return fmt.Errorf("unknown subcommand %q", name)
	}
	return c.run(ctx, args, stdout, stderr)
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: adapter [SUBCOMMAND] [FLAGS]")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, commands[n].summary)
	}
	fmt.Fprintln(w, "Without a subcommand, adapter serves. adapter SUBCOMMAND -h lists a subcommand's flags.")
}
