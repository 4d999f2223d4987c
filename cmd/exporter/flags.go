package main

import (
	"flag"
	"io"
)

// options are the command-line flags, named as every Prometheus exporter
// names them.
type options struct {
	listenAddress string
	telemetryPath string
	configFile    string
	webConfigFile string
	demo          bool
	logLevel      string
	maxRequests   int
	spot          spotFlags

	// listening, when set (tests), receives the bound address once the
	// server listens, so a test can use port 0.
	listening chan<- string
}

func parseFlags(args []string, out io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("exporter", flag.ContinueOnError)
	fs.SetOutput(out)
	fs.StringVar(&o.listenAddress, "web.listen-address", ":9436", "Address to listen on for metrics and health endpoints.")
	fs.StringVar(&o.telemetryPath, "web.telemetry-path", "/metrics", "Path under which to expose metrics.")
	fs.StringVar(&o.configFile, "config.file", "", "Exporter configuration file (YAML; see docs/exporter.md). Optional with --demo.")
	fs.StringVar(&o.webConfigFile, "web.config.file", "", "exporter-toolkit web configuration file enabling TLS and/or basic auth.")
	fs.BoolVar(&o.demo, "demo", false, "Scrape a built-in fleet of simulated model servers of every dialect; GPUs from go-nvml's mock when no GPU is present.")
	fs.StringVar(&o.logLevel, "log.level", "info", "Log level: debug, info, warn, error.")
	fs.IntVar(&o.maxRequests, "web.max-requests", 40, "Maximum concurrent scrapes of the metrics endpoint; more get HTTP 503.")
	fs.StringVar(&o.spot.endpoint, "spot.metadata-endpoint", "", "Base URL of the instance metadata service the spot watchers poll (default the link-local http://169.254.169.254; tests point it at a fake).")
	fs.StringVar(&o.spot.pool, "spot.pool", "", "Node pool of this node, the pool label of the spot interruption series (adapter policies match tiers.spot.pools against it).")
	err := fs.Parse(args)
	return o, err
}
