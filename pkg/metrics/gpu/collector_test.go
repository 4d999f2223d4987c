package gpu

import (
	"bytes"
	"log/slog"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/infercast/infercast/internal/testutil/fakegpu"
)

func TestCgroupMapper(t *testing.T) {
	m := CgroupMapper{ProcRoot: "testdata/proc"}
	for _, tc := range []struct {
		name string
		pid  uint32
		want Container
		ok   bool
	}{
		{"v1 cgroupfs", 101, Container{"6f1c0a3e-2b4d-4c5e-9f60-7a8b9c0d1e2f", "3a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071829"}, true},
		{"v2 systemd containerd", 102, Container{"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"}, true},
		{"v2 crio guaranteed", 103, Container{"11112222-3333-4444-5555-666677778888", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}, true},
		// crun on cgroup v2 runs the container in a "container" sub-cgroup
		// of its scope (crun's default systemd sub-cgroup).
		{"v2 crio crun sub-cgroup", 107, Container{"22223333-4444-5555-6666-777788889999", "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd"}, true},
		// A static pod's UID is the kubelet's 32-hex hash of its manifest,
		// not a UUID; its mirror pod names it in kubernetes.io/config.mirror.
		{"v2 systemd static pod", 108, Container{"5c6f4b0e2d3a4f1b9c8d7e6f5a4b3c2d", strings.Repeat("cd", 32)}, true},
		{"v1 cgroupfs static pod", 109, Container{"9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b", strings.Repeat("12", 32)}, true},
		{"host process", 104, Container{}, false},
		{"garbage file", 106, Container{}, false},
		{"exited process", 999, Container{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, ok, err := m.ContainerOf(tc.pid)
			if err != nil {
				t.Fatal(err)
			}
			if ok != tc.ok || got != tc.want {
				t.Fatalf("ContainerOf(%d) = %+v, %v; want %+v, %v", tc.pid, got, ok, tc.want, tc.ok)
			}
		})
	}
}

type pods map[string]DemoPod

func (p pods) PodByUID(uid, _ string) (string, string, string, bool) {
	q, ok := p[uid]
	return q.Namespace, q.Name, q.Container, ok
}

// t0 is when twoGPUs's process-utilisation samples start, in microseconds
// since the epoch as NVML stamps them.
const t0 = 1_750_000_000_000_000

// at sets c's clock to t0 plus d and returns c.
func at(c *Collector, d time.Duration) *Collector {
	c.now = func() time.Time { return time.UnixMicro(t0).Add(d) }
	return c
}

