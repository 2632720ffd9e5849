package binder

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// The floating room: each address of a floating pool (spec.floating) is
// kept on one healthy node of those the pool selects. The address's tags
// record which node the binder put it on (api.TagNode) and the association
// it made (api.TagAssociation); the binder moves an address only away from
// that recorded association, with one AssociateAddress that allows
// reassociation, after reading the address afresh from EC2. Never moving
// without a healthy node to move to, and never back to a node for
// preference, keeps a flapping node from bouncing the address; one leader
// (the binder's leader election) makes every decision.

// Events of floating addresses.
const (
	EventFloatingMoved = "EIPFloatingMoved"
	EventFloatingLost  = "EIPFloatingLeft"
	EventNoHealthyNode = "EIPNoHealthyNode"
)

// defaultLeaseSeconds is the kubelet's Lease duration when a Lease has
// none: it renews every quarter of it.
const defaultLeaseSeconds = 40

// floatingReconciler reconciles floating pools, by pool name.
type floatingReconciler struct{ *Binder }

// health is what the binder concludes of a node of a floating group.
type health struct {
	ok bool
	// why says what is wrong, for events.
	why string
	// lastRenew is the Lease's last renewal; deadline is when the node
	// counts as failed without another.
	lastRenew, deadline time.Time
	leaseLapsed         bool
}

// nodeHealth judges a node: healthy is Ready, schedulable, not being
// deleted, and renewing its Lease.
func nodeHealth(node *corev1.Node, lease *coordinationv1.Lease, missed int32, now time.Time) health {
	var h health
	if lease != nil && lease.Spec.RenewTime != nil {
		seconds := int32(defaultLeaseSeconds)
		if d := lease.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
			seconds = *d
		}
		renew := time.Duration(seconds) * time.Second / 4
		h.lastRenew = lease.Spec.RenewTime.Time
		h.deadline = h.lastRenew.Add(time.Duration(missed) * renew)
	}
	switch {
	case node == nil:
		h.why = "the node is gone"
	case node.DeletionTimestamp != nil:
		h.why = "the node is being deleted"
	case node.Spec.Unschedulable:
		h.why = "the node is cordoned"
	case slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool {
		return t.Key == "ToBeDeletedByClusterAutoscaler" || t.Key == corev1.TaintNodeUnreachable || t.Key == corev1.TaintNodeOutOfService
	}):
		h.why = "the node is tainted for removal"
	case !nodeReady(node):
		h.why = "the node is not Ready"
	case h.lastRenew.IsZero():
		h.why = "the node has no Lease"
	case !now.Before(h.deadline):
		h.why = fmt.Sprintf("the node's Lease was last renewed %s ago", now.Sub(h.lastRenew).Round(100*time.Millisecond))
		h.leaseLapsed = true
	default:
		h.ok = true
	}
	return h
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// Reconcile keeps each address of a floating pool on a healthy node, and
// comes back when the holder's Lease would lapse.
func (r floatingReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	b := r.Binder
	if err := b.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("pool", req.Name))
	pool := &v1alpha1.EIPPool{}
	if err := b.Client.Get(ctx, req.NamespacedName, pool); apierrors.IsNotFound(err) {
		pool = nil
	} else if err != nil {
		return reconcile.Result{}, err
	}
	var all v1alpha1.EIPPoolList
	if err := b.Client.List(ctx, &all); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing pools: %w", err)
	}
	if pool == nil || pool.Spec.Floating == nil {
		// Gone, or never floating: what floats for it comes back.
		return reconcile.Result{}, b.returnFloating(ctx, req.Name, all.Items)
	}
	nodes, err := b.groupNodes(ctx, pool)
	if err != nil {
		return reconcile.Result{}, err
	}
	now := b.Now()
	healths := map[string]health{}
	for _, n := range nodes {
		lease := &coordinationv1.Lease{}
		if err := b.Client.Get(ctx, client.ObjectKey{Namespace: corev1.NamespaceNodeLease, Name: n.Name}, lease); err != nil {
			if !apierrors.IsNotFound(err) {
				return reconcile.Result{}, err
			}
			lease = nil
		}
		healths[n.Name] = nodeHealth(n, lease, max(pool.Spec.Floating.MissedRenewals, 1), now)
	}
	byName := map[string]*corev1.Node{}
	for _, n := range nodes {
		byName[n.Name] = n
	}

	var addrs []Address
	for _, a := range b.inv.all() {
		if owners := pools.Of(a.Tags, all.Items); len(owners) == 1 && owners[0].Name == pool.Name && !ownedElsewhere(a.Tags, b.Cluster) {
			addrs = append(addrs, a)
		}
	}
	slices.SortFunc(addrs, func(x, y Address) int { return strings.Compare(x.PublicIP, y.PublicIP) })
	load := map[string]int{}
	for _, a := range addrs {
		if held := floatingHolder(a, pool, b.Cluster); held != "" && healths[held].ok {
			load[held]++
		}
	}

	var next time.Time
	var firstErr error
	for _, a := range addrs {
		held := floatingHolder(a, pool, b.Cluster)
		h, known := healths[held]
		if held != "" && h.ok {
			on, err := b.onRecordedNode(ctx, a, byName[held])
			if err != nil {
				firstErr = cmp.Or(firstErr, err)
				continue
			}
			if on {
				if next.IsZero() || h.deadline.Before(next) {
					next = h.deadline
				}
				continue
			}
		}
		if !known && held != "" {
			h = health{why: "the node is gone, or no longer in the pool's group"}
		}
		placed, err := b.placeFloating(ctx, pool, a, held, h, byName, healths, load)
		if err != nil {
			firstErr = cmp.Or(firstErr, err)
		}
		if d := healths[placed].deadline; placed != "" && (next.IsZero() || d.Before(next)) {
			next = d
		}
	}
	if firstErr != nil {
		return reconcile.Result{}, firstErr
	}
	if next.IsZero() {
		return reconcile.Result{RequeueAfter: nodeRecheck}, nil
	}
	// Back just after the holder's Lease would lapse.
	return reconcile.Result{RequeueAfter: max(next.Sub(now)+50*time.Millisecond, 50*time.Millisecond)}, nil
}

