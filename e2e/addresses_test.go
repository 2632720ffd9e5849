package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

// A Deployment applied to the stack runs on the fake nodes like on EKS: each
// pod gets a secondary IP of its node's ENI, which EC2 (the emulator, read
// through the real SDK) shows on exactly that ENI.
func TestDeploymentPodsGetAddressesOfTheirNodesENI(t *testing.T) {
	ns := newNamespace(t)
	ctx := t.Context()
	deploy := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "echo"},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To[int32](4),
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "echo"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "echo"}},
				Spec: corev1.PodSpec{
					NodeSelector:                  env.Nodes.NodeSelector(),
					TerminationGracePeriodSeconds: ptr.To[int64](1),
					Containers:                    []corev1.Container{{Name: "echo", Image: "registry.k8s.io/echoserver:2.5"}},
				},
			},
		},
	}
	if _, err := kube.AppsV1().Deployments(ns).Create(ctx, deploy, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating deployment: %v", err)
	}

	var pods []corev1.Pod
	eventually(t, time.Minute, "deployment pods running with IPs", func(ctx context.Context) (bool, string, error) {
		list, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=echo"})
		if err != nil {
			return false, "", err
		}
		pods = list.Items
		running := 0
		for _, p := range pods {
			if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && isReady(&p) {
				running++
			}
		}
		return len(pods) == 4 && running == 4, podSummary(pods), nil
	})

	enis := map[string]string{} // node name -> ENI id
	for _, n := range env.Nodes.Nodes() {
		enis[n.Name] = n.ENIID
	}
	seen := map[string]bool{}
	for _, p := range pods {
		if seen[p.Status.PodIP] {
			t.Errorf("pod IP %s handed out twice", p.Status.PodIP)
		}
		seen[p.Status.PodIP] = true
		out, err := ec2api.DescribeNetworkInterfaces(ctx, &ec2.DescribeNetworkInterfacesInput{
			Filters: []ec2types.Filter{{Name: aws.String("addresses.private-ip-address"), Values: []string{p.Status.PodIP}}},
		})
		if err != nil {
			t.Fatalf("describing the ENI of %s: %v", p.Status.PodIP, err)
		}
		if len(out.NetworkInterfaces) != 1 {
			t.Fatalf("pod %s IP %s is on %d ENIs, want 1", p.Name, p.Status.PodIP, len(out.NetworkInterfaces))
		}
		eni := out.NetworkInterfaces[0]
		if got, want := aws.ToString(eni.NetworkInterfaceId), enis[p.Spec.NodeName]; got != want {
			t.Errorf("pod %s on node %s has IP %s on ENI %s, want the node's ENI %s", p.Name, p.Spec.NodeName, p.Status.PodIP, got, want)
		}
		if !secondaryIPOf(eni, p.Status.PodIP) {
			t.Errorf("pod IP %s is not a secondary address of %s: %s", p.Status.PodIP, aws.ToString(eni.NetworkInterfaceId), describeIPs(eni))
		}
		if p.Status.HostIP == "" || p.Status.HostIP == p.Status.PodIP {
			t.Errorf("pod %s host IP %q, want the node's primary address", p.Name, p.Status.HostIP)
		}
	}

	// Scaling down leaves the addresses on their nodes' ENIs, cooling
	// before another pod gets one, as the VPC CNI keeps them warm.
	nodeOf := map[string]string{}
	for _, p := range pods {
		nodeOf[p.Status.PodIP] = p.Spec.NodeName
	}
	if _, err := kube.AppsV1().Deployments(ns).Patch(ctx, "echo", "application/merge-patch+json",
		[]byte(`{"spec":{"replicas":0}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("scaling to 0: %v", err)
	}
	eventually(t, time.Minute, "addresses kept warm after scale-down", func(ctx context.Context) (bool, string, error) {
		var notCooling []string
		for ip, node := range nodeOf {
			pool, _ := env.Nodes.Pool(node)
			if st := pool.State(ip); st != fakenode.IPCooling {
				notCooling = append(notCooling, ip+"="+string(st))
			}
		}
		return len(notCooling) == 0, "not cooling: " + strings.Join(notCooling, ","), nil
	})
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func secondaryIPOf(eni ec2types.NetworkInterface, ip string) bool {
	for _, a := range eni.PrivateIpAddresses {
		if aws.ToString(a.PrivateIpAddress) == ip {
			return !aws.ToBool(a.Primary)
		}
	}
	return false
}

func describeIPs(eni ec2types.NetworkInterface) string {
	var parts []string
	for _, a := range eni.PrivateIpAddresses {
		parts = append(parts, fmt.Sprintf("%s(primary=%t)", aws.ToString(a.PrivateIpAddress), aws.ToBool(a.Primary)))
	}
	return strings.Join(parts, " ")
}
