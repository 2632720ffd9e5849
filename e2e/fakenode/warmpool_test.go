package fakenode_test

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

// warmGroup starts one node of its own whose warm pool runs on a fake
// clock, so that the test says when cooldowns end.
func warmGroup(t *testing.T, group string, prefixes bool, cni fakenode.CNIOptions) (*fakenode.Kubelet, fakenode.NodeInfo, *clocktesting.FakeClock) {
	t.Helper()
	clk := clocktesting.NewFakeClock(time.Now())
	opts := kubeletOptions(group)
	opts.Nodes, opts.PrefixDelegation = 1, prefixes
	opts.CNI = cni
	opts.CNI.Clock = clk
	k := startGroup(t, opts)
	return k, k.Nodes()[0], clk
}

func waitIPState(t *testing.T, k *fakenode.Kubelet, node, ip string, want fakenode.IPState) fakenode.NodePool {
	t.Helper()
	return waitPool(t, k, node, 10*time.Second, fmt.Sprintf("%s %s", ip, want), func(p fakenode.NodePool) (bool, string) {
		return p.State(ip) == want, fmt.Sprintf("%s is %q", ip, p.State(ip))
	})
}

func mustENIAddresses(t *testing.T, eniID string) (secondary, prefixes []string) {
	t.Helper()
	secondary, prefixes, err := eniAddresses(t.Context(), eniID)
	if err != nil {
		t.Fatalf("describing %s: %v", eniID, err)
	}
	return secondary, prefixes
}

// On EKS the VPC CNI keeps a deleted pod's IP on its node's ENI and, after
// a cooldown, gives it to the next pod there. A pod started meanwhile gets
// another IP; one started after the cooldown gets that very one.
func TestDeletedPodsIPStaysOnTheENIAndGoesToTheNextPodOnceCooled(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	k, n, clk := warmGroup(t, "cooldown", false, fakenode.CNIOptions{})

	first := runPod(t, ns, "first", "cooldown")
	ip := first.Status.PodIP
	deletePods(t, ns, first.Name)
	waitIPState(t, k, n.Name, ip, fakenode.IPCooling)
	if secondary, _ := mustENIAddresses(t, n.ENIID); !slices.Contains(secondary, ip) {
		t.Fatalf("EC2 shows %v on %s: the deleted pod's %s was unassigned", secondary, n.ENIID, ip)
	}

	second := runPod(t, ns, "second", "cooldown")
	if second.Status.PodIP == ip {
		t.Fatalf("pod %s got %s within its cooldown", second.Name, ip)
	}

	clk.Step(fakenode.DefaultIPCooldown)
	waitIPState(t, k, n.Name, ip, fakenode.IPAvailable)
	third := runPod(t, ns, "third", "cooldown")
	if third.Status.PodIP != ip {
		t.Errorf("pod %s got %s after the cooldown, want the deleted pod's %s", third.Name, third.Status.PodIP, ip)
	}
}

// A cooldown ends without any event: on the real clock the pool sees it
// end by itself, and gives back the IP it then holds beyond the warm target.
func TestACooldownEndsOnItsOwn(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	opts := kubeletOptions("cooldown-real")
	opts.Nodes, opts.CNI = 1, fakenode.CNIOptions{Cooldown: time.Second}
	k := startGroup(t, opts)
	n := k.Nodes()[0]

	pod := runPod(t, ns, "leaver", "cooldown-real")
	ip := pod.Status.PodIP
	deletePods(t, ns, pod.Name)
	// The warm IP and the cooled one are two for a target of one: the one
	// no pod had goes.
	eventually(t, 10*time.Second, "only the cooled IP left", func(ctx context.Context) (bool, string, error) {
		secondary, _, err := eniAddresses(ctx, n.ENIID)
		return slices.Equal(secondary, []string{ip}), fmt.Sprintf("secondary IPs %v", secondary), err
	})
	if pool, _ := k.Pool(n.Name); pool.State(ip) != fakenode.IPAvailable {
		t.Errorf("pool %+v, want %s available", pool.Addresses, ip)
	}
}

