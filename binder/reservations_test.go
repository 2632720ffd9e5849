package binder

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// madeReservation is the reservation admission just made for pod: its spec
// only, created now on the test's clock.
func (e *env) madeReservation(pod *corev1.Pod, mode v1alpha1.ReservationMode) *v1alpha1.EIPReservation {
	e.t.Helper()
	allocID, publicIP := e.ec2.AddAddress(payments)
	res := reservationFor(pod, "shared", allocID, publicIP, mode)
	res.Status = v1alpha1.EIPReservationStatus{}
	res.CreationTimestamp = metav1.NewTime(e.clock.Now())
	e.create(res)
	return res
}

func (e *env) reconcileReservation(name string) reconcile.Result {
	e.t.Helper()
	got, err := reservationReconciler{e.b}.Reconcile(e.ctx, reconcile.Request{NamespacedName: types.NamespacedName{Name: name}})
	if err != nil {
		e.t.Fatalf("reconciling reservation %s: %v", name, err)
	}
	return got
}

func TestAReservationNoPodClaimsIsReclaimedAfterTheTTL(t *testing.T) {
	e := newEnv(t, eipPool("shared", payments, v1alpha1.ReleasePolicyRetain))
	res := e.madeReservation(managedPod("never-came", "", withAnnotations(api.AnnotationMode, string(api.ModePool))), v1alpha1.ReservationModePool)

	got := e.reconcileReservation(res.Name)
	if got.RequeueAfter != DefaultClaimTTL {
		t.Errorf("requeued after %s, want the claim TTL %s", got.RequeueAfter, DefaultClaimTTL)
	}
	if r := e.reservation(res.Name); r == nil || r.Status.Phase != v1alpha1.ReservationReserved || r.Status.PodUID != "" {
		t.Fatalf("a fresh reservation is %+v, want Reserved with no pod", r)
	}

	e.clock.Step(DefaultClaimTTL / 2)
	if got := e.reconcileReservation(res.Name); got.RequeueAfter != DefaultClaimTTL/2 || e.reservation(res.Name) == nil {
		t.Fatalf("half way through the TTL: requeued after %s, reservation %v; want it kept for the other half", got.RequeueAfter, e.reservation(res.Name))
	}

	before := testutil.ToFloat64(reclaimed)
	e.clock.Step(DefaultClaimTTL / 2)
	e.reconcileReservation(res.Name)
	if e.reservation(res.Name) != nil {
		t.Fatal("the reservation outlived its claim TTL without a pod")
	}
	if n := testutil.ToFloat64(reclaimed) - before; n != 1 {
		t.Errorf("reclaimed counted %v, want 1", n)
	}
	wantEvent(t, e.events(), "Normal "+api.EventReclaimed)
	if !e.addressExists(res.Spec.AllocationID) {
		t.Error("reclaiming the reservation released its address: it belongs to the pool")
	}
}