// onRecordedNode reports whether a floating address is where the binder
// recorded it: on its node's primary IP, with the recorded association. An
// association on that IP that a lost answer left unrecorded is recorded
// now.
func (b *Binder) onRecordedNode(ctx context.Context, a Address, node *corev1.Node) (bool, error) {
	if a.AssociationID == "" {
		return false, nil
	}
	target, err := b.enis.primary(ctx, node)
	if err != nil || !a.On(target) {
		return false, err
	}
	if a.Tags[api.TagAssociation] != a.AssociationID {
		if err := b.tag(ctx, a.AllocationID, map[string]string{api.TagAssociation: a.AssociationID}); err != nil {
			return false, fmt.Errorf("recording association %s of %s: %w", a.AssociationID, a.PublicIP, err)
		}
	}
	return true, nil
}

// floatingHolder is the node the binder recorded a floating address on,
// or "".
func floatingHolder(a Address, pool *v1alpha1.EIPPool, cluster string) string {
	if holderKind(a.Tags, cluster) != api.HolderFloating || a.Tags[api.TagOwner] != pool.Name {
		return ""
	}
	return a.Tags[api.TagNode]
}

// groupNodes lists the nodes a node pool's nodeSelector selects, by name.
func (b *Binder) groupNodes(ctx context.Context, pool *v1alpha1.EIPPool) ([]*corev1.Node, error) {
	sel, err := metav1.LabelSelectorAsSelector(pool.Spec.NodeSelector)
	if err != nil {
		return nil, fmt.Errorf("the nodeSelector of pool %s: %w", pool.Name, err)
	}
	var list corev1.NodeList
	if err := b.Client.List(ctx, &list, client.MatchingLabelsSelector{Selector: sel}); err != nil {
		return nil, fmt.Errorf("listing the nodes of pool %s: %w", pool.Name, err)
	}
	out := make([]*corev1.Node, len(list.Items))
	for i := range list.Items {
		out[i] = &list.Items[i]
	}
	slices.SortFunc(out, func(x, y *corev1.Node) int { return strings.Compare(x.Name, y.Name) })
	return out, nil
}

