//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

// cluster is a control plane on 127.0.0.1: etcd, kube-apiserver and, once
// startControllerManager ran, kube-controller-manager's HPA controller.
type cluster struct {
	dir        string
	kubeconfig string
	apiURL     string
	cfg        *rest.Config
	kube       *kubernetes.Clientset
	dyn        *dynamic.DynamicClient
	procs      []*proc
}

const adminToken = "infercast-e2e-admin-token"

// startCluster starts etcd and kube-apiserver and waits for /readyz.
// Authentication is a static token in system:masters; authorization is
// AlwaysAllow, so the aggregator's proxied calls, which reach aggregated
// servers as system:anonymous (no front-proxy client certificate here), are
// allowed by KEDA's delegated authorization too.
func startCluster(t *testing.T, b binaries) *cluster {
	t.Helper()
	defer phase(t, "control plane (etcd, kube-apiserver)")()
	dir := logDir(t)
	data := t.TempDir()
	etcdClient, etcdPeer, apiPort := freePort(t), freePort(t), freePort(t)
	etcd := start(t, dir, "etcd", nil, b.etcd,
		"--data-dir", filepath.Join(data, "etcd"),
		"--listen-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--advertise-client-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--listen-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-advertise-peer-urls", fmt.Sprintf("http://127.0.0.1:%d", etcdPeer),
		"--initial-cluster", fmt.Sprintf("default=http://127.0.0.1:%d", etcdPeer),
		"--unsafe-no-fsync")

	certs := filepath.Join(data, "certs")
	if err := os.MkdirAll(certs, 0o700); err != nil {
		t.Fatal(err)
	}
	writeCerts(t, certs)
	saKey := filepath.Join(data, "sa.key")
	writeRSAKey(t, saKey)
	tokens := filepath.Join(data, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(adminToken+",admin,admin,system:masters\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	api := start(t, dir, "kube-apiserver", nil, b.apiserver,
		"--etcd-servers", fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(apiPort),
		"--cert-dir", filepath.Join(data, "apiserver-certs"),
		"--service-cluster-ip-range", "10.0.0.0/24",
		"--service-account-key-file", saKey, "--service-account-signing-key-file", saKey,
		"--service-account-issuer", "https://kubernetes.default.svc",
		"--token-auth-file", tokens,
		"--authorization-mode", "AlwaysAllow", "--anonymous-auth=true",
		"--disable-admission-plugins", "ServiceAccount")

	c := &cluster{dir: dir, apiURL: fmt.Sprintf("https://127.0.0.1:%d", apiPort), procs: []*proc{etcd, api}}
	c.kubeconfig = filepath.Join(data, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: e2e
  context: {cluster: e2e, user: admin, namespace: default}
current-context: e2e
`, c.apiURL, adminToken)
	if err := os.WriteFile(c.kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	eventually(t, "kube-apiserver /readyz", 90*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.apiURL+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := insecureHTTPS.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	}, etcd, api)

	c.cfg = &rest.Config{Host: c.apiURL, BearerToken: adminToken, TLSClientConfig: rest.TLSClientConfig{Insecure: true}, QPS: 50, Burst: 100}
	var err error
	if c.kube, err = kubernetes.NewForConfig(c.cfg); err != nil {
		t.Fatal(err)
	}
	if c.dyn, err = dynamic.NewForConfig(c.cfg); err != nil {
		t.Fatal(err)
	}
	// The default namespace and its service account controller are not running: create what tests use.
	return c
}

// startControllerManager runs only the HPA controller, syncing every 5 s,
// with no downscale stabilisation of its own (the HPAs set their behaviour).
func (c *cluster) startControllerManager(t *testing.T, b binaries) *proc {
	t.Helper()
	defer phase(t, "kube-controller-manager")()
	port := freePort(t)
	p := start(t, c.dir, "kube-controller-manager", nil, b.controllerManager,
		"--kubeconfig", c.kubeconfig,
		"--authentication-kubeconfig", c.kubeconfig, "--authorization-kubeconfig", c.kubeconfig,
		"--controllers", "horizontalpodautoscaling",
		"--leader-elect=false",
		"--horizontal-pod-autoscaler-sync-period", "5s",
		"--bind-address", "127.0.0.1", "--secure-port", strconv.Itoa(port))
	eventually(t, "kube-controller-manager /healthz", 60*time.Second, 500*time.Millisecond, func(ctx context.Context) (bool, string) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("https://127.0.0.1:%d/healthz", port), nil)
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := insecureHTTPS.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	}, p)
	c.procs = append(c.procs, p)
	return p
}
