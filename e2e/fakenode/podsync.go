package fakenode

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// syncPod brings one pod on one of the nodes a step closer to what a
// kubelet would make of it, and returns when to look again.
func (k *Kubelet) syncPod(ctx context.Context, key string) (time.Duration, error) {
	namespace, name, _ := strings.Cut(key, "/")
	pod, err := k.pods.Pods(namespace).Get(name)
	if apierrors.IsNotFound(err) {
		pod = nil
	} else if err != nil {
		return 0, fmt.Errorf("reading pod %s: %w", key, err)
	}

	k.mu.Lock()
	st := k.state[key]
	k.mu.Unlock()
	if st != nil && (pod == nil || pod.UID != st.uid) {
		// Gone, or replaced by a pod of the same name (a StatefulSet's).
		if err := k.teardown(ctx, st); err != nil {
			return 0, err
		}
		k.forget(st)
		st = nil
	}
	if pod == nil {
		return 0, nil
	}

	k.mu.Lock()
	n := k.nodes[pod.Spec.NodeName]
	fresh := n != nil && st == nil
	if fresh {
		st = k.newPodState(pod)
		k.state[key] = st
	}
	k.mu.Unlock()
	if n == nil {
		return 0, nil
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.gone {
		return 0, nil
	}
	if fresh && pod.Status.PodIP != "" && !pod.Spec.HostNetwork && n.ipam.claim(pod.Status.PodIP, pod.UID, true) {
		st.ip = pod.Status.PodIP
	}
	switch {
	case pod.DeletionTimestamp != nil:
		return k.syncDeleting(ctx, pod, st, n)
	case pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded:
		// Finished for good: nothing runs, the address goes back.
		return 0, k.releaseIP(ctx, st, n)
	}
	return k.syncLive(ctx, pod, st, n)
}

func (k *Kubelet) syncLive(ctx context.Context, pod *corev1.Pod, st *podState, n *node) (time.Duration, error) {
	hostIP := n.inst.PrivateIP
	if st.ip == "" {
		if pod.Spec.HostNetwork {
			st.ip = hostIP
		} else {
			ip, err := n.ipam.allocate(ctx, pod.UID)
			if err != nil {
				k.recorder.Eventf(pod, corev1.EventTypeWarning, "FailedCreatePodSandBox", "Failed to create pod sandbox: %v", err)
				return 0, fmt.Errorf("giving %s an address: %w", st.key, err)
			}
			st.ip = ip
			k.log.V(2).Info("assigned pod IP", "pod", st.key, "node", n.name, "ip", ip, "eni", n.inst.ENIID)
			k.tendPool(n.name)
		}
	}
	var after time.Duration
	var volumeErr error
	if st.runsSomething {
		// Kept current while containers may read them: the project's wait
		// container watches its labels file, the webhook its certificate.
		after, volumeErr = k.syncVolumes(ctx, pod, st)
	}
	var initAfter, appAfter time.Duration
	var initErr, appErr error
	if volumeErr == nil {
		initAfter, initErr = k.advanceInit(pod, st, hostIP)
		appAfter, appErr = k.advanceContainers(pod, st, hostIP)
	}
	if err := k.writeStatus(ctx, pod, desiredStatus(pod, st, hostIP)); err != nil {
		return 0, err
	}
	if st.failed {
		return 0, k.releaseIP(ctx, st, n)
	}
	return minPositive(minPositive(after, initAfter), appAfter), errors.Join(volumeErr, initErr, appErr)
}

// syncDeleting stops a deleted pod the way the kubelet does: processes are
// told to stop and killed when the grace period ends, then the address is
// given back and the object deleted for good (finalizers may still hold
// it; that is someone else's business).
func (k *Kubelet) syncDeleting(ctx context.Context, pod *corev1.Pod, st *podState, n *node) (time.Duration, error) {
	if st.deleted {
		return 0, nil
	}
	grace := time.Until(pod.DeletionTimestamp.Time)
	if !st.killing {
		st.killing = true
		if procs := st.processes(); len(procs) > 0 {
			st.hadProcesses = true
			k.recorder.Eventf(pod, corev1.EventTypeNormal, "Killing", "Stopping %d container(s)", len(procs))
		}
		st.killProcesses(grace)
	}
	// A pod whose processes all ended goes at once, as the kubelet's; one
	// that ran none waits out its grace period, as if its containers had
	// taken it.
	stopped := st.hadProcesses && len(st.processes()) == 0
	if grace > 0 && !stopped {
		return grace, nil
	}
	if err := k.releaseIP(ctx, st, n); err != nil {
		return 0, err
	}
	err := k.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0),
		Preconditions:      &metav1.Preconditions{UID: &pod.UID},
	})
	if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
		return 0, fmt.Errorf("deleting pod %s: %w", st.key, err)
	}
	st.deleted = true
	return 0, nil
}

// releaseIP gives the pod's address back once.
func (k *Kubelet) releaseIP(ctx context.Context, st *podState, n *node) error {
	if st.ip == "" || st.released {
		return nil
	}
	k.unlistNetwork(st)
	if err := n.ipam.release(ctx, st.ip, st.uid); err != nil {
		return err
	}
	st.released = true
	k.log.V(2).Info("released pod IP", "pod", st.key, "node", n.name, "ip", st.ip)
	// The address cools down; the pool looks again when it has.
	k.tendPool(n.name)
	return nil
}

// teardown ends a pod whose object is gone: processes killed, address and
// volumes given back.
func (k *Kubelet) teardown(ctx context.Context, st *podState) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	k.unlistNetwork(st)
	st.finish(0)
	k.mu.Lock()
	n := k.nodes[st.node]
	k.mu.Unlock()
	if n == nil {
		return nil
	}
	return k.releaseIP(ctx, st, n)
}

// forget drops a torn-down pod's state, unless a newer one replaced it.
func (k *Kubelet) forget(st *podState) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.state[st.key] == st {
		delete(k.state, st.key)
	}
}
