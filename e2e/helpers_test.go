package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/e2e/testmain"
)

// newNamespace creates a namespace named after the test, ready for pods,
// and deletes it when the test ends.
func newNamespace(t testing.TB) string {
	t.Helper()
	ctx := t.Context()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 50 {
		name = name[:50]
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}
	created, err := kube.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), created.Name, metav1.DeleteOptions{})
	})
	if err := env.ControlPlane.WaitForServiceAccount(ctx, created.Name); err != nil {
		t.Fatalf("waiting for the default service account of %s: %v", created.Name, err)
	}
	return created.Name
}

// eventually is testmain.Eventually, which every e2e package shares.
func eventually(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	testmain.Eventually(t, timeout, what, cond)
}

func podSummary(pods []corev1.Pod) string {
	var b strings.Builder
	for _, p := range pods {
		fmt.Fprintf(&b, "%s node=%q phase=%s", p.Name, p.Spec.NodeName, p.Status.Phase)
		if p.DeletionTimestamp != nil {
			fmt.Fprintf(&b, " deleting finalizers=%v", p.Finalizers)
		}
		b.WriteString("; ")
	}
	return b.String()
}
