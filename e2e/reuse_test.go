package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
	"github.com/kube-eip/kube-eip/e2e/stack"
)

// reuseCooldown is the CNI cooldown of the node this story runs on: short,
// so that the IP comes back quickly, and still the window the binder has
// to take the old address off it.
const reuseCooldown = 3 * time.Second

// On EKS the VPC CNI keeps a deleted pod's IP on its node and gives it to
// the next pod once it has cooled down. The binder takes the deleted pod's
// address off that IP within the cooldown: the next pod on the IP, asking
// for nothing, egresses through no Elastic IP; the one after, asking for
// one, gets an address of its own, never the old one.
func TestAReusedIPNeverCarriesTheOldAddress(t *testing.T) {
	ctx := t.Context()
	ns := newEIPNamespace(t, map[string]string{"tenant": "reuse"})
	group, err := env.StartNodeGroup(ctx, stack.NodeGroup{Name: "reuse", Nodes: 1, CNI: fakenode.CNIOptions{Cooldown: reuseCooldown}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(group.Stop)

	first := podOnGroup("first", map[string]string{api.AnnotationMode: "auto"}, group)
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, first, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound := waitBound(t, ns, "app=first", 1)[0]
	ip, node, old := bound.Status.PodIP, bound.Spec.NodeName, bound.Annotations[api.AnnotationAllocationID]

	deleted := time.Now()
	if err := kube.CoreV1().Pods(ns).Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, reuseCooldown, "the old address off the IP within the cooldown", func(context.Context) (bool, string, error) {
		on := associationsOn(ip)
		return len(on) == 0, fmt.Sprintf("%s carries %v", ip, on), nil
	})
	t.Logf("the old address left %s %s after the deletion", ip, time.Since(deleted).Round(time.Millisecond))
	// The CNI kept the IP, as on EKS.
	if pool, _ := group.Pool(node); pool.State(ip) == "" {
		t.Fatalf("%s left node %s: the CNI did not keep it warm, so this test proves nothing", ip, node)
	}
	eventually(t, 2*reuseCooldown+10*time.Second, "the IP cooled down", func(context.Context) (bool, string, error) {
		pool, _ := group.Pool(node)
		return pool.State(ip) == fakenode.IPAvailable, string(pool.State(ip)), nil
	})

	plain := podOnGroup("plain", nil, group)
	if got := runOn(t, ns, plain).Status.PodIP; got != ip {
		t.Fatalf("the next pod got %s, want the reused %s", got, ip)
	}
	if on := associationsOn(ip); len(on) != 0 {
		t.Errorf("the pod that reused %s egresses through %v", ip, on)
	}

	if err := kube.CoreV1().Pods(ns).Delete(ctx, "plain", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 2*reuseCooldown+10*time.Second, "the IP cooled down again", func(context.Context) (bool, string, error) {
		_, err := kube.CoreV1().Pods(ns).Get(ctx, "plain", metav1.GetOptions{})
		pool, _ := group.Pool(node)
		return apierrors.IsNotFound(err) && pool.State(ip) == fakenode.IPAvailable, string(pool.State(ip)), nil
	})
	asks := podOnGroup("asks", map[string]string{api.AnnotationMode: "auto"}, group)
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, asks, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	third := waitBound(t, ns, "app=asks", 1)[0]
	if third.Status.PodIP != ip {
		t.Fatalf("the third pod got %s, want the reused %s", third.Status.PodIP, ip)
	}
	if got := third.Annotations[api.AnnotationAllocationID]; got == old || got == "" {
		t.Errorf("the third pod on %s has address %q, want one of its own (the first pod's was %s)", ip, got, old)
	}
	if on := associationsOn(ip); len(on) != 1 || on[0] != third.Annotations[api.AnnotationAllocationID] {
		t.Errorf("%s carries %v, want only the third pod's address", ip, on)
	}
}

// associationsOn lists the addresses EC2 has associated with a private IP.
func associationsOn(ip string) []string {
	var on []string
	for _, a := range env.EC2.Snapshot().Addresses {
		if a.AssociationID != "" && a.PrivateIPAddress == ip {
			on = append(on, a.AllocationID)
		}
	}
	return on
}

func podOnGroup(name string, annotations map[string]string, group *fakenode.Kubelet) *corev1.Pod {
	p := eipPod(name, annotations)
	p.Labels = map[string]string{"app": name}
	p.Spec.NodeSelector = group.NodeSelector()
	return p
}

// runOn creates a pod and waits until it runs with an IP.
func runOn(t *testing.T, ns string, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	if _, err := kube.CoreV1().Pods(ns).Create(t.Context(), pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var got *corev1.Pod
	eventually(t, time.Minute, pod.Name+" running", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return false, "", err
		}
		got = p
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", string(p.Status.Phase), nil
	})
	return got
}

// The hazard kube-eip can only bound: with the binder down longer than the
// cooldown, a deleted pod's address is still on its IP when the CNI gives
// the IP to the next pod, which then egresses through it. As soon as the
// binder is back, the address leaves the IP, before anything else.
func TestABinderDownLongerThanTheCooldownIsRepairedOnItsReturn(t *testing.T) {
	ctx := t.Context()
	ns := newEIPNamespace(t, map[string]string{"tenant": "reuse-down"})
	group, err := env.StartNodeGroup(ctx, stack.NodeGroup{Name: "reuse-down", Nodes: 1, CNI: fakenode.CNIOptions{Cooldown: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(group.Stop)
	if _, err := kube.CoreV1().Pods(ns).Create(ctx, podOnGroup("first", map[string]string{api.AnnotationMode: "auto"}, group), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	bound := waitBound(t, ns, "app=first", 1)[0]
	ip, node := bound.Status.PodIP, bound.Spec.NodeName

	env.StopBinder()
	t.Cleanup(func() { restartBinder(t) })
	if err := kube.CoreV1().Pods(ns).Delete(ctx, "first", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the IP cooled down with the binder down", func(context.Context) (bool, string, error) {
		pool, _ := group.Pool(node)
		return pool.State(ip) == fakenode.IPAvailable, string(pool.State(ip)), nil
	})
	next := runOn(t, ns, podOnGroup("next", nil, group))
	if next.Status.PodIP != ip {
		t.Fatalf("the next pod got %s, want the reused %s", next.Status.PodIP, ip)
	}
	byIP := map[string]*corev1.Pod{ip: next}
	if got := exposed(env.EC2.Snapshot().Addresses, byIP, ns); len(got) != 1 {
		t.Fatalf("exposures %v, want the next pod on the first pod's address: the hazard did not happen, so this test proves nothing", got)
	}

	back := time.Now()
	restartBinder(t)
	eventually(t, 30*time.Second, "the old address off the reused IP", func(context.Context) (bool, string, error) {
		got := exposed(env.EC2.Snapshot().Addresses, byIP, ns)
		return len(got) == 0, fmt.Sprint(got), nil
	})
	t.Logf("the binder took the old address off the reused IP %s after it was back", time.Since(back).Round(time.Millisecond))
}
