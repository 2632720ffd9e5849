// Package quota tells the story of an account whose Elastic IP quota runs
// out: pods wait for an address without hammering EC2, and each address
// freed goes to a waiting pod at once. It runs its own stack, whose
// account has a quota of 20.
package quota

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/stack"
	"github.com/kube-eip/kube-eip/e2e/testmain"
)

// quota is the account's Elastic IP quota in this package's stack.
const quota = 20

var (
	env  *stack.Stack
	kube kubernetes.Interface
)

func TestMain(m *testing.M) {
	start := func(ctx context.Context) (*stack.Stack, error) {
		return stack.Start(ctx, stack.Options{
			Log: logr.Discard(),
			// AWS's buckets ten times faster, and the binder's client to match.
			EC2:    ec2sim.Options{EIPQuota: quota, Throttle: ec2sim.ThrottleOptions{Scale: 10}},
			Binder: stack.BinderOptions{RateScale: 10, SweepInterval: 2 * time.Second},
		})
	}
	os.Exit(testmain.Run(m, start, func(s *stack.Stack) error {
		env, kube = s, s.Kube
		return nil
	}))
}

// 30 pods ask for an address from an account with room for 20: 20 are
// bound, the other 10 wait, told once each, and EC2 is not asked for what
// it cannot give. Each address then freed (a bound pod deleted) is on a
// waiting pod within 2 s.
func TestPodsWaitForTheQuotaAndTakeEachAddressFreed(t *testing.T) {
	ctx := t.Context()
	ns := optedIn(t)
	for i := range 30 {
		p := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("relay-%d", i), Labels: map[string]string{"app": "relay"},
				Annotations: map[string]string{api.AnnotationMode: "auto"}},
			Spec: corev1.PodSpec{
				NodeSelector:                  env.Nodes.NodeSelector(),
				TerminationGracePeriodSeconds: ptr.To[int64](0),
				Containers:                    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
			},
		}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, p, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	var bound []corev1.Pod
	testmain.Eventually(t, 2*time.Minute, "20 pods bound, 10 told they wait", func(ctx context.Context) (bool, string, error) {
		pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: api.LabelPublicIP})
		if err != nil {
			return false, "", err
		}
		bound = pods.Items
		told, err := toldToWait(ctx, ns)
		if err != nil {
			return false, "", err
		}
		return len(bound) == quota && len(told) == 10, fmt.Sprintf("%d bound, %d told", len(bound), len(told)), nil
	})
	told, err := toldToWait(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	for pod, n := range told {
		if n != 1 {
			t.Errorf("%s was told %d times that it waits, want once", pod, n)
		}
	}
	refused := refusedAllocations(t)
	t.Logf("%v AllocateAddress calls refused for the quota while 30 pods asked", refused)
	if refused > 1 {
		t.Errorf("%v AllocateAddress calls refused for the quota, want at most 1 for the one pause", refused)
	}

	// Free addresses one at a time: each goes to a waiting pod.
	for i := range 5 {
		gone := bound[i]
		start := time.Now()
		if err := kube.CoreV1().Pods(ns).Delete(ctx, gone.Name, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		err := wait.PollUntilContextTimeout(ctx, 20*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: api.LabelPublicIP})
			if err != nil {
				return false, err
			}
			n := 0
			for _, p := range pods.Items {
				if p.DeletionTimestamp == nil {
					n++
				}
			}
			return n == quota, nil
		})
		if err != nil {
			t.Fatalf("after %s was deleted, no waiting pod was bound: %v", gone.Name, err)
		}
		if took := time.Since(start); took > 2*time.Second {
			t.Errorf("freed address %d bound a waiting pod %s after the deletion, want within 2 s", i+1, took.Round(time.Millisecond))
		} else {
			t.Logf("freed address %d bound a waiting pod %s after the deletion", i+1, took.Round(time.Millisecond))
		}
	}
	if after := refusedAllocations(t); after != refused {
		t.Errorf("%v more AllocateAddress calls refused while addresses were freed one by one, want none", after-refused)
	}
}

// toldToWait counts, by pod, the events telling a pod it waits for the
// quota.
func toldToWait(ctx context.Context, ns string) (map[string]int32, error) {
	evs, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "reason=" + api.EventQuotaExhausted})
	if err != nil {
		return nil, err
	}
	told := map[string]int32{}
	for _, e := range evs.Items {
		n := e.Count
		if e.Series != nil {
			n = e.Series.Count
		}
		told[e.InvolvedObject.Name] += max(n, 1)
	}
	return told, nil
}

func refusedAllocations(t *testing.T) float64 {
	t.Helper()
	page, err := env.BinderMetrics(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return stack.SumSamples(page, "kube_eip_ec2_calls_total", `action="AllocateAddress"`, `code="AddressLimitExceeded"`)
}

func optedIn(t *testing.T) string {
	t.Helper()
	ns, err := kube.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "quota-",
		Labels: map[string]string{api.LabelInjection: api.InjectionEnabled}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{}) })
	if err := env.ControlPlane.WaitForServiceAccount(t.Context(), ns.Name); err != nil {
		t.Fatal(err)
	}
	// The webhook reads namespaces from its cache.
	testmain.Eventually(t, 30*time.Second, "the webhook sees the namespace opted in", func(ctx context.Context) (bool, string, error) {
		probe := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "probe", Annotations: map[string]string{api.AnnotationMode: "auto"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}}}}
		p, err := kube.CoreV1().Pods(ns.Name).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		return err == nil && p.Labels[api.LabelManaged] == "true", fmt.Sprint(err), nil
	})
	return ns.Name
}