// twoGPUs is a DGX A100 mock cut to two GPUs: GPU 0 whole, running three
// processes (two of one container, one host process); GPU 1 in MIG mode
// with one MIG device running one pod process.
func twoGPUs(t *testing.T) *dgxa100.Server {
	t.Helper()
	srv := dgxa100.New()
	srv.Devices = srv.Devices[:2]
	g0 := srv.Devices[0].(*dgxa100.Device)
	g0.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 73, Memory: 20}, nvml.SUCCESS }
	// Version 2 counts only allocated memory as used; version 1 adds the
	// driver's reservation (here 512 MiB).
	g0.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: 40 << 30, Reserved: 1 << 29, Used: 30 << 30}, nvml.SUCCESS
	}
	g0.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) {
		return nvml.Memory{Total: 40 << 30, Used: 30<<30 + 1<<29}, nvml.SUCCESS
	}
	g0.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 102, UsedGpuMemory: 10 << 30}, {Pid: 105, UsedGpuMemory: 4 << 30}, {Pid: 104, UsedGpuMemory: 1 << 30}}, nvml.SUCCESS
	}
	// No graphics processes (a Vulkan or OpenGL renderer would be listed
	// here); an MPS client listed apart (103, memory not available), and
	// 105 in both lists (counted once).
	g0.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	g0.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 105, UsedGpuMemory: 4 << 30}, {Pid: 103, UsedGpuMemory: ^uint64(0)}}, nvml.SUCCESS
	}
	// NVML's samples, in microseconds of the wall clock: 102 sampled twice
	// (25 %, 75 %: mean 0.5), 105 once (25 %), the host process 104 once,
	// the newest at t0+3ms. Like NVML, only those after lastSeen, and
	// ERROR_NOT_FOUND when none is.
	g0.GetProcessUtilizationFunc = func(lastSeen uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		var out []nvml.ProcessUtilizationSample
		for _, s := range []nvml.ProcessUtilizationSample{
			{Pid: 102, TimeStamp: t0 + 1000, SmUtil: 25}, {Pid: 105, TimeStamp: t0 + 2000, SmUtil: 25},
			{Pid: 102, TimeStamp: t0 + 3000, SmUtil: 75}, {Pid: 104, TimeStamp: t0 + 2500, SmUtil: 90},
		} {
			if s.TimeStamp > lastSeen {
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, nvml.ERROR_NOT_FOUND
		}
		return out, nvml.SUCCESS
	}
	g1 := srv.Devices[1].(*dgxa100.Device)
	g1.MigMode = nvml.DEVICE_MIG_ENABLE
	g1.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_NOT_SUPPORTED }
	g1.GetMemoryInfoFunc = func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 40 << 30, Used: 6 << 30}, nvml.SUCCESS }
	g1.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	g1.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	mig := &mock.Device{
		// An older driver: no version 2, no MPS listing.
		GetMemoryInfo_v2Func: func() (nvml.Memory_v2, nvml.Return) { return nvml.Memory_v2{}, nvml.ERROR_FUNCTION_NOT_FOUND },
		GetMPSComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			return nil, nvml.ERROR_FUNCTION_NOT_FOUND
		},
		GetUUIDFunc:              func() (string, nvml.Return) { return "MIG-aaaa", nvml.SUCCESS },
		GetGpuInstanceIdFunc:     func() (int, nvml.Return) { return 2, nvml.SUCCESS },
		GetComputeInstanceIdFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
		GetMemoryInfoFunc:        func() (nvml.Memory, nvml.Return) { return nvml.Memory{Total: 10 << 30, Used: 3 << 30}, nvml.SUCCESS },
		GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
			return []nvml.ProcessInfo{{Pid: 101, UsedGpuMemory: 3 << 30}}, nvml.SUCCESS
		},
		// MIG devices run no graphics.
		GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED },
	}
	g1.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
	g1.GetMigDeviceHandleByIndexFunc = func(i int) (nvml.Device, nvml.Return) {
		if i == 0 {
			return mig, nvml.SUCCESS
		}
		return nil, nvml.ERROR_NOT_FOUND
	}
	g1.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
		t.Error("utilisation queried on a MIG-enabled GPU")
		return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED
	}
	return srv
}

func gather(t *testing.T, c prometheus.Collector) (*prometheus.Registry, map[string]*dto.MetricFamily) {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return reg, out
}

// sample finds the value of the series of family name whose labels include
// want; it fails when none or several match.
func sample(t *testing.T, mfs map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	t.Helper()
	var found []float64
	for _, m := range mfs[name].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
			}
		}
		if match {
			found = append(found, m.GetGauge().GetValue()+m.GetCounter().GetValue())
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s%v: %d series match, want 1", name, want, len(found))
	}
	return found[0]
}

