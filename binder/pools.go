package binder

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	"github.com/aws/aws-sdk-go-v2/service/ec2/types"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ktypes "k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// statusRefresh rewrites an unchanged pool status this often, so that
// lastSyncTime shows the binder is alive.
const statusRefresh = 5 * time.Minute

// syncPool writes a pool's status from the sweep's view of EC2 (the
// webhook reserves from it) and grows the pool if it is configured to.
// addrs is the inventory as the sweep left it; syncPool reports whether it
// allocated, which makes addrs stale.
func (b *Binder) syncPool(ctx context.Context, pool *v1alpha1.EIPPool, all []v1alpha1.EIPPool, addrs []Address, reserved map[string]*v1alpha1.EIPReservation) (bool, error) {
	st, overlaps := poolStatus(pool, all, addrs, b.Cluster, reserved)
	grown, growErr := b.grow(ctx, pool, st)
	if grown > 0 {
		// The webhook reserves from the status: show the new ones now.
		st, overlaps = poolStatus(pool, all, b.inv.all(), b.Cluster, reserved)
	}
	now := metav1.NewTime(b.Now())
	old := pool.Status
	st.ObservedGeneration = pool.Generation
	st.Conditions = slices.Clone(old.Conditions)
	meta.SetStatusCondition(&st.Conditions, metav1.Condition{
		Type: v1alpha1.PoolConditionReady, Status: metav1.ConditionTrue, Reason: "Synced",
		Message: fmt.Sprintf("%d addresses match the tag selector", st.Total), ObservedGeneration: pool.Generation,
	})
	exhausted := metav1.Condition{Type: v1alpha1.PoolConditionExhausted, Status: metav1.ConditionFalse, Reason: "FreeAddresses",
		Message: fmt.Sprintf("%d of %d addresses are free", st.Free, st.Total), ObservedGeneration: pool.Generation}
	if st.Free == 0 {
		exhausted.Status, exhausted.Reason = metav1.ConditionTrue, "NoFreeAddress"
		exhausted.Message = "every address of the pool is reserved or in use; tag more Elastic IPs with the pool's selector, or configure growth"
	}
	if waiting := b.waitingNodes(ctx, pool); len(waiting) > 0 {
		names := make([]string, 0, len(waiting))
		for _, n := range waiting[:min(len(waiting), 10)] {
			names = append(names, n.Name)
		}
		if len(waiting) > len(names) {
			names = append(names, fmt.Sprintf("and %d more", len(waiting)-len(names)))
		}
		exhausted.Status, exhausted.Reason = metav1.ConditionTrue, "NodesWithoutAddress"
		exhausted.Message = fmt.Sprintf("%d nodes the pool selects have no address (%s): %d of %d addresses are free; tag more Elastic IPs with the pool's selector, or configure growth",
			len(waiting), strings.Join(names, ", "), st.Free, st.Total)
	}
	meta.SetStatusCondition(&st.Conditions, exhausted)
	overlap := metav1.Condition{Type: v1alpha1.PoolConditionOverlap, Status: metav1.ConditionFalse, Reason: "NoOverlap",
		Message: "no address of the pool is selected by another pool", ObservedGeneration: pool.Generation}
	if len(overlaps) > 0 {
		overlap.Status, overlap.Reason = metav1.ConditionTrue, "SelectedByOtherPools"
		overlap.Message = fmt.Sprintf("%d addresses are also selected by other pools, and no pool serves them until their tags or the selectors change: %s",
			len(overlaps), strings.Join(overlaps, "; "))
		if !meta.IsStatusConditionTrue(old.Conditions, v1alpha1.PoolConditionOverlap) {
			b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, "PoolOverlap", "Sweep", "%s", overlap.Message)
		}
	}
	meta.SetStatusCondition(&st.Conditions, overlap)
	st.LastSyncTime = old.LastSyncTime
	if equality.Semantic.DeepEqual(st, old) && old.LastSyncTime != nil && now.Sub(old.LastSyncTime.Time) < statusRefresh {
		return grown > 0, growErr
	}
	st.LastSyncTime = &now
	base := pool.DeepCopy()
	pool.Status = st
	if err := b.Client.Status().Patch(ctx, pool, client.MergeFrom(base)); err != nil {
		return grown > 0, fmt.Errorf("writing the status of pool %s: %w", pool.Name, client.IgnoreNotFound(err))
	}
	return grown > 0, growErr
}