func TestAReservationIsClaimedOnlyByThePodItWasMadeFor(t *testing.T) {
	pool := func(name string) *corev1.Pod {
		return managedPod(name, "", withAnnotations(api.AnnotationMode, string(api.ModePool)))
	}
	inNamespace := func(ns string) func(*corev1.Pod) { return func(p *corev1.Pod) { p.Namespace = ns } }
	for _, tc := range []struct {
		name string
		mode v1alpha1.ReservationMode
		// made is the pod admission reserved for; present, the pods that
		// exist (with made's claim copied onto them).
		made    *corev1.Pod
		present func(made *corev1.Pod) []*corev1.Pod
		// deleting deletes the present pods, which their finalizer keeps.
		deleting bool
		// claimant is the pod that must hold it, "" for none.
		claimant string
	}{
		{
			name: "the pod it was made for", mode: v1alpha1.ReservationModePool, made: pool("web-1"),
			present: func(made *corev1.Pod) []*corev1.Pod { return []*corev1.Pod{made} }, claimant: "web-1",
		},
		{
			name: "a pod of another namespace carrying its claim", mode: v1alpha1.ReservationModePool, made: pool("web-1"),
			present: func(made *corev1.Pod) []*corev1.Pod {
				thief := pool("web-1")
				inNamespace("other")(thief)
				thief.UID = "uid-thief"
				thief.Annotations[api.AnnotationClaim] = made.Annotations[api.AnnotationClaim]
				return []*corev1.Pod{thief}
			},
		},
		{
			name: "a pod with another claim", mode: v1alpha1.ReservationModePool, made: pool("web-1"),
			present: func(*corev1.Pod) []*corev1.Pod { return []*corev1.Pod{pool("web-2")} },
		},
		{
			name: "a sticky reservation and a pod of another name carrying its claim", mode: v1alpha1.ReservationModeSticky, made: pool("db-0"),
			present: func(made *corev1.Pod) []*corev1.Pod {
				other := pool("db-1")
				other.Annotations[api.AnnotationClaim] = made.Annotations[api.AnnotationClaim]
				return []*corev1.Pod{other}
			},
		},
		{
			name: "a pool reservation and its pod being deleted", mode: v1alpha1.ReservationModePool, made: pool("web-1"),
			present: func(made *corev1.Pod) []*corev1.Pod { return []*corev1.Pod{made} }, deleting: true,
		},
		{
			name: "a sticky reservation and its pod being deleted", mode: v1alpha1.ReservationModeSticky, made: pool("db-0"),
			present: func(made *corev1.Pod) []*corev1.Pod { return []*corev1.Pod{made} }, deleting: true,
			claimant: "db-0",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, eipPool("shared", payments, v1alpha1.ReleasePolicyRetain), servedNamespace("other"))
			res := e.madeReservation(tc.made, tc.mode)
			for _, p := range tc.present(tc.made.DeepCopy()) {
				e.create(p)
				if tc.deleting {
					if err := e.client.Delete(e.ctx, p); err != nil {
						t.Fatal(err)
					}
				}
			}
			e.reconcileReservation(res.Name)
			got := e.reservation(res.Name)
			if tc.claimant == "" {
				if got.Status.PodUID != "" || got.Status.Phase != v1alpha1.ReservationReserved {
					t.Fatalf("claimed by %s (%s); want nobody", got.Status.PodName, got.Status.Phase)
				}
				e.clock.Step(DefaultClaimTTL)
				e.reconcileReservation(res.Name)
				if e.reservation(res.Name) != nil {
					t.Error("a reservation no pod of its own claimed was kept past the claim TTL")
				}
				return
			}
			if got.Status.PodName != tc.claimant || got.Status.PodUID != "uid-"+tc.claimant || got.Status.Phase != v1alpha1.ReservationClaimed {
				t.Fatalf("reservation status %+v, want Claimed by %s", got.Status, tc.claimant)
			}
			wantEvent(t, e.events(), "Normal "+api.EventReserved)
			// Claimed, it is the binder's to bind and return: the TTL no
			// longer applies.
			e.clock.Step(2 * DefaultClaimTTL)
			if got := e.reconcileReservation(res.Name); got.RequeueAfter != 0 || e.reservation(res.Name) == nil {
				t.Errorf("a claimed reservation was requeued after %s, or reclaimed", got.RequeueAfter)
			}
		})
	}
}