func TestCollectorOverMock(t *testing.T) {
	srv := twoGPUs(t)
	uuid0, _ := srv.Devices[0].GetUUID()
	uuid1, _ := srv.Devices[1].GetUUID()
	c := at(NewCollector(Options{
		NVML:   srv,
		Mapper: CgroupMapper{ProcRoot: "testdata/proc"},
		Pods: pods{
			"0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9": {Namespace: "llm", Name: "chat-0", Container: "vllm"},
			// 101's pod is unknown to the resolver: names stay empty.
		},
	}), 5*time.Second)
	reg, mfs := gather(t, c)
	const gib = 1 << 30
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"infercast_gpu_collector_up", nil, 1},
		{"infercast_gpu_info", map[string]string{"gpu": "0", "uuid": uuid0, "simulated": "false", "driver_version": "550.54.15"}, 1},
		{"infercast_gpu_utilization_ratio", map[string]string{"gpu": "0"}, 0.73},
		{"infercast_gpu_memory_used_bytes", map[string]string{"gpu": "0"}, 30 * gib},
		{"infercast_gpu_memory_total_bytes", map[string]string{"gpu": "1", "uuid": uuid1}, 40 * gib},
		{"infercast_gpu_mig_enabled", map[string]string{"gpu": "0"}, 0},
		{"infercast_gpu_mig_enabled", map[string]string{"gpu": "1"}, 1},
		{"infercast_gpu_mig_memory_used_bytes", map[string]string{"gpu": "1", "mig_uuid": "MIG-aaaa", "gpu_instance": "2", "compute_instance": "0"}, 3 * gib},
		{"infercast_gpu_mig_memory_total_bytes", map[string]string{"mig_uuid": "MIG-aaaa"}, 10 * gib},
		// Two processes of one container add up; the host process is left out.
		{"infercast_gpu_pod_memory_used_bytes", map[string]string{"gpu": "0", "mig_uuid": "", "namespace": "llm", "pod": "chat-0", "container": "vllm", "pod_uid": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"}, 14 * gib},
		{"infercast_gpu_pod_processes", map[string]string{"gpu": "0", "pod": "chat-0"}, 2},
		// The container's two processes: 0.5 + 0.25.
		{"infercast_gpu_pod_utilization_ratio", map[string]string{"gpu": "0", "mig_uuid": "", "pod": "chat-0", "pod_uid": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"}, 0.75},
		{"infercast_gpu_pod_memory_used_bytes", map[string]string{"gpu": "1", "mig_uuid": "MIG-aaaa", "pod_uid": "6f1c0a3e-2b4d-4c5e-9f60-7a8b9c0d1e2f", "pod": ""}, 3 * gib},
		// The MPS client: its process counts, its memory NVML cannot tell.
		{"infercast_gpu_pod_processes", map[string]string{"gpu": "0", "pod_uid": "11112222-3333-4444-5555-666677778888"}, 1},
		{"infercast_gpu_pod_memory_used_bytes", map[string]string{"gpu": "0", "pod_uid": "11112222-3333-4444-5555-666677778888"}, 0},
	} {
		if got := sample(t, mfs, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	if n := len(mfs["infercast_gpu_pod_memory_used_bytes"].GetMetric()); n != 3 {
		t.Errorf("%d pod series, want 3 (host process excluded)", n)
	}
	if n := len(mfs["infercast_gpu_pod_utilization_ratio"].GetMetric()); n != 2 {
		t.Errorf("%d pod utilisation series, want 2 (GPU 0's two pods, none on the MIG device)", n)
	}
	if _, ok := mfs["infercast_gpu_utilization_ratio"]; ok && len(mfs["infercast_gpu_utilization_ratio"].GetMetric()) != 1 {
		t.Error("utilisation exported for the MIG GPU")
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
	checkDocumented(t, reg)
}

// TestPodUtilizationSameForEveryScraper scrapes as an HA Prometheus pair
// (or a curl between two scrapes) does: a second scrape a moment after the
// first, before NVML's next sample, reads the same utilisation, not 0.
func TestPodUtilizationSameForEveryScraper(t *testing.T) {
	srv := twoGPUs(t)
	c := at(NewCollector(Options{NVML: srv, Mapper: CgroupMapper{ProcRoot: "testdata/proc"}}), 5*time.Second)
	chat := map[string]string{"gpu": "0", "pod_uid": "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"}
	for i, d := range []time.Duration{5 * time.Second, 5*time.Second + time.Millisecond, 20 * time.Second} {
		at(c, d)
		_, mfs := gather(t, c)
		if got := sample(t, mfs, "infercast_gpu_pod_utilization_ratio", chat); got != 0.75 {
			t.Errorf("scrape %d at t0+%s: utilisation %v, want 0.75", i, d, got)
		}
	}
	// Each query looks back one window from its scrape.
	calls := srv.Devices[0].(*dgxa100.Device).GetProcessUtilizationCalls()
	if len(calls) != 3 || calls[0].V != t0-25_000_000 || calls[2].V != t0-10_000_000 {
		t.Errorf("GetProcessUtilization calls %+v, want since t0-25s, t0-24.999s, t0-10s", calls)
	}
	// A window after the newest sample the processes count as idle.
	at(c, DefaultUtilizationWindow+3*time.Millisecond)
	_, mfs := gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_pod_utilization_ratio", chat); got != 0 {
		t.Errorf("utilisation with no sample in the window = %v, want 0", got)
	}
	// A shorter window drops the samples sooner.
	c = at(NewCollector(Options{NVML: srv, Mapper: CgroupMapper{ProcRoot: "testdata/proc"}, UtilizationWindow: 2 * time.Second}), 5*time.Second)
	_, mfs = gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_pod_utilization_ratio", chat); got != 0 {
		t.Errorf("utilisation with a 2s window, 5s after the samples = %v, want 0", got)
	}
}

func TestNoDriverKeepsRunning(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	initRet := nvml.ERROR_LIBRARY_NOT_FOUND
	lib := &mock.Interface{
		InitFunc:     func() nvml.Return { return initRet },
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
	}
	c := NewCollector(Options{NVML: lib, Logger: log})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	for range 3 {
		want := "# HELP infercast_gpu_collector_up 1 when NVML answered this scrape, 0 when it is unavailable (no driver, init failed).\n# TYPE infercast_gpu_collector_up gauge\ninfercast_gpu_collector_up 0\n"
		if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "infercast_gpu_collector_up"); err != nil {
			t.Fatal(err)
		}
	}
	_, mfs := gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_collector_errors_total", map[string]string{"op": "init"}); got != 4 {
		t.Errorf("init errors = %v, want 4", got)
	}
	if n := strings.Count(logs.String(), "NVML unavailable"); n != 1 {
		t.Errorf("reason logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "ERROR_LIBRARY_NOT_FOUND") {
		t.Errorf("log does not give the reason:\n%s", logs.String())
	}
	checkDocumented(t, reg)

	// The driver appears (e.g. after the device plugin restarts): the next
	// scrape initialises NVML.
	initRet = nvml.SUCCESS
	lib.DeviceGetCountFunc = func() (int, nvml.Return) { return 0, nvml.SUCCESS }
	lib.SystemGetDriverVersionFunc = func() (string, nvml.Return) { return "550", nvml.SUCCESS }
	_, mfs = gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_collector_up", nil); got != 1 {
		t.Errorf("after the driver appeared: up = %v", got)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if len(lib.ShutdownCalls()) != 1 {
		t.Errorf("Shutdown called %d times, want 1", len(lib.ShutdownCalls()))
	}
}

// TestReinitialisesAfterDriverLoss unloads the driver under a running
// collector, as a driver reload or a GPU operator upgrade does: NVML
// answers ERROR_UNINITIALIZED, the collector shuts it down and initialises
// it again, once a minute while that fails, until the driver is back.
func TestReinitialisesAfterDriverLoss(t *testing.T) {
	var logs bytes.Buffer
	srv := twoGPUs(t)
	driver := true
	inits := 0
	srv.InitFunc = func() nvml.Return {
		inits++
		if !driver {
			return nvml.ERROR_DRIVER_NOT_LOADED
		}
		return nvml.SUCCESS
	}
	lost := false
	srv.DeviceGetCountFunc = func() (int, nvml.Return) {
		if lost {
			return 0, nvml.ERROR_UNINITIALIZED
		}
		return 2, nvml.SUCCESS
	}
	c := NewCollector(Options{NVML: srv, Mapper: MapMapper{}, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	scrape := func(d time.Duration, wantUp float64, wantInits int) {
		t.Helper()
		_, mfs := gather(t, at(c, d))
		if got := sample(t, mfs, "infercast_gpu_collector_up", nil); got != wantUp {
			t.Errorf("t0+%s: up = %v, want %v", d, got, wantUp)
		}
		if inits != wantInits {
			t.Errorf("t0+%s: %d Init calls, want %d", d, inits, wantInits)
		}
	}
	scrape(0, 1, 1)
	// The driver goes; NVML's state with it.
	lost, driver = true, false
	scrape(10*time.Minute, 0, 1)
	if n := len(srv.ShutdownCalls()); n != 1 {
		t.Errorf("Shutdown called %d times after the driver went, want 1", n)
	}
	scrape(10*time.Minute+15*time.Second, 0, 2) // at once: failed
	scrape(10*time.Minute+30*time.Second, 0, 2) // not again within a minute
	scrape(11*time.Minute+14*time.Second, 0, 2)
	scrape(11*time.Minute+15*time.Second, 0, 3)
	// The driver is back: the next attempt succeeds.
	lost, driver = false, true
	scrape(11*time.Minute+45*time.Second, 0, 3)
	scrape(12*time.Minute+15*time.Second, 1, 4)
	scrape(12*time.Minute+30*time.Second, 1, 4)

	_, mfs := gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_collector_errors_total", map[string]string{"op": "init"}); got != 2 {
		t.Errorf("init errors = %v, want 2 (the skipped attempts are not calls)", got)
	}
	if n := strings.Count(logs.String(), "ERROR_DRIVER_NOT_LOADED"); n != 1 {
		t.Errorf("the failing reason logged %d times, want once:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "lost its driver"); n != 1 {
		t.Errorf("the loss logged %d times, want once:\n%s", n, logs.String())
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.ShutdownCalls()); n != 2 {
		t.Errorf("Shutdown called %d times in all, want 2", n)
	}
}

// TestRealLibraryWithoutDriver runs the real go-nvml library: on a machine
// without the NVIDIA driver, as in CI, the collector says it is down.
func TestRealLibraryWithoutDriver(t *testing.T) {
	if _, err := os.Stat("/dev/nvidiactl"); err == nil {
		t.Skip("an NVIDIA driver is present; this test is for machines without one")
	}
	c := NewCollector(Options{NVML: nvml.New()})
	defer c.Close()
	_, mfs := gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_collector_up", nil); got != 0 {
		t.Errorf("up = %v without a driver, want 0", got)
	}
}

func TestNVMLCallFailuresAreCounted(t *testing.T) {
	srv := twoGPUs(t)
	g0 := srv.Devices[0].(*dgxa100.Device)
	g0.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_GPU_IS_LOST }
	g0.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 106}, {Pid: 103, UsedGpuMemory: 5}}, nvml.SUCCESS
	}
	g0.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return nil, nvml.ERROR_GPU_IS_LOST
	}
	g0.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_GPU_IS_LOST }
	c := NewCollector(Options{NVML: srv, Mapper: CgroupMapper{ProcRoot: "testdata/proc"}})
	_, mfs := gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_collector_errors_total", map[string]string{"op": "utilization"}); got != 1 {
		t.Errorf("utilization errors = %v, want 1", got)
	}
	if got := sample(t, mfs, "infercast_gpu_collector_errors_total", map[string]string{"op": "process_utilization"}); got != 1 {
		t.Errorf("process_utilization errors = %v, want 1", got)
	}
	if got := sample(t, mfs, "infercast_gpu_collector_errors_total", map[string]string{"op": "mps_running_processes"}); got != 1 {
		t.Errorf("mps_running_processes errors = %v, want 1", got)
	}
	if _, ok := mfs["infercast_gpu_pod_utilization_ratio"]; ok {
		t.Error("pod utilisation exported though NVML failed to sample processes")
	}
	// The rest of the GPU is still reported.
	if got := sample(t, mfs, "infercast_gpu_memory_used_bytes", map[string]string{"gpu": "0"}); got != 30<<30 {
		t.Errorf("memory used = %v", got)
	}
	if got := sample(t, mfs, "infercast_gpu_pod_memory_used_bytes", map[string]string{"pod_uid": "11112222-3333-4444-5555-666677778888"}); got != 5 {
		t.Errorf("pod memory = %v, want 5", got)
	}
}

