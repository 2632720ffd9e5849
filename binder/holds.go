package binder

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// The ownership rule: which pod an address is, and which of its
// associations kube-eip may undo or move. Binding, release and the sweep
// all decide by these functions alone, and only from what kube-eip recorded
// itself (the EC2 tags it writes at allocation, the reservations admission
// makes and the binder updates) and what the cluster says of the pod (its
// namespace, name, UID and IP). A pod's own annotations choose among
// addresses that are already provably its; they never make one so.

// holds reports whether addr is the pod's:
//   - reserved for it: res names the address and was made for the pod
//     (madeFor), and no other pod has claimed it;
//   - or allocated by kube-eip for it: the tags name this cluster, the
//     pod's namespace and name, and the pod's claim (or, for a sticky
//     address, kept for the pod's name whatever the claim). Should EC2 hold
//     two for one claim (a lost answer to AllocateAddress), the one the
//     binder recorded on the pod is the pod's, and the sweep releases the
//     other.
func holds(addr Address, pod *corev1.Pod, res *v1alpha1.EIPReservation, cluster string) bool {
	if res != nil && res.Name == addr.AllocationID {
		return len(madeFor(res, pod)) == 0 && (res.Status.PodUID == "" || res.Status.PodUID == string(pod.UID))
	}
	if holderKind(addr.Tags, cluster) != api.HolderPod || addr.Tags[api.TagClaim] == "" || addr.Tags[api.TagOwner] != ownerTag(pod) {
		return false
	}
	if id := pod.Annotations[api.AnnotationAllocationID]; id != "" && id != addr.AllocationID {
		return false
	}
	return addr.Tags[api.TagClaim] == pod.Annotations[api.AnnotationClaim] || addr.Tags[api.TagMode] == string(api.ModeSticky)
}

// madeFor lists why a reservation was not made for pod: admission writes
// the pod's namespace and claim into it, and for sticky the pod's name.
// Empty means it was made for the pod.
func madeFor(res *v1alpha1.EIPReservation, pod *corev1.Pod) []string {
	var why []string
	if res.Spec.PodNamespace != pod.Namespace {
		why = append(why, fmt.Sprintf("it is for namespace %q", res.Spec.PodNamespace))
	}
	if res.Spec.Claim == "" || res.Spec.Claim != pod.Annotations[api.AnnotationClaim] {
		why = append(why, "its claim is another pod's")
	}
	if res.Spec.Mode == v1alpha1.ReservationModeSticky && res.Spec.StickyOwner != owner(pod) {
		why = append(why, fmt.Sprintf("it is kept for %s", res.Spec.StickyOwner))
	}
	return why
}

// ourAssociation reports whether the address's association is kube-eip's
// to undo or move: any association of an address kube-eip allocated (its
// claim tag for this cluster; nobody else associates those), and of a
// reserved pool address only the association the binder recorded on the
// reservation. A reservation marked Bound before the binder recorded
// association ids stands for its association.
//
// A node's address is a pool address the binder tagged for the node
// (holderKind): its association is kube-eip's only if it is the one the
// binder recorded in the address's TagAssociation, or is on the target the
// binder tagged before associating (TagTarget).
func ourAssociation(addr Address, res *v1alpha1.EIPReservation, cluster string) bool {
	if addr.AssociationID == "" {
		return false
	}
	switch holderKind(addr.Tags, cluster) {
	case api.HolderPod:
		if addr.Tags[api.TagClaim] != "" {
			return true
		}
	case api.HolderNode, api.HolderFloating:
		return addr.Tags[api.TagAssociation] == addr.AssociationID || addr.Tags[api.TagTarget] == targetTag(Target{ENI: addr.ENI, PrivateIP: addr.PrivateIP})
	}
	if res == nil || res.Name != addr.AllocationID {
		return false
	}
	recorded := res.Status.AssociationID
	return recorded == addr.AssociationID || recorded == "" && res.Status.Phase == v1alpha1.ReservationBound
}

// targetTag is the value of api.TagTarget for t.
func targetTag(t Target) string { return t.ENI + "/" + t.PrivateIP }

// holderKind is what kind of holder kube-eip's tags give an address of
// this cluster: api.HolderPod for one allocated for a pod (a claim, and no
// holder tag on those allocated before it was written), api.HolderNode or
// api.HolderFloating for a pool address the binder gave a node or a
// floating group, and "" for any other (a free pool address, a pool pod's,
// whose reservation says who holds it, or another cluster's). Every room of
// the binder, and the sweep, starts from this.
func holderKind(tags map[string]string, cluster string) string {
	if tags[api.TagCluster] != cluster {
		return ""
	}
	if k := tags[api.TagHolder]; k != "" {
		// Also a kind this binder does not know (a newer one wrote it),
		// which no room here takes or releases.
		return k
	}
	if tags[api.TagClaim] != "" {
		return api.HolderPod
	}
	return ""
}

// holderOf finds, among the managed pods, the one that holds addr (which
// res reserves, if any): the pod the reservation names by UID, or its
// claimant in the reservation's namespace; or the pod of the name the
// address's tags name. Finished pods hold nothing.
func holderOf(addr Address, res *v1alpha1.EIPReservation, ix podIndex, cluster string) *corev1.Pod {
	var candidates []*corev1.Pod
	switch {
	case res != nil && res.Status.PodUID != "":
		candidates = []*corev1.Pod{ix.byUID[res.Status.PodUID]}
	case res != nil:
		candidates = ix.byClaim[res.Spec.PodNamespace+"/"+res.Spec.Claim]
	case addr.Tags[api.TagOwner] != "":
		candidates = []*corev1.Pod{ix.byName[addr.Tags[api.TagOwner]]}
	}
	for _, p := range candidates {
		if p != nil && !terminal(p) && holds(addr, p, res, cluster) {
			return p
		}
	}
	return nil
}
