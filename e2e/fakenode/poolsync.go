package fakenode

import (
	"context"
	"fmt"
	"time"
)

// poolResync bounds how long a node's warm pool goes unexamined while one of
// its addresses cools, whatever the pool's clock says: a test stepping a
// fake clock sees the pool follow within it.
const poolResync = time.Second

// syncPool is one pass of a node's warm pool (see ipam.tend). It runs at
// start, after each allocation and release, and again while an address
// cools, since a cooldown ends without any event; the queue runs it, so
// Stop ends it with the rest.
func (k *Kubelet) syncPool(ctx context.Context, name string) (time.Duration, error) {
	k.mu.Lock()
	n := k.nodes[name]
	k.mu.Unlock()
	if n == nil {
		return 0, nil
	}
	ch, err := n.ipam.tend(ctx)
	if len(ch.assigned) > 0 {
		k.log.V(2).Info("topped up the warm pool", "node", name, "eni", n.inst.ENIID, "assigned", ch.assigned)
	}
	if len(ch.unassigned) > 0 {
		k.log.V(2).Info("gave back addresses beyond the warm pool's targets", "node", name, "eni", n.inst.ENIID, "unassigned", ch.unassigned)
	}
	if err != nil {
		return 0, fmt.Errorf("tending the warm pool of node %s: %w", name, err)
	}
	if ch.next > 0 {
		return max(min(ch.next, poolResync), time.Millisecond), nil
	}
	return 0, nil
}

// tendPool has a node's warm pool looked at soon; with addresses released
// immediately there is none.
func (k *Kubelet) tendPool(node string) {
	if !k.cni.releaseImmediately {
		k.queue.Add(queueKey{kind: poolKey, name: node})
	}
}