func TestDemo(t *testing.T) {
	c := Demo(nil)
	reg, mfs := gather(t, c)
	if got := sample(t, mfs, "infercast_gpu_collector_up", nil); got != 1 {
		t.Fatalf("demo up = %v", got)
	}
	info := mfs["infercast_gpu_info"].GetMetric()
	if len(info) != 8 {
		t.Errorf("%d GPUs, want 8", len(info))
	}
	for _, m := range info {
		for _, lp := range m.GetLabel() {
			if lp.GetName() == "simulated" && lp.GetValue() != "true" {
				t.Errorf("demo GPU not marked simulated: %v", m.GetLabel())
			}
		}
	}
	if _, ok := mfs["infercast_gpu_mig_memory_used_bytes"]; !ok {
		t.Error("demo has no MIG devices")
	}
	if got := sample(t, mfs, "infercast_gpu_pod_processes", map[string]string{"pod": "sentiment-kserve-0"}); got != 1 {
		t.Errorf("MIG pod processes = %v", got)
	}
	u1 := sample(t, mfs, "infercast_gpu_utilization_ratio", map[string]string{"gpu": "0"})
	_, mfs = gather(t, c)
	u2 := sample(t, mfs, "infercast_gpu_utilization_ratio", map[string]string{"gpu": "0"})
	if u1 == u2 {
		t.Errorf("demo utilisation does not move between scrapes (%v)", u1)
	}
	for _, u := range []float64{u1, u2} {
		if u < 0 || u > 1 {
			t.Errorf("utilisation %v outside 0-1", u)
		}
	}
	seen := checkDocumented(t, reg)
	for _, name := range []string{"infercast_gpu_info", "infercast_gpu_pod_memory_used_bytes", "infercast_gpu_mig_memory_total_bytes", "infercast_gpu_pod_utilization_ratio"} {
		if !seen[name] {
			t.Errorf("demo does not export %s", name)
		}
	}
	if problems, err := testutil.GatherAndLint(reg); err != nil || len(problems) > 0 {
		t.Errorf("promlint: %v %v", problems, err)
	}
}

