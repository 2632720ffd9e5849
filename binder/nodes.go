package binder

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// The node room: every node a node pool (spec.nodeSelector) selects holds
// one of the pool's addresses on its primary private IP. Which node holds
// an address is written on the address itself, in EC2 tags only kube-eip
// writes (api.TagHolder "node", api.TagOwner the node's name), and so is
// the association the binder made (api.TagAssociation): a restarted or
// upgraded binder reads them back and every node keeps its address. A node
// is never given a finalizer: a Node deleted while the binder is down
// leaves an address tagged for a node that is gone, which the sweep
// returns to the pool.

// Events on nodes.
const (
	// EventNodeNoAddress: the node's pool has no address for it.
	EventNodeNoAddress = "EIPPoolExhausted"
	// EventNodePools: more than one node pool selects the node.
	EventNodePools = "EIPPoolOverlap"
)

// nodeRecheck is how often a node without an address looks again, beyond
// the wake-up a freed or new address of its pool gives it.
const nodeRecheck = 30 * time.Second

// errNoNodeAddress: the node's pool has nothing free and cannot grow.
var errNoNodeAddress = errors.New("no free address")

// nodeReconciler reconciles Nodes; the pod reconciler is the Binder itself.
type nodeReconciler struct{ *Binder }

// Reconcile gives a node its pool's address, or takes it back when the
// node is gone or no node pool selects it any more.
func (r nodeReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	b := r.Binder
	if err := b.waitReady(ctx); err != nil {
		return reconcile.Result{}, err
	}
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("node", req.Name))
	var all v1alpha1.EIPPoolList
	if err := b.Client.List(ctx, &all); err != nil {
		return reconcile.Result{}, fmt.Errorf("listing pools: %w", err)
	}
	held := b.nodeAddresses(req.Name)
	node := &corev1.Node{}
	if err := b.Client.Get(ctx, req.NamespacedName, node); apierrors.IsNotFound(err) {
		return reconcile.Result{}, b.freeNodeAddresses(ctx, req.Name, held, all.Items, "the node is gone")
	} else if err != nil {
		return reconcile.Result{}, err
	}
	selecting := nodePoolsOf(node, all.Items)
	switch len(selecting) {
	case 0:
		if err := b.freeNodeAddresses(ctx, node.Name, held, all.Items, "no node pool selects the node any more"); err != nil {
			return reconcile.Result{}, err
		}
		return reconcile.Result{}, b.unmarkNode(ctx, node)
	case 1:
	default:
		// Nothing new is done: which pool the node draws from is the
		// admin's to settle. What it holds it keeps.
		b.Recorder.Eventf(node, nil, corev1.EventTypeWarning, EventNodePools, "Select",
			"node pools %s all select the node; a node draws from one pool only, so it gets nothing new until the selectors change", pools.Names(selecting))
		return reconcile.Result{}, nil
	}
	pool := selecting[0]
	target, resolveErr := b.enis.primary(ctx, node)
	group := "" // the node's network border group; unknown until resolved
	if resolveErr == nil {
		group = b.zones.of(ctx, target.Zone)
	}
	var addr *Address
	var others []Address
	for _, a := range held {
		if addr == nil && pools.Selects(pool.Spec.TagSelector, a.Tags) && api.SameBorderGroup(a.BorderGroup, group) {
			addr = &a
		} else {
			others = append(others, a)
		}
	}
	// One address per node: another pool's, one of another border group,
	// or a second one a lost answer left, goes back.
	if err := b.freeNodeAddresses(ctx, node.Name, others, all.Items, "the node holds "+pool.Name+"'s address"); err != nil {
		return reconcile.Result{}, err
	}
	if resolveErr != nil {
		b.Recorder.Eventf(node, nil, corev1.EventTypeWarning, api.EventBindFailed, "Resolve", "%v", resolveErr)
		return reconcile.Result{}, resolveErr
	}
	if addr == nil {
		a, err := b.takeForNode(ctx, pool, node, all.Items, group)
		if errors.Is(err, errNoNodeAddress) {
			b.Recorder.Eventf(node, pool, corev1.EventTypeWarning, EventNodeNoAddress, "Take", "%s", noNodeAddress(pool, target.Zone, group))
			b.requestStatus()
			return reconcile.Result{RequeueAfter: nodeRecheck}, nil
		} else if err != nil {
			b.Recorder.Eventf(node, nil, corev1.EventTypeWarning, api.EventBindFailed, "Take", "%v", err)
			return reconcile.Result{}, err
		}
		addr = &a
	}
	associated := false
	if !addr.On(target) {
		if addr.Tags[api.TagTarget] != targetTag(target) {
			if err := b.tag(ctx, addr.AllocationID, map[string]string{api.TagTarget: targetTag(target)}); err != nil {
				return reconcile.Result{}, fmt.Errorf("recording where %s goes: %w", addr.PublicIP, err)
			}
			addr.Tags = maps.Clone(addr.Tags)
			addr.Tags[api.TagTarget] = targetTag(target)
		}
		if err := b.targetFree(ctx, *addr, target); err != nil {
			b.Recorder.Eventf(node, nil, corev1.EventTypeWarning, api.EventBindFailed, "Associate", "%v", err)
			return reconcile.Result{}, terminalIf(err)
		}
		a, err := b.associate(ctx, *addr, nil, target)
		if err != nil {
			if isTargetGone(err) {
				b.enis.forget(node)
			}
			b.Recorder.Eventf(node, nil, corev1.EventTypeWarning, api.EventBindFailed, "Associate", "%v", err)
			return reconcile.Result{}, terminalIf(err)
		}
		addr, associated = &a, true
	}
	if addr.Tags[api.TagAssociation] != addr.AssociationID {
		// Recorded after the association, so that a lost answer leaves an
		// address on its node's own IP, which the next pass records.
		if err := b.tag(ctx, addr.AllocationID, map[string]string{api.TagAssociation: addr.AssociationID}); err != nil {
			return reconcile.Result{}, fmt.Errorf("recording association %s of %s: %w", addr.AssociationID, addr.PublicIP, err)
		}
	}
	if err := b.markNode(ctx, node, pool, *addr); err != nil {
		return reconcile.Result{}, err
	}
	if associated {
		binds.WithLabelValues("node").Inc()
		b.Recorder.Eventf(node, pool, corev1.EventTypeNormal, api.EventAssociated, "Associate",
			"Associated %s (%s) of pool %s with %s %s", addr.PublicIP, addr.AllocationID, pool.Name, target.ENI, target.PrivateIP)
		b.requestStatus()
	}
	return reconcile.Result{}, nil
}

