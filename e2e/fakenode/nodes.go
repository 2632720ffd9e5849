package fakenode

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LabelFakeNode marks a Node as a fake node; its value is the group.
const LabelFakeNode = "e2e.kube-eip.io/fake-node"

// node is one registered fake node.
type node struct {
	name string
	uid  types.UID
	inst instance
	ipam *ipam

	// Heartbeat bookkeeping, touched only by the node's own sync, which the
	// queue never runs twice at once.
	lease        *coordinationv1.Lease
	leaseRenewed time.Time
	statusPosted time.Time
	// silent stops the heartbeats (StopHeartbeats), as a node that lost
	// power or its network would.
	silent atomic.Bool
}

func (n *node) info() NodeInfo {
	return NodeInfo{
		Name:       n.name,
		InstanceID: n.inst.ID,
		ENIID:      n.inst.ENIID,
		Zone:       n.inst.Zone,
		SubnetID:   n.inst.SubnetID,
		PrivateIP:  n.inst.PrivateIP,
	}
}

// providerID is how the AWS cloud provider names an instance on a Node.
func providerID(inst instance) string { return "aws:///" + inst.Zone + "/" + inst.ID }

func instanceIDOf(providerID string) string {
	if !strings.HasPrefix(providerID, "aws:///") {
		return ""
	}
	return providerID[strings.LastIndexByte(providerID, '/')+1:]
}

// regionOf is a zone's region: its name up to the first number, which
// ends a region's name (us-east-1a and the Local Zone us-east-1-bos-1a are
// both in us-east-1, us-gov-west-1a in us-gov-west-1).
func regionOf(zone string) string {
	parts := strings.Split(zone, "-")
	for i, p := range parts {
		if n := strings.TrimRight(p, "abcdefghijklmnopqrstuvwxyz"); n != "" && strings.Trim(n, "0123456789") == "" {
			return strings.Join(append(parts[:i:i], n), "-")
		}
	}
	return zone
}

// nodeName is the EC2 private DNS name, which EKS nodes are named after.
func nodeName(inst instance) string {
	if inst.PrivateDNSName != "" {
		return inst.PrivateDNSName
	}
	host := "ip-" + strings.ReplaceAll(inst.PrivateIP, ".", "-")
	if region := regionOf(inst.Zone); region != "us-east-1" {
		return host + "." + region + ".compute.internal"
	}
	return host + ".ec2.internal"
}

// machineShapes are the cpu and memory of the instance types a dev stack is
// likely to name; others get a mid-sized shape.
var machineShapes = map[string][2]string{
	"t3.medium":  {"2", "4Gi"},
	"t3.large":   {"2", "8Gi"},
	"t3.xlarge":  {"4", "16Gi"},
	"m5.large":   {"2", "8Gi"},
	"m5.xlarge":  {"4", "16Gi"},
	"m5.2xlarge": {"8", "32Gi"},
	"m5.4xlarge": {"16", "64Gi"},
	"m6i.large":  {"2", "8Gi"},
	"m6i.xlarge": {"4", "16Gi"},
	"m7i.large":  {"2", "8Gi"},
	"c5.large":   {"2", "4Gi"},
	"c5.xlarge":  {"4", "8Gi"},
	"c6i.large":  {"2", "4Gi"},
	"r5.large":   {"2", "16Gi"},
}

func (k *Kubelet) capacity(instanceType string) corev1.ResourceList {
	shape, ok := machineShapes[instanceType]
	if !ok {
		shape = [2]string{"4", "16Gi"}
	}
	return corev1.ResourceList{
		corev1.ResourceCPU:              resource.MustParse(shape[0]),
		corev1.ResourceMemory:           resource.MustParse(shape[1]),
		corev1.ResourcePods:             *resource.NewQuantity(int64(k.opts.MaxPods), resource.DecimalSI),
		corev1.ResourceEphemeralStorage: resource.MustParse("80Gi"),
	}
}

func (k *Kubelet) nodeObject(inst instance) *corev1.Node {
	name := nodeName(inst)
	now := metav1.NewTime(time.Now().Truncate(time.Second))
	capacity := k.capacity(inst.Type)
	n := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				LabelFakeNode:                    k.opts.Group,
				corev1.LabelHostname:             name,
				corev1.LabelOSStable:             "linux",
				corev1.LabelArchStable:           "amd64",
				corev1.LabelTopologyZone:         inst.Zone,
				corev1.LabelTopologyRegion:       regionOf(inst.Zone),
				corev1.LabelInstanceTypeStable:   inst.Type,
				"eks.amazonaws.com/nodegroup":    k.opts.Group,
				"eks.amazonaws.com/capacityType": "ON_DEMAND",
			},
		},
		Spec: corev1.NodeSpec{ProviderID: providerID(inst), Taints: slices.Clone(k.opts.Taints)},
		Status: corev1.NodeStatus{
			Capacity:    capacity,
			Allocatable: capacity,
			Phase:       corev1.NodeRunning,
			Conditions:  nodeConditions(nil, now),
			Addresses: []corev1.NodeAddress{
				{Type: corev1.NodeInternalIP, Address: inst.PrivateIP},
				{Type: corev1.NodeInternalDNS, Address: name},
				{Type: corev1.NodeHostName, Address: name},
			},
			DaemonEndpoints: corev1.NodeDaemonEndpoints{KubeletEndpoint: corev1.DaemonEndpoint{Port: 10250}},
			NodeInfo: corev1.NodeSystemInfo{
				MachineID:               inst.ID,
				SystemUUID:              inst.ID,
				BootID:                  inst.ID,
				KernelVersion:           "6.1.0-fakenode",
				OSImage:                 "Amazon Linux 2023 (fakenode)",
				ContainerRuntimeVersion: "fakenode://1",
				KubeletVersion:          k.version,
				OperatingSystem:         "linux",
				Architecture:            "amd64",
			},
		},
	}
	for k, v := range k.opts.Labels {
		if _, own := n.Labels[k]; !own {
			n.Labels[k] = v
		}
	}
	return n
}

