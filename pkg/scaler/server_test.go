package scaler

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	pb "github.com/kedacore/keda/v2/pkg/scalers/externalscaler"
	"github.com/prometheus/client_golang/prometheus"
	promtestutil "github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/infercast/infercast/internal/testutil"
	"github.com/infercast/infercast/pkg/capacity"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var t0 = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func plan(w string, active bool, onDemand, spot int) capacity.Plan {
	return capacity.Plan{
		Workload: w, Time: t0, Mode: capacity.ModePredictive, Active: active,
		Tiers: map[string]capacity.TierTarget{
			capacity.TierOnDemand: {Replicas: onDemand},
			capacity.TierSpot:     {Replicas: spot},
		},
	}
}

var bothTiers = []string{capacity.TierOnDemand, capacity.TierSpot}

func ref(w, tier string) *pb.ScaledObjectRef {
	return &pb.ScaledObjectRef{Name: "so-" + w, Namespace: "default",
		ScalerMetadata: map[string]string{"scalerAddress": "infercast:9090", "workload": w, "tier": tier}}
}

type fixture struct {
	cache  *capacity.Cache
	reg    *prometheus.Registry
	srv    *Server
	client pb.ExternalScalerClient
	conn   *grpc.ClientConn
	addr   string
}

// start runs a real server on 127.0.0.1:0 and dials it with KEDA's
// generated client; clientTLS nil means plaintext.
func start(t *testing.T, plans Plans, cat Catalog, cfg ServerConfig, clientTLS *tls.Config) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry()}
	if c, ok := plans.(*capacity.Cache); ok {
		f.cache = c
	}
	s, err := New(plans, cat, Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Registerer = f.reg
	f.srv, err = NewServer(s, cfg)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f.addr = l.Addr().String()
	served := make(chan error, 1)
	go func() { served <- f.srv.Serve(l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		f.srv.Shutdown(ctx)
		if err := <-served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	f.conn, f.client = dial(t, f.addr, clientTLS)
	return f
}

func dial(t *testing.T, addr string, clientTLS *tls.Config) (*grpc.ClientConn, pb.ExternalScalerClient) {
	t.Helper()
	creds := insecure.NewCredentials()
	if clientTLS != nil {
		creds = credentials.NewTLS(clientTLS)
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, pb.NewExternalScalerClient(conn)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestRPCs(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 4, 7))
	cache.Set(plan("idle", false, 0, 0))
	f := start(t, cache, StaticCatalog{"chat": bothTiers, "idle": bothTiers}, ServerConfig{}, nil)
	ctx := ctxT(t)

	act, err := f.client.IsActive(ctx, ref("chat", "spot"))
	if err != nil || !act.Result {
		t.Fatalf("IsActive(chat) = %v, %v; want true", act, err)
	}
	act, err = f.client.IsActive(ctx, ref("idle", "spot"))
	if err != nil || act.Result {
		t.Fatalf("IsActive(idle) = %v, %v; want false", act, err)
	}

	for _, tc := range []struct {
		w, tier string
		want    float64
	}{{"chat", "on-demand", 4}, {"chat", "spot", 7}, {"idle", "spot", 0}} {
		specs, err := f.client.GetMetricSpec(ctx, ref(tc.w, tc.tier))
		if err != nil {
			t.Fatal(err)
		}
		if len(specs.MetricSpecs) != 1 {
			t.Fatalf("specs = %v", specs)
		}
		sp := specs.MetricSpecs[0]
		name := "infercast-" + tc.w + "-" + tc.tier
		if sp.MetricName != name || sp.TargetSizeFloat != 1 || sp.TargetSize != 0 {
			t.Fatalf("spec = %v; want %s, TargetSizeFloat 1, deprecated field unset", sp, name)
		}
		// KEDA sends the spec's name back (after stripping its sN- prefix).
		vals, err := f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref(tc.w, tc.tier), MetricName: sp.MetricName})
		if err != nil {
			t.Fatal(err)
		}
		if len(vals.MetricValues) != 1 {
			t.Fatalf("values = %v", vals)
		}
		v := vals.MetricValues[0]
		if v.MetricName != sp.MetricName || v.MetricValueFloat != tc.want || v.MetricValue != 0 {
			t.Fatalf("value = %v; want %s = %v in the Float field only", v, sp.MetricName, tc.want)
		}
	}

	// StreamMetricSpec sends the current spec at once and stays open.
	sctx, cancel := context.WithCancel(ctx)
	st, err := f.client.StreamMetricSpec(sctx, ref("chat", "spot"))
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if got.MetricSpecs[0].MetricName != "infercast-chat-spot" || got.MetricSpecs[0].TargetSizeFloat != 1 {
		t.Fatalf("streamed spec = %v", got)
	}
	cancel()
	if _, err := st.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("after cancel: %v", err)
	}

	hc, err := healthpb.NewHealthClient(f.conn).Check(ctx, &healthpb.HealthCheckRequest{Service: ServiceName})
	if err != nil || hc.Status != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("health = %v, %v", hc, err)
	}

	if n := promtestutil.ToFloat64(srvMetrics(t, f).requests.WithLabelValues("GetMetrics", "OK")); n != 3 {
		t.Fatalf("requests_total{GetMetrics,OK} = %v, want 3", n)
	}
}

