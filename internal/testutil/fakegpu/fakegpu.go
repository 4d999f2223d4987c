// Package fakegpu is what tests of the GPU-to-pod mapping need outside
// pkg/metrics/gpu: one mock GPU (go-nvml's DGX A100 mock) running given
// processes, and a /proc whose cgroup files place them in pods.
package fakegpu

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
)

// OneGPU is the DGX A100 mock cut to one GPU at 50 % utilisation, 40 GiB
// with used bytes in use, running procs as compute processes (no graphics
// processes, no MPS clients, no per-process utilisation samples).
func OneGPU(used uint64, procs ...nvml.ProcessInfo) *dgxa100.Server {
	lib := dgxa100.New()
	lib.Devices = lib.Devices[:1]
	dev := lib.Devices[0].(*dgxa100.Device)
	dev.GetUtilizationRatesFunc = func() (nvml.Utilization, nvml.Return) { return nvml.Utilization{Gpu: 50}, nvml.SUCCESS }
	dev.GetMemoryInfo_v2Func = func() (nvml.Memory_v2, nvml.Return) {
		return nvml.Memory_v2{Total: 40 << 30, Used: used}, nvml.SUCCESS
	}
	dev.GetMPSComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	dev.GetGraphicsRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return nil, nvml.SUCCESS }
	dev.GetComputeRunningProcessesFunc = func() ([]nvml.ProcessInfo, nvml.Return) { return procs, nvml.SUCCESS }
	dev.GetProcessUtilizationFunc = func(uint64) ([]nvml.ProcessUtilizationSample, nvml.Return) {
		return nil, nvml.ERROR_NOT_FOUND
	}
	return lib
}

// Proc writes root/<pid>/cgroup for each pid of cgroups and returns root,
// a fresh temporary directory: the ProcRoot of a gpu.CgroupMapper.
func Proc(t *testing.T, cgroups map[uint32]string) string {
	t.Helper()
	root := t.TempDir()
	for pid, cg := range cgroups {
		dir := filepath.Join(root, strconv.Itoa(int(pid)))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(cg), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// SystemdCgroup is the cgroup v2 line of a container under the kubelet's
// systemd driver: the pod UID's dashes become underscores.
func SystemdCgroup(podUID, containerID string) string {
	return "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(podUID, "-", "_") +
		".slice/cri-containerd-" + containerID + ".scope\n"
}