// associatedIP is the ENI and private IP an Elastic IP is associated with,
// empty when it is not.
func associatedIP(t *testing.T, allocID string) (eni, ip string) {
	t.Helper()
	out, err := ec2api.DescribeAddresses(t.Context(), &ec2.DescribeAddressesInput{AllocationIds: []string{allocID}})
	if err != nil {
		t.Fatalf("describing %s: %v", allocID, err)
	}
	if len(out.Addresses) != 1 {
		t.Fatalf("describing %s: got %d addresses", allocID, len(out.Addresses))
	}
	a := out.Addresses[0]
	return aws.ToString(a.NetworkInterfaceId), aws.ToString(a.PrivateIpAddress)
}

// associateEIP allocates an Elastic IP and associates it with a pod's IP,
// as kube-eip would.
func associateEIP(t *testing.T, eniID, ip string) string {
	t.Helper()
	alloc, err := ec2api.AllocateAddress(t.Context(), &ec2.AllocateAddressInput{Domain: ec2types.DomainTypeVpc})
	if err != nil {
		t.Fatalf("allocating an Elastic IP: %v", err)
	}
	allocID := aws.ToString(alloc.AllocationId)
	t.Cleanup(func() {
		ctx := context.Background()
		out, err := ec2api.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{allocID}})
		if err == nil && len(out.Addresses) == 1 && out.Addresses[0].AssociationId != nil {
			_, _ = ec2api.DisassociateAddress(ctx, &ec2.DisassociateAddressInput{AssociationId: out.Addresses[0].AssociationId})
		}
		_, _ = ec2api.ReleaseAddress(ctx, &ec2.ReleaseAddressInput{AllocationId: aws.String(allocID)})
	})
	if _, err := ec2api.AssociateAddress(t.Context(), &ec2.AssociateAddressInput{
		AllocationId: aws.String(allocID), NetworkInterfaceId: aws.String(eniID), PrivateIpAddress: aws.String(ip),
	}); err != nil {
		t.Fatalf("associating %s with %s on %s: %v", allocID, ip, eniID, err)
	}
	return allocID
}

// The hazard kube-eip exists for: on EKS nothing disassociates a deleted
// pod's Elastic IP, which then serves whichever pod gets the IP next. The
// kinder CNI unassigns the IP, and EC2 drops the association with it.
func TestDeletedPodsElasticIPStaysAssociatedUnlessIPsAreReleasedImmediately(t *testing.T) {
	t.Parallel()
	t.Run("warm pool", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		k, n, clk := warmGroup(t, "eip-warm", false, fakenode.CNIOptions{})
		pod := runPod(t, ns, "leaver", "eip-warm")
		ip := pod.Status.PodIP
		allocID := associateEIP(t, n.ENIID, ip)

		deletePods(t, ns, pod.Name)
		waitIPState(t, k, n.Name, ip, fakenode.IPCooling)
		waitPoolPass(t, k, n.Name)
		if eni, got := associatedIP(t, allocID); eni != n.ENIID || got != ip {
			t.Fatalf("the deleted pod's Elastic IP is on %q %q, want still on %s %s", eni, got, n.ENIID, ip)
		}

		clk.Step(fakenode.DefaultIPCooldown)
		waitIPState(t, k, n.Name, ip, fakenode.IPAvailable)
		heir := runPod(t, ns, "heir", "eip-warm")
		if heir.Status.PodIP != ip {
			t.Fatalf("pod %s got %s, want the cooled %s", heir.Name, heir.Status.PodIP, ip)
		}
		if _, got := associatedIP(t, allocID); got != heir.Status.PodIP {
			t.Errorf("the Elastic IP is on %q, want on the new pod's %s", got, heir.Status.PodIP)
		}
	})
	t.Run("released immediately", func(t *testing.T) {
		t.Parallel()
		ns := newNamespace(t)
		_, n, _ := warmGroup(t, "eip-now", false, fakenode.CNIOptions{ReleaseImmediately: true})
		pod := runPod(t, ns, "leaver", "eip-now")
		allocID := associateEIP(t, n.ENIID, pod.Status.PodIP)

		deletePods(t, ns, pod.Name)
		waitIPOffENI(t, n.ENIID, pod.Status.PodIP, 10*time.Second)
		if eni, got := associatedIP(t, allocID); eni != "" || got != "" {
			t.Errorf("the Elastic IP is still on %s %s after its IP was unassigned", eni, got)
		}
	})
}

