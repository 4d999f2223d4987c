package metrics

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestReloader: a good file applies, a bad one keeps the running config and
// sets last_reload_successful to 0, no file at all (a demo) is an error.
func TestReloader(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exporter.yaml")
	write := func(body string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exp, err := New(DefaultConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReloader(path, exp, nil)
	wantOK := func(v string) {
		t.Helper()
		const head = "# HELP infercast_exporter_config_last_reload_successful 1 when the last configuration reload succeeded (or none was attempted), else 0.\n# TYPE infercast_exporter_config_last_reload_successful gauge\n"
		if err := testutil.CollectAndCompare(r, strings.NewReader(head+"infercast_exporter_config_last_reload_successful "+v+"\n"), "infercast_exporter_config_last_reload_successful"); err != nil {
			t.Error(err)
		}
	}
	wantOK("1")
	var applied []time.Duration
	r.OnApplied(func(c Config) { applied = append(applied, c.Global.ScrapeInterval) })
	write("global: {scrape_interval: 7s}\n")
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := exp.ScrapeInterval().String(); got != "7s" {
		t.Errorf("scrape interval after reload = %s, want 7s", got)
	}
	write("global: {scrape_interval: 9s, nope: 1}\n")
	if err := r.Reload(); err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("bad file: %v, want an error naming the unknown field", err)
	}
	wantOK("0")
	if got := exp.ScrapeInterval().String(); got != "7s" {
		t.Errorf("a bad reload changed the scrape interval to %s", got)
	}
	if len(applied) != 1 || applied[0] != 7*time.Second {
		t.Errorf("OnApplied saw %v, want one call with the 7s config (none for the bad file)", applied)
	}
	if err := NewReloader("", exp, nil).Reload(); err == nil || err.Error() != "no --config.file to reload" {
		t.Errorf("reload without a file = %v", err)
	}
}

// TestReloaderOnLoad: what a config names beyond the Exporter's part is read
// before anything is applied; when it fails, the reload fails whole (the
// scrape interval stays, nothing is applied, last_reload_successful is 0),
// and when it succeeds it is applied with the rest.
func TestReloaderOnLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "exporter.yaml")
	exp, err := New(DefaultConfig(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	r := NewReloader(path, exp, nil)
	var applied []time.Duration
	fail := true
	r.OnLoad(func(c Config) (func(), error) {
		if fail {
			return nil, errors.New("prices.yaml: price catalogue: line 2: bad")
		}
		return func() { applied = append(applied, c.Global.ScrapeInterval) }, nil
	})
	if err := os.WriteFile(path, []byte("global: {scrape_interval: 7s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.Reload(); err == nil || err.Error() != "prices.yaml: price catalogue: line 2: bad" {
		t.Errorf("reload = %v, want the OnLoad error", err)
	}
	if got := exp.ScrapeInterval(); got == 7*time.Second || len(applied) != 0 {
		t.Errorf("a failed reload applied the config: scrape interval %s, applied %v", got, applied)
	}
	const want = "# HELP infercast_exporter_config_last_reload_successful 1 when the last configuration reload succeeded (or none was attempted), else 0.\n# TYPE infercast_exporter_config_last_reload_successful gauge\ninfercast_exporter_config_last_reload_successful 0\n"
	if err := testutil.CollectAndCompare(r, strings.NewReader(want), "infercast_exporter_config_last_reload_successful"); err != nil {
		t.Error(err)
	}
	fail = false
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := exp.ScrapeInterval(); got != 7*time.Second || len(applied) != 1 || applied[0] != 7*time.Second {
		t.Errorf("after a good reload: scrape interval %s, applied %v", got, applied)
	}
}
