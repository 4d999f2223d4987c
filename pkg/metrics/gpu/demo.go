package gpu

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

// Demo returns a collector over a simulated DGX A100 (go-nvml's mock): eight
// 40 GB A100s whose utilisation and memory move with every scrape, the last
// GPU in MIG mode with two MIG devices, and processes of demo pods on most
// GPUs. Its series carry simulated="true" on infercast_gpu_info, so a
// dashboard never mistakes them for real hardware.
func Demo(log *slog.Logger) *Collector {
	lib, mapper, pods := DemoNVML()
	return NewCollector(Options{NVML: lib, Mapper: mapper, Pods: pods, Simulated: true, Logger: log})
}

// DemoPod names a demo pod.
type DemoPod struct{ Namespace, Name, Container string }

// DemoPods resolves the demo's pod UIDs.
type DemoPods map[string]DemoPod

// PodByUID implements PodResolver.
func (d DemoPods) PodByUID(uid, _ string) (string, string, string, bool) {
	p, ok := d[uid]
	return p.Namespace, p.Name, p.Container, ok
}

// DemoNVML builds the simulated node behind Demo.
func DemoNVML() (nvml.Interface, MapMapper, DemoPods) {
	srv := dgxa100.New()
	mapper := MapMapper{}
	pods := DemoPods{}
	demoPods := []string{"chat-vllm-0", "chat-vllm-1", "ranker-triton-0", "assistant-vllm-0", "summarise-tgi-0", "code-sglang-0"}
	const gib = 1 << 30
	for i, h := range srv.Devices {
		dev := h.(*dgxa100.Device)
		total := dev.MemoryInfo.Total
		if total == 0 {
			total = 40 * gib
		}
		tick := 0
		load := func() float64 { // 0..1, a slow wave per GPU
			return 0.55 + 0.35*math.Sin(float64(tick)/6+float64(i))
		}
		var procs []nvml.ProcessInfo
		if i < len(demoPods) {
			uid := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			pid := uint32(1000 + i)
			mapper[pid] = Container{PodUID: uid, ContainerID: fmt.Sprintf("%064x", i+1)}
			pods[uid] = DemoPod{Namespace: "demo", Name: demoPods[i], Container: "server"}
			procs = []nvml.ProcessInfo{{Pid: pid}}
		}
		dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) {
			tick++
			return nvml.Utilization{Gpu: uint32(math.Round(100 * load())), Memory: uint32(math.Round(60 * load()))}, nvml.SUCCESS
		}
		dev.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
			used := uint64(float64(total) * (0.3 + 0.6*load()))
			return nvml.Memory_v2{Total: total, Used: used, Free: total - used}, nvml.SUCCESS
		}
		dev.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
		dev.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
		dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) {
			out := append([]nvml.ProcessInfo(nil), procs...)
			for j := range out {
				out[j].UsedGpuMemory = uint64(float64(total) * (0.25 + 0.6*load()))
			}
			return out, nvml.SUCCESS
		}
		// One sample per process, taken now, a little under the GPU's load
		// (the rest is the driver's own work), stamped in microseconds.
		dev.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
			stamp := uint64(time.Now().UnixMicro())
			if len(procs) == 0 {
				return nil, nvml.ERROR_NOT_FOUND
			}
			out := make([]nvml.ProcessUtilizationSample, 0, len(procs))
			for _, p := range procs {
				out = append(out, nvml.ProcessUtilizationSample{Pid: p.Pid, TimeStamp: stamp, SmUtil: uint32(math.Round(90 * load()))})
			}
			return out, nvml.SUCCESS
		}
		if i == len(srv.Devices)-1 {
			dev.MigMode = nvml.DEVICE_MIG_ENABLE
			migs := demoMIG(dev.UUID, mapper, pods)
			dev.GetMaxMigDeviceCountFunc = func() (int, nvml.Return) { return 7, nvml.SUCCESS }
			dev.GetMigDeviceHandleByIndexFunc = func(j int) (nvml.Device, nvml.Return) {
				if j < len(migs) {
					return migs[j], nvml.SUCCESS
				}
				return nil, nvml.ERROR_NOT_FOUND
			}
		}
	}
	return srv, mapper, pods
}

// demoMIG builds two 3g.20gb MIG devices, one running a demo pod.
func demoMIG(parent string, mapper MapMapper, pods DemoPods) []nvml.Device {
	const gib = 1 << 30
	var out []nvml.Device
	for j := range 2 {
		uid := fmt.Sprintf("00000000-0000-4000-9000-%012d", j)
		pid := uint32(2000 + j)
		if j == 0 {
			mapper[pid] = Container{PodUID: uid, ContainerID: fmt.Sprintf("%064x", 100+j)}
			pods[uid] = DemoPod{Namespace: "demo", Name: "sentiment-kserve-0", Container: "kserve-container"}
		}
		used := uint64(float64(20*gib) * (0.2 + 0.3*float64(j)))
		md := &mock.Device{
			GetUUIDFunc: func() (string, nvml.Return) {
				return fmt.Sprintf("MIG-%s-%d", parent[len(parent)-8:], j), nvml.SUCCESS
			},
			GetGpuInstanceIdFunc:     func() (int, nvml.Return) { return 1 + j, nvml.SUCCESS },
			GetComputeInstanceIdFunc: func() (int, nvml.Return) { return 0, nvml.SUCCESS },
			GetMemoryInfo_v2Func: func() (nvml.Memory_v2, nvml.Return) {
				return nvml.Memory_v2{Total: 20 * gib, Used: used, Free: 20*gib - used}, nvml.SUCCESS
			},
			GetMPSComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS },
			// MIG devices run no graphics.
			GetGraphicsRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.ERROR_NOT_SUPPORTED },
			GetComputeRunningProcessesFunc: func() ([]nvml.ProcessInfo, nvml.Return) {
				if j != 0 {
					return nil, nvml.SUCCESS
				}
				return []nvml.ProcessInfo{{Pid: pid, UsedGpuMemory: used}}, nvml.SUCCESS
			},
		}
		out = append(out, md)
	}
	return out
}