// nodePoolsOf lists the node pools (one address per node, not floating)
// whose nodeSelector selects node.
func nodePoolsOf(node *corev1.Node, all []v1alpha1.EIPPool) []*v1alpha1.EIPPool {
	var out []*v1alpha1.EIPPool
	for i := range all {
		p := &all[i]
		if p.Spec.NodeSelector == nil || p.Spec.Floating != nil {
			continue // not a pool of one address per node
		}
		sel, err := metav1.LabelSelectorAsSelector(p.Spec.NodeSelector)
		if err == nil && sel.Matches(labels.Set(node.Labels)) {
			out = append(out, p)
		}
	}
	return out
}

// nodeAddresses are the addresses tagged for the node, by allocation id.
func (b *Binder) nodeAddresses(name string) []Address {
	var out []Address
	for _, a := range b.inv.all() {
		if holderKind(a.Tags, b.Cluster) == api.HolderNode && a.Tags[api.TagOwner] == name {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(x, y Address) int { return strings.Compare(x.AllocationID, y.AllocationID) })
	return out
}

// noNodeAddress is the event of a node its pool has no address for.
func noNodeAddress(pool *v1alpha1.EIPPool, zone, group string) string {
	if group == "" {
		return fmt.Sprintf("pool %s has no free address for the node: every one of its addresses is held; "+
			"tag more Elastic IPs with the pool's tagSelector, or raise growth.maxAddresses", pool.Name)
	}
	return fmt.Sprintf("pool %s has no free address of network border group %s, the group of the node's zone %s "+
		"(an Elastic IP can only be associated within its group): tag more Elastic IPs of %s with the pool's tagSelector, "+
		"or raise growth.maxAddresses", pool.Name, group, zone, group)
}

// takeForNode gives the node a free address of its pool in its network
// border group, growing the pool if it may. One node of a pool takes at a
// time, so nodes that join at once never take the same address.
func (b *Binder) takeForNode(ctx context.Context, pool *v1alpha1.EIPPool, node *corev1.Node, all []v1alpha1.EIPPool, group string) (Address, error) {
	unlock := b.lockKey("pool/" + pool.Name)
	defer unlock()
	reserved, err := b.reservedByName(ctx)
	if err != nil {
		return Address{}, err
	}
	var free []Address
	total := int32(0)
	for _, a := range b.inv.all() {
		if len(pools.Of(a.Tags, all)) != 1 || !pools.Selects(pool.Spec.TagSelector, a.Tags) || ownedElsewhere(a.Tags, b.Cluster) {
			continue
		}
		total++
		// Held by a holder of any kind, reserved, or associated by anyone:
		// never taken.
		if holderKind(a.Tags, b.Cluster) == "" && a.Tags[api.TagHolder] == "" && a.AssociationID == "" && reserved[a.AllocationID] == nil &&
			api.SameBorderGroup(a.BorderGroup, group) {
			free = append(free, a)
		}
	}
	var a Address
	if len(free) > 0 {
		slices.SortFunc(free, func(x, y Address) int { return strings.Compare(x.PublicIP, y.PublicIP) })
		a = free[0]
	} else {
		g := pool.Spec.Growth
		if g == nil || total >= g.MaxAddresses {
			return Address{}, errNoNodeAddress
		}
		grown, ok, err := b.growOne(ctx, pool, group, fmt.Sprintf("for node %s", node.Name))
		if err != nil {
			return Address{}, err
		}
		if !ok {
			return Address{}, errNoNodeAddress
		}
		a = grown
	}
	holder := map[string]string{api.TagCluster: b.Cluster, api.TagHolder: api.HolderNode, api.TagOwner: node.Name}
	if err := b.tag(ctx, a.AllocationID, holder); err != nil {
		return Address{}, fmt.Errorf("tagging %s (%s) for node %s: %w", a.PublicIP, a.AllocationID, node.Name, err)
	}
	a.Tags = maps.Clone(a.Tags)
	maps.Copy(a.Tags, holder)
	return a, nil
}

// tag writes tags on an address, and into the inventory, always with the
// cluster's tag (the IAM policy lets the binder tag only with it). A
// failure that may have applied is written into the inventory too: the
// address is not handed to anyone else, and the next sweep reads what EC2
// really has.
func (b *Binder) tag(ctx context.Context, allocID string, tags map[string]string) error {
	tags = maps.Clone(tags)
	tags[api.TagCluster] = b.Cluster
	_, err := b.EC2.CreateTags(ctx, &ec2.CreateTagsInput{Resources: []string{allocID}, Tags: ec2Tags(tags)})
	if err == nil || mayHaveApplied(err) {
		b.inv.update(allocID, func(a *Address) {
			if a.Tags == nil {
				a.Tags = map[string]string{}
			}
			maps.Copy(a.Tags, tags)
		})
	}
	return err
}

// targetFree refuses a node's primary IP that another Elastic IP sits on:
// associating there would silently displace it (EC2 does, whatever
// AllowReassociation says), and what is there is not kube-eip's to move.
func (b *Binder) targetFree(ctx context.Context, addr Address, target Target) error {
	found, err := b.EC2.DescribeAddresses(ctx, &ec2.DescribeAddressesInput{Filters: []types.Filter{
		{Name: aws.String("network-interface-id"), Values: []string{target.ENI}},
		{Name: aws.String("private-ip-address"), Values: []string{target.PrivateIP}},
	}})
	if err != nil {
		return fmt.Errorf("reading what is associated with %s %s: %w", target.ENI, target.PrivateIP, err)
	}
	for _, x := range found.Addresses {
		if other := addressFromEC2(x); other.AllocationID != addr.AllocationID {
			return fmt.Errorf("%s %s already has Elastic IP %s (%s); it is not displaced, and the node gets %s only once it is gone: %w",
				target.ENI, target.PrivateIP, other.PublicIP, other.AllocationID, addr.PublicIP, errTerminal)
		}
	}
	return nil
}

// markNode labels the node with its address, records the allocation, and
// removes the pool's startup taint, now that the association is made.
func (b *Binder) markNode(ctx context.Context, node *corev1.Node, pool *v1alpha1.EIPPool, addr Address) error {
	taint := pool.Spec.StartupTaint
	tainted := taint != "" && slices.ContainsFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == taint })
	if node.Labels[api.LabelPublicIP] == addr.PublicIP && node.Annotations[api.AnnotationAllocationID] == addr.AllocationID && !tainted {
		return nil
	}
	base := node.DeepCopy()
	if node.Labels == nil {
		node.Labels = map[string]string{}
	}
	if node.Annotations == nil {
		node.Annotations = map[string]string{}
	}
	node.Labels[api.LabelPublicIP] = addr.PublicIP
	node.Annotations[api.AnnotationAllocationID] = addr.AllocationID
	node.Spec.Taints = slices.DeleteFunc(node.Spec.Taints, func(t corev1.Taint) bool { return t.Key == taint })
	if err := b.Client.Patch(ctx, node, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		return fmt.Errorf("labelling node %s with %s: %w", node.Name, addr.PublicIP, err)
	}
	if tainted {
		b.Recorder.Eventf(node, pool, corev1.EventTypeNormal, "EIPTaintRemoved", "Untaint", "Removed taint %s: %s is associated with the node", taint, addr.PublicIP)
	}
	return nil
}

