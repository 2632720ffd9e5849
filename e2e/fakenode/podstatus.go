package fakenode

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// ownedConditions are the pod conditions a kubelet writes. Every other one
// (PodScheduled, readiness gates like kube-eip.io/eip-ready) belongs to
// someone else and is never written here.
var ownedConditions = []corev1.PodConditionType{
	corev1.PodReadyToStartContainers,
	corev1.PodInitialized,
	corev1.ContainersReady,
	corev1.PodReady,
}

// ownedStatus is the part of a pod's status the Kubelet owns.
type ownedStatus struct {
	ObservedGeneration    int64
	Phase                 corev1.PodPhase
	Conditions            []corev1.PodCondition
	HostIP                string
	HostIPs               []corev1.HostIP
	PodIP                 string
	PodIPs                []corev1.PodIP
	StartTime             *metav1.Time
	InitContainerStatuses []corev1.ContainerStatus
	ContainerStatuses     []corev1.ContainerStatus
}

// currentStatus projects what the pod shows onto ownedStatus, for a
// comparison with what it should show.
func currentStatus(pod *corev1.Pod) ownedStatus {
	s := pod.Status
	out := ownedStatus{
		ObservedGeneration: s.ObservedGeneration,
		Phase:              s.Phase, HostIP: s.HostIP, HostIPs: s.HostIPs, PodIP: s.PodIP, PodIPs: s.PodIPs, StartTime: s.StartTime,
		InitContainerStatuses: projectContainerStatuses(s.InitContainerStatuses),
		ContainerStatuses:     projectContainerStatuses(s.ContainerStatuses),
	}
	for _, t := range ownedConditions {
		if c := findCondition(s.Conditions, t); c != nil {
			out.Conditions = append(out.Conditions, *c)
		}
	}
	return out
}

// projectContainerStatuses keeps the fields the Kubelet sets.
func projectContainerStatuses(in []corev1.ContainerStatus) []corev1.ContainerStatus {
	if in == nil {
		return nil
	}
	out := make([]corev1.ContainerStatus, len(in))
	for i, cs := range in {
		out[i] = corev1.ContainerStatus{
			Name: cs.Name, State: cs.State, LastTerminationState: cs.LastTerminationState, Ready: cs.Ready,
			RestartCount: cs.RestartCount, Image: cs.Image, ImageID: cs.ImageID, ContainerID: cs.ContainerID, Started: cs.Started,
		}
	}
	return out
}

func findCondition(conds []corev1.PodCondition, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range conds {
		if conds[i].Type == t {
			return &conds[i]
		}
	}
	return nil
}

// desiredStatus is what the pod should show given the Kubelet's state.
func desiredStatus(pod *corev1.Pod, st *podState, hostIP string) ownedStatus {
	started := !st.containersStarted.IsZero() && !st.failed
	out := ownedStatus{
		// The kubelet reports the generation it acted on (GA in 1.35).
		ObservedGeneration: pod.Generation,
		Phase:              corev1.PodPending,
		HostIP:             hostIP,
		HostIPs:            []corev1.HostIP{{IP: hostIP}},
		PodIP:              st.ip,
		PodIPs:             []corev1.PodIP{{IP: st.ip}},
		StartTime:          &st.startTime,
	}
	switch {
	case st.failed:
		out.Phase = corev1.PodFailed
	case started:
		out.Phase = corev1.PodRunning
	}

	var incompleteInit []string
	for i := range pod.Spec.InitContainers {
		cs := initContainerStatus(pod, &pod.Spec.InitContainers[i], st.inits[i], st.failed)
		if st.inits[i].done == nil {
			incompleteInit = append(incompleteInit, cs.Name)
		}
		out.InitContainerStatuses = append(out.InitContainerStatuses, cs)
	}
	var unready []string
	finished, succeeded := len(pod.Spec.Containers) > 0, true
	for i := range pod.Spec.Containers {
		r := st.containers[i]
		cs := appContainerStatus(pod, &pod.Spec.Containers[i], r, st, started)
		if !cs.Ready {
			unready = append(unready, cs.Name)
		}
		finished = finished && r.real && r.done != nil
		succeeded = succeeded && r.done != nil && r.done.ExitCode == 0
		out.ContainerStatuses = append(out.ContainerStatuses, cs)
	}
	if started && finished {
		// Every container ran to its end and the policy restarts none.
		out.Phase = corev1.PodFailed
		if succeeded {
			out.Phase = corev1.PodSucceeded
		}
	}
	containersReady := started && len(unready) == 0

	now := metav1.NewTime(time.Now().Truncate(time.Second))
	cond := func(t corev1.PodConditionType, ok bool, reason, message string) corev1.PodCondition {
		c := corev1.PodCondition{Type: t, Status: corev1.ConditionTrue, ObservedGeneration: pod.Generation, LastTransitionTime: now}
		if !ok {
			c.Status, c.Reason, c.Message = corev1.ConditionFalse, reason, message
		}
		if old := findCondition(pod.Status.Conditions, t); old != nil && old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		return c
	}
	gatesReason, gatesMessage := readinessGates(pod)
	readyReason, readyMessage := "ContainersNotReady", "containers with unready status: ["+strings.Join(unready, " ")+"]"
	if containersReady {
		readyReason, readyMessage = gatesReason, gatesMessage
	}
	out.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, st.ip != "", "", ""),
		cond(corev1.PodInitialized, len(incompleteInit) == 0, "ContainersNotInitialized", "containers with incomplete status: ["+strings.Join(incompleteInit, " ")+"]"),
		cond(corev1.ContainersReady, containersReady, "ContainersNotReady", "containers with unready status: ["+strings.Join(unready, " ")+"]"),
		cond(corev1.PodReady, containersReady && gatesReason == "", readyReason, readyMessage),
	}
	return out
}

