package binder

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/pools"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// release takes the pod's address off it first (the CNI will hand the IP
// to another pod, and the address must not follow), then disposes of it by
// mode: auto addresses go back to AWS, pool addresses to their pool, sticky
// ones stay for the next pod of the same name. Only what the pod provably
// holds (holds) is touched.
func (b *Binder) release(ctx context.Context, pod *corev1.Pod) error {
	res, err := b.heldReservation(ctx, pod)
	if err != nil {
		return err
	}
	var addr Address
	var found bool
	if res != nil {
		addr, found, err = b.lookup(ctx, res.Spec.AllocationID)
	} else {
		addr, found, err = b.allocatedFor(ctx, pod)
	}
	if err != nil {
		return err
	}
	if found && (ourAssociation(addr, res, b.Cluster) || addr.AssociationID != "" && pod.Status.PodIP != "" && addr.PrivateIP == pod.Status.PodIP) {
		if err := b.disassociate(ctx, addr); err != nil {
			return err
		}
		addr.AssociationID, addr.ENI, addr.PrivateIP = "", "", ""
	}

	var done disposal
	switch {
	case res != nil:
		if done, err = b.returnReservation(ctx, pod, res, addr, found); err != nil {
			return err
		}
	case !found:
	case addr.Tags[api.TagMode] == string(api.ModeSticky):
		done = keptForName
	default:
		if err := b.releaseOwn(ctx, addr); err != nil {
			return err
		}
		done = disposal{outcome: "released", says: "Released to AWS"}
	}
	if done.outcome != "" {
		b.requestStatus()
		releases.WithLabelValues(done.outcome).Inc()
		b.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, api.EventReleased, "Release", "%s %s (%s)", done.says, addr.PublicIP, addr.AllocationID)
		log.FromContext(ctx).V(1).Info("released", "outcome", done.outcome, "allocationID", addr.AllocationID)
	}
	return nil
}

// disposal is what became of a pod's address, for the metric (outcome)
// and the event (says, before the address).
type disposal struct{ outcome, says string }

// keptForName is the disposal of a sticky address.
var keptForName = disposal{outcome: "kept", says: "Disassociated and kept for the next pod of this name:"}

// heldReservation returns the reservation the pod holds: the one its
// annotation names, if it was made for the pod and no other pod claimed it
// since.
func (b *Binder) heldReservation(ctx context.Context, pod *corev1.Pod) (*v1alpha1.EIPReservation, error) {
	name := pod.Annotations[api.AnnotationReservation]
	if name == "" {
		return nil, nil
	}
	res := &v1alpha1.EIPReservation{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: name}, res); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	if len(madeFor(res, pod)) > 0 || res.Status.PodUID != "" && res.Status.PodUID != string(pod.UID) {
		return nil, nil
	}
	return res, nil
}

// allocatedFor finds the address kube-eip allocated for the pod, or kept
// for its name.
func (b *Binder) allocatedFor(ctx context.Context, pod *corev1.Pod) (Address, bool, error) {
	if id := pod.Annotations[api.AnnotationAllocationID]; id != "" {
		a, found, err := b.lookup(ctx, id)
		if err != nil || found && holds(a, pod, nil, b.Cluster) {
			return a, found, err
		}
	}
	// Allocated, perhaps, but never recorded on the pod.
	claim := pod.Annotations[api.AnnotationClaim]
	if claim == "" {
		return Address{}, false, nil
	}
	if a, ok := b.inv.find(map[string]string{api.TagCluster: b.Cluster, api.TagClaim: claim, api.TagOwner: ownerTag(pod)}); ok && holds(a, pod, nil, b.Cluster) {
		return a, true, nil
	}
	a, found, err := b.findUncertain(ctx, pod)
	return a, found && holds(a, pod, nil, b.Cluster), err
}

// lookup returns an address from the inventory, or from EC2 if the
// inventory has not seen it.
func (b *Binder) lookup(ctx context.Context, allocID string) (Address, bool, error) {
	if a, ok := b.inv.get(allocID); ok {
		return a, true, nil
	}
	addrs, err := b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{allocID}})
	if err != nil {
		return Address{}, false, fmt.Errorf("reading address %s: %w", allocID, err)
	}
	a, ok := firstOf(addrs)
	return a, ok, nil
}