// placeFloating puts a floating address on the healthy node that holds
// fewest of the pool's: its first placement, or a move away from held,
// the failed holder the binder recorded. It returns the node it placed the
// address on, if any.
func (b *Binder) placeFloating(ctx context.Context, pool *v1alpha1.EIPPool, a Address, held string, h health,
	nodes map[string]*corev1.Node, healths map[string]health, load map[string]int) (string, error) {
	if a.AssociationID != "" && !ourAssociation(a, nil, b.Cluster) {
		b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, api.EventBindFailed, "Float",
			"%s (%s) is associated with %s %s outside kube-eip; it is not taken", a.PublicIP, a.AllocationID, a.ENI, a.PrivateIP)
		return "", nil
	}
	var candidates []string
	for name, ch := range healths {
		if ch.ok && name != held {
			candidates = append(candidates, name)
		}
	}
	slices.SortFunc(candidates, func(x, y string) int {
		if load[x] != load[y] {
			return load[x] - load[y]
		}
		return strings.Compare(x, y)
	})
	var otherGroup []string
	for _, name := range candidates {
		node := nodes[name]
		target, err := b.enis.primary(ctx, node)
		if err != nil {
			log.FromContext(ctx).Info("a floating address cannot go to a node", "node", name, "err", err.Error())
			continue
		}
		if !api.SameBorderGroup(a.BorderGroup, b.zones.of(ctx, target.Zone)) {
			// EC2 cannot associate it there.
			otherGroup = append(otherGroup, name)
			continue
		}
		if err := b.targetFree(ctx, a, target); err != nil {
			b.Recorder.Eventf(node, pool, corev1.EventTypeWarning, api.EventBindFailed, "Float", "%v", err)
			continue
		}
		moved, err := b.moveFloating(ctx, pool, a, node, target)
		if errors.Is(err, errTerminal) {
			b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, api.EventBindFailed, "Float", "%v", err)
			return "", nil
		} else if err != nil {
			return "", err
		}
		load[name]++
		b.floated(pool, a, moved, nodes[held], held, h, node, target)
		return name, nil
	}
	if len(otherGroup) > 0 {
		b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, api.EventWrongBorderGroup, "Float",
			"%s belongs to network border group %s, and healthy nodes %s are in zones of another group, where EC2 cannot associate it",
			a.PublicIP, a.BorderGroup, strings.Join(otherGroup, ", "))
	}
	if held != "" && h.why != "" {
		b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, EventNoHealthyNode, "Float",
			"%s stays on node %s (%s): no other node of the pool's group is healthy", a.PublicIP, held, h.why)
	} else if held == "" {
		b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, EventNoHealthyNode, "Float",
			"%s waits: no node the pool selects is healthy (Ready, schedulable and renewing its Lease)", a.PublicIP)
	}
	return "", nil
}