// readinessGates explains, in the kubelet's words, why the pod's readiness
// gates hold it back; "" when they all pass.
func readinessGates(pod *corev1.Pod) (reason, message string) {
	var problems []string
	for _, g := range pod.Spec.ReadinessGates {
		c := findCondition(pod.Status.Conditions, g.ConditionType)
		switch {
		case c == nil:
			problems = append(problems, fmt.Sprintf("corresponding condition of pod readiness gate %q does not exist.", g.ConditionType))
		case c.Status != corev1.ConditionTrue:
			problems = append(problems, fmt.Sprintf("the status of pod readiness gate %q is not \"True\", but %v", g.ConditionType, c.Status))
		}
	}
	if len(problems) == 0 {
		return "", ""
	}
	return "ReadinessGatesNotReady", strings.Join(problems, ", ")
}

// appContainerStatus is an app container's status. One of an image tells
// how its runs go; any other is running, and ready, from the moment the
// init containers are done.
func appContainerStatus(pod *corev1.Pod, c *corev1.Container, r *containerRun, st *podState, started bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{Name: c.Name, Image: c.Image, ImageID: imageID(c.Image), RestartCount: r.restarts, Started: ptr.To(false)}
	switch {
	case !started:
		cs.State.Waiting = &corev1.ContainerStateWaiting{Reason: "PodInitializing"}
	case !r.real:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: st.containersStarted}
		cs.Ready, cs.Started, cs.ContainerID = true, ptr.To(true), containerID(pod.UID, c.Name, 0)
	case r.proc != nil:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: r.running}
		cs.ContainerID = containerID(pod.UID, c.Name, r.restarts)
		cs.Started = ptr.To(r.probes.isStarted())
		cs.Ready = r.probes.isStarted() && r.probes.isReady()
	case r.done != nil:
		cs.State.Terminated = r.done
		cs.ContainerID = r.done.ContainerID
	default:
		cs.State.Waiting = waiting(pod, c, r, "ContainerCreating")
	}
	return withLastTermination(cs, r)
}

// waiting is why a container that does not run waits: it cannot start,
// it is backing off after a failure, or it has not started yet (reason).
func waiting(pod *corev1.Pod, c *corev1.Container, r *containerRun, reason string) *corev1.ContainerStateWaiting {
	switch {
	case r.waitReason != "":
		return &corev1.ContainerStateWaiting{Reason: r.waitReason, Message: r.waitMessage}
	case r.lastFailure != nil:
		return &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off restarting failed container=%s pod=%s_%s(%s)", c.Name, pod.Name, pod.Namespace, pod.UID),
		}
	}
	return &corev1.ContainerStateWaiting{Reason: reason}
}

// withLastTermination shows how the run before the current state ended.
func withLastTermination(cs corev1.ContainerStatus, r *containerRun) corev1.ContainerStatus {
	if r.lastFailure != nil && cs.State.Terminated != r.lastFailure {
		cs.LastTerminationState.Terminated = r.lastFailure
	}
	return cs
}

