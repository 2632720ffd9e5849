package binder

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/service/ec2"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
	"github.com/kube-eip/kube-eip/binder/cloud"
)

// release takes the pod's address off it first (the CNI will hand the IP
// to another pod, and the address must not follow), then disposes of it by
// mode: auto addresses go back to AWS, pool addresses to their pool, sticky
// ones stay for the next pod of the same name.
func (b *Binder) release(ctx context.Context, pod *corev1.Pod) error {
	resName := pod.Annotations[api.AnnotationReservation]
	claim := pod.Annotations[api.AnnotationClaim]
	allocID := pod.Annotations[api.AnnotationAllocationID]
	if allocID == "" {
		allocID = resName // a reservation is named after its address
	}

	var addr Address
	var found bool
	var err error
	switch {
	case allocID != "":
		if addr, found = b.inv.get(allocID); !found {
			var addrs []Address
			if addrs, err = b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{allocID}}); err != nil {
				return fmt.Errorf("reading address %s: %w", allocID, err)
			}
			addr, found = firstOf(addrs)
		}
	case claim != "":
		// Allocated, perhaps, but never recorded on the pod.
		addr, found = b.inv.find(map[string]string{api.TagCluster: b.Cluster, api.TagClaim: claim})
		if !found {
			if addr, found, err = b.findUncertain(ctx, claim); err != nil {
				return err
			}
		}
	}

	if found && !b.heldBy(pod, addr, resName) {
		// An annotation naming someone else's address (a manifest copied
		// from a live pod, admitted before kube-eip stripped it).
		found = false
	}
	if found && addr.AssociationID != "" && b.ownsAssociationOf(pod, addr) {
		if err := b.disassociate(ctx, addr); err != nil {
			return err
		}
		addr.AssociationID, addr.ENI, addr.PrivateIP = "", "", ""
	}

	outcome := ""
	switch {
	case resName != "":
		if outcome, err = b.returnReservation(ctx, pod, resName, addr, found); err != nil {
			return err
		}
	case !found:
	case addr.Tags[api.TagMode] == string(api.ModeSticky):
		outcome = "kept"
	case addr.Tags[api.TagCluster] == b.Cluster && addr.Tags[api.TagClaim] == claim:
		if err := b.releaseOwn(ctx, addr); err != nil {
			return err
		}
		outcome = "released"
	}
	if outcome != "" {
		releases.WithLabelValues(outcome).Inc()
		b.Recorder.Eventf(pod, nil, corev1.EventTypeNormal, api.EventReleased, "Release", "%s %s (%s)", releaseVerb(outcome), addr.PublicIP, addr.AllocationID)
		log.FromContext(ctx).V(1).Info("released", "outcome", outcome, "allocationID", addr.AllocationID)
	}
	return nil
}

// heldBy tells whether addr is the pod's: allocated for its claim, kept
// for its name, or its reservation's.
func (b *Binder) heldBy(pod *corev1.Pod, addr Address, resName string) bool {
	switch {
	case resName != "":
		return addr.AllocationID == resName
	case addr.Tags[api.TagCluster] != b.Cluster:
		return false
	case addr.Tags[api.TagClaim] == pod.Annotations[api.AnnotationClaim]:
		return true
	default:
		return addr.Tags[api.TagMode] == string(api.ModeSticky) && addr.Tags[api.TagOwner] == owner(pod)
	}
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

func releaseVerb(outcome string) string {
	switch outcome {
	case "released":
		return "Released to AWS"
	case "returned":
		return "Returned to its pool"
	default:
		return "Disassociated and kept for the next pod of this name:"
	}
}

// ownsAssociationOf tells whether the address's association belongs to
// this pod: recorded on it, made for its claim, or on its IP.
func (b *Binder) ownsAssociationOf(pod *corev1.Pod, addr Address) bool {
	switch {
	case addr.AssociationID == pod.Annotations[api.AnnotationAssociationID]:
		return true
	case addr.Tags[api.TagCluster] == b.Cluster && addr.Tags[api.TagClaim] != "" && addr.Tags[api.TagClaim] == pod.Annotations[api.AnnotationClaim]:
		return true
	case pod.Status.PodIP != "" && addr.PrivateIP == pod.Status.PodIP:
		return true
	}
	return false
}

// returnReservation ends a pod's hold on its reservation: a pool address
// becomes free again (or goes back to AWS under releasePolicy Release), a
// sticky one waits for the next pod of the same name.
func (b *Binder) returnReservation(ctx context.Context, pod *corev1.Pod, name string, addr Address, found bool) (string, error) {
	res := &v1alpha1.EIPReservation{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: name}, res); err != nil {
		return "", client.IgnoreNotFound(err)
	}
	if uid := res.Status.PodUID; uid != "" && uid != string(pod.UID) {
		return "", nil // a newer pod holds it now
	}
	if res.Spec.Mode == v1alpha1.ReservationModeSticky {
		if res.Status.PodUID == "" && res.Status.Phase == v1alpha1.ReservationReserved {
			return "", nil
		}
		base := res.DeepCopy()
		res.Status.PodUID, res.Status.Phase = "", v1alpha1.ReservationReserved
		if res.Status.PodName == "" {
			res.Status.PodName = pod.Name
		}
		if err := b.Client.Status().Patch(ctx, res, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return "", fmt.Errorf("keeping reservation %s for %s: %w", name, owner(pod), client.IgnoreNotFound(err))
		}
		return "kept", nil
	}
	pool := &v1alpha1.EIPPool{}
	if err := b.Client.Get(ctx, client.ObjectKey{Name: res.Spec.Pool}, pool); err == nil &&
		pool.Spec.ReleasePolicy == v1alpha1.ReleasePolicyRelease && found && addr.Tags[api.TagCluster] == b.Cluster {
		if addr.AssociationID != "" {
			// Someone else associated it meanwhile: not ours to release.
			b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, api.EventReleaseFailed, "Release",
				"%s (%s) is associated with %s %s outside kube-eip; it stays in the pool instead of being released", addr.PublicIP, addr.AllocationID, addr.ENI, addr.PrivateIP)
		} else if err := b.releaseAddress(ctx, addr); cloud.IsInUse(err) {
			// Our view was stale: someone associated it after us.
			_, _ = b.describe(ctx, &ec2.DescribeAddressesInput{AllocationIds: []string{addr.AllocationID}})
			b.Recorder.Eventf(pool, nil, corev1.EventTypeWarning, api.EventReleaseFailed, "Release",
				"%s (%s) is in use outside kube-eip; it stays in the pool instead of being released", addr.PublicIP, addr.AllocationID)
		} else if err != nil {
			return "", err
		}
	}
	uid := res.UID
	if err := b.Client.Delete(ctx, res, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return "", fmt.Errorf("returning %s to pool %s: %w", name, res.Spec.Pool, err)
	}
	return "returned", nil
}

func firstOf(addrs []Address) (Address, bool) {
	if len(addrs) == 0 {
		return Address{}, false
	}
	return addrs[0], true
}
