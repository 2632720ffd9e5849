package fakenode_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

func describeInstance(ctx context.Context, id string) (ec2types.Instance, error) {
	out, err := ec2api.DescribeInstances(ctx, &ec2.DescribeInstancesInput{InstanceIds: []string{id}})
	if err != nil {
		return ec2types.Instance{}, err
	}
	if len(out.Reservations) != 1 || len(out.Reservations[0].Instances) != 1 {
		return ec2types.Instance{}, fmt.Errorf("describing %s: no single instance", id)
	}
	return out.Reservations[0].Instances[0], nil
}

func TestNodesAreRegisteredForEmulatorInstances(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	list, err := kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: fakenode.LabelFakeNode + "=main"})
	if err != nil {
		t.Fatalf("listing nodes: %v", err)
	}
	if len(list.Items) != 3 {
		t.Fatalf("got %d nodes of group main, want 3", len(list.Items))
	}
	zones := map[string]bool{}
	for _, n := range list.Items {
		zone := n.Labels[corev1.LabelTopologyZone]
		zones[zone] = true
		id := strings.TrimPrefix(n.Spec.ProviderID, "aws:///"+zone+"/")
		if !strings.HasPrefix(id, "i-") {
			t.Errorf("node %s: providerID %q is not aws:///<zone>/<instance>", n.Name, n.Spec.ProviderID)
			continue
		}
		inst, err := describeInstance(ctx, id)
		if err != nil {
			t.Errorf("node %s: %v", n.Name, err)
			continue
		}
		if inst.State.Name != ec2types.InstanceStateNameRunning {
			t.Errorf("node %s: instance %s is %s", n.Name, id, inst.State.Name)
		}
		if got := aws.ToString(inst.Placement.AvailabilityZone); got != zone {
			t.Errorf("node %s: instance zone %s, label %s", n.Name, got, zone)
		}
		if n.Name != aws.ToString(inst.PrivateDnsName) || !strings.HasPrefix(n.Name, "ip-") {
			t.Errorf("node name %s, instance's private DNS name %s", n.Name, aws.ToString(inst.PrivateDnsName))
		}
		if len(n.Status.Addresses) == 0 || n.Status.Addresses[0].Type != corev1.NodeInternalIP ||
			n.Status.Addresses[0].Address != aws.ToString(inst.PrivateIpAddress) {
			t.Errorf("node %s: addresses %v, instance's private IP %s", n.Name, n.Status.Addresses, aws.ToString(inst.PrivateIpAddress))
		}
		wantLabels := map[string]string{
			corev1.LabelTopologyRegion:     "us-east-1",
			corev1.LabelInstanceTypeStable: string(inst.InstanceType),
			corev1.LabelHostname:           n.Name,
			corev1.LabelOSStable:           "linux",
		}
		for k, v := range wantLabels {
			if n.Labels[k] != v {
				t.Errorf("node %s: label %s=%q, want %q", n.Name, k, n.Labels[k], v)
			}
		}
		if pods := n.Status.Capacity.Pods(); pods.Value() < 110 {
			t.Errorf("node %s: pods capacity %v, want at least 110", n.Name, pods)
		}
		if !nodeReady(&n) {
			t.Errorf("node %s is not Ready: %v", n.Name, n.Status.Conditions)
		}
		lease, err := kube.CoordinationV1().Leases(corev1.NamespaceNodeLease).Get(ctx, n.Name, metav1.GetOptions{})
		if err != nil {
			t.Errorf("node %s: lease: %v", n.Name, err)
			continue
		}
		if lease.Spec.RenewTime == nil || time.Since(lease.Spec.RenewTime.Time) > time.Minute {
			t.Errorf("node %s: lease renewed at %v", n.Name, lease.Spec.RenewTime)
		}
	}
	if len(zones) != 3 {
		t.Errorf("nodes spread over zones %v, want 3 zones", zones)
	}
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func TestDeletingANodeTerminatesItsInstance(t *testing.T) {
	t.Parallel()
	opts := kubeletOptions("doomed")
	opts.Nodes = 1
	k := startGroup(t, opts)
	n := k.Nodes()[0]
	if err := kube.CoreV1().Nodes().Delete(t.Context(), n.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting node: %v", err)
	}
	eventually(t, 20*time.Second, "instance terminated", func(ctx context.Context) (bool, string, error) {
		inst, err := describeInstance(ctx, n.InstanceID)
		if err != nil {
			return false, "", err
		}
		return inst.State.Name == ec2types.InstanceStateNameTerminated, string(inst.State.Name), nil
	})
	eventually(t, 10*time.Second, "node forgotten", func(context.Context) (bool, string, error) {
		return len(k.Nodes()) == 0, fmt.Sprint(k.NodeNames()), nil
	})
}

// A restarted Kubelet adopts the nodes whose instance survived, replaces
// the one whose instance is gone, and keeps its pods' addresses (with
// prefix delegation, where only the pods' status records which addresses
// of a prefix are taken).
func TestRestartAdoptsNodesAndAddresses(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	opts := kubeletOptions("restart")
	opts.Nodes, opts.PrefixDelegation = 2, true
	first := startGroup(t, opts)
	before := first.Nodes()

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "survivor", Namespace: ns}, Spec: podSpec("restart")}
	createPod(t, pod)
	pod = waitPod(t, ns, pod.Name, 30*time.Second, "running", running)
	home := nodeOf(t, first, pod)
	first.Stop()

	var lost fakenode.NodeInfo
	for _, n := range before {
		if n.Name != home.Name {
			lost = n
		}
	}
	if _, err := ec2api.TerminateInstances(t.Context(), &ec2.TerminateInstancesInput{InstanceIds: []string{lost.InstanceID}}); err != nil {
		t.Fatalf("terminating %s: %v", lost.InstanceID, err)
	}

	second := startGroup(t, opts)
	after := second.Nodes()
	if len(after) != 2 {
		t.Fatalf("after restart: nodes %v, want 2", after)
	}
	var adopted bool
	for _, n := range after {
		switch {
		case n == home:
			adopted = true
		case n.Name == lost.Name || n.InstanceID == lost.InstanceID:
			t.Errorf("node %s with terminated instance %s kept", n.Name, n.InstanceID)
		}
	}
	if !adopted {
		t.Errorf("node %v not adopted; nodes now %v", home, after)
	}
	if _, err := kube.CoreV1().Nodes().Get(t.Context(), lost.Name, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("node %s of the terminated instance: got %v, want not found", lost.Name, err)
	}

	next := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "newcomer", Namespace: ns}, Spec: podSpec("restart")}
	next.Spec.NodeSelector[corev1.LabelHostname] = home.Name
	createPod(t, next)
	next = waitPod(t, ns, next.Name, 30*time.Second, "running", running)
	if next.Status.PodIP == pod.Status.PodIP {
		t.Errorf("the restarted Kubelet gave %s to a new pod while %s holds it", pod.Status.PodIP, pod.Name)
	}
	again := waitPod(t, ns, pod.Name, 10*time.Second, "still running", running)
	if again.Status.PodIP != pod.Status.PodIP {
		t.Errorf("pod %s changed address from %s to %s", pod.Name, pod.Status.PodIP, again.Status.PodIP)
	}
}