// statusDelay gathers the changes of a burst into one status write.
const statusDelay = 200 * time.Millisecond

// requestStatus asks for the pools' status to be written again soon from
// the inventory and the cached reservations; it never blocks.
func (b *Binder) requestStatus() {
	select {
	case b.statusNow <- struct{}{}:
	default:
	}
}

// runStatus writes the pools' status after each request, without asking
// EC2: reservations made or returned, binds and nodes' takes show in well
// under a second rather than at the next sweep.
func (b *Binder) runStatus(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-b.statusNow:
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(statusDelay):
		}
		if err := b.syncStatuses(ctx); err != nil && ctx.Err() == nil {
			b.Log.Error(err, "writing pool status")
		}
	}
}

// syncStatuses writes every pool's status from what the binder knows now.
func (b *Binder) syncStatuses(ctx context.Context) error {
	if err := b.waitReady(ctx); err != nil {
		return nil
	}
	var all v1alpha1.EIPPoolList
	if err := b.Client.List(ctx, &all); err != nil {
		return fmt.Errorf("listing pools: %w", err)
	}
	reserved, err := b.reservedByName(ctx)
	if err != nil {
		return err
	}
	return b.syncPools(ctx, all.Items, reserved)
}

// reservedByName lists the reservations, from the cache, by name: the
// allocation id of the address each reserves.
func (b *Binder) reservedByName(ctx context.Context) (map[string]*v1alpha1.EIPReservation, error) {
	var reservations v1alpha1.EIPReservationList
	if err := b.Client.List(ctx, &reservations); err != nil {
		return nil, fmt.Errorf("listing reservations: %w", err)
	}
	reserved := make(map[string]*v1alpha1.EIPReservation, len(reservations.Items))
	for i := range reservations.Items {
		reserved[reservations.Items[i].Name] = &reservations.Items[i]
	}
	return reserved, nil
}

// syncPools writes the status of every pool, and grows those that need
// it. One writer at a time: the sweep and runStatus both call it, and
// growth counts what the status shows.
func (b *Binder) syncPools(ctx context.Context, all []v1alpha1.EIPPool, reserved map[string]*v1alpha1.EIPReservation) error {
	b.statusMu.Lock()
	defer b.statusMu.Unlock()
	var firstErr error
	// One copy of the inventory serves every pool, unless one grew.
	addrs := b.inv.all()
	for i := range all {
		grown, err := b.syncPool(ctx, &all[i], all, addrs, reserved)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		if grown {
			addrs = b.inv.all()
		}
	}
	countInventory(addrs, b.Cluster)
	return firstErr
}