// Bind, release and the reservation controller are one writer: a pool
// pod's reservation goes Reserved → Claimed → Bound, then away with the
// pod; a sticky one back to Reserved for the name.
func TestReservationStatusFollowsItsPodThroughBindAndRelease(t *testing.T) {
	for _, mode := range []api.Mode{api.ModePool, api.ModeSticky} {
		t.Run(string(mode), func(t *testing.T) {
			e := newEnv(t, eipPool("shared", payments, v1alpha1.ReleasePolicyRetain))
			e.start()
			pod, allocID, _ := e.reservedPod("web-0", "10.0.1.11", "shared", mode)
			e.create(pod)
			e.reconcileReservation(allocID)
			if got := e.reservation(allocID); got.Status.Phase != v1alpha1.ReservationClaimed {
				t.Fatalf("after the pod appeared: %+v, want Claimed", got.Status)
			}
			e.mustReconcile(pod.Name)
			bound := e.reservation(allocID)
			if bound.Status.Phase != v1alpha1.ReservationBound || bound.Status.AssociationID != e.address(allocID).AssociationID || bound.Status.AssociationID == "" {
				t.Fatalf("after the bind: %+v, want Bound with the address's association %s", bound.Status, e.address(allocID).AssociationID)
			}
			e.delete(pod.Name)
			e.mustReconcile(pod.Name)
			after := e.reservation(allocID)
			if mode == api.ModePool {
				if after != nil {
					t.Fatalf("a pool reservation outlived its pod: %+v", after.Status)
				}
				return
			}
			if after == nil || after.Status.Phase != v1alpha1.ReservationReserved || after.Status.PodUID != "" || after.Status.PodName != pod.Name {
				t.Fatalf("a sticky reservation after its pod: %+v, want Reserved for %s", after, pod.Name)
			}
			// A pod of the name still terminating has let it go: it does
			// not take it back.
			terminating := poolPod(pod.Name, "10.0.1.11", "shared", allocID, mode)
			terminating.UID = "uid-terminating"
			e.create(terminating)
			e.delete(terminating.Name)
			e.reconcileReservation(allocID)
			if r := e.reservation(allocID); r.Status.PodUID != "" || r.Status.KeptFor == nil {
				t.Fatalf("a terminating pod took the kept reservation: %+v", r.Status)
			}
			// Kept for the name, it is no orphan for the TTL to reclaim.
			e.clock.Step(2 * DefaultClaimTTL)
			e.reconcileReservation(allocID)
			if e.reservation(allocID) == nil {
				t.Error("the claim TTL reclaimed a sticky reservation kept for its name")
			}
		})
	}
}

// A sticky reservation kept for its name waits only while something can
// bring that name back (controllerGone, the rule sticky addresses follow);
// then its address is free in its pool again, or released under Release.
func TestAKeptStickyReservationGoesOnceNothingBringsItsNameBack(t *testing.T) {
	statefulSet := &appsv1.StatefulSet{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: "db"}}
	ownedBy := func(kind, name string) func(*corev1.Pod) {
		return func(p *corev1.Pod) {
			p.OwnerReferences = []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: "uid-" + types.UID(name), Controller: ptr.To(true)}}
		}
	}
	for _, tc := range []struct {
		name  string
		owner func(*corev1.Pod)
		// kept: what the reservation records; waits: whether it is still
		// there after the grace, with the StatefulSet in place.
		kept  string
		waits bool
		// deleteStatefulSet, then the reservation must go after the grace.
		deleteStatefulSet bool
		policy            v1alpha1.ReleasePolicy
	}{
		{name: "a StatefulSet's, while it exists", owner: ownedBy("StatefulSet", "db"), kept: "StatefulSet/db", waits: true},
		{name: "a StatefulSet's, once it is deleted", owner: ownedBy("StatefulSet", "db"), kept: "StatefulSet/db", waits: true, deleteStatefulSet: true},
		{name: "a StatefulSet's, once it is deleted, from a pool that releases", owner: ownedBy("StatefulSet", "db"), kept: "StatefulSet/db", waits: true,
			deleteStatefulSet: true, policy: v1alpha1.ReleasePolicyRelease},
		{name: "a ReplicaSet's", owner: ownedBy("ReplicaSet", "db-7d9c"), kept: "ReplicaSet/db-7d9c"},
		{name: "a pod without a controller", owner: func(*corev1.Pod) {}, kept: ""},
		{name: "an operator's", owner: ownedBy("GameServer", "db"), kept: "GameServer/db", waits: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			policy := tc.policy
			if policy == "" {
				policy = v1alpha1.ReleasePolicyRetain
			}
			e := newEnv(t, eipPool("shared", payments, policy), statefulSet)
			e.start()
			pod, allocID, _ := e.reservedPod("db-0", "10.0.1.11", "shared", api.ModeSticky)
			tc.owner(pod)
			e.bind(pod)
			e.delete(pod.Name)
			e.mustReconcile(pod.Name)
			res := e.reservation(allocID)
			if res == nil || res.Status.KeptFor == nil || res.Status.KeptFor.Controller != tc.kept {
				t.Fatalf("kept reservation %+v, want it kept for %q", res, tc.kept)
			}
			e.events()

			e.sweep()
			e.clock.Step(testGrace + time.Second)
			e.sweep()
			if got := e.reservation(allocID) != nil; got != tc.waits {
				t.Fatalf("after the grace the reservation is there: %v, want %v", got, tc.waits)
			}
			if !tc.waits {
				wantEvent(t, e.events(), "Normal "+api.EventReleased)
			}
			if !tc.deleteStatefulSet {
				if !e.addressExists(allocID) {
					t.Error("the address is gone; a Retain pool keeps it")
				}
				return
			}

			if err := e.client.Delete(e.ctx, statefulSet.DeepCopy()); err != nil {
				t.Fatal(err)
			}
			e.sweep()
			if e.reservation(allocID) == nil {
				t.Fatal("the reservation went without the grace once its StatefulSet was deleted")
			}
			e.clock.Step(testGrace + time.Second)
			e.sweep()
			if e.reservation(allocID) != nil {
				t.Fatal("the reservation of a deleted StatefulSet's pod outlived the grace")
			}
			wantEvent(t, e.events(), "Normal "+api.EventReleased)
			if got, want := e.addressExists(allocID), policy != v1alpha1.ReleasePolicyRelease; got != want {
				t.Errorf("the address exists: %v, want %v under %s", got, want, policy)
			}
		})
	}
}

