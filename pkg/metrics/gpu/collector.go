// Package gpu exports GPU occupancy through NVML: utilisation and memory per
// GPU, memory per MIG device, and memory and utilisation per pod (process →
// container through cgroups). Without a driver it reports infercast_gpu_collector_up 0
// and keeps running.
package gpu

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/prometheus/client_golang/prometheus"
)

// PodResolver turns a pod UID and container ID into names, typically from
// the node's pod informer: (*kube.Discovery) implements it. ok is false
// when unknown.
type PodResolver interface {
	PodByUID(uid, containerID string) (namespace, pod, container string, ok bool)
}

// Options configure a Collector.
type Options struct {
	// NVML is the library: nvml.New() in production, a mock in tests and
	// demos.
	NVML nvml.Interface
	// Mapper maps processes to containers; default CgroupMapper{"/proc"}.
	Mapper PIDMapper
	// Pods resolves pod names; optional (labels stay empty without it).
	Pods PodResolver
	// Simulated marks the data as coming from a mock (demo mode).
	Simulated bool
	Logger    *slog.Logger
	// UtilizationWindow is how far back per-process utilisation samples
	// count (default DefaultUtilizationWindow): each scrape reads the
	// samples NVML took in the last window, so every scraper gets the same
	// answer however many there are. Set it to the scrape interval; it must
	// be well above NVML's sampling period (1/6 to 1 s).
	UtilizationWindow time.Duration
}

// DefaultUtilizationWindow is the chart's ServiceMonitor interval.
const DefaultUtilizationWindow = 30 * time.Second

// Collector is a prometheus.Collector over NVML. Collect queries NVML
// synchronously; NVML calls are cheap (microseconds) on a handful of GPUs.
type Collector struct {
	o   Options
	log *slog.Logger

	now func() time.Time // time.Now; tests set it

	mu      sync.Mutex
	inited  bool
	lastErr string
	errs    map[string]float64 // op → count
	// lost is set when NVML, once initialised, lost its driver; Init is
	// then called at most once per reinitInterval after lastInit.
	lost     bool
	lastInit time.Time

	up, info, util, memUsed, memTotal, migEnabled *prometheus.Desc
	migUsed, migTotal, podMem, podProcs, errsDesc *prometheus.Desc
	podUtil                                       *prometheus.Desc
}

// Label names, shared by the descriptors and the documentation.
var (
	gpuLabels = []string{"gpu", "uuid"}
	migLabels = []string{"gpu", "uuid", "mig_uuid", "gpu_instance", "compute_instance"}
	podLabels = []string{"gpu", "uuid", "mig_uuid", "namespace", "pod", "pod_uid", "container"}
)

