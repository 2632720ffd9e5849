package binder

import (
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// Deleting an auto pod takes its address off the pod's IP first (the CNI
// hands the IP to another pod soon), then gives it back to AWS, and only
// then lets the pod go.
func TestDeletedAutoPodReleasesItsAddress(t *testing.T) {
	e := newEnv(t)
	e.start()
	pod := e.bind(managedPod("web-0", "10.0.1.11"))
	allocID := pod.Annotations[api.AnnotationAllocationID]
	e.events()

	e.delete("web-0")
	if e.podGone("web-0") {
		t.Fatal("the pod went before the binder saw it: the finalizer did not hold it")
	}
	order := e.recordOrder()
	e.mustReconcile("web-0")

	if got, want := order(), []string{"DisassociateAddress", "ReleaseAddress"}; !slices.Equal(got, want) {
		t.Errorf("EC2 calls = %v, want %v in this order", got, want)
	}
	if e.addressExists(allocID) {
		t.Errorf("address %s is still allocated", allocID)
	}
	if n := len(e.ec2.Addresses()); n != 0 {
		t.Errorf("EC2 holds %d addresses, want none", n)
	}
	if !e.podGone("web-0") {
		t.Error("the pod is still there: the finalizer was not removed")
	}
	wantEvent(t, e.events(), "Normal "+api.EventReleased)
}

// A failing release keeps the finalizer, says so in an event, and is
// finished by the retry.
func TestFailedReleaseKeepsThePod(t *testing.T) {
	e := newEnv(t)
	e.start()
	pod := e.bind(managedPod("web-0", "10.0.1.11"))
	allocID := pod.Annotations[api.AnnotationAllocationID]
	e.events()
	e.delete("web-0")

	e.ec2.FailNext("ReleaseAddress", "RequestLimitExceeded", 1)
	if _, err := e.reconcile("web-0"); err == nil {
		t.Fatal("Reconcile succeeded though ReleaseAddress failed")
	}
	if e.podGone("web-0") {
		t.Fatal("the pod went though its address was not released")
	}
	wantEvent(t, e.events(), "Warning "+api.EventReleaseFailed)
	if a := e.address(allocID); a.AssociationID != "" {
		t.Errorf("the address is still associated with %s %s while its pod is going", a.NetworkInterfaceID, a.PrivateIP)
	}

	e.mustReconcile("web-0")
	if e.addressExists(allocID) || !e.podGone("web-0") {
		t.Errorf("after the retry: address allocated %v, pod gone %v; want released and gone", e.addressExists(allocID), e.podGone("web-0"))
	}
}

// A finished pod (a Job's) keeps no address, though it stays: the address
// is released and the pod no longer claims it.
func TestFinishedPodReleasesItsAddress(t *testing.T) {
	e := newEnv(t)
	e.start()
	pod := e.bind(managedPod("job-0", "10.0.1.11"))
	allocID := pod.Annotations[api.AnnotationAllocationID]

	e.setStatus("job-0", func(s *corev1.PodStatus) { s.Phase = corev1.PodSucceeded })
	e.mustReconcile("job-0")

	if e.addressExists(allocID) {
		t.Errorf("address %s of a finished pod is still allocated", allocID)
	}
	p := e.pod("job-0")
	if slices.Contains(p.Finalizers, api.FinalizerRelease) {
		t.Error("a finished pod whose address is released keeps the finalizer")
	}
	for _, k := range []string{api.AnnotationAllocationID, api.AnnotationAssociationID} {
		if v, ok := p.Annotations[k]; ok {
			t.Errorf("a finished pod still says %s=%s", k, v)
		}
	}
	if v, ok := p.Labels[api.LabelPublicIP]; ok {
		t.Errorf("a finished pod is still labelled %s=%s", api.LabelPublicIP, v)
	}

	before := e.calls()
	e.mustReconcile("job-0")
	if got := e.callsSince(before); len(got) != 0 {
		t.Errorf("reconciling the finished pod again called EC2: %v", got)
	}
}

// A pool pod's address goes back to its pool when the pod goes: it is
// taken off the pod and the reservation is deleted, so the webhook can hand
// it out again; under releasePolicy Release it goes back to AWS instead. A
// sticky reservation outlives the pod, kept for the next pod of the name.
func TestDeletedPoolPodReturnsItsAddress(t *testing.T) {
	tests := []struct {
		name            string
		policy          v1alpha1.ReleasePolicy
		mode            api.Mode
		wantAllocated   bool
		wantReservation bool
	}{
		{name: "pool, Retain", policy: v1alpha1.ReleasePolicyRetain, mode: api.ModePool, wantAllocated: true, wantReservation: false},
		{name: "pool, Release", policy: v1alpha1.ReleasePolicyRelease, mode: api.ModePool, wantAllocated: false, wantReservation: false},
		{name: "sticky", policy: v1alpha1.ReleasePolicyRetain, mode: api.ModeSticky, wantAllocated: true, wantReservation: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, eipPool("payments", map[string]string{"team": "payments"}, tc.policy))
			allocID, publicIP := e.ec2.AddAddress(map[string]string{"team": "payments"})
			pod := poolPod("pay-0", "10.0.1.12", "payments", allocID, tc.mode)
			resMode := v1alpha1.ReservationModePool
			if tc.mode == api.ModeSticky {
				resMode = v1alpha1.ReservationModeSticky
			}
			e.create(reservationFor(pod, "payments", allocID, publicIP, resMode))
			e.start()
			e.bind(pod)
			e.events()

			e.delete("pay-0")
			order := e.recordOrder()
			e.mustReconcile("pay-0")

			if !e.podGone("pay-0") {
				t.Error("the pod is still there: the finalizer was not removed")
			}
			if got := order(); len(got) == 0 || got[0] != "DisassociateAddress" {
				t.Errorf("EC2 calls = %v, want DisassociateAddress first", got)
			}
			a, allocated := e.ec2.Address(allocID)
			if allocated != tc.wantAllocated {
				t.Errorf("address allocated = %v, want %v", allocated, tc.wantAllocated)
			}
			if allocated && a.AssociationID != "" {
				t.Errorf("the address is still on %s %s", a.NetworkInterfaceID, a.PrivateIP)
			}
			res := e.reservation(allocID)
			if (res != nil) != tc.wantReservation {
				t.Fatalf("reservation exists = %v, want %v", res != nil, tc.wantReservation)
			}
			if res != nil {
				if res.Status.PodUID != "" || res.Status.Phase != v1alpha1.ReservationReserved {
					t.Errorf("kept reservation status = %+v, want no pod UID and phase Reserved", res.Status)
				}
				if res.Status.PodName != "pay-0" {
					t.Errorf("kept reservation pod name = %q, want pay-0 (the webhook's reclaimer leaves it alone then)", res.Status.PodName)
				}
			}
			wantEvent(t, e.events(), "Normal "+api.EventReleased)
		})
	}
}