// srvMetrics digs the metrics back out through a second registration
// attempt's AlreadyRegisteredError, so the test reads what the server wrote.
func srvMetrics(t *testing.T, f *fixture) *serverMetrics {
	t.Helper()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "infercast_scaler_requests_total",
		Help: "gRPC calls handled by the KEDA external scaler, by method and status code (streams count when they end)."},
		[]string{"method", "code"})
	var are prometheus.AlreadyRegisteredError
	if err := f.reg.Register(c); !errors.As(err, &are) {
		t.Fatalf("requests_total not registered: %v", err)
	}
	return &serverMetrics{requests: are.ExistingCollector.(*prometheus.CounterVec)}
}

func TestBadMetadata(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 4, 7))
	f := start(t, cache, StaticCatalog{"chat": bothTiers, "embed": {capacity.TierOnDemand}}, ServerConfig{}, nil)
	ctx := ctxT(t)

	cases := []struct {
		name string
		md   map[string]string
		want string
	}{
		{"missing workload", map[string]string{"tier": "spot"}, `missing required key "workload"`},
		{"missing tier", map[string]string{"workload": "chat"}, `missing required key "tier"`},
		{"unknown workload", map[string]string{"workload": "other", "tier": "spot"}, `workload "other" is not in the policy`},
		{"unknown tier", map[string]string{"workload": "chat", "tier": "preemptible"}, `tier "preemptible" is not valid`},
		{"tier not in policy", map[string]string{"workload": "embed", "tier": "spot"}, `workload "embed" has no tier "spot"`},
		{"unknown key", map[string]string{"workload": "chat", "tier": "spot", "query": "x"}, `unknown key(s) "query"`},
	}
	calls := map[string]func(*pb.ScaledObjectRef) error{
		"IsActive": func(r *pb.ScaledObjectRef) error { _, err := f.client.IsActive(ctx, r); return err },
		"GetMetricSpec": func(r *pb.ScaledObjectRef) error {
			_, err := f.client.GetMetricSpec(ctx, r)
			return err
		},
		"GetMetrics": func(r *pb.ScaledObjectRef) error {
			_, err := f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: r})
			return err
		},
		"StreamIsActive": func(r *pb.ScaledObjectRef) error {
			s, err := f.client.StreamIsActive(ctx, r)
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
		"StreamMetricSpec": func(r *pb.ScaledObjectRef) error {
			s, err := f.client.StreamMetricSpec(ctx, r)
			if err != nil {
				return err
			}
			_, err = s.Recv()
			return err
		},
	}
	for _, c := range cases {
		for meth, call := range calls {
			t.Run(c.name+"/"+meth, func(t *testing.T) {
				err := call(&pb.ScaledObjectRef{Name: "so", Namespace: "ns", ScalerMetadata: c.md})
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), c.want) {
					t.Fatalf("err = %v; want InvalidArgument containing %q", err, c.want)
				}
			})
		}
	}

	// A metric name from another trigger is refused, not answered.
	_, err := f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("chat", "spot"), MetricName: "infercast-chat-on-demand"})
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), `want "infercast-chat-spot"`) {
		t.Fatalf("wrong metric name: %v", err)
	}
	if n := promtestutil.ToFloat64(srvMetrics(t, f).requests.WithLabelValues("GetMetrics", "InvalidArgument")); n != float64(len(cases)+1) {
		t.Fatalf("requests_total{GetMetrics,InvalidArgument} = %v, want %d", n, len(cases)+1)
	}
}