func initContainerStatus(pod *corev1.Pod, c *corev1.Container, r *containerRun, podFailed bool) corev1.ContainerStatus {
	cs := corev1.ContainerStatus{
		Name: c.Name, Image: c.Image, ImageID: imageID(c.Image),
		RestartCount: r.restarts, Started: ptr.To(false),
	}
	switch {
	case r.done != nil && isSidecar(c):
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: r.done.StartedAt}
		cs.Ready, cs.Started, cs.ContainerID = true, ptr.To(true), r.done.ContainerID
	case r.done != nil:
		cs.State.Terminated = r.done
		cs.Ready, cs.ContainerID = true, r.done.ContainerID
	case r.proc != nil:
		cs.State.Running = &corev1.ContainerStateRunning{StartedAt: r.running}
		cs.Started, cs.ContainerID = ptr.To(true), containerID(pod.UID, c.Name, r.restarts)
	case r.lastFailure != nil && podFailed:
		cs.State.Terminated = r.lastFailure
		cs.ContainerID = r.lastFailure.ContainerID
	default:
		cs.State.Waiting = waiting(pod, c, r, "PodInitializing")
	}
	return withLastTermination(cs, r)
}

// statusPatch is a strategic merge patch of the owned status fields. The
// uid is a precondition: the patch fails on a new pod of the same name.
type statusPatch struct {
	Metadata struct {
		UID types.UID `json:"uid"`
	} `json:"metadata"`
	Status struct {
		ObservedGeneration    int64                    `json:"observedGeneration,omitempty"`
		Phase                 corev1.PodPhase          `json:"phase"`
		Conditions            []conditionPatch         `json:"conditions"`
		HostIP                string                   `json:"hostIP,omitempty"`
		HostIPs               []corev1.HostIP          `json:"hostIPs,omitempty"`
		PodIP                 string                   `json:"podIP,omitempty"`
		PodIPs                []corev1.PodIP           `json:"podIPs,omitempty"`
		StartTime             *metav1.Time             `json:"startTime,omitempty"`
		InitContainerStatuses []corev1.ContainerStatus `json:"initContainerStatuses,omitempty"`
		ContainerStatuses     []corev1.ContainerStatus `json:"containerStatuses"`
	} `json:"status"`
}

// conditionPatch spells out empty fields as null: conditions merge by
// type, and an omitted field would keep a stale reason or message.
type conditionPatch struct {
	Type               corev1.PodConditionType `json:"type"`
	ObservedGeneration int64                   `json:"observedGeneration,omitempty"`
	Status             corev1.ConditionStatus  `json:"status"`
	LastProbeTime      *metav1.Time            `json:"lastProbeTime"`
	LastTransitionTime metav1.Time             `json:"lastTransitionTime"`
	Reason             *string                 `json:"reason"`
	Message            *string                 `json:"message"`
}

func nilIfEmpty(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// writeStatus patches the pod's status when it differs from want.
func (k *Kubelet) writeStatus(ctx context.Context, pod *corev1.Pod, want ownedStatus) error {
	if equality.Semantic.DeepEqual(currentStatus(pod), want) {
		return nil
	}
	var p statusPatch
	p.Metadata.UID = pod.UID
	s := &p.Status
	s.ObservedGeneration, s.Phase, s.StartTime = want.ObservedGeneration, want.Phase, want.StartTime
	s.HostIP, s.HostIPs = want.HostIP, want.HostIPs
	if want.PodIP != "" {
		s.PodIP, s.PodIPs = want.PodIP, want.PodIPs
	}
	s.InitContainerStatuses, s.ContainerStatuses = want.InitContainerStatuses, want.ContainerStatuses
	for _, c := range want.Conditions {
		s.Conditions = append(s.Conditions, conditionPatch{
			Type: c.Type, ObservedGeneration: c.ObservedGeneration, Status: c.Status, LastTransitionTime: c.LastTransitionTime,
			Reason: nilIfEmpty(c.Reason), Message: nilIfEmpty(c.Message),
		})
	}
	data, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("encoding the status of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	_, err = k.client.CoreV1().Pods(pod.Namespace).Patch(ctx, pod.Name, types.StrategicMergePatchType, data, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil // its deletion is on the way to us
	}
	if err != nil {
		return fmt.Errorf("patching the status of %s/%s: %w", pod.Namespace, pod.Name, err)
	}
	return nil
}