// moveFloating associates a with target in one call. Moving from a
// holder needs reassociation allowed, and that only for the association
// the binder recorded, as EC2 shows it now.
func (b *Binder) moveFloating(ctx context.Context, pool *v1alpha1.EIPPool, a Address, node *corev1.Node, target Target) (Address, error) {
	reassociate := false
	if a.AssociationID != "" {
		fresh, err := b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{a.AllocationID}})
		if err != nil {
			return a, fmt.Errorf("reading %s before moving it: %w", a.PublicIP, err)
		}
		if len(fresh) == 0 {
			return a, fmt.Errorf("floating address %s (%s) no longer exists in EC2: %w", a.PublicIP, a.AllocationID, errTerminal)
		}
		a = fresh[0]
		if a.AssociationID != "" && !ourAssociation(a, nil, b.Cluster) {
			return a, fmt.Errorf("%s (%s) is associated with %s %s outside kube-eip; it is not moved: %w", a.PublicIP, a.AllocationID, a.ENI, a.PrivateIP, errTerminal)
		}
		reassociate = a.AssociationID != ""
	}
	if err := b.tag(ctx, a.AllocationID, map[string]string{api.TagHolder: api.HolderFloating, api.TagOwner: pool.Name, api.TagNode: node.Name, api.TagTarget: targetTag(target)}); err != nil {
		return a, fmt.Errorf("tagging %s for node %s: %w", a.PublicIP, node.Name, err)
	}
	a, err := b.associateCall(ctx, a, target, reassociate)
	if err != nil {
		if isTargetGone(err) {
			b.enis.forget(node)
		}
		return a, fmt.Errorf("moving %s to node %s: %w", a.PublicIP, node.Name, err)
	}
	if err := b.tag(ctx, a.AllocationID, map[string]string{api.TagAssociation: a.AssociationID}); err != nil {
		return a, fmt.Errorf("recording association %s of %s: %w", a.AssociationID, a.PublicIP, err)
	}
	a, _ = b.inv.get(a.AllocationID)
	return a, nil
}

// floated tells of a placement: events on both nodes and on the pool, and
// for a move the failover's metrics.
func (b *Binder) floated(pool *v1alpha1.EIPPool, before, a Address, fromNode *corev1.Node, from string, h health, to *corev1.Node, target Target) {
	b.requestStatus()
	b.Recorder.Eventf(to, pool, corev1.EventTypeNormal, api.EventAssociated, "Float",
		"Floating address %s (%s) of pool %s is on this node (%s %s)", a.PublicIP, a.AllocationID, pool.Name, target.ENI, target.PrivateIP)
	if from == "" {
		b.Recorder.Eventf(pool, nil, corev1.EventTypeNormal, EventFloatingMoved, "Float", "%s placed on node %s", a.PublicIP, to.Name)
		return
	}
	reason := "other"
	switch {
	case h.leaseLapsed:
		reason = "lease"
	case strings.Contains(h.why, "cordoned"):
		reason = "cordoned"
	case strings.Contains(h.why, "gone"), strings.Contains(h.why, "deleted"), strings.Contains(h.why, "removal"):
		reason = "removed"
	case strings.Contains(h.why, "Ready"):
		reason = "not_ready"
	}
	failovers.WithLabelValues(reason).Inc()
	if !h.lastRenew.IsZero() {
		failoverDuration.Observe(b.Now().Sub(h.lastRenew).Seconds())
	}
	msg := fmt.Sprintf("%s moved from node %s to node %s: %s", a.PublicIP, from, to.Name, h.why)
	b.Recorder.Eventf(pool, nil, corev1.EventTypeNormal, EventFloatingMoved, "Float", "%s", msg)
	if fromNode == nil {
		fromNode = &corev1.Node{}
		fromNode.Name = from
	}
	b.Recorder.Eventf(fromNode, pool, corev1.EventTypeWarning, EventFloatingLost, "Float", "%s", msg)
	log.Log.WithName("floating").Info("moved", "pool", pool.Name, "publicIP", a.PublicIP, "from", from, "to", to.Name, "why", h.why, "previousAssociation", before.AssociationID)
}

// returnFloating returns the floating addresses of a pool that is gone or
// no longer floats: off their node, and back in their pool.
func (b *Binder) returnFloating(ctx context.Context, name string, all []v1alpha1.EIPPool) error {
	for _, a := range b.inv.all() {
		if holderKind(a.Tags, b.Cluster) != api.HolderFloating || a.Tags[api.TagOwner] != name {
			continue
		}
		a, err := b.takeOff(ctx, a)
		if err != nil {
			return err
		}
		if err := b.untagHolder(ctx, a); err != nil {
			return fmt.Errorf("returning floating address %s (%s) of pool %s: %w", a.PublicIP, a.AllocationID, name, err)
		}
		b.requestStatus()
	}
	return nil
}