// unmarkNode removes what markNode wrote, from a node no pool serves.
func (b *Binder) unmarkNode(ctx context.Context, node *corev1.Node) error {
	_, labelled := node.Labels[api.LabelPublicIP]
	_, annotated := node.Annotations[api.AnnotationAllocationID]
	if !labelled && !annotated {
		return nil
	}
	base := node.DeepCopy()
	delete(node.Labels, api.LabelPublicIP)
	delete(node.Annotations, api.AnnotationAllocationID)
	if err := b.Client.Patch(ctx, node, client.MergeFrom(base)); err != nil {
		return fmt.Errorf("unlabelling node %s: %w", node.Name, client.IgnoreNotFound(err))
	}
	return nil
}

// freeNodeAddresses takes addresses back from a node: off the node first
// if kube-eip's association is still there, then back to the pool (its
// holder tags removed), or to AWS under a Release policy.
func (b *Binder) freeNodeAddresses(ctx context.Context, name string, addrs []Address, all []v1alpha1.EIPPool, why string) error {
	for _, a := range addrs {
		a, err := b.takeOff(ctx, a)
		if err != nil {
			return err
		}
		owners := pools.Of(a.Tags, all)
		var pool *v1alpha1.EIPPool
		if len(owners) == 1 {
			pool = owners[0]
		}
		if pool != nil && pool.Spec.ReleasePolicy == v1alpha1.ReleasePolicyRelease {
			released, err := b.releasePoolAddress(ctx, pool, a)
			if err != nil {
				return err
			}
			if released {
				releases.WithLabelValues("released").Inc()
				b.Recorder.Eventf(pool, nil, corev1.EventTypeNormal, api.EventReleased, "Release", "Released %s (%s) of node %s to AWS (%s)", a.PublicIP, a.AllocationID, name, why)
				b.wakeNodes(pool)
				continue
			}
		}
		if err := b.untagHolder(ctx, a); err != nil {
			return fmt.Errorf("returning %s (%s) of node %s to its pool: %w", a.PublicIP, a.AllocationID, name, err)
		}
		releases.WithLabelValues("returned").Inc()
		log.FromContext(ctx).Info("returned a node's address to its pool", "node", name, "publicIP", a.PublicIP, "allocationID", a.AllocationID, "why", why)
		if pool != nil {
			b.Recorder.Eventf(pool, nil, corev1.EventTypeNormal, api.EventReleased, "Release", "Returned %s (%s) of node %s to the pool (%s)", a.PublicIP, a.AllocationID, name, why)
			b.wakeNodes(pool)
		}
	}
	if len(addrs) > 0 {
		b.requestStatus()
	}
	return nil
}

