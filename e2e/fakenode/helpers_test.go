package fakenode_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

// newNamespace creates a namespace for the test, ready for pods.
func newNamespace(t *testing.T) string {
	t.Helper()
	name := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(name) > 40 {
		name = name[:40]
	}
	ns, err := kube.CoreV1().Namespaces().Create(t.Context(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: name + "-"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating namespace: %v", err)
	}
	t.Cleanup(func() {
		_ = kube.CoreV1().Namespaces().Delete(context.Background(), ns.Name, metav1.DeleteOptions{})
	})
	if err := cluster.WaitForServiceAccount(t.Context(), ns.Name); err != nil {
		t.Fatalf("waiting for the service account of %s: %v", ns.Name, err)
	}
	return ns.Name
}

// eventually polls cond until it holds, failing the test with cond's last
// explanation once timeout has passed.
func eventually(t *testing.T, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string, error)) {
	t.Helper()
	var last string
	err := wait.PollUntilContextTimeout(t.Context(), 50*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		ok, why, err := cond(ctx)
		last = why
		return ok, err
	})
	if err != nil {
		t.Fatalf("%s: %v (last: %s)", what, err, last)
	}
}

// podSpec is a pod for the given group of nodes that starts instantly.
func podSpec(group string) corev1.PodSpec {
	return corev1.PodSpec{
		NodeSelector:                  map[string]string{fakenode.LabelFakeNode: group},
		TerminationGracePeriodSeconds: ptr.To[int64](1),
		Containers:                    []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10"}},
	}
}

func createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	created, err := kube.CoreV1().Pods(pod.Namespace).Create(t.Context(), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating pod %s: %v", pod.Name, err)
	}
	return created
}

// waitPod polls a pod until cond holds and returns it.
func waitPod(t *testing.T, namespace, name string, timeout time.Duration, what string, cond func(*corev1.Pod) (bool, string)) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	eventually(t, timeout, fmt.Sprintf("pod %s %s", name, what), func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err.Error(), nil
		}
		pod = p
		ok, why := cond(p)
		return ok, why + " " + statusSummary(p), nil
	})
	return pod
}

func waitPodGone(t *testing.T, namespace, name string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, "pod "+name+" gone", func(ctx context.Context) (bool, string, error) {
		p, err := kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return true, "", nil
		}
		if err != nil {
			return false, err.Error(), nil
		}
		return false, statusSummary(p), nil
	})
}

func running(p *corev1.Pod) (bool, string) {
	return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", "not running with an IP"
}

func condition(p *corev1.Pod, t corev1.PodConditionType) *corev1.PodCondition {
	for i := range p.Status.Conditions {
		if p.Status.Conditions[i].Type == t {
			return &p.Status.Conditions[i]
		}
	}
	return nil
}

func conditionIs(p *corev1.Pod, t corev1.PodConditionType, want corev1.ConditionStatus) bool {
	c := condition(p, t)
	return c != nil && c.Status == want
}

func statusSummary(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase=%s node=%q ip=%q", p.Status.Phase, p.Spec.NodeName, p.Status.PodIP)
	for _, c := range p.Status.Conditions {
		fmt.Fprintf(&b, " %s=%s", c.Type, c.Status)
	}
	for _, cs := range p.Status.InitContainerStatuses {
		fmt.Fprintf(&b, " init[%s restarts=%d %s]", cs.Name, cs.RestartCount, stateSummary(cs.State))
	}
	return b.String()
}

func stateSummary(s corev1.ContainerState) string {
	switch {
	case s.Running != nil:
		return "running"
	case s.Terminated != nil:
		return fmt.Sprintf("terminated(%d %s)", s.Terminated.ExitCode, s.Terminated.Reason)
	case s.Waiting != nil:
		return "waiting(" + s.Waiting.Reason + ")"
	}
	return "none"
}

// nodeOf finds the fake node a pod runs on.
func nodeOf(t *testing.T, k *fakenode.Kubelet, pod *corev1.Pod) fakenode.NodeInfo {
	t.Helper()
	for _, n := range k.Nodes() {
		if n.Name == pod.Spec.NodeName {
			return n
		}
	}
	t.Fatalf("pod %s runs on %q, not on a node of this Kubelet (%v)", pod.Name, pod.Spec.NodeName, k.NodeNames())
	return fakenode.NodeInfo{}
}