// A pod whose reservation a newer pod already holds leaves it alone when
// it goes.
func TestDeletedPodLeavesAReservationANewerPodHolds(t *testing.T) {
	e := newEnv(t, eipPool("payments", map[string]string{"team": "payments"}, v1alpha1.ReleasePolicyRelease))
	allocID, publicIP := e.ec2.AddAddress(map[string]string{"team": "payments"})
	pod := poolPod("pay-0", "10.0.1.12", "payments", allocID, api.ModePool)
	res := reservationFor(pod, "payments", allocID, publicIP, v1alpha1.ReservationModePool)
	res.Status = v1alpha1.EIPReservationStatus{Phase: v1alpha1.ReservationClaimed, PodUID: "uid-newer", PodName: "pay-1"}
	e.create(res)
	e.create(pod)
	e.start()

	e.delete("pay-0")
	e.mustReconcile("pay-0")
	if e.reservation(allocID) == nil {
		t.Error("the reservation a newer pod holds was deleted")
	}
	if !e.addressExists(allocID) {
		t.Error("the address a newer pod holds was released")
	}
}

// A sticky pod without a pool keeps the address allocated for it: it is
// disassociated when the pod goes and comes back to the next pod of the
// same name, whatever its new claim.
func TestStickyAddressComesBackToThePodName(t *testing.T) {
	sts := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db", UID: "uid-sts"}}
	sticky := func(uid, claim string) *corev1.Pod {
		return managedPod("db-0", "10.0.1.13", func(p *corev1.Pod) {
			p.UID = types.UID("uid-" + uid)
			p.Annotations[api.AnnotationMode] = string(api.ModeSticky)
			p.Annotations[api.AnnotationClaim] = claim
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: "StatefulSet", Name: "db", UID: sts.UID, Controller: ptr.To(true)}}
		})
	}
	e := newEnv(t, sts)
	e.start()
	first := e.bind(sticky("first", "claim-1"))
	allocID := first.Annotations[api.AnnotationAllocationID]
	if got := e.address(allocID).Tags; got[api.TagMode] != "sticky" || got[api.TagController] != "StatefulSet/db" || got[api.TagOwner] != "default/db-0" {
		t.Errorf("sticky address tags = %v, want mode sticky, controller StatefulSet/db, owner default/db-0", got)
	}

	e.delete("db-0")
	e.mustReconcile("db-0")
	if !e.podGone("db-0") {
		t.Fatal("the pod is still there: the finalizer was not removed")
	}
	a := e.address(allocID)
	if a.AssociationID != "" {
		t.Errorf("the sticky address is still on %s %s after its pod went", a.NetworkInterfaceID, a.PrivateIP)
	}

	second := e.bind(sticky("second", "claim-2"))
	if got := second.Annotations[api.AnnotationAllocationID]; got != allocID {
		t.Errorf("the new db-0 got %s, want its sticky %s", got, allocID)
	}
	if n := e.ec2.Calls("AllocateAddress"); n != 1 {
		t.Errorf("AllocateAddress called %d times, want 1", n)
	}
}