// containerPods resolves a pod's containers by container ID; a container
// missing from it resolves to the pod with an empty container name, as
// (*kube.Discovery).PodByUID does while a status lacks the container's ID.
type containerPods map[string]string

func (p containerPods) PodByUID(_, containerID string) (string, string, string, bool) {
	return "ml", "llama-0", p[containerID], true
}

// TestContainersSharingASeriesAreSummed runs two containers of one pod on
// one GPU. When their names do not resolve they share one label set: the
// collector sums them rather than sending the series twice, which would
// fail the whole gather.
func TestContainersSharingASeriesAreSummed(t *testing.T) {
	const uid = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
	a, b := strings.Repeat("aa", 32), strings.Repeat("bb", 32)
	lib := fakegpu.OneGPU(20<<30,
		nvml.ProcessInfo{Pid: 201, UsedGpuMemory: 10 << 30},
		nvml.ProcessInfo{Pid: 202, UsedGpuMemory: 6 << 30})
	lib.Devices[0].(*dgxa100.Device).GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return []nvml.ProcessUtilizationSample{{Pid: 201, TimeStamp: t0, SmUtil: 30}, {Pid: 202, TimeStamp: t0, SmUtil: 20}}, nvml.SUCCESS
	}
	root := fakegpu.Proc(t, map[uint32]string{201: fakegpu.SystemdCgroup(uid, a), 202: fakegpu.SystemdCgroup(uid, b)})
	for _, tc := range []struct {
		name  string
		pods  PodResolver
		want  map[string]float64 // container → memory
		ctr   string             // the series of 202's container:
		procs float64            // its processes
		util  float64            // and utilisation
	}{
		{"kubernetes off", nil, map[string]float64{"": 16 << 30}, "", 2, 0.5},
		{"container IDs not in the status yet", containerPods{}, map[string]float64{"": 16 << 30}, "", 2, 0.5},
		{"one container resolved", containerPods{a: "server"}, map[string]float64{"server": 10 << 30, "": 6 << 30}, "", 1, 0.2},
		{"both resolved", containerPods{a: "server", b: "sidecar"}, map[string]float64{"server": 10 << 30, "sidecar": 6 << 30}, "sidecar", 1, 0.2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := at(NewCollector(Options{NVML: lib, Mapper: CgroupMapper{ProcRoot: root}, Pods: tc.pods}), time.Second)
			_, mfs := gather(t, c) // fails on a duplicate series
			if n := len(mfs["infercast_gpu_pod_memory_used_bytes"].GetMetric()); n != len(tc.want) {
				t.Errorf("%d memory series, want %d", n, len(tc.want))
			}
			for ctr, want := range tc.want {
				if got := sample(t, mfs, "infercast_gpu_pod_memory_used_bytes", map[string]string{"pod_uid": uid, "container": ctr}); got != want {
					t.Errorf("memory of container %q = %v, want %v", ctr, got, want)
				}
			}
			lv := map[string]string{"pod_uid": uid, "container": tc.ctr}
			if got := sample(t, mfs, "infercast_gpu_pod_processes", lv); got != tc.procs {
				t.Errorf("processes%v = %v, want %v", lv, got, tc.procs)
			}
			// Shared, the utilisation is what the processes used together.
			if got := sample(t, mfs, "infercast_gpu_pod_utilization_ratio", lv); math.Abs(got-tc.util) > 1e-9 {
				t.Errorf("utilisation%v = %v, want %v", lv, got, tc.util)
			}
		})
	}
}

