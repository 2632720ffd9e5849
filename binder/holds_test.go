package binder

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// The ownership rule, over every kind of holder: which addresses are whose,
// and which associations kube-eip may undo or move.
func TestTheOwnershipRule(t *testing.T) {
	const cluster = "test"
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "team", Name: "web", UID: "u1",
		Annotations: map[string]string{api.AnnotationClaim: "c1"}}}
	podTags := map[string]string{api.TagCluster: cluster, api.TagHolder: api.HolderPod, api.TagClaim: "c1", api.TagOwner: "team/web"}
	legacyPodTags := map[string]string{api.TagCluster: cluster, api.TagClaim: "c1", api.TagOwner: "team/web"}
	nodeTags := map[string]string{api.TagCluster: cluster, api.TagHolder: api.HolderNode, api.TagOwner: "node-a", api.TagAssociation: "eipassoc-1", "pool": "egress"}
	reserved := &v1alpha1.EIPReservation{ObjectMeta: metav1.ObjectMeta{Name: "eipalloc-1"},
		Spec:   v1alpha1.EIPReservationSpec{PodNamespace: "team", Claim: "c1"},
		Status: v1alpha1.EIPReservationStatus{PodUID: "u1", AssociationID: "eipassoc-1", Phase: v1alpha1.ReservationBound}}
	with := func(tags map[string]string, k, v string) map[string]string {
		out := map[string]string{}
		for key, val := range tags {
			out[key] = val
		}
		if v == "" {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	addr := func(tags map[string]string, assoc string) Address {
		return Address{AllocationID: "eipalloc-1", AssociationID: assoc, ENI: "eni-1", PrivateIP: "192.168.0.9", Tags: tags}
	}

	for _, tc := range []struct {
		name     string
		addr     Address
		res      *v1alpha1.EIPReservation
		kind     string
		podHolds bool // holds(addr, pod, res)
		ours     bool // ourAssociation(addr, res)
	}{
		{name: "allocated for the pod", addr: addr(podTags, "eipassoc-9"), kind: api.HolderPod, podHolds: true, ours: true},
		{name: "allocated for the pod before the holder tag", addr: addr(legacyPodTags, "eipassoc-9"), kind: api.HolderPod, podHolds: true, ours: true},
		{name: "allocated for another pod", addr: addr(with(podTags, api.TagOwner, "team/db"), ""), kind: api.HolderPod},
		{name: "another cluster's pod address", addr: addr(with(podTags, api.TagCluster, "other"), "eipassoc-9")},
		{name: "a pod tag without a claim is no pod's", addr: addr(with(podTags, api.TagClaim, ""), "eipassoc-9"), kind: api.HolderPod},
		{name: "a node's address, on the association kube-eip recorded", addr: addr(nodeTags, "eipassoc-1"), kind: api.HolderNode, ours: true},
		{name: "a node's address, associated by someone else since", addr: addr(nodeTags, "eipassoc-2"), kind: api.HolderNode},
		{name: "a node's address with no association recorded", addr: addr(with(nodeTags, api.TagAssociation, ""), "eipassoc-1"), kind: api.HolderNode},
		{name: "a node's address, unrecorded, on the target kube-eip tagged", addr: addr(with(with(nodeTags, api.TagAssociation, ""), api.TagTarget, "eni-1/192.168.0.9"), "eipassoc-1"), kind: api.HolderNode, ours: true},
		{name: "a node's address, unrecorded, off its tagged target", addr: addr(with(with(nodeTags, api.TagAssociation, ""), api.TagTarget, "eni-2/192.168.0.9"), "eipassoc-1"), kind: api.HolderNode},
		{name: "a node's address is no pod's, whatever its claim says", addr: addr(with(nodeTags, api.TagClaim, "c1"), "eipassoc-1"), kind: api.HolderNode, ours: true},
		{name: "a node tag of another cluster", addr: addr(with(nodeTags, api.TagCluster, "other"), "eipassoc-1")},
		{name: "a floating address, on its recorded association", addr: addr(with(nodeTags, api.TagHolder, api.HolderFloating), "eipassoc-1"), kind: api.HolderFloating, ours: true},
		{name: "a kind this binder does not know", addr: addr(with(podTags, api.TagHolder, "gateway"), "eipassoc-9"), kind: "gateway"},
		{name: "a pool address reserved for the pod", addr: addr(map[string]string{api.TagCluster: cluster, "pool": "web"}, "eipassoc-1"), res: reserved, podHolds: true, ours: true},
		{name: "a pool address reserved, associated by someone else", addr: addr(map[string]string{"pool": "web"}, "eipassoc-7"), res: reserved, podHolds: true},
		{name: "a pool address reserved for the pod, but a node's by its tags", addr: addr(nodeTags, "eipassoc-3"), res: reserved, kind: api.HolderNode, podHolds: true},
		{name: "a free pool address", addr: addr(map[string]string{"pool": "web"}, "eipassoc-1")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := holderKind(tc.addr.Tags, cluster); got != tc.kind {
				t.Errorf("holderKind = %q, want %q", got, tc.kind)
			}
			if got := holds(tc.addr, pod, tc.res, cluster); got != tc.podHolds {
				t.Errorf("holds = %v, want %v", got, tc.podHolds)
			}
			if got := ourAssociation(tc.addr, tc.res, cluster); got != tc.ours {
				t.Errorf("ourAssociation = %v, want %v", got, tc.ours)
			}
		})
	}
}
