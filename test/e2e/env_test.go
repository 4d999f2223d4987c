//go:build e2e

// Package e2e runs infercast's adapter against a real control plane on
// 127.0.0.1: etcd, kube-apiserver and kube-controller-manager (its HPA
// controller), and KEDA's operator and metrics adapter, all built from their Go
// modules by hack/e2e.sh. No kubelet runs, so no pod ever starts, but the HPA
// controller really changes a Deployment's spec.replicas: that is what the
// suite asserts. Run it with `bash hack/e2e.sh` (docs/e2e.md).
package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binaries finds the executables the suite needs. hack/e2e.sh sets the
// variables; without them the defaults are its cache directories.
type binaries struct {
	etcd, apiserver, controllerManager string
	kedaOperator, kedaAdapter          string
	adapter, exporter                  string
}

func cacheDir() string {
	if d := os.Getenv("INFERCAST_CACHE"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "infercast")
	}
	h, _ := os.UserHomeDir()
	return filepath.Join(h, ".cache", "infercast")
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

// findBinaries fails (or skips, without INFERCAST_REQUIRE_TOOLS=1) when one is missing.
func findBinaries(t *testing.T, names ...string) binaries {
	t.Helper()
	kube := envOr("INFERCAST_E2E_KUBE_BIN", filepath.Join(cacheDir(), "envtest-bins"))
	keda := envOr("INFERCAST_E2E_KEDA_BIN", filepath.Join(cacheDir(), "keda-bins"))
	b := binaries{
		etcd:              filepath.Join(kube, "etcd"),
		apiserver:         filepath.Join(kube, "kube-apiserver"),
		controllerManager: filepath.Join(kube, "kube-controller-manager"),
		kedaOperator:      filepath.Join(keda, "keda-operator"),
		kedaAdapter:       filepath.Join(keda, "keda-adapter"),
		adapter:           os.Getenv("INFERCAST_E2E_ADAPTER"),
		exporter:          os.Getenv("INFERCAST_E2E_EXPORTER"),
	}
	all := map[string]string{"etcd": b.etcd, "kube-apiserver": b.apiserver, "kube-controller-manager": b.controllerManager,
		"keda-operator": b.kedaOperator, "keda-adapter": b.kedaAdapter, "adapter": b.adapter, "exporter": b.exporter}
	for _, n := range names {
		p := all[n]
		if p == "" {
			p = "(INFERCAST_E2E_" + strings.ToUpper(n) + " unset)"
		} else if _, err := os.Stat(p); err == nil {
			continue
		}
		msg := fmt.Sprintf("%s not found at %s: build it with hack/e2e.sh", n, p)
		if os.Getenv("INFERCAST_REQUIRE_TOOLS") == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return b
}

// phase logs how long a step of the suite took; the suite's time report.
func phase(t *testing.T, name string) func() {
	t.Helper()
	start := time.Now()
	t.Logf("phase %q: start", name)
	return func() { t.Logf("phase %q: %.1fs", name, time.Since(start).Seconds()) }
}

// freePort asks the kernel for a free port on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is one child process, its output in a log file kept for failures.
type proc struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	mu   sync.Mutex
	err  error
}

// logDir is where process logs go: $INFERCAST_E2E_ARTIFACTS (kept for CI) or
// the test's temporary directory.
func logDir(t *testing.T) string {
	if d := os.Getenv("INFERCAST_E2E_ARTIFACTS"); d != "" {
		// One directory per test, emptied first: the logs are of this run.
		d = filepath.Join(d, strings.ReplaceAll(t.Name(), "/", "_"))
		_ = os.RemoveAll(d)
		if err := os.MkdirAll(d, 0o755); err == nil {
			return d
		}
	}
	return t.TempDir()
}

// start runs a process in its own process group; it is stopped (SIGTERM, then
// SIGKILL after 10 s) when the test ends, and its log tail printed if the test failed.
func start(t *testing.T, dir, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("start %s: %v", name, err)
	}
	p := &proc{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("--- last lines of %s (%s) ---\n%s", name, logPath, tail(logPath, 25))
		}
	})
	return p
}

// stop ends the process group and waits for it; safe to call twice.
func (p *proc) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// exited reports whether the process ended, and how.
func (p *proc) exited() (bool, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	default:
		return false, nil
	}
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// eventually polls cond every interval until it returns true, failing the
// test with the last state cond described when timeout passes. Any process in
// procs that exits meanwhile fails the test at once.
func eventually(t *testing.T, what string, timeout, interval time.Duration, cond func(ctx context.Context) (bool, string), procs ...*proc) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	// The distinct states seen, with when: a slow or failed wait shows its
	// trajectory (which side lagged, and how), not only where it ended.
	var trail []string
	last := ""
	for {
		for _, p := range procs {
			if done, err := p.exited(); done {
				t.Fatalf("%s: %s exited (%v) while waiting; log %s:\n%s", what, p.name, err, p.log, tail(p.log, 25))
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		ok, state := cond(ctx)
		cancel()
		if state != last {
			trail = append(trail, fmt.Sprintf("%5.1fs %s", time.Since(start).Seconds(), state))
			last = state
		}
		if ok {
			if time.Since(start) > slowWait {
				t.Logf("%s: took %s:\n  %s", what, time.Since(start).Round(time.Second), strings.Join(trail, "\n  "))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached within %s; last state: %s; states:\n  %s", what, timeout, last, strings.Join(trail, "\n  "))
		}
		time.Sleep(interval)
	}
}

// slowWait is how long a wait may take before its states are logged.
const slowWait = 60 * time.Second

// writeCerts writes a CA and a serving certificate for localhost/127.0.0.1
// signed by it as ca.crt, tls.crt, tls.key (the layout KEDA's --cert-dir reads).
func writeCerts(t *testing.T, dir string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "infercast-e2e-ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		DNSNames:    []string{"localhost", "keda-operator", "keda-operator.keda.svc", "keda-operator.keda.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	caCert, _ := x509.ParseCertificate(caDER)
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	for name, blk := range map[string]*pem.Block{
		"ca.crt":  {Type: "CERTIFICATE", Bytes: caDER},
		"tls.crt": {Type: "CERTIFICATE", Bytes: der},
		"tls.key": {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func writeRSAKey(t *testing.T, path string) {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	b := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(k)})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// kill ends the process group with SIGKILL (a crash, not a shutdown) and waits.
func (p *proc) kill() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	<-p.done
}
