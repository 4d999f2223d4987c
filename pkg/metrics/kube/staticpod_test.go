package kube

import (
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/infercast/infercast/internal/testutil/fakegpu"
	"github.com/infercast/infercast/pkg/metrics/gpu"
)

// TestStaticPodGPUProcesses: a static pod's processes run in a cgroup named
// by the kubelet's UID of it, the hash of its manifest, while the API
// server holds its mirror pod under another UID, with the hash in its
// kubernetes.io/config.mirror annotation. The GPU collector, resolving
// through discovery, names the mirror pod and its container; an ordinary
// pod is still found by its own UID.
func TestStaticPodGPUProcesses(t *testing.T) {
	const (
		hash   = "5c6f4b0e2d3a4f1b9c8d7e6f5a4b3c2d" // the kubelet's UID of the static pod
		mirror = "7d1e2f30-4a5b-4c6d-8e9f-a0b1c2d3e4f5"
		other  = "0a1b2c3d-4e5f-6071-8293-a4b5c6d7e8f9"
	)
	ctrStatic, ctrOther := strings.Repeat("cd", 32), strings.Repeat("ab", 32)
	static := pod("edge-llm-node-a", "node-a", func(p *corev1.Pod) {
		p.UID = types.UID(mirror)
		p.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: hash, "kubernetes.io/config.hash": hash,
			"kubernetes.io/config.source": "file"}
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "server", ContainerID: "containerd://" + ctrStatic}}
	})
	ordinary := pod("chat-0", "node-a", func(p *corev1.Pod) {
		p.UID = types.UID(other)
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "vllm", ContainerID: "containerd://" + ctrOther}}
	})
	h := start(t, static, ordinary)
	h.next()

	root := fakegpu.Proc(t, map[uint32]string{
		// A hash has no dashes to become underscores.
		11: fakegpu.SystemdCgroup(hash, ctrStatic),
		12: fakegpu.SystemdCgroup(other, ctrOther),
	})
	lib := fakegpu.OneGPU(8<<30, nvml.ProcessInfo{Pid: 11, UsedGpuMemory: 5 << 30}, nvml.ProcessInfo{Pid: 12, UsedGpuMemory: 3 << 30})
	dev := lib.Devices[0]
	c := gpu.NewCollector(gpu.Options{NVML: lib, Mapper: gpu.CgroupMapper{ProcRoot: root}, Pods: h.d})
	t.Cleanup(func() { _ = c.Close() })
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	want := `# HELP infercast_gpu_pod_memory_used_bytes ` + help(t, reg, "infercast_gpu_pod_memory_used_bytes") + `
# TYPE infercast_gpu_pod_memory_used_bytes gauge
infercast_gpu_pod_memory_used_bytes{container="server",gpu="0",mig_uuid="",namespace="llm",pod="edge-llm-node-a",pod_uid="` + hash + `",uuid="` + uuidOf(t, dev) + `"} 5.36870912e+09
infercast_gpu_pod_memory_used_bytes{container="vllm",gpu="0",mig_uuid="",namespace="llm",pod="chat-0",pod_uid="` + other + `",uuid="` + uuidOf(t, dev) + `"} 3.221225472e+09
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "infercast_gpu_pod_memory_used_bytes"); err != nil {
		t.Error(err)
	}
}

func help(t *testing.T, g prometheus.Gatherer, name string) string {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetHelp()
		}
	}
	t.Fatalf("%s not gathered", name)
	return ""
}

func uuidOf(t *testing.T, d nvml.Device) string {
	t.Helper()
	u, ret := d.GetUUID()
	if ret != nvml.SUCCESS {
		t.Fatal(ret)
	}
	return u
}
