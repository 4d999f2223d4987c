package kube

import (
	"time"

	corev1 "k8s.io/api/core/v1"
)

// trackColdStarts reports, for an annotated pod, its first Ready after
// creation and its Ready after each container restart. The first sight of a
// pod sets the baseline: restarts and readiness from before Run are
// history.
func (d *Discovery) trackColdStarts(p *corev1.Pod) {
	d.mu.Lock()
	var events []ColdStart
	st, known := d.seen[string(p.UID)]
	ready := podReady(p)
	if !known {
		st = &podState{restarts: map[string]int32{}, pending: map[string]time.Time{}}
		d.seen[string(p.UID)] = st
		// First seen not Ready, but Ready before: its next Ready ends a
		// restart or a failed probe we did not see begin, not the pod's
		// start (reported as one, an hour-old pod read as an hour's cold
		// start, and the planner sized for it).
		st.reportedStart = ready == nil && wasReady(p)
	}
	base := ColdStart{Namespace: p.Namespace, Pod: p.Name, UID: string(p.UID),
		Model:   firstNonEmpty(p.Annotations[AnnotationModel], p.Labels["app.kubernetes.io/name"]),
		Team:    firstNonEmpty(p.Annotations[AnnotationTeam], p.Labels["team"], p.Namespace),
		Dialect: p.Annotations[AnnotationDialect]}

	if !st.reportedStart && ready != nil {
		st.reportedStart = true
		readyAt := ready.LastTransitionTime.Time
		// A pod that was ready before we started is not a cold start we saw.
		if !readyAt.Before(d.started.Truncate(time.Second)) && !p.CreationTimestamp.IsZero() {
			ev := base
			ev.Kind, ev.Ready, ev.Duration = PodStart, readyAt, readyAt.Sub(p.CreationTimestamp.Time)
			events = append(events, ev)
		}
	}

	for _, cs := range restartable(p) {
		prev, had := st.restarts[cs.Name]
		st.restarts[cs.Name] = cs.RestartCount
		if had && cs.RestartCount > prev {
			at := d.o.Now()
			if cs.State.Running != nil && !cs.State.Running.StartedAt.IsZero() {
				at = cs.State.Running.StartedAt.Time
			}
			if ready != nil && ready.LastTransitionTime.Time.Before(at) {
				// Still Ready from before the restart, as the status
				// reporting it says: the pod never stopped serving (no
				// readiness probe, a fast restart), so there is no cold
				// start to measure — kept, it was put on the next,
				// unrelated Ready, hours later.
				continue
			}
			st.pending[cs.Name] = at
		}
	}
	if ready != nil {
		readyAt := ready.LastTransitionTime.Time
		for name, at := range st.pending {
			if readyAt.Before(at) {
				continue // Ready from before the restart: the pod has not caught up
			}
			ev := base
			ev.Kind, ev.Container, ev.Ready, ev.Duration = ContainerRestart, name, readyAt, readyAt.Sub(at)
			events = append(events, ev)
			delete(st.pending, name)
		}
	}
	// Callbacks run under the lock: serialised and in order.
	defer d.mu.Unlock()
	if d.o.OnColdStart != nil {
		for _, ev := range events {
			d.o.OnColdStart(ev)
		}
	}
}

// wasReady says a pod that is not Ready now has been Ready before: a
// container (or sidecar) restarted, or its Ready condition turned False after its
// containers had started (a probe that began to fail). A pod still
// starting has Ready=False from before its containers ran.
func wasReady(p *corev1.Pod) bool {
	var notReadySince time.Time
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status != corev1.ConditionTrue {
			notReadySince = c.LastTransitionTime.Time
		}
	}
	for _, cs := range restartable(p) {
		if cs.RestartCount > 0 {
			return true
		}
		if r := cs.State.Running; r != nil && !r.StartedAt.IsZero() && !notReadySince.IsZero() && notReadySince.After(r.StartedAt.Time) {
			return true
		}
	}
	return false
}

// restartable are the statuses of the containers whose restarts take the
// pod out of service: its containers, and its sidecars (init containers
// with restartPolicy Always, which run beside them).
func restartable(p *corev1.Pod) []corev1.ContainerStatus {
	out := p.Status.ContainerStatuses
	sidecar := map[string]bool{}
	for _, c := range p.Spec.InitContainers {
		if c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecar[c.Name] = true
		}
	}
	for _, cs := range p.Status.InitContainerStatuses {
		if sidecar[cs.Name] {
			out = append(out[:len(out):len(out)], cs)
		}
	}
	return out
}
