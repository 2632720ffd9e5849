package fakenode_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestDeploymentPodsGetSecondaryIPsOfTheirNodesENI(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	labels := map[string]string{"app": "web"}
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       podSpec("main"),
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(t.Context(), dep, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}
	var pods []corev1.Pod
	eventually(t, 60*time.Second, "4 pods running and ready", func(ctx context.Context) (bool, string, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=web"})
		if err != nil {
			return false, "", err
		}
		pods = list.Items
		ready := 0
		var why string
		for i := range pods {
			p := &pods[i]
			if ok, _ := running(p); ok && conditionIs(p, corev1.PodReady, corev1.ConditionTrue) {
				ready++
			}
			why += statusSummary(p) + "; "
		}
		return ready == 4 && len(pods) == 4, why, nil
	})

	seen := map[string]string{}
	for i := range pods {
		p := &pods[i]
		n := nodeOf(t, nodes, p)
		if p.Status.HostIP != n.PrivateIP {
			t.Errorf("pod %s: hostIP %s, node %s has %s", p.Name, p.Status.HostIP, n.Name, n.PrivateIP)
		}
		if len(p.Status.PodIPs) != 1 || p.Status.PodIPs[0].IP != p.Status.PodIP {
			t.Errorf("pod %s: podIPs %v, podIP %s", p.Name, p.Status.PodIPs, p.Status.PodIP)
		}
		if other, dup := seen[p.Status.PodIP]; dup {
			t.Errorf("pods %s and %s share %s", p.Name, other, p.Status.PodIP)
		}
		seen[p.Status.PodIP] = p.Name
		secondary, _, err := eniAddresses(t.Context(), n.ENIID)
		if err != nil {
			t.Fatalf("describing %s: %v", n.ENIID, err)
		}
		if !slices.Contains(secondary, p.Status.PodIP) {
			t.Errorf("pod %s: IP %s is not a secondary IP of %s on node %s (%v)", p.Name, p.Status.PodIP, n.ENIID, n.Name, secondary)
		}
		for _, cs := range p.Status.ContainerStatuses {
			if cs.State.Running == nil || !cs.Ready {
				t.Errorf("pod %s: container %s is not running and ready", p.Name, cs.Name)
			}
		}
	}
}

func TestPrefixDelegationHandsOutAddressesFromDelegatedPrefixes(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	opts := kubeletOptions("prefix")
	opts.Nodes, opts.PrefixDelegation = 1, true
	k := startGroup(t, opts)
	n := k.Nodes()[0]

	const count = 3
	for i := range count {
		createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("p%d", i), Namespace: ns}, Spec: podSpec("prefix")})
	}
	ips := map[string]bool{}
	for i := range count {
		p := waitPod(t, ns, fmt.Sprintf("p%d", i), 30*time.Second, "running", running)
		ips[p.Status.PodIP] = true
	}
	if len(ips) != count {
		t.Fatalf("pods share addresses: %v", ips)
	}
	secondary, prefixes, err := eniAddresses(t.Context(), n.ENIID)
	if err != nil {
		t.Fatalf("describing %s: %v", n.ENIID, err)
	}
	if len(prefixes) != 1 || len(secondary) != 0 {
		t.Fatalf("ENI %s holds prefixes %v and secondary IPs %v, want one prefix and no secondary IP", n.ENIID, prefixes, secondary)
	}
	prefix := netip.MustParsePrefix(prefixes[0])
	for ip := range ips {
		if !prefix.Contains(netip.MustParseAddr(ip)) {
			t.Errorf("pod IP %s is outside the delegated prefix %s", ip, prefix)
		}
	}
}