// TestGraphicsProcesses runs a renderer (Vulkan, OpenGL), listed only
// among NVML's graphics processes, beside a CUDA process that is in both
// lists: each counts once, the renderer in its pod.
func TestGraphicsProcesses(t *testing.T) {
	const cuda, render = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9", "22223333-4444-5555-6666-777788889999"
	lib := fakegpu.OneGPU(12<<30, nvml.ProcessInfo{Pid: 201, UsedGpuMemory: 10 << 30})
	dev := lib.Devices[0].(*dgxa100.Device)
	dev.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 202, UsedGpuMemory: 1 << 30}, {Pid: 201, UsedGpuMemory: 10 << 30}}, nvml.SUCCESS
	}
	dev.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return []nvml.ProcessUtilizationSample{{Pid: 201, TimeStamp: t0, SmUtil: 50}, {Pid: 202, TimeStamp: t0, SmUtil: 40}}, nvml.SUCCESS
	}
	root := fakegpu.Proc(t, map[uint32]string{
		201: fakegpu.SystemdCgroup(cuda, strings.Repeat("aa", 32)),
		202: fakegpu.SystemdCgroup(render, strings.Repeat("bb", 32)),
	})
	c := at(NewCollector(Options{NVML: lib, Mapper: CgroupMapper{ProcRoot: root}}), time.Second)
	_, mfs := gather(t, c)
	for _, tc := range []struct {
		uid              string
		mem, procs, util float64
	}{
		{cuda, 10 << 30, 1, 0.5},
		{render, 1 << 30, 1, 0.4},
	} {
		lv := map[string]string{"pod_uid": tc.uid}
		if got := sample(t, mfs, "infercast_gpu_pod_memory_used_bytes", lv); got != tc.mem {
			t.Errorf("memory of %s = %v, want %v", tc.uid, got, tc.mem)
		}
		if got := sample(t, mfs, "infercast_gpu_pod_processes", lv); got != tc.procs {
			t.Errorf("processes of %s = %v, want %v", tc.uid, got, tc.procs)
		}
		if got := sample(t, mfs, "infercast_gpu_pod_utilization_ratio", lv); got != tc.util {
			t.Errorf("utilisation of %s = %v, want %v", tc.uid, got, tc.util)
		}
	}
}

