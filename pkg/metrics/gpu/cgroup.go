package gpu

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
)

// Container identifies the Kubernetes container a process runs in, as far
// as the cgroup path tells: the pod UID and the container runtime's ID.
type Container struct {
	PodUID      string
	ContainerID string
}

// PIDMapper maps a PID, as NVML reports it, to its container. ok is false for a process
// outside any pod (a host process, or one that exited).
type PIDMapper interface {
	ContainerOf(pid uint32) (c Container, ok bool, err error)
}

// CgroupMapper reads /proc/<pid>/cgroup under ProcRoot: a /proc of the PID
// namespace NVML answers in, which is the caller's (the driver translates
// each PID through osFindNsPid and skips processes not visible there), so
// in a pod the exporter runs with hostPID and reads its own /proc. We chose
// cgroups over the kubelet pod-resources API because they need no socket
// mount and map every process, including those of pods that did not
// request GPUs through the device plugin (time-slicing, MPS); the cost is
// that the cgroup path names pod UIDs, not names, which a PodResolver fills
// in.
type CgroupMapper struct {
	ProcRoot string
}

var (
	// pod<uid> in cgroupfs (dashes) and systemd (underscores) layouts
	// (kubelet pkg/kubelet/cm: "pod" + the UID, "-" escaped as "_" for
	// systemd). A static pod's UID is no UUID but the kubelet's hash of its
	// manifest, 32 hex digits (pkg/kubelet/config/common.go applyDefaults:
	// hex of an FNV-128a, MD5 before): its mirror pod carries it in
	// kubernetes.io/config.mirror (see kube.Discovery.PodByUID).
	podUIDRe = regexp.MustCompile(`pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}|[0-9a-f]{32})(?:\.slice|/|$)`)
	// A 64-hex container ID, optionally wrapped as cri-containerd-<id>.scope,
	// crio-<id>.scope, docker-<id>.scope.
	containerIDRe = regexp.MustCompile(`^(?:[a-z-]+-)?([0-9a-f]{64})(?:\.scope)?$`)
)

// ContainerOf implements PIDMapper.
func (m CgroupMapper) ContainerOf(pid uint32) (Container, bool, error) {
	root := m.ProcRoot
	if root == "" {
		root = "/proc"
	}
	path := filepath.Join(root, strconv.FormatUint(uint64(pid), 10), "cgroup")
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return Container{}, false, nil // exited between listing and lookup
		}
		return Container{}, false, fmt.Errorf("gpu: read cgroup of pid %d: %w", pid, err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// hierarchy-ID:controllers:path; v2 has one "0::path" line.
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if c, ok := parseCgroupPath(parts[2]); ok {
			return c, true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return Container{}, false, fmt.Errorf("gpu: read %s: %w", path, err)
	}
	return Container{}, false, nil
}

func parseCgroupPath(p string) (Container, bool) {
	m := podUIDRe.FindStringSubmatch(p)
	if m == nil {
		return Container{}, false
	}
	c := Container{PodUID: strings.ReplaceAll(m[1], "_", "-")}
	// The container's own cgroup is the deepest segment naming an ID:
	// crun on cgroup v2 adds a sub-cgroup below it (…/crio-<id>.scope/container).
	for dir := p; dir != "/" && dir != "." && dir != ""; dir = filepath.Dir(dir) {
		if cm := containerIDRe.FindStringSubmatch(filepath.Base(dir)); cm != nil {
			c.ContainerID = cm[1]
			break
		}
	}
	return c, true
}

// MapMapper is a fixed PID → container table (demo and tests).
type MapMapper map[uint32]Container

// ContainerOf implements PIDMapper.
func (m MapMapper) ContainerOf(pid uint32) (Container, bool, error) {
	c, ok := m[pid]
	return c, ok, nil
}