// takeOff disassociates a node's or floating address from its holder if
// the association is kube-eip's, and returns it as it is now.
func (b *Binder) takeOff(ctx context.Context, a Address) (Address, error) {
	if !ourAssociation(a, nil, b.Cluster) {
		return a, nil
	}
	if err := b.disassociate(ctx, a); err != nil {
		return a, err
	}
	a.AssociationID, a.ENI, a.PrivateIP = "", "", ""
	return a, nil
}

// holderTags are the tags that make a pool's address a node's or a
// floating group's; without them it is free in its pool.
var holderTags = []string{api.TagHolder, api.TagOwner, api.TagAssociation, api.TagNode, api.TagTarget}

// untagHolder returns a pool's address to its pool: its holder tags go.
// The holder and owner are deleted only with the values they have, so
// that nothing written for another holder meanwhile is lost.
func (b *Binder) untagHolder(ctx context.Context, a Address) error {
	tags := make([]types.Tag, 0, len(holderTags))
	for _, k := range holderTags {
		t := types.Tag{Key: aws.String(k)}
		if v, ok := a.Tags[k]; ok && (k == api.TagHolder || k == api.TagOwner) {
			t.Value = aws.String(v)
		}
		tags = append(tags, t)
	}
	if _, err := b.EC2.DeleteTags(ctx, &ec2.DeleteTagsInput{Resources: []string{a.AllocationID}, Tags: tags}); err != nil && !cloud.IsNotFound(err) {
		return err
	}
	b.inv.update(a.AllocationID, func(x *Address) {
		for _, k := range holderTags {
			delete(x.Tags, k)
		}
	})
	return nil
}