// TestUnsupportedIsNotAnError runs a GPU that answers ERROR_NOT_SUPPORTED
// for its utilisation and its compute processes (as some GPUs and vGPUs
// do): those values are left out, as for the other optional calls, and no
// error is counted, so no alert fires on every scrape.
func TestUnsupportedIsNotAnError(t *testing.T) {
	lib := fakegpu.OneGPU(1 << 30)
	dev := lib.Devices[0].(*dgxa100.Device)
	dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{}, nvml.ERROR_NOT_SUPPORTED }
	dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED }
	dev.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
		return []nvml.ProcessInfo{{Pid: 202, UsedGpuMemory: 1 << 30}}, nvml.SUCCESS
	}
	const uid = "22223333-4444-5555-6666-777788889999"
	root := fakegpu.Proc(t, map[uint32]string{202: fakegpu.SystemdCgroup(uid, strings.Repeat("bb", 32))})
	c := NewCollector(Options{NVML: lib, Mapper: CgroupMapper{ProcRoot: root}})
	for range 2 {
		_, mfs := gather(t, c)
		if errs := mfs["infercast_gpu_collector_errors_total"]; errs != nil {
			t.Errorf("errors counted: %v", errs.GetMetric())
		}
		if _, ok := mfs["infercast_gpu_utilization_ratio"]; ok {
			t.Error("utilisation exported though not supported")
		}
		if got := sample(t, mfs, "infercast_gpu_pod_memory_used_bytes", map[string]string{"pod_uid": uid}); got != 1<<30 {
			t.Errorf("the graphics process's pod memory = %v, want 1 GiB", got)
		}
	}
}
