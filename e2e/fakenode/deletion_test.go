package fakenode_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestDeletedPodWaitsOutItsGracePeriodAndGivesItsIPBack(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	spec := podSpec("main")
	spec.TerminationGracePeriodSeconds = ptr.To[int64](2)
	pod := createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "leaver", Namespace: ns}, Spec: spec})
	pod = waitPod(t, ns, pod.Name, 30*time.Second, "running", running)
	node := nodeOf(t, nodes, pod).Name

	if err := kube.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting pod: %v", err)
	}
	terminating, err := kube.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("reading the deleted pod: %v", err)
	}
	deadline := terminating.DeletionTimestamp.Time
	waitPodGone(t, ns, pod.Name, 20*time.Second)
	if gone := time.Now(); gone.Before(deadline) {
		t.Errorf("pod gone at %v, before its grace period ended at %v", gone, deadline)
	}
	waitIPReleased(t, nodes, node, pod.Status.PodIP, 10*time.Second)
}

func TestFinalizerKeepsADeletedPodUntilRemoved(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	const finalizer = "e2e.kube-eip.io/hold"
	pod := createPod(t, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "held", Namespace: ns, Finalizers: []string{finalizer}},
		Spec:       podSpec("main"),
	})
	pod = waitPod(t, ns, pod.Name, 30*time.Second, "running", running)
	node := nodeOf(t, nodes, pod).Name

	if err := kube.CoreV1().Pods(ns).Delete(t.Context(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting pod: %v", err)
	}
	// The Kubelet is done with it (address back, grace-0 delete sent), yet
	// the finalizer keeps the object.
	waitIPReleased(t, nodes, node, pod.Status.PodIP, 20*time.Second)
	held := waitPod(t, ns, pod.Name, 10*time.Second, "deleted with grace 0", func(p *corev1.Pod) (bool, string) {
		return p.DeletionGracePeriodSeconds != nil && *p.DeletionGracePeriodSeconds == 0, "grace period not 0 yet"
	})
	if !slices.Contains(held.Finalizers, finalizer) {
		t.Fatalf("finalizers %v lost", held.Finalizers)
	}

	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"finalizers": nil}})
	if _, err := kube.CoreV1().Pods(ns).Patch(t.Context(), pod.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		t.Fatalf("removing the finalizer: %v", err)
	}
	waitPodGone(t, ns, pod.Name, 10*time.Second)
}