// releaseOwn releases an address kube-eip allocated for a pod. If EC2 says
// it is still in use, our view of its association was stale; it is ours,
// so whatever association it has goes first.
func (b *Binder) releaseOwn(ctx context.Context, addr Address) error {
	err := b.releaseAddress(ctx, addr)
	if !cloud.IsInUse(err) {
		return err
	}
	fresh, derr := b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{addr.AllocationID}})
	if derr != nil || len(fresh) == 0 {
		return err
	}
	if fresh[0].AssociationID != "" {
		if err := b.disassociate(ctx, fresh[0]); err != nil {
			return err
		}
	}
	return b.releaseAddress(ctx, fresh[0])
}

// returnReservation ends a pod's hold on its reservation: a pool one is
// given back (giveBackReservation); a sticky one waits for the next pod of
// the same name, recording the pod's controller, which says how long.
func (b *Binder) returnReservation(ctx context.Context, pod *corev1.Pod, res *v1alpha1.EIPReservation, addr Address, found bool) (disposal, error) {
	if uid := res.Status.PodUID; uid != "" && uid != string(pod.UID) {
		return disposal{}, nil // a newer pod holds it now
	}
	if res.Spec.Mode == v1alpha1.ReservationModeSticky {
		if res.Status.PodUID == "" && res.Status.Phase == v1alpha1.ReservationReserved {
			return disposal{}, nil
		}
		if err := b.keepReservationForName(ctx, pod.Name, res, &v1alpha1.ReservationKeep{Controller: controllerOf(pod)}); err != nil {
			return disposal{}, err
		}
		return keptForName, nil
	}
	return b.giveBackReservation(ctx, res, addr, found, "")
}

// giveBackReservation deletes a reservation whose pod let go for good: its
// address becomes free in its pool, or goes back to AWS if the one pool
// the address belongs to says Release. What the address's own tags say
// decides, not the pool the pod drew it through: an address two pools
// select is never released. A resourceVersion, if given, must still be the
// reservation's.
func (b *Binder) giveBackReservation(ctx context.Context, res *v1alpha1.EIPReservation, addr Address, found bool, resourceVersion string) (disposal, error) {
	done := disposal{outcome: "returned", says: "Returned to pool " + res.Spec.Pool + ":"}
	if found {
		var all v1alpha1.EIPPoolList
		if err := b.Client.List(ctx, &all); err != nil {
			return disposal{}, fmt.Errorf("listing pools: %w", err)
		}
		switch owners := pools.Of(addr.Tags, all.Items); len(owners) {
		case 0:
			done.says = "Kept allocated, since no pool selects it any more:"
		case 1:
			own := owners[0]
			done.says = "Returned to pool " + own.Name + ":"
			if own.Spec.ReleasePolicy == v1alpha1.ReleasePolicyRelease && addr.Tags[api.TagCluster] == b.Cluster {
				released, err := b.releasePoolAddress(ctx, own, addr)
				if err != nil {
					return disposal{}, err
				}
				if released {
					done = disposal{outcome: "released", says: fmt.Sprintf("Released to AWS (pool %s releases its addresses):", own.Name)}
				}
			}
		default:
			done.says = fmt.Sprintf("Kept allocated, since pools %s all select it (an address belongs to one pool only):", pools.Names(owners))
		}
	}
	pre := client.Preconditions{UID: &res.UID}
	if resourceVersion != "" {
		pre.ResourceVersion = &resourceVersion
	}
	if err := b.Client.Delete(ctx, res, pre); client.IgnoreNotFound(err) != nil {
		return disposal{}, fmt.Errorf("returning %s to pool %s: %w", res.Name, res.Spec.Pool, err)
	}
	return done, nil
}

// releasePoolAddress gives a pool's address back to AWS, unless someone
// outside kube-eip associated it meanwhile (then it stays in the pool,
// with a warning on the pool). It reports whether it released.
func (b *Binder) releasePoolAddress(ctx context.Context, pool *v1alpha1.EIPPool, addr Address) (bool, error) {
	if addr.AssociationID != "" {
		b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, api.EventReleaseFailed, "Release",
			"%s (%s) is associated with %s %s outside kube-eip; it stays in the pool instead of being released", addr.PublicIP, addr.AllocationID, addr.ENI, addr.PrivateIP)
		return false, nil
	}
	err := b.releaseAddress(ctx, addr)
	if cloud.IsInUse(err) {
		// Our view was stale: someone associated it after us.
		_, _ = b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{addr.AllocationID}})
		b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, api.EventReleaseFailed, "Release",
			"%s (%s) is in use outside kube-eip; it stays in the pool instead of being released", addr.PublicIP, addr.AllocationID)
		return false, nil
	}
	return err == nil, err
}

func firstOf(addrs []Address) (Address, bool) {
	if len(addrs) == 0 {
		return Address{}, false
	}
	return addrs[0], true
}
