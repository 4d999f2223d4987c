package scaler

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
)

// writeFiles writes the server's TLS files into dir and returns them.
func writeFiles(t *testing.T, dir string, certPEM, keyPEM, clientCA []byte) TLSFiles {
	t.Helper()
	f := TLSFiles{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key")}
	write(t, f.CertFile, certPEM)
	write(t, f.KeyFile, keyPEM)
	if clientCA != nil {
		f.ClientCAFile = filepath.Join(dir, "client-ca.crt")
		write(t, f.ClientCAFile, clientCA)
	}
	return f
}

// write replaces a file atomically, as a Kubernetes secret mount does.
func write(t *testing.T, path string, b []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// kedaClientTLS builds the client config the way KEDA's external scaler
// does from caCert, tlsClientCert and tlsClientKey
// (keda/v2 pkg/util/tls_config.go, NewTLSConfigWithPassword).
func kedaClientTLS(t *testing.T, caCert, clientCert, clientKey []byte) *tls.Config {
	t.Helper()
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if clientCert != nil && clientKey != nil {
		c, err := tls.X509KeyPair(clientCert, clientKey)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Certificates = []tls.Certificate{c}
	}
	if caCert != nil {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(caCert) {
			t.Fatal("bad CA PEM")
		}
		cfg.RootCAs = pool
	}
	return cfg
}
