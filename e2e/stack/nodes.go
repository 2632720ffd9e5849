package stack

import (
	"github.com/kube-eip/kube-eip/e2e/ec2sim"
	"github.com/kube-eip/kube-eip/e2e/fakenode"
)

// OnPrimaryIPs reads, from the emulator's state, the Elastic IP associated
// with each node's primary network interface and primary private IP: a
// node pool's or a floating address, where kube-eip puts them. Nodes
// without one are left out.
func OnPrimaryIPs(state ec2sim.State, nodes []fakenode.NodeInfo) map[string]ec2sim.Address {
	out := map[string]ec2sim.Address{}
	for _, n := range nodes {
		for _, a := range state.Addresses {
			if a.AssociationID != "" && a.NetworkInterfaceID == n.ENIID && a.PrivateIPAddress == n.PrivateIP {
				out[n.Name] = a
			}
		}
	}
	return out
}
