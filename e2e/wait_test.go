package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// The injected init container holds a pod in Init until the binder labels
// it with its public IP, and the readiness gate keeps it out of Services
// until the binder sets the condition. The binder is stopped, so that the
// test can play its steps one at a time; started again, it finishes.
func TestInjectedWaitHoldsThePodUntilTheAddressIsAttached(t *testing.T) {
	ns := newEIPNamespace(t, map[string]string{"tenant": "wait"})
	env.StopBinder()
	t.Cleanup(func() { restartBinder(t) })
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "game-server", Annotations: map[string]string{api.AnnotationMode: "auto"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  env.Nodes.NodeSelector(),
			TerminationGracePeriodSeconds: ptr.To[int64](0),
			Containers:                    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
		},
	}
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create: %v", err)
	}
	eventually(t, time.Minute, "wait container running", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return initRunning(p, api.WaitContainerName) && p.Status.Phase == corev1.PodPending, fmt.Sprintf("%+v", p.Status.InitContainerStatuses), nil
	})

	// Playing the binder takes its identity: nobody else may write the
	// label (TestTenantsCannotWriteKubeEIPsKeys).
	binder, err := env.ImpersonatedClient(stack.Identities.Binder)
	if err != nil {
		t.Fatal(err)
	}
	labelPatch := fmt.Sprintf(`{"metadata":{"labels":{%q:"203.0.113.7"}}}`, api.LabelPublicIP)
	if _, err := binder.CoreV1().Pods(ns).Patch(t.Context(), pod.Name, "application/merge-patch+json", []byte(labelPatch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("labelling the pod as the binder: %v", err)
	}
	eventually(t, time.Minute, "pod running but not ready after the wait", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return p.Status.Phase == corev1.PodRunning && !isReady(p), fmt.Sprintf("phase %s ready %t", p.Status.Phase, isReady(p)), nil
	})

	// The binder comes back: it associates a real address, corrects the
	// label and sets the condition, which makes the pod ready.
	restartBinder(t)
	eventually(t, time.Minute, "pod ready once the binder set the condition", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		return isReady(p) && eipReadyCondition(p) && p.Labels[api.LabelPublicIP] != "203.0.113.7", fmt.Sprintf("label %s conditions %+v", p.Labels[api.LabelPublicIP], p.Status.Conditions), nil
	})
	p, err := kube.CoreV1().Pods(ns).Get(t.Context(), pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	assertAssociatedWithPod(t, p)
}

func initRunning(p *corev1.Pod, name string) bool {
	for _, s := range p.Status.InitContainerStatuses {
		if s.Name == name {
			return s.State.Running != nil
		}
	}
	return false
}