func TestNoPlanYet(t *testing.T) {
	f := start(t, capacity.NewCache(), StaticCatalog{"chat": bothTiers}, ServerConfig{}, nil)
	ctx := ctxT(t)
	_, err := f.client.IsActive(ctx, ref("chat", "spot"))
	if status.Code(err) != codes.Unavailable || !strings.Contains(err.Error(), `no capacity plan for workload "chat" yet`) {
		t.Fatalf("IsActive: %v", err)
	}
	_, err = f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("chat", "spot")})
	if status.Code(err) != codes.Unavailable {
		t.Fatalf("GetMetrics: %v", err)
	}
	// The spec does not depend on a plan: KEDA can build the HPA at once.
	if _, err := f.client.GetMetricSpec(ctx, ref("chat", "spot")); err != nil {
		t.Fatalf("GetMetricSpec: %v", err)
	}
}

// TestStreamIsActiveSurvivesRefresh opens the stream before the first plan
// and follows it through several planner refreshes.
func TestStreamIsActiveSurvivesRefresh(t *testing.T) {
	cache := capacity.NewCache()
	f := start(t, cache, StaticCatalog{"chat": bothTiers, "other": bothTiers}, ServerConfig{}, nil)
	st, err := f.client.StreamIsActive(ctxT(t), ref("chat", "on-demand"))
	if err != nil {
		t.Fatal(err)
	}
	recv := func(want bool) {
		t.Helper()
		got, err := st.Recv()
		if err != nil {
			t.Fatalf("Recv: %v", err)
		}
		if got.Result != want {
			t.Fatalf("active = %v, want %v", got.Result, want)
		}
	}
	p := plan("chat", false, 0, 0)
	cache.Set(p)
	recv(false)
	// Another workload's refresh pushes nothing for chat: the next message
	// must be chat's own next plan.
	cache.Set(plan("other", true, 1, 1))
	for i, active := range []bool{true, true, false, true} {
		p.Time = p.Time.Add(time.Minute)
		p.Active = active
		if active {
			p.Tiers = map[string]capacity.TierTarget{capacity.TierOnDemand: {Replicas: i + 1}}
		}
		cache.Set(p)
		recv(active)
	}
}

func TestToleranceThroughGetMetrics(t *testing.T) {
	cache := capacity.NewCache()
	f := start(t, cache, StaticCatalog{"chat": bothTiers}, ServerConfig{}, nil)
	ctx := ctxT(t)
	get := func() float64 {
		t.Helper()
		r, err := f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("chat", "on-demand")})
		if err != nil {
			t.Fatal(err)
		}
		return r.MetricValues[0].MetricValueFloat
	}
	for _, step := range []struct {
		planned int
		want    float64
	}{{20, 20}, {21, 22.001}, {21, 22.001}, {40, 40}, {37, 37}, {36, 35.999}, {36, 35.999}, {37, 39.601}} {
		p := plan("chat", true, step.planned, 0)
		cache.Set(p)
		if got := get(); got != step.want {
			t.Fatalf("plan %d: value %v, want %v", step.planned, got, step.want)
		}
	}
}