// NewCollector builds a collector; NVML is initialised on the first Collect
// and retried on every Collect until it succeeds. When the driver goes away
// later (unloaded, reloaded, upgraded), NVML is shut down and initialised
// again, at most once per reinitInterval while that fails.
func NewCollector(o Options) *Collector {
	if o.Mapper == nil {
		o.Mapper = CgroupMapper{ProcRoot: "/proc"}
	}
	if o.UtilizationWindow <= 0 {
		o.UtilizationWindow = DefaultUtilizationWindow
	}
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := func(name, help string, labels []string) *prometheus.Desc {
		return prometheus.NewDesc(name, help, labels, nil)
	}
	return &Collector{
		o: o, log: log, now: time.Now, errs: map[string]float64{},
		up:         d("infercast_gpu_collector_up", "1 when NVML answered this scrape, 0 when it is unavailable (no driver, init failed).", nil),
		info:       d("infercast_gpu_info", "GPU identity; simulated is \"true\" when the data comes from the built-in mock (demo).", []string{"gpu", "uuid", "name", "driver_version", "simulated"}),
		util:       d("infercast_gpu_utilization_ratio", "Fraction of the last sample period during which a kernel ran on the GPU (0-1).", gpuLabels),
		memUsed:    d("infercast_gpu_memory_used_bytes", "GPU memory allocated, in bytes.", gpuLabels),
		memTotal:   d("infercast_gpu_memory_total_bytes", "GPU memory installed, in bytes.", gpuLabels),
		migEnabled: d("infercast_gpu_mig_enabled", "1 when MIG mode is on for the GPU.", gpuLabels),
		migUsed:    d("infercast_gpu_mig_memory_used_bytes", "Memory allocated on a MIG device, in bytes.", migLabels),
		migTotal:   d("infercast_gpu_mig_memory_total_bytes", "Memory of a MIG device, in bytes.", migLabels),
		podMem:     d("infercast_gpu_pod_memory_used_bytes", "GPU memory used by a container's processes, in bytes (mig_uuid empty for a whole GPU).", podLabels),
		podProcs:   d("infercast_gpu_pod_processes", "Number of a container's processes running on the GPU or MIG device.", podLabels),
		podUtil: d("infercast_gpu_pod_utilization_ratio",
			"Fraction of the GPU's SM time a container's processes used, from NVML's samples of them within the look-back window (30s by default; NVML keeps about one per process, from its latest busy period), summed over the processes; 0 when none was sampled in the window (0-1; whole GPUs only, mig_uuid empty: NVML samples no processes on MIG devices).", podLabels),
		errsDesc: d("infercast_gpu_collector_errors_total", "NVML or process-mapping calls that failed, by operation.", []string{"op"}),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.info, c.util, c.memUsed, c.memTotal, c.migEnabled,
		c.migUsed, c.migTotal, c.podMem, c.podProcs, c.podUtil, c.errsDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	defer func() {
		for op, n := range c.errs {
			ch <- prometheus.MustNewConstMetric(c.errsDesc, prometheus.CounterValue, n, op)
		}
	}()
	if err := c.init(); err != nil {
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	n, ret := c.o.NVML.DeviceGetCount()
	if ret != nvml.SUCCESS {
		c.fail("device_count", ret)
		if driverGone(ret) {
			c.reset(ret)
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	driver, ret := c.o.NVML.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		c.fail("driver_version", ret)
	}
	for i := range n {
		dev, ret := c.o.NVML.DeviceGetHandleByIndex(i)
		if ret != nvml.SUCCESS {
			c.fail("device_handle", ret)
			continue
		}
		c.collectDevice(ch, strconv.Itoa(i), dev, driver)
	}
}

func (c *Collector) init() error {
	if c.inited {
		return nil
	}
	if c.o.NVML == nil {
		return c.initFailed("no NVML library configured")
	}
	now := c.now()
	if c.lost && now.Before(c.lastInit.Add(reinitInterval)) {
		return errRetryLater // not counted: no call was made
	}
	c.lastInit = now
	if ret := c.o.NVML.Init(); ret != nvml.SUCCESS {
		return c.initFailed(ret.Error())
	}
	c.inited = true
	c.lost = false
	c.lastErr = ""
	c.log.Info("gpu: NVML initialised", "simulated", c.o.Simulated)
	return nil
}

// reinitInterval spaces the attempts to initialise NVML again after its
// driver went away: unlike at start (where Init without a driver fails in
// dlopen), each attempt goes to the library still loaded.
const reinitInterval = time.Minute

var errRetryLater = errors.New("NVML lost its driver; waiting to initialise it again")

// driverGone says NVML answered as it does once its driver has gone: not
// initialised any more, the kernel module unloaded, or a kernel module of
// another version than the library (a driver upgrade under a running
// exporter).
func driverGone(ret nvml.Return) bool {
	return ret == nvml.ERROR_UNINITIALIZED || ret == nvml.ERROR_DRIVER_NOT_LOADED || ret == nvml.ERROR_LIB_RM_VERSION_MISMATCH
}

// reset shuts NVML down after its driver went away, so that the next
// scrape initialises it again (or the first a reinitInterval after the
// last Init, should the driver come and go).
func (c *Collector) reset(ret nvml.Return) {
	c.log.Warn("gpu: NVML lost its driver; GPU metrics are down until it initialises again", "err", ret.Error())
	// Shutdown may fail the same way; the state is gone either way. Where
	// it succeeds and nothing else holds the library, go-nvml unloads it,
	// so the next Init loads it afresh.
	_ = c.o.NVML.Shutdown()
	c.inited = false
	c.lost = true
	c.lastErr = ""
}

// initFailed logs the reason once per distinct reason, not every scrape.
func (c *Collector) initFailed(reason string) error {
	if reason != c.lastErr {
		c.log.Warn("gpu: NVML unavailable; GPU metrics are down, the exporter keeps running", "err", reason)
		c.lastErr = reason
	}
	c.errs["init"]++
	return errors.New(reason)
}

func (c *Collector) fail(op string, ret nvml.Return) {
	c.errs[op]++
	c.log.Debug("gpu: NVML call failed", "op", op, "err", ret.Error())
}

func (c *Collector) collectDevice(ch chan<- prometheus.Metric, idx string, dev nvml.Device, driver string) {
	uuid, ret := dev.GetUUID()
	if ret != nvml.SUCCESS {
		c.fail("uuid", ret)
		return
	}
	name, ret := dev.GetName()
	if ret != nvml.SUCCESS {
		c.fail("name", ret)
	}
	ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, idx, uuid, name, driver, strconv.FormatBool(c.o.Simulated))

	if used, total, ret := memoryInfo(dev); ret == nvml.SUCCESS {
		ch <- prometheus.MustNewConstMetric(c.memUsed, prometheus.GaugeValue, float64(used), idx, uuid)
		ch <- prometheus.MustNewConstMetric(c.memTotal, prometheus.GaugeValue, float64(total), idx, uuid)
	} else {
		c.fail("memory_info", ret)
	}

	mig := false
	if cur, _, ret := dev.GetMigMode(); ret == nvml.SUCCESS {
		mig = cur == nvml.DEVICE_MIG_ENABLE
	} else if ret != nvml.ERROR_NOT_SUPPORTED {
		c.fail("mig_mode", ret)
	}
	ch <- prometheus.MustNewConstMetric(c.migEnabled, prometheus.GaugeValue, b2f(mig), idx, uuid)

	if !mig {
		// Utilisation is not reported per GPU in MIG mode.
		if u, ret := dev.GetUtilizationRates(); ret == nvml.SUCCESS {
			ch <- prometheus.MustNewConstMetric(c.util, prometheus.GaugeValue, float64(u.Gpu)/100, idx, uuid)
		} else if !unsupported(ret) {
			c.fail("utilization", ret)
		}
		c.collectProcesses(ch, dev, idx, uuid, "", c.processUtilization(dev))
		return
	}
	max, ret := dev.GetMaxMigDeviceCount()
	if ret != nvml.SUCCESS {
		c.fail("max_mig_device_count", ret)
		return
	}
	for j := range max {
		md, ret := dev.GetMigDeviceHandleByIndex(j)
		if ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INVALID_ARGUMENT {
			continue // slot not populated
		}
		if ret != nvml.SUCCESS {
			c.fail("mig_device_handle", ret)
			continue
		}
		migUUID, ret := md.GetUUID()
		if ret != nvml.SUCCESS {
			c.fail("mig_uuid", ret)
			continue
		}
		gi, ret := md.GetGpuInstanceId()
		if ret != nvml.SUCCESS {
			c.fail("gpu_instance_id", ret)
		}
		ci, ret := md.GetComputeInstanceId()
		if ret != nvml.SUCCESS {
			c.fail("compute_instance_id", ret)
		}
		if used, total, ret := memoryInfo(md); ret == nvml.SUCCESS {
			lv := []string{idx, uuid, migUUID, strconv.Itoa(gi), strconv.Itoa(ci)}
			ch <- prometheus.MustNewConstMetric(c.migUsed, prometheus.GaugeValue, float64(used), lv...)
			ch <- prometheus.MustNewConstMetric(c.migTotal, prometheus.GaugeValue, float64(total), lv...)
		} else {
			c.fail("mig_memory_info", ret)
		}
		c.collectProcesses(ch, md, idx, uuid, migUUID, nil)
	}
}

type podKey struct{ uid, containerID string }

// processUtilization returns each process's SM utilisation (0-1): the mean
// of NVML's samples of it taken within the last UtilizationWindow. NVML
// keeps about one sample per process, from the latest sampling period in
// which it ran (go-nvml#51), so that is usually the one; a process with no
// sample in the window was idle throughout. The look-back is fixed rather
// than starting at the newest sample the previous scrape read, so the value
// does not depend on who scraped last: two scrapers a moment apart get the
// same answer (NVML answers ERROR_NOT_FOUND to a query that starts after
// its latest sample). nil when NVML cannot tell (unsupported GPU, or the
// call failed, which is counted).
func (c *Collector) processUtilization(dev nvml.Device) map[uint32]float64 {
	// NVML stamps samples in microseconds of the host's wall clock.
	since := uint64(max(c.now().Add(-c.o.UtilizationWindow).UnixMicro(), 0))
	samples, ret := dev.GetProcessUtilization(since)
	switch {
	case ret == nvml.ERROR_NOT_FOUND || ret == nvml.ERROR_INSUFFICIENT_SIZE && len(samples) == 0:
		return map[uint32]float64{} // no sample in the window: nothing ran
	case ret == nvml.ERROR_NOT_SUPPORTED:
		return nil
	case ret != nvml.SUCCESS:
		c.fail("process_utilization", ret)
		return nil
	}
	sum := map[uint32]float64{}
	n := map[uint32]float64{}
	for _, s := range samples {
		if s.TimeStamp <= since {
			continue // NVML filters these; the bound holds whatever it returns
		}
		sum[s.Pid] += float64(s.SmUtil) / 100
		n[s.Pid]++
	}
	for pid := range sum {
		sum[pid] /= n[pid]
	}
	return sum
}

// collectProcesses exports per-container memory and process counts, and,
// with util (whole GPUs where NVML samples processes), utilisation.
func (c *Collector) collectProcesses(ch chan<- prometheus.Metric, dev nvml.Device, idx, uuid, migUUID string, util map[uint32]float64) {
	// NVML lists compute (CUDA) processes, graphics (Vulkan, OpenGL)
	// processes, and the clients of an MPS server apart (a GPU shared
	// through MPS shows only the server among its compute processes); a
	// process in several lists counts once. A list the device does not
	// offer is empty; when the compute list fails, no pod is reported (the
	// other lists alone would undercount them).
	var procs []nvml.ProcessInfo
	for _, l := range []struct {
		op   string
		list func() ([]nvml.ProcessInfo, nvml.Return)
	}{
		{"running_processes", dev.GetComputeRunningProcesses},
		{"graphics_running_processes", dev.GetGraphicsRunningProcesses},
		{"mps_running_processes", dev.GetMPSComputeRunningProcesses},
	} {
		ps, ret := l.list()
		switch {
		case ret == nvml.SUCCESS:
			procs = mergeProcesses(procs, ps)
		case unsupported(ret):
		case l.op == "running_processes":
			c.fail(l.op, ret)
			return
		default:
			c.fail(l.op, ret)
		}
	}
	// Processes are summed per series, not per container: a container
	// whose name does not resolve (no resolver, a status without its ID
	// yet, a pod the informer has not seen) gets an empty container label,
	// so two such containers of one pod share a series, which a
	// registry refuses to receive twice.
	names := map[podKey]podSeries{}
	sums := map[podSeries]*podTotals{}
	for _, p := range procs {
		ctr, ok, err := c.o.Mapper.ContainerOf(p.Pid)
		if err != nil {
			c.errs["pid_mapping"]++
			c.log.Debug("gpu: mapping process to container", "pid", p.Pid, "err", err)
			continue
		}
		if !ok {
			continue // a host process: not attributable to a pod
		}
		k := podKey{ctr.PodUID, ctr.ContainerID}
		s, ok := names[k]
		if !ok {
			s.uid = k.uid
			if c.o.Pods != nil {
				s.ns, s.pod, s.ctr, _ = c.o.Pods.PodByUID(k.uid, k.containerID)
			}
			names[k] = s
		}
		t := sums[s]
		if t == nil {
			t = &podTotals{}
			sums[s] = t
		}
		m := float64(p.UsedGpuMemory)
		if p.UsedGpuMemory == notAvailable {
			m = 0 // unknown; the process still counts
		}
		t.mem += m
		t.procs++
		t.busy += util[p.Pid]
	}
	for s, t := range sums {
		lv := []string{idx, uuid, migUUID, s.ns, s.pod, s.uid, s.ctr}
		ch <- prometheus.MustNewConstMetric(c.podMem, prometheus.GaugeValue, t.mem, lv...)
		ch <- prometheus.MustNewConstMetric(c.podProcs, prometheus.GaugeValue, t.procs, lv...)
		if util != nil {
			// The share of the GPU's SM time the series' processes used
			// together. Per-process samples are rounded percentages, taken
			// at different moments: keep the sum a ratio.
			ch <- prometheus.MustNewConstMetric(c.podUtil, prometheus.GaugeValue, min(t.busy, 1), lv...)
		}
	}
}

// podSeries is the label values of a per-pod series on one GPU or MIG
// device.
type podSeries struct{ ns, pod, uid, ctr string }

// podTotals is what the processes of one podSeries add up to.
type podTotals struct{ mem, procs, busy float64 }

// Close shuts NVML down if this collector initialised it.
func (c *Collector) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.inited {
		return nil
	}
	c.inited = false
	if ret := c.o.NVML.Shutdown(); ret != nvml.SUCCESS {
		return ret
	}
	return nil
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// notAvailable is NVML_VALUE_NOT_AVAILABLE in an unsigned field: a
// process's memory NVML cannot tell (documented for Windows' WDDM).
const notAvailable = ^uint64(0)

// unsupported says an optional NVML call does not exist for this device
// or driver: not a failure.
func unsupported(ret nvml.Return) bool {
	return ret == nvml.ERROR_NOT_SUPPORTED || ret == nvml.ERROR_FUNCTION_NOT_FOUND || ret == nvml.ERROR_ARGUMENT_VERSION_MISMATCH
}

// memoryInfo is a device's used and total memory. Version 2 counts as used
// only what is allocated (version 1 adds the memory the driver reserves,
// a few hundred MiB on an idle GPU), as nvidia-smi does; version 1 where
// the driver has no version 2.
func memoryInfo(dev nvml.Device) (used, total uint64, ret nvml.Return) {
	m2, ret := dev.GetMemoryInfo_v2()
	if ret == nvml.SUCCESS {
		return m2.Used, m2.Total, ret
	}
	if !unsupported(ret) {
		return 0, 0, ret
	}
	m, ret := dev.GetMemoryInfo()
	return m.Used, m.Total, ret
}

// mergeProcesses is a with the processes of b it does not list.
func mergeProcesses(a, b []nvml.ProcessInfo) []nvml.ProcessInfo {
	seen := make(map[uint32]bool, len(a))
	for _, p := range a {
		seen[p.Pid] = true
	}
	for _, p := range b {
		if !seen[p.Pid] {
			seen[p.Pid] = true
			a = append(a, p)
		}
	}
	return a
}
