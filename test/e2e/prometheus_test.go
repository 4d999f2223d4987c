//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/infercast/infercast/internal/testutil"
)

// promPolicy is e2ePolicy reading demand through PromQL from a real
// Prometheus: the cluster tests' source. Like e2ePolicy it forecasts on a
// 5 s step: at 1 s, the 11 s horizon is read at the 99th percentile of each
// step (q^(1/11)), and with the test's 5-15x jumps among the first few
// hundred errors that percentile is a jump (targets stuck at max_replicas
// minutes after demand fell, as CI saw).
var promPolicy = policyYAML(quick("chat", "query: sum(rate(chat_requests_total[5s]))", 1), quick("wake", "query: sum(rate(wake_requests_total[5s]))", 0))

// demandChain starts the demand source (chat at 2 req/s, wake at 0), a real
// Prometheus scraping it every second and infercast's adapter reading
// Prometheus, and waits for the adapter's first plans.
func demandChain(t *testing.T, adapterBin, dir string) (*demand, *prometheus, *adapter) {
	t.Helper()
	promBin := testutil.Binary(t, "prometheus")
	d := newDemand(t)
	d.set("chat_requests_total", 2)
	d.set("wake_requests_total", 0)
	pr := newPrometheus(t, promBin, dir, d.srv.Listener.Addr().String())
	pr.start(t)
	a := newAdapterWith(t, adapterBin, dir, promPolicy, "--prometheus.url", pr.url(), "--prometheus.timeout", "3s")
	a.start(t)
	return d, pr, a
}

// prometheus is a real Prometheus scraping the demand source (and any
// other targets) every second.
type prometheus struct {
	bin, dir, config, data string
	port, runs             int
	p                      *proc
}

func newPrometheus(t *testing.T, bin, dir string, targets ...string) *prometheus {
	t.Helper()
	data := t.TempDir()
	pr := &prometheus{bin: bin, dir: dir, config: filepath.Join(data, "prometheus.yml"), data: filepath.Join(data, "tsdb"), port: freePort(t)}
	quoted := make([]string, len(targets))
	for i, tg := range targets {
		quoted[i] = strconv.Quote(tg)
	}
	cfg := fmt.Sprintf("global: {scrape_interval: 1s, scrape_timeout: 900ms}\nscrape_configs:\n- job_name: demand\n  static_configs: [{targets: [%s]}]\n", strings.Join(quoted, ", "))
	if err := os.WriteFile(pr.config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return pr
}

func (pr *prometheus) url() string { return "http://127.0.0.1:" + strconv.Itoa(pr.port) }

// start runs Prometheus on its fixed port and data directory (a restart
// replays its WAL) and waits for /-/ready.
func (pr *prometheus) start(t *testing.T) {
	t.Helper()
	defer phase(t, "prometheus start")()
	pr.runs++
	pr.p = start(t, pr.dir, fmt.Sprintf("prometheus-%d", pr.runs), nil, pr.bin,
		"--config.file", pr.config, "--storage.tsdb.path", pr.data,
		"--web.listen-address", "127.0.0.1:"+strconv.Itoa(pr.port))
	eventually(t, "prometheus /-/ready", 90*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		code, body, err := httpGet(ctx, pr.url()+"/-/ready")
		if err != nil {
			return false, err.Error()
		}
		return code == 200, fmt.Sprintf("%d %s", code, body)
	}, pr.p)
}

// TestAdapterPrometheus: the adapter reads demand from a real Prometheus
// scraping the demand source; its target follows demand; Prometheus killed
// (SIGKILL) leaves the adapter serving a sane target, and once Prometheus is
// back (same data directory) the target follows demand again.
func TestAdapterPrometheus(t *testing.T) {
	b := findBinaries(t, "adapter")
	defer phase(t, "TestAdapterPrometheus total")()
	d, pr, a := demandChain(t, b.adapter, logDir(t))

	low := settleTarget(t, a, "chat", "prometheus: target at 2 req/s", func(n int) (bool, string) { return n >= 1, "below min_replicas" }, pr.p)
	d.set("chat_requests_total", 30)
	high := settleTarget(t, a, "chat", "prometheus: demand rises to 30 req/s", func(n int) (bool, string) {
		return n >= low+5 && n >= 15, fmt.Sprintf("not above max(%d, 15)", low+5)
	}, pr.p)

	func() {
		defer phase(t, "fault: prometheus killed for 20s")()
		pr.p.kill()
		// Last good plan, then reactive: never below min_replicas or above max.
		saneFor(context.Background(), t, a, "target without Prometheus", 20*time.Second, a.targetOf("chat"))
		d.set("chat_requests_total", 4)
		pr.start(t)
	}()
	settleTarget(t, a, "chat", "prometheus: back, demand falls to 4 req/s", func(n int) (bool, string) { return n <= high/2, fmt.Sprintf("not at or below %d", high/2) }, pr.p)
}
