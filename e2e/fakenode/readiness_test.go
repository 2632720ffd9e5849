package fakenode_test

import (
	"encoding/json"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const eipReady corev1.PodConditionType = "kube-eip.io/eip-ready"

// setGate writes the readiness gate's condition as the binder would.
func setGate(t *testing.T, ns, name string, status corev1.ConditionStatus) {
	t.Helper()
	patch, _ := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.PodCondition{{
		Type: eipReady, Status: status, Reason: "Test", LastTransitionTime: metav1.Now(),
	}}}})
	if _, err := kube.CoreV1().Pods(ns).Patch(t.Context(), name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status"); err != nil {
		t.Fatalf("setting %s=%s: %v", eipReady, status, err)
	}
}

func TestReadinessGateHoldsReadyUntilItsConditionIsTrue(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	spec := podSpec("main")
	spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: eipReady}}
	pod := createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "gated", Namespace: ns}, Spec: spec})

	pod = waitPod(t, ns, pod.Name, 30*time.Second, "running with its containers ready", func(p *corev1.Pod) (bool, string) {
		ok, why := running(p)
		return ok && conditionIs(p, corev1.ContainersReady, corev1.ConditionTrue), why
	})
	ready := condition(pod, corev1.PodReady)
	if ready == nil || ready.Status != corev1.ConditionFalse || ready.Reason != "ReadinessGatesNotReady" {
		t.Fatalf("Ready: %+v, want False for ReadinessGatesNotReady", ready)
	}

	setGate(t, ns, pod.Name, corev1.ConditionTrue)
	pod = waitPod(t, ns, pod.Name, 10*time.Second, "ready", func(p *corev1.Pod) (bool, string) {
		return conditionIs(p, corev1.PodReady, corev1.ConditionTrue), "not ready"
	})
	if ready := condition(pod, corev1.PodReady); ready.Reason != "" || ready.Message != "" {
		t.Errorf("Ready=True kept reason %q and message %q", ready.Reason, ready.Message)
	}
	if !conditionIs(pod, eipReady, corev1.ConditionTrue) {
		t.Errorf("the gate's condition was clobbered: %v", pod.Status.Conditions)
	}

	setGate(t, ns, pod.Name, corev1.ConditionFalse)
	waitPod(t, ns, pod.Name, 10*time.Second, "unready again", func(p *corev1.Pod) (bool, string) {
		return conditionIs(p, corev1.PodReady, corev1.ConditionFalse) && conditionIs(p, eipReady, corev1.ConditionFalse), "still ready"
	})
}
