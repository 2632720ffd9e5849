package binder

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kube-eip/kube-eip/api"
	"github.com/kube-eip/kube-eip/api/v1alpha1"
)

// Reservations. Admission creates an EIPReservation, its spec only, and
// from then on the binder alone writes its status and deletes it, all
// through this file:
//
//	(made) → Reserved   no pod carries its claim yet (Reconcile)
//	       → Claimed    the pod it was made for exists (claimReservation)
//	       → Bound      the address is on that pod (markReservationBound)
//	then, once the pod is gone, a pool reservation is deleted (release.go)
//	and a sticky one goes back to Reserved for the next pod of its name
//	(keepReservationForName), until the sweep finds that nothing brings
//	that name back (sweepKeptReservation). A reservation no pod claims
//	within the claim TTL is deleted (reclaimed).

// DefaultClaimTTL is how long a reservation waits for its pod. A pod is
// stored within the API server's request timeout of its admission; longer
// than that, the create failed after admission (quota, another webhook,
// a client that gave up) and the pod will never come.
const DefaultClaimTTL = time.Minute

// reservationReconciler ties reservations to the pods made for them, and
// reclaims those whose pod never appeared.
type reservationReconciler struct{ *Binder }

// SetupReservationsWithManager registers the reservation controller,
// driven by reservations and by the managed pods that name one.
func (b *Binder) SetupReservationsWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		Named("reservations").
		For(&v1alpha1.EIPReservation{}).
		Watches(&corev1.Pod{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, obj client.Object) []reconcile.Request {
			if name := obj.GetAnnotations()[api.AnnotationReservation]; name != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: name}}}
			}
			return nil
		})).
		Complete(reservationReconciler{b})
}

// Reconcile implements reconcile.Reconciler.
func (r reservationReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	// Pool status counts reservations: it follows every one made,
	// claimed or gone.
	r.requestStatus()
	res := &v1alpha1.EIPReservation{}
	if err := r.Client.Get(ctx, req.NamespacedName, res); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if res.DeletionTimestamp != nil || res.Status.PodUID != "" {
		// Held: binds and releases move it on from here.
		return reconcile.Result{}, nil
	}
	pod, err := r.claimant(ctx, res)
	if err != nil {
		return reconcile.Result{}, err
	}
	if pod != nil {
		return reconcile.Result{}, r.claimReservation(ctx, res, pod)
	}
	if res.Status.PodName != "" {
		// A sticky reservation kept for its name: no TTL, the sweep
		// decides when it goes.
		return reconcile.Result{}, nil
	}
	if err := r.setReservationStatus(ctx, res, func(s *v1alpha1.EIPReservationStatus) {
		s.Phase = v1alpha1.ReservationReserved
	}); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, fmt.Errorf("marking %s reserved: %w", res.Name, err)
	}
	age := r.Now().Sub(res.CreationTimestamp.Time)
	if age < r.ClaimTTL {
		return reconcile.Result{RequeueAfter: r.ClaimTTL - age}, nil
	}
	// Deleting with a UID precondition cannot remove a newer reservation
	// of the same address made meanwhile.
	uid := res.UID
	if err := r.Client.Delete(ctx, res, client.Preconditions{UID: &uid}); client.IgnoreNotFound(err) != nil {
		return reconcile.Result{}, fmt.Errorf("reclaiming %s: %w", res.Name, err)
	}
	reclaimed.Inc()
	r.Recorder.Eventf(res, nil, corev1.EventTypeNormal, api.EventReclaimed, "Reclaim",
		"No pod claimed %s within %s of its admission; the address is free again", res.Spec.PublicIP, r.ClaimTTL)
	r.Log.Info("reclaimed a reservation whose pod never appeared", "reservation", res.Name, "pool", res.Spec.Pool,
		"namespace", res.Spec.PodNamespace, "publicIP", res.Spec.PublicIP, "age", age.Round(time.Second))
	return reconcile.Result{}, nil
}