// A pod of the name that comes back takes the kept reservation, even when
// its StatefulSet is gone by the time of the sweep; and one kept by an
// earlier version, which recorded nothing of the controller, waits.
func TestAKeptStickyReservationStaysForAPodOfItsNameAndWhenItsControllerIsUnknown(t *testing.T) {
	e := newEnv(t, eipPool("shared", payments, v1alpha1.ReleasePolicyRetain))
	e.start()
	pod, allocID, _ := e.reservedPod("db-0", "10.0.1.11", "shared", api.ModeSticky)
	e.bind(pod)
	e.delete(pod.Name)
	e.mustReconcile(pod.Name)
	if res := e.reservation(allocID); res == nil || res.Status.KeptFor == nil {
		t.Fatalf("kept reservation %+v, want a record of the pod's controller (none)", res)
	}
	// The next pod of the name, as admission makes it from the reservation.
	next := poolPod("db-0", "10.0.1.12", "shared", allocID, api.ModeSticky)
	next.UID = "uid-db-0-again"
	e.create(next)
	e.sweep()
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	res := e.reservation(allocID)
	if res == nil {
		t.Fatal("the sweep deleted a kept reservation whose next pod is here")
	}
	e.reconcileReservation(allocID)
	if res = e.reservation(allocID); res.Status.PodUID != string(next.UID) || res.Status.KeptFor != nil || res.Status.Phase != v1alpha1.ReservationClaimed {
		t.Fatalf("after the next pod came: %+v, want it Claimed by that pod and no longer kept", res.Status)
	}

	// Kept with no record of the controller, as an earlier binder did.
	e.delete(next.Name)
	e.mustReconcile(next.Name)
	res = e.reservation(allocID)
	res.Status.KeptFor = nil
	if err := e.client.Status().Update(e.ctx, res); err != nil {
		t.Fatal(err)
	}
	e.sweep()
	e.clock.Step(testGrace + time.Second)
	e.sweep()
	if e.reservation(allocID) == nil {
		t.Error("a reservation kept without a record of its controller was deleted; it waits for a person")
	}
}