// TestPreviewIsNotServed: a preview plan's targets are exported as metrics
// only. KEDA gets FailedPrecondition from GetMetrics and IsActive (any value,
// false included, would be acted on), the stream stays silent until the
// preview ends, and then serves the plan at once.
func TestPreviewIsNotServed(t *testing.T) {
	cache := capacity.NewCache()
	p := plan("chat", true, 4, 7)
	p.Mode = capacity.ModePreview
	cache.Set(p)
	f := start(t, cache, StaticCatalog{"chat": bothTiers}, ServerConfig{}, nil)
	ctx := ctxT(t)
	const msg = `workload "chat" is in preview: targets are exported as metrics only`
	for _, tier := range bothTiers {
		v, err := f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("chat", tier)})
		if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != msg {
			t.Fatalf("GetMetrics(%s) = %v, %v; want FailedPrecondition %q", tier, v.GetMetricValues(), err, msg)
		}
		a, err := f.client.IsActive(ctx, ref("chat", tier))
		if status.Code(err) != codes.FailedPrecondition || status.Convert(err).Message() != msg {
			t.Fatalf("IsActive(%s) = %v, %v; want FailedPrecondition %q", tier, a, err, msg)
		}
	}
	// The spec needs no plan and acts on nothing.
	if _, err := f.client.GetMetricSpec(ctx, ref("chat", "spot")); err != nil {
		t.Fatalf("GetMetricSpec: %v", err)
	}

	st, err := f.client.StreamIsActive(ctx, ref("chat", "spot"))
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *pb.IsActiveResponse, 4)
	go func() {
		for {
			r, err := st.Recv()
			if err != nil {
				close(got)
				return
			}
			got <- r
		}
	}()
	// Further preview plans: nothing is sent. The preview's end (a policy
	// reload) is: the first message must be the acting plan's, inactive.
	for i := range 3 {
		p.Time = p.Time.Add(time.Duration(i+1) * time.Minute)
		cache.Set(p)
	}
	acting := plan("chat", false, 0, 0)
	acting.Time = p.Time.Add(time.Minute)
	cache.Set(acting)
	select {
	case r, ok := <-got:
		if !ok || r.GetResult() {
			t.Fatalf("first message after the preview = %v (open %t); want the acting plan's false", r, ok)
		}
	case <-ctx.Done():
		t.Fatal("no message after the preview ended")
	}
	v, err := f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("chat", "spot")})
	if err != nil || v.GetMetricValues()[0].GetMetricValueFloat() != 0 {
		t.Fatalf("GetMetrics after the preview = %v, %v; want 0", v.GetMetricValues(), err)
	}
}

func TestNeverGarbage(t *testing.T) {
	cache := capacity.NewCache()
	f := start(t, cache, StaticCatalog{"chat": bothTiers}, ServerConfig{}, nil)
	ctx := ctxT(t)
	cache.Set(plan("chat", true, 0, 0)) // live demand, degenerate plan
	r, err := f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("chat", "on-demand")})
	if err != nil || r.MetricValues[0].MetricValueFloat != 1 {
		t.Fatalf("active all-zero plan: %v, %v; want 1", r, err)
	}
	cache.Set(plan("chat", true, 3, -2))
	_, err = f.client.GetMetrics(ctx, &pb.GetMetricsRequest{ScaledObjectRef: ref("chat", "on-demand")})
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "-2") {
		t.Fatalf("negative plan: %v; want Internal without the plan's internals", err)
	}
}

// panicPlans panics on every read, standing in for a bug in a handler.
type panicPlans struct{}

func (panicPlans) Get(string) (capacity.Plan, bool) { panic("boom: secret internal state") }
func (panicPlans) Changed() <-chan struct{}         { return nil }