// A pool pod whose address someone moved elsewhere can still be deleted:
// the address is not taken from them (nor released under them), and the
// pod is not held forever.
func TestDeletedPoolPodWhoseAddressWasMovedElsewhereGoes(t *testing.T) {
	e := newEnv(t, eipPool("payments", payments, v1alpha1.ReleasePolicyRelease))
	pod, allocID, _ := e.reservedPod("pay-0", "10.0.1.12", "payments", api.ModePool)
	e.start()
	e.bind(pod)

	// Someone moves the address to their own instance.
	other := e.ec2.AddInterface("i-0dddddddddddddddd", []string{"10.0.6.10"}, nil)
	theirs := e.associate(allocID, other, "10.0.6.10")

	e.delete("pay-0")
	for range 3 {
		_, _ = e.reconcile("pay-0")
	}
	if !e.podGone("pay-0") {
		t.Error("the pod is held forever by its finalizer")
	}
	if a := e.address(allocID); a.AssociationID != theirs {
		t.Errorf("their association %s was removed", theirs)
	}
}

// A pod whose annotations name another pod's address (a manifest copied
// from a live pod) takes nothing from that pod when it is deleted.
func TestDeletingAPodThatNamesAnotherPodsAddressLeavesItAlone(t *testing.T) {
	e := newEnv(t)
	e.start()
	web := e.bind(managedPod("web-0", "10.0.1.12"))
	allocID, assocID := web.Annotations[api.AnnotationAllocationID], web.Annotations[api.AnnotationAssociationID]
	copied := managedPod("copy", "", withAnnotations(api.AnnotationAllocationID, allocID, api.AnnotationAssociationID, assocID))
	e.create(copied)
	e.mustReconcile("copy")

	e.delete("copy")
	e.mustReconcile("copy")
	if !e.podGone("copy") {
		t.Fatal("the copied pod is still held by its finalizer")
	}
	if a := e.address(allocID); a.AssociationID != assocID || a.PrivateIP != "10.0.1.12" {
		t.Errorf("web-0's address was touched: %+v", a)
	}
}