// nodeConditions are the conditions a healthy kubelet posts, keeping the
// transition times of those that did not change.
func nodeConditions(old []corev1.NodeCondition, now metav1.Time) []corev1.NodeCondition {
	want := []corev1.NodeCondition{
		{Type: corev1.NodeMemoryPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientMemory", Message: "kubelet has sufficient memory available"},
		{Type: corev1.NodeDiskPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasNoDiskPressure", Message: "kubelet has no disk pressure"},
		{Type: corev1.NodePIDPressure, Status: corev1.ConditionFalse, Reason: "KubeletHasSufficientPID", Message: "kubelet has sufficient PID available"},
		{Type: corev1.NodeReady, Status: corev1.ConditionTrue, Reason: "KubeletReady", Message: "kubelet is posting ready status"},
	}
	for i := range want {
		want[i].LastHeartbeatTime = now
		want[i].LastTransitionTime = now
		for _, o := range old {
			if o.Type == want[i].Type && o.Status == want[i].Status && !o.LastTransitionTime.IsZero() {
				want[i].LastTransitionTime = o.LastTransitionTime
			}
		}
	}
	return want
}

// registerNodes adopts the group's nodes whose instance still runs, drops
// the others, terminates instances whose node is gone (deleted while no
// Kubelet watched) and launches nodes up to the wanted count.
func (k *Kubelet) registerNodes(ctx context.Context) error {
	subnets, err := k.subnets(ctx)
	if err != nil {
		return err
	}
	insts, err := k.groupInstances(ctx)
	if err != nil {
		return err
	}
	existing, err := k.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{LabelSelector: LabelFakeNode + "=" + k.opts.Group})
	if err != nil {
		return fmt.Errorf("listing the nodes of group %s: %w", k.opts.Group, err)
	}
	for i := range existing.Items {
		n := &existing.Items[i]
		id := instanceIDOf(n.Spec.ProviderID)
		inst, ok := insts[id]
		if !ok || k.hasInstance(id) {
			k.log.Info("removing node whose instance is gone", "node", n.Name, "instance", id)
			err := k.client.CoreV1().Nodes().Delete(ctx, n.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &n.UID}})
			if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
				return fmt.Errorf("deleting node %s: %w", n.Name, err)
			}
			continue
		}
		k.addNode(&node{name: n.Name, uid: n.UID, inst: inst})
		k.log.Info("adopted node", "node", n.Name, "instance", id)
	}
	for id := range insts {
		if !k.hasInstance(id) {
			k.log.Info("terminating instance whose node is gone", "instance", id)
			if err := k.terminate(ctx, id); err != nil {
				return err
			}
		}
	}
	for len(k.nodes) < k.opts.Nodes {
		if err := k.createNode(ctx, k.emptiestSubnet(subnets)); err != nil {
			return err
		}
	}
	return k.loadENIs(ctx)
}

func (k *Kubelet) hasInstance(id string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range k.nodes {
		if n.inst.ID == id {
			return true
		}
	}
	return false
}

func (k *Kubelet) addNode(n *node) {
	n.ipam = newIPAM(k.ec2, n.inst.ENIID, k.opts.PrefixDelegation, k.cni)
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nodes[n.name] = n
}

// emptiestSubnet spreads nodes over zones round-robin, counting the nodes
// already there.
func (k *Kubelet) emptiestSubnet(subnets []subnet) subnet {
	count := map[string]int{}
	k.mu.Lock()
	for _, n := range k.nodes {
		count[n.inst.SubnetID]++
	}
	k.mu.Unlock()
	best := subnets[0]
	for _, s := range subnets[1:] {
		if count[s.ID] < count[best.ID] {
			best = s
		}
	}
	return best
}

func (k *Kubelet) createNode(ctx context.Context, sub subnet) error {
	inst, err := k.launch(ctx, sub)
	if err != nil {
		return err
	}
	created, err := k.client.CoreV1().Nodes().Create(ctx, k.nodeObject(inst), metav1.CreateOptions{})
	if err != nil {
		// An instance without a node would only be terminated at the next start.
		if terr := k.terminate(ctx, inst.ID); terr != nil {
			k.log.Error(terr, "terminating the instance of a node that could not be registered", "instance", inst.ID)
		}
		return fmt.Errorf("registering node %s: %w", nodeName(inst), err)
	}
	k.addNode(&node{name: created.Name, uid: created.UID, inst: inst})
	k.log.Info("registered node", "node", created.Name, "instance", inst.ID, "zone", inst.Zone, "eni", inst.ENIID)
	return nil
}

// loadENIs reads the addresses the nodes' ENIs hold now.
func (k *Kubelet) loadENIs(ctx context.Context) error {
	k.mu.Lock()
	ids := make([]string, 0, len(k.nodes))
	for _, n := range k.nodes {
		ids = append(ids, n.inst.ENIID)
	}
	k.mu.Unlock()
	enis, err := k.describeENIs(ctx, ids)
	if err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, n := range k.nodes {
		eni, ok := enis[n.inst.ENIID]
		if !ok {
			return fmt.Errorf("the primary ENI %s of node %s is gone", n.inst.ENIID, n.name)
		}
		if err := n.ipam.load(eni); err != nil {
			return fmt.Errorf("reading the addresses of node %s: %w", n.name, err)
		}
	}
	return nil
}
