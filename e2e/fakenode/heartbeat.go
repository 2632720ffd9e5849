package fakenode

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

// leaseSeconds is the duration the kubelet puts on its Lease: it renews
// every quarter of it, so four times the renewal interval (40 s for the
// default 10 s).
func (k *Kubelet) leaseSeconds() int32 {
	secs := min(max(1, (4*k.opts.LeaseInterval+time.Second-1)/time.Second), 3600)
	return int32(secs)
}

// StopHeartbeats stops a node's Lease renewals and status posts, as a node
// that lost power or its network would; the node object stays, and its
// instance runs.
func (k *Kubelet) StopHeartbeats(name string) error {
	_, err := k.setSilent(name, true)
	return err
}

// StopInstance stops a node's EC2 instance, as a shutdown from inside it
// or an instance stop in the console would: the node goes silent (no Lease
// renewal, no status) and its instance shows stopped, keeping its network
// interfaces and the Elastic IPs on them. The Node object stays.
func (k *Kubelet) StopInstance(ctx context.Context, name string) error {
	n, err := k.setSilent(name, true)
	if err != nil {
		return err
	}
	if _, err := k.ec2.StopInstances(ctx, &ec2.StopInstancesInput{InstanceIds: []string{n.inst.ID}}); err != nil {
		return fmt.Errorf("stopping instance %s of node %s: %w", n.inst.ID, name, err)
	}
	return nil
}

// ResumeHeartbeats starts a node's heartbeats again.
func (k *Kubelet) ResumeHeartbeats(name string) error {
	if _, err := k.setSilent(name, false); err != nil {
		return err
	}
	k.queue.Add(queueKey{kind: nodeKey, name: name})
	return nil
}

func (k *Kubelet) setSilent(name string, v bool) (*node, error) {
	k.mu.Lock()
	n := k.nodes[name]
	k.mu.Unlock()
	if n == nil {
		return nil, fmt.Errorf("no node %s in group %s", name, k.opts.Group)
	}
	n.silent.Store(v)
	return n, nil
}

// syncNode keeps a node alive: it renews the node's Lease, which the node
// lifecycle controller watches, and refreshes the Ready heartbeat; a node
// whose object was deleted has its instance terminated instead.
func (k *Kubelet) syncNode(ctx context.Context, name string) (time.Duration, error) {
	k.mu.Lock()
	n := k.nodes[name]
	k.mu.Unlock()
	if n == nil {
		return 0, nil
	}
	obj, err := k.nodeLister.Get(name)
	switch {
	case apierrors.IsNotFound(err) || (err == nil && obj.UID != n.uid):
		return 0, k.removeNode(ctx, n)
	case err != nil:
		return 0, fmt.Errorf("reading node %s: %w", name, err)
	}
	now := time.Now()
	if n.silent.Load() {
		// Only a deletion is still noticed.
		return k.opts.LeaseInterval, nil
	}
	if now.Sub(n.leaseRenewed) >= k.opts.LeaseInterval {
		if err := k.renewLease(ctx, n, now); err != nil {
			return 0, err
		}
	}
	if now.Sub(n.statusPosted) >= k.opts.StatusInterval || !nodeReady(obj) {
		if err := k.postNodeStatus(ctx, obj, now); err != nil {
			return 0, err
		}
		n.statusPosted = now
	}
	next := min(time.Until(n.leaseRenewed.Add(k.opts.LeaseInterval)), time.Until(n.statusPosted.Add(k.opts.StatusInterval)))
	return max(next, time.Millisecond), nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func (k *Kubelet) renewLease(ctx context.Context, n *node, now time.Time) error {
	leases := k.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	if n.lease == nil {
		l, err := leases.Get(ctx, n.name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			l, err = leases.Create(ctx, k.newLease(n, now), metav1.CreateOptions{})
			if err != nil {
				return fmt.Errorf("creating the lease of node %s: %w", n.name, err)
			}
			n.lease, n.leaseRenewed = l, now
			return nil
		case err != nil:
			return fmt.Errorf("reading the lease of node %s: %w", n.name, err)
		}
		n.lease = l
	}
	l := n.lease.DeepCopy()
	l.Spec.HolderIdentity = ptr.To(n.name)
	l.Spec.LeaseDurationSeconds = ptr.To(k.leaseSeconds())
	l.Spec.RenewTime = &metav1.MicroTime{Time: now}
	updated, err := leases.Update(ctx, l, metav1.UpdateOptions{})
	if err != nil {
		// Read it afresh next time: it changed or vanished under us.
		n.lease = nil
		return fmt.Errorf("renewing the lease of node %s: %w", n.name, err)
	}
	n.lease, n.leaseRenewed = updated, now
	return nil
}

func (k *Kubelet) newLease(n *node, now time.Time) *coordinationv1.Lease {
	return &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{
			Name:      n.name,
			Namespace: corev1.NamespaceNodeLease,
			// The garbage collector removes the lease with the node.
			OwnerReferences: []metav1.OwnerReference{{APIVersion: "v1", Kind: "Node", Name: n.name, UID: n.uid}},
		},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To(n.name),
			LeaseDurationSeconds: ptr.To(k.leaseSeconds()),
			RenewTime:            &metav1.MicroTime{Time: now},
		},
	}
}

// postNodeStatus refreshes the conditions' heartbeats with a strategic
// merge patch, which leaves every other status field alone.
func (k *Kubelet) postNodeStatus(ctx context.Context, obj *corev1.Node, now time.Time) error {
	patch, err := json.Marshal(map[string]any{
		"status": map[string]any{
			"conditions": nodeConditions(obj.Status.Conditions, metav1.NewTime(now.Truncate(time.Second))),
		},
	})
	if err != nil {
		return fmt.Errorf("encoding the status of node %s: %w", obj.Name, err)
	}
	_, err = k.client.CoreV1().Nodes().Patch(ctx, obj.Name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil // deleted: the node informer brings the news
	}
	if err != nil {
		return fmt.Errorf("posting the status of node %s: %w", obj.Name, err)
	}
	return nil
}

// removeNode ends a node whose object was deleted: its instance is
// terminated (taking the ENI and its addresses along) and its pods are no
// longer handled.
func (k *Kubelet) removeNode(ctx context.Context, n *node) error {
	if err := k.terminate(ctx, n.inst.ID); err != nil && !isNotFound(err) {
		return err
	}
	k.mu.Lock()
	delete(k.nodes, n.name)
	var orphans []*podState
	for key, st := range k.state {
		if st.node == n.name {
			orphans = append(orphans, st)
			delete(k.state, key)
		}
	}
	k.mu.Unlock()
	for _, st := range orphans {
		st.mu.Lock()
		st.finish(0)
		st.mu.Unlock()
	}
	k.log.Info("node deleted, instance terminated", "node", n.name, "instance", n.inst.ID, "pods", len(orphans))
	return nil
}
