// Package fanout reads one URL at every address its host resolves to. A
// headless Kubernetes Service names one address per pod: the chart's
// exporter Service puts one exporter per GPU node behind one name, and the
// adapter must read them all, not whichever the resolver hands out first.
package fanout

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
)

// Reader resolves its URL's host at every read, so that pods that come and
// go are followed, and keeps one connection pool per address.
type Reader struct {
	url    *url.URL
	client *http.Client
	lookup func(ctx context.Context, host string) ([]string, error)
	// transports holds one *http.Transport per dialled address: a pool
	// keyed by the URL's host alone would mix the pods' connections.
	transports sync.Map
}

// Target is one address the URL resolves to and the client that reads the
// URL there: the URL itself (its Host header and TLS server name stay the
// Service's), dialled at Addr.
type Target struct {
	// Addr is the address, IP:port, also where the URL resolves to one
	// only and is read as it is: callers key what they keep per target
	// by it (the store's instance label, Triton's statistics), so a pod's
	// key stays the same when a second pod comes or goes. It is the URL's
	// host:port only when that is not resolved (a failed lookup).
	Addr   string
	Client *http.Client
}

// New reads rawURL with client's timeout and transport settings; lookup
// resolves a host (nil: DNS).
func New(rawURL string, client *http.Client, lookup func(ctx context.Context, host string) ([]string, error)) (*Reader, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Host == "" {
		return nil, fmt.Errorf("%q: no host", rawURL)
	}
	if client == nil {
		client = http.DefaultClient
	}
	if lookup == nil {
		lookup = net.DefaultResolver.LookupHost
	}
	return &Reader{url: u, client: client, lookup: lookup}, nil
}

// Targets are the addresses to read, each once, sorted. A URL that names
// one address (an IP, or a host that resolves to one), or whose lookup
// fails, is one target read with the client as it is: its own dial then
// says what is wrong.
func (r *Reader) Targets(ctx context.Context) []Target {
	port := r.url.Port()
	if port == "" {
		port = "80"
		if r.url.Scheme == "https" {
			port = "443"
		}
	}
	host := r.url.Hostname()
	var addrs []string
	if net.ParseIP(host) == nil {
		found, _ := r.lookup(ctx, host)
		addrs = slices.Compact(slices.Sorted(slices.Values(found))) // not the resolver's slice
	}
	var out []Target
	if len(addrs) >= 2 {
		for _, a := range addrs {
			addr := net.JoinHostPort(a, port)
			out = append(out, Target{Addr: addr, Client: &http.Client{Timeout: r.client.Timeout, Transport: r.transport(addr)}})
		}
	}
	// The pools of pods that are gone (or of a URL now read as it is) close.
	r.transports.Range(func(k, v any) bool {
		if !slices.ContainsFunc(out, func(t Target) bool { return t.Addr == k }) {
			r.transports.Delete(k)
			v.(*http.Transport).CloseIdleConnections()
		}
		return true
	})
	if out == nil {
		if len(addrs) == 1 {
			host = addrs[0]
		}
		return []Target{{Addr: net.JoinHostPort(host, port), Client: r.client}}
	}
	return out
}

// ReadAll calls read for every target at once and waits. The error is
// every target's when all failed; failed lists the errors of those that
// failed while another answered (the caller logs them and goes on).
func ReadAll(targets []Target, read func(i int, t Target) error) (failed []error, err error) {
	errs := make([]error, len(targets))
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Go(func() { errs[i] = read(i, t) })
	}
	wg.Wait()
	for _, e := range errs {
		if e != nil {
			failed = append(failed, e)
		}
	}
	if len(failed) == len(targets) {
		return nil, errors.Join(failed...)
	}
	return failed, nil
}

// transport is the pool that dials addr, whatever host a request names.
func (r *Reader) transport(addr string) *http.Transport {
	if t, ok := r.transports.Load(addr); ok {
		return t.(*http.Transport)
	}
	base, ok := r.client.Transport.(*http.Transport)
	if !ok || base == nil {
		base = http.DefaultTransport.(*http.Transport)
	}
	t := base.Clone()
	var d net.Dialer
	t.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	if prev, loaded := r.transports.LoadOrStore(addr, t); loaded {
		return prev.(*http.Transport)
	}
	return t
}
