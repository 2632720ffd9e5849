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
		pa := v1alpha1.PoolAddress{AllocationID: a.AllocationID, PublicIP: a.PublicIP}
		st.Total++
		switch res := reserved[a.AllocationID]; {
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
	tags := maps.Clone(pool.Spec.TagSelector)
	tags[api.TagCluster] = b.Cluster
	grown := 0
	for range max(need, 0) {
		in := &ec2.AllocateAddressInput{
			Domain:            types.DomainTypeVpc,
			TagSpecifications: []types.TagSpecification{{ResourceType: types.ResourceTypeElasticIp, Tags: ec2Tags(tags)}},
		}
		if p := g.PublicIPv4Pool; p != "" && p != "amazon" {
			in.PublicIpv4Pool = aws.String(p)
		}
		if !b.quota.tryAdmit() {
			// Pods waiting for the quota go first; the pool grows later.
			return grown, nil
		}
		out, err := b.EC2.AllocateAddress(ctx, in)
		b.wakeAll(b.quota.done(ktypes.NamespacedName{}, err == nil, cloud.IsQuotaExceeded(err)))
		if err != nil {
			// A lost answer leaves an address with the pool's tags, which
			// the next sweep counts: growth needs no token.
			return grown, fmt.Errorf("growing pool %s: %w", pool.Name, err)
		}
		grown++
		b.inv.put(Address{AllocationID: aws.ToString(out.AllocationId), PublicIP: aws.ToString(out.PublicIp), Tags: maps.Clone(tags)})
		b.Recorder.Eventf(pool, nil, "Normal", "PoolGrown", "Allocate", "Allocated %s (%s) to keep %d addresses free", aws.ToString(out.PublicIp), aws.ToString(out.AllocationId), g.Warm)
	}
	return grown, nil
}