// Deleted pods' IPs stay on the ENI while they cool; once cooled, those
// beyond the warm target go back to EC2, but the ENI keeps its minimum.
func TestCooledIPsBeyondTheWarmTargetAreUnassignedDownToTheMinimum(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		warm, minimum int
	}{
		{"warm target", 1, 0},
		{"minimum target", 1, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			group := fmt.Sprintf("trim-%d-%d", tc.warm, tc.minimum)
			k, n, clk := warmGroup(t, group, false, fakenode.CNIOptions{WarmIPTarget: tc.warm, MinimumIPTarget: tc.minimum})

			const pods = 4
			var ips []string
			for i := range pods {
				createPod(t, &corev1.Pod{ObjectMeta: podMeta(ns, i), Spec: podSpec(group)})
			}
			for i := range pods {
				ips = append(ips, waitPod(t, ns, podName(i), 30*time.Second, "running", running).Status.PodIP)
			}
			waitPool(t, k, n.Name, 10*time.Second, "the warm target available", func(p fakenode.NodePool) (bool, string) {
				return p.Count(fakenode.IPAvailable) == tc.warm, fmt.Sprintf("%d available", p.Count(fakenode.IPAvailable))
			})
			held, _ := mustENIAddresses(t, n.ENIID)

			deletePods(t, ns, podNames(pods)...)
			for _, ip := range ips {
				waitIPState(t, k, n.Name, ip, fakenode.IPCooling)
			}
			waitPoolPass(t, k, n.Name)
			if cooling, _ := mustENIAddresses(t, n.ENIID); !sameSet(cooling, held) {
				t.Fatalf("EC2 shows %v on %s while the pods' IPs %v cool, want %v kept", cooling, n.ENIID, ips, held)
			}

			clk.Step(fakenode.DefaultIPCooldown)
			want := max(tc.warm, tc.minimum)
			eventually(t, 10*time.Second, fmt.Sprintf("%d secondary IPs left", want), func(ctx context.Context) (bool, string, error) {
				secondary, _, err := eniAddresses(ctx, n.ENIID)
				return len(secondary) == want, fmt.Sprintf("secondary IPs %v", secondary), err
			})
			if pool, _ := k.Pool(n.Name); len(pool.Addresses) != want || pool.Count(fakenode.IPAvailable) != want {
				t.Errorf("pool %+v, want %d available", pool.Addresses, want)
			}
		})
	}
}

func podName(i int) string { return fmt.Sprintf("p%d", i) }

func podNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = podName(i)
	}
	return out
}

func podMeta(ns string, i int) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: podName(i), Namespace: ns}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// With prefix delegation a deleted pod's address cools as well: the next
// pod gets another address of the prefix, and the address goes to a pod
// only after the cooldown.
func TestPrefixDelegationCoolsAFreedAddressBeforeReuse(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	k, n, clk := warmGroup(t, "prefix-cool", true, fakenode.CNIOptions{})

	first := runPod(t, ns, "first", "prefix-cool")
	ip := first.Status.PodIP
	deletePods(t, ns, first.Name)
	waitIPState(t, k, n.Name, ip, fakenode.IPCooling)

	second := runPod(t, ns, "second", "prefix-cool")
	if second.Status.PodIP == ip {
		t.Fatalf("pod %s got %s within its cooldown", second.Name, ip)
	}
	clk.Step(fakenode.DefaultIPCooldown)
	waitIPState(t, k, n.Name, ip, fakenode.IPAvailable)
	third := runPod(t, ns, "third", "prefix-cool")
	if third.Status.PodIP != ip {
		t.Errorf("pod %s got %s after the cooldown, want the deleted pod's %s", third.Name, third.Status.PodIP, ip)
	}
	if _, prefixes := mustENIAddresses(t, n.ENIID); len(prefixes) != 1 {
		t.Errorf("EC2 shows prefixes %v, want the one the three pods fit in", prefixes)
	}
}