func TestPanicRecovery(t *testing.T) {
	f := start(t, panicPlans{}, StaticCatalog{"chat": bothTiers}, ServerConfig{}, nil)
	ctx := ctxT(t)
	_, err := f.client.IsActive(ctx, ref("chat", "spot"))
	if status.Code(err) != codes.Internal || strings.Contains(err.Error(), "secret") {
		t.Fatalf("IsActive: %v; want Internal without the panic value", err)
	}
	st, err := f.client.StreamIsActive(ctx, ref("chat", "spot"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); status.Code(err) != codes.Internal {
		t.Fatalf("StreamIsActive: %v", err)
	}
	// The server still serves after the panics.
	if _, err := f.client.GetMetricSpec(ctx, ref("chat", "spot")); err != nil {
		t.Fatal(err)
	}
	if n := promtestutil.ToFloat64(srvMetrics(t, f).requests.WithLabelValues("IsActive", "Internal")); n != 1 {
		t.Fatalf("requests_total{IsActive,Internal} = %v", n)
	}
	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var panics float64
	for _, mf := range mfs {
		if mf.GetName() == "infercast_scaler_panics_total" {
			for _, m := range mf.Metric {
				panics += m.GetCounter().GetValue()
			}
		}
	}
	if panics != 2 {
		t.Fatalf("panics_total = %v, want 2", panics)
	}
}

func TestShutdownEndsStreams(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 1, 1))
	f := start(t, cache, StaticCatalog{"chat": bothTiers}, ServerConfig{}, nil)
	st, err := f.client.StreamIsActive(ctxT(t), ref("chat", "spot"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	ms, err := f.client.StreamMetricSpec(ctxT(t), ref("chat", "spot"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ms.Recv(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	f.srv.Shutdown(ctx) // must not hang on the open streams
	for _, recv := range []func() error{
		func() error { _, err := st.Recv(); return err },
		func() error { _, err := ms.Recv(); return err },
	} {
		if err := recv(); status.Code(err) != codes.Unavailable && !errors.Is(err, io.EOF) {
			t.Fatalf("stream after shutdown: %v", err)
		}
	}
}

func TestTLS(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 2, 3))
	cat := StaticCatalog{"chat": bothTiers}
	ca := testutil.NewCA(t, "server-ca")
	crt, key := ca.Issue(t, "infercast", true)
	files := writeFiles(t, t.TempDir(), crt, key, nil)
	f := start(t, cache, cat, ServerConfig{TLS: files}, kedaClientTLS(t, ca.PEM, nil, nil))
	if _, err := f.client.IsActive(ctxT(t), ref("chat", "spot")); err != nil {
		t.Fatalf("TLS with caCert: %v", err)
	}
	// A client that does not trust the CA is refused.
	other := testutil.NewCA(t, "other")
	_, c := dial(t, f.addr, kedaClientTLS(t, other.PEM, nil, nil))
	if _, err := c.IsActive(ctxT(t), ref("chat", "spot")); status.Code(err) != codes.Unavailable {
		t.Fatalf("untrusted server cert: %v; want Unavailable", err)
	}
	// A plaintext client is refused.
	_, c = dial(t, f.addr, nil)
	if _, err := c.IsActive(ctxT(t), ref("chat", "spot")); err == nil {
		t.Fatal("plaintext client accepted by a TLS server")
	}
}

func TestMTLSAndReload(t *testing.T) {
	cache := capacity.NewCache()
	cache.Set(plan("chat", true, 2, 3))
	cat := StaticCatalog{"chat": bothTiers}
	serverCA, clientCA := testutil.NewCA(t, "server-ca"), testutil.NewCA(t, "client-ca")
	crt, key := serverCA.Issue(t, "infercast", true)
	dir := t.TempDir()
	files := writeFiles(t, dir, crt, key, clientCA.PEM)
	ccrt, ckey := clientCA.Issue(t, "keda-operator", false)
	f := start(t, cache, cat, ServerConfig{TLS: files}, kedaClientTLS(t, serverCA.PEM, ccrt, ckey))
	if _, err := f.client.IsActive(ctxT(t), ref("chat", "spot")); err != nil {
		t.Fatalf("mTLS with tlsClientCert: %v", err)
	}
	icrt, ikey := serverCA.Issue(t, "intruder", false)
	for name, cfg := range map[string]*tls.Config{
		"no client cert":            kedaClientTLS(t, serverCA.PEM, nil, nil),
		"client cert by another CA": kedaClientTLS(t, serverCA.PEM, icrt, ikey),
	} {
		_, c := dial(t, f.addr, cfg)
		if _, err := c.IsActive(ctxT(t), ref("chat", "spot")); err == nil {
			t.Fatalf("%s: accepted", name)
		}
	}

	// Rotate everything in place: a new server CA and a new client CA.
	serverCA2, clientCA2 := testutil.NewCA(t, "server-ca-2"), testutil.NewCA(t, "client-ca-2")
	crt2, key2 := serverCA2.Issue(t, "infercast", true)
	// Make the modification time visibly change even on coarse clocks.
	time.Sleep(10 * time.Millisecond)
	writeFiles(t, dir, crt2, key2, clientCA2.PEM)
	ccrt2, ckey2 := clientCA2.Issue(t, "keda-operator", false)
	_, c := dial(t, f.addr, kedaClientTLS(t, serverCA2.PEM, ccrt2, ckey2))
	if _, err := c.IsActive(ctxT(t), ref("chat", "spot")); err != nil {
		t.Fatalf("after rotation, new credentials: %v", err)
	}
	_, c = dial(t, f.addr, kedaClientTLS(t, serverCA.PEM, ccrt, ckey))
	if _, err := c.IsActive(ctxT(t), ref("chat", "spot")); err == nil {
		t.Fatal("after rotation, old credentials still accepted on a new connection")
	}
	// A broken rotation keeps serving the last good certificate.
	write(t, files.KeyFile, []byte("not a key"))
	_, c = dial(t, f.addr, kedaClientTLS(t, serverCA2.PEM, ccrt2, ckey2))
	if _, err := c.IsActive(ctxT(t), ref("chat", "spot")); err != nil {
		t.Fatalf("after a broken rotation: %v", err)
	}
}

func TestServerConfigErrors(t *testing.T) {
	s, err := New(capacity.NewCache(), StaticCatalog{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]ServerConfig{
		"no registry":      {},
		"cert without key": {Registerer: prometheus.NewRegistry(), TLS: TLSFiles{CertFile: "x"}},
		"missing files":    {Registerer: prometheus.NewRegistry(), TLS: TLSFiles{CertFile: "/nonexistent/c", KeyFile: "/nonexistent/k"}},
	} {
		if _, err := NewServer(s, cfg); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func BenchmarkGetMetrics(b *testing.B) {
	cache := capacity.NewCache()
	cat := StaticCatalog{}
	for i := range 1000 {
		w := fmt.Sprintf("w%04d", i)
		cache.Set(plan(w, true, i%17+1, i%5))
		cat[w] = bothTiers
	}
	s, err := New(cache, cat, Options{})
	if err != nil {
		b.Fatal(err)
	}
	reqs := make([]*pb.GetMetricsRequest, 1000)
	for i := range reqs {
		reqs[i] = &pb.GetMetricsRequest{ScaledObjectRef: ref(fmt.Sprintf("w%04d", i), capacity.TierSpot)}
	}
	b.Run("handler", func(b *testing.B) {
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := s.GetMetrics(ctx, reqs[i%len(reqs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("grpc", func(b *testing.B) {
		srv, err := NewServer(s, ServerConfig{Registerer: prometheus.NewRegistry()})
		if err != nil {
			b.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		done := make(chan struct{})
		go func() { _ = srv.Serve(l); close(done) }()
		conn, err := grpc.NewClient(l.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			b.Fatal(err)
		}
		c := pb.NewExternalScalerClient(conn)
		ctx := context.Background()
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := c.GetMetrics(ctx, reqs[i%len(reqs)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
		b.StopTimer()
		conn.Close()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		srv.Shutdown(sctx)
		cancel()
		<-done
	})
}

// TestTierActivity: activity is per tier. KEDA's HPA never runs fewer than
// one replica; only an inactive trigger lets KEDA scale a tier to zero
// (minReplicaCount 0). So a spot tier the plan leaves at 0 while on-demand
// carries the demand (fallback) is inactive, on IsActive and on the stream,
// while on-demand stays active; an inactive workload is inactive in both,
// and a live workload whose plan is all zeros keeps both (one replica each).
func TestTierActivity(t *testing.T) {
	cache := capacity.NewCache()
	f := start(t, cache, StaticCatalog{"chat": bothTiers}, ServerConfig{}, nil)
	ctx := ctxT(t)
	cache.Set(plan("chat", true, 3, 0))
	spotStream, err := f.client.StreamIsActive(ctx, ref("chat", "spot"))
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range []struct {
		p              capacity.Plan
		onDemand, spot bool
	}{
		{plan("chat", true, 3, 0), true, false},
		{plan("chat", true, 3, 5), true, true},
		{plan("chat", true, 0, 4), false, true},
		{plan("chat", false, 1, 1), false, false},
		{plan("chat", true, 0, 0), true, true},
	} {
		tc.p.Time = t0.Add(time.Duration(i) * time.Minute)
		cache.Set(tc.p)
		for tier, want := range map[string]bool{"on-demand": tc.onDemand, "spot": tc.spot} {
			r, err := f.client.IsActive(ctx, ref("chat", tier))
			if err != nil {
				t.Fatal(err)
			}
			if r.Result != want {
				t.Errorf("plan %d (%v): IsActive(%s) = %v, want %v", i, tc.p.Tiers, tier, r.Result, want)
			}
		}
		got, err := spotStream.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if got.Result != tc.spot {
			t.Errorf("plan %d: StreamIsActive(spot) sent %v, want %v", i, got.Result, tc.spot)
		}
	}
}