// poolStatus counts a pool's addresses: reserved ones are held by a
// reservation, bound ones are also associated, and an address associated
// without a reservation (by someone other than kube-eip) is not free. An
// address another pool selects too is not the pool's: it is left out (so
// the webhook never reserves it) and reported among the overlaps.
func poolStatus(pool *v1alpha1.EIPPool, all []v1alpha1.EIPPool, addrs []Address, cluster string, reserved map[string]*v1alpha1.EIPReservation) (v1alpha1.EIPPoolStatus, []string) {
	var st v1alpha1.EIPPoolStatus
	var overlaps []string
	slices.SortFunc(addrs, func(x, y Address) int { return strings.Compare(x.PublicIP, y.PublicIP) })
	elsewhere := int32(0)
	for _, a := range addrs {
		if !pools.Selects(pool.Spec.TagSelector, a.Tags) || ownedElsewhere(a.Tags, cluster) {
			continue
		}
		if owners := pools.Of(a.Tags, all); len(owners) > 1 {
			overlaps = append(overlaps, fmt.Sprintf("%s (%s, pools %s)", a.PublicIP, a.AllocationID, pools.Names(owners)))
			continue
		}
		pa := v1alpha1.PoolAddress{AllocationID: a.AllocationID, PublicIP: a.PublicIP, NetworkBorderGroup: a.BorderGroup}
		st.Total++
		switch res := reserved[a.AllocationID]; {
		case holderKind(a.Tags, cluster) == api.HolderNode:
			// A node pool's address, held by its node.
			st.Reserved++
			pa.Node = a.Tags[api.TagOwner]
			if a.AssociationID != "" {
				st.Bound++
			}
		case holderKind(a.Tags, cluster) == api.HolderFloating:
			// A floating address, on the node the binder put it on.
			st.Reserved++
			pa.Node = a.Tags[api.TagNode]
			if a.AssociationID != "" {
				st.Bound++
			}
		case res != nil:
			st.Reserved++
			pa.StickyOwner = res.Spec.StickyOwner
			if a.AssociationID != "" {
				st.Bound++
			}
		case a.AssociationID != "":
			pa.AssociatedElsewhere = true
			elsewhere++
		case pool.Spec.StickyTag != "":
			// Pinned by the operator to one pod identity, as the
			// aws-pod-eip-controller's fixed-tag-value did.
			pa.StickyOwner = a.Tags[pool.Spec.StickyTag]
		}
		st.Addresses = append(st.Addresses, pa)
	}
	st.Free = st.Total - st.Reserved - elsewhere
	return st, overlaps
}

// grow allocates addresses for a pool with growth configured, to keep
// Warm free ones, up to MaxAddresses.
// It returns how many it allocated.
func (b *Binder) grow(ctx context.Context, pool *v1alpha1.EIPPool, st v1alpha1.EIPPoolStatus) (int, error) {
	g := pool.Spec.Growth
	if g == nil || len(pool.Spec.TagSelector) == 0 {
		return 0, nil
	}
	need := min(g.Warm-st.Free, g.MaxAddresses-st.Total)
	unlock := b.lockKey("pool/" + pool.Name)
	defer unlock()
	grown := 0
	for range max(need, 0) {
		_, ok, err := b.growOne(ctx, pool, g.NetworkBorderGroup, fmt.Sprintf("to keep %d addresses free", g.Warm))
		if err != nil || !ok {
			return grown, err
		}
		grown++
	}
	return grown, nil
}

// growOne allocates one address with the pool's tags in a network border
// group ("" for the region's), unless pods waiting for the account's quota
// should have it first (ok false). why ends the pool's event.
func (b *Binder) growOne(ctx context.Context, pool *v1alpha1.EIPPool, group, why string) (Address, bool, error) {
	g := pool.Spec.Growth
	tags := maps.Clone(pool.Spec.TagSelector)
	tags[api.TagCluster] = b.Cluster
	in := &ec2.AllocateAddressInput{
		Domain:            types.DomainTypeVpc,
		TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeElasticIp, Tags: ec2Tags(tags)}},
	}
	if p := g.PublicIPv4Pool; p != "" && p != "amazon" {
		in.PublicIpv4Pool = aws.String(p)
	}
	if group != "" {
		in.NetworkBorderGroup = aws.String(group)
	}
	if !b.quota.tryAdmit() {
		// Pods waiting for the quota go first; the pool grows later.
		return Address{}, false, nil
	}
	out, err := b.EC2.AllocateAddress(ctx, in)
	b.wakeAll(b.quota.done(ktypes.NamespacedName{}, err == nil, cloud.IsQuotaExceeded(err)))
	if err != nil {
		// A lost answer leaves an address with the pool's tags, which
		// the next sweep counts: growth needs no token.
		return Address{}, false, fmt.Errorf("growing pool %s: %w", pool.Name, err)
	}
	a := Address{AllocationID: aws.ToString(out.AllocationId), PublicIP: aws.ToString(out.PublicIp), BorderGroup: aws.ToString(out.NetworkBorderGroup), Tags: tags}
	b.inv.put(a)
	b.Recorder.Eventf(pool, nil, corev1.EventTypeNormal, "PoolGrown", "Allocate", "Allocated %s (%s) in network border group %s %s", a.PublicIP, a.AllocationID, a.BorderGroup, why)
	return a, true, nil
}
