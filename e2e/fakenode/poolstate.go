package fakenode

import (
	"time"

	"k8s.io/apimachinery/pkg/types"
)

// IPState is where an address on a node's ENI stands with the fake CNI.
type IPState string

const (
	// IPInUse is an address a pod holds.
	IPInUse IPState = "InUse"
	// IPCooling is an address a pod let go of less than the cooldown ago:
	// still assigned to the ENI (an Elastic IP on it stays associated),
	// given to no pod yet.
	IPCooling IPState = "Cooling"
	// IPAvailable is an address assigned to the ENI that the next pod may
	// get.
	IPAvailable IPState = "Available"
)

// PoolAddress is one address on a node's ENI as the fake CNI sees it.
type PoolAddress struct {
	IP    string
	State IPState
	// Pod is the UID of the pod holding the address while it is in use.
	Pod types.UID
	// FreedAt is when the last pod let go of it (or when a restarted
	// Kubelet found no pod holding it), by the CNI's clock; zero when no
	// pod has had it since it was assigned.
	FreedAt time.Time
}

// NodePool is where the fake CNI stands on one node's ENI.
type NodePool struct {
	ENIID string
	// Addresses are every address pods may get: the secondary IPs, or all
	// the addresses of the delegated prefixes, in the ENI's order.
	Addresses []PoolAddress
	// Prefixes are the delegated prefixes, oldest first.
	Prefixes []string
	// Passes counts the warm pool's passes over the node, so that a test
	// can wait for one to have run after a change.
	Passes uint64
}

// State is where ip stands on the ENI; "" when the ENI does not hold it.
func (np NodePool) State(ip string) IPState {
	for _, a := range np.Addresses {
		if a.IP == ip {
			return a.State
		}
	}
	return ""
}

// Count is how many addresses stand in state s.
func (np NodePool) Count(s IPState) int {
	n := 0
	for _, a := range np.Addresses {
		if a.State == s {
			n++
		}
	}
	return n
}

// Pool tells where the fake CNI stands on a node's ENI: which addresses
// pods hold, which cool down and which are available. False when this
// Kubelet does not run the node.
func (k *Kubelet) Pool(node string) (NodePool, bool) {
	k.mu.Lock()
	n := k.nodes[node]
	k.mu.Unlock()
	if n == nil {
		return NodePool{}, false
	}
	return n.ipam.snapshot(), true
}

// snapshot is the pool as Kubelet.Pool shows it.
func (p *ipam) snapshot() NodePool {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.policy.clock.Now()
	np := NodePool{ENIID: p.eniID, Passes: p.passes}
	for _, a := range p.addrs() {
		np.Addresses = append(np.Addresses, PoolAddress{IP: a.String(), State: p.stateOf(a, now), Pod: p.owner[a], FreedAt: p.freed[a]})
	}
	for _, pfx := range p.prefixes {
		np.Prefixes = append(np.Prefixes, pfx.String())
	}
	return np
}