// eniAddresses is what EC2 says an ENI holds: secondary IPs and prefixes.
func eniAddresses(ctx context.Context, eniID string) (secondary, prefixes []string, err error) {
	out, err := ec2api.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{NetworkInterfaceIds: []string{eniID}})
	if err != nil {
		return nil, nil, err
	}
	if len(out.NetworkInterfaces) != 1 {
		return nil, nil, fmt.Errorf("describing %s: got %d interfaces", eniID, len(out.NetworkInterfaces))
	}
	eni := out.NetworkInterfaces[0]
	for _, ip := range eni.PrivateIpAddresses {
		if !aws.ToBool(ip.Primary) {
			secondary = append(secondary, aws.ToString(ip.PrivateIpAddress))
		}
	}
	for _, p := range eni.Ipv4Prefixes {
		prefixes = append(prefixes, aws.ToString(p.Ipv4Prefix))
	}
	return secondary, prefixes, nil
}

// waitIPOffENI waits until EC2 no longer shows ip as a secondary IP of eni.
func waitIPOffENI(t *testing.T, eniID, ip string, timeout time.Duration) {
	t.Helper()
	eventually(t, timeout, fmt.Sprintf("%s unassigned from %s", ip, eniID), func(ctx context.Context) (bool, string, error) {
		secondary, _, err := eniAddresses(ctx, eniID)
		if err != nil {
			return false, "", err
		}
		return !slices.Contains(secondary, ip), fmt.Sprintf("secondary IPs %v", secondary), nil
	})
}

// waitPool polls a node's warm pool until cond holds and returns it.
func waitPool(t *testing.T, k *fakenode.Kubelet, node string, timeout time.Duration, what string, cond func(fakenode.NodePool) (bool, string)) fakenode.NodePool {
	t.Helper()
	var pool fakenode.NodePool
	eventually(t, timeout, fmt.Sprintf("node %s: %s", node, what), func(context.Context) (bool, string, error) {
		p, ok := k.Pool(node)
		if !ok {
			return false, "", fmt.Errorf("no node %s", node)
		}
		pool = p
		ok, why := cond(p)
		return ok, fmt.Sprintf("%s; pool %+v", why, p.Addresses), nil
	})
	return pool
}

// waitPoolPass waits for the warm pool to have looked at the node after
// now, so that what it would have done is done.
func waitPoolPass(t *testing.T, k *fakenode.Kubelet, node string) fakenode.NodePool {
	t.Helper()
	before, _ := k.Pool(node)
	return waitPool(t, k, node, 10*time.Second, "a pass of the warm pool", func(p fakenode.NodePool) (bool, string) {
		return p.Passes > before.Passes, fmt.Sprintf("passes %d", p.Passes)
	})
}

// waitIPReleased waits until no pod holds ip on the node's ENI.
func waitIPReleased(t *testing.T, k *fakenode.Kubelet, node, ip string, timeout time.Duration) {
	t.Helper()
	waitPool(t, k, node, timeout, ip+" released", func(p fakenode.NodePool) (bool, string) {
		s := p.State(ip)
		return s != fakenode.IPInUse, fmt.Sprintf("%s is %q", ip, s)
	})
}

// runPod creates a pod for a group of nodes and waits for it to run.
func runPod(t *testing.T, ns, name, group string) *corev1.Pod {
	t.Helper()
	createPod(t, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: podSpec(group)})
	return waitPod(t, ns, name, 30*time.Second, "running", running)
}

// deletePods deletes pods and waits for them to be gone.
func deletePods(t *testing.T, ns string, names ...string) {
	t.Helper()
	for _, name := range names {
		if err := kube.CoreV1().Pods(ns).Delete(t.Context(), name, metav1.DeleteOptions{}); err != nil {
			t.Fatalf("deleting pod %s: %v", name, err)
		}
	}
	for _, name := range names {
		waitPodGone(t, ns, name, 20*time.Second)
	}
}
