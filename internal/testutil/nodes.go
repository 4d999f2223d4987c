package testutil

import (
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

// ServeNodes serves each handler on its own loopback address (127.0.0.1,
// 127.0.0.2, …) at one port, as the pods behind a headless Service answer
// on one port at their own addresses, and returns the port. It skips the
// test where the extra loopback addresses cannot be bound.
func ServeNodes(t testing.TB, handlers ...http.Handler) (port string) {
	t.Helper()
	for i, h := range handlers {
		ip := net.IPv4(127, 0, 0, byte(i+1)).String()
		addr := net.JoinHostPort(ip, "0")
		if port != "" {
			addr = net.JoinHostPort(ip, port)
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("listen %s: %v", addr, err)
		}
		if port == "" {
			_, port, _ = net.SplitHostPort(ln.Addr().String())
		}
		srv := httptest.NewUnstartedServer(h)
		srv.Listener.Close()
		srv.Listener = ln
		srv.Start()
		t.Cleanup(srv.Close)
	}
	return port
}