// claimant finds the pod the reservation was made for (madeFor: its
// namespace, its claim and, for sticky, its name). A pod being deleted
// still claims a fresh sticky reservation, whose release then keeps it for
// the name, but not a pool one, which goes with the pod, nor one already
// kept for the name: that pod has let it go.
func (b *Binder) claimant(ctx context.Context, res *v1alpha1.EIPReservation) (*corev1.Pod, error) {
	if res.Spec.Claim == "" {
		return nil, nil
	}
	var pods corev1.PodList
	if err := b.Client.List(ctx, &pods, client.InNamespace(res.Spec.PodNamespace), client.MatchingFields{indexClaim: res.Spec.Claim}); err != nil {
		return nil, fmt.Errorf("looking for the pod of %s: %w", res.Name, err)
	}
	fresh := res.Status.PodName == ""
	for i := range pods.Items {
		pod := &pods.Items[i]
		if len(madeFor(res, pod)) == 0 && (pod.DeletionTimestamp == nil || fresh && res.Spec.Mode == v1alpha1.ReservationModeSticky) {
			return pod, nil
		}
	}
	return nil, nil
}

// claimReservation records pod as the holder of res, which was made for
// it and which no live pod holds. The bind and the reservation controller
// may both get there: the second write conflicts, and its retry finds the
// claim made.
func (b *Binder) claimReservation(ctx context.Context, res *v1alpha1.EIPReservation, pod *corev1.Pod) error {
	if res.Status.PodUID == string(pod.UID) {
		return nil
	}
	err := b.setReservationStatus(ctx, res, func(s *v1alpha1.EIPReservationStatus) {
		s.PodUID, s.PodName, s.Phase, s.KeptFor = string(pod.UID), pod.Name, v1alpha1.ReservationClaimed, nil
	})
	if err != nil {
		return fmt.Errorf("recording pod %s as the holder of reservation %s: %w", pod.Name, res.Name, err)
	}
	b.Recorder.Eventf(pod, res, corev1.EventTypeNormal, api.EventReserved, "Reserve",
		"Reserved %s (%s) of EIPPool %s", res.Spec.PublicIP, res.Spec.AllocationID, res.Spec.Pool)
	return nil
}

// markReservationBound records on a pool or sticky pod's reservation that
// its address is now associated, and which association is kube-eip's. res
// is as the binder last wrote or read it (claimReservation's write
// included: the cache may not show that yet).
func (b *Binder) markReservationBound(ctx context.Context, pod *corev1.Pod, res *v1alpha1.EIPReservation, addr Address) error {
	if res == nil || res.Status.PodUID != string(pod.UID) {
		return nil
	}
	err := b.setReservationStatus(ctx, res, func(s *v1alpha1.EIPReservationStatus) {
		s.Phase, s.AssociationID = v1alpha1.ReservationBound, addr.AssociationID
	})
	if err != nil {
		return fmt.Errorf("marking reservation %s bound: %w", res.Name, client.IgnoreNotFound(err))
	}
	return nil
}

// keepReservationForName ends the hold of the pod named podName on its
// sticky reservation, which waits, Reserved, for the next pod of the same
// name, for as long as kept says (nil: until a person decides).
func (b *Binder) keepReservationForName(ctx context.Context, podName string, res *v1alpha1.EIPReservation, kept *v1alpha1.ReservationKeep) error {
	err := b.setReservationStatus(ctx, res, func(s *v1alpha1.EIPReservationStatus) {
		s.PodUID, s.Phase, s.KeptFor = "", v1alpha1.ReservationReserved, kept
		if s.PodName == "" {
			s.PodName = podName
		}
	})
	if err != nil {
		return fmt.Errorf("keeping reservation %s for %s: %w", res.Name, res.Spec.StickyOwner, client.IgnoreNotFound(err))
	}
	return nil
}

// setReservationStatus writes res's status as change leaves it, unless
// that is what it was; res is left as it was when the write fails. The
// write carries res's resourceVersion: it fails rather than overwrite a
// change it did not see.
func (b *Binder) setReservationStatus(ctx context.Context, res *v1alpha1.EIPReservation, change func(*v1alpha1.EIPReservationStatus)) error {
	base := res.DeepCopy()
	change(&res.Status)
	if equality.Semantic.DeepEqual(base.Status, res.Status) {
		return nil
	}
	if err := b.Client.Status().Patch(ctx, res, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
		base.DeepCopyInto(res)
		return err
	}
	return nil
}
