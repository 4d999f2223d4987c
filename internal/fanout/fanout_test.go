package fanout

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"testing"
)

func TestTargets(t *testing.T) {
	addrs := []string{"10.0.0.2", "10.0.0.1", "10.0.0.2"}
	var lookupErr error
	lookup := func(_ context.Context, host string) ([]string, error) {
		if host != "exporter.ns.svc" {
			t.Fatalf("looked up %q", host)
		}
		return addrs, lookupErr
	}
	client := &http.Client{}
	ctx := context.Background()
	names := func(ts []Target) []string {
		var out []string
		for _, x := range ts {
			out = append(out, x.Addr)
		}
		return out
	}

	r, err := New("http://exporter.ns.svc:9400/metrics", client, lookup)
	if err != nil {
		t.Fatal(err)
	}
	ts := r.Targets(ctx)
	if got := names(ts); !slices.Equal(got, []string{"10.0.0.1:9400", "10.0.0.2:9400"}) {
		t.Fatalf("targets %v; want the two addresses, sorted, once each", got)
	}
	if ts[0].Client == client || ts[0].Client.Transport == ts[1].Client.Transport {
		t.Fatal("addresses share a client or a pool")
	}
	if again := r.Targets(ctx); again[0].Client.Transport != ts[0].Client.Transport {
		t.Fatal("an address's pool was not kept between reads")
	}

	// A pod gone: its pool is dropped; one address left: the client as it
	// is, under the pod's address still (it was the Service's name, so
	// what callers keep by address — the store's instance label — changed
	// whenever a second exporter came or went).
	addrs = []string{"10.0.0.2"}
	if got := r.Targets(ctx); len(got) != 1 || got[0].Client != client || got[0].Addr != "10.0.0.2:9400" {
		t.Fatalf("one address: %+v; want 10.0.0.2:9400 with the client as it is", got)
	}
	n := 0
	r.transports.Range(func(any, any) bool { n++; return true })
	if n != 0 {
		t.Fatalf("%d pools kept for addresses that are gone", n)
	}

	// A failed lookup: one target, the client's dial says why.
	addrs, lookupErr = nil, errors.New("no such host")
	if got := r.Targets(ctx); len(got) != 1 || got[0].Client != client || got[0].Addr != "exporter.ns.svc:9400" {
		t.Fatalf("failed lookup: %+v; want the URL as it is", got)
	}

	// An IP needs no lookup; https defaults to 443.
	r, err = New("https://10.1.2.3/metrics", client, func(context.Context, string) ([]string, error) {
		t.Fatal("looked up an IP address")
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := names(r.Targets(ctx)); !slices.Equal(got, []string{"10.1.2.3:443"}) {
		t.Fatalf("IP URL: %v", got)
	}
	if _, err := New("/metrics", client, nil); err == nil {
		t.Fatal("a URL without a host was accepted")
	}
}
