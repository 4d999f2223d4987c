package scaler

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// TLSFiles configures the server's TLS as KEDA's external scaler expects:
// KEDA verifies the server against the trigger's caCert and, with
// tlsClientCert/tlsClientKey, presents a client certificate, which the
// server requires and verifies when ClientCAFile is set (mTLS).
type TLSFiles struct {
	CertFile     string // PEM server certificate (chain)
	KeyFile      string // PEM private key
	ClientCAFile string // optional PEM bundle: require client certs signed by it
}

// Enabled reports whether TLS is configured at all.
func (f TLSFiles) Enabled() bool { return f.CertFile != "" || f.KeyFile != "" || f.ClientCAFile != "" }

// reloadingTLS re-reads the files when they change (cert-manager and
// Kubernetes secret mounts swap them in place), checked at each handshake.
// A broken rewrite keeps the last good config and logs, so a bad rotation
// never takes the server down.
type reloadingTLS struct {
	files TLSFiles
	log   *slog.Logger

	mu    sync.Mutex
	stamp string
	cfg   *tls.Config
}

// ServerConfig returns a tls.Config that serves the files and follows
// their changes. It fails when the files cannot be loaded now.
func (f TLSFiles) ServerConfig(log *slog.Logger) (*tls.Config, error) {
	if f.CertFile == "" || f.KeyFile == "" {
		return nil, errors.New("tls: both a certificate file and a key file are required")
	}
	r := &reloadingTLS{files: f, log: log}
	if _, err := r.current(); err != nil {
		return nil, err
	}
	return &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.current()
		},
	}, nil
}

func (r *reloadingTLS) current() (*tls.Config, error) {
	stamp, err := r.stampFiles()
	r.mu.Lock()
	defer r.mu.Unlock()
	if err == nil && stamp == r.stamp && r.cfg != nil {
		return r.cfg, nil
	}
	var cfg *tls.Config
	if err == nil {
		cfg, err = r.load()
	}
	if err != nil {
		if r.cfg != nil {
			r.log.Error("reloading TLS files failed; serving the previous certificate", "err", err)
			return r.cfg, nil
		}
		return nil, err
	}
	if r.cfg != nil {
		r.log.Info("TLS files reloaded", "cert", r.files.CertFile)
	}
	r.cfg, r.stamp = cfg, stamp
	return cfg, nil
}

// stampFiles summarises the files' sizes and modification times.
func (r *reloadingTLS) stampFiles() (string, error) {
	var s string
	for _, p := range []string{r.files.CertFile, r.files.KeyFile, r.files.ClientCAFile} {
		if p == "" {
			continue
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		s += fmt.Sprintf("%s:%d:%d;", p, st.Size(), st.ModTime().UnixNano())
	}
	return s, nil
}

func (r *reloadingTLS) load() (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(r.files.CertFile, r.files.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("tls: loading %s and %s: %w", r.files.CertFile, r.files.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		NextProtos:   []string{"h2"},
		// Session tickets would let a client resume a session made with a
		// previous (possibly revoked) client CA; reloading means fresh checks.
		SessionTicketsDisabled: true,
	}
	if r.files.ClientCAFile != "" {
		pem, err := os.ReadFile(r.files.ClientCAFile)
		if err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls: no PEM certificate in client CA file %s", r.files.ClientCAFile)
		}
		cfg.ClientCAs = pool
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}