// A terminating pod comes back to the reconciler many times (the kubelet's
// status updates, another finalizer holding it): its address is released
// once, with exactly Disassociate and Release, and no visit after makes an
// EC2 call, not even a Describe for the address that is gone.
func TestAReleaseCostsTwoCallsOnce(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.bind(managedPod("web-0", "10.0.1.11", func(p *corev1.Pod) { p.Finalizers = append(p.Finalizers, "example.com/keep") }))
	e.delete("web-0")
	before := e.calls()
	e.mustReconcile("web-0")
	if got := e.callsSince(before); len(got) != 2 || got["DisassociateAddress"] != 1 || got["ReleaseAddress"] != 1 {
		t.Fatalf("the release cost %v, want one Disassociate and one Release", got)
	}
	before = e.calls()
	for range 3 {
		e.setStatus("web-0", func(s *corev1.PodStatus) { s.Phase = corev1.PodSucceeded })
		e.mustReconcile("web-0")
	}
	if got := e.callsSince(before); len(got) != 0 {
		t.Errorf("visits after the release cost %v, want nothing", got)
	}
	if f := e.pod("web-0").Finalizers; slices.Contains(f, api.FinalizerRelease) || !slices.Contains(f, "example.com/keep") {
		t.Errorf("finalizers %v, want only the other one", f)
	}
}

// A pool address goes back to its pool with one call: Disassociate.
func TestAPoolAddressReturnsWithOneCall(t *testing.T) {
	e := newEnv(t, eipPool("partners", payments, v1alpha1.ReleasePolicyRetain))
	pod, _, _ := e.reservedPod("web-0", "10.0.1.11", "partners", api.ModePool)
	e.start()
	e.bind(pod)
	e.delete("web-0")
	before := e.calls()
	e.mustReconcile("web-0")
	if got := e.callsSince(before); len(got) != 1 || got["DisassociateAddress"] != 1 {
		t.Errorf("returning the address cost %v, want one Disassociate", got)
	}
}

// The finalizer is removed from the pod as the reconciler read it, even if
// the pod changed since (the kubelet wrote its status): no conflict, no
// retry. Had its finalizers moved, nothing is removed but ours, and only
// where it is.
func TestTheFinalizerGoesWithoutAConflict(t *testing.T) {
	e := newEnv(t)
	e.start()
	e.bind(managedPod("web-0", "10.0.1.11", func(p *corev1.Pod) { p.Finalizers = append(p.Finalizers, "example.com/keep") }))
	e.delete("web-0")
	stale := e.pod("web-0")
	moved := stale.DeepCopy() // Patch rewrites stale with the answer
	e.setStatus("web-0", func(s *corev1.PodStatus) { s.Phase = corev1.PodFailed })
	if err := e.b.dropFinalizer(e.ctx, stale); err != nil {
		t.Fatalf("dropping the finalizer from a pod read before its status changed: %v", err)
	}
	if f := e.pod("web-0").Finalizers; !slices.Equal(f, []string{"example.com/keep"}) {
		t.Errorf("finalizers %v, want [example.com/keep]", f)
	}

	// Another finalizer now sits where ours was read: the test fails and
	// the other stays.
	if err := e.b.dropFinalizer(e.ctx, moved); err == nil {
		t.Error("a finalizer list that moved was patched")
	}
	if f := e.pod("web-0").Finalizers; !slices.Equal(f, []string{"example.com/keep"}) {
		t.Errorf("finalizers %v after a failed test, want [example.com/keep]", f)
	}
}