// wakeNodes requeues the nodes a pool selects that hold none of its
// addresses: one was freed.
func (b *Binder) wakeNodes(pool *v1alpha1.EIPPool) {
	for _, n := range b.waitingNodes(context.Background(), pool) {
		b.enqueueNode(n)
	}
}

// waitingNodes lists the nodes a node pool alone selects that hold no
// address, by name.
func (b *Binder) waitingNodes(ctx context.Context, pool *v1alpha1.EIPPool) []*corev1.Node {
	if pool.Spec.NodeSelector == nil || pool.Spec.Floating != nil {
		return nil
	}
	nodes, err := b.groupNodes(ctx, pool)
	if err != nil {
		return nil
	}
	holding := map[string]bool{}
	for _, a := range b.inv.all() {
		if holderKind(a.Tags, b.Cluster) == api.HolderNode && pools.Selects(pool.Spec.TagSelector, a.Tags) {
			holding[a.Tags[api.TagOwner]] = true
		}
	}
	return slices.DeleteFunc(nodes, func(n *corev1.Node) bool { return holding[n.Name] || n.DeletionTimestamp != nil })
}

func (b *Binder) enqueueNode(n *corev1.Node) {
	select {
	case b.nodeRequeue <- event.GenericEvent{Object: n}:
	default: // full: the next sweep finds it again
	}
}

// sweepNodeAddress decides about an address tagged for a node: returned to
// the pool once the node has been gone for the grace period, and given
// back to a node whose association drifted.
func (b *Binder) sweepNodeAddress(ctx context.Context, a Address, nodes map[string]*corev1.Node, all []v1alpha1.EIPPool) error {
	node := nodes[a.Tags[api.TagOwner]]
	if node == nil {
		if b.orphanAge(a.AllocationID) < b.OrphanGrace {
			return nil
		}
		b.clearOrphan(a.AllocationID)
		sweepOrphans.WithLabelValues("node_address_returned").Inc()
		return b.freeNodeAddresses(ctx, a.Tags[api.TagOwner], []Address{a}, all, "the node is gone")
	}
	b.clearOrphan(a.AllocationID)
	if a.AssociationID == "" || a.Tags[api.TagAssociation] != a.AssociationID || node.Labels[api.LabelPublicIP] != a.PublicIP {
		sweepOrphans.WithLabelValues("node_association_restored").Inc()
		b.enqueueNode(node)
	}
	return nil
}