// An unused prefix goes back to EC2 only when the other prefixes keep the
// warm target available: with eight addresses to keep warm, nine pods take
// a second prefix, which stays while their addresses cool and goes once
// they have.
func TestPrefixDelegationReturnsAnUnusedPrefixOnlyBeyondTheWarmTarget(t *testing.T) {
	t.Parallel()
	ns := newNamespace(t)
	const group, pods = "prefix-trim", 9
	k, n, clk := warmGroup(t, group, true, fakenode.CNIOptions{WarmIPTarget: 8})

	for i := range pods {
		createPod(t, &corev1.Pod{ObjectMeta: podMeta(ns, i), Spec: podSpec(group)})
	}
	for i := range pods {
		waitPod(t, ns, podName(i), 30*time.Second, "running", running)
	}
	pool := waitPool(t, k, n.Name, 10*time.Second, "a second prefix for the warm target", func(p fakenode.NodePool) (bool, string) {
		return len(p.Prefixes) == 2, fmt.Sprintf("prefixes %v", p.Prefixes)
	})
	first := pool.Prefixes[0]

	deletePods(t, ns, podNames(pods)...)
	waitPool(t, k, n.Name, 10*time.Second, "the pods' addresses cooling", func(p fakenode.NodePool) (bool, string) {
		return p.Count(fakenode.IPCooling) == pods, fmt.Sprintf("%d cooling", p.Count(fakenode.IPCooling))
	})
	waitPoolPass(t, k, n.Name)
	if _, prefixes := mustENIAddresses(t, n.ENIID); len(prefixes) != 2 {
		t.Fatalf("EC2 shows prefixes %v while the pods' addresses cool, want both: the unused one is needed for the warm target", prefixes)
	}

	clk.Step(fakenode.DefaultIPCooldown)
	eventually(t, 10*time.Second, "one prefix left", func(ctx context.Context) (bool, string, error) {
		_, prefixes, err := eniAddresses(ctx, n.ENIID)
		return len(prefixes) == 1, fmt.Sprintf("prefixes %v", prefixes), err
	})
	if _, prefixes := mustENIAddresses(t, n.ENIID); prefixes[0] != first {
		t.Errorf("EC2 kept %s, want the oldest %s", prefixes[0], first)
	}
	if p := netip.MustParsePrefix(first); p.Bits() != 28 {
		t.Errorf("prefix %s is not a /28", first)
	}
}

// A restarted Kubelet takes the IPs on an ENI that no pod holds (a deleted
// pod's, the warm ones, one a Kubelet took and never recorded) as the warm
// pool, cooling from the restart: they stay assigned, and a new pod gets
// none of them. Releasing immediately, they are orphans and unassigned.
func TestRestartKeepsTheWarmPool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		cni  fakenode.CNIOptions
		kept bool
	}{
		{"warm pool", fakenode.CNIOptions{}, true},
		{"released immediately", fakenode.CNIOptions{ReleaseImmediately: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ns := newNamespace(t)
			group := "restart-warm"
			if !tc.kept {
				group = "restart-now"
			}
			clk := clocktesting.NewFakeClock(time.Now())
			opts := kubeletOptions(group)
			opts.Nodes, opts.CNI = 1, tc.cni
			opts.CNI.Clock = clk
			first := startGroup(t, opts)
			n := first.Nodes()[0]
			pod := runPod(t, ns, "leaver", group)
			deletePods(t, ns, pod.Name)
			waitIPReleased(t, first, n.Name, pod.Status.PodIP, 10*time.Second)
			first.Stop()

			out, err := ec2api.AssignPrivateIpAddresses(t.Context(), &ec2.AssignPrivateIpAddressesInput{
				NetworkInterfaceId: aws.String(n.ENIID), SecondaryPrivateIpAddressCount: aws.Int32(1),
			})
			if err != nil {
				t.Fatalf("assigning an unrecorded IP to %s: %v", n.ENIID, err)
			}
			unrecorded := aws.ToString(out.AssignedPrivateIpAddresses[0].PrivateIpAddress)
			before, _ := mustENIAddresses(t, n.ENIID)

			second := startGroup(t, opts)
			if !tc.kept {
				for _, ip := range before {
					waitIPOffENI(t, n.ENIID, ip, 10*time.Second)
				}
				return
			}
			pool := waitPoolPass(t, second, n.Name)
			for _, ip := range before {
				if s := pool.State(ip); s != fakenode.IPCooling {
					t.Errorf("after the restart %s is %q, want cooling", ip, s)
				}
			}
			if after, _ := mustENIAddresses(t, n.ENIID); !isSubset(before, after) {
				t.Errorf("EC2 shows %v after the restart, want %v kept", after, before)
			}
			next := runPod(t, ns, "newcomer", group)
			if slices.Contains(before, next.Status.PodIP) {
				t.Errorf("pod %s got %s, which cools since the restart (unrecorded: %s)", next.Name, next.Status.PodIP, unrecorded)
			}
		})
	}
}

func isSubset(sub, set []string) bool {
	for _, s := range sub {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return true
}
